/* Class-balanced labelled subsets, validation splits, index files. */
#include "selfsup/data.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBSET_STREAM 0x5375627365744ull /* "Subset" */
#define SPLIT_STREAM 0x53706c6974ull     /* "Split" */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Groups indices by label. ngroups = nclasses + 1, the last group holding
 * unlabelled (-1) images. Group g is order[start[g] .. start[g+1]). */
typedef struct groups {
    int ng;
    int64_t *start;
    int32_t *order;
} groups;

static void groups_free(groups *g)
{
    free(g->start);
    free(g->order);
}

static int dataset_nclasses(const ss_dataset *d)
{
    int nc = d->nclasses;
    if (d->labels)
        for (int64_t i = 0; i < d->n; i++)
            if (d->labels[i] >= nc) nc = d->labels[i] + 1;
    return nc;
}

static ss_status group_by_label(const ss_dataset *d, const int32_t *idx, int64_t n, groups *g)
{
    memset(g, 0, sizeof *g);
    int nc = dataset_nclasses(d);
    g->ng = nc + 1;
    g->start = calloc((size_t)g->ng + 1, sizeof(int64_t));
    g->order = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    int64_t *fill = calloc((size_t)g->ng, sizeof(int64_t));
    if (!g->start || !g->order || !fill) {
        free(fill);
        groups_free(g);
        return ss_seterr(SS_ERR_NOMEM, "out of memory grouping %lld indices", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t j = idx ? idx[i] : (int32_t)i;
        if (j < 0 || j >= d->n) {
            free(fill);
            groups_free(g);
            return ss_seterr(SS_ERR_RANGE, "index %d at position %lld is outside the data set (0..%lld)", j,
                             (long long)i, (long long)d->n - 1);
        }
        int32_t lab = d->labels ? d->labels[j] : -1;
        g->start[(lab < 0 ? nc : lab) + 1]++;
    }
    for (int k = 0; k < g->ng; k++) g->start[k + 1] += g->start[k];
    for (int64_t i = 0; i < n; i++) {
        int32_t j = idx ? idx[i] : (int32_t)i;
        int32_t lab = d->labels ? d->labels[j] : -1;
        int k = lab < 0 ? nc : lab;
        g->order[g->start[k] + fill[k]++] = j;
    }
    free(fill);
    return SS_OK;
}

/* Shuffle group k with a stream derived from (seed, tag, k). */
static void shuffle_group(groups *g, int k, uint64_t seed, uint64_t tag)
{
    ss_rng r;
    ss_rng_seed(&r, seed ^ tag, (uint64_t)k);
    ss_rng_shuffle_i32(&r, g->order + g->start[k], g->start[k + 1] - g->start[k]);
}

/* "P%", "K/class" or "all" -> *pct (or -1) and *per_class (or -1). */
static ss_status parse_spec(const char *spec, double *pct, long *per_class)
{
    *pct = -1;
    *per_class = -1;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", spec);
    char *s = buf;
    while (isspace((unsigned char)*s)) s++;
    size_t L = strlen(s);
    while (L && isspace((unsigned char)s[L - 1])) s[--L] = '\0';
    char *end;
    if (strcmp(s, "all") == 0) {
        *pct = 100;
    } else if (L > 1 && s[L - 1] == '%') {
        s[L - 1] = '\0';
        errno = 0;
        *pct = strtod(s, &end);
        if (*end || errno || end == s || !(*pct > 0 && *pct <= 100))
            return ss_seterr(SS_ERR_INVALID, "subset \"%s\": percentage must be in (0, 100]", spec);
    } else if (L > 6 && strcmp(s + L - 6, "/class") == 0) {
        s[L - 6] = '\0';
        errno = 0;
        *per_class = strtol(s, &end, 10);
        if (*end || errno || end == s || *per_class <= 0 || *per_class > 100000000)
            return ss_seterr(SS_ERR_INVALID, "subset \"%s\": count per class must be a positive integer", spec);
    } else {
        return ss_seterr(SS_ERR_INVALID, "subset \"%s\": expected \"P%%\" (e.g. 1%%, 10%%, 100%%), \"K/class\" or \"all\"",
                         spec);
    }
    return SS_OK;
}

ss_status ss_subset_check(const char *spec)
{
    double pct;
    long k;
    if (!spec) return ss_seterr(SS_ERR_INVALID, "ss_subset_check: NULL spec");
    return parse_spec(spec, &pct, &k);
}

ss_status ss_subset_parse_draw_from(const ss_dataset *d, const int32_t *pool, int64_t npool, const char *spec,
                                    uint64_t seed, int32_t **idx, int64_t *n)
{
    if (!d || !spec || !idx || !n) return ss_seterr(SS_ERR_INVALID, "ss_subset_parse_draw: NULL argument");
    *idx = NULL;
    *n = 0;
    if (!pool) npool = d->n;
    if (npool < 0) return ss_seterr(SS_ERR_INVALID, "subset \"%s\": negative pool size", spec);
    double pct = -1;
    long per_class = -1;
    ss_status ps = parse_spec(spec, &pct, &per_class);
    if (ps) return ps;
    if (!d->labels) return ss_seterr(SS_ERR_INVALID, "subset \"%s\": %s has no labels", spec, d->source);

    groups g;
    ss_status st = group_by_label(d, pool, npool, &g);
    if (st != SS_OK) return st;
    int nc = g.ng - 1;
    int64_t nlabelled = g.start[nc];
    if (nc == 0 || nlabelled == 0) {
        groups_free(&g);
        return ss_seterr(SS_ERR_INVALID, "subset \"%s\": %s has no labelled images", spec, d->source);
    }
    int64_t quota;
    int cap_to_class = 0;
    if (per_class > 0) {
        quota = per_class;
    } else if (pct >= 100) {
        quota = -1; /* everything labelled */
    } else {
        double total = (double)npool * pct / 100.0;
        quota = (int64_t)llround(total / nc);
        if (quota < 1) quota = 1;
        cap_to_class = 1;
    }
    int64_t count = 0;
    for (int k = 0; k < nc; k++) {
        int64_t have = g.start[k + 1] - g.start[k];
        if (quota < 0) {
            count += have;
        } else if (have < quota) {
            if (!cap_to_class) {
                const char *nm = k < d->nclasses && d->class_names ? d->class_names[k] : "?";
                groups_free(&g);
                return ss_seterr(SS_ERR_RANGE, "subset \"%s\": class %d (%s) has only %lld images", spec, k, nm,
                                 (long long)have);
            }
            count += have;
        } else {
            count += quota;
        }
    }
    int32_t *out = malloc((size_t)(count ? count : 1) * sizeof(int32_t));
    if (!out) {
        groups_free(&g);
        return ss_seterr(SS_ERR_NOMEM, "subset \"%s\": out of memory", spec);
    }
    int64_t at = 0;
    for (int k = 0; k < nc; k++) {
        int64_t have = g.start[k + 1] - g.start[k];
        int64_t take = quota < 0 || have < quota ? have : quota;
        if (take < have) shuffle_group(&g, k, seed, SUBSET_STREAM);
        memcpy(out + at, g.order + g.start[k], (size_t)take * sizeof(int32_t));
        at += take;
    }
    groups_free(&g);
    qsort(out, (size_t)count, sizeof *out, cmp_i32);
    *idx = out;
    *n = count;
    return SS_OK;
}

ss_status ss_subset_parse_draw(const ss_dataset *d, const char *spec, uint64_t seed, int32_t **idx, int64_t *n)
{
    return ss_subset_parse_draw_from(d, NULL, 0, spec, seed, idx, n);
}

ss_status ss_split_train_val(const ss_dataset *d, const int32_t *idx, int64_t n, double val_frac, uint64_t seed,
                             int32_t **train_idx, int64_t *ntrain, int32_t **val_idx, int64_t *nval)
{
    if (!d || !train_idx || !ntrain || !val_idx || !nval)
        return ss_seterr(SS_ERR_INVALID, "ss_split_train_val: NULL argument");
    *train_idx = *val_idx = NULL;
    *ntrain = *nval = 0;
    if (!(val_frac >= 0 && val_frac < 1))
        return ss_seterr(SS_ERR_INVALID, "validation fraction %g is not in [0, 1)", val_frac);
    if (!idx) n = d->n;
    if (n < 0) return ss_seterr(SS_ERR_INVALID, "ss_split_train_val: negative count");
    groups g;
    ss_status st = group_by_label(d, idx, n, &g);
    if (st != SS_OK) return st;
    int32_t *tr = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    int32_t *va = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!tr || !va) {
        free(tr);
        free(va);
        groups_free(&g);
        return ss_seterr(SS_ERR_NOMEM, "ss_split_train_val: out of memory");
    }
    int64_t nt = 0, nv = 0;
    for (int k = 0; k < g.ng; k++) {
        int64_t have = g.start[k + 1] - g.start[k];
        int64_t take = (int64_t)llround((double)have * val_frac);
        if (take > have) take = have;
        shuffle_group(&g, k, seed, SPLIT_STREAM);
        const int32_t *o = g.order + g.start[k];
        memcpy(va + nv, o, (size_t)take * sizeof(int32_t));
        memcpy(tr + nt, o + take, (size_t)(have - take) * sizeof(int32_t));
        nv += take;
        nt += have - take;
    }
    groups_free(&g);
    qsort(tr, (size_t)nt, sizeof *tr, cmp_i32);
    qsort(va, (size_t)nv, sizeof *va, cmp_i32);
    *train_idx = tr;
    *val_idx = va;
    *ntrain = nt;
    *nval = nv;
    return SS_OK;
}

int32_t *ss_indices_spread(int64_t total, int64_t n)
{
    if (n <= 0 || n > total || total > INT32_MAX) return NULL;
    int32_t *idx = malloc((size_t)n * sizeof(int32_t));
    if (idx)
        for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)(i * total / n);
    return idx;
}

ss_status ss_indices_write(const char *path, const int32_t *idx, int64_t n)
{
    if (!path || (n > 0 && !idx)) return ss_seterr(SS_ERR_INVALID, "ss_indices_write: NULL argument");
    FILE *f = fopen(path, "w");
    if (!f) return ss_seterr(SS_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    for (int64_t i = 0; i < n; i++) fprintf(f, "%d\n", idx[i]);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return ss_seterr(SS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return SS_OK;
}

ss_status ss_indices_read(const char *path, int64_t limit, int32_t **idx, int64_t *n)
{
    if (!path || !idx || !n) return ss_seterr(SS_ERR_INVALID, "ss_indices_read: NULL argument");
    *idx = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int32_t *v = NULL;
    int64_t cnt = 0, cap = 0;
    char line[64];
    int lineno = 0;
    ss_status s = SS_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (!*p) continue;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        if (*end || errno || end == p || x < 0 || x > INT32_MAX || (limit > 0 && x >= limit)) {
            s = ss_seterr(SS_ERR_FORMAT, "%s:%d: expected an index in [0, %lld)", path, lineno,
                          (long long)(limit > 0 ? limit : (int64_t)INT32_MAX + 1));
            break;
        }
        if (cnt == cap) {
            int64_t nc = cap ? cap * 2 : 1024;
            int32_t *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) {
                s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            v = nv;
            cap = nc;
        }
        v[cnt++] = (int32_t)x;
    }
    fclose(f);
    if (s != SS_OK) {
        free(v);
        return s;
    }
    *idx = v ? v : malloc(sizeof(int32_t));
    *n = cnt;
    return SS_OK;
}
