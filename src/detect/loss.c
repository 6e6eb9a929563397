/* Detection losses as ops (forward and backward side by side): CenterNet's
 * penalty-reduced focal loss on heat-map logits, and a sparse weighted L1
 * on regression maps read at object centres. */
#include <math.h>
#include <string.h>

#include "core/graph_internal.h"
#include "selfsup/detect.h"

#define P_MIN 1e-4f
#define P_MAX (1.0f - 1e-4f)

static float sigmoidf(float x) { return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x)); }

/* ---- focal loss ----------------------------------------------------------------
 * logits [N,C,H,W] (contiguous copy), heat (saved, numel floats).
 * n->i: 0 numel. n->f: 0 1/max(1, npos). */
static void focal_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    if (!ss_req(x)) return;
    float *gx = ss_grad(g, x);
    if (!gx) return;
    const float *heat = n->saved, *xd = x->data;
    int64_t N = n->i[0];
    float sc = n->out->grad[0] * n->f[0];
    for (int64_t i = 0; i < N; i++) {
        float p = sigmoidf(xd[i]);
        if (p < P_MIN || p > P_MAX) continue; /* clamped: no gradient, as torch.clamp */
        float t = heat[i], d;
        if (t == 1.0f) { /* d/dx of -(1-p)^2 log p, dp/dx = p(1-p) */
            float q = 1 - p;
            d = 2 * p * q * q * logf(p) - q * q * q;
        } else { /* d/dx of -(1-t)^4 p^2 log(1-p) */
            float w = (1 - t) * (1 - t);
            w *= w;
            d = -w * (2 * p * p * (1 - p) * logf(1 - p) - p * p * p);
        }
        gx[i] += sc * d;
    }
}

ss_tensor *ss_focal_heatmap_loss(ss_graph *g, ss_tensor *logits, const float *heat)
{
    SS_CHECK_IN1(g, logits);
    if (!heat) return ss_op_error(g, "focal_heatmap_loss", "no target heat map");
    ss_tensor *x = ss_contiguous(g, logits);
    if (!x) return NULL;
    int64_t N = x->numel, one = 1;
    ss_tensor *out = ss_new(g, 1, &one);
    if (!out) return NULL;
    double loss = 0, npos = 0;
    for (int64_t i = 0; i < N; i++) {
        float p = sigmoidf(x->data[i]);
        p = p < P_MIN ? P_MIN : (p > P_MAX ? P_MAX : p);
        float t = heat[i];
        if (t == 1.0f) {
            loss -= (double)(1 - p) * (1 - p) * logf(p);
            npos += 1;
        } else {
            float w = (1 - t) * (1 - t);
            w *= w;
            loss -= (double)w * p * p * logf(1 - p);
        }
    }
    float norm = 1.0f / (float)(npos > 1 ? npos : 1);
    out->data[0] = (float)(loss * norm);
    ss_tensor *in[1] = {x};
    ss_node *n = ss_record(g, "focal_heatmap_loss", focal_backward, out, 1, in);
    if (n) {
        float *h = ss_scratch(g, N);
        if (!h) return NULL;
        memcpy(h, heat, (size_t)N * sizeof(float));
        n->saved = h;
        n->i[0] = N;
        n->f[0] = norm;
    }
    return out;
}

/* ---- sparse L1 -------------------------------------------------------------------
 * pred [N,K,H,W]; saved: cells (m int64), targets (m*K), weights (K).
 * n->i: 0 m, 1 K, 2 H*W. */
typedef struct l1_saved {
    int64_t *cell;
    float *target, *w;
} l1_saved;

static void sparse_l1_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *p = n->in[0];
    if (!ss_req(p)) return;
    float *gp = ss_grad(g, p);
    if (!gp) return;
    const l1_saved *s = n->saved;
    int64_t m = n->i[0], K = n->i[1], HW = n->i[2];
    float sc = n->out->grad[0] / (float)(m > 1 ? m : 1);
    for (int64_t j = 0; j < m; j++) {
        int64_t b = s->cell[j] / HW, at = s->cell[j] % HW;
        for (int64_t k = 0; k < K; k++) {
            int64_t e = (b * K + k) * HW + at;
            float d = p->data[e] - s->target[j * K + k];
            gp[e] += sc * s->w[k] * (float)((d > 0) - (d < 0));
        }
    }
}

ss_tensor *ss_sparse_l1_loss(ss_graph *g, ss_tensor *pred, const int64_t *obj_cell, const float *target,
                             int64_t m, const float *w)
{
    SS_CHECK_IN1(g, pred);
    if (pred->ndim != 4) return ss_op_error(g, "sparse_l1_loss", "pred must be [N,K,H,W]");
    ss_tensor *p = ss_contiguous(g, pred);
    if (!p) return NULL;
    int64_t N = p->shape[0], K = p->shape[1], HW = p->shape[2] * p->shape[3], one = 1;
    for (int64_t j = 0; j < m; j++)
        if (obj_cell[j] < 0 || obj_cell[j] >= N * HW)
            return ss_op_error_code(g, SS_ERR_RANGE, "sparse_l1_loss", "object %lld: cell %lld outside [0, %lld)",
                                    (long long)j, (long long)obj_cell[j], (long long)(N * HW));
    ss_tensor *out = ss_new(g, 1, &one);
    if (!out) return NULL;
    double loss = 0;
    for (int64_t j = 0; j < m; j++) {
        int64_t b = obj_cell[j] / HW, at = obj_cell[j] % HW;
        for (int64_t k = 0; k < K; k++) loss += w[k] * fabsf(p->data[(b * K + k) * HW + at] - target[j * K + k]);
    }
    out->data[0] = (float)(loss / (double)(m > 1 ? m : 1));
    ss_tensor *in[1] = {p};
    ss_node *n = ss_record(g, "sparse_l1_loss", sparse_l1_backward, out, 1, in);
    if (n) {
        l1_saved *s = ss_scratch_bytes(g, sizeof *s);
        if (!s) return NULL;
        s->cell = ss_scratch_bytes(g, sizeof(int64_t) * (size_t)(m ? m : 1));
        s->target = ss_scratch(g, m * K > 0 ? m * K : 1);
        s->w = ss_scratch(g, K);
        if (!s->cell || !s->target || !s->w) return NULL;
        memcpy(s->cell, obj_cell, sizeof(int64_t) * (size_t)m);
        memcpy(s->target, target, sizeof(float) * (size_t)(m * K));
        memcpy(s->w, w, sizeof(float) * (size_t)K);
        n->saved = s;
        n->i[0] = m;
        n->i[1] = K;
        n->i[2] = HW;
    }
    return out;
}
