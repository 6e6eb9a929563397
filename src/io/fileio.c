/* Atomic writes, bounded whole-file reads, mkdir -p and JSON-lines logs. */
#include "selfsup/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

struct ss_atomic_file {
    int fd;
    char *path; /* final name */
    char *tmp;  /* temporary name in the same folder */
};

/* The folder holding path ("." when path has no slash); malloc'd. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t len = (size_t)(slash - path);
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, path, len);
    d[len] = '\0';
    return d;
}

/* fsync the folder that holds path so that the rename itself is durable.
 * File systems that cannot fsync a folder (EINVAL) are accepted. */
static ss_status fsync_parent(const char *path)
{
    char *dir = parent_dir(path);
    if (!dir) return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: cannot open folder '%s' to sync it: %s",
                                path, dir, strerror(errno));
        free(dir);
        return s;
    }
    ss_status s = SS_OK;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        s = ss_seterr(SS_ERR_IO, "%s: fsync of folder '%s' failed: %s", path, dir,
                      strerror(errno));
    close(fd);
    free(dir);
    return s;
}

static void atomic_free(ss_atomic_file *f)
{
    if (!f) return;
    free(f->path);
    free(f->tmp);
    free(f);
}

ss_status ss_atomic_open(const char *path, ss_atomic_file **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_atomic_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return ss_seterr(SS_ERR_INVALID, "ss_atomic_open: empty path");
    ss_atomic_file *f = calloc(1, sizeof *f);
    size_t cap = strlen(path) + 64;
    if (!f || !(f->path = strdup(path)) || !(f->tmp = malloc(cap))) {
        atomic_free(f);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    }
    long pid = (long)getpid();
    f->fd = -1;
    /* PATH.tmp.<pid>; if that exists (another thread of this process writes
     * the same path), PATH.tmp.<pid>.<k>. */
    for (int k = 0; k < 100 && f->fd < 0; k++) {
        if (k == 0)
            snprintf(f->tmp, cap, "%s.tmp.%ld", path, pid);
        else
            snprintf(f->tmp, cap, "%s.tmp.%ld.%d", path, pid, k);
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd < 0 && errno != EEXIST) break;
    }
    if (f->fd < 0) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: cannot create temporary file '%s': %s",
                                path, f->tmp, strerror(errno));
        atomic_free(f);
        return s;
    }
    *out = f;
    return SS_OK;
}

int ss_atomic_cleanup(const char *path)
{
    if (!path || !*path) return 0;
    char *dir = parent_dir(path);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t bl = strlen(base);
    DIR *d = dir ? opendir(dir) : NULL;
    int removed = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, bl) != 0 || strncmp(nm + bl, ".tmp.", 5) != 0) continue;
        const char *q = nm + bl + 5;
        char *end;
        errno = 0;
        long pid = strtol(q, &end, 10);
        if (errno || pid <= 0 || end == q || (*end && *end != '.')) continue;
        /* A live writer (this process or another) keeps its file. */
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        size_t len = strlen(dir) + strlen(nm) + 2;
        char *full = malloc(len);
        if (!full) break;
        snprintf(full, len, "%s/%s", dir, nm);
        if (unlink(full) == 0) removed++;
        free(full);
    }
    if (d) closedir(d);
    free(dir);
    return removed;
}

void ss_atomic_abort(ss_atomic_file *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp);
    atomic_free(f);
}

ss_status ss_atomic_write(ss_atomic_file *f, const void *data, size_t n)
{
    if (!f) return ss_seterr(SS_ERR_INVALID, "ss_atomic_write: handle is NULL");
    if (n > 0 && !data) {
        ss_status s = ss_seterr(SS_ERR_INVALID, "%s: write of %zu bytes from NULL", f->path, n);
        ss_atomic_abort(f);
        return s;
    }
    const unsigned char *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t w = write(f->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            ss_status s = ss_seterr(SS_ERR_IO, "%s: write to '%s' failed: %s", f->path,
                                    f->tmp, strerror(errno));
            ss_atomic_abort(f);
            return s;
        }
        p += w;
        n -= (size_t)w;
    }
    return SS_OK;
}

ss_status ss_atomic_commit(ss_atomic_file *f)
{
    if (!f) return ss_seterr(SS_ERR_INVALID, "ss_atomic_commit: handle is NULL");
    ss_status s = SS_OK;
    if (fsync(f->fd) != 0)
        s = ss_seterr(SS_ERR_IO, "%s: fsync of '%s' failed: %s", f->path, f->tmp,
                      strerror(errno));
    if (close(f->fd) != 0 && s == SS_OK)
        s = ss_seterr(SS_ERR_IO, "%s: close of '%s' failed: %s", f->path, f->tmp,
                      strerror(errno));
    f->fd = -1;
    if (s == SS_OK && rename(f->tmp, f->path) != 0)
        s = ss_seterr(SS_ERR_IO, "%s: cannot rename '%s' over it: %s", f->path, f->tmp,
                      strerror(errno));
    if (s != SS_OK) {
        ss_atomic_abort(f);
        return s;
    }
    s = fsync_parent(f->path);
    atomic_free(f);
    return s;
}

ss_status ss_write_file_atomic(const char *path, const void *data, size_t n)
{
    if (!path) return ss_seterr(SS_ERR_INVALID, "ss_write_file_atomic: path is NULL");
    if (n > 0 && !data)
        return ss_seterr(SS_ERR_INVALID, "%s: write of %zu bytes from NULL", path, n);
    ss_atomic_file *f;
    ss_status s = ss_atomic_open(path, &f);
    if (s != SS_OK) return s;
    s = ss_atomic_write(f, data, n);
    if (s != SS_OK) return s; /* already aborted */
    return ss_atomic_commit(f);
}

ss_status ss_read_file(const char *path, size_t max_bytes, void **data, size_t *n)
{
    if (!path || !data || !n) return ss_seterr(SS_ERR_INVALID, "ss_read_file: NULL argument");
    *data = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ss_seterr(SS_ERR_IO, "%s: is a folder, expected a file", path);
    }
    size_t cap = 4096;
    if (S_ISREG(st.st_mode)) {
        if (st.st_size < 0 || (unsigned long long)st.st_size > (unsigned long long)max_bytes) {
            close(fd);
            return ss_seterr(SS_ERR_NOMEM, "%s: file holds %lld bytes, more than the limit of %zu",
                             path, (long long)st.st_size, max_bytes);
        }
        cap = (size_t)st.st_size + 1;
    }
    if (cap == 0 || cap > max_bytes) cap = max_bytes == SIZE_MAX ? max_bytes : max_bytes + 1;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (len >= max_bytes) {
                /* One more byte would exceed the limit; probe for EOF. */
                unsigned char probe;
                ssize_t r = read(fd, &probe, 1);
                if (r == 0) break;
                free(buf);
                close(fd);
                if (r < 0) return ss_seterr(SS_ERR_IO, "%s: read failed: %s", path, strerror(errno));
                return ss_seterr(SS_ERR_NOMEM, "%s: file is larger than the limit of %zu bytes",
                                 path, max_bytes);
            }
            size_t ncap = cap > max_bytes / 2 ? max_bytes : cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                close(fd);
                return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, ncap);
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            ss_status s = ss_seterr(SS_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return s;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len > max_bytes) {
        free(buf);
        return ss_seterr(SS_ERR_NOMEM, "%s: file is larger than the limit of %zu bytes", path,
                         max_bytes);
    }
    /* Room for the terminating NUL. */
    if (len == cap) {
        unsigned char *nb = realloc(buf, len + 1);
        if (!nb) {
            free(buf);
            return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, len + 1);
        }
        buf = nb;
    }
    buf[len] = '\0';
    *data = buf;
    *n = len;
    return SS_OK;
}

ss_status ss_mkdir_p(const char *path)
{
    if (!path || !*path) return ss_seterr(SS_ERR_INVALID, "ss_mkdir_p: empty path");
    char *p = strdup(path);
    if (!p) return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
    for (char *c = p + 1;; c++) {
        int last = (*c == '\0');
        if (*c == '/' || last) {
            char save = *c;
            *c = '\0';
            if (mkdir(p, 0777) != 0) {
                int err = errno;
                struct stat st;
                if (err != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                    ss_status s = ss_seterr(SS_ERR_IO, "%s: cannot create folder '%s': %s", path,
                                            p, err == EEXIST ? "exists and is not a folder"
                                                             : strerror(err));
                    free(p);
                    return s;
                }
            }
            *c = save;
            if (last) break;
        }
    }
    free(p);
    return SS_OK;
}

struct ss_jsonl {
    FILE *fp;
    char *path;
};

ss_status ss_jsonl_open(const char *path, ss_jsonl **out)
{
    if (!path || !out) return ss_seterr(SS_ERR_INVALID, "ss_jsonl_open: NULL argument");
    *out = NULL;
    ss_jsonl *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    }
    j->fp = fopen(path, "a");
    if (!j->fp) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: cannot open for appending: %s", path,
                                strerror(errno));
        free(j->path);
        free(j);
        return s;
    }
    *out = j;
    return SS_OK;
}

ss_status ss_jsonl_write(ss_jsonl *j, const char *json_line)
{
    if (!j || !json_line) return ss_seterr(SS_ERR_INVALID, "ss_jsonl_write: NULL argument");
    if (strchr(json_line, '\n') || strchr(json_line, '\r'))
        return ss_seterr(SS_ERR_INVALID, "%s: a JSON-lines record must not contain a newline",
                         j->path);
    if (fputs(json_line, j->fp) == EOF || fputc('\n', j->fp) == EOF || fflush(j->fp) != 0)
        return ss_seterr(SS_ERR_IO, "%s: write failed: %s", j->path, strerror(errno));
    return SS_OK;
}

void ss_jsonl_close(ss_jsonl *j)
{
    if (!j) return;
    fclose(j->fp);
    free(j->path);
    free(j);
}
