/* selfsup — status codes and error messages.
 *
 * Every fallible library call returns an ss_status (or NULL for calls that
 * return a pointer) and leaves a one-line message in a thread-local buffer
 * that names what was wrong and what was expected:
 *
 *     if (ss_idx_load(path, &ds) != SS_OK)
 *         fprintf(stderr, "selfsup: %s\n", ss_errmsg());
 *
 * Library code never calls exit() or abort() for bad input.
 */
#ifndef SELFSUP_STATUS_H
#define SELFSUP_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ss_status {
    SS_OK = 0,
    SS_ERR_INVALID = 1, /* bad argument or configuration value */
    SS_ERR_IO = 2,      /* file missing, unreadable or unwritable */
    SS_ERR_FORMAT = 3,  /* malformed file contents */
    SS_ERR_NOMEM = 4,   /* allocation failed or a size exceeds a limit */
    SS_ERR_SHAPE = 5,   /* tensor shapes do not fit the operation */
    SS_ERR_RANGE = 6,   /* value out of range (label, index, ...) */
    SS_ERR_NAN = 7,     /* a NaN or Inf appeared */
    SS_ERR_UNSUPPORTED = 8
} ss_status;

/* The last error message of this thread ("" when none). */
const char *ss_errmsg(void);

/* Record an error (printf-style message) and return `code`. */
ss_status ss_seterr(ss_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The code of the thread's last error (SS_OK when none): for a function
 * that reports failure as NULL, such as ss_checkpoint_meta. */
ss_status ss_errcode(void);

/* Clear the thread's last error. */
void ss_clearerr(void);

/* Short name of a status code ("format error", ...). */
const char *ss_status_name(ss_status s);

/* Overflow-checked size arithmetic: return 0 and store the result on
 * success, 1 on overflow. Use these for every size taken from a file. */
int ss_mul_overflow(size_t a, size_t b, size_t *out);
int ss_add_overflow(size_t a, size_t b, size_t *out);

#ifdef __cplusplus
}
#endif
#endif
