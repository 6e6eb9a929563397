/* k-NN and linear-probe protocols on frozen features. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/knn.h"

static void l2norm_rows(float *x, int64_t n, int D)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)x[i * D + d] * x[i * D + d];
        float inv = (float)(1.0 / fmax(sqrt(s), 1e-12));
        for (int d = 0; d < D; d++) x[i * D + d] *= inv;
    }
}

ss_status ss_knn_classify(float *bank, const int32_t *by, int64_t nb, float *q, const int32_t *qy, int64_t nq, int D,
                          int C, float T, double *acc20, double *acc200)
{
    if (nb <= 0 || nq <= 0) return ss_seterr(SS_ERR_INVALID, "knn: empty bank or query set");
    l2norm_rows(bank, nb, D);
    l2norm_rows(q, nq, D);
    const int64_t QB = 256;
    float *sim = malloc(sizeof(float) * (size_t)(QB * nb));
    if (!sim) return ss_seterr(SS_ERR_NOMEM, "knn: out of memory for %lld x %lld similarities", (long long)QB, (long long)nb);
    int ks[2] = {20, 200};
    int64_t hits[2] = {0, 0}, total = 0;
    for (int64_t q0 = 0; q0 < nq; q0 += QB) {
        int64_t m = nq - q0 < QB ? nq - q0 : QB;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nb, D, 1.0f, q + q0 * D, D, bank, D, 0.0f, sim,
                    (int)nb);
#pragma omp parallel for schedule(static) reduction(+ : hits[:2])
        for (int64_t i = 0; i < m; i++) {
            const float *s = sim + i * nb;
            int kmax = nb < 200 ? (int)nb : 200;
            /* Partial selection of the kmax largest (insertion into a sorted list). */
            float topv[200];
            int32_t topi[200];
            int cnt = 0;
            for (int64_t j = 0; j < nb; j++) {
                float v = s[j];
                if (cnt == kmax && v <= topv[cnt - 1]) continue;
                int p = cnt < kmax ? cnt++ : kmax - 1;
                while (p > 0 && topv[p - 1] < v) {
                    topv[p] = topv[p - 1];
                    topi[p] = topi[p - 1];
                    p--;
                }
                topv[p] = v;
                topi[p] = (int32_t)j;
            }
            for (int t = 0; t < 2; t++) {
                int k = ks[t] < cnt ? ks[t] : cnt;
                double votes[1024] = {0};
                for (int r = 0; r < k; r++) {
                    int y = by[topi[r]];
                    if (y >= 0 && y < C && y < 1024) votes[y] += exp(topv[r] / T);
                }
                int best = 0;
                for (int c = 1; c < C && c < 1024; c++)
                    if (votes[c] > votes[best]) best = c;
                hits[t] += best == qy[q0 + i];
            }
        }
        total += m;
    }
    free(sim);
    *acc20 = (double)hits[0] / (double)total;
    *acc200 = (double)hits[1] / (double)total;
    return SS_OK;
}

ss_status ss_knn_eval(const ss_model *m, const ss_dataset *train, const int32_t *idx, int64_t n, const ss_dataset *test,
                      int64_t max_test, float T, double *acc20, double *acc200)
{
    int D = m->enc->feat_dim;
    int64_t nq = test->n < max_test || max_test <= 0 ? test->n : max_test;
    if (!idx) n = train->n;
    float *bank = malloc(sizeof(float) * (size_t)(n * D)), *q = malloc(sizeof(float) * (size_t)(nq * D));
    int32_t *by = malloc(sizeof(int32_t) * (size_t)n);
    /* a part of the test set: spread over it (test folders are class-ordered) */
    int32_t *qidx = nq < test->n ? ss_indices_spread(test->n, nq) : NULL;
    int32_t *qy = qidx ? malloc(sizeof(int32_t) * (size_t)nq) : NULL;
    ss_status s = SS_OK;
    if (!bank || !q || !by || (nq < test->n && (!qidx || !qy))) s = ss_seterr(SS_ERR_NOMEM, "knn: out of memory");
    if (!s) s = ss_extract_features(m, train, idx, n, 256, bank);
    if (!s) s = ss_extract_features(m, test, qidx, nq, 256, q);
    if (!s) {
        for (int64_t i = 0; i < n; i++) by[i] = train->labels[idx ? idx[i] : i];
        for (int64_t i = 0; qidx && i < nq; i++) qy[i] = test->labels[qidx[i]];
        s = ss_knn_classify(bank, by, n, q, qidx ? qy : test->labels, nq, D, train->nclasses, T, acc20, acc200);
    }
    free(bank);
    free(q);
    free(by);
    free(qidx);
    free(qy);
    return s;
}

/* ---- linear probe ------------------------------------------------------------------ */
/* Train softmax regression W [C,D], b [C] with AdamW on (x,y); returns
 * accuracy on (xv,yv). */
static ss_status train_linear(const float *x, const int32_t *y, int64_t n, int D, int C, float wd, int epochs,
                              uint64_t seed, const float *xv, const int32_t *yv, int64_t nv, double *acc)
{
    ss_params *p = ss_params_new();
    ss_linear_layer lin;
    ss_status s = ss_linear_init(&lin, p, "head", D, C, 1);
    if (!s) s = ss_params_finalize(p);
    if (s) {
        ss_params_free(p);
        return s;
    }
    ss_params_init(p, SS_INIT_TORCH_DEFAULT, seed);
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    oc.weight_decay = wd;
    ss_optimizer *opt = NULL;
    ss_graph *g = ss_graph_new();
    if ((s = ss_opt_new(p, &oc, &opt)) || !g) goto out;
    int64_t B = 256, steps_per = (n + B - 1) / B, total = steps_per * epochs, step = 0;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
    ss_rng r;
    ss_rng_seed(&r, seed, 77);
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int e = 0; e < epochs; e++) {
        ss_rng_shuffle_i32(&r, perm, n);
        for (int64_t b0 = 0; b0 < n; b0 += B) {
            int64_t m = n - b0 < B ? n - b0 : B;
            ss_graph_reset(g);
            ss_params_zero_grad(p);
            ss_tensor *xb = ss_new2(g, m, D);
            int32_t *yb = ss_arena_alloc(ss_graph_arena(g), sizeof(int32_t) * (size_t)m);
            for (int64_t i = 0; i < m; i++) {
                memcpy(xb->data + i * D, x + (int64_t)perm[b0 + i] * D, sizeof(float) * (size_t)D);
                yb[i] = y[perm[b0 + i]];
            }
            ss_tensor *loss = ss_cross_entropy(g, ss_linear_forward(g, &lin, xb), yb, 0.0f);
            if (!loss || (s = ss_backward(g, loss))) {
                if (!s) s = ss_seterr(SS_ERR_INVALID, "probe: %s", ss_graph_errmsg(g));
                free(perm);
                goto out;
            }
            ss_opt_step(opt, ss_lr_cosine(step++, total, 0, 1e-2f, 0.0f));
        }
    }
    free(perm);
    int64_t hit = 0;
    for (int64_t i = 0; i < nv; i++) {
        int best = 0;
        double bv = -1e300;
        for (int c = 0; c < C; c++) {
            double v = lin.b->data[c];
            for (int d = 0; d < D; d++) v += (double)lin.w->data[c * D + d] * xv[i * D + d];
            if (v > bv) {
                bv = v;
                best = c;
            }
        }
        hit += best == yv[i];
    }
    *acc = nv ? (double)hit / (double)nv : 0;
out:
    ss_opt_free(opt);
    ss_graph_free(g);
    ss_params_free(p);
    return s;
}

ss_status ss_linear_probe(const float *xtr0, const int32_t *ytr, int64_t ntr, const float *xte0, const int32_t *yte,
                          int64_t nte, int D, int C, int epochs, uint64_t seed, double *test_acc, double *chosen_wd,
                          double *val_acc)
{
    float *xtr = malloc(sizeof(float) * (size_t)(ntr * D)), *xte = malloc(sizeof(float) * (size_t)(nte * D));
    if (!xtr || !xte) {
        free(xtr);
        free(xte);
        return ss_seterr(SS_ERR_NOMEM, "probe: out of memory");
    }
    memcpy(xtr, xtr0, sizeof(float) * (size_t)(ntr * D));
    memcpy(xte, xte0, sizeof(float) * (size_t)(nte * D));
    /* Standardise with train statistics. */
    for (int d = 0; d < D; d++) {
        double mu = 0, sq = 0;
        for (int64_t i = 0; i < ntr; i++) mu += xtr[i * D + d];
        mu /= (double)ntr;
        for (int64_t i = 0; i < ntr; i++) sq += (xtr[i * D + d] - mu) * (xtr[i * D + d] - mu);
        float inv = (float)(1.0 / sqrt(sq / (double)ntr + 1e-6));
        for (int64_t i = 0; i < ntr; i++) xtr[i * D + d] = (float)((xtr[i * D + d] - mu) * inv);
        for (int64_t i = 0; i < nte; i++) xte[i * D + d] = (float)((xte[i * D + d] - mu) * inv);
    }
    /* Class-balanced 80/20 split of the labelled set for choosing wd. */
    int32_t *tr = malloc(sizeof(int32_t) * (size_t)ntr), *va = malloc(sizeof(int32_t) * (size_t)ntr);
    int64_t ntr2 = 0, nva = 0;
    int64_t *seen = calloc((size_t)C, sizeof(int64_t));
    for (int64_t i = 0; i < ntr; i++) {
        int y = ytr[i];
        if (y >= 0 && y < C && seen[y]++ % 5 == 4) va[nva++] = (int32_t)i;
        else tr[ntr2++] = (int32_t)i;
    }
    free(seen);
    float *xa = malloc(sizeof(float) * (size_t)(ntr2 * D)), *xb = malloc(sizeof(float) * (size_t)((nva ? nva : 1) * D));
    int32_t *ya = malloc(sizeof(int32_t) * (size_t)ntr2), *yb = malloc(sizeof(int32_t) * (size_t)(nva ? nva : 1));
    for (int64_t i = 0; i < ntr2; i++) {
        memcpy(xa + i * D, xtr + (int64_t)tr[i] * D, sizeof(float) * (size_t)D);
        ya[i] = ytr[tr[i]];
    }
    for (int64_t i = 0; i < nva; i++) {
        memcpy(xb + i * D, xtr + (int64_t)va[i] * D, sizeof(float) * (size_t)D);
        yb[i] = ytr[va[i]];
    }
    const float wds[5] = {0.0f, 1e-4f, 1e-3f, 1e-2f, 1e-1f};
    double best = -1;
    float best_wd = 0;
    ss_status s = SS_OK;
    for (int k = 0; k < 5 && nva > 0 && !s; k++) {
        double a;
        s = train_linear(xa, ya, ntr2, D, C, wds[k], epochs, seed, xb, yb, nva, &a);
        if (!s && a > best) {
            best = a;
            best_wd = wds[k];
        }
    }
    if (!s) s = train_linear(xtr, ytr, ntr, D, C, best_wd, epochs, seed, xte, yte, nte, test_acc);
    if (chosen_wd) *chosen_wd = best_wd;
    if (val_acc) *val_acc = best;
    free(xa);
    free(xb);
    free(ya);
    free(yb);
    free(tr);
    free(va);
    free(xtr);
    free(xte);
    return s;
}
