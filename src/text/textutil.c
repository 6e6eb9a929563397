/* Internal helpers of the text module (see text_internal.h). */
#include "text/text_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "selfsup/rng.h"

uint64_t ss_txt_hash(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return ss_mix64(h ^ (uint64_t)n);
}

/* ------------------------------------------------------------------ strset */

void ss_txt_strset_free(ss_txt_strset *s)
{
    free(s->kbuf);
    free(s->koff);
    free(s->ksize);
    free(s->khash);
    free(s->table);
    memset(s, 0, sizeof *s);
}

static int64_t strset_lookup(const ss_txt_strset *s, const void *key, size_t len, uint64_t h,
                             size_t *slot)
{
    if (!s->tcap) return -1;
    size_t mask = s->tcap - 1, i = (size_t)h & mask;
    for (;;) {
        int64_t e = s->table[i];
        if (e < 0) {
            if (slot) *slot = i;
            return -1;
        }
        if (s->khash[e] == h && s->ksize[e] == len && memcmp(s->kbuf + s->koff[e], key, len) == 0)
            return e;
        i = (i + 1) & mask;
    }
}

int64_t ss_txt_strset_find(const ss_txt_strset *s, const void *key, size_t len)
{
    return strset_lookup(s, key, len, ss_txt_hash(key, len), NULL);
}

static int strset_rehash(ss_txt_strset *s, size_t tcap)
{
    int64_t *t = malloc(tcap * sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < tcap; i++) t[i] = -1;
    for (int64_t e = 0; e < s->n; e++) {
        size_t i = (size_t)s->khash[e] & (tcap - 1);
        while (t[i] >= 0) i = (i + 1) & (tcap - 1);
        t[i] = e;
    }
    free(s->table);
    s->table = t;
    s->tcap = tcap;
    return 0;
}

int64_t ss_txt_strset_add(ss_txt_strset *s, const void *key, size_t len, int *added)
{
    uint64_t h = ss_txt_hash(key, len);
    if (added) *added = 0;
    int64_t e = strset_lookup(s, key, len, h, NULL);
    if (e >= 0) return e;
    if ((size_t)(s->n + 1) * 2 > s->tcap) {
        size_t nc = s->tcap ? s->tcap * 2 : 64;
        if (strset_rehash(s, nc)) return -1;
    }
    if (s->n == s->ncap) {
        int64_t nc = s->ncap ? s->ncap * 2 : 64;
        size_t *ko = realloc(s->koff, (size_t)nc * sizeof *ko);
        if (!ko) return -1;
        s->koff = ko;
        size_t *ks = realloc(s->ksize, (size_t)nc * sizeof *ks);
        if (!ks) return -1;
        s->ksize = ks;
        uint64_t *kh = realloc(s->khash, (size_t)nc * sizeof *kh);
        if (!kh) return -1;
        s->khash = kh;
        s->ncap = nc;
    }
    if (len > s->kcap - s->klen) {
        size_t nc = s->kcap ? s->kcap : 1024;
        while (len > nc - s->klen) {
            if (nc > SIZE_MAX / 2) return -1;
            nc *= 2;
        }
        uint8_t *kb = realloc(s->kbuf, nc);
        if (!kb) return -1;
        s->kbuf = kb;
        s->kcap = nc;
    }
    if (len) memcpy(s->kbuf + s->klen, key, len);
    e = s->n++;
    s->koff[e] = s->klen;
    s->ksize[e] = len;
    s->khash[e] = h;
    s->klen += len;
    size_t slot = (size_t)h & (s->tcap - 1);
    while (s->table[slot] >= 0) slot = (slot + 1) & (s->tcap - 1);
    s->table[slot] = e;
    if (added) *added = 1;
    return e;
}

/* ----------------------------------------------------------------- pairmap */

static inline uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

void ss_txt_pairmap_free(ss_txt_pairmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

int32_t ss_txt_pairmap_get(const ss_txt_pairmap *m, int32_t a, int32_t b)
{
    if (!m->cap) return -1;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = (size_t)ss_mix64(k) & mask;
    while (m->keys[i]) {
        if (m->keys[i] == k) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

int ss_txt_pairmap_put(ss_txt_pairmap *m, int32_t a, int32_t b, int32_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        uint64_t *nk = calloc(nc, sizeof *nk);
        int32_t *nv = malloc(nc * sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = (size_t)ss_mix64(m->keys[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = nc;
    }
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1, i = (size_t)ss_mix64(k) & mask;
    while (m->keys[i] && m->keys[i] != k) i = (i + 1) & mask;
    if (!m->keys[i]) m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
    return 0;
}

/* --------------------------------------------------------------- file i/o */

ss_status ss_txt_read_file(const char *path, size_t max_bytes, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ss_seterr(SS_ERR_IO, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    size_t got = fread(magic, 1, 2, f);
    int gz = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    size_t cap = 0, n = 0;
    char *b = NULL;
    ss_status st_ret = SS_OK;
    if (!gz) {
        if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
            fclose(f);
            return ss_seterr(SS_ERR_NOMEM, "%s: file holds %lld bytes, more than the limit of %zu",
                             path, (long long)st.st_size, max_bytes);
        }
        rewind(f);
        cap = (size_t)st.st_size + 1;
        b = malloc(cap);
        if (!b) {
            fclose(f);
            return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
        }
        n = fread(b, 1, cap - 1, f);
        if (ferror(f)) st_ret = ss_seterr(SS_ERR_IO, "%s: read error: %s", path, strerror(errno));
        fclose(f);
    } else {
        fclose(f);
        gzFile g = gzopen(path, "rb");
        if (!g) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        cap = 1 << 16;
        b = malloc(cap);
        if (!b) {
            gzclose(g);
            return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
        }
        for (;;) {
            if (cap - n < 2) {
                if (cap > max_bytes) {
                    st_ret = ss_seterr(SS_ERR_NOMEM,
                                       "%s: decompresses to more than the limit of %zu bytes", path,
                                       max_bytes);
                    break;
                }
                char *nb = realloc(b, cap * 2);
                if (!nb) {
                    st_ret = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap * 2);
                    break;
                }
                b = nb;
                cap *= 2;
            }
            size_t want = cap - n - 1;
            if (want > (1u << 30)) want = 1u << 30;
            int r = gzread(g, b + n, (unsigned)want);
            if (r < 0) {
                int e;
                const char *m = gzerror(g, &e);
                st_ret = ss_seterr(SS_ERR_FORMAT, "%s: gzip error: %s", path, m ? m : "?");
                break;
            }
            if (r == 0) break;
            n += (size_t)r;
        }
        gzclose(g);
        if (st_ret == SS_OK && n > max_bytes)
            st_ret = ss_seterr(SS_ERR_NOMEM, "%s: decompresses to more than the limit of %zu bytes",
                               path, max_bytes);
    }
    if (st_ret != SS_OK) {
        free(b);
        return st_ret;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return SS_OK;
}

ss_status ss_txt_write_atomic(const char *path, const void *data, size_t len)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: cannot create temporary file: %s", path,
                                strerror(errno));
        free(tmp);
        return s;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            ss_status s = ss_seterr(SS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return s;
        }
        p += w;
        left -= (size_t)w;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; these files are not secret */
    if (fsync(fd) != 0 || close(fd) != 0) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: fsync/close failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    if (rename(tmp, path) != 0) {
        ss_status s = ss_seterr(SS_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return SS_OK;
}

/* ------------------------------------------------------- byte-level alphabet */

/* GPT-2's bytes_to_unicode(): printable bytes map to themselves, the other
 * 68 to 256.. in byte order. */
const uint16_t ss_txt_byte_to_cp[256] = {
    256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267,
    268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278, 279,
    280, 281, 282, 283, 284, 285, 286, 287, 288, 33, 34, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
    48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83,
    84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119,
    120, 121, 122, 123, 124, 125, 126, 289, 290, 291, 292, 293,
    294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305,
    306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317,
    318, 319, 320, 321, 322, 161, 162, 163, 164, 165, 166, 167,
    168, 169, 170, 171, 172, 323, 174, 175, 176, 177, 178, 179,
    180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191,
    192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203,
    204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215,
    216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 227,
    228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251,
    252, 253, 254, 255,
};

int ss_txt_cp_to_byte(uint32_t cp)
{
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
        return (int)cp;
    if (cp < 256 || cp > 323) return -1;
    /* The (cp-256)-th byte that is not printable, in byte order. */
    uint32_t k = cp - 256;
    if (k <= 32) return (int)k;             /* 0x00..0x20 */
    if (k <= 32 + 34) return (int)(127 + (k - 33)); /* 0x7F..0xA0 */
    return 173;                              /* 0xAD */
}

ss_status ss_txt_check_text(const char *path, const char *buf, size_t len)
{
    size_t line = 1, line_start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            line++;
            line_start = i + 1;
        }
        /* Only NUL: real corpora hold other control bytes (0x05 in
         * polarity-en-pang&lee1.csv) and Latin-1 (rt-polarity). */
        if (c == 0)
            return ss_seterr(SS_ERR_FORMAT, "%s:%zu:%zu: not a text file (NUL byte at offset %zu: binary data?)", path,
                             line, i - line_start + 1, i);
    }
    return SS_OK;
}
