/* CIFAR-10 binary reader: records of 1 label byte + 3x32x32 pixels (CHW).
 * A folder gives data_batch_1..5.bin ("train") or test_batch.bin ("test");
 * class names come from batches.meta.txt when present. */
#include "data/data_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CIFAR_PIX 3072
#define CIFAR_REC 3073

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

/* Read batches.meta.txt in dir into names (up to 256). Returns count, 0 if absent. */
static ss_status read_meta(const char *dir, char ***names, int *count)
{
    char p[4096];
    *names = NULL;
    *count = 0;
    if (ss__join(p, sizeof p, dir, "batches.meta.txt") != SS_OK || !ss__is_file(p)) return SS_OK;
    FILE *f = fopen(p, "rb");
    if (!f) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
    char line[512];
    char **v = calloc(256, sizeof(char *));
    int k = 0, lineno = 0;
    if (!v) {
        fclose(f);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", p);
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t L = strlen(line);
        while (L && isspace((unsigned char)line[L - 1])) line[--L] = '\0';
        char *s = line;
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        if (k == 256) {
            for (int i = 0; i < k; i++) free(v[i]);
            free(v);
            fclose(f);
            return ss_seterr(SS_ERR_FORMAT, "%s: more than 256 class names (line %d)", p, lineno);
        }
        v[k] = strdup(s);
        if (!v[k]) break;
        k++;
    }
    fclose(f);
    *names = v;
    *count = k;
    return SS_OK;
}

/* Count records of one file; checks the size. */
static ss_status cifar_count(const char *path, int64_t *nrec)
{
    uint64_t sz;
    if (ss__file_size(path, &sz) != 0)
        return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (sz == 0 || sz % CIFAR_REC != 0)
        return ss_seterr(SS_ERR_FORMAT,
                         "%s: size %llu bytes is not a positive multiple of the 3073-byte CIFAR-10 "
                         "record (1 label + 3x32x32 pixels)",
                         path, (unsigned long long)sz);
    *nrec = (int64_t)(sz / CIFAR_REC);
    return SS_OK;
}

static ss_status load_files(char **paths, int nfiles, const char *meta_dir, const char *what,
                            const ss_load_cfg *cfg, ss_dataset *out)
{
    int64_t counts[8] = {0}, total = 0;
    for (int i = 0; i < nfiles; i++) {
        ss_status s = cifar_count(paths[i], &counts[i]);
        if (s != SS_OK) return s;
        total += counts[i];
    }
    if (total > INT32_MAX) return ss_seterr(SS_ERR_FORMAT, "%s: more than 2^31-1 images", what);
    int64_t nuse = total;
    if (cfg->max_images > 0 && cfg->max_images < nuse) nuse = cfg->max_images;

    char **names = NULL;
    int nnames = 0;
    ss_status s = read_meta(meta_dir, &names, &nnames);
    if (s != SS_OK) return s;

    int c, h, w;
    size_t obytes;
    uint8_t *rec = NULL;
    if ((s = ss__out_shape(cfg, what, nuse, 3, 32, 32, &c, &h, &w, &obytes)) != SS_OK) goto done;
    out->pixels = malloc(obytes ? obytes : 1);
    out->labels = malloc((size_t)(nuse ? nuse : 1) * sizeof(int32_t));
    rec = malloc((size_t)CIFAR_REC * 1024);
    if (!out->pixels || !out->labels || !rec) {
        s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %zu bytes of images", what, obytes);
        goto done;
    }
    int ncls = nnames ? nnames : 10;
    size_t oper = (size_t)c * h * w;
    int64_t at = 0;
    for (int fidx = 0; fidx < nfiles && at < nuse; fidx++) {
        FILE *f = fopen(paths[fidx], "rb");
        if (!f) {
            s = ss_seterr(SS_ERR_IO, "%s: cannot open: %s", paths[fidx], strerror(errno));
            goto done;
        }
        int64_t r = 0;
        while (r < counts[fidx] && at < nuse) {
            int64_t chunk = counts[fidx] - r;
            if (chunk > 1024) chunk = 1024;
            if (chunk > nuse - at) chunk = nuse - at;
            size_t got = fread(rec, CIFAR_REC, (size_t)chunk, f);
            if (got != (size_t)chunk) {
                fclose(f);
                s = ss_seterr(SS_ERR_IO, "%s: short read at record %lld", paths[fidx], (long long)(r + (int64_t)got));
                goto done;
            }
            for (int64_t j = 0; j < chunk; j++) {
                const uint8_t *p = rec + (size_t)j * CIFAR_REC;
                if (p[0] >= ncls) {
                    fclose(f);
                    s = ss_seterr(SS_ERR_RANGE, "%s: label %d of record %lld is out of range for %d classes",
                                  paths[fidx], p[0], (long long)(r + j), ncls);
                    goto done;
                }
                out->labels[at + j] = p[0];
            }
#pragma omp parallel for schedule(static) if (c != 3 || h != 32 || w != 32)
            for (int64_t j = 0; j < chunk; j++)
                ss__img_to_chw(rec + (size_t)j * CIFAR_REC + 1, 3, 32, 32, 0,
                               out->pixels + (size_t)(at + j) * oper, c, h, w);
            r += chunk;
            at += chunk;
        }
        fclose(f);
    }
    if ((s = ss__set_classes(out, ncls, nnames ? (const char *const *)names : cifar10_names)) != SS_OK)
        goto done;
    out->n = nuse;
    out->c = c;
    out->h = h;
    out->w = w;
    ss__set_source(out, what);
done:
    for (int i = 0; i < nnames; i++) free(names[i]);
    free(names);
    free(rec);
    return s;
}

ss_status ss__load_cifar_dir(const char *dir, const ss_load_cfg *cfg, ss_dataset *out)
{
    char buf[6][4096];
    char *paths[6];
    int n = 0;
    if (cfg->test) {
        if (ss__join(buf[0], sizeof buf[0], dir, "test_batch.bin") != SS_OK) return SS_ERR_INVALID;
        if (!ss__is_file(buf[0]))
            return ss_seterr(SS_ERR_IO, "%s: CIFAR-10 folder has no test_batch.bin for split \"test\"", dir);
        paths[n] = buf[n];
        n++;
    } else {
        int missing = 0;
        for (int k = 1; k <= 5; k++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", k);
            if (ss__join(buf[n], sizeof buf[n], dir, name) != SS_OK) return SS_ERR_INVALID;
            if (!ss__is_file(buf[n])) {
                if (!missing) missing = k;
                continue;
            }
            if (missing)
                return ss_seterr(SS_ERR_IO, "%s: CIFAR-10 folder has %s but no data_batch_%d.bin", dir,
                                 name, missing);
            paths[n] = buf[n];
            n++;
        }
        if (n == 0)
            return ss_seterr(SS_ERR_IO, "%s: CIFAR-10 folder has no data_batch_1.bin for split \"train\"", dir);
    }
    return load_files(paths, n, dir, n == 1 ? paths[0] : dir, cfg, out);
}

ss_status ss__load_cifar_file(const char *path, const ss_load_cfg *cfg, ss_dataset *out)
{
    char dir[4096];
    const char *base = ss__basename(path);
    snprintf(dir, sizeof dir, "%.*s", base > path ? (int)(base - path - 1) : 1, base > path ? path : ".");
    char *paths[1] = {(char *)path};
    return load_files(paths, 1, dir, path, cfg, out);
}
