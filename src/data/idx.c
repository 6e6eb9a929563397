/* IDX reader (MNIST / Fashion-MNIST), plain or gzip (zlib detects gzip by
 * its magic). Declared sizes are checked against the file's actual content
 * size before anything is allocated:
 *   - plain file: the file size;
 *   - gzip: the trailer's ISIZE (uncompressed size mod 2^32); when it does
 *     not match, the stream is decompressed once to count its real size. */
#include "data/data_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

int ss__idx_find(const char *dir, int test, char *images, char *labels, size_t n)
{
    const char *pre = test ? "t10k" : "train";
    char name[64];
    images[0] = labels[0] = '\0';
    for (int gz = 0; gz < 2; gz++) {
        snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", pre, gz ? ".gz" : "");
        if (!images[0] && ss__join(images, n, dir, name) == SS_OK && !ss__is_file(images)) images[0] = '\0';
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", pre, gz ? ".gz" : "");
        if (!labels[0] && ss__join(labels, n, dir, name) == SS_OK && !ss__is_file(labels)) labels[0] = '\0';
    }
    return images[0] != '\0';
}

typedef struct idx_file {
    const char *path;
    gzFile g;
    int gzip;
    uint64_t disk_size;  /* bytes on disk */
    uint32_t isize;      /* gzip trailer: uncompressed size mod 2^32 */
} idx_file;

static void idx_close(idx_file *f)
{
    if (f->g) gzclose(f->g);
    f->g = NULL;
}

static ss_status idx_open(idx_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[4] = {0};
    size_t got = fread(m, 1, 2, fp);
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return ss_seterr(SS_ERR_IO, "%s: cannot seek", path);
    }
    long sz = ftell(fp);
    f->disk_size = sz > 0 ? (uint64_t)sz : 0;
    f->gzip = got == 2 && m[0] == 0x1f && m[1] == 0x8b;
    if (f->gzip && f->disk_size >= 18 && fseek(fp, -4, SEEK_END) == 0 && fread(m, 1, 4, fp) == 4)
        f->isize = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
    fclose(fp);
    f->g = gzopen(path, "rb");
    if (!f->g) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(f->g, 1 << 17);
    return SS_OK;
}

/* Read exactly n bytes; *got receives how many were read. */
static ss_status idx_read(idx_file *f, void *buf, size_t n, size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        size_t want = n - done > (1u << 30) ? (1u << 30) : n - done;
        int k = gzread(f->g, p + done, (unsigned)want);
        if (k < 0) {
            int err;
            const char *msg = gzerror(f->g, &err);
            *got = done;
            return ss_seterr(SS_ERR_FORMAT, "%s: corrupt gzip data after %zu bytes: %s", f->path, done, msg);
        }
        if (k == 0) {
            int err;
            gzerror(f->g, &err);
            if (err == Z_BUF_ERROR) {
                *got = done;
                return ss_seterr(SS_ERR_FORMAT, "%s: truncated gzip stream after %zu bytes", f->path, done);
            }
            break;
        }
        done += (size_t)k;
    }
    *got = done;
    return SS_OK;
}

/* Actual content size (decompressed for gzip), given that the header
 * declares `expected` bytes in total. */
static ss_status idx_content_size(idx_file *f, uint64_t expected, uint64_t *size)
{
    if (!f->gzip) {
        *size = f->disk_size;
        return SS_OK;
    }
    /* Deflate cannot expand beyond ~1032:1; with a matching trailer the
     * declared size is taken as real (a short read is still caught). */
    if ((uint32_t)expected == f->isize && expected / 1032 <= f->disk_size) {
        *size = expected;
        return SS_OK;
    }
    gzFile g = gzopen(f->path, "rb");
    if (!g) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    static _Thread_local unsigned char tmp[1 << 16];
    uint64_t total = 0;
    for (;;) {
        int k = gzread(g, tmp, sizeof tmp);
        if (k < 0) {
            int err;
            const char *msg = gzerror(g, &err);
            ss_status s = ss_seterr(SS_ERR_FORMAT, "%s: corrupt or truncated gzip data after %llu bytes: %s",
                                    f->path, (unsigned long long)total, msg);
            gzclose(g);
            return s;
        }
        if (k == 0) {
            int err;
            gzerror(g, &err);
            if (err == Z_BUF_ERROR) {
                gzclose(g);
                return ss_seterr(SS_ERR_FORMAT, "%s: truncated gzip stream after %llu bytes", f->path,
                                 (unsigned long long)total);
            }
            break;
        }
        total += (uint64_t)k;
    }
    gzclose(g);
    *size = total;
    return SS_OK;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Read magic + dims. */
static ss_status idx_header(idx_file *f, int want_ndim, uint32_t *dims)
{
    unsigned char h[16];
    size_t got = 0;
    size_t hlen = 4 + 4 * (size_t)want_ndim;
    ss_status s = idx_read(f, h, hlen, &got);
    if (s != SS_OK) return s;
    if (got < 4)
        return ss_seterr(SS_ERR_FORMAT, "%s: truncated IDX file (%zu bytes, no 4-byte magic)", f->path, got);
    uint32_t magic = be32(h), expect = 0x00000800u | (uint32_t)want_ndim;
    if (magic != expect)
        return ss_seterr(SS_ERR_FORMAT,
                         "%s: wrong IDX magic 0x%08x (expected 0x%08x: unsigned bytes, %d dims)",
                         f->path, magic, expect, want_ndim);
    if (got < hlen)
        return ss_seterr(SS_ERR_FORMAT, "%s: truncated IDX header (%zu of %zu bytes)", f->path, got, hlen);
    for (int i = 0; i < want_ndim; i++) dims[i] = be32(h + 4 + 4 * i);
    return SS_OK;
}

ss_status ss__load_idx_file(const char *images_path, const char *labels_path, int fashion,
                            const ss_load_cfg *cfg, ss_dataset *out)
{
    idx_file fi, fl;
    memset(&fl, 0, sizeof fl);
    uint8_t *raw = NULL, *lab8 = NULL;
    ss_status s = idx_open(&fi, images_path);
    if (s != SS_OK) goto done;
    uint32_t dims[3];
    if ((s = idx_header(&fi, 3, dims)) != SS_OK) goto done;
    uint32_t n = dims[0], h = dims[1], w = dims[2];
    if (h == 0 || w == 0 || h > 65536 || w > 65536) {
        s = ss_seterr(SS_ERR_FORMAT, "%s: IDX image size %ux%u out of range (1..65536)", images_path, h, w);
        goto done;
    }
    if (n > INT32_MAX) {
        s = ss_seterr(SS_ERR_FORMAT, "%s: IDX header says %u images, more than 2^31-1", images_path, n);
        goto done;
    }
    size_t per = (size_t)h * w, body, total;
    if (ss_mul_overflow(per, n, &body) || ss_add_overflow(body, 16, &total)) {
        s = ss_seterr(SS_ERR_FORMAT, "%s: IDX header dims %u x %u x %u overflow the size type",
                      images_path, n, h, w);
        goto done;
    }
    uint64_t actual;
    if ((s = idx_content_size(&fi, total, &actual)) != SS_OK) goto done;
    if (actual != total) {
        s = ss_seterr(SS_ERR_FORMAT,
                      "%s: IDX header says %u images of %ux%u (%zu bytes with header) but the file "
                      "holds %llu bytes",
                      images_path, n, h, w, total, (unsigned long long)actual);
        goto done;
    }
    int64_t nuse = n;
    if (cfg->max_images > 0 && cfg->max_images < nuse) nuse = cfg->max_images;

    /* Labels: header and count first, before allocating pixels. */
    if (labels_path) {
        if ((s = idx_open(&fl, labels_path)) != SS_OK) goto done;
        uint32_t ln;
        if ((s = idx_header(&fl, 1, &ln)) != SS_OK) goto done;
        if (ln != n) {
            s = ss_seterr(SS_ERR_FORMAT, "%s: %u labels but %s has %u images", labels_path, ln,
                          images_path, n);
            goto done;
        }
        uint64_t lact;
        if ((s = idx_content_size(&fl, (uint64_t)ln + 8, &lact)) != SS_OK) goto done;
        if (lact != (uint64_t)ln + 8) {
            s = ss_seterr(SS_ERR_FORMAT,
                          "%s: IDX header says %u labels (%llu bytes with header) but the file holds %llu bytes",
                          labels_path, ln, (unsigned long long)ln + 8, (unsigned long long)lact);
            goto done;
        }
    }

    int c, oh, ow;
    size_t obytes, rbytes;
    if ((s = ss__out_shape(cfg, images_path, nuse, 1, (int)h, (int)w, &c, &oh, &ow, &obytes)) != SS_OK)
        goto done;
    rbytes = (size_t)nuse * per;
    if (rbytes > cfg->cap) {
        s = ss_seterr(SS_ERR_NOMEM, "%s: %lld images of %ux%u need %zu bytes, over the %zu-byte cap",
                      images_path, (long long)nuse, h, w, rbytes, cfg->cap);
        goto done;
    }
    raw = malloc(rbytes ? rbytes : 1);
    out->labels = malloc((size_t)(nuse ? nuse : 1) * sizeof(int32_t));
    if (!raw || !out->labels) {
        s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %zu bytes of images", images_path, rbytes);
        goto done;
    }
    size_t got;
    if ((s = idx_read(&fi, raw, rbytes, &got)) != SS_OK) goto done;
    if (got != rbytes) {
        s = ss_seterr(SS_ERR_FORMAT, "%s: truncated: IDX header says %u images of %ux%u but the data ends after %zu bytes",
                      images_path, n, h, w, got + 16);
        goto done;
    }

    int fixed_classes = fashion ? 10 : 0;
    int maxlab = -1;
    if (labels_path) {
        lab8 = malloc((size_t)(nuse ? nuse : 1));
        if (!lab8) {
            s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", labels_path);
            goto done;
        }
        if ((s = idx_read(&fl, lab8, (size_t)nuse, &got)) != SS_OK) goto done;
        if (got != (size_t)nuse) {
            s = ss_seterr(SS_ERR_FORMAT, "%s: truncated: label data ends after %zu labels", labels_path, got);
            goto done;
        }
        for (int64_t i = 0; i < nuse; i++) {
            if (fixed_classes && lab8[i] >= fixed_classes) {
                s = ss_seterr(SS_ERR_RANGE, "%s: label %d of image %lld is out of range for %d classes",
                              labels_path, lab8[i], (long long)i, fixed_classes);
                goto done;
            }
            out->labels[i] = lab8[i];
            if (lab8[i] > maxlab) maxlab = lab8[i];
        }
    } else {
        for (int64_t i = 0; i < nuse; i++) out->labels[i] = -1;
    }

    if (fashion && labels_path)
        s = ss__set_classes(out, 10, fashion_names);
    else if (labels_path)
        s = ss__set_classes(out, maxlab + 1 > 10 ? maxlab + 1 : 10, NULL);
    if (s != SS_OK) goto done;

    out->n = nuse;
    out->c = c;
    out->h = oh;
    out->w = ow;
    if (c == 1 && oh == (int)h && ow == (int)w) {
        out->pixels = raw;
        raw = NULL;
    } else {
        out->pixels = malloc(obytes ? obytes : 1);
        if (!out->pixels) {
            s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %zu bytes of images", images_path, obytes);
            goto done;
        }
        size_t oper = (size_t)c * oh * ow;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nuse; i++)
            ss__img_to_chw(raw + (size_t)i * per, 1, (int)h, (int)w, 0, out->pixels + (size_t)i * oper, c,
                           oh, ow);
    }
    ss__set_source(out, images_path);
    s = SS_OK;
done:
    idx_close(&fi);
    idx_close(&fl);
    free(raw);
    free(lab8);
    return s;
}
