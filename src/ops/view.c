/* Views and structural ops: reshape, permute, slice, contiguous, detach,
 * concat, index_select.
 *
 * Views share data and gradient storage with their base (see tensor.h), so
 * reshape/permute/slice record nothing on the tape. */
#include <string.h>

#include "core/graph_internal.h"

static ss_tensor *view_of(ss_graph *g, ss_tensor *x)
{
    ss_tensor *v = ss_scratch_bytes(g, sizeof *v);
    if (!v) return NULL;
    *v = *x;
    v->base = x->base ? x->base : x;
    v->offset = x->base ? x->offset : 0;
    v->grad = NULL;
    v->name = NULL;
    v->flags = x->flags & SS_T_REQUIRES_GRAD;
    if (x->grad) v->grad = x->grad; /* params: grad storage exists already */
    return v;
}

/* ---- reshape ------------------------------------------------------------
 * x: any contiguous tensor; shape may hold one -1. */
ss_tensor *ss_reshape(ss_graph *g, ss_tensor *x, int ndim, const int64_t *shape)
{
    SS_CHECK_IN1(g, x);
    if (ndim < 1 || ndim > SS_MAX_DIMS) return ss_op_error(g, "reshape", "%d dimensions", ndim);
    if (!ss_tensor_is_contiguous(x)) x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t s[SS_MAX_DIMS], known = 1;
    int neg = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            if (neg >= 0) return ss_op_error(g, "reshape", "more than one -1 in the new shape");
            neg = i;
        } else if (s[i] < 0) {
            return ss_op_error(g, "reshape", "negative dimension %lld", (long long)s[i]);
        } else {
            known *= s[i];
        }
    }
    if (neg >= 0) {
        if (known == 0 || x->numel % known)
            return ss_op_error(g, "reshape", "cannot infer -1: %lld elements into parts of %lld",
                               (long long)x->numel, (long long)known);
        s[neg] = x->numel / known;
        known *= s[neg];
    }
    if (known != x->numel) {
        char b[64];
        return ss_op_error(g, "reshape", "%s has %lld elements, new shape has %lld",
                           ss_shape_str(x, b, sizeof b), (long long)x->numel, (long long)known);
    }
    ss_tensor *v = view_of(g, x);
    if (!v) return NULL;
    ss_tensor_set_shape(v, ndim, s);
    return v;
}

/* ---- permute -----------------------------------------------------------
 * out.shape[i] = x.shape[perm[i]] (strided view). */
ss_tensor *ss_permute(ss_graph *g, ss_tensor *x, const int *perm)
{
    SS_CHECK_IN1(g, x);
    int seen[SS_MAX_DIMS] = {0};
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]])
            return ss_op_error(g, "permute", "perm is not a permutation of %d dims", x->ndim);
        seen[perm[i]] = 1;
    }
    ss_tensor *v = view_of(g, x);
    if (!v) return NULL;
    for (int i = 0; i < x->ndim; i++) {
        v->shape[i] = x->shape[perm[i]];
        v->stride[i] = x->stride[perm[i]];
    }
    if (v->grad && x->grad) v->grad = x->grad;
    return v;
}

/* ---- slice ---------------------------------------------------------------
 * x[..., start:start+len, ...] along dim (view). */
ss_tensor *ss_slice(ss_graph *g, ss_tensor *x, int dim, int64_t start, int64_t len)
{
    SS_CHECK_IN1(g, x);
    if (dim < 0) dim += x->ndim;
    if (dim < 0 || dim >= x->ndim) return ss_op_error(g, "slice", "dim %d of a %d-D tensor", dim, x->ndim);
    if (start < 0 || len < 0 || start + len > x->shape[dim])
        return ss_op_error(g, "slice", "range [%lld,%lld) outside dim %d of size %lld",
                           (long long)start, (long long)(start + len), dim, (long long)x->shape[dim]);
    ss_tensor *v = view_of(g, x);
    if (!v) return NULL;
    int64_t off = start * x->stride[dim];
    v->shape[dim] = len;
    v->data = x->data + off;
    v->offset += off;
    if (x->grad) v->grad = x->grad + off;
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->shape[i];
    v->numel = n;
    return v;
}

/* ---- contiguous ----------------------------------------------------------
 * Strided copy; backward scatters the gradient back through the strides. */
static void strided_walk(const ss_tensor *t, float *strided, float *dense, int to_dense, int accumulate)
{
    int64_t idx[SS_MAX_DIMS] = {0};
    int nd = t->ndim;
    int64_t inner = nd ? t->shape[nd - 1] : 1, istr = nd ? t->stride[nd - 1] : 1;
    int64_t rows = inner ? t->numel / inner : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int d = 0; d < nd - 1; d++) off += idx[d] * t->stride[d];
        float *s = strided + off, *dd = dense + r * inner;
        if (to_dense) {
            for (int64_t j = 0; j < inner; j++) dd[j] = s[j * istr];
        } else if (accumulate) {
            for (int64_t j = 0; j < inner; j++) s[j * istr] += dd[j];
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static void contiguous_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    float *gx = ss_grad(g, x);
    if (!gx) return;
    strided_walk(x, gx, n->out->grad, 0, 1);
}

ss_tensor *ss_contiguous(ss_graph *g, ss_tensor *x)
{
    SS_CHECK_IN1(g, x);
    if (ss_tensor_is_contiguous(x)) return x;
    ss_tensor *out = ss_new(g, x->ndim, x->shape);
    if (!out) return NULL;
    strided_walk(x, x->data, out->data, 1, 0);
    ss_record(g, "contiguous", contiguous_backward, out, 1, &x);
    return out;
}

/* ---- detach -------------------------------------------------------------- */
ss_tensor *ss_detach(ss_graph *g, ss_tensor *x)
{
    SS_CHECK_IN1(g, x);
    ss_tensor *v = ss_scratch_bytes(g, sizeof *v);
    if (!v) return NULL;
    *v = *x;
    v->base = NULL;
    v->offset = 0;
    v->grad = NULL;
    v->flags = 0;
    v->name = NULL;
    return v;
}

/* ---- concat ---------------------------------------------------------------
 * xs[i]: equal shapes except along dim -> sum of sizes along dim. */
static void concat_backward(ss_graph *g, ss_node *n)
{
    const int64_t *sizes = n->saved;
    int dim = (int)n->i[0], cnt = (int)n->i[1];
    ss_tensor **xs = (ss_tensor **)(sizes + cnt);
    ss_tensor *out = n->out;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++) outer *= out->shape[d];
    for (int d = dim + 1; d < out->ndim; d++) inner *= out->shape[d];
    int64_t off = 0;
    for (int k = 0; k < cnt; k++) {
        ss_tensor *x = xs[k];
        int64_t len = sizes[k] * inner;
        if (ss_req(x)) {
            float *gx = ss_grad(g, x);
            if (!gx) return;
            for (int64_t o = 0; o < outer; o++) {
                const float *src = out->grad + o * out->shape[dim] * inner + off;
                float *dst = gx + o * len;
                for (int64_t j = 0; j < len; j++) dst[j] += src[j];
            }
        }
        off += len;
    }
}

ss_tensor *ss_concat(ss_graph *g, int cnt, ss_tensor **xs0, int dim)
{
    if (g && ss_graph_status(g) != SS_OK) return NULL;
    if (cnt < 1) return ss_op_error(g, "concat", "no tensors");
    ss_tensor **xs = ss_scratch_bytes(g, (size_t)cnt * sizeof *xs);
    if (!xs) return NULL;
    for (int k = 0; k < cnt; k++) {
        if (!xs0[k]) return ss_op_error(g, "concat", "input %d is NULL", k);
        xs[k] = ss_contiguous(g, xs0[k]);
        if (!xs[k]) return NULL;
    }
    ss_tensor *x0 = xs[0];
    if (dim < 0) dim += x0->ndim;
    if (dim < 0 || dim >= x0->ndim) return ss_op_error(g, "concat", "dim %d of a %d-D tensor", dim, x0->ndim);
    int64_t shape[SS_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[dim] = 0;
    for (int k = 0; k < cnt; k++) {
        ss_tensor *x = xs[k];
        if (x->ndim != x0->ndim) return ss_op_error(g, "concat", "input %d has %d dims, input 0 has %d", k, x->ndim, x0->ndim);
        for (int d = 0; d < x->ndim; d++)
            if (d != dim && x->shape[d] != x0->shape[d])
                return ss_op_error(g, "concat", "input %d differs in dim %d (%lld vs %lld)", k, d,
                                   (long long)x->shape[d], (long long)x0->shape[d]);
        shape[dim] += x->shape[dim];
    }
    ss_tensor *out = ss_new(g, x0->ndim, shape);
    if (!out) return NULL;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++) outer *= shape[d];
    for (int d = dim + 1; d < x0->ndim; d++) inner *= shape[d];
    int64_t off = 0;
    for (int k = 0; k < cnt; k++) {
        int64_t len = xs[k]->shape[dim] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy(out->data + o * shape[dim] * inner + off, xs[k]->data + o * len, (size_t)len * sizeof(float));
        off += len;
    }
    /* The node lists one input that needs a gradient (if any); the backward
     * walks all inputs from the saved list. */
    ss_tensor *probe[1] = {NULL};
    for (int k = 0; k < cnt && !probe[0]; k++)
        if (ss_req(xs[k])) probe[0] = xs[k];
    ss_node *n = ss_record(g, "concat", concat_backward, out, probe[0] ? 1 : 0, probe);
    if (n) {
        int64_t *saved = ss_scratch_bytes(g, (size_t)cnt * sizeof(int64_t) + (size_t)cnt * sizeof(ss_tensor *));
        if (!saved) return NULL;
        for (int k = 0; k < cnt; k++) saved[k] = xs[k]->shape[dim];
        memcpy(saved + cnt, xs, (size_t)cnt * sizeof(ss_tensor *));
        n->saved = saved;
        n->i[0] = dim;
        n->i[1] = cnt;
    }
    return out;
}

/* ---- index_select ----------------------------------------------------------
 * x: [..., S, ...] (S at dim), idx[n] -> [..., n, ...]. */
static void index_select_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *out = n->out;
    int dim = (int)n->i[0];
    int64_t cnt = n->i[1];
    const int32_t *idx = n->saved;
    float *gx = ss_grad(g, x);
    if (!gx) return;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++) outer *= x->shape[d];
    for (int d = dim + 1; d < x->ndim; d++) inner *= x->shape[d];
    int64_t S = x->shape[dim];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < cnt; j++) {
            float *dst = gx + (o * S + idx[j]) * inner;
            const float *src = out->grad + (o * cnt + j) * inner;
            for (int64_t k = 0; k < inner; k++) dst[k] += src[k];
        }
}

ss_tensor *ss_index_select(ss_graph *g, ss_tensor *x, int dim, const int32_t *idx, int64_t cnt)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    if (dim < 0) dim += x->ndim;
    if (dim < 0 || dim >= x->ndim) return ss_op_error(g, "index_select", "dim %d of a %d-D tensor", dim, x->ndim);
    int64_t S = x->shape[dim];
    for (int64_t j = 0; j < cnt; j++)
        if (idx[j] < 0 || idx[j] >= S)
            return ss_op_error(g, "index_select", "index %d at position %lld outside [0,%lld)", idx[j],
                               (long long)j, (long long)S);
    int64_t shape[SS_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = cnt;
    ss_tensor *out = ss_new(g, x->ndim, shape);
    if (!out) return NULL;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++) outer *= x->shape[d];
    for (int d = dim + 1; d < x->ndim; d++) inner *= x->shape[d];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < cnt; j++)
            memcpy(out->data + (o * cnt + j) * inner, x->data + (o * S + idx[j]) * inner,
                   (size_t)inner * sizeof(float));
    ss_node *n = ss_record(g, "index_select", index_select_backward, out, 1, &x);
    if (n) {
        int32_t *saved = ss_scratch_bytes(g, (size_t)(cnt ? cnt : 1) * sizeof(int32_t));
        if (!saved) return NULL;
        memcpy(saved, idx, (size_t)cnt * sizeof(int32_t));
        n->saved = saved;
        n->i[0] = dim;
        n->i[1] = cnt;
    }
    return out;
}
