/* Matrix products through CBLAS: batched matmul with transposes, and linear. */
#include <omp.h>
#include <string.h>

#include "core/graph_internal.h"
#include "ops/gemm.h"
#include "selfsup/runtime.h"

#define LIN_PAR_MIN 65536 /* elements below which the bias loops stay on one thread */

/* ---- matmul ----------------------------------------------------------------
 * a: [batch..., M, K] ([.., K, M] if ta); b: [batch..., K, N] ([.., N, K] if tb)
 * or 2-D shared across the batch. out: [batch..., M, N].
 * n->i: 0 ta, 1 tb, 2 batch, 3 M, 4 N, 5 K, 6 b_shared. */
static void matmul_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *a = n->in[0], *b = n->in[1];
    int ta = (int)n->i[0], tb = (int)n->i[1], shared = (int)n->i[6];
    int64_t batch = n->i[2], M = n->i[3], N = n->i[4], K = n->i[5];
    const float *gc = n->out->grad;
    int64_t sa = M * K, sb = shared ? 0 : K * N, sc = M * N;
    ss_flops_add(2.0 * (double)batch * (double)M * (double)N * (double)K * (ss_req(a) + ss_req(b)));
    if (ss_req(a)) {
        int fresh;
        float *ga = ss_grad_fresh(g, a, &fresh);
        if (!ga) return;
        const float beta = fresh ? 0.0f : 1.0f; /* every dA block is written once */
        for (int64_t p = 0; p < batch; p++) {
            const float *B = b->data + p * sb, *C = gc + p * sc;
            float *A = ga + p * sa;
            if (!ta) /* dA[M,K] += dC[M,N] op(B)^T */
                ss_gemm(0, !tb, (int)M, (int)K,
                            (int)N, 1.0f, C, (int)N, B, tb ? (int)K : (int)N, beta, A, (int)K);
            else /* dA[K,M] += op(B)[K,N] dC^T */
                ss_gemm(tb, 1, (int)K, (int)M,
                            (int)N, 1.0f, B, tb ? (int)K : (int)N, C, (int)N, beta, A, (int)M);
        }
    }
    if (ss_req(b)) {
        int fresh;
        float *gb = ss_grad_fresh(g, b, &fresh);
        if (!gb) return;
        const float beta = fresh ? 0.0f : 1.0f;
        if (shared && !ta) {
            /* One GEMM over the flattened batch: rows of a are independent. */
            int64_t R = batch * M;
            if (!tb) /* dB[K,N] += A^T[K,R] dC[R,N] */
                ss_gemm(1, 0, (int)K, (int)N, (int)R, 1.0f, a->data,
                            (int)K, gc, (int)N, beta, gb, (int)N);
            else /* dB[N,K] += dC^T[N,R] A[R,K] */
                ss_gemm(1, 0, (int)N, (int)K, (int)R, 1.0f, gc,
                            (int)N, a->data, (int)K, beta, gb, (int)K);
            return;
        }
        for (int64_t p = 0; p < batch; p++) {
            const float *A = a->data + p * sa, *C = gc + p * sc;
            float *B = gb + p * sb;
            const float bb = p > 0 && shared ? 1.0f : beta; /* a shared dB sums over the batch */
            if (!tb) /* dB[K,N] += op(A)^T[K,M] dC[M,N] */
                ss_gemm(!ta, 0, (int)K, (int)N,
                            (int)M, 1.0f, A, ta ? (int)M : (int)K, C, (int)N, bb, B, (int)N);
            else /* dB[N,K] += dC^T[N,M] op(A)[M,K] */
                ss_gemm(1, ta, (int)N, (int)K,
                            (int)M, 1.0f, C, (int)N, A, ta ? (int)M : (int)K, bb, B, (int)K);
        }
    }
}

ss_tensor *ss_matmul(ss_graph *g, ss_tensor *a, ss_tensor *b, int ta, int tb)
{
    SS_CHECK_IN2(g, a, b);
    a = ss_contiguous(g, a);
    b = ss_contiguous(g, b);
    if (!a || !b) return NULL;
    char s1[64], s2[64];
    if (a->ndim < 2 || b->ndim < 2)
        return ss_op_error(g, "matmul", "needs at least 2-D operands, got %s and %s",
                           ss_shape_str(a, s1, sizeof s1), ss_shape_str(b, s2, sizeof s2));
    int64_t M = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    int64_t K = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t Kb = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    int64_t N = tb ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    int shared = b->ndim == 2 && a->ndim > 2;
    if (K != Kb)
        return ss_op_error(g, "matmul", "inner dimensions differ: %s%s x %s%s",
                           ss_shape_str(a, s1, sizeof s1), ta ? "^T" : "", ss_shape_str(b, s2, sizeof s2),
                           tb ? "^T" : "");
    int64_t batch = 1;
    for (int d = 0; d < a->ndim - 2; d++) batch *= a->shape[d];
    if (!shared) {
        if (a->ndim != b->ndim) return ss_op_error(g, "matmul", "batch dims differ: %s vs %s",
                                                  ss_shape_str(a, s1, sizeof s1), ss_shape_str(b, s2, sizeof s2));
        for (int d = 0; d < a->ndim - 2; d++)
            if (a->shape[d] != b->shape[d])
                return ss_op_error(g, "matmul", "batch dims differ: %s vs %s", ss_shape_str(a, s1, sizeof s1),
                                   ss_shape_str(b, s2, sizeof s2));
    }
    int64_t shape[SS_MAX_DIMS];
    for (int d = 0; d < a->ndim - 2; d++) shape[d] = a->shape[d];
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    ss_tensor *out = ss_new(g, a->ndim, shape);
    if (!out) return NULL;
    if (shared && !ta) {
        ss_gemm(0, tb, (int)(batch * M), (int)N,
                    (int)K, 1.0f, a->data, (int)K, b->data, tb ? (int)K : (int)N, 0.0f, out->data, (int)N);
    } else {
        int64_t sa = M * K, sb = shared ? 0 : K * N, sc = M * N;
        for (int64_t p = 0; p < batch; p++)
            ss_gemm(ta, tb, (int)M,
                        (int)N, (int)K, 1.0f, a->data + p * sa, ta ? (int)M : (int)K, b->data + p * sb,
                        tb ? (int)K : (int)N, 0.0f, out->data + p * sc, (int)N);
    }
    ss_flops_add(2.0 * (double)batch * (double)M * (double)N * (double)K);
    ss_tensor *in[2] = {a, b};
    ss_node *n = ss_record(g, "matmul", matmul_backward, out, 2, in);
    if (n) {
        n->i[0] = ta;
        n->i[1] = tb;
        n->i[2] = batch;
        n->i[3] = M;
        n->i[4] = N;
        n->i[5] = K;
        n->i[6] = shared;
    }
    return out;
}

/* ---- linear -------------------------------------------------------------------
 * x: [..., in], w: [out, in], b: [out] or NULL -> [..., out]. */
static void linear_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t R = n->i[0], IN = n->i[1], OUT = n->i[2];
    const float *go = n->out->grad;
    ss_flops_add(2.0 * (double)R * (double)IN * (double)OUT * (ss_req(x) + ss_req(w)));
    if (ss_req(x)) {
        int fresh;
        float *gx = ss_grad_fresh(g, x, &fresh);
        if (!gx) return;
        /* dx[R,IN] += dy[R,OUT] W[OUT,IN] (= on a fresh buffer) */
        ss_gemm(0, 0, (int)R, (int)IN, (int)OUT, 1.0f, go, (int)OUT,
                    w->data, (int)IN, fresh ? 0.0f : 1.0f, gx, (int)IN);
    }
    if (ss_req(w)) {
        float *gw = ss_grad(g, w);
        if (!gw) return;
        /* dW[OUT,IN] += dy^T[OUT,R] x[R,IN] */
        ss_gemm(1, 0, (int)OUT, (int)IN, (int)R, 1.0f, go, (int)OUT, x->data,
                    (int)IN, 1.0f, gw, (int)IN);
    }
    if (b && ss_req(b)) {
        float *gb = ss_grad(g, b);
        if (!gb) return;
        /* restrict: gb and go never overlap, so the loop over o vectorises.
         * Threads take contiguous ranges of columns (multiples of 8); each
         * gb[o] still sums the rows in order r = 0, 1, ...: the same bits
         * for any thread count. */
        float *restrict gbr = gb;
        const float *restrict gor = go;
        const int64_t nblk = (OUT + 7) / 8;
#pragma omp parallel if (R * OUT >= LIN_PAR_MIN && nblk > 1)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int64_t lo = nblk * t / nt * 8, hi = nblk * (t + 1) / nt * 8;
            if (hi > OUT) hi = OUT;
            for (int64_t r = 0; r < R; r++)
                for (int64_t o = lo; o < hi; o++) gbr[o] += gor[r * OUT + o];
        }
    }
}

ss_tensor *ss_linear(ss_graph *g, ss_tensor *x, ss_tensor *w, ss_tensor *b)
{
    SS_CHECK_IN2(g, x, w);
    x = ss_contiguous(g, x);
    w = ss_contiguous(g, w);
    if (!x || !w) return NULL;
    char s1[64], s2[64];
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return ss_op_error(g, "linear", "input %s does not fit weight %s (expected [..., %lld])",
                           ss_shape_str(x, s1, sizeof s1), ss_shape_str(w, s2, sizeof s2),
                           (long long)(w->ndim == 2 ? w->shape[1] : -1));
    int64_t IN = w->shape[1], OUT = w->shape[0];
    if (b && (b->numel != OUT))
        return ss_op_error(g, "linear", "bias has %lld elements, expected %lld", (long long)b->numel, (long long)OUT);
    int64_t R = IN ? x->numel / IN : 0;
    int64_t shape[SS_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OUT;
    ss_tensor *out = ss_new(g, x->ndim, shape);
    if (!out) return NULL;
    if (b) {
        float *od = out->data;
        const float *bd = b->data;
#pragma omp parallel for schedule(static) if (R * OUT >= LIN_PAR_MIN)
        for (int64_t r = 0; r < R; r++) memcpy(od + r * OUT, bd, (size_t)OUT * sizeof(float));
    }
    ss_gemm(0, 1, (int)R, (int)OUT, (int)IN, 1.0f, x->data, (int)IN, w->data,
                (int)IN, b ? 1.0f : 0.0f, out->data, (int)OUT);
    ss_flops_add(2.0 * (double)R * (double)IN * (double)OUT);
    ss_tensor *in[3] = {x, w, b};
    ss_node *n = ss_record(g, "linear", linear_backward, out, b ? 3 : 2, in);
    if (n) {
        n->i[0] = R;
        n->i[1] = IN;
        n->i[2] = OUT;
    }
    return out;
}
