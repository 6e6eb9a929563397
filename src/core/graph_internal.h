/* Internal helpers shared by op implementations. */
#ifndef SS_GRAPH_INTERNAL_H
#define SS_GRAPH_INTERNAL_H

#include "selfsup/ops.h"
#include "selfsup/rng.h"
#include "selfsup/tensor.h"

/* Allocate n floats (uninitialised) / zeroed from the graph's arena; on
 * failure the graph's status becomes SS_ERR_NOMEM and NULL is returned. */
float *ss_scratch(ss_graph *g, int64_t n);
float *ss_scratch_zero(ss_graph *g, int64_t n);
void *ss_scratch_bytes(ss_graph *g, size_t bytes);

/* Any input NULL, or graph already failed -> 1 (op must return NULL). */
int ss_bad_inputs(ss_graph *g, int nin, ss_tensor **in);

#define SS_CHECK_IN1(g, a) do { ss_tensor *_in[1] = {a}; \
    if (ss_bad_inputs(g, 1, _in)) return NULL; } while (0)
#define SS_CHECK_IN2(g, a, b) do { ss_tensor *_in[2] = {a, b}; \
    if (ss_bad_inputs(g, 2, _in)) return NULL; } while (0)

/* As ss_op_error, with a status other than SS_ERR_SHAPE (SS_ERR_RANGE for a
 * label or index out of range, SS_ERR_INVALID for a bad argument). */
ss_tensor *ss_op_error_code(ss_graph *g, ss_status code, const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* As ss_grad, for an op whose backward writes EVERY element of t's
 * gradient: when the buffer does not exist yet (t is no view and nothing has
 * flowed into it), it is allocated without the zero fill and *fresh = 1; the
 * caller must then store (=) instead of accumulate (+=). Otherwise *fresh = 0
 * and the existing buffer is returned (accumulate). */
float *ss_grad_fresh(ss_graph *g, ss_tensor *t, int *fresh);

/* As ss_grad_fresh, for an elementwise op (out and x of one size, dx[i]
 * computed from dy[i] and saved values at i only): when x has no gradient
 * yet, x takes over out's gradient buffer (dead once this node's backward
 * has run: every consumer of out ran before) and *fresh = 1, so dx is
 * written in place over dy and no new buffer is used. After the backward,
 * out->grad then holds dx, not dy. */
float *ss_grad_take(ss_graph *g, ss_tensor *x, ss_tensor *out, int *fresh);

/* Does tensor t need a gradient (flag set)? */
static inline int ss_req(const ss_tensor *t) { return t && (t->flags & SS_T_REQUIRES_GRAD); }

#endif
