/* Reductions: sum and mean over one axis, and over all elements. */
#include <string.h>

#include "core/graph_internal.h"

/* x viewed as [outer, S, inner]; out [outer, inner]. n->f[0] = scale (1 or 1/S). */
static void sum_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    float *gx = ss_grad(g, x);
    if (!gx) return;
    int64_t outer = n->i[0], S = n->i[1], inner = n->i[2];
    float sc = n->f[0];
    const float *go = n->out->grad;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t s = 0; s < S; s++) {
            float *dst = gx + (o * S + s) * inner;
            const float *src = go + o * inner;
            for (int64_t j = 0; j < inner; j++) dst[j] += sc * src[j];
        }
}

static ss_tensor *reduce_axis(ss_graph *g, ss_tensor *x, int axis, int keepdim, int mean)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    const char *name = mean ? "mean" : "sum";
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis >= x->ndim) return ss_op_error(g, name, "axis %d of a %d-D tensor", axis, x->ndim);
    int64_t outer = 1, inner = 1, S = x->shape[axis];
    for (int d = 0; d < axis; d++) outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) inner *= x->shape[d];
    int64_t shape[SS_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d == axis) {
            if (keepdim) shape[nd++] = 1;
        } else {
            shape[nd++] = x->shape[d];
        }
    }
    if (nd == 0) shape[nd++] = 1;
    ss_tensor *out = ss_zeros(g, nd, shape);
    if (!out) return NULL;
    float sc = mean ? (S ? 1.0f / (float)S : 0.0f) : 1.0f;
    for (int64_t o = 0; o < outer; o++) {
        float *dst = out->data + o * inner;
        for (int64_t s = 0; s < S; s++) {
            const float *src = x->data + (o * S + s) * inner;
            for (int64_t j = 0; j < inner; j++) dst[j] += src[j];
        }
        if (mean)
            for (int64_t j = 0; j < inner; j++) dst[j] *= sc;
    }
    ss_node *n = ss_record(g, name, sum_backward, out, 1, &x);
    if (n) {
        n->i[0] = outer;
        n->i[1] = S;
        n->i[2] = inner;
        n->f[0] = sc;
    }
    return out;
}

ss_tensor *ss_sum(ss_graph *g, ss_tensor *x, int axis, int keepdim) { return reduce_axis(g, x, axis, keepdim, 0); }
ss_tensor *ss_mean(ss_graph *g, ss_tensor *x, int axis, int keepdim) { return reduce_axis(g, x, axis, keepdim, 1); }

static ss_tensor *reduce_all(ss_graph *g, ss_tensor *x, int mean)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t one = 1;
    ss_tensor *out = ss_new(g, 1, &one);
    if (!out) return NULL;
    double acc = 0.0; /* double accumulation: order-independent enough and exact-ish */
    for (int64_t i = 0; i < x->numel; i++) acc += x->data[i];
    float sc = mean ? (x->numel ? 1.0f / (float)x->numel : 0.0f) : 1.0f;
    out->data[0] = (float)(acc * sc);
    ss_node *n = ss_record(g, mean ? "mean_all" : "sum_all", sum_backward, out, 1, &x);
    if (n) {
        n->i[0] = 1;
        n->i[1] = x->numel;
        n->i[2] = 1;
        n->f[0] = sc;
    }
    return out;
}

ss_tensor *ss_sum_all(ss_graph *g, ss_tensor *x) { return reduce_all(g, x, 0); }
ss_tensor *ss_mean_all(ss_graph *g, ss_tensor *x) { return reduce_all(g, x, 1); }
