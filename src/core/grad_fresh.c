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
