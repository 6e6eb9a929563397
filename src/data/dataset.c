/* Dataset loading: format detection, shared image conversion, test-split
 * lookup, and freeing. The format readers are idx.c, cifar.c, imgfolder.c. */
#include "data/data_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- paths */

int ss__is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int ss__is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int ss__file_size(const char *p, uint64_t *size)
{
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    *size = (uint64_t)st.st_size;
    return 0;
}

ss_status ss__join(char *buf, size_t n, const char *a, const char *b)
{
    int k;
    if (!a || !*a)
        k = snprintf(buf, n, "%s", b);
    else if (a[strlen(a) - 1] == '/')
        k = snprintf(buf, n, "%s%s", a, b);
    else
        k = snprintf(buf, n, "%s/%s", a, b);
    if (k < 0 || (size_t)k >= n)
        return ss_seterr(SS_ERR_INVALID, "%s/%s: path longer than %zu characters", a, b, n - 1);
    return SS_OK;
}

const char *ss__basename(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int ss__has_image_ext(const char *name)
{
    static const char *ext[] = {"png", "jpg", "jpeg", "bmp", "gif", "tga", "pgm", "ppm", "pnm"};
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    dot++;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t k = 0;
        while (ext[i][k] && dot[k] && tolower((unsigned char)dot[k]) == ext[i][k]) k++;
        if (!ext[i][k] && !dot[k]) return 1;
    }
    return 0;
}

void ss__set_source(ss_dataset *d, const char *p)
{
    snprintf(d->source, sizeof d->source, "%s", p);
}

/* Copy of p without trailing slashes (keeps a lone "/"). */
static void strip_slashes(char *dst, size_t n, const char *p)
{
    snprintf(dst, n, "%s", p);
    size_t k = strlen(dst);
    while (k > 1 && dst[k - 1] == '/') dst[--k] = '\0';
}

/* ------------------------------------------------------- image helpers */

static inline int src_px(const uint8_t *src, int sc, int sh, int sw, int hwc, int ch, int y, int x)
{
    return hwc ? src[((size_t)y * sw + x) * sc + ch] : src[((size_t)ch * sh + y) * sw + x];
}

/* Value of output channel oc at source pixel (y, x) after channel mapping. */
static inline int virt_px(const uint8_t *src, int sc, int sh, int sw, int hwc, int dc, int oc,
                          int y, int x)
{
    if (dc == 1 && sc >= 3) {
        int r = src_px(src, sc, sh, sw, hwc, 0, y, x);
        int g = src_px(src, sc, sh, sw, hwc, 1, y, x);
        int b = src_px(src, sc, sh, sw, hwc, 2, y, x);
        return (r * 77 + g * 150 + b * 29) >> 8;
    }
    if (sc <= 2) return src_px(src, sc, sh, sw, hwc, 0, y, x); /* grey (+alpha) */
    return src_px(src, sc, sh, sw, hwc, oc < sc ? oc : sc - 1, y, x);
}

void ss__img_to_chw(const uint8_t *src, int sc, int sh, int sw, int hwc, uint8_t *dst,
                    int dc, int dh, int dw)
{
    if (dh == sh && dw == sw) {
        for (int oc = 0; oc < dc; oc++)
            for (int y = 0; y < dh; y++)
                for (int x = 0; x < dw; x++)
                    dst[((size_t)oc * dh + y) * dw + x] =
                        (uint8_t)virt_px(src, sc, sh, sw, hwc, dc, oc, y, x);
        return;
    }
    float ry = (float)sh / (float)dh, rx = (float)sw / (float)dw;
    for (int y = 0; y < dh; y++) {
        float fy = ((float)y + 0.5f) * ry - 0.5f;
        if (fy < 0) fy = 0;
        if (fy > (float)(sh - 1)) fy = (float)(sh - 1);
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        float wy = fy - (float)y0;
        for (int x = 0; x < dw; x++) {
            float fx = ((float)x + 0.5f) * rx - 0.5f;
            if (fx < 0) fx = 0;
            if (fx > (float)(sw - 1)) fx = (float)(sw - 1);
            int x0 = (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            float wx = fx - (float)x0;
            for (int oc = 0; oc < dc; oc++) {
                float a = (float)virt_px(src, sc, sh, sw, hwc, dc, oc, y0, x0);
                float b = (float)virt_px(src, sc, sh, sw, hwc, dc, oc, y0, x1);
                float c = (float)virt_px(src, sc, sh, sw, hwc, dc, oc, y1, x0);
                float e = (float)virt_px(src, sc, sh, sw, hwc, dc, oc, y1, x1);
                float v = (a * (1 - wx) + b * wx) * (1 - wy) + (c * (1 - wx) + e * wx) * wy;
                int iv = (int)lrintf(v);
                dst[((size_t)oc * dh + y) * dw + x] = (uint8_t)(iv < 0 ? 0 : iv > 255 ? 255 : iv);
            }
        }
    }
}

ss_status ss__out_shape(const ss_load_cfg *cfg, const char *what, int64_t n, int nc, int nh,
                        int nw, int *c, int *h, int *w, size_t *bytes)
{
    *c = cfg->channels ? cfg->channels : (nc >= 3 ? 3 : 1);
    *h = cfg->th ? cfg->th : nh;
    *w = cfg->tw ? cfg->tw : nw;
    size_t b;
    if (n < 0 || ss_mul_overflow((size_t)n, (size_t)*c, &b) || ss_mul_overflow(b, (size_t)*h, &b) ||
        ss_mul_overflow(b, (size_t)*w, &b))
        return ss_seterr(SS_ERR_NOMEM, "%s: %lld images of %dx%dx%d overflow the size type", what,
                         (long long)n, *c, *h, *w);
    if (b > cfg->cap)
        return ss_seterr(SS_ERR_NOMEM,
                         "%s: %lld images of %dx%dx%d need %zu bytes, over the %zu-byte cap "
                         "(ss_load_opts.max_bytes)",
                         what, (long long)n, *c, *h, *w, b, cfg->cap);
    *bytes = b;
    return SS_OK;
}

ss_status ss__set_classes(ss_dataset *d, int n, const char *const *names)
{
    d->class_names = n > 0 ? calloc((size_t)n, sizeof(char *)) : NULL;
    if (n > 0 && !d->class_names) return ss_seterr(SS_ERR_NOMEM, "out of memory for class names");
    d->nclasses = n;
    for (int i = 0; i < n; i++) {
        char tmp[16];
        const char *s = names ? names[i] : tmp;
        if (!names) snprintf(tmp, sizeof tmp, "%d", i);
        d->class_names[i] = strdup(s);
        if (!d->class_names[i]) return ss_seterr(SS_ERR_NOMEM, "out of memory for class names");
    }
    return SS_OK;
}

/* ------------------------------------------------------------ dispatch */

static int is_cifar_dir(const char *dir)
{
    char p[4096];
    if (ss__join(p, sizeof p, dir, "data_batch_1.bin") == SS_OK && ss__is_file(p)) return 1;
    if (ss__join(p, sizeof p, dir, "test_batch.bin") == SS_OK && ss__is_file(p)) return 1;
    return 0;
}

static int ends_with_ci(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    if (b > a) return 0;
    for (size_t i = 0; i < b; i++)
        if (tolower((unsigned char)s[a - b + i]) != tolower((unsigned char)suf[i])) return 0;
    return 1;
}

static int contains_ci(const char *s, const char *sub)
{
    size_t m = strlen(sub);
    for (; *s; s++) {
        size_t i = 0;
        while (i < m && s[i] && tolower((unsigned char)s[i]) == tolower((unsigned char)sub[i])) i++;
        if (i == m) return 1;
    }
    return 0;
}

static ss_status load_dispatch(const char *path, const ss_load_cfg *cfg, ss_dataset *out, int depth)
{
    char p[4096];
    strip_slashes(p, sizeof p, path);
    struct stat st;
    if (stat(p, &st) != 0)
        return ss_seterr(SS_ERR_IO, "%s: cannot open data set: %s", p, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char im[4096], lb[4096];
        if (ss__idx_find(p, cfg->test, im, lb, sizeof im))
            return ss__load_idx_file(im, lb[0] ? lb : NULL, contains_ci(ss__basename(p), "fashion"),
                                     cfg, out);
        if (is_cifar_dir(p)) return ss__load_cifar_dir(p, cfg, out);
        char sub[4096];
        if (depth == 0 && ss__join(sub, sizeof sub, p, cfg->split) == SS_OK && ss__is_dir(sub)) {
            ss_status s = load_dispatch(sub, cfg, out, depth + 1);
            return s;
        }
        return ss__load_image_folder(p, cfg, out);
    }
    if (!S_ISREG(st.st_mode))
        return ss_seterr(SS_ERR_IO, "%s: not a regular file or directory", p);
    if (ends_with_ci(p, ".csv")) return ss__load_csv(p, cfg, out);
    if (ends_with_ci(p, ".bin")) return ss__load_cifar_file(p, cfg, out);
    if (strstr(ss__basename(p), "images-idx3-ubyte")) {
        /* Labels file: same name with images-idx3 -> labels-idx1, with or without .gz. */
        char lb[4096] = "";
        const char *base = ss__basename(p);
        size_t dirlen = (size_t)(base - p);
        const char *at = strstr(base, "images-idx3-ubyte");
        char cand[4096];
        for (int gz = 0; gz < 2 && !lb[0]; gz++) {
            int k = snprintf(cand, sizeof cand, "%.*slabels-idx1-ubyte%s", (int)(at - p), p,
                             gz ? ".gz" : "");
            if (k > 0 && (size_t)k < sizeof cand && ss__is_file(cand)) snprintf(lb, sizeof lb, "%s", cand);
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", dirlen ? (int)dirlen - 1 : 0, p);
        return ss__load_idx_file(p, lb[0] ? lb : NULL, contains_ci(ss__basename(dir), "fashion"),
                                 cfg, out);
    }
    return ss_seterr(SS_ERR_UNSUPPORTED,
                     "%s: unknown data set format (expected a folder of IDX, CIFAR-10 .bin or "
                     "image files, a .csv list, a .bin CIFAR-10 batch or an *images-idx3-ubyte file)",
                     p);
}

ss_status ss_dataset_load(const char *path, const ss_load_opts *opts, ss_dataset *out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_dataset_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !*path) return ss_seterr(SS_ERR_INVALID, "ss_dataset_load: empty data set path");
    ss_load_opts o = {0};
    if (opts) o = *opts;
    ss_load_cfg cfg = {0};
    cfg.split = o.split ? o.split : "train";
    if (strcmp(cfg.split, "train") != 0 && strcmp(cfg.split, "test") != 0)
        return ss_seterr(SS_ERR_INVALID, "%s: split \"%s\" is not \"train\" or \"test\"", path, cfg.split);
    cfg.test = strcmp(cfg.split, "test") == 0;
    if (o.target_h < 0 || o.target_w < 0 || o.target_h > 65536 || o.target_w > 65536 ||
        ((o.target_h == 0) != (o.target_w == 0)))
        return ss_seterr(SS_ERR_INVALID,
                         "%s: target size %dx%d invalid (both 0 for native, or both in 1..65536)",
                         path, o.target_h, o.target_w);
    if (o.channels != 0 && o.channels != 1 && o.channels != 3)
        return ss_seterr(SS_ERR_INVALID, "%s: channels %d invalid (expected 0, 1 or 3)", path, o.channels);
    if (o.max_images < 0)
        return ss_seterr(SS_ERR_INVALID, "%s: max_images %lld is negative", path, (long long)o.max_images);
    cfg.th = o.target_h;
    cfg.tw = o.target_w;
    cfg.channels = o.channels;
    cfg.max_images = o.max_images;
    cfg.cap = o.max_bytes ? o.max_bytes : SS_DATA_DEFAULT_CAP;
    ss_status s = load_dispatch(path, &cfg, out, 0);
    if (s != SS_OK) {
        ss_dataset_free(out);
        return s;
    }
    return SS_OK;
}

void ss_dataset_free(ss_dataset *d)
{
    if (!d) return;
    free(d->pixels);
    free(d->labels);
    if (d->class_names)
        for (int i = 0; i < d->nclasses; i++) free(d->class_names[i]);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------- test split */

static ss_status put(char *buf, size_t n, const char **split, const char *path, const char *sp)
{
    int k = snprintf(buf, n, "%s", path);
    if (k < 0 || (size_t)k >= n)
        return ss_seterr(SS_ERR_INVALID, "%s: test path does not fit in %zu bytes", path, n);
    if (split) *split = sp;
    return SS_OK;
}

ss_status ss_dataset_default_test_path(const char *train_path, char *buf, size_t n, const char **split)
{
    if (!train_path || !*train_path || !buf || n == 0)
        return ss_seterr(SS_ERR_INVALID, "ss_dataset_default_test_path: empty path or buffer");
    char p[4096], t[4096], im[4096], lb[4096];
    strip_slashes(p, sizeof p, train_path);
    if (ss__is_dir(p)) {
        if (ss__idx_find(p, 1, im, lb, sizeof im)) return put(buf, n, split, p, "test");
        if (ss__join(t, sizeof t, p, "test_batch.bin") == SS_OK && ss__is_file(t))
            return put(buf, n, split, p, "test");
        if (ss__join(t, sizeof t, p, "test") == SS_OK && ss__is_dir(t))
            return put(buf, n, split, p, "test");
        if (strcmp(ss__basename(p), "train") == 0) {
            size_t dl = strlen(p) - 5;
            snprintf(t, sizeof t, "%.*stest", (int)dl, p);
            if (ss__is_dir(t)) return put(buf, n, split, t, "test");
        }
        return ss_seterr(SS_ERR_IO,
                         "%s: no test split found (looked for t10k-images-idx3-ubyte[.gz], "
                         "test_batch.bin, a test/ subfolder and a sibling test/ folder)",
                         p);
    }
    if (ss__is_file(p)) {
        const char *base = ss__basename(p);
        size_t dl = (size_t)(base - p);
        const char *at = strstr(base, "train-images-idx3-ubyte");
        if (at) {
            const char *after = at + strlen("train-");
            for (int gz = 0; gz < 2; gz++) { /* same suffix, then with .gz toggled */
                const char *suffix = after;
                char alt[4096];
                if (gz == 1) {
                    if (ends_with_ci(after, ".gz"))
                        snprintf(alt, sizeof alt, "%.*s", (int)(strlen(after) - 3), after);
                    else
                        snprintf(alt, sizeof alt, "%s.gz", after);
                    suffix = alt;
                }
                int k = snprintf(t, sizeof t, "%.*st10k-%s", (int)(at - p), p, suffix);
                if (k > 0 && (size_t)k < sizeof t && ss__is_file(t)) return put(buf, n, split, t, "test");
            }
        }
        if (strncmp(base, "data_batch_", 11) == 0 && ends_with_ci(base, ".bin")) {
            snprintf(t, sizeof t, "%.*stest_batch.bin", (int)dl, p);
            if (ss__is_file(t)) return put(buf, n, split, t, "test");
        }
        if (ends_with_ci(base, ".csv")) {
            const char *last = NULL, *q = base;
            while ((q = strstr(q, "train")) != NULL) last = q++;
            if (last) {
                snprintf(t, sizeof t, "%.*stest%s", (int)(last - p), p, last + 5);
                if (ss__is_file(t)) return put(buf, n, split, t, "test");
            }
        }
        return ss_seterr(SS_ERR_IO,
                         "%s: no test split found beside this file (looked for t10k-*, "
                         "test_batch.bin or a *test*.csv)",
                         p);
    }
    return ss_seterr(SS_ERR_IO, "%s: cannot open data set: %s", p, strerror(errno));
}
