/* selfsup — tensors, the step arena, and the autodiff graph.
 *
 * A tensor is float32, up to SS_MAX_DIMS dimensions, with shape and strides
 * (in elements). Two kinds of storage exist:
 *
 *   - parameters and buffers live in an ss_params block (see nn.h) and
 *     persist across steps; their gradients live in a parallel block;
 *   - activations and temporaries of one step come from the graph's arena,
 *     which is reset at the start of each step (ss_graph_reset). The arena
 *     grows on demand and, after a reset, consolidates into one chunk as
 *     large as the previous step needed: it is sized by measurement.
 *
 * Autodiff is a tape: each op that produces a tensor requiring a gradient
 * appends a node (backward function + inputs + saved state). ss_backward()
 * walks the tape in reverse; gradients accumulate with +=, so a tensor used
 * twice receives the sum.
 *
 * Views (reshape, permute, slice) share data with their base tensor and also
 * share gradient storage: a view's gradient is the matching window of the
 * base's gradient, so no backward node is needed for a view.
 *
 * Error handling in a forward pass: an op given bad shapes returns NULL and
 * records a message in the graph (and ss_errmsg()); every op given a NULL
 * input returns NULL. A model's forward therefore needs one check at its
 * end: `if (!loss) return ss_graph_status(g);`.
 */
#ifndef SELFSUP_TENSOR_H
#define SELFSUP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_MAX_DIMS 5

enum {
    SS_T_REQUIRES_GRAD = 1 << 0, /* gradient wanted */
    SS_T_PARAM = 1 << 1,         /* trainable parameter (persistent) */
    SS_T_BUFFER = 1 << 2,        /* persistent, not trained (BN running stats) */
    SS_T_NO_DECAY = 1 << 3       /* parameter excluded from weight decay */
};

typedef struct ss_tensor {
    float *data;       /* first element (views point inside the base) */
    float *grad;       /* same layout as data; NULL until needed */
    int64_t shape[SS_MAX_DIMS];
    int64_t stride[SS_MAX_DIMS]; /* in elements */
    int ndim;
    int flags;
    int64_t numel;
    struct ss_tensor *base; /* for views: the tensor owning the storage */
    int64_t offset;         /* for views: element offset into base storage */
    const char *name;       /* parameters: state_dict name */
} ss_tensor;

/* ---- shape helpers (no graph needed) --------------------------------- */
int ss_tensor_is_contiguous(const ss_tensor *t);
/* Fill shape/stride/numel for a contiguous tensor. */
void ss_tensor_set_shape(ss_tensor *t, int ndim, const int64_t *shape);
int ss_shape_equal(const ss_tensor *a, const ss_tensor *b);
/* "[2,3,4]" into buf; returns buf. */
const char *ss_shape_str(const ss_tensor *t, char *buf, size_t n);

/* ---- arena ------------------------------------------------------------ */
typedef struct ss_arena ss_arena;
ss_arena *ss_arena_new(size_t initial_bytes);
void ss_arena_free(ss_arena *a);
/* 64-byte aligned; NULL only when the system is out of memory. */
void *ss_arena_alloc(ss_arena *a, size_t bytes);
void *ss_arena_calloc(ss_arena *a, size_t bytes);
void ss_arena_reset(ss_arena *a);
size_t ss_arena_used(const ss_arena *a);
size_t ss_arena_peak(const ss_arena *a);
size_t ss_arena_capacity(const ss_arena *a);

/* ---- graph ------------------------------------------------------------ */
typedef struct ss_graph ss_graph;
typedef struct ss_node ss_node;
typedef void (*ss_backward_fn)(ss_graph *g, ss_node *n);

#define SS_NODE_MAX_IN 4
struct ss_node {
    const char *op;                 /* op name, for errors and NaN reports */
    ss_backward_fn backward;
    ss_tensor *out;
    ss_tensor *in[SS_NODE_MAX_IN];
    int nin;
    void *saved;    /* op-specific saved state (arena memory) */
    int64_t i[8];   /* small integer arguments */
    float f[4];     /* small float arguments */
};

ss_graph *ss_graph_new(void);
void ss_graph_free(ss_graph *g);
/* Start a new step: drop the tape and all arena memory. */
void ss_graph_reset(ss_graph *g);
/* Training mode: batch norm uses batch statistics, dropout is active. */
void ss_graph_set_training(ss_graph *g, int training);
int ss_graph_training(const ss_graph *g);
/* When off, ops record no tape (inference, target networks). */
void ss_graph_set_grad_enabled(ss_graph *g, int enabled);
int ss_graph_grad_enabled(const ss_graph *g);
/* When on, every op output is checked for NaN/Inf; the first offending op
 * turns the graph's status into SS_ERR_NAN with the op name. */
void ss_graph_set_check_finite(ss_graph *g, int on);
/* SS_OK, or the first error recorded during this step. */
ss_status ss_graph_status(const ss_graph *g);
const char *ss_graph_errmsg(const ss_graph *g);
ss_arena *ss_graph_arena(ss_graph *g);
/* Random stream for ops that need one (dropout); seeded per step by caller. */
void ss_graph_set_seed(ss_graph *g, uint64_t seed, uint64_t step);
uint64_t ss_graph_next_random(ss_graph *g); /* counter-based, deterministic */
/* Batch reducer for synchronised batch norm (data-parallel training): when
 * set, batch_norm in training mode sums its per-channel statistics (forward)
 * and gradient sums (backward) over all processes through fn, which must sum
 * n doubles in place across them (ss_dist_batch_reduce). NULL (the default)
 * = statistics of the local batch only. */
typedef void (*ss_batch_reduce_fn)(double *x, int64_t n);
void ss_graph_set_batch_reduce(ss_graph *g, ss_batch_reduce_fn fn);
ss_batch_reduce_fn ss_graph_batch_reduce(const ss_graph *g);

/* New contiguous tensor in the arena (uninitialised / zeroed). */
ss_tensor *ss_new(ss_graph *g, int ndim, const int64_t *shape);
ss_tensor *ss_zeros(ss_graph *g, int ndim, const int64_t *shape);
ss_tensor *ss_new_like(ss_graph *g, const ss_tensor *t);
/* Short forms. */
ss_tensor *ss_new1(ss_graph *g, int64_t a);
ss_tensor *ss_new2(ss_graph *g, int64_t a, int64_t b);
ss_tensor *ss_new3(ss_graph *g, int64_t a, int64_t b, int64_t c);
ss_tensor *ss_new4(ss_graph *g, int64_t a, int64_t b, int64_t c, int64_t d);
/* Wrap caller memory as a leaf input (no copy; no gradient). */
ss_tensor *ss_wrap(ss_graph *g, float *data, int ndim, const int64_t *shape);

/* The gradient buffer of t, allocated zeroed on first use (for views, the
 * window into the base's gradient). Used by backward functions. */
float *ss_grad(ss_graph *g, ss_tensor *t);

/* Record an op. Called by op implementations after computing `out`.
 * Returns the node (or NULL when no gradient is needed, in which case the
 * op needs no saved state). Sets out's REQUIRES_GRAD flag as appropriate. */
ss_node *ss_record(ss_graph *g, const char *op, ss_backward_fn bw,
                   ss_tensor *out, int nin, ss_tensor **in);
/* Does any input need a gradient (and is grad enabled)? */
int ss_needs_grad(ss_graph *g, int nin, ss_tensor **in);
/* Record a shape/argument error for op `op`; returns NULL. */
ss_tensor *ss_op_error(ss_graph *g, const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Reverse pass from a scalar (numel 1) loss: seeds dloss = 1. */
ss_status ss_backward(ss_graph *g, ss_tensor *loss);
/* Reverse pass with an explicit seed gradient (same shape as out). */
ss_status ss_backward_seed(ss_graph *g, ss_tensor *out, const float *seed);

/* Number of nodes on the tape (for tests and diagnostics). */
int ss_graph_num_nodes(const ss_graph *g);

#ifdef __cplusplus
}
#endif
#endif
