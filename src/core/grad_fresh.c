/* Gradient buffers for a first writer: see ss_grad_fresh in
 * core/graph_internal.h. */
#include "core/graph_internal.h"

float *ss_grad_fresh(ss_graph *g, ss_tensor *t, int *fresh)
{
    *fresh = 0;
    if (t->grad || t->base) return ss_grad(g, t);
    t->grad = ss_scratch(g, t->numel);
    *fresh = t->grad != NULL;
    return t->grad;
}

float *ss_grad_take(ss_graph *g, ss_tensor *x, ss_tensor *out, int *fresh)
{
    if (!x->grad && !x->base && !out->base && out->grad && x->numel == out->numel) {
        x->grad = out->grad; /* dead after this node: reuse it in place */
        *fresh = 1;
        return x->grad;
    }
    return ss_grad_fresh(g, x, fresh);
}
