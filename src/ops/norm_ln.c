/* Row normalisations over the last dimension: layer norm and L2 normalise.
 *
 * Rows are independent, so forward and the input gradient run in parallel
 * over rows (static schedule; every row is computed by the same code whatever
 * the thread count, so the bits do not depend on it). The gamma/beta
 * gradients are reductions over rows: they are summed in fixed blocks of
 * LN_BLOCK rows (partials in parallel, blocks combined serially in order), so
 * they do not depend on the thread count either. */
#include <math.h>
#include <string.h>

#include "core/graph_internal.h"
#include "ops/nn_internal.h"

#define PAR_MIN 16384 /* elements; below this one thread is faster */
#define LN_BLOCK 32   /* rows per partial sum of dgamma/dbeta */

/* ---- layer norm ------------------------------------------------------------
 * x [..., D] (R rows), gamma/beta [D] or NULL -> [..., D]
 * y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps), biased var.
 * saved: mean[R] then rstd[R]. n->i: 0 R, 1 D. */
static void layer_norm_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    int64_t R = n->i[0], D = n->i[1];
    const float *mean = n->saved, *rstd = mean + R;
    const float *xd = x->data, *go = n->out->grad;
    const float *gm = gamma ? gamma->data : NULL;
    if (ss_req(x)) {
        float *gx = ss_grad(g, x);
        if (!gx) return;
        /* dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh)), dxh = dy * gamma */
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = xd + r * D, *gr = go + r * D;
            float *dr = gx + r * D;
            float mu = mean[r], rs = rstd[r], s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
            for (int64_t j = 0; j < D; j++) {
                float dxh = gr[j] * (gm ? gm[j] : 1.0f);
                s1 += dxh;
                s2 += dxh * (xr[j] - mu) * rs;
            }
            s1 /= (float)D;
            s2 /= (float)D;
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                float dxh = gr[j] * (gm ? gm[j] : 1.0f);
                float xh = (xr[j] - mu) * rs;
                dr[j] += rs * (dxh - s1 - xh * s2);
            }
        }
    }
    int want_g = gamma && ss_req(gamma), want_b = beta && ss_req(beta);
    if (!want_g && !want_b) return;
    float *gg = want_g ? ss_grad(g, gamma) : NULL;
    float *gb = want_b ? ss_grad(g, beta) : NULL;
    if ((want_g && !gg) || (want_b && !gb)) return;
    int64_t nb = (R + LN_BLOCK - 1) / LN_BLOCK;
    float *part = ss_scratch(g, nb * 2 * D); /* per block: dgamma[D], dbeta[D] */
    if (!part) return;
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        float *pg = part + b * 2 * D, *pb = pg + D;
        memset(pg, 0, (size_t)(2 * D) * sizeof(float));
        int64_t r1 = (b + 1) * LN_BLOCK < R ? (b + 1) * LN_BLOCK : R;
        for (int64_t r = b * LN_BLOCK; r < r1; r++) {
            const float *xr = xd + r * D, *gr = go + r * D;
            float mu = mean[r], rs = rstd[r];
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                pg[j] += gr[j] * (xr[j] - mu) * rs;
                pb[j] += gr[j];
            }
        }
    }
    for (int64_t b = 0; b < nb; b++) {
        const float *pg = part + b * 2 * D, *pb = pg + D;
        if (gg)
            for (int64_t j = 0; j < D; j++) gg[j] += pg[j];
        if (gb)
            for (int64_t j = 0; j < D; j++) gb[j] += pb[j];
    }
}

ss_tensor *ss_layer_norm(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta, float eps)
{
    SS_CHECK_IN1(g, x);
    if (x->ndim < 1) return ss_op_error(g, "layer_norm", "input must have at least 1 dimension");
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t D = x->shape[x->ndim - 1];
    if (D < 1) return ss_op_error(g, "layer_norm", "last dimension is empty");
    char s1[64];
    if (gamma) {
        if (gamma->numel != D)
            return ss_op_error(g, "layer_norm", "gamma %s does not match the last dim %lld of the input",
                               ss_shape_str(gamma, s1, sizeof s1), (long long)D);
        if (!(gamma = ss_contiguous(g, gamma))) return NULL;
    }
    if (beta) {
        if (beta->numel != D)
            return ss_op_error(g, "layer_norm", "beta %s does not match the last dim %lld of the input",
                               ss_shape_str(beta, s1, sizeof s1), (long long)D);
        if (!(beta = ss_contiguous(g, beta))) return NULL;
    }
    if (!(eps >= 0.0f)) return ss_op_error_code(g, SS_ERR_INVALID, "layer_norm", "eps=%g must be >= 0", (double)eps);
    int64_t R = x->numel / D;
    ss_tensor *out = ss_new_like(g, x);
    float *stats = ss_scratch(g, 2 * R);
    if (!out || !stats) return NULL;
    float *mean = stats, *rstd = stats + R;
    const float *xd = x->data, *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    float *o = out->data;
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * D;
        float *orow = o + r * D;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < D; j++) s += xr[j];
        float mu = s / (float)D, v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int64_t j = 0; j < D; j++) v += (xr[j] - mu) * (xr[j] - mu);
        float rs = 1.0f / sqrtf(v / (float)D + eps);
        mean[r] = mu;
        rstd[r] = rs;
        if (gm && bt) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) orow[j] = (xr[j] - mu) * rs * gm[j] + bt[j];
        } else {
#pragma omp simd
            for (int64_t j = 0; j < D; j++)
                orow[j] = (xr[j] - mu) * rs * (gm ? gm[j] : 1.0f) + (bt ? bt[j] : 0.0f);
        }
    }
    ss_tensor *in[3] = {x, gamma, beta};
    ss_node *n = ss_record(g, "layer_norm", layer_norm_backward, out, 3, in);
    if (n) {
        n->saved = stats;
        n->i[0] = R;
        n->i[1] = D;
    }
    return out;
}

/* ---- L2 normalise -------------------------------------------------------------
 * x [..., D] -> x / max(||x||_2, eps) per row (F.normalize).
 * saved: the divisor per row. Backward, with y = out and d = divisor:
 *   ||x|| > eps:  dx = (dy - y (y . dy)) / d
 *   otherwise:    dx = dy / eps   (the divisor is the constant eps) */
static void l2_normalize_backward(ss_graph *g, ss_node *n)
{
    float *gx = ss_grad(g, n->in[0]);
    if (!gx) return;
    ss_l2_rows_backward(n->out->data, n->out->grad, n->saved, gx, n->i[0], n->i[1], n->f[0]);
}

void ss_l2_rows(const float *src, float *dst, float *div, int64_t R, int64_t D, float eps)
{
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = src + r * D;
        float *orow = dst + r * D;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < D; j++) s += xr[j] * xr[j];
        float nrm = sqrtf(s);
        float d = nrm > eps ? nrm : eps;
        float inv = 1.0f / d;
        div[r] = d;
#pragma omp simd
        for (int64_t j = 0; j < D; j++) orow[j] = xr[j] * inv;
    }
}

void ss_l2_rows_backward(const float *y, const float *dy, const float *div, float *dx, int64_t R, int64_t D,
                         float eps)
{
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y + r * D, *gr = dy + r * D;
        float *dr = dx + r * D;
        float inv = 1.0f / div[r];
        float dot = 0.0f;
        if (div[r] > eps) {
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < D; j++) dot += yr[j] * gr[j];
        }
#pragma omp simd
        for (int64_t j = 0; j < D; j++) dr[j] += (gr[j] - yr[j] * dot) * inv;
    }
}

ss_tensor *ss_l2_normalize(ss_graph *g, ss_tensor *x, float eps)
{
    SS_CHECK_IN1(g, x);
    if (x->ndim < 1) return ss_op_error(g, "l2_normalize", "input must have at least 1 dimension");
    if (!(eps > 0.0f)) return ss_op_error_code(g, SS_ERR_INVALID, "l2_normalize", "eps=%g must be > 0", (double)eps);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t D = x->shape[x->ndim - 1];
    int64_t R = D ? x->numel / D : 0;
    ss_tensor *out = ss_new_like(g, x);
    float *div = ss_scratch(g, R ? R : 1);
    if (!out || !div) return NULL;
    ss_l2_rows(x->data, out->data, div, R, D, eps);
    ss_node *n = ss_record(g, "l2_normalize", l2_normalize_backward, out, 1, &x);
    if (n) {
        n->saved = div;
        n->i[0] = R;
        n->i[1] = D;
        n->f[0] = eps;
    }
    return out;
}
