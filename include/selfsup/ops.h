/* selfsup — differentiable operations.
 *
 * Every op takes the graph, returns a new tensor from the graph's arena (or a
 * view), and records its backward on the tape when an input needs a
 * gradient. A NULL input gives a NULL output (see tensor.h). Shapes are in
 * the comment of each op; images are NCHW; Linear weights are [out, in] as
 * in PyTorch.
 *
 * Where each op lives (forward and backward adjacent):
 *   src/ops/view.c        reshape, permute, slice, contiguous, detach, concat,
 *                         index_select
 *   src/ops/elementwise.c add/sub/mul/div (broadcast), scale, add_scalar,
 *                         relu, gelu, sigmoid, tanh, dropout
 *   src/ops/reduce.c      sum, mean
 *   src/ops/matmul.c      matmul (batched, transposes), linear
 *   src/ops/conv.c        conv2d
 *   src/ops/pool.c        max_pool2d, avg_pool2d, global_avg_pool
 *   src/ops/norm.c        batch_norm
 *   src/ops/norm_ln.c     layer_norm, l2_normalize
 *   src/ops/softmax.c     softmax, log_softmax, cross_entropy, mse, cosine_sim
 *   src/ops/embedding.c   embedding
 *   src/ops/attention.c   scaled dot-product multi-head attention
 */
#ifndef SELFSUP_OPS_H
#define SELFSUP_OPS_H

#include "selfsup/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- views and structure ---------------------------------------------- */
/* Same data, new shape (input must be contiguous; one -1 allowed). */
ss_tensor *ss_reshape(ss_graph *g, ss_tensor *x, int ndim, const int64_t *shape);
/* Strided view with dimensions reordered: out.shape[i] = x.shape[perm[i]]. */
ss_tensor *ss_permute(ss_graph *g, ss_tensor *x, const int *perm);
/* View of x[..., start:start+len, ...] along `dim`. */
ss_tensor *ss_slice(ss_graph *g, ss_tensor *x, int dim, int64_t start, int64_t len);
/* x itself when contiguous, else a contiguous copy (with backward). */
ss_tensor *ss_contiguous(ss_graph *g, ss_tensor *x);
/* Same values, no gradient flows back (stop-gradient). */
ss_tensor *ss_detach(ss_graph *g, ss_tensor *x);
/* Concatenate n tensors along dim (equal other dims). */
ss_tensor *ss_concat(ss_graph *g, int n, ss_tensor **xs, int dim);
/* out = x gathered at idx[0..n) along dim (idx values in [0, x.shape[dim])).
 * idx is copied. MAE keeps its visible tokens with this. */
ss_tensor *ss_index_select(ss_graph *g, ss_tensor *x, int dim, const int32_t *idx, int64_t n);

/* ---- element-wise ------------------------------------------------------ */
/* Broadcasting as NumPy: shapes aligned on the right, size-1 dims stretch. */
ss_tensor *ss_add(ss_graph *g, ss_tensor *a, ss_tensor *b);
ss_tensor *ss_sub(ss_graph *g, ss_tensor *a, ss_tensor *b);
ss_tensor *ss_mul(ss_graph *g, ss_tensor *a, ss_tensor *b);
ss_tensor *ss_div(ss_graph *g, ss_tensor *a, ss_tensor *b);
ss_tensor *ss_scale(ss_graph *g, ss_tensor *x, float s);      /* s*x */
ss_tensor *ss_add_scalar(ss_graph *g, ss_tensor *x, float s); /* x+s */
ss_tensor *ss_relu(ss_graph *g, ss_tensor *x);
ss_tensor *ss_gelu(ss_graph *g, ss_tensor *x); /* erf form */
ss_tensor *ss_sigmoid(ss_graph *g, ss_tensor *x);
ss_tensor *ss_tanh(ss_graph *g, ss_tensor *x);
/* sqrt(x) for x > 0, 0 (and zero gradient) for x <= 0. */
ss_tensor *ss_sqrt(ss_graph *g, ss_tensor *x);
/* Inverted dropout with probability p (identity in eval mode or p == 0). */
ss_tensor *ss_dropout(ss_graph *g, ss_tensor *x, float p);

/* ---- reductions -------------------------------------------------------- */
/* Sum/mean over axis (keepdim keeps it as size 1); axis = -1 means the last
 * dim; ss_sum_all/ss_mean_all give a scalar of shape [1]. */
ss_tensor *ss_sum(ss_graph *g, ss_tensor *x, int axis, int keepdim);
ss_tensor *ss_mean(ss_graph *g, ss_tensor *x, int axis, int keepdim);
ss_tensor *ss_sum_all(ss_graph *g, ss_tensor *x);
ss_tensor *ss_mean_all(ss_graph *g, ss_tensor *x);

/* ---- matrix products --------------------------------------------------- */
/* a: [..., M, K] (or [..., K, M] if ta), b: [..., K, N] (or [..., N, K] if tb)
 * -> [..., M, N]. Leading (batch) dims must be equal, or b may be 2-D and is
 * then shared across the batch. */
ss_tensor *ss_matmul(ss_graph *g, ss_tensor *a, ss_tensor *b, int ta, int tb);
/* x: [..., in], w: [out, in], b: [out] or NULL -> [..., out]. */
ss_tensor *ss_linear(ss_graph *g, ss_tensor *x, ss_tensor *w, ss_tensor *b);

/* ---- convolution and pooling (NCHW) ------------------------------------ */
/* x: [N,C,H,W], w: [O,C,kh,kw], b: [O] or NULL -> [N,O,H',W']. */
ss_tensor *ss_conv2d(ss_graph *g, ss_tensor *x, ss_tensor *w, ss_tensor *b,
                     int stride, int pad);
/* kernel k, stride s, padding p (max pool pads with -inf). */
ss_tensor *ss_max_pool2d(ss_graph *g, ss_tensor *x, int k, int s, int p);
/* avg pool counts padding as zeros (count_include_pad=True as PyTorch). */
ss_tensor *ss_avg_pool2d(ss_graph *g, ss_tensor *x, int k, int s, int p);
/* [N,C,H,W] -> [N,C] */
ss_tensor *ss_global_avg_pool(ss_graph *g, ss_tensor *x);

/* ---- normalisation ----------------------------------------------------- */
/* Batch norm over [N,C] or [N,C,H,W] (statistics per channel C).
 * Training mode: batch statistics (biased variance for normalising), and the
 * running statistics are updated in place with PyTorch's rule
 * (running = (1-momentum)*running + momentum*batch, unbiased variance).
 * Eval mode: running statistics. running_* may be NULL (then always batch
 * statistics). gamma/beta: [C]. */
ss_tensor *ss_batch_norm(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta,
                         ss_tensor *running_mean, ss_tensor *running_var,
                         float momentum, float eps);
/* ss_relu(ss_batch_norm(...)) in one op (same bits): one activation tensor
 * and one gradient fewer, two memory passes fewer. */
ss_tensor *ss_batch_norm_relu(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta,
                              ss_tensor *running_mean, ss_tensor *running_var,
                              float momentum, float eps);
/* Layer norm over the last dim: x [..., D], gamma/beta [D] (may be NULL).
 * (x - mean) / sqrt(var + eps) * gamma + beta with the biased variance, as
 * PyTorch. */
ss_tensor *ss_layer_norm(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta,
                         float eps);
/* x / max(||x||_2, eps) along the last dim (F.normalize); eps > 0. */
ss_tensor *ss_l2_normalize(ss_graph *g, ss_tensor *x, float eps);

/* ---- softmax and losses ------------------------------------------------ */
/* Along the last dim (numerically stable: the row max is subtracted). */
ss_tensor *ss_softmax(ss_graph *g, ss_tensor *x);
ss_tensor *ss_log_softmax(ss_graph *g, ss_tensor *x);
/* logits [N,C], targets[N] in [0,C) or -1 to ignore -> [1]. As PyTorch:
 * loss_i = (1-ls) * (-log p_{i,y_i}) + ls * mean_c(-log p_{i,c}), averaged
 * over the non-ignored rows; 0 (and zero gradients) when every row is
 * ignored. ls = label_smoothing in [0,1]. A target outside [-1,C) is an
 * SS_ERR_RANGE error naming the row and the value. targets is copied. */
ss_tensor *ss_cross_entropy(ss_graph *g, ss_tensor *logits, const int32_t *targets,
                            float label_smoothing);
/* Soft-target cross-entropy: scale * sum_ic t_ic log softmax(logits_i)_c
 * -> [1] (scale -1/N gives the mean over rows of -sum t log p). targets
 * [N*C] stays the caller's and must live until backward (e.g. in the
 * graph's arena). Distillation, --semi and the docbow pretext use it. */
ss_tensor *ss_soft_cross_entropy(ss_graph *g, ss_tensor *logits, float *targets, float scale);
/* mean((a-b)^2) over all elements -> [1]; shapes must be equal. */
ss_tensor *ss_mse(ss_graph *g, ss_tensor *a, ss_tensor *b);
/* a [N,D], b [M,D] -> [N,M]:
 *   out[n,m] = a_n . b_m / (max(||a_n||, eps) * max(||b_m||, eps)).
 * a and b may be the same tensor (SimCLR's similarity matrix); the gradients
 * of both sides are then summed. eps > 0. */
ss_tensor *ss_cosine_sim(ss_graph *g, ss_tensor *a, ss_tensor *b, float eps);

/* ---- embeddings and attention ------------------------------------------ */
/* table [V,D], ids (ndim dims of the given shape, ndim < SS_MAX_DIMS)
 * -> [shape..., D]. An id outside [0,V) is an SS_ERR_RANGE error naming its
 * position and value. ids is copied. The backward scatter-adds into the
 * table's gradient deterministically (no atomics). */
ss_tensor *ss_embedding(ss_graph *g, ss_tensor *table, const int32_t *ids,
                        int ndim, const int64_t *shape);
/* q [B,Tq,H*Dh], k and v [B,Tk,H*Dh] (heads packed in the last dim; Tq may
 * differ from Tk for cross-attention) -> [B,Tq,H*Dh]:
 *   out[b,t,h*Dh:(h+1)*Dh] = softmax(q_h k_h^T / sqrt(Dh)) v_h per head.
 * key_mask: NULL or a multiplicative keep-mask [B,Tk] (row-major floats):
 * key_mask[b,j] = 1 keeps key j of item b, 0 drops it (its probability is
 * exactly 0); any other value is an SS_ERR_RANGE error. A query whose keys
 * are all dropped outputs zeros (not NaN) and passes no gradient. The mask is
 * read during the call only. q/k/v may be strided views with a contiguous
 * last dim (e.g. slices of one fused qkv projection): they are used in place
 * without copies. Keeps B*H*Tq*Tk floats for the backward. */
ss_tensor *ss_attention(ss_graph *g, ss_tensor *q, ss_tensor *k, ss_tensor *v,
                        int heads, const float *key_mask);

#ifdef __cplusplus
}
#endif
#endif
