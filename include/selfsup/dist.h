/* selfsup — data-parallel training over MPI.
 *
 *     mpirun -np 4 selfsup pretrain --method simclr --batch 64 ...
 *
 * Every rank holds a full copy of the model and runs the same steps on its
 * own slice of each global batch (see ss_loader_opts.rank/world: batch b of
 * rank r is items [b*W*B + r*B, b*W*B + (r+1)*B) of the epoch permutation,
 * so W ranks with --batch B see exactly what one process sees with
 * --batch W*B). After backward, ss_fit averages the gradient block over the
 * ranks (ss_dist_allreduce_mean), so every rank applies the same update.
 *
 * Contrastive / variance losses gather embeddings (ss_dist_allgather_rows)
 * so negatives and statistics are global. Batch norm is per rank unless the
 * graph has a batch reducer (ss_graph_set_batch_reduce with
 * ss_dist_batch_reduce: synchronised BN, "--sync-bn"); per-rank running
 * statistics are averaged at every epoch end and before every checkpoint.
 *
 * MPI is used only when the library was built with it (CMake option SS_MPI,
 * SS_HAVE_MPI) and the process was started by an MPI launcher (OMPI_*,
 * PMI_*, PMIX_* environment; or SS_DIST=mpi). Otherwise every call below is
 * the single-process identity (rank 0 of 1), so callers need no #ifdefs.
 * Collectives must be called by every rank in the same order.
 */
#ifndef SELFSUP_DIST_H
#define SELFSUP_DIST_H

#include <stdint.h>

#include "selfsup/nn.h"
#include "selfsup/status.h"
#include "selfsup/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start MPI when launched by mpirun (idempotent; argc/argv may be NULL).
 * Single process otherwise. SS_ERR_INVALID when SS_DIST=mpi was asked for
 * but the library has no MPI. */
ss_status ss_dist_init(int *argc, char ***argv);
/* Finalize MPI (no-op in a single process). */
void ss_dist_finalize(void);
/* Stop every rank (MPI_Abort) after a failure on one of them, so the others
 * do not wait forever in a collective; a single process just returns. */
void ss_dist_abort(int code);
/* 1 when the library was built with MPI. */
int ss_dist_built_with_mpi(void);
/* This process' rank in [0, world) and the number of processes (1 when
 * single-process or before ss_dist_init). */
int ss_dist_rank(void);
int ss_dist_world(void);

/* In-place all-reduces over all ranks (identity when world == 1). Arrays of
 * any length (split into MPI-sized pieces). */
ss_status ss_dist_allreduce_sum(float *x, int64_t n);
ss_status ss_dist_allreduce_mean(float *x, int64_t n);
ss_status ss_dist_allreduce_sum_f64(double *x, int64_t n);
/* Copy root's x to every rank. */
ss_status ss_dist_broadcast(float *x, int64_t n, int root);
void ss_dist_barrier(void);
/* Bytes this process has passed to all-reduce calls so far (payload, not
 * wire traffic), for the scaling report. */
uint64_t ss_dist_bytes_reduced(void);

/* Batch reducer for synchronised batch norm: sums n doubles over all ranks
 * in place. Pass to ss_graph_set_batch_reduce. */
void ss_dist_batch_reduce(double *x, int64_t n);

/* Model state helpers (collective). */
/* Broadcast trainable values and buffers from rank 0. */
ss_status ss_dist_sync_params(ss_params *p);
/* Average the buffers (BN running statistics) over the ranks. */
ss_status ss_dist_average_buffers(ss_params *p);
/* Average the gradient block over the ranks (the step's gradient sync). */
ss_status ss_dist_average_grads(ss_params *p);

/* Graph op: x [n, ...] on every rank (n may differ per rank, trailing shape
 * must match) -> [sum n, ...] with rank 0's rows first. Backward: the
 * output gradients of all ranks are summed (reduce-scatter) and each rank
 * takes its own rows: each rank computes the same global loss, so the sum
 * is W times the gradient of the global loss; ss_fit's gradient averaging
 * divides by W again. Returns x itself when world == 1. */
ss_tensor *ss_dist_allgather_rows(ss_graph *g, ss_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
