/* Image files: class folders, flat folders and CSV lists, decoded with
 * stb_image on OpenMP threads. Files are sorted by name (strcmp) so the
 * order, and therefore every index, is the same on every machine. */
#include "data/data_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "selfsup/fileio.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_PSD
#define STBI_NO_HDR
#define STBI_NO_PIC
#define STBI_FAILURE_USERMSG
/* The decoders' integer arithmetic wraps on corrupt data (stb_image 2.27
 * has signed overflows in its PNM and JPEG paths, found by fuzz_image):
 * garbage pixels, not undefined behaviour. Memory accesses stay checked by
 * ASan; the size checks below run before any decoding. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("signed-integer-overflow", "shift"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("wrapv")
#endif
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-but-set-variable"
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wsign-compare"
#pragma clang diagnostic ignored "-Wunused-parameter"
#pragma clang diagnostic ignored "-Wimplicit-fallthrough"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include "stb_image.h"
#if defined(__clang__)
#pragma clang diagnostic pop
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

/* ---- one image, size checked before decoding --------------------------------------- */
/* Width and height a PNG or JPEG header declares (1), without decoding;
 * 0 for other formats or when the header is not found; -1 for a PNG
 * signature without IHDR. */
static int header_dims(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 24 && !memcmp(p, png_sig, 8) && !memcmp(p + 12, "IHDR", 4)) {
        *w = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
        *h = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
        return 1;
    }
    if (n >= 8 && !memcmp(p, png_sig, 8)) return -1; /* a PNG must start with IHDR */
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return 0;
    for (size_t i = 2; i + 9 <= n;) { /* JPEG: walk the markers to the frame header */
        if (p[i] != 0xFF) return 0;
        unsigned m = p[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {
            i += 2;
            continue;
        }
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            *h = (uint32_t)p[i + 5] << 8 | p[i + 6];
            *w = (uint32_t)p[i + 7] << 8 | p[i + 8];
            return 1;
        }
        if (m == 0xD9 || m == 0xDA) return 0;
        i += 2 + ((size_t)p[i + 2] << 8 | p[i + 3]);
    }
    return 0;
}

/* PNG chunk walk: every chunk must lie inside the file and IEND must come.
 * stb_image sizes its IDAT buffer from the declared chunk lengths, so a
 * length past the end of the file would make it allocate that much. */
static const char *png_chunks_bad(const unsigned char *p, size_t n)
{
    static char why[96];
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
        char type[5] = {0};
        for (int i = 0; i < 4; i++) {
            unsigned char c = p[off + 4 + i];
            type[i] = (char)((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? c : '?');
        }
        if ((uint64_t)len > (uint64_t)(n - off - 12)) {
            snprintf(why, sizeof why, "PNG chunk '%s' declares %u bytes, past the end of the file", type, (unsigned)len);
            return why;
        }
        if (!memcmp(p + off + 4, "IEND", 4)) return NULL;
        off += 12 + (size_t)len;
    }
    return "truncated PNG (no IEND chunk)";
}

/* JPEG marker walk over the whole file: every Huffman table (DHT) must
 * hold at most 256 codes. The Debian stb_image (2.27) does not check this
 * and writes past its tables (found by fuzz_image; stb 2.28 has the check). */
static const char *jpeg_bad(const unsigned char *p, size_t n)
{
    static char why[96];
    size_t i = 2;
    while (i + 4 <= n) {
        if (p[i] != 0xFF) { /* entropy-coded data between markers */
            i++;
            continue;
        }
        unsigned m = p[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {
            i += 2;
            continue;
        }
        if (m == 0xD9) return NULL;
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (m == 0xC4) {
            size_t end = i + 2 + len < n ? i + 2 + len : n;
            for (size_t j = i + 4; j < end;) { /* stb_image reads bytes past the end as 0 */
                unsigned codes = 0;
                for (int k = 1; k <= 16; k++) codes += j + k < n ? p[j + k] : 0;
                if (codes > 256) {
                    snprintf(why, sizeof why, "JPEG Huffman table with %u codes (at most 256)", codes);
                    return why;
                }
                j += 17 + codes;
            }
        }
        i += 2 + (len < 2 ? 2 : len);
    }
    return NULL;
}

/* PNM header: stb_image 2.27 reads its numbers into an int without an
 * overflow check (UBSan, found by fuzzing); more than 9 digits is refused. */
static const char *pnm_bad(const unsigned char *p, size_t n)
{
    if (n < 2 || p[0] != 'P' || (p[1] != '5' && p[1] != '6')) return NULL;
    size_t i = 2;
    for (int field = 0; field < 3; field++) {
        for (;;) { /* white space and comments, as stb skips them */
            while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r'))) i++;
            if (i >= n || p[i] != '#') break;
            while (i < n && p[i] != '\n' && p[i] != '\r') i++;
        }
        size_t digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            digits++;
            i++;
        }
        if (digits > 9) return "PNM header number of more than 9 digits";
        if (digits == 0) break;
    }
    return NULL;
}

int ss__image_info_memory(const unsigned char *buf, size_t n, const char *label, int *w, int *h, int *comp,
                          char *err, size_t errn)
{
    int iw = 0, ih = 0, ic = 0;
    if (n == 0 || n > (size_t)INT_MAX) {
        snprintf(err, errn, "%s: cannot decode image: %s", label, n ? "file too large" : "empty file");
        return 0;
    }
    /* stb_image takes a JPEG after any number of 0xFF fill bytes (found by
     * fuzzing: the checks below were skipped for such a file). */
    const unsigned char *jp = NULL;
    size_t jn = 0, k = 0;
    while (k + 1 < n && buf[k] == 0xFF && buf[k + 1] == 0xFF) k++;
    if (k + 1 < n && buf[k] == 0xFF && buf[k + 1] == 0xD8) {
        jp = buf + k;
        jn = n - k;
    }
    uint32_t hw = 0, hh = 0;
    int known = jp ? header_dims(jp, jn, &hw, &hh) : header_dims(buf, n, &hw, &hh);
    if (known < 0) {
        snprintf(err, errn, "%s: cannot decode image: PNG without an IHDR header chunk", label);
        return 0;
    }
    const char *bad = jp ? jpeg_bad(jp, jn) : known && n >= 8 && buf[0] == 0x89 ? png_chunks_bad(buf, n) : NULL;
    if (!bad) bad = pnm_bad(buf, n);
    if (bad) {
        snprintf(err, errn, "%s: cannot decode image: %s", label, bad);
        return 0;
    }
    if (known &&
        (hw > SS_IMG_MAX_SIDE || hh > SS_IMG_MAX_SIDE || (uint64_t)hw * hh > (uint64_t)SS_IMG_MAX_PIXELS)) {
        snprintf(err, errn, "%s: image declares %ux%u pixels, over the limit of %d per side and %lld in all "
                 "(not decoded)", label, (unsigned)hw, (unsigned)hh, SS_IMG_MAX_SIDE, (long long)SS_IMG_MAX_PIXELS);
        return 0;
    }
    if (!stbi_info_from_memory(buf, (int)n, &iw, &ih, &ic)) {
        const char *why = stbi_failure_reason();
        snprintf(err, errn, "%s: cannot decode image: %s", label, why ? why : "unknown format");
        return 0;
    }
    if (iw <= 0 || ih <= 0 || iw > SS_IMG_MAX_SIDE || ih > SS_IMG_MAX_SIDE ||
        (int64_t)iw * ih > SS_IMG_MAX_PIXELS) {
        snprintf(err, errn, "%s: image declares %dx%d pixels, over the limit of %d per side and %lld in all "
                 "(not decoded)", label, iw, ih, SS_IMG_MAX_SIDE, (long long)SS_IMG_MAX_PIXELS);
        return 0;
    }
    if (ic < 1 || ic > 4) {
        snprintf(err, errn, "%s: image has %d channels; expected 1 to 4", label, ic);
        return 0;
    }
    if (buf[0] == 'P' && stbi_is_16_bit_from_memory(buf, (int)n)) {
        /* stb_image 2.27 converts a 16-bit PNM's channels as 8-bit data and
         * then reads twice the buffer (found by fuzzing). */
        snprintf(err, errn, "%s: 16-bit PNM (maxval above 255) is not supported", label);
        return 0;
    }
    *w = iw;
    *h = ih;
    *comp = ic;
    return 1;
}

unsigned char *ss__image_decode_memory(const unsigned char *buf, size_t n, const char *label, int req_comp, int *w,
                                       int *h, int *comp, char *err, size_t errn)
{
    int iw, ih, ic;
    if (!ss__image_info_memory(buf, n, label, &iw, &ih, &ic, err, errn)) return NULL;
    unsigned char *img = stbi_load_from_memory(buf, (int)n, w, h, comp, req_comp);
    if (!img) {
        const char *why = stbi_failure_reason();
        snprintf(err, errn, "%s: cannot decode image: %s", label, why ? why : "unknown reason");
        return NULL;
    }
    if (*w != iw || *h != ih) { /* the header and the decoder must agree */
        stbi_image_free(img);
        snprintf(err, errn, "%s: cannot decode image: inconsistent size", label);
        return NULL;
    }
    return img;
}

unsigned char *ss__image_load(const char *path, int req_comp, int *w, int *h, int *comp, char *err, size_t errn)
{
    void *buf = NULL;
    size_t n = 0;
    if (ss_read_file(path, SS_IMG_MAX_FILE, &buf, &n) != SS_OK) {
        snprintf(err, errn, "%s", ss_errmsg());
        return NULL;
    }
    unsigned char *img = ss__image_decode_memory(buf, n, path, req_comp, w, h, comp, err, errn);
    free(buf);
    return img;
}

void ss__image_free(unsigned char *img) { stbi_image_free(img); }

typedef struct entry {
    char *path;
    char *label_str; /* CSV only, until labels are resolved */
    int32_t label;
    int line;        /* CSV line number */
} entry;

typedef struct entry_list {
    entry *v;
    int64_t n, cap;
} entry_list;

static void list_free(entry_list *l)
{
    for (int64_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].label_str);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

static ss_status list_push(entry_list *l, const char *path, int32_t label, int line)
{
    if (l->n == l->cap) {
        int64_t nc = l->cap ? l->cap * 2 : 1024;
        entry *v = realloc(l->v, (size_t)nc * sizeof *v);
        if (!v) return ss_seterr(SS_ERR_NOMEM, "out of memory listing images");
        l->v = v;
        l->cap = nc;
    }
    entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    if (!e->path) return ss_seterr(SS_ERR_NOMEM, "out of memory listing images");
    e->label = label;
    e->line = line;
    l->n++;
    if (l->n > INT32_MAX) return ss_seterr(SS_ERR_RANGE, "%s: more than 2^31-1 images", path);
    return SS_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (no hidden entries). want: 1 = subfolders, 2 = image files. */
static ss_status list_dir(const char *dir, int want, char ***names, int64_t *count)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return ss_seterr(SS_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    char **v = NULL;
    int64_t n = 0, cap = 0;
    struct dirent *de;
    ss_status s = SS_OK;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        int isdir, isreg;
#ifdef DT_DIR
        if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK) {
            isdir = de->d_type == DT_DIR;
            isreg = de->d_type == DT_REG;
        } else
#endif
        {
            char p[4096];
            if (ss__join(p, sizeof p, dir, de->d_name) != SS_OK) continue;
            isdir = ss__is_dir(p);
            isreg = ss__is_file(p);
        }
        if (want == 1 ? !isdir : !(isreg && ss__has_image_ext(de->d_name))) continue;
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 256;
            char **nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) {
                s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory listing folder", dir);
                break;
            }
            v = nv;
            cap = nc;
        }
        v[n] = strdup(de->d_name);
        if (!v[n]) {
            s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory listing folder", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (s != SS_OK) {
        for (int64_t i = 0; i < n; i++) free(v[i]);
        free(v);
        return s;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return SS_OK;
}

static void free_names(char **v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Decode the entries into out (labels already resolved). */
static ss_status decode_entries(entry_list *L, const char *what, const ss_load_cfg *cfg, ss_dataset *out)
{
    int64_t n = L->n;
    if (cfg->max_images > 0 && cfg->max_images < n) n = cfg->max_images;
    if (n == 0) return ss_seterr(SS_ERR_FORMAT, "%s: no images found", what);
    int w0, h0, comp0;
    char err0[1024];
    unsigned char *first = ss__image_load(L->v[0].path, 0, &w0, &h0, &comp0, err0, sizeof err0);
    if (!first) return ss_seterr(SS_ERR_FORMAT, "%s", err0);
    stbi_image_free(first);
    int c, h, w;
    size_t bytes;
    ss_status s = ss__out_shape(cfg, what, n, comp0, h0, w0, &c, &h, &w, &bytes);
    if (s != SS_OK) return s;
    out->pixels = malloc(bytes ? bytes : 1);
    out->labels = malloc((size_t)n * sizeof(int32_t));
    if (!out->pixels || !out->labels)
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %zu bytes of images", what, bytes);
    size_t per = (size_t)c * h * w;
    int64_t err_i = INT64_MAX;
    char err_msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 128)
    for (int64_t i = 0; i < n; i++) {
        int64_t cur;
#pragma omp atomic read
        cur = err_i;
        if (i > cur) continue;
        int iw, ih, icomp;
        char why[1024];
        unsigned char *img = ss__image_load(L->v[i].path, c, &iw, &ih, &icomp, why, sizeof why);
        if (!img) {
#pragma omp critical(ss_imgfolder_err)
            {
                if (i < err_i) {
#pragma omp atomic write
                    err_i = i;
                    snprintf(err_msg, sizeof err_msg, "%s", why);
                }
            }
            continue;
        }
        ss__img_to_chw(img, c, ih, iw, 1, out->pixels + (size_t)i * per, c, h, w);
        stbi_image_free(img);
        out->labels[i] = L->v[i].label;
    }
    if (err_i != INT64_MAX) return ss_seterr(SS_ERR_FORMAT, "%s", err_msg);
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;
    ss__set_source(out, what);
    return SS_OK;
}

ss_status ss__load_image_folder(const char *dir, const ss_load_cfg *cfg, ss_dataset *out)
{
    char **classes = NULL, **files = NULL;
    int64_t ncls = 0, nfiles = 0;
    entry_list L = {0};
    char p[4096], q[4096];
    ss_status s = list_dir(dir, 1, &classes, &ncls);
    if (s != SS_OK) return s;
    if (ncls > 100000) {
        s = ss_seterr(SS_ERR_RANGE, "%s: %lld class folders, more than 100000", dir, (long long)ncls);
        goto done;
    }
    if (ncls > 0) {
        for (int64_t k = 0; k < ncls; k++) {
            if ((s = ss__join(p, sizeof p, dir, classes[k])) != SS_OK) goto done;
            if ((s = list_dir(p, 2, &files, &nfiles)) != SS_OK) goto done;
            for (int64_t i = 0; i < nfiles && s == SS_OK; i++) {
                s = ss__join(q, sizeof q, p, files[i]);
                if (s == SS_OK) s = list_push(&L, q, (int32_t)k, 0);
            }
            free_names(files, nfiles);
            files = NULL;
            if (s != SS_OK) goto done;
        }
        if (L.n == 0) {
            s = ss_seterr(SS_ERR_FORMAT, "%s: %lld class folders but no image files (png/jpg/bmp/gif/tga/pnm) in them",
                          dir, (long long)ncls);
            goto done;
        }
        if ((s = ss__set_classes(out, (int)ncls, (const char *const *)classes)) != SS_OK) goto done;
    } else {
        if ((s = list_dir(dir, 2, &files, &nfiles)) != SS_OK) goto done;
        for (int64_t i = 0; i < nfiles && s == SS_OK; i++) {
            s = ss__join(q, sizeof q, dir, files[i]);
            if (s == SS_OK) s = list_push(&L, q, -1, 0);
        }
        free_names(files, nfiles);
        files = NULL;
        if (s != SS_OK) goto done;
        if (L.n == 0) {
            s = ss_seterr(SS_ERR_FORMAT,
                          "%s: no IDX files, CIFAR-10 batches, class folders or image files "
                          "(png/jpg/bmp/gif/tga/pnm) found",
                          dir);
            goto done;
        }
    }
    s = decode_entries(&L, dir, cfg, out);
done:
    free_names(classes, ncls);
    list_free(&L);
    return s;
}

/* ----------------------------------------------------------------- CSV */

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t k = strlen(s);
    while (k && isspace((unsigned char)s[k - 1])) s[--k] = '\0';
    return s;
}

static int parse_int(const char *s, long *v)
{
    if (!*s) return 0;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (*end || errno) return 0;
    *v = x;
    return 1;
}

ss_status ss__load_csv(const char *path, const ss_load_cfg *cfg, ss_dataset *out)
{
    uint64_t sz;
    if (ss__file_size(path, &sz) != 0) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (sz > ((uint64_t)1 << 30)) return ss_seterr(SS_ERR_NOMEM, "%s: CSV of %llu bytes is over 1 GiB", path, (unsigned long long)sz);
    FILE *f = fopen(path, "rb");
    if (!f) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = malloc((size_t)sz + 1);
    if (!text) {
        fclose(f);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(text, 1, (size_t)sz, f);
    fclose(f);
    text[got] = '\0';
    if (memchr(text, '\0', got)) {
        free(text);
        return ss_seterr(SS_ERR_FORMAT, "%s: CSV contains a NUL byte (binary file?)", path);
    }

    char dir[4096];
    const char *base = ss__basename(path);
    snprintf(dir, sizeof dir, "%.*s", (int)(base - path), path);

    entry_list L = {0};
    char **names = NULL;
    int64_t nnames = 0;
    ss_status s = SS_OK;
    int lineno = 0, first = 1;
    char *save = text;
    while (save && *save) {
        char *line = save;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            save = nl + 1;
        } else {
            save = NULL;
        }
        lineno++;
        char *t = trim(line);
        if (!*t) continue;
        char *comma = strchr(t, ',');
        char *pstr = t, *lstr = (char *)"";
        if (comma) {
            *comma = '\0';
            lstr = comma + 1;
            if (strchr(lstr, ',')) {
                s = ss_seterr(SS_ERR_FORMAT, "%s:%d: expected \"path,label\" but the row has more than two fields",
                              path, lineno);
                goto done;
            }
        }
        pstr = trim(pstr);
        lstr = trim(lstr);
        char full[4096];
        if (!*pstr) {
            s = ss_seterr(SS_ERR_FORMAT, "%s:%d: empty image path", path, lineno);
            goto done;
        }
        if (pstr[0] == '/')
            snprintf(full, sizeof full, "%s", pstr);
        else if ((s = ss__join(full, sizeof full, dir, pstr)) != SS_OK)
            goto done;
        int exists = ss__is_file(full);
        if (first) {
            first = 0;
            if (!exists && !ss__has_image_ext(pstr)) continue; /* header line */
        }
        if (!exists) {
            s = ss_seterr(SS_ERR_IO, "%s:%d: image file \"%s\" not found", path, lineno, full);
            goto done;
        }
        if ((s = list_push(&L, full, -1, lineno)) != SS_OK) goto done;
        if (*lstr && strcmp(lstr, "-1") != 0) {
            L.v[L.n - 1].label_str = strdup(lstr);
            if (!L.v[L.n - 1].label_str) {
                s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
        }
    }
    if (L.n == 0) {
        s = ss_seterr(SS_ERR_FORMAT, "%s: no image rows", path);
        goto done;
    }
    /* Labels: all integers -> classes 0..max; else sorted distinct names. */
    int all_int = 1;
    long maxlab = -1;
    for (int64_t i = 0; i < L.n && all_int; i++) {
        long v;
        if (!L.v[i].label_str) continue;
        if (!parse_int(L.v[i].label_str, &v))
            all_int = 0;
        else if (v < 0 || v >= 100000) {
            s = ss_seterr(SS_ERR_RANGE, "%s:%d: label %ld out of range (0..99999, or -1 for unlabelled)",
                          path, L.v[i].line, v);
            goto done;
        } else if (v > maxlab)
            maxlab = v;
    }
    if (all_int) {
        for (int64_t i = 0; i < L.n; i++) {
            long v;
            if (L.v[i].label_str && parse_int(L.v[i].label_str, &v)) L.v[i].label = (int32_t)v;
        }
        if (maxlab >= 0 && (s = ss__set_classes(out, (int)maxlab + 1, NULL)) != SS_OK) goto done;
    } else {
        names = malloc((size_t)L.n * sizeof(char *));
        if (!names) {
            s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        for (int64_t i = 0; i < L.n; i++)
            if (L.v[i].label_str) names[nnames++] = L.v[i].label_str;
        qsort(names, (size_t)nnames, sizeof *names, cmp_str);
        int64_t u = 0;
        for (int64_t i = 0; i < nnames; i++)
            if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
        nnames = u;
        if (nnames > 100000) {
            s = ss_seterr(SS_ERR_RANGE, "%s: %lld distinct class names, more than 100000", path, (long long)nnames);
            goto done;
        }
        for (int64_t i = 0; i < L.n; i++) {
            if (!L.v[i].label_str) continue;
            char **hit = bsearch(&L.v[i].label_str, names, (size_t)nnames, sizeof *names, cmp_str);
            L.v[i].label = (int32_t)(hit - names);
        }
        if ((s = ss__set_classes(out, (int)nnames, (const char *const *)names)) != SS_OK) goto done;
    }
    s = decode_entries(&L, path, cfg, out);
done:
    free(names); /* the strings belong to L */
    list_free(&L);
    free(text);
    return s;
}
