/* Normalisation, softmax family, losses, embedding and attention.
 * Every op: forward, then its backward right below it. Inputs are made
 * contiguous; row loops run in parallel with static schedules (one row per
 * thread iteration, so the bits do not depend on the thread count). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/graph_internal.h"
#include "selfsup/runtime.h"

#define PAR_ROWS 64

static int64_t rows_of(const ss_tensor *x) { return x->ndim ? x->numel / x->shape[x->ndim - 1] : 1; }

/* ---- layer norm ----------------------------------------------------------------
 * x [..., D], gamma/beta [D] or NULL. saved: mean and rstd per row. */
static void layer_norm_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *gm = n->in[1], *bt = n->in[2];
    int64_t D = x->shape[x->ndim - 1], R = rows_of(x);
    const float *stats = n->saved, *go = n->out->grad;
    float *gx = ss_req(x) ? ss_grad(g, x) : NULL;
    float *gg = gm && ss_req(gm) ? ss_grad(g, gm) : NULL;
    float *gb = bt && ss_req(bt) ? ss_grad(g, bt) : NULL;
    if (gg || gb) {
        /* Parameter gradients: serial over rows, vectorised over D. */
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x->data + r * D, *gr = go + r * D;
            float mu = stats[2 * r], rs = stats[2 * r + 1];
            for (int64_t d = 0; d < D; d++) {
                if (gg) gg[d] += gr[d] * (xr[d] - mu) * rs;
                if (gb) gb[d] += gr[d];
            }
        }
    }
    if (!gx) return;
    const float *gam = gm ? gm->data : NULL;
#pragma omp parallel for schedule(static) if (R > PAR_ROWS)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x->data + r * D, *gr = go + r * D;
        float mu = stats[2 * r], rs = stats[2 * r + 1];
        double s1 = 0, s2 = 0;
        for (int64_t d = 0; d < D; d++) {
            float gh = gr[d] * (gam ? gam[d] : 1.0f);
            float xh = (xr[d] - mu) * rs;
            s1 += gh;
            s2 += gh * xh;
        }
        float m1 = (float)(s1 / D), m2 = (float)(s2 / D);
        float *gxr = gx + r * D;
        for (int64_t d = 0; d < D; d++) {
            float gh = gr[d] * (gam ? gam[d] : 1.0f);
            float xh = (xr[d] - mu) * rs;
            gxr[d] += rs * (gh - m1 - xh * m2);
        }
    }
}

ss_tensor *ss_layer_norm(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta, float eps)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t D = x->shape[x->ndim - 1], R = rows_of(x);
    if ((gamma && gamma->numel != D) || (beta && beta->numel != D))
        return ss_op_error(g, "layer_norm", "weight/bias must have %lld elements", (long long)D);
    ss_tensor *out = ss_new_like(g, x);
    float *stats = ss_scratch(g, 2 * R);
    if (!out || !stats) return NULL;
    const float *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
#pragma omp parallel for schedule(static) if (R > PAR_ROWS)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x->data + r * D;
        double mu = 0, var = 0;
        for (int64_t d = 0; d < D; d++) mu += xr[d];
        mu /= D;
        for (int64_t d = 0; d < D; d++) var += (xr[d] - mu) * (xr[d] - mu);
        var /= D;
        float m = (float)mu, rs = (float)(1.0 / sqrt(var + eps));
        stats[2 * r] = m;
        stats[2 * r + 1] = rs;
        float *o = out->data + r * D;
        for (int64_t d = 0; d < D; d++) {
            float v = (xr[d] - m) * rs;
            o[d] = v * (gm ? gm[d] : 1.0f) + (bt ? bt[d] : 0.0f);
        }
    }
    ss_tensor *in[3] = {x, gamma, beta};
    ss_node *n = ss_record(g, "layer_norm", layer_norm_backward, out, 3, in);
    if (n) n->saved = stats;
    return out;
}

/* ---- L2 normalise ----------------------------------------------------------------
 * y = x / max(||x||, eps) along the last dim; saved: the divisor per row. */
static void l2n_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *y = n->out;
    int64_t D = x->shape[x->ndim - 1], R = rows_of(x);
    const float *den = n->saved, *go = y->grad;
    float *gx = ss_grad(g, x);
    float eps = n->f[0];
    if (!gx) return;
#pragma omp parallel for schedule(static) if (R > PAR_ROWS)
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y->data + r * D, *gr = go + r * D;
        float *gxr = gx + r * D;
        if (den[r] <= eps) { /* clamped: y = x / eps is linear */
            for (int64_t d = 0; d < D; d++) gxr[d] += gr[d] / den[r];
            continue;
        }
        double dot = 0;
        for (int64_t d = 0; d < D; d++) dot += (double)yr[d] * gr[d];
        for (int64_t d = 0; d < D; d++) gxr[d] += (gr[d] - yr[d] * (float)dot) / den[r];
    }
}

ss_tensor *ss_l2_normalize(ss_graph *g, ss_tensor *x, float eps)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t D = x->shape[x->ndim - 1], R = rows_of(x);
    ss_tensor *out = ss_new_like(g, x);
    float *den = ss_scratch(g, R);
    if (!out || !den) return NULL;
#pragma omp parallel for schedule(static) if (R > PAR_ROWS)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x->data + r * D;
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)xr[d] * xr[d];
        float nv = (float)sqrt(s);
        den[r] = nv > eps ? nv : eps;
        for (int64_t d = 0; d < D; d++) out->data[r * D + d] = xr[d] / den[r];
    }
    ss_node *n = ss_record(g, "l2_normalize", l2n_backward, out, 1, &x);
    if (n) {
        n->saved = den;
        n->f[0] = eps;
    }
    return out;
}

/* ---- softmax / log-softmax (last dim) ------------------------------------------------ */
static void softmax_rows(const float *x, float *y, int64_t R, int64_t D, int logmode)
{
#pragma omp parallel for schedule(static) if (R > PAR_ROWS)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float mx = -INFINITY;
        for (int64_t d = 0; d < D; d++) mx = xr[d] > mx ? xr[d] : mx;
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += exp((double)(xr[d] - mx));
        if (logmode) {
            float ls = (float)log(s) + mx;
            for (int64_t d = 0; d < D; d++) yr[d] = xr[d] - ls;
        } else {
            float inv = (float)(1.0 / s);
            for (int64_t d = 0; d < D; d++) yr[d] = expf(xr[d] - mx) * inv;
        }
    }
}

static void softmax_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *y = n->out;
    int64_t D = x->shape[x->ndim - 1], R = rows_of(x);
    float *gx = ss_grad(g, x);
    if (!gx) return;
    int logmode = (int)n->i[0];
    const float *go = y->grad;
#pragma omp parallel for schedule(static) if (R > PAR_ROWS)
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y->data + r * D, *gr = go + r * D;
        float *gxr = gx + r * D;
        double s = 0;
        if (logmode) {
            for (int64_t d = 0; d < D; d++) s += gr[d];
            for (int64_t d = 0; d < D; d++) gxr[d] += gr[d] - expf(yr[d]) * (float)s;
        } else {
            for (int64_t d = 0; d < D; d++) s += (double)gr[d] * yr[d];
            for (int64_t d = 0; d < D; d++) gxr[d] += yr[d] * (gr[d] - (float)s);
        }
    }
}

static ss_tensor *softmax_op(ss_graph *g, ss_tensor *x, int logmode)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    ss_tensor *out = ss_new_like(g, x);
    if (!out) return NULL;
    softmax_rows(x->data, out->data, rows_of(x), x->shape[x->ndim - 1], logmode);
    ss_node *n = ss_record(g, logmode ? "log_softmax" : "softmax", softmax_backward, out, 1, &x);
    if (n) n->i[0] = logmode;
    return out;
}

ss_tensor *ss_softmax(ss_graph *g, ss_tensor *x) { return softmax_op(g, x, 0); }
ss_tensor *ss_log_softmax(ss_graph *g, ss_tensor *x) { return softmax_op(g, x, 1); }

/* ---- cross-entropy --------------------------------------------------------------------
 * logits [N,C], targets [N] (-1 ignored), label smoothing e:
 * loss_i = (1-e)(-logp[y]) + e * mean_c(-logp[c]); mean over kept rows.
 * saved: softmax probabilities [N,C] and targets. */
static void ce_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    int64_t N = x->shape[0], C = x->shape[1], kept = n->i[0];
    float e = n->f[0];
    const float *p = n->saved;
    const int32_t *t = (const int32_t *)(p + N * C);
    float *gx = ss_grad(g, x);
    if (!gx || kept == 0) return;
    float s = n->out->grad[0] / (float)kept;
#pragma omp parallel for schedule(static) if (N > PAR_ROWS)
    for (int64_t i = 0; i < N; i++) {
        if (t[i] < 0) continue;
        const float *pr = p + i * C;
        float *gr = gx + i * C;
        for (int64_t c = 0; c < C; c++) {
            float target = e / (float)C + (c == t[i] ? 1.0f - e : 0.0f);
            gr[c] += s * (pr[c] - target);
        }
    }
}

ss_tensor *ss_cross_entropy(ss_graph *g, ss_tensor *logits, const int32_t *targets, float ls)
{
    SS_CHECK_IN1(g, logits);
    logits = ss_contiguous(g, logits);
    if (!logits) return NULL;
    char sb[64];
    if (logits->ndim != 2) return ss_op_error(g, "cross_entropy", "logits %s must be [N,C]", ss_shape_str(logits, sb, sizeof sb));
    int64_t N = logits->shape[0], C = logits->shape[1];
    for (int64_t i = 0; i < N; i++)
        if (targets[i] < -1 || targets[i] >= C) {
            ss_op_error(g, "cross_entropy", "target %d at row %lld outside [0,%lld) (-1 = ignore)", targets[i],
                        (long long)i, (long long)C);
            return NULL;
        }
    float *buf = ss_scratch(g, N * C + N);
    ss_tensor *out = ss_new1(g, 1);
    if (!buf || !out) return NULL;
    float *lp = buf;
    softmax_rows(logits->data, lp, N, C, 1);
    double tot = 0;
    int64_t kept = 0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] < 0) continue;
        const float *r = lp + i * C;
        double mean_all = 0;
        for (int64_t c = 0; c < C; c++) mean_all += r[c];
        mean_all /= (double)C;
        tot += -(1.0 - ls) * r[targets[i]] - ls * mean_all;
        kept++;
    }
    out->data[0] = kept ? (float)(tot / (double)kept) : 0.0f;
    /* keep probabilities (exp of log-probs) for the backward */
    for (int64_t i = 0; i < N * C; i++) lp[i] = expf(lp[i]);
    memcpy(buf + N * C, targets, (size_t)N * sizeof(int32_t));
    ss_node *n = ss_record(g, "cross_entropy", ce_backward, out, 1, &logits);
    if (n) {
        n->saved = buf;
        n->i[0] = kept;
        n->f[0] = ls;
    }
    return out;
}

/* ---- MSE ----------------------------------------------------------------------------- */
static void mse_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *a = n->in[0], *b = n->in[1];
    int64_t N = a->numel;
    float s = 2.0f * n->out->grad[0] / (float)N;
    float *ga = ss_req(a) ? ss_grad(g, a) : NULL, *gb = ss_req(b) ? ss_grad(g, b) : NULL;
    for (int64_t i = 0; i < N; i++) {
        float d = s * (a->data[i] - b->data[i]);
        if (ga) ga[i] += d;
        if (gb) gb[i] -= d;
    }
}

ss_tensor *ss_mse(ss_graph *g, ss_tensor *a, ss_tensor *b)
{
    SS_CHECK_IN2(g, a, b);
    a = ss_contiguous(g, a);
    b = ss_contiguous(g, b);
    if (!a || !b) return NULL;
    char s1[64], s2[64];
    if (!ss_shape_equal(a, b))
        return ss_op_error(g, "mse", "shapes differ: %s vs %s", ss_shape_str(a, s1, sizeof s1), ss_shape_str(b, s2, sizeof s2));
    ss_tensor *out = ss_new1(g, 1);
    if (!out) return NULL;
    double s = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = (double)a->data[i] - b->data[i];
        s += d * d;
    }
    out->data[0] = a->numel ? (float)(s / (double)a->numel) : 0.0f;
    ss_tensor *in[2] = {a, b};
    ss_record(g, "mse", mse_backward, out, 2, in);
    return out;
}

/* ---- cosine similarity matrix -----------------------------------------------------------
 * a [N,D], b [M,D] -> [N,M] = normalize(a) normalize(b)^T, composed from ops. */
ss_tensor *ss_cosine_sim(ss_graph *g, ss_tensor *a, ss_tensor *b, float eps)
{
    SS_CHECK_IN2(g, a, b);
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1]) {
        char s1[64], s2[64];
        return ss_op_error(g, "cosine_sim", "needs [N,D] and [M,D], got %s and %s", ss_shape_str(a, s1, sizeof s1),
                           ss_shape_str(b, s2, sizeof s2));
    }
    ss_tensor *an = ss_l2_normalize(g, a, eps);
    ss_tensor *bn = a == b ? an : ss_l2_normalize(g, b, eps);
    return ss_matmul(g, an, bn, 0, 1);
}

/* ---- embedding -------------------------------------------------------------------------
 * table [V,D], ids (shape) -> [shape..., D]. Backward: serial scatter-add. */
static void embedding_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *tab = n->in[0];
    int64_t cnt = n->i[0], D = tab->shape[1];
    const int32_t *ids = n->saved;
    float *gt = ss_grad(g, tab);
    if (!gt) return;
    const float *go = n->out->grad;
    for (int64_t i = 0; i < cnt; i++) {
        float *dst = gt + (int64_t)ids[i] * D;
        const float *src = go + i * D;
        for (int64_t d = 0; d < D; d++) dst[d] += src[d];
    }
}

ss_tensor *ss_embedding(ss_graph *g, ss_tensor *table, const int32_t *ids, int ndim, const int64_t *shape)
{
    SS_CHECK_IN1(g, table);
    table = ss_contiguous(g, table);
    if (!table) return NULL;
    if (table->ndim != 2) return ss_op_error(g, "embedding", "table must be [V,D]");
    if (ndim < 0 || ndim >= SS_MAX_DIMS) return ss_op_error(g, "embedding", "ids have %d dims", ndim);
    int64_t cnt = 1, V = table->shape[0], D = table->shape[1], os[SS_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        cnt *= shape[i];
        os[i] = shape[i];
    }
    os[ndim] = D;
    for (int64_t i = 0; i < cnt; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return ss_op_error(g, "embedding", "id %d at position %lld outside the vocabulary [0,%lld)", ids[i],
                               (long long)i, (long long)V);
    ss_tensor *out = ss_new(g, ndim + 1, os);
    int32_t *saved = ss_scratch_bytes(g, sizeof(int32_t) * (size_t)(cnt ? cnt : 1));
    if (!out || !saved) return NULL;
    memcpy(saved, ids, sizeof(int32_t) * (size_t)cnt);
    for (int64_t i = 0; i < cnt; i++) memcpy(out->data + i * D, table->data + (int64_t)ids[i] * D, sizeof(float) * (size_t)D);
    ss_node *n = ss_record(g, "embedding", embedding_backward, out, 1, &table);
    if (n) {
        n->saved = saved;
        n->i[0] = cnt;
    }
    return out;
}

/* ---- attention --------------------------------------------------------------------------
 * q [B,Tq,H*Dh], k,v [B,Tk,H*Dh]; key_mask [B,Tk] (1 keep, 0 drop) or NULL.
 * Per (b,h): S = q_h k_h^T / sqrt(Dh), P = softmax(S + mask), O_h = P v_h.
 * The probabilities P [B,H,Tq,Tk] are kept for the backward. Heads are read
 * in place from the packed layout with leading dimension H*Dh. */
static void attention_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    int64_t B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], H = n->i[0], HD = q->shape[2], Dh = HD / H;
    const float *P = n->saved, *go = n->out->grad;
    float *gq = ss_req(q) ? ss_grad(g, q) : NULL, *gk = ss_req(k) ? ss_grad(g, k) : NULL,
          *gv = ss_req(v) ? ss_grad(g, v) : NULL;
    float scale = 1.0f / sqrtf((float)Dh);
    int nt = ss_get_threads();
    float *scratch = ss_scratch(g, (int64_t)nt * Tq * Tk);
    if (!scratch) return;
    ss_flops_add(8.0 * (double)B * H * Tq * Tk * Dh);
    /* Each (b,h) writes disjoint column blocks of gq/gk/gv: parallel-safe. */
#pragma omp parallel for schedule(static) num_threads(nt) if (B * H > 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        int tid = omp_get_thread_num();
        int64_t b = bh / H, h = bh % H;
        const float *Pb = P + bh * Tq * Tk;
        const float *qb = q->data + b * Tq * HD + h * Dh, *kb = k->data + b * Tk * HD + h * Dh,
                    *vb = v->data + b * Tk * HD + h * Dh, *gob = go + b * Tq * HD + h * Dh;
        float *dP = scratch + (int64_t)tid * Tq * Tk;
        /* dV[Tk,Dh] += P^T dO */
        if (gv)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Tk, (int)Dh, (int)Tq, 1.0f, Pb, (int)Tk, gob,
                        (int)HD, 1.0f, gv + b * Tk * HD + h * Dh, (int)HD);
        /* dP = dO V^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)Dh, 1.0f, gob, (int)HD, vb,
                    (int)HD, 0.0f, dP, (int)Tk);
        /* dS = P o (dP - rowsum(dP o P)), times the scale */
        for (int64_t i = 0; i < Tq; i++) {
            const float *pr = Pb + i * Tk;
            float *dr = dP + i * Tk;
            double s = 0;
            for (int64_t j = 0; j < Tk; j++) s += (double)dr[j] * pr[j];
            for (int64_t j = 0; j < Tk; j++) dr[j] = pr[j] * (dr[j] - (float)s) * scale;
        }
        if (gq) /* dQ[Tq,Dh] += dS K */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, (int)Dh, (int)Tk, 1.0f, dP, (int)Tk, kb,
                        (int)HD, 1.0f, gq + b * Tq * HD + h * Dh, (int)HD);
        if (gk) /* dK[Tk,Dh] += dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Tk, (int)Dh, (int)Tq, 1.0f, dP, (int)Tk, qb,
                        (int)HD, 1.0f, gk + b * Tk * HD + h * Dh, (int)HD);
    }
}

ss_tensor *ss_attention(ss_graph *g, ss_tensor *q, ss_tensor *k, ss_tensor *v, int heads, const float *key_mask)
{
    SS_CHECK_IN2(g, q, k);
    SS_CHECK_IN1(g, v);
    q = ss_contiguous(g, q);
    k = ss_contiguous(g, k);
    v = ss_contiguous(g, v);
    if (!q || !k || !v) return NULL;
    char s1[64], s2[64], s3[64];
    if (q->ndim != 3 || k->ndim != 3 || !ss_shape_equal(k, v) || q->shape[0] != k->shape[0] ||
        q->shape[2] != k->shape[2] || heads <= 0 || q->shape[2] % heads)
        return ss_op_error(g, "attention", "q %s, k %s, v %s with %d heads (expected [B,T,H*Dh])",
                           ss_shape_str(q, s1, sizeof s1), ss_shape_str(k, s2, sizeof s2), ss_shape_str(v, s3, sizeof s3),
                           heads);
    int64_t B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], H = heads, HD = q->shape[2], Dh = HD / H;
    ss_tensor *out = ss_new(g, 3, (int64_t[]){B, Tq, HD});
    float *P = ss_scratch(g, B * H * Tq * Tk);
    if (!out || !P) return NULL;
    float scale = 1.0f / sqrtf((float)Dh);
    ss_flops_add(4.0 * (double)B * H * Tq * Tk * Dh);
#pragma omp parallel for schedule(static) if (B * H > 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        int64_t b = bh / H, h = bh % H;
        float *Pb = P + bh * Tq * Tk;
        const float *qb = q->data + b * Tq * HD + h * Dh, *kb = k->data + b * Tk * HD + h * Dh,
                    *vb = v->data + b * Tk * HD + h * Dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)Dh, scale, qb, (int)HD, kb,
                    (int)HD, 0.0f, Pb, (int)Tk);
        const float *mk = key_mask ? key_mask + b * Tk : NULL;
        for (int64_t i = 0; i < Tq; i++) {
            float *r = Pb + i * Tk;
            float mx = -INFINITY;
            for (int64_t j = 0; j < Tk; j++)
                if (!mk || mk[j] != 0.0f) mx = r[j] > mx ? r[j] : mx;
            if (mx == -INFINITY) { /* every key masked: output zeros */
                memset(r, 0, sizeof(float) * (size_t)Tk);
                continue;
            }
            double s = 0;
            for (int64_t j = 0; j < Tk; j++) {
                float e = (!mk || mk[j] != 0.0f) ? expf(r[j] - mx) : 0.0f;
                r[j] = e;
                s += e;
            }
            float inv = (float)(1.0 / s);
            for (int64_t j = 0; j < Tk; j++) r[j] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, (int)Dh, (int)Tk, 1.0f, Pb, (int)Tk, vb,
                    (int)HD, 0.0f, out->data + b * Tq * HD + h * Dh, (int)HD);
    }
    ss_tensor *in[3] = {q, k, v};
    ss_node *n = ss_record(g, "attention", attention_backward, out, 3, in);
    if (n) {
        n->saved = P;
        n->i[0] = heads;
    }
    return out;
}
