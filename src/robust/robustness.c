/* Accuracy under corruptions, batched through the model in eval mode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph_internal.h"
#include "selfsup/robust.h"

/* The next comma-separated word of *p, spaces around it skipped: its start
 * and length; *p moves past it. 0 at the end of the list. */
static int next_word(const char **p, const char **w, size_t *l)
{
    while (**p == ' ' || **p == ',') (*p)++;
    if (!**p) return 0;
    const char *e = strchr(*p, ',');
    size_t n = e ? (size_t)(e - *p) : strlen(*p);
    *w = *p;
    *p += n;
    while (n && (*w)[n - 1] == ' ') n--;
    *l = n;
    return 1;
}

static int word_is(const char *w, size_t l, const char *name) { return l == strlen(name) && !strncmp(w, name, l); }

static int selected(const ss_corruption *c, const char *only)
{
    if (!only || !*only) return 1;
    const char *p = only, *w;
    size_t l;
    while (next_word(&p, &w, &l))
        if (word_is(w, l, c->name) || word_is(w, l, c->family)) return 1;
    return 0;
}

ss_status ss_robust_check_only(const char *only)
{
    const char *p = only, *w;
    size_t l;
    while (p && next_word(&p, &w, &l)) {
        int hit = 0;
        for (int k = 0; k < ss_corruption_count() && !hit; k++) {
            const ss_corruption *c = ss_corruption_get(k);
            hit = word_is(w, l, c->name) || word_is(w, l, c->family);
        }
        if (!hit) {
            char names[1024] = "", fams[256] = "";
            for (int k = 0; k < ss_corruption_count(); k++) {
                const ss_corruption *c = ss_corruption_get(k);
                size_t n = strlen(names);
                snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", c->name);
                int seen = 0;
                for (int j = 0; j < k; j++) seen |= !strcmp(ss_corruption_get(j)->family, c->family);
                if (!seen) {
                    n = strlen(fams);
                    snprintf(fams + n, sizeof fams - n, "%s%s", n ? ", " : "", c->family);
                }
            }
            return ss_seterr(SS_ERR_INVALID, "robustness: --only '%.*s': expected a family (%s) or a corruption (%s)",
                             (int)(l < 100 ? l : 100), w, fams, names);
        }
    }
    return SS_OK;
}

/* Accuracy of m on images [n,C,H,W] in [0,1] (normalised here). */
static ss_status accuracy(const ss_model *m, ss_graph *g, float *img, const int32_t *y, int64_t n, int c, int h, int w,
                          double *acc)
{
    int64_t plane = (int64_t)h * w, hit = 0, cnt = 0;
    const int64_t B = 500;
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        int64_t b = n - i0 < B ? n - i0 : B;
        ss_graph_reset(g);
        float *x = ss_scratch(g, b * c * plane);
        if (!x) return ss_seterr(SS_ERR_NOMEM, "robustness: out of memory");
        for (int64_t i = 0; i < b; i++)
            for (int ch = 0; ch < c; ch++) {
                float mu = m->mean[ch], inv = m->std[ch] > 0 ? 1.0f / m->std[ch] : 1.0f;
                const float *s = img + ((i0 + i) * c + ch) * plane;
                float *d = x + (i * c + ch) * plane;
                for (int64_t j = 0; j < plane; j++) d[j] = (s[j] - mu) * inv;
            }
        ss_tensor *lo = ss_model_logits(g, m, ss_wrap(g, x, 4, (int64_t[]){b, c, h, w}));
        if (!lo) return ss_seterr(ss_graph_status(g), "robustness: %s", ss_graph_errmsg(g));
        int C = m->nclasses;
        for (int64_t i = 0; i < b; i++) {
            const float *l = lo->data + i * C;
            int best = 0;
            for (int k = 1; k < C; k++)
                if (l[k] > l[best]) best = k;
            if (y[i0 + i] >= 0) {
                hit += best == y[i0 + i];
                cnt++;
            }
        }
    }
    *acc = cnt ? (double)hit / (double)cnt : 0;
    return SS_OK;
}

ss_status ss_robustness_eval(const ss_model *m, const ss_dataset *d, int64_t max_images, uint64_t seed,
                             const char *only, ss_robust_result *r)
{
    memset(r, 0, sizeof *r);
    if (m->nclasses <= 0)
        return ss_seterr(SS_ERR_INVALID, "robustness: the model has no classifier head (a pretrained encoder: "
                                         "fine-tune it first, or use probe or knn)");
    if (!d->labels) return ss_seterr(SS_ERR_INVALID, "%s: robustness needs a labelled test set", d->source);
    ss_status cs = ss_robust_check_only(only);
    if (cs) return cs;
    int64_t n = max_images > 0 && max_images < d->n ? max_images : d->n;
    int c = d->c, h = d->h, w = d->w;
    int64_t img = (int64_t)c * h * w;
    float *clean = malloc(sizeof(float) * (size_t)(n * img)), *buf = malloc(sizeof(float) * (size_t)(n * img));
    ss_graph *g = ss_graph_new();
    ss_status s = SS_OK;
    if (!clean || !buf || !g) {
        s = ss_seterr(SS_ERR_NOMEM, "robustness: out of memory");
        goto out;
    }
    ss_graph_set_training(g, 0);
    ss_graph_set_grad_enabled(g, 0);
    for (int64_t i = 0; i < n * img; i++) clean[i] = (float)d->pixels[i] / 255.0f;
    r->images = n;
    if ((s = accuracy(m, g, clean, d->labels, n, c, h, w, &r->clean))) goto out;
    for (int k = 0; k < ss_corruption_count() && r->n < SS_ROBUST_MAX; k++) {
        const ss_corruption *cr = ss_corruption_get(k);
        if (!selected(cr, only)) continue;
        int j = r->n++;
        r->name[j] = cr->name;
        r->family[j] = cr->family;
        for (int sev = 1; sev <= SS_CORRUPT_SEVERITIES; sev++) {
            memcpy(buf, clean, sizeof(float) * (size_t)(n * img));
            ss_status es = SS_OK;
#pragma omp parallel for schedule(dynamic, 16)
            for (int64_t i = 0; i < n; i++) {
                ss_status e = ss_corrupt_image(cr->name, sev, seed, i, buf + i * img, c, h, w);
                if (e) {
#pragma omp critical
                    es = e;
                }
            }
            if (es) {
                s = es;
                goto out;
            }
            if ((s = accuracy(m, g, buf, d->labels, n, c, h, w, &r->acc[j][sev - 1]))) goto out;
        }
    }
    if (r->n == 0) s = ss_seterr(SS_ERR_INVALID, "robustness: no corruption matches '%s'", only ? only : "");
out:
    free(clean);
    free(buf);
    ss_graph_free(g);
    return s;
}

double ss_robust_mean(const ss_robust_result *r, int i)
{
    double s = 0;
    for (int k = 0; k < SS_CORRUPT_SEVERITIES; k++) s += r->acc[i][k];
    return s / SS_CORRUPT_SEVERITIES;
}

double ss_robust_mca(const ss_robust_result *r)
{
    double s = 0;
    for (int i = 0; i < r->n; i++) s += ss_robust_mean(r, i);
    return r->n ? s / r->n : NAN;
}

double ss_robust_family_drop(const ss_robust_result *r, const char *family)
{
    double s = 0;
    int cnt = 0;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->family[i], family)) {
            s += r->clean - ss_robust_mean(r, i);
            cnt++;
        }
    return cnt ? s / cnt : NAN;
}
