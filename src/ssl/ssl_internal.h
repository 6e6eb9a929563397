#ifndef SS_SSL_INTERNAL_H
#define SS_SSL_INTERNAL_H
#include "core/graph_internal.h"
#include "nn/params_internal.h"
#include "selfsup/ssl.h"

/* Linear -> BN1d -> ReLU -> Linear (projector / predictor / expander).
 * Names NAME.fc1, NAME.bn1, NAME.fc2. */
typedef struct ss_mlp {
    ss_linear_layer fc1, fc2;
    ss_tensor *g, *b, *rm, *rv;
} ss_mlp;
ss_status ss_mlp_init(ss_mlp *m, ss_params *p, const char *name, int in, int hidden, int out);
ss_tensor *ss_mlp_forward(ss_graph *g, const ss_mlp *m, ss_tensor *x);

/* [n images] -> float batch tensor of view v */
static inline ss_tensor *batch_view(ss_graph *g, const ss_batch *b, int v)
{
    return ss_wrap(g, b->x[v], 4, (int64_t[]){b->n, b->c, b->h, b->w});
}

/* ss_mae_random_mask for items i0..i0+n-1 of a (global) batch: item i0+i
 * gets the mask item i0+i of one whole-batch call gets (data parallel). */
int ss_mae_random_mask_at(int64_t n, int64_t i0, int L, float ratio, uint64_t seed, uint64_t stream,
                          int32_t *keep_idx, float *mask);

/* Data parallel: z [2n,D] (this rank's view-0 rows, then view-1 rows) ->
 * [2nW,D] holding view 0 of every rank (rank order) then view 1, the
 * layout one process with the whole global batch would have. Gradients
 * flow back to this rank's rows (ss_dist_allgather_rows). z itself when
 * single-process. */
ss_tensor *ss_ssl_gather_views(ss_graph *g, ss_tensor *z, int64_t n);

extern const ss_method ss_method_rotation, ss_method_simclr, ss_method_mae, ss_method_byol, ss_method_vicreg;
#endif
