/* Data-parallel support over MPI (see include/selfsup/dist.h). Built with
 * MPI when CMake finds it (SS_HAVE_MPI); every call degrades to the
 * single-process identity otherwise, and also when the process was not
 * started by an MPI launcher (so plain runs, tests and sanitizer builds
 * never initialise MPI). */
#include "selfsup/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph_internal.h"

#ifdef SS_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_world = 1, g_active = 0;
static uint64_t g_bytes = 0;

int ss_dist_built_with_mpi(void)
{
#ifdef SS_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* Launched by mpirun / srun / a PMI launcher? */
static int launched_by_mpi(void)
{
    const char *force = getenv("SS_DIST");
    if (force && !strcmp(force, "mpi")) return 1;
    if (force && !strcmp(force, "none")) return 0;
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

ss_status ss_dist_init(int *argc, char ***argv)
{
    if (g_active) return SS_OK;
    if (!launched_by_mpi()) return SS_OK;
#ifdef SS_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS)
        return ss_seterr(SS_ERR_IO, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    g_active = 1;
    return SS_OK;
#else
    (void)argc;
    (void)argv;
    const char *force = getenv("SS_DIST");
    if (force && !strcmp(force, "mpi"))
        return ss_seterr(SS_ERR_INVALID, "SS_DIST=mpi: this selfsup was built without MPI (configure with "
                                         "-DSS_MPI=ON and an MPI development package)");
    /* Started by mpirun but no MPI inside: each copy would train alone. */
    if (getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1)
        return ss_seterr(SS_ERR_INVALID, "started by mpirun with %s processes, but this selfsup was built "
                                         "without MPI", getenv("OMPI_COMM_WORLD_SIZE"));
    return SS_OK;
#endif
}

void ss_dist_finalize(void)
{
#ifdef SS_HAVE_MPI
    if (g_active) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
    }
#endif
    g_active = 0;
    g_rank = 0;
    g_world = 1;
}

void ss_dist_abort(int code)
{
#ifdef SS_HAVE_MPI
    if (g_active && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#else
    (void)code;
#endif
}

int ss_dist_rank(void) { return g_rank; }
int ss_dist_world(void) { return g_world; }
uint64_t ss_dist_bytes_reduced(void) { return g_bytes; }

#ifdef SS_HAVE_MPI
#define CHUNK (INT_MAX / 8) /* elements per MPI call */

static ss_status allreduce(void *x, int64_t n, MPI_Datatype t, size_t esz, MPI_Op op)
{
    char *p = x;
    g_bytes += (uint64_t)n * esz;
    for (int64_t i = 0; i < n; i += CHUNK) {
        int cnt = (int)(n - i < CHUNK ? n - i : CHUNK);
        if (MPI_Allreduce(MPI_IN_PLACE, p + (size_t)i * esz, cnt, t, op, MPI_COMM_WORLD) != MPI_SUCCESS)
            return ss_seterr(SS_ERR_IO, "MPI_Allreduce of %d values failed", cnt);
    }
    return SS_OK;
}
#endif

ss_status ss_dist_allreduce_sum(float *x, int64_t n)
{
    if (g_world <= 1 || n <= 0) return SS_OK;
#ifdef SS_HAVE_MPI
    return allreduce(x, n, MPI_FLOAT, sizeof(float), MPI_SUM);
#else
    (void)x;
    return SS_OK;
#endif
}

ss_status ss_dist_allreduce_mean(float *x, int64_t n)
{
    if (g_world <= 1 || n <= 0) return SS_OK;
    ss_status s = ss_dist_allreduce_sum(x, n);
    if (s) return s;
    const float inv = 1.0f / (float)g_world;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
    return SS_OK;
}

ss_status ss_dist_allreduce_sum_f64(double *x, int64_t n)
{
    if (g_world <= 1 || n <= 0) return SS_OK;
#ifdef SS_HAVE_MPI
    return allreduce(x, n, MPI_DOUBLE, sizeof(double), MPI_SUM);
#else
    (void)x;
    return SS_OK;
#endif
}

ss_status ss_dist_broadcast(float *x, int64_t n, int root)
{
    if (g_world <= 1 || n <= 0) return SS_OK;
#ifdef SS_HAVE_MPI
    for (int64_t i = 0; i < n; i += CHUNK) {
        int cnt = (int)(n - i < CHUNK ? n - i : CHUNK);
        if (MPI_Bcast(x + i, cnt, MPI_FLOAT, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return ss_seterr(SS_ERR_IO, "MPI_Bcast of %d values failed", cnt);
    }
#else
    (void)x;
    (void)root;
#endif
    return SS_OK;
}

void ss_dist_barrier(void)
{
#ifdef SS_HAVE_MPI
    if (g_world > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void ss_dist_batch_reduce(double *x, int64_t n) { (void)ss_dist_allreduce_sum_f64(x, n); }

ss_status ss_dist_sync_params(ss_params *p)
{
    if (g_world <= 1) return SS_OK;
    int64_t n = 0, nb = 0;
    float *v = ss_params_values(p, &n), *b = ss_params_buffers(p, &nb);
    ss_status s = v ? ss_dist_broadcast(v, n, 0) : SS_OK;
    if (!s && b) s = ss_dist_broadcast(b, nb, 0);
    return s;
}

ss_status ss_dist_average_buffers(ss_params *p)
{
    if (g_world <= 1) return SS_OK;
    int64_t nb = 0;
    float *b = ss_params_buffers(p, &nb);
    return b ? ss_dist_allreduce_mean(b, nb) : SS_OK;
}

ss_status ss_dist_average_grads(ss_params *p)
{
    if (g_world <= 1) return SS_OK;
    int64_t n = 0;
    float *gr = ss_params_grads(p, &n);
    return gr ? ss_dist_allreduce_mean(gr, n) : SS_OK;
}

/* ---- all-gather op ----------------------------------------------------------- */
#ifdef SS_HAVE_MPI
typedef struct gather_saved {
    int *counts, *displs; /* floats per rank / offsets into the output */
} gather_saved;

static void allgather_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    const gather_saved *sv = n->saved;
    float *gx = ss_grad(g, x);
    float *tmp = ss_scratch(g, x->numel > 0 ? x->numel : 1);
    if (!gx || !tmp) return;
    /* Sum every rank's output gradient and keep this rank's rows. */
    g_bytes += (uint64_t)n->out->numel * sizeof(float);
    MPI_Reduce_scatter(n->out->grad, tmp, sv->counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int64_t i = 0; i < x->numel; i++) gx[i] += tmp[i];
}
#endif

ss_tensor *ss_dist_allgather_rows(ss_graph *g, ss_tensor *x)
{
    SS_CHECK_IN1(g, x);
    if (g_world <= 1) return x;
#ifdef SS_HAVE_MPI
    if (x->ndim < 1) return ss_op_error(g, "allgather_rows", "needs a tensor with rows, got a scalar");
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    int64_t row = x->shape[0] > 0 ? x->numel / x->shape[0] : 0;
    if (x->numel > INT_MAX) return ss_op_error(g, "allgather_rows", "%lld values exceed MPI's count", (long long)x->numel);
    /* Everyone's row count and row size (to check the trailing shapes). */
    int64_t mine[2] = {x->shape[0], row};
    int64_t *all = ss_scratch_bytes(g, sizeof(int64_t) * 2 * (size_t)g_world);
    gather_saved *sv = ss_scratch_bytes(g, sizeof *sv);
    int *counts = ss_scratch_bytes(g, sizeof(int) * (size_t)g_world);
    int *displs = ss_scratch_bytes(g, sizeof(int) * (size_t)g_world);
    if (!all || !sv || !counts || !displs) return NULL;
    MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
    int64_t rows = 0, off = 0;
    for (int r = 0; r < g_world; r++) {
        if (all[2 * r + 1] != row && all[2 * r] > 0 && x->shape[0] > 0)
            return ss_op_error(g, "allgather_rows", "rank %d has rows of %lld values, rank %d of %lld", r,
                               (long long)all[2 * r + 1], g_rank, (long long)row);
        counts[r] = (int)(all[2 * r] * row);
        displs[r] = (int)off;
        off += (int64_t)counts[r];
        rows += all[2 * r];
        if (off > INT_MAX) return ss_op_error(g, "allgather_rows", "gathered size exceeds MPI's count");
    }
    int64_t shape[8];
    int nd = x->ndim < 8 ? x->ndim : 8;
    for (int d = 0; d < nd; d++) shape[d] = x->shape[d];
    shape[0] = rows;
    ss_tensor *out = ss_new(g, nd, shape);
    if (!out) return NULL;
    MPI_Allgatherv(x->data, (int)x->numel, MPI_FLOAT, out->data, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    ss_node *n = ss_record(g, "allgather_rows", allgather_backward, out, 1, &x);
    if (n) {
        sv->counts = counts;
        sv->displs = displs;
        n->saved = sv;
    }
    return out;
#else
    return x;
#endif
}
