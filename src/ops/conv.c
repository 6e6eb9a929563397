/* 2-D convolution (NCHW), forward and backward, by im2col + CBLAS sgemm.
 *
 * The batch is processed in chunks of B images (B*Ho*Wo ~ 1024 GEMM columns,
 * column buffer <= 2 MB so it stays in cache). For one chunk:
 *
 *   col [CK, B*P]   CK = C*kh*kw rows (c, ky, kx), P = Ho*Wo; column (b, oy, ox)
 *                   holds x[b, c, oy*s - pad + ky, ox*s - pad + kx] (0 outside)
 *   Y   [O, B*P]  = W [O, CK] · col            (one GEMM for the chunk)
 *   out [b, o, :] = Y[o, b*P : (b+1)*P] + bias[o]   (block copy; when B == 1
 *                   the GEMM writes straight into out)
 *
 * Backward, per chunk, with dYt [O, B*P] the chunk's dy in the same layout:
 *   db  += row sums of dYt
 *   dW  += dYt · col^T                   (col recomputed, not saved)
 *   dx: with stride 1, a square kernel and pad <= k-1 (every 3x3 "same"
 *       conv) dx is the forward convolution of dy with the flipped,
 *       transposed weights W'[c, o, ky, kx] = W[o, c, kh-1-ky, kw-1-kx] and padding kh-1-pad:
 *       im2col(dy) [O*kh*kw, B*P], then Y' [C, B*P] = W' · col, one GEMM
 *       with the long inner dimension O*kh*kw and a C-row output. Otherwise
 *       dcol [CK, B*P] = W^T · dYt (inner dimension O only, a CK-row output
 *       that OpenBLAS zero-fills first), then col2im adds dcol into dx.
 *       Used only where O <= C: there the im2col of dy is no larger than
 *       the dcol it replaces (convnet-s 32->32 at 28x28: dx 1.12-1.19x
 *       faster, 64->64 at 14x14 0.97-1.14x; with O = 2C it was 0.87x).
 *       Both forms are tested against the reference
 *       (ss_conv2d_set_dx_transposed switches).
 *
 * Threads: with enough chunks (>= 2 per thread) each thread takes a
 * contiguous range of images and runs im2col + single-threaded GEMMs on its
 * own scratch (OpenBLAS runs one thread inside an OpenMP region); dW and db
 * go to per-thread partials that are added in thread order. With few chunks
 * the chunks run one after another with threaded GEMMs and loops instead.
 *
 * Determinism: every parallel loop writes disjoint outputs (im2col rows,
 * dx planes, bias entries) and sums in a fixed order, so the same thread
 * count gives the same bits.
 *
 * A naive direct-loop reference (ss_conv2d_reference_*) is kept at the end of
 * this file; tests/test_grad_conv.c compares the fast path with it. */
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "core/graph_internal.h"
#include "ops/gemm.h"
#include "selfsup/runtime.h"
#include "ops/conv_ref.h"
#include "ops/conv_winograd.h"

#define CONV_CHUNK_DEFAULT ((int64_t)1 << 19) /* floats in one column buffer (2 MB) */
#define CONV_COLS 1024                        /* GEMM columns (images*Ho*Wo) aimed for per chunk */
#define PAR_MIN 32768                         /* elements below which threads do not pay */

static int64_t conv_chunk_floats = CONV_CHUNK_DEFAULT;

void ss_conv2d_set_chunk_floats(int64_t n) { conv_chunk_floats = n > 0 ? n : CONV_CHUNK_DEFAULT; }

static int conv_dx_transposed = 1;

void ss_conv2d_set_dx_transposed(int on) { conv_dx_transposed = on != 0; }

typedef struct conv_geom {
    int64_t N, C, H, W;  /* input */
    int64_t O, kh, kw;   /* weight */
    int64_t s, p;        /* stride, zero padding */
    int64_t Ho, Wo, P;   /* output plane, P = Ho*Wo */
    int64_t CK;          /* C*kh*kw */
    int64_t B;           /* images per chunk */
} conv_geom;

static int conv_winograd = 1;

void ss_conv2d_set_winograd(int on) { conv_winograd = on != 0; }

static int conv_winograd_dw = 1;

void ss_conv2d_set_winograd_dw(int on) { conv_winograd_dw = on != 0; }

static int64_t conv_winograd_runs; /* test hook: forward passes, dx and dW run by Winograd */

int64_t ss_conv2d_winograd_runs(void) { return conv_winograd_runs; }

/* Winograd F(2x2, 3x3) (conv_winograd.c) for the forward pass, dx and dW of
 * every 3x3 stride-1 pad-1 conv with at least WINO_MIN_CH input and output
 * channels (a 1-channel stem keeps im2col: its products would have K = 1),
 * in fp32 only: with --precision bf16 the products stay on the bf16 GEMM. */
#define WINO_MIN_CH 8

static int conv_wino_applies(const conv_geom *G)
{
    return conv_winograd && ss_get_precision() != SS_PRECISION_BF16 && G->kh == 3 && G->kw == 3 && G->s == 1 &&
           G->p == 1 && G->C >= WINO_MIN_CH && G->O >= WINO_MIN_CH && ss_wino_suits(G->C, G->O, G->H, G->W, G->N);
}

/* Threads for the Winograd path: the images are split over them. */
static int conv_wino_threads(void)
{
    return omp_in_parallel() ? 1 : omp_get_max_threads();
}

/* wf[c, o, ky, kx] = w[o, c, kh-1-ky, kw-1-kx]: dx is the convolution of dy
 * with these weights (C output channels, O input channels). */
static void conv_flip_weights(const conv_geom *G, const float *w, float *wf)
{
    const int64_t C = G->C, O = G->O, kh = G->kh, kw = G->kw;
    for (int64_t c = 0; c < C; c++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t ky = 0; ky < kh; ky++)
                for (int64_t kx = 0; kx < kw; kx++)
                    wf[((c * O + o) * kh + ky) * kw + kx] = w[((o * C + c) * kh + kh - 1 - ky) * kw + kw - 1 - kx];
}

/* First and one-past-last output coordinate whose input coordinate
 * o*s - p + k lies inside [0, n). */
static inline void valid_range(int64_t n, int64_t k, int64_t s, int64_t p, int64_t nout, int64_t *lo,
                               int64_t *hi)
{
    int64_t a = p - k; /* need o*s >= a */
    int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t b = n - 1 + p - k; /* need o*s <= b */
    int64_t h = b < 0 ? 0 : b / s + 1;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col[r, bi, P] for the B images starting at x (chunk start). */
static void im2col(const conv_geom *G, const float *x, int64_t B, float *col)
{
    const int64_t C = G->C, H = G->H, W = G->W, kh = G->kh, kw = G->kw, s = G->s, p = G->p;
    const int64_t Ho = G->Ho, Wo = G->Wo, P = G->P, CK = G->CK;
#pragma omp parallel for collapse(2) schedule(static) if (CK * B * P > PAR_MIN)
    for (int64_t r = 0; r < CK; r++)
        for (int64_t bi = 0; bi < B; bi++) {
            int64_t c = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
            const float *xp = x + (bi * C + c) * H * W;
            float *dst = col + (r * B + bi) * P;
            int64_t ylo, yhi, xlo, xhi;
            valid_range(H, ky, s, p, Ho, &ylo, &yhi);
            valid_range(W, kx, s, p, Wo, &xlo, &xhi);
            if (ylo > 0) memset(dst, 0, (size_t)(ylo * Wo) * sizeof(float));
            if (s == 1 && Wo == W && yhi > ylo) {
                /* Same width: the valid rows are one shifted block of the
                 * plane; copy it whole, then zero the wrapped columns. */
                int64_t off = (ylo - p + ky) * W + kx - p, n = (yhi - ylo) * W;
                int64_t j0 = off < 0 ? -off : 0, j1 = H * W - off < n ? H * W - off : n;
                float *d = dst + ylo * W;
                memcpy(d + j0, xp + off + j0, (size_t)(j1 - j0) * sizeof(float));
                if (xlo > 0 || xhi < W)
                    for (int64_t oy = 0; oy < yhi - ylo; oy++) {
                        for (int64_t ox = 0; ox < xlo; ox++) d[oy * W + ox] = 0.0f;
                        for (int64_t ox = xhi; ox < W; ox++) d[oy * W + ox] = 0.0f;
                    }
                if (yhi < Ho) memset(dst + yhi * Wo, 0, (size_t)((Ho - yhi) * Wo) * sizeof(float));
                continue;
            }
            for (int64_t oy = ylo; oy < yhi; oy++) {
                const float *src = xp + (oy * s - p + ky) * W + kx - p;
                float *d = dst + oy * Wo;
                for (int64_t ox = 0; ox < xlo; ox++) d[ox] = 0.0f;
                if (s == 1) {
                    memcpy(d + xlo, src + xlo, (size_t)(xhi - xlo) * sizeof(float));
                } else {
#pragma omp simd
                    for (int64_t ox = xlo; ox < xhi; ox++) d[ox] = src[ox * s];
                }
                for (int64_t ox = xhi; ox < Wo; ox++) d[ox] = 0.0f;
            }
            if (yhi < Ho) memset(dst + yhi * Wo, 0, (size_t)((Ho - yhi) * Wo) * sizeof(float));
        }
}

/* dx[bi, c] += the entries of dcol that came from it (one plane per task).
 * dcol is scratch: the same-width path zeroes its wrapped columns. */
static void col2im_add(const conv_geom *G, float *dcol, int64_t B, float *dx)
{
    const int64_t C = G->C, H = G->H, W = G->W, kh = G->kh, kw = G->kw, s = G->s, p = G->p;
    const int64_t Ho = G->Ho, Wo = G->Wo, P = G->P;
#pragma omp parallel for collapse(2) schedule(static) if (G->CK * B * P > PAR_MIN)
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t c = 0; c < C; c++) {
            float *xp = dx + (bi * C + c) * H * W;
            for (int64_t ky = 0; ky < kh; ky++)
                for (int64_t kx = 0; kx < kw; kx++) {
                    int64_t r = (c * kh + ky) * kw + kx;
                    float *src = dcol + (r * B + bi) * P;
                    int64_t ylo, yhi, xlo, xhi;
                    valid_range(H, ky, s, p, Ho, &ylo, &yhi);
                    valid_range(W, kx, s, p, Wo, &xlo, &xhi);
                    if (s == 1 && Wo == W) {
                        /* One contiguous add of the shifted block (see im2col);
                         * the wrapped columns of dcol are zeroed first. */
                        if (yhi <= ylo) continue;
                        int64_t off = (ylo - p + ky) * W + kx - p, n = (yhi - ylo) * W;
                        int64_t j0 = off < 0 ? -off : 0, j1 = H * W - off < n ? H * W - off : n;
                        float *sr = src + ylo * W;
                        if (xlo > 0 || xhi < W)
                            for (int64_t oy = 0; oy < yhi - ylo; oy++) {
                                for (int64_t ox = 0; ox < xlo; ox++) sr[oy * W + ox] = 0.0f;
                                for (int64_t ox = xhi; ox < W; ox++) sr[oy * W + ox] = 0.0f;
                            }
                        float *d = xp + off + j0;
                        sr += j0;
#pragma omp simd
                        for (int64_t j = 0; j < j1 - j0; j++) d[j] += sr[j];
                        continue;
                    }
                    for (int64_t oy = ylo; oy < yhi; oy++) {
                        float *d = xp + (oy * s - p + ky) * W + kx - p;
                        const float *sr = src + oy * Wo;
                        if (s == 1) {
#pragma omp simd
                            for (int64_t ox = xlo; ox < xhi; ox++) d[ox] += sr[ox];
                        } else {
#pragma omp simd
                            for (int64_t ox = xlo; ox < xhi; ox++) d[ox * s] += sr[ox];
                        }
                    }
                }
        }
}

/* Fill geometry; returns 0 and records an error on bad arguments. */
static int conv_geometry(ss_graph *g, const ss_tensor *x, const ss_tensor *w, const ss_tensor *b, int stride,
                         int pad, conv_geom *G)
{
    char s1[64], s2[64];
    if (x->ndim != 4 || w->ndim != 4 || x->shape[1] != w->shape[1]) {
        ss_op_error(g, "conv2d", "input %s does not fit weight %s (expected x [N,C,H,W], w [O,C,kh,kw])",
                    ss_shape_str(x, s1, sizeof s1), ss_shape_str(w, s2, sizeof s2));
        return 0;
    }
    if (stride < 1 || pad < 0) {
        ss_op_error(g, "conv2d", "stride %d and padding %d (expected stride >= 1, padding >= 0)", stride, pad);
        return 0;
    }
    G->N = x->shape[0], G->C = x->shape[1], G->H = x->shape[2], G->W = x->shape[3];
    G->O = w->shape[0], G->kh = w->shape[2], G->kw = w->shape[3];
    G->s = stride, G->p = pad;
    if (G->kh < 1 || G->kw < 1 || G->H + 2 * G->p < G->kh || G->W + 2 * G->p < G->kw) {
        ss_op_error(g, "conv2d", "kernel %lldx%lld does not fit input %s with padding %d", (long long)G->kh,
                    (long long)G->kw, ss_shape_str(x, s1, sizeof s1), pad);
        return 0;
    }
    if (b && b->numel != G->O) {
        ss_op_error(g, "conv2d", "bias has %lld elements, expected %lld", (long long)b->numel, (long long)G->O);
        return 0;
    }
    G->Ho = (G->H + 2 * G->p - G->kh) / G->s + 1;
    G->Wo = (G->W + 2 * G->p - G->kw) / G->s + 1;
    G->P = G->Ho * G->Wo;
    G->CK = G->C * G->kh * G->kw;
    if (G->CK > INT_MAX || G->P > INT_MAX || G->O > INT_MAX || G->CK * G->P > ((int64_t)1 << 40) ||
        G->O * G->P > ((int64_t)1 << 40)) {
        ss_op_error(g, "conv2d", "sizes too large (C*kh*kw = %lld, output plane %lld)", (long long)G->CK,
                    (long long)G->P);
        return 0;
    }
    /* Aim for CONV_COLS GEMM columns per chunk, within the column budget.
     * (One image per chunk for 28x28 planes measured 1.05-1.4x faster on
     * those layers, but made `mpirun -np 2` SimCLR with --sync-bn differ
     * from one process by 4e-4 after one step instead of 2e-6, with a cause
     * not found; tests/test_dist_mpi.c catches it. Left as it was.) */
    int64_t B = (CONV_COLS + G->P - 1) / G->P;
    int64_t per = G->CK > G->O ? G->CK * G->P : G->O * G->P;
    int64_t cap = per ? conv_chunk_floats / per : B;
    if (B > cap) B = cap;
    if (B > G->N) B = G->N;
    if (B < 1) B = 1;
    while (B > 1 && B * G->P > INT_MAX) B /= 2;
    G->B = B;
    return 1;
}

/* Threads to split the batch over (0: one chunk at a time, threads inside
 * im2col and the GEMM instead). Splitting needs a few chunks per thread. */
static int conv_threads(const conv_geom *G)
{
    int T = omp_get_max_threads();
    if (T <= 1 || omp_in_parallel()) return 0;
    int64_t chunks = (G->N + G->B - 1) / G->B;
    if (chunks < 2 * (int64_t)T) return 0;
    return T;
}

/* out[B images] = W · im2col(x) + bias. col: CK*B*P floats; y: O*B*P (B > 1). */
static void conv_fwd_chunk(const conv_geom *G, const float *x, const float *w, const float *bias, int64_t B,
                           float *col, float *y, float *out)
{
    const int64_t O = G->O, P = G->P, CK = G->CK, BP = B * P;
    im2col(G, x, B, col);
    if (B == 1) {
        /* out[O, P] = W[O, CK] · col[CK, P] directly. */
        ss_gemm(0, 0, (int)O, (int)P, (int)CK, 1.0f, w, (int)CK, col,
                    (int)P, 0.0f, out, (int)P);
        if (bias)
            for (int64_t o = 0; o < O; o++) {
                float bv = bias[o], *d = out + o * P;
#pragma omp simd
                for (int64_t j = 0; j < P; j++) d[j] += bv;
            }
        return;
    }
    /* Y[O, BP] = W[O, CK] · col[CK, BP]; out[bi, o, :] = Y[o, bi, :] + bias[o] */
    ss_gemm(0, 0, (int)O, (int)BP, (int)CK, 1.0f, w, (int)CK, col, (int)BP,
                0.0f, y, (int)BP);
#pragma omp parallel for collapse(2) schedule(static) if (O * BP > PAR_MIN)
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t o = 0; o < O; o++) {
            const float *src = y + (o * B + bi) * P;
            float *dst = out + (bi * O + o) * P;
            float bv = bias ? bias[o] : 0.0f;
#pragma omp simd
            for (int64_t j = 0; j < P; j++) dst[j] = src[j] + bv;
        }
}

/* The geometry of dx as a forward convolution of dy (stride 1, square
 * kernel, pad <= k-1, O <= C; see the top of the file); returns 0 where
 * that form does not apply. */
static int conv_transposed_geometry(const conv_geom *G, conv_geom *T)
{
    /* Only where the im2col of dy (O*kh*kw rows) is no larger than the dcol
     * it replaces (C*kh*kw rows): with O = 2C (convnet-s 64->128 at 7x7) it
     * measured 0.87x; with O = C 1.12-1.19x (32->32 at 28x28) and
     * 0.97-1.14x (64->64 at 14x14) in two in-process runs. */
    if (!conv_dx_transposed || G->s != 1 || G->O > G->C || G->p > G->kh - 1 || G->p > G->kw - 1) return 0;
    *T = *G;
    T->C = G->O, T->H = G->Ho, T->W = G->Wo;
    T->O = G->C;
    T->p = G->kh - 1 - G->p; /* the same for kw: only square padding exists */
    if (G->kw - 1 - G->p != T->p) return 0;
    T->Ho = G->H, T->Wo = G->W, T->P = G->H * G->W;
    T->CK = G->O * G->kh * G->kw;
    /* The GEMM takes int sizes: dx's plane can be larger than dy's (pad < (k-1)/2). */
    if (T->CK > INT_MAX || G->B * T->P > INT_MAX) return 0;
    return T->Ho == T->H + 2 * T->p - T->kh + 1 && T->Wo == T->W + 2 * T->p - T->kw + 1;
}

/* dx of one chunk of B images as the forward convolution of dy (geometry T
 * from conv_transposed_geometry, flipped weights wf [C, O*kh*kw]). col:
 * T->CK*B*T->P scratch; y: C*B*T->P scratch (B > 1). gx is overwritten when
 * fresh, added to otherwise. */
static void conv_bwd_data_chunk(const conv_geom *T, const float *gy, const float *wf, int64_t B, float *col,
                                float *y, float *gx, int fresh)
{
    const int64_t C = T->O, P = T->P, CK = T->CK, BP = B * P;
    im2col(T, gy, B, col);
    if (B == 1) { /* [C, P] is dx's own layout */
        ss_gemm(0, 0, (int)C, (int)P, (int)CK, 1.0f, wf, (int)CK, col, (int)P, fresh ? 0.0f : 1.0f, gx, (int)P);
        return;
    }
    ss_gemm(0, 0, (int)C, (int)BP, (int)CK, 1.0f, wf, (int)CK, col, (int)BP, 0.0f, y, (int)BP);
#pragma omp parallel for collapse(2) schedule(static) if (C * BP > PAR_MIN)
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t c = 0; c < C; c++) {
            const float *src = y + (c * B + bi) * P;
            float *dst = gx + (bi * C + c) * P;
            if (fresh) {
                memcpy(dst, src, (size_t)P * sizeof(float));
            } else {
#pragma omp simd
                for (int64_t j = 0; j < P; j++) dst[j] += src[j];
            }
        }
}

/* Gradients of one chunk of B images. gy: dy of the chunk [B, O, P]; dyt:
 * O*B*P scratch (B > 1); col: CK*B*P scratch (and T->CK*B*T->P with T).
 * gw, gb, gx may be NULL; gw/gb are accumulated (+=), gx (the chunk's dx)
 * too. T (may be NULL): dx by the transposed convolution, with the flipped
 * weights wf and y2 (C*B*T->P scratch, B > 1). */
static void conv_bwd_chunk(const conv_geom *G, const float *x, const float *w, const float *gy, int64_t B,
                           float *col, float *dyt, float *gx, int gx_fresh, float *gw, float *gb,
                           const conv_geom *T, const float *wf, float *y2)
{
    const int64_t O = G->O, P = G->P, CK = G->CK, BP = B * P;
    const float *d = gy;
    if (B > 1 && (gw || gb || (gx && !T))) {
        /* dYt[o, bi, :] = dy[bi, o, :] */
#pragma omp parallel for collapse(2) schedule(static) if (O * BP > PAR_MIN)
        for (int64_t o = 0; o < O; o++)
            for (int64_t bi = 0; bi < B; bi++)
                memcpy(dyt + (o * B + bi) * P, gy + (bi * O + o) * P, (size_t)P * sizeof(float));
        d = dyt;
    }
    if (gb) {
#pragma omp parallel for schedule(static) if (O * BP > PAR_MIN)
        for (int64_t o = 0; o < O; o++) {
            const float *r = d + o * BP;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (int64_t j = 0; j < BP; j++) acc += r[j];
            gb[o] += (float)acc;
        }
    }
    if (gw) {
        im2col(G, x, B, col);
        /* dW[O, CK] += dYt[O, BP] · col[CK, BP]^T */
        ss_gemm(0, 1, (int)O, (int)CK, (int)BP, 1.0f, d, (int)BP, col,
                    (int)BP, 1.0f, gw, (int)CK);
    }
    if (gx && T) {
        conv_bwd_data_chunk(T, gy, wf, B, col, y2, gx, gx_fresh);
    } else if (gx) {
        /* dcol[CK, BP] = W[O, CK]^T · dYt[O, BP] */
        ss_gemm(1, 0, (int)CK, (int)BP, (int)O, 1.0f, w, (int)CK, d, (int)BP,
                    0.0f, col, (int)BP);
        /* A fresh dx (first writer) is zeroed here, chunk by chunk, by the
         * thread that fills it, instead of all at once by one thread. */
        if (gx_fresh) memset(gx, 0, (size_t)(B * G->C * G->H * G->W) * sizeof(float));
        col2im_add(G, col, B, gx);
    }
}

static void conv_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
    conv_geom G;
    if (!conv_geometry(g, x, w, b, (int)n->i[0], (int)n->i[1], &G)) return;
    int gx_fresh = 0;
    float *gx = ss_req(x) ? ss_grad_fresh(g, x, &gx_fresh) : NULL;
    float *gw = ss_req(w) ? ss_grad(g, w) : NULL;
    float *gb = (b && ss_req(b)) ? ss_grad(g, b) : NULL;
    if ((ss_req(x) && !gx) || (ss_req(w) && !gw) || (b && ss_req(b) && !gb)) return;
    if (G.N == 0) return;
    const int64_t O = G.O, P = G.P, CK = G.CK, Bmax = G.B, img_x = G.C * G.H * G.W, img_y = O * P;
    const float *gy = n->out->grad;
    ss_flops_add(2.0 * (double)G.N * (double)P * (double)O * (double)CK * ((gw != NULL) + (gx != NULL)));
    if (gx && conv_wino_applies(&G)) {
        /* dx = conv3x3(dy, flipped weights), pad 1, by Winograd; dW and db
         * below. */
        int TW = conv_wino_threads();
        float *wf = ss_scratch(g, G.C * O * 9);
        float *scr = wf ? ss_scratch(g, ss_wino_scratch_floats(O, G.C, G.Ho, G.Wo, G.N, TW)) : NULL;
        if (!scr) return;
        conv_flip_weights(&G, w->data, wf);
        ss_wino_conv3x3(gy, G.N, O, G.Ho, G.Wo, wf, G.C, NULL, gx, !gx_fresh, scr, TW);
        conv_winograd_runs++;
        gx = NULL;
        if (!gw && !gb) return;
    }
    if (gw && conv_winograd_dw && conv_wino_applies(&G)) {
        /* dW (and db) by the transposed Winograd transform. */
        int TW = conv_wino_threads();
        float *scr = ss_scratch(g, ss_wino_wgrad_scratch_floats(G.C, O, G.H, G.W, G.N, TW));
        if (!scr) return;
        ss_wino_wgrad3x3(x->data, gy, G.N, G.C, G.H, G.W, O, gw, gb, scr, TW);
        conv_winograd_runs++;
        if (!gx) return;
        gw = NULL, gb = NULL;
    }
    /* dx as a forward convolution of dy where the geometry allows it. */
    conv_geom TG;
    const conv_geom *tg = gx && conv_transposed_geometry(&G, &TG) ? &TG : NULL;
    float *wf = NULL;
    int64_t ncol = CK * Bmax * P, ny2 = 0;
    if (tg) {
        wf = ss_scratch(g, G.C * O * G.kh * G.kw);
        if (!wf) return;
        conv_flip_weights(&G, w->data, wf);
        if (tg->CK * Bmax * tg->P > ncol) ncol = tg->CK * Bmax * tg->P;
        ny2 = Bmax > 1 ? G.C * Bmax * tg->P : 0;
    }
    const int64_t ndyt = Bmax > 1 && (gw || gb || !tg) ? O * Bmax * P : 0;
    int T = conv_threads(&G);
    if (!T) {
        float *col = ss_scratch(g, ncol), *dyt = ndyt ? ss_scratch(g, ndyt) : NULL;
        float *y2 = ny2 ? ss_scratch(g, ny2) : NULL;
        if (!col || (ndyt && !dyt) || (ny2 && !y2)) return;
        for (int64_t b0 = 0; b0 < G.N; b0 += Bmax) {
            int64_t B = G.N - b0 < Bmax ? G.N - b0 : Bmax;
            conv_bwd_chunk(&G, x->data + b0 * img_x, w->data, gy + b0 * img_y, B, col, dyt,
                           gx ? gx + b0 * img_x : NULL, gx_fresh, gw, gb, tg, wf, y2);
        }
        return;
    }
    /* Each thread takes a contiguous range of images; dW and db go to
     * per-thread partials summed in thread order afterwards. */
    const int64_t npart = (gw ? O * CK : 0) + (gb ? O : 0);
    const int64_t per = ncol + ndyt + ny2 + npart;
    float *scr = ss_scratch(g, per * T);
    if (!scr) return;
    int used = T;
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
        used = nt;
        float *col = scr + t * per, *dyt = col + ncol, *y2 = dyt + ndyt, *pw = y2 + ny2;
        float *pb = pw + (gw ? O * CK : 0);
        if (npart) memset(pw, 0, (size_t)npart * sizeof(float));
        int64_t lo = G.N * t / nt, hi = G.N * (t + 1) / nt;
        for (int64_t b0 = lo; b0 < hi; b0 += Bmax) {
            int64_t B = hi - b0 < Bmax ? hi - b0 : Bmax;
            conv_bwd_chunk(&G, x->data + b0 * img_x, w->data, gy + b0 * img_y, B, col, dyt,
                           gx ? gx + b0 * img_x : NULL, gx_fresh, gw ? pw : NULL, gb ? pb : NULL, tg, wf,
                           ny2 ? y2 : NULL);
        }
    }
    for (int t = 0; t < used; t++) {
        const float *pw = scr + t * per + ncol + ndyt + ny2, *pb = pw + (gw ? O * CK : 0);
        if (gw)
            for (int64_t i = 0; i < O * CK; i++) gw[i] += pw[i];
        if (gb)
            for (int64_t o = 0; o < O; o++) gb[o] += pb[o];
    }
}

ss_tensor *ss_conv2d(ss_graph *g, ss_tensor *x, ss_tensor *w, ss_tensor *b, int stride, int pad)
{
    SS_CHECK_IN2(g, x, w);
    x = ss_contiguous(g, x);
    w = ss_contiguous(g, w);
    ss_tensor *b_in = b;
    if (b) b = ss_contiguous(g, b);
    if (!x || !w || (b_in && !b)) return NULL;
    conv_geom G;
    if (!conv_geometry(g, x, w, b, stride, pad, &G)) return NULL;
    const int64_t O = G.O, P = G.P, CK = G.CK, Bmax = G.B, img_x = G.C * G.H * G.W, img_y = O * P;
    ss_tensor *out = ss_new4(g, G.N, O, G.Ho, G.Wo);
    if (!out) return NULL;
    const float *bias = b ? b->data : NULL;
    const int64_t ncol = CK * Bmax * P, ny = Bmax > 1 ? O * Bmax * P : 0;
    int T = conv_threads(&G);
    if (G.N > 0 && conv_wino_applies(&G)) {
        int TW = conv_wino_threads();
        float *scr = ss_scratch(g, ss_wino_scratch_floats(G.C, O, G.H, G.W, G.N, TW));
        if (!scr) return NULL;
        ss_wino_conv3x3(x->data, G.N, G.C, G.H, G.W, w->data, O, bias, out->data, 0, scr, TW);
        conv_winograd_runs++;
    } else if (G.N > 0 && !T) {
        float *col = ss_scratch(g, ncol), *y = ny ? ss_scratch(g, ny) : NULL;
        if (!col || (ny && !y)) return NULL;
        for (int64_t b0 = 0; b0 < G.N; b0 += Bmax) {
            int64_t B = G.N - b0 < Bmax ? G.N - b0 : Bmax;
            conv_fwd_chunk(&G, x->data + b0 * img_x, w->data, bias, B, col, y, out->data + b0 * img_y);
        }
    } else if (G.N > 0) {
        const int64_t per = ncol + ny;
        float *scr = ss_scratch(g, per * T);
        if (!scr) return NULL;
#pragma omp parallel num_threads(T)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            float *col = scr + t * per, *y = col + ncol;
            int64_t lo = G.N * t / nt, hi = G.N * (t + 1) / nt;
            for (int64_t b0 = lo; b0 < hi; b0 += Bmax) {
                int64_t B = hi - b0 < Bmax ? hi - b0 : Bmax;
                conv_fwd_chunk(&G, x->data + b0 * img_x, w->data, bias, B, col, y, out->data + b0 * img_y);
            }
        }
    }
    ss_flops_add(2.0 * (double)G.N * (double)G.P * (double)G.O * (double)G.CK);
    ss_tensor *in[3] = {x, w, b};
    ss_node *n = ss_record(g, "conv2d", conv_backward, out, b ? 3 : 2, in);
    if (n) {
        n->i[0] = stride;
        n->i[1] = pad;
    }
    return out;
}

/* ---- reference (naive direct loops; used by tests) ------------------------- */
void ss_conv2d_reference_forward(const float *x, const float *w, const float *b, int64_t N, int64_t C,
                                 int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int stride,
                                 int pad, float *out)
{
    int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)x[((n * C + c) * H + iy) * W + ix] *
                                       w[((o * C + c) * kh + ky) * kw + kx];
                            }
                    out[((n * O + o) * Ho + oy) * Wo + ox] = (float)acc;
                }
}

void ss_conv2d_reference_backward(const float *x, const float *w, const float *dy, int64_t N, int64_t C,
                                  int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int stride,
                                  int pad, float *gx, float *gw, float *gb)
{
    int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    float d = dy[((n * O + o) * Ho + oy) * Wo + ox];
                    if (gb) gb[o] += d;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                int64_t xi = ((n * C + c) * H + iy) * W + ix, wi = ((o * C + c) * kh + ky) * kw + kx;
                                if (gx) gx[xi] += d * w[wi];
                                if (gw) gw[wi] += d * x[xi];
                            }
                }
}
