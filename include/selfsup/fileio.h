/* selfsup — file helpers: atomic writes, bounded reads, mkdir -p, JSON-lines
 * metrics logs.
 *
 * Atomic writes go to a temporary file beside the target (PATH.tmp.<pid>),
 * which is written, fsync'ed, renamed over PATH, and then the folder is
 * fsync'ed. A crash or an error at any point leaves either the old PATH or the
 * new one, never a torn file; on error the temporary file is removed.
 *
 *     if (ss_write_file_atomic("run/config.json", text, strlen(text)) != SS_OK)
 *         fprintf(stderr, "selfsup: %s\n", ss_errmsg());
 */
#ifndef SELFSUP_FILEIO_H
#define SELFSUP_FILEIO_H

#include <stddef.h>

#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write n bytes atomically to path (see above). On any failure the old
 * contents of path are untouched and no temporary file is left.
 * Errors: SS_ERR_INVALID (NULL path, or data NULL with n > 0), SS_ERR_IO. */
ss_status ss_write_file_atomic(const char *path, const void *data, size_t n);

/* Streaming form of ss_write_file_atomic, for outputs too large to build in
 * memory first (checkpoints). Open, write any number of times, then commit
 * (fsync + rename + fsync folder) or abort (remove the temp file). Commit and
 * abort both free the handle, also on error; a failed write aborts and frees
 * too, so after any error the handle must not be used again. */
typedef struct ss_atomic_file ss_atomic_file;
ss_status ss_atomic_open(const char *path, ss_atomic_file **out);
ss_status ss_atomic_write(ss_atomic_file *f, const void *data, size_t n);
ss_status ss_atomic_commit(ss_atomic_file *f);
void ss_atomic_abort(ss_atomic_file *f);

/* Remove temporary files that a killed writer left beside path
 * (PATH.tmp.<pid>[.<k>] whose process <pid> no longer exists). Returns how
 * many were removed; never fails (a folder that cannot be read removes
 * nothing). Call before resuming from path. */
int ss_atomic_cleanup(const char *path);

/* Read the whole file into a malloc'd buffer (*data, *n bytes; the caller
 * frees). One extra NUL byte is stored after the data (not counted in *n),
 * so text files can be used as C strings. Fails with SS_ERR_NOMEM naming the
 * file when it is larger than max_bytes, SS_ERR_IO when it cannot be read. */
ss_status ss_read_file(const char *path, size_t max_bytes, void **data, size_t *n);

/* Create a folder and any missing parents (like `mkdir -p`, mode 0777 less
 * umask). Succeeds when it already exists as a folder; SS_ERR_IO naming the
 * component that could not be created otherwise. */
ss_status ss_mkdir_p(const char *path);

/* JSON-lines metrics log: one JSON object per line, appended to the file and
 * flushed after every line so that a crashed run keeps all lines written. */
typedef struct ss_jsonl ss_jsonl;

/* Open path for appending (created if missing). SS_ERR_IO on failure. */
ss_status ss_jsonl_open(const char *path, ss_jsonl **out);

/* Append one line. json_line is one JSON value without a trailing newline
 * (one is added); it must not contain a newline (SS_ERR_INVALID). */
ss_status ss_jsonl_write(ss_jsonl *j, const char *json_line);

/* Close the log (NULL is fine). */
void ss_jsonl_close(ss_jsonl *j);

#ifdef __cplusplus
}
#endif
#endif
