/* Helpers for the data tests: a temporary folder and small fixture files.
 * Include after testutil.h. */
#ifndef SS_DATA_FIXTURES_H
#define SS_DATA_FIXTURES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char fx_root[512];

/* Create a fresh temporary folder; returns its path. */
static inline const char *fx_mkroot(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(fx_root, sizeof fx_root, "%s/ss_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(fx_root)) {
        perror("mkdtemp");
        exit(2);
    }
    return fx_root;
}

static inline void fx_rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char q[1024];
            if (snprintf(q, sizeof q, "%s/%s", p, e->d_name) < (int)sizeof q) fx_rm_tree(q);
        }
        if (d) closedir(d);
        rmdir(p);
    } else {
        unlink(p);
    }
}

static inline void fx_rmroot(void)
{
    if (fx_root[0]) fx_rm_tree(fx_root);
}

/* fx_path("a/b") -> "<root>/a/b" in a rotating static buffer. */
static inline const char *fx_path(const char *rel)
{
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 1024, "%s/%s", fx_root, rel);
    return b;
}

static inline void fx_mkdir(const char *rel) { mkdir(fx_path(rel), 0755); }

static inline void fx_write(const char *rel, const void *data, size_t n)
{
    FILE *f = fopen(fx_path(rel), "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        perror(rel);
        exit(2);
    }
    fclose(f);
}

static inline void fx_write_gz(const char *rel, const void *data, size_t n, const char *mode)
{
    gzFile g = gzopen(fx_path(rel), mode);
    if (!g || gzwrite(g, data, (unsigned)n) != (int)n) {
        perror(rel);
        exit(2);
    }
    gzclose(g);
}

static inline void fx_text(const char *rel, const char *text) { fx_write(rel, text, strlen(text)); }

static inline void fx_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* IDX images file bytes: header for (n,h,w) then body (may be shorter). */
static inline uint8_t *fx_idx_images(uint32_t magic, uint32_t n, uint32_t h, uint32_t w, const uint8_t *body,
                              size_t body_len, size_t *len)
{
    uint8_t *b = malloc(16 + body_len);
    fx_be32(b, magic);
    fx_be32(b + 4, n);
    fx_be32(b + 8, h);
    fx_be32(b + 12, w);
    if (body_len) memcpy(b + 16, body, body_len);
    *len = 16 + body_len;
    return b;
}

static inline uint8_t *fx_idx_labels(uint32_t n, const uint8_t *body, size_t body_len, size_t *len)
{
    uint8_t *b = malloc(8 + body_len);
    fx_be32(b, 0x801);
    fx_be32(b + 4, n);
    if (body_len) memcpy(b + 8, body, body_len);
    *len = 8 + body_len;
    return b;
}

/* Does the last error message contain s? Prints it when not. */
static inline int fx_msg_has(const char *s)
{
    if (strstr(ss_errmsg(), s)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", ss_errmsg(), s);
    return 0;
}

#endif
