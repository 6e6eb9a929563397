/* The autodiff tape and the step arena that backs it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph_internal.h"

struct ss_graph {
    ss_arena *arena;
    ss_node *nodes;
    int nnodes, cap;
    int training, grad_enabled, check_finite;
    ss_status status;
    char errmsg[512];
    ss_rng rng;
    ss_batch_reduce_fn batch_reduce;
};

ss_graph *ss_graph_new(void)
{
    ss_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->arena = ss_arena_new(0);
    if (!g->arena) {
        free(g);
        return NULL;
    }
    g->training = 1;
    g->grad_enabled = 1;
    ss_rng_seed(&g->rng, 0, 0);
    return g;
}

void ss_graph_free(ss_graph *g)
{
    if (!g) return;
    ss_arena_free(g->arena);
    free(g->nodes);
    free(g);
}

void ss_graph_reset(ss_graph *g)
{
    ss_arena_reset(g->arena);
    g->nnodes = 0;
    g->status = SS_OK;
    g->errmsg[0] = '\0';
}

void ss_graph_set_training(ss_graph *g, int t) { g->training = t; }
int ss_graph_training(const ss_graph *g) { return g->training; }
void ss_graph_set_grad_enabled(ss_graph *g, int e) { g->grad_enabled = e; }
int ss_graph_grad_enabled(const ss_graph *g) { return g->grad_enabled; }
void ss_graph_set_check_finite(ss_graph *g, int on) { g->check_finite = on; }
ss_status ss_graph_status(const ss_graph *g) { return g->status; }
const char *ss_graph_errmsg(const ss_graph *g) { return g->errmsg; }
ss_arena *ss_graph_arena(ss_graph *g) { return g->arena; }
int ss_graph_num_nodes(const ss_graph *g) { return g->nnodes; }

void ss_graph_set_seed(ss_graph *g, uint64_t seed, uint64_t step) { ss_rng_seed(&g->rng, seed, step); }
uint64_t ss_graph_next_random(ss_graph *g) { return ss_rng_u64(&g->rng); }
void ss_graph_set_batch_reduce(ss_graph *g, ss_batch_reduce_fn fn) { g->batch_reduce = fn; }
ss_batch_reduce_fn ss_graph_batch_reduce(const ss_graph *g) { return g->batch_reduce; }

static void graph_fail(ss_graph *g, ss_status s, const char *msg)
{
    if (g->status != SS_OK) return; /* keep the first error */
    g->status = s;
    snprintf(g->errmsg, sizeof g->errmsg, "%s", msg);
    ss_seterr(s, "%s", msg);
}

static ss_tensor *op_verror(ss_graph *g, ss_status code, const char *op, const char *fmt, va_list ap)
{
    char buf[400], msg[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    snprintf(msg, sizeof msg, "%s: %s", op, buf);
    graph_fail(g, code, msg);
    return NULL;
}

ss_tensor *ss_op_error(ss_graph *g, const char *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_verror(g, SS_ERR_SHAPE, op, fmt, ap);
    va_end(ap);
    return NULL;
}

ss_tensor *ss_op_error_code(ss_graph *g, ss_status code, const char *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_verror(g, code, op, fmt, ap);
    va_end(ap);
    return NULL;
}

void *ss_scratch_bytes(ss_graph *g, size_t bytes)
{
    void *p = ss_arena_alloc(g->arena, bytes);
    if (!p) graph_fail(g, SS_ERR_NOMEM, "step arena: out of memory");
    return p;
}

float *ss_scratch(ss_graph *g, int64_t n)
{
    if (n < 0) return NULL;
    return ss_scratch_bytes(g, (size_t)n * sizeof(float));
}

float *ss_scratch_zero(ss_graph *g, int64_t n)
{
    float *p = ss_scratch(g, n);
    if (p) memset(p, 0, (size_t)n * sizeof(float));
    return p;
}

int ss_bad_inputs(ss_graph *g, int nin, ss_tensor **in)
{
    if (g->status != SS_OK) return 1;
    for (int i = 0; i < nin; i++)
        if (!in[i]) {
            graph_fail(g, SS_ERR_INVALID, "op given a NULL tensor");
            return 1;
        }
    return 0;
}

static ss_tensor *tensor_alloc(ss_graph *g, int ndim, const int64_t *shape, int zero)
{
    if (g->status != SS_OK) return NULL;
    if (ndim < 0 || ndim > SS_MAX_DIMS) {
        ss_op_error(g, "new", "%d dimensions (at most %d)", ndim, SS_MAX_DIMS);
        return NULL;
    }
    ss_tensor *t = ss_scratch_bytes(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    ss_tensor_set_shape(t, ndim, shape);
    if (t->numel < 0) return ss_op_error(g, "new", "negative dimension");
    t->data = zero ? ss_scratch_zero(g, t->numel) : ss_scratch(g, t->numel);
    if (!t->data) return NULL;
    return t;
}

ss_tensor *ss_new(ss_graph *g, int ndim, const int64_t *shape) { return tensor_alloc(g, ndim, shape, 0); }
ss_tensor *ss_zeros(ss_graph *g, int ndim, const int64_t *shape) { return tensor_alloc(g, ndim, shape, 1); }
ss_tensor *ss_new_like(ss_graph *g, const ss_tensor *t) { return tensor_alloc(g, t->ndim, t->shape, 0); }
ss_tensor *ss_new1(ss_graph *g, int64_t a) { int64_t s[1] = {a}; return ss_new(g, 1, s); }
ss_tensor *ss_new2(ss_graph *g, int64_t a, int64_t b) { int64_t s[2] = {a, b}; return ss_new(g, 2, s); }
ss_tensor *ss_new3(ss_graph *g, int64_t a, int64_t b, int64_t c) { int64_t s[3] = {a, b, c}; return ss_new(g, 3, s); }
ss_tensor *ss_new4(ss_graph *g, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t s[4] = {a, b, c, d};
    return ss_new(g, 4, s);
}

ss_tensor *ss_wrap(ss_graph *g, float *data, int ndim, const int64_t *shape)
{
    if (g->status != SS_OK) return NULL;
    if (ndim < 0 || ndim > SS_MAX_DIMS) return ss_op_error(g, "wrap", "%d dimensions", ndim);
    ss_tensor *t = ss_scratch_bytes(g, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    ss_tensor_set_shape(t, ndim, shape);
    t->data = data;
    return t;
}

float *ss_grad(ss_graph *g, ss_tensor *t)
{
    if (t->grad) return t->grad;
    if (t->base) {
        float *bg = ss_grad(g, t->base);
        if (!bg) return NULL;
        t->grad = bg + t->offset;
        return t->grad;
    }
    t->grad = ss_scratch_zero(g, t->numel);
    return t->grad;
}

int ss_needs_grad(ss_graph *g, int nin, ss_tensor **in)
{
    if (!g->grad_enabled) return 0;
    for (int i = 0; i < nin; i++)
        if (in[i] && (in[i]->flags & SS_T_REQUIRES_GRAD)) return 1;
    return 0;
}

static int all_finite(const ss_tensor *t)
{
    if (!ss_tensor_is_contiguous(t)) return 1;
    const float *d = t->data;
    int bad = 0;
    for (int64_t i = 0; i < t->numel; i++) bad |= !isfinite(d[i]);
    return !bad;
}

ss_node *ss_record(ss_graph *g, const char *op, ss_backward_fn bw, ss_tensor *out, int nin,
                   ss_tensor **in)
{
    if (g->check_finite && out && !all_finite(out)) {
        char msg[256];
        snprintf(msg, sizeof msg, "non-finite value (NaN or Inf) first produced by op '%s' "
                 "(tape position %d)", op, g->nnodes);
        graph_fail(g, SS_ERR_NAN, msg);
    }
    if (!ss_needs_grad(g, nin, in)) return NULL;
    out->flags |= SS_T_REQUIRES_GRAD;
    if (g->nnodes == g->cap) {
        int nc = g->cap ? g->cap * 2 : 256;
        ss_node *nn = realloc(g->nodes, (size_t)nc * sizeof *nn);
        if (!nn) {
            graph_fail(g, SS_ERR_NOMEM, "autodiff tape: out of memory");
            return NULL;
        }
        g->nodes = nn;
        g->cap = nc;
    }
    ss_node *n = &g->nodes[g->nnodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->nin = nin > SS_NODE_MAX_IN ? SS_NODE_MAX_IN : nin;
    for (int i = 0; i < n->nin; i++) n->in[i] = in[i];
    return n;
}

ss_status ss_backward_seed(ss_graph *g, ss_tensor *out, const float *seed)
{
    if (g->status != SS_OK) return ss_seterr(g->status, "%s", g->errmsg);
    if (!out) return ss_seterr(SS_ERR_INVALID, "backward: loss is NULL");
    if (!(out->flags & SS_T_REQUIRES_GRAD))
        return ss_seterr(SS_ERR_INVALID, "backward: the loss does not depend on any parameter "
                                         "that requires a gradient");
    float *gd = ss_grad(g, out);
    if (!gd) return ss_seterr(g->status, "%s", g->errmsg);
    for (int64_t i = 0; i < out->numel; i++) gd[i] += seed ? seed[i] : 1.0f;
    for (int i = g->nnodes - 1; i >= 0; i--) {
        ss_node *n = &g->nodes[i];
        if (!n->out->grad) continue; /* nothing flowed into this node */
        n->backward(g, n);
        if (g->status != SS_OK) return ss_seterr(g->status, "%s", g->errmsg);
    }
    return SS_OK;
}

ss_status ss_backward(ss_graph *g, ss_tensor *loss)
{
    if (loss && loss->numel != 1)
        return ss_seterr(SS_ERR_SHAPE, "backward: loss must have one element, has %lld",
                         (long long)loss->numel);
    return ss_backward_seed(g, loss, NULL);
}
