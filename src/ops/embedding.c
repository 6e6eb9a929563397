/* Embedding lookup: table [V,D], ids (any shape, int32) -> [shape..., D].
 *
 * Backward scatter-adds rows of the output gradient into the table's
 * gradient. Determinism without float atomics: the table's columns are split
 * into fixed strips and each strip is owned by one thread, which walks the
 * ids in order. Every gradient element therefore receives its additions in
 * id order whatever the thread count. */
#include <string.h>

#include "core/graph_internal.h"

#define PAR_MIN 16384 /* elements; below this one thread is faster */
#define COL_STRIP 16  /* columns per strip in the backward */

/* n->i: 0 number of ids, 1 D. saved: the ids (int32). */
static void embedding_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *table = n->in[0];
    int64_t cnt = n->i[0], D = n->i[1];
    const int32_t *ids = n->saved;
    const float *go = n->out->grad;
    float *gt = ss_grad(g, table);
    if (!gt) return;
    int64_t strips = (D + COL_STRIP - 1) / COL_STRIP;
#pragma omp parallel for schedule(static) if (cnt * D > PAR_MIN && strips > 1)
    for (int64_t s = 0; s < strips; s++) {
        int64_t c0 = s * COL_STRIP, c1 = c0 + COL_STRIP < D ? c0 + COL_STRIP : D;
        for (int64_t k = 0; k < cnt; k++) {
            float *dst = gt + (int64_t)ids[k] * D;
            const float *src = go + k * D;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

ss_tensor *ss_embedding(ss_graph *g, ss_tensor *table, const int32_t *ids, int ndim, const int64_t *shape)
{
    SS_CHECK_IN1(g, table);
    char s1[64];
    if (table->ndim != 2)
        return ss_op_error(g, "embedding", "table must be [V,D], got %s", ss_shape_str(table, s1, sizeof s1));
    if (ndim < 0 || ndim + 1 > SS_MAX_DIMS || (ndim > 0 && !shape))
        return ss_op_error(g, "embedding", "ids have %d dimensions (at most %d)", ndim, SS_MAX_DIMS - 1);
    int64_t cnt = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return ss_op_error(g, "embedding", "negative ids dimension %lld", (long long)shape[d]);
        cnt *= shape[d];
    }
    if (cnt > 0 && !ids) return ss_op_error_code(g, SS_ERR_INVALID, "embedding", "ids is NULL");
    int64_t V = table->shape[0], D = table->shape[1];
    for (int64_t k = 0; k < cnt; k++)
        if (ids[k] < 0 || ids[k] >= V)
            return ss_op_error_code(g, SS_ERR_RANGE, "embedding", "id %d at position %lld outside [0,%lld)", ids[k],
                                    (long long)k, (long long)V);
    table = ss_contiguous(g, table);
    if (!table) return NULL;
    int64_t oshape[SS_MAX_DIMS];
    for (int d = 0; d < ndim; d++) oshape[d] = shape[d];
    oshape[ndim] = D;
    ss_tensor *out = ss_new(g, ndim + 1, oshape);
    if (!out) return NULL;
    const float *td = table->data;
    float *o = out->data;
#pragma omp parallel for schedule(static) if (cnt * D > PAR_MIN)
    for (int64_t k = 0; k < cnt; k++)
        memcpy(o + k * D, td + (int64_t)ids[k] * D, (size_t)D * sizeof(float));
    ss_node *n = ss_record(g, "embedding", embedding_backward, out, 1, &table);
    if (n) {
        int32_t *saved = ss_scratch_bytes(g, (size_t)(cnt ? cnt : 1) * sizeof(int32_t));
        if (!saved) return NULL;
        if (cnt) memcpy(saved, ids, (size_t)cnt * sizeof(int32_t));
        n->saved = saved;
        n->i[0] = cnt;
        n->i[1] = D;
    }
    return out;
}
