/* Softmax, log-softmax and losses: cross-entropy (with ignored rows and label
 * smoothing), MSE, and the cosine-similarity matrix.
 *
 * Row ops run in parallel over rows with a static schedule; each row is
 * computed by the same code whatever the thread count. Sums over rows (the
 * losses) are made per row or per fixed block and then added serially in
 * double precision, so no result depends on the thread count. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/graph_internal.h"
#include "ops/nn_internal.h"

#define PAR_MIN 16384 /* elements; below this one thread is faster */
#define SUM_BLOCK 4096

/* Row max, then y = exp(x - max); returns sum(y). */
static inline float exp_row(const float *x, float *y, int64_t D)
{
    float m = ss_row_max(x, D), s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < D; j++) {
        y[j] = ss_exp_nonpos(x[j] - m);
        s += y[j];
    }
    return s;
}

/* log(sum(exp(x))) of one row, stable. */
static inline float logsumexp_row(const float *x, int64_t D)
{
    float m = ss_row_max(x, D), s = 0.0f;
    if (m == -INFINITY) return -INFINITY;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < D; j++) s += ss_exp_nonpos(x[j] - m);
    return m + logf(s);
}

/* ---- softmax / log_softmax ------------------------------------------------------
 * x [..., D] -> same shape, along the last dim. n->i: 0 R, 1 D, 2 log. */
static void softmax_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    int64_t R = n->i[0], D = n->i[1];
    int is_log = (int)n->i[2];
    const float *y = n->out->data, *go = n->out->grad;
    float *gx = ss_grad(g, x);
    if (!gx) return;
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y + r * D, *gr = go + r * D;
        float *dr = gx + r * D;
        float s = 0.0f;
        if (is_log) {
            /* dx = dy - softmax * sum(dy) */
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < D; j++) s += gr[j];
#pragma omp simd
            for (int64_t j = 0; j < D; j++) dr[j] += gr[j] - ss_exp_nonpos(yr[j]) * s;
        } else {
            /* dx = y * (dy - sum(dy * y)) */
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < D; j++) s += gr[j] * yr[j];
#pragma omp simd
            for (int64_t j = 0; j < D; j++) dr[j] += yr[j] * (gr[j] - s);
        }
    }
}

static ss_tensor *softmax_impl(ss_graph *g, ss_tensor *x, int is_log)
{
    const char *name = is_log ? "log_softmax" : "softmax";
    SS_CHECK_IN1(g, x);
    if (x->ndim < 1) return ss_op_error(g, name, "input must have at least 1 dimension");
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t D = x->shape[x->ndim - 1];
    int64_t R = D ? x->numel / D : 0;
    ss_tensor *out = ss_new_like(g, x);
    if (!out) return NULL;
    const float *xd = x->data;
    float *o = out->data;
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * D;
        float *orow = o + r * D;
        if (is_log) {
            float lse = logsumexp_row(xr, D);
#pragma omp simd
            for (int64_t j = 0; j < D; j++) orow[j] = xr[j] - lse;
        } else {
            float inv = 1.0f / exp_row(xr, orow, D);
#pragma omp simd
            for (int64_t j = 0; j < D; j++) orow[j] *= inv;
        }
    }
    ss_node *n = ss_record(g, name, softmax_backward, out, 1, &x);
    if (n) {
        n->i[0] = R;
        n->i[1] = D;
        n->i[2] = is_log;
    }
    return out;
}

ss_tensor *ss_softmax(ss_graph *g, ss_tensor *x) { return softmax_impl(g, x, 0); }
ss_tensor *ss_log_softmax(ss_graph *g, ss_tensor *x) { return softmax_impl(g, x, 1); }

/* ---- cross-entropy ---------------------------------------------------------------
 * logits [N,C], targets[N] in [0,C) or -1 (ignored) -> [1]:
 *   loss_i = (1-ls) * (-log p_{i,y_i}) + ls * mean_c(-log p_{i,c})
 *   loss   = sum over kept rows / number of kept rows (0 when none kept).
 * d loss / d z_{i,c} = (p_{i,c} - (1-ls) [c == y_i] - ls / C) / kept.
 * saved: logsumexp per row (float[N]) then the targets (int32[N]).
 * n->i: 0 N, 1 C, 2 kept. n->f: 0 ls. */
static void cross_entropy_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *z = n->in[0];
    int64_t N = n->i[0], C = n->i[1], kept = n->i[2];
    float ls = n->f[0];
    const float *lse = n->saved;
    const int32_t *tg = (const int32_t *)(lse + N);
    if (kept == 0) return;
    float *gz = ss_grad(g, z);
    if (!gz) return;
    float sc = n->out->grad[0] / (float)kept;
    float off = ls / (float)C, on = 1.0f - ls;
    const float *zd = z->data;
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        if (tg[i] < 0) continue;
        const float *zr = zd + i * C;
        float *dr = gz + i * C;
        float l = lse[i];
#pragma omp simd
        for (int64_t c = 0; c < C; c++) dr[c] += sc * (ss_exp_nonpos(zr[c] - l) - off);
        dr[tg[i]] -= sc * on;
    }
}

ss_tensor *ss_soft_cross_entropy(ss_graph *g, ss_tensor *logits, float *targets, float scale)
{
    if (!logits) return NULL;
    if (logits->ndim != 2) return ss_op_error(g, "soft_cross_entropy", "logits must be [N,C], got %d dims", logits->ndim);
    ss_tensor *ls = ss_log_softmax(g, logits);
    ss_tensor *tt = ss_wrap(g, targets, 2, logits->shape);
    if (!ls || !tt) return NULL;
    return ss_scale(g, ss_sum_all(g, ss_mul(g, ls, tt)), scale);
}

ss_tensor *ss_cross_entropy(ss_graph *g, ss_tensor *logits, const int32_t *targets, float label_smoothing)
{
    SS_CHECK_IN1(g, logits);
    char s1[64];
    if (logits->ndim != 2)
        return ss_op_error(g, "cross_entropy", "logits must be [N,C], got %s",
                           ss_shape_str(logits, s1, sizeof s1));
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (C < 1) return ss_op_error(g, "cross_entropy", "logits have no classes (C=0)");
    if (N > 0 && !targets) return ss_op_error_code(g, SS_ERR_INVALID, "cross_entropy", "targets is NULL");
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return ss_op_error_code(g, SS_ERR_INVALID, "cross_entropy", "label_smoothing=%g outside [0,1]",
                                (double)label_smoothing);
    int64_t kept = 0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] < -1 || targets[i] >= C)
            return ss_op_error_code(g, SS_ERR_RANGE, "cross_entropy",
                                    "target %d at row %lld outside [0,%lld) (-1 = ignore)", targets[i],
                                    (long long)i, (long long)C);
        kept += targets[i] >= 0;
    }
    logits = ss_contiguous(g, logits);
    if (!logits) return NULL;
    int64_t one = 1;
    ss_tensor *out = ss_new(g, 1, &one);
    /* lse[N] | targets[N] | per-row loss[N] (the first two are saved) */
    float *saved = ss_scratch_bytes(g, (size_t)(N ? N : 1) * (2 * sizeof(float) + sizeof(int32_t)));
    if (!out || !saved) return NULL;
    float *lse = saved, *rowloss = saved + 2 * N;
    int32_t *tg = (int32_t *)(saved + N);
    if (N) memcpy(tg, targets, (size_t)N * sizeof(int32_t));
    const float *zd = logits->data;
    float ls = label_smoothing;
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const float *zr = zd + i * C;
        float l = logsumexp_row(zr, C);
        lse[i] = l;
        rowloss[i] = 0.0f;
        if (tg[i] < 0) continue;
        float nll = l - zr[tg[i]];
        float loss = (1.0f - ls) * nll;
        if (ls != 0.0f) {
            float s = 0.0f; /* sum_c (-log p_c) = C*lse - sum_c z_c */
#pragma omp simd reduction(+ : s)
            for (int64_t c = 0; c < C; c++) s += l - zr[c];
            loss += ls * s / (float)C;
        }
        rowloss[i] = loss;
    }
    double acc = 0.0;
    for (int64_t i = 0; i < N; i++) acc += rowloss[i];
    out->data[0] = kept ? (float)(acc / (double)kept) : 0.0f;
    ss_node *n = ss_record(g, "cross_entropy", cross_entropy_backward, out, 1, &logits);
    if (n) {
        n->saved = saved;
        n->i[0] = N;
        n->i[1] = C;
        n->i[2] = kept;
        n->f[0] = ls;
    }
    return out;
}

/* ---- MSE ---------------------------------------------------------------------------
 * a, b: equal shapes -> [1] = mean((a-b)^2). n->i: 0 numel. */
static void mse_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *a = n->in[0], *b = n->in[1];
    int64_t N = n->i[0];
    if (N == 0) return;
    float sc = 2.0f * n->out->grad[0] / (float)N;
    const float *ad = a->data, *bd = b->data;
    float *ga = ss_req(a) ? ss_grad(g, a) : NULL;
    float *gb = ss_req(b) ? ss_grad(g, b) : NULL;
    if ((ss_req(a) && !ga) || (ss_req(b) && !gb)) return;
    if (ga == gb) { /* same tensor: (a-a)^2 is constant */
        return;
    }
    if (ga) {
#pragma omp parallel for simd schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) ga[i] += sc * (ad[i] - bd[i]);
    }
    if (gb) {
#pragma omp parallel for simd schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) gb[i] -= sc * (ad[i] - bd[i]);
    }
}

ss_tensor *ss_mse(ss_graph *g, ss_tensor *a, ss_tensor *b)
{
    SS_CHECK_IN2(g, a, b);
    char s1[64], s2[64];
    if (!ss_shape_equal(a, b))
        return ss_op_error(g, "mse", "shapes %s and %s differ", ss_shape_str(a, s1, sizeof s1),
                           ss_shape_str(b, s2, sizeof s2));
    a = ss_contiguous(g, a);
    b = ss_contiguous(g, b);
    if (!a || !b) return NULL;
    int64_t N = a->numel, one = 1;
    int64_t nb = (N + SUM_BLOCK - 1) / SUM_BLOCK;
    ss_tensor *out = ss_new(g, 1, &one);
    double *part = ss_scratch_bytes(g, (size_t)(nb ? nb : 1) * sizeof(double));
    if (!out || !part) return NULL;
    const float *ad = a->data, *bd = b->data;
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (int64_t k = 0; k < nb; k++) {
        int64_t i0 = k * SUM_BLOCK, i1 = i0 + SUM_BLOCK < N ? i0 + SUM_BLOCK : N;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += (ad[i] - bd[i]) * (ad[i] - bd[i]);
        part[k] = s;
    }
    double acc = 0.0;
    for (int64_t k = 0; k < nb; k++) acc += part[k];
    out->data[0] = N ? (float)(acc / (double)N) : 0.0f;
    ss_tensor *in[2] = {a, b};
    ss_node *n = ss_record(g, "mse", mse_backward, out, 2, in);
    if (n) n->i[0] = N;
    return out;
}

/* ---- cosine similarity matrix -------------------------------------------------------
 * a [N,D], b [M,D] -> [N,M], out = an bn^T with an = a / max(||a||, eps) per
 * row (same for b). a and b may be the same tensor (SimCLR): then one
 * normalisation is shared and both gradient paths are summed.
 * saved: an[N*D], bn[M*D] (bn == an when a == b), diva[N], divb[M].
 * n->i: 0 N, 1 M, 2 D, 3 same. n->f: 0 eps. */
typedef struct cos_saved {
    float *an, *bn, *diva, *divb;
} cos_saved;

static void cosine_sim_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *a = n->in[0], *b = n->in[1];
    int64_t N = n->i[0], M = n->i[1], D = n->i[2];
    int same = (int)n->i[3];
    float eps = n->f[0];
    const cos_saved *s = n->saved;
    const float *go = n->out->grad;
    int want_a = ss_req(a), want_b = !same && ss_req(b);
    float *dan = want_a ? ss_scratch_zero(g, N * D) : NULL;
    float *dbn = (want_b || (same && want_a)) ? ss_scratch(g, M * D) : NULL;
    if ((want_a && !dan) || ((want_b || (same && want_a)) && !dbn)) return;
    if (N == 0 || M == 0 || D == 0) return;
    if (dan) /* dAn[N,D] = dO[N,M] Bn[M,D] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)D, (int)M, 1.0f, go, (int)M, s->bn,
                    (int)D, 0.0f, dan, (int)D);
    if (dbn) /* dBn[M,D] = dO^T[M,N] An[N,D] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)D, (int)N, 1.0f, go, (int)M, s->an,
                    (int)D, 0.0f, dbn, (int)D);
    if (same) {
        if (!dan) return;
        for (int64_t i = 0; i < N * D; i++) dan[i] += dbn[i];
    }
    if (dan) {
        float *ga = ss_grad(g, a);
        if (!ga) return;
        ss_l2_rows_backward(s->an, dan, s->diva, ga, N, D, eps);
    }
    if (want_b) {
        float *gb = ss_grad(g, b);
        if (!gb) return;
        ss_l2_rows_backward(s->bn, dbn, s->divb, gb, M, D, eps);
    }
}

ss_tensor *ss_cosine_sim(ss_graph *g, ss_tensor *a, ss_tensor *b, float eps)
{
    SS_CHECK_IN2(g, a, b);
    char s1[64], s2[64];
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1])
        return ss_op_error(g, "cosine_sim", "expected a [N,D] and b [M,D], got %s and %s",
                           ss_shape_str(a, s1, sizeof s1), ss_shape_str(b, s2, sizeof s2));
    if (!(eps > 0.0f)) return ss_op_error_code(g, SS_ERR_INVALID, "cosine_sim", "eps=%g must be > 0", (double)eps);
    int same = a == b;
    a = ss_contiguous(g, a);
    b = same ? a : ss_contiguous(g, b);
    if (!a || !b) return NULL;
    int64_t N = a->shape[0], M = b->shape[0], D = a->shape[1];
    ss_tensor *out = ss_new2(g, N, M);
    cos_saved *s = ss_scratch_bytes(g, sizeof *s);
    if (!out || !s) return NULL;
    s->an = ss_scratch(g, N * D + N);
    if (!s->an) return NULL;
    s->diva = s->an + N * D;
    ss_l2_rows(a->data, s->an, s->diva, N, D, eps);
    if (same) {
        s->bn = s->an;
        s->divb = s->diva;
    } else {
        s->bn = ss_scratch(g, M * D + M);
        if (!s->bn) return NULL;
        s->divb = s->bn + M * D;
        ss_l2_rows(b->data, s->bn, s->divb, M, D, eps);
    }
    if (N > 0 && M > 0) {
        if (D > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)M, (int)D, 1.0f, s->an, (int)D, s->bn,
                        (int)D, 0.0f, out->data, (int)M);
        else
            memset(out->data, 0, (size_t)(N * M) * sizeof(float));
    }
    ss_tensor *in[2] = {a, b};
    ss_node *n = ss_record(g, "cosine_sim", cosine_sim_backward, out, same ? 1 : 2, in);
    if (n) {
        n->saved = s;
        n->i[0] = N;
        n->i[1] = M;
        n->i[2] = D;
        n->i[3] = same;
        n->f[0] = eps;
    }
    return out;
}
