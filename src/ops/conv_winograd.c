/* 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
 *
 * Each 2x2 output tile is A^T [ (G g G^T) (.) (B^T d B) ] A, with d the 4x4
 * input tile around it (zero outside the image), g a 3x3 filter and
 *
 *   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
 *         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
 *         [0 -1  1  0]        [1/2 -1/2  1/2]
 *         [0  1  0 -1]        [ 0    0    1 ]
 *
 * Summed over input channels, the element-wise product becomes 16 matrix
 * products, one per position xi of the 4x4 tile:
 *
 *   M[xi] [O, T] = U[xi] [O, C] · V[xi] [C, T]
 *
 * with U = G g G^T per (o, c), V = B^T d B per (c, tile) and T tiles. That
 * is 16*O*C*T multiply-adds for 4*T outputs per (o, c), against 9*4*T by
 * im2col: 2.25x fewer, for the price of the two transforms (additions only).
 *
 * Layout and threads: the batch is split into contiguous image ranges, one
 * per thread. Each thread takes an image a few rows of tiles at a time (Tc
 * tiles, so that V and M, 16*(C+O)*Tc floats, stay in the L2 cache),
 * transforms them into V [16, C, Tc'] (Tc' = Tc rounded up to 8, the extra
 * columns zero), runs the 16 products with a small register-blocked kernel
 * (4 output channels x 16 tiles of accumulators; OpenBLAS calls of this size
 * cost more in packing and zero fills than in arithmetic) and writes the
 * tiles' outputs. Every output belongs to one tile and one thread and every
 * sum has a fixed order, so the same thread count gives the same bits. The
 * transforms run along a row of tiles at a time (vectorisable loops over
 * tx).
 *
 * Used by conv.c for the forward pass, for dx (the forward convolution of
 * dy with the flipped, transposed weights, also pad 1), and for dW and db
 * (ss_wino_wgrad3x3, at the end of this file). */
#include <omp.h>
#include <string.h>

#include "ops/conv_winograd.h"
#include "ops/gemm.h"

#define WINO_BUDGET ((int64_t)1 << 16) /* floats of V + M per chunk (256 KB) */

/* Eight floats (one AVX register with -march=native; the compiler splits it
 * elsewhere). v8u: the same, for unaligned loads and stores through float
 * pointers (GCC and Clang let a vector type alias its element type). */
typedef float v8f __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
#define V8_LOAD(p) (*(const v8u *)(const void *)(p))
#define V8_STORE(p, v) (*(v8u *)(void *)(p) = (v))

/* Keeps the two vectors in registers: without it gcc folds their loads into
 * each FMA, 12 loads per step instead of 2 (load-port bound). */
#if defined(__AVX__)
#define V8_IN_REGS(a, b) __asm__("" : "+x"(a), "+x"(b))
#define V8_IN_REG(a) __asm__("" : "+x"(a))
#else
#define V8_IN_REGS(a, b) ((void)0)
#define V8_IN_REG(a) ((void)0)
#endif

static int64_t wino_tx(int64_t W) { return (W + 1) / 2; }
static int64_t wino_ty(int64_t H) { return (H + 1) / 2; }

static int64_t wino_pad8(int64_t n) { return (n + 7) / 8 * 8; }

/* The 16 slabs of V (and of M) lie WINO_SKEW floats further apart than
 * their size: sizes like 32 x 64 floats (8 KB) would otherwise put all 16
 * on the same L1 sets, and the transforms write (and read) all 16 at once. */
#define WINO_SKEW 24

/* Row length of V and M: the product kernel runs 16 columns at a time (its
 * 8-column tail measured 1.5x slower per column). */
static int64_t wino_pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* How the tiles are chunked: `rows` tile rows of one image at a time, or,
 * where a whole image fits the budget, `imgs` whole images at a time. */
typedef struct wino_plan {
    int64_t ntx, nty, rows, imgs, tpmax; /* tpmax: the longest row of V / M */
} wino_plan;

static wino_plan wino_plan_budget(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N, int64_t budget)
{
    wino_plan P;
    P.ntx = wino_tx(W), P.nty = wino_ty(H);
    int64_t tiles = budget / (16 * (C + O)); /* tiles whose V and M fit the budget */
    P.rows = tiles / P.ntx;
    if (P.rows < 1) P.rows = 1;
    P.imgs = 1;
    if (P.rows >= P.nty) {
        P.rows = P.nty;
        P.imgs = tiles / (P.ntx * P.nty);
        if (P.imgs < 1) P.imgs = 1;
        if (P.imgs > N) P.imgs = N > 0 ? N : 1;
    }
    P.tpmax = wino_pad16(P.imgs * P.rows * P.ntx);
    return P;
}

static wino_plan wino_plan_for(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N)
{
    return wino_plan_budget(C, O, H, W, N, WINO_BUDGET);
}

/* Floats of per-thread temporary space (staged rows, column transforms,
 * output rows, and the tail that wino_output may read past M). */
static int64_t wino_tmp_floats(const wino_plan *P)
{
    const int64_t ntx8 = wino_pad8(P->ntx), nr = 2 * P->rows + 2;
    return nr * (2 * ntx8 + 8) + nr * 4 * ntx8 + 16 * ntx8 + ntx8;
}

int ss_wino_suits(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N)
{
    if (C < 1 || O < 1 || H < 1 || W < 1 || N < 1) return 0;
    wino_plan P = wino_plan_for(C, O, H, W, N);
    const int64_t tc = P.imgs * P.rows * P.ntx;
    return 100 * H * W >= 75 * 4 * P.ntx * P.nty && 4 * tc >= 3 * wino_pad16(tc);
}

int64_t ss_wino_scratch_floats(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N, int nthreads)
{
    wino_plan P = wino_plan_for(C, O, H, W, N);
    int64_t per = 16 * ((C + O) * P.tpmax + 2 * WINO_SKEW) + wino_tmp_floats(&P);
    return 16 * O * C + per * (nthreads < 1 ? 1 : nthreads);
}

/* M[O, Tp] = U[O, C] · V[C, Tp] for one tile position; Tp a multiple of 8.
 * Accumulators: 6 rows x 16 columns (12 vectors; 8 measured FMA-latency
 * bound), then 6 x 8; the last rows 4 at a time, then one by one. The 6-
 * and 4-row blocks are written out: one always_inline routine with the row
 * count as a constant and accumulator arrays measured 1.6x slower at the
 * step under -O2 (arrays in memory), and with its row loops unrolled by
 * pragma still 1-6% slower in three alternating pairs (2026-12-08). */
__attribute__((noinline)) static void wino_mm(const float *U, const float *V, float *M, int64_t O, int64_t C, int64_t Tp)
{
    /* As many 6-row blocks as leave a multiple of 4 rows (32 = 4 x 6 + 2 x 4):
     * single rows are latency-bound (one or two accumulators). */
    int64_t n6 = O / 6;
    while (n6 > 0 && (O - 6 * n6) % 4 != 0) n6--;
    int64_t o = 0;
    for (; o < 6 * n6; o += 6) { /* 6 rows x 16 columns: 12 accumulators */
        const float *u0 = U + o * C, *u1 = u0 + C, *u2 = u1 + C, *u3 = u2 + C, *u4 = u3 + C, *u5 = u4 + C;
        float *m = M + o * Tp;
        int64_t t = 0;
        for (; t + 16 <= Tp; t += 16) {
            v8f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0};
            v8f d0 = {0}, d1 = {0}, e0 = {0}, e1 = {0}, f0 = {0}, f1 = {0};
            const float *v = V + t;
            for (int64_t c = 0; c < C; c++, v += Tp) {
                v8f x0 = V8_LOAD(v), x1 = V8_LOAD(v + 8);
                V8_IN_REGS(x0, x1);
                a0 += x0 * u0[c], a1 += x1 * u0[c];
                b0 += x0 * u1[c], b1 += x1 * u1[c];
                c0 += x0 * u2[c], c1 += x1 * u2[c];
                d0 += x0 * u3[c], d1 += x1 * u3[c];
                e0 += x0 * u4[c], e1 += x1 * u4[c];
                f0 += x0 * u5[c], f1 += x1 * u5[c];
            }
            V8_STORE(m + t, a0), V8_STORE(m + t + 8, a1);
            V8_STORE(m + Tp + t, b0), V8_STORE(m + Tp + t + 8, b1);
            V8_STORE(m + 2 * Tp + t, c0), V8_STORE(m + 2 * Tp + t + 8, c1);
            V8_STORE(m + 3 * Tp + t, d0), V8_STORE(m + 3 * Tp + t + 8, d1);
            V8_STORE(m + 4 * Tp + t, e0), V8_STORE(m + 4 * Tp + t + 8, e1);
            V8_STORE(m + 5 * Tp + t, f0), V8_STORE(m + 5 * Tp + t + 8, f1);
        }
        for (; t < Tp; t += 8) {
            v8f a0 = {0}, b0 = {0}, c0 = {0}, d0 = {0}, e0 = {0}, f0 = {0};
            const float *v = V + t;
            for (int64_t c = 0; c < C; c++, v += Tp) {
                v8f x0 = V8_LOAD(v);
                V8_IN_REG(x0);
                a0 += x0 * u0[c], b0 += x0 * u1[c], c0 += x0 * u2[c];
                d0 += x0 * u3[c], e0 += x0 * u4[c], f0 += x0 * u5[c];
            }
            V8_STORE(m + t, a0), V8_STORE(m + Tp + t, b0), V8_STORE(m + 2 * Tp + t, c0);
            V8_STORE(m + 3 * Tp + t, d0), V8_STORE(m + 4 * Tp + t, e0), V8_STORE(m + 5 * Tp + t, f0);
        }
    }
    for (; o + 4 <= O; o += 4) {
        const float *u0 = U + o * C, *u1 = u0 + C, *u2 = u1 + C, *u3 = u2 + C;
        float *m = M + o * Tp;
        int64_t t = 0;
        for (; t + 16 <= Tp; t += 16) {
            v8f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0}, d0 = {0}, d1 = {0};
            const float *v = V + t;
            for (int64_t c = 0; c < C; c++, v += Tp) {
                v8f x0 = V8_LOAD(v), x1 = V8_LOAD(v + 8);
                V8_IN_REGS(x0, x1);
                a0 += x0 * u0[c], a1 += x1 * u0[c];
                b0 += x0 * u1[c], b1 += x1 * u1[c];
                c0 += x0 * u2[c], c1 += x1 * u2[c];
                d0 += x0 * u3[c], d1 += x1 * u3[c];
            }
            V8_STORE(m + t, a0), V8_STORE(m + t + 8, a1);
            V8_STORE(m + Tp + t, b0), V8_STORE(m + Tp + t + 8, b1);
            V8_STORE(m + 2 * Tp + t, c0), V8_STORE(m + 2 * Tp + t + 8, c1);
            V8_STORE(m + 3 * Tp + t, d0), V8_STORE(m + 3 * Tp + t + 8, d1);
        }
        for (; t < Tp; t += 8) {
            v8f a0 = {0}, b0 = {0}, c0 = {0}, d0 = {0};
            const float *v = V + t;
            for (int64_t c = 0; c < C; c++, v += Tp) {
                v8f x0 = V8_LOAD(v);
                a0 += x0 * u0[c], b0 += x0 * u1[c], c0 += x0 * u2[c], d0 += x0 * u3[c];
            }
            V8_STORE(m + t, a0), V8_STORE(m + Tp + t, b0), V8_STORE(m + 2 * Tp + t, c0), V8_STORE(m + 3 * Tp + t, d0);
        }
    }
    for (; o < O; o++) {
        const float *u0 = U + o * C;
        for (int64_t t = 0; t < Tp; t += 8) {
            v8f a0 = {0};
            const float *v = V + t;
            for (int64_t c = 0; c < C; c++, v += Tp) a0 += V8_LOAD(v) * u0[c];
            V8_STORE(M + o * Tp + t, a0);
        }
    }
}

/* U[xi, o, c] = (G g G^T)[xi] for w [O, C, 3, 3]. */
static void wino_weights(const float *w, int64_t O, int64_t C, float *U)
{
    const int64_t OC = O * C;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++) {
            const float *g = w + (o * C + c) * 9;
            float t[4][3]; /* G g */
            for (int j = 0; j < 3; j++) {
                float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                t[0][j] = g0;
                t[1][j] = 0.5f * (g0 + g1 + g2);
                t[2][j] = 0.5f * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                float a = t[i][0], b = t[i][1], c2 = t[i][2];
                float *u = U + (int64_t)(i * 4) * OC + o * C + c;
                u[0] = a;
                u[OC] = 0.5f * (a + b + c2);
                u[2 * OC] = 0.5f * (a - b + c2);
                u[3 * OC] = c2;
            }
        }
}

/* V[xi, c, b*tpi + (ty - ty0)*ntx + tx] for the tile rows [ty0, ty1) of B
 * images x [B, C, H, W] (B > 1 only with whole images), tpi = (ty1 - ty0) *
 * ntx; row length Tp. The columns past the tiles hold finite values, not
 * always zero (with an even W the column past the last tile transforms
 * x[.., W-1]): the forward product keeps columns apart, so they only reach
 * outputs that are never stored, and the weight gradient multiplies them by
 * dM, which is zero there (wino_dy). tmp: wino_tmp_floats floats.
 *
 * Per channel, each input row the tiles need (2ty0-1 .. 2ty1) gets its
 * column transform once (d B along the row: with d_j = p[2tx + j] and p the
 * zero-padded row, (p0 - p2, p1 + p2, p2 - p1, p1 - p3)), over ntx8 >= ntx
 * tiles so the loops have no scalar tails; then each tile row combines its
 * four rows (B^T d B) into V. */
__attribute__((noinline)) static void wino_input(const float *x, int64_t B, int64_t C, int64_t H, int64_t W,
                                                 int64_t ty0, int64_t ty1, int64_t Tp, float *V, float *tmp)
{
    const int64_t ntx = wino_tx(W), ntx8 = wino_pad8(ntx), CT = C * Tp + WINO_SKEW, tpi = (ty1 - ty0) * ntx;
    const int64_t r0 = 2 * ty0 - 1, nr = 2 * (ty1 - ty0) + 2; /* input rows r0 .. r0+nr-1 */
    const int64_t np = 2 * ntx8 + 8;
    float *P = tmp;            /* [nr][np]: the zero-padded rows, P[k][j] = x[r0 + k][j - 1] */
    float *CR = P + nr * np;   /* [nr][4][ntx8] column transforms */
    memset(P, 0, (size_t)(nr * np) * sizeof(float));
    for (int64_t c = 0; c < C; c++)
    for (int64_t bi = 0; bi < B; bi++) {
        const float *xp = x + (bi * C + c) * H * W;
        /* All rows are staged before any is read: vector loads at another
         * alignment straight after the copy's stores stall on store
         * forwarding (a quarter of this function's time when each row was
         * copied and read in turn). Columns 0 and W+1.. stay zero. */
        for (int64_t k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            if (r < 0 || r >= H) continue;
            float *dst = P + k * np + 1; /* a loop, not memcpy: rows of 14-28 floats cost more in calls */
            const float *src = xp + r * W;
#pragma omp simd
            for (int64_t j = 0; j < W; j++) dst[j] = src[j];
        }
        for (int64_t k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            float *q0 = CR + (k * 4) * ntx8, *q1 = q0 + ntx8, *q2 = q1 + ntx8, *q3 = q2 + ntx8;
            if (r < 0 || r >= H) {
                for (int64_t j = 0; j < 4 * ntx8; j++) q0[j] = 0.0f;
                continue;
            }
            const float *p = P + k * np;
#pragma omp simd
            for (int64_t tx = 0; tx < ntx8; tx++) {
                float d0 = p[2 * tx], d1 = p[2 * tx + 1], d2 = p[2 * tx + 2], d3 = p[2 * tx + 3];
                q0[tx] = d0 - d2;
                q1[tx] = d1 + d2;
                q2[tx] = d2 - d1;
                q3[tx] = d1 - d3;
            }
        }
        /* Row transform: V[i*4+j] = B^T applied to the rows' j-th outputs.
         * Tile row ty writes ntx8 columns when they fit in the row of Tp;
         * the next tile row overwrites the ones past ntx. */
        for (int64_t ty = ty0; ty < ty1; ty++) {
            const int64_t off = bi * tpi + (ty - ty0) * ntx, n = off + ntx8 <= Tp ? ntx8 : ntx;
            const float *R = CR + (2 * (ty - ty0) * 4) * ntx8;
            for (int j = 0; j < 4; j++) {
                const float *a0 = R + j * ntx8, *a1 = a0 + 4 * ntx8, *a2 = a1 + 4 * ntx8, *a3 = a2 + 4 * ntx8;
                float *v0 = V + (int64_t)(0 * 4 + j) * CT + c * Tp + off, *v1 = v0 + 4 * CT;
                float *v2 = v1 + 4 * CT, *v3 = v2 + 4 * CT;
#pragma omp simd
                for (int64_t tx = 0; tx < n; tx++) {
                    v0[tx] = a0[tx] - a2[tx];
                    v1[tx] = a1[tx] + a2[tx];
                    v2[tx] = a2[tx] - a1[tx];
                    v3[tx] = a1[tx] - a3[tx];
                }
            }
        }
        if (bi < B - 1) continue;
        const int64_t last = bi * tpi + (ty1 - ty0 - 1) * ntx, done = last + (last + ntx8 <= Tp ? ntx8 : ntx);
        if (Tp > done)
            for (int xi = 0; xi < 16; xi++)
                for (int64_t j = done; j < Tp; j++) V[xi * CT + c * Tp + j] = 0.0f;
    }
}

/* out[b, o] (= or +=) A^T M A + bias[o] for the tile rows [ty0, ty1) of B
 * images out [B, O, H, W] (tiles laid out as in wino_input); M [16, O, Tp],
 * each slab followed by at least ntx8 - ntx (< 8) readable floats (the
 * loops run over ntx8 >= ntx tiles and ignore the extra ones; the slab
 * skew and the temporary space after M cover it).
 * tmp: 16*ntx8 floats. */
__attribute__((noinline)) static void wino_output(const float *M, int64_t B, int64_t O, int64_t H, int64_t W,
                                                  int64_t ty0, int64_t ty1, int64_t Tp, const float *bias, int add,
                                                  float *out, float *tmp)
{
    const int64_t ntx = wino_tx(W), ntx8 = wino_pad8(ntx), OT = O * Tp + WINO_SKEW, tpi = (ty1 - ty0) * ntx;
    float *a = tmp, *b = a + 4 * ntx8, *ob = b + 4 * ntx8; /* ob: two output rows of 2*ntx8 */
    for (int64_t o = 0; o < O; o++)
    for (int64_t bi = 0; bi < B; bi++) {
        float *op = out + (bi * O + o) * H * W;
        const float bv = bias ? bias[o] : 0.0f;
        for (int64_t ty = ty0; ty < ty1; ty++) {
            const int64_t t0 = o * Tp + bi * tpi + (ty - ty0) * ntx;
            for (int i = 0; i < 4; i++) { /* m A = (m0 + m1 + m2, m1 - m2 - m3), row i */
                const float *m0 = M + (int64_t)(i * 4 + 0) * OT + t0, *m1 = m0 + OT, *m2 = m1 + OT, *m3 = m2 + OT;
                float *ai = a + i * ntx8, *bi = b + i * ntx8;
#pragma omp simd
                for (int64_t tx = 0; tx < ntx8; tx++) {
                    ai[tx] = m0[tx] + m1[tx] + m2[tx];
                    bi[tx] = m1[tx] - m2[tx] - m3[tx];
                }
            }
            /* A^T (m A), interleaved: output row 2ty + dy, columns 2tx, 2tx+1. */
            for (int64_t k = 0; k < ntx8; k += 8) {
                v8f a0 = V8_LOAD(a + k), a1 = V8_LOAD(a + ntx8 + k), a2 = V8_LOAD(a + 2 * ntx8 + k);
                v8f a3 = V8_LOAD(a + 3 * ntx8 + k), b0 = V8_LOAD(b + k), b1 = V8_LOAD(b + ntx8 + k);
                v8f b2 = V8_LOAD(b + 2 * ntx8 + k), b3 = V8_LOAD(b + 3 * ntx8 + k);
                v8f y00 = a0 + a1 + a2 + bv, y01 = b0 + b1 + b2 + bv;
                v8f y10 = a1 - a2 - a3 + bv, y11 = b1 - b2 - b3 + bv;
                V8_STORE(ob + 2 * k, __builtin_shufflevector(y00, y01, 0, 8, 1, 9, 2, 10, 3, 11));
                V8_STORE(ob + 2 * k + 8, __builtin_shufflevector(y00, y01, 4, 12, 5, 13, 6, 14, 7, 15));
                V8_STORE(ob + 2 * ntx8 + 2 * k, __builtin_shufflevector(y10, y11, 0, 8, 1, 9, 2, 10, 3, 11));
                V8_STORE(ob + 2 * ntx8 + 2 * k + 8, __builtin_shufflevector(y10, y11, 4, 12, 5, 13, 6, 14, 7, 15));
            }
            for (int dy = 0; dy < 2; dy++) {
                const int64_t r = 2 * ty + dy;
                if (r >= H) break;
                float *d = op + r * W;
                const float *e = ob + dy * 2 * ntx8;
                if (add) {
#pragma omp simd
                    for (int64_t j = 0; j < W; j++) d[j] += e[j];
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < W; j++) d[j] = e[j];
                }
            }
        }
    }
}

void ss_wino_conv3x3(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *w, int64_t O,
                     const float *bias, float *out, int add, float *scratch, int nthreads)
{
    if (N <= 0 || H <= 0 || W <= 0) return;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > N) nthreads = (int)N;
    float *U = scratch;
    wino_weights(w, O, C, U);
    const wino_plan P = wino_plan_for(C, O, H, W, N);
    const int64_t per = 16 * ((C + O) * P.tpmax + 2 * WINO_SKEW) + wino_tmp_floats(&P);
    float *base = scratch + 16 * O * C;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *V = base + (int64_t)t * per, *M = V + 16 * (C * P.tpmax + WINO_SKEW);
        float *tmp = M + 16 * (O * P.tpmax + WINO_SKEW);
        int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
        for (int64_t b = lo; b < hi; b += P.imgs) {
            const int64_t B = hi - b < P.imgs ? hi - b : P.imgs;
            for (int64_t ty0 = 0; ty0 < P.nty; ty0 += P.rows) {
                int64_t ty1 = ty0 + P.rows < P.nty ? ty0 + P.rows : P.nty, Tp = wino_pad16(B * (ty1 - ty0) * P.ntx);
                wino_input(x + b * C * H * W, B, C, H, W, ty0, ty1, Tp, V, tmp);
                for (int xi = 0; xi < 16; xi++)
                    wino_mm(U + (int64_t)xi * O * C, V + (int64_t)xi * (C * Tp + WINO_SKEW),
                            M + (int64_t)xi * (O * Tp + WINO_SKEW), O, C, Tp);
                wino_output(M, B, O, H, W, ty0, ty1, Tp, bias, add, out + b * O * H * W, tmp);
            }
        }
    }
}

/* ---- weight gradient ----------------------------------------------------------
 * Y = A^T [ U (.) V ] A is linear in U = G g G^T, so for one tile
 * dL/dU = (A dY A^T) (.) V, and dL/dg = G^T (sum over tiles of dL/dU) G.
 * Summed over channels and tiles that is 16 products
 *
 *   dU[xi] [O, C] += dM[xi] [O, T] · V[xi] [C, T]^T,   dM = A dY A^T
 *
 * with an inner dimension of T tiles: chunks are larger than the forward's
 * (WINO_WGRAD_BUDGET), and the products go through OpenBLAS (a long inner
 * dimension is where it is at its best). Each thread sums its images into
 * its own dU and bias partials, added in thread order at the end. */
#define WINO_WGRAD_BUDGET ((int64_t)1 << 18) /* floats of V + dM per chunk (1 MB) */

/* dM[xi, o, b*tpi + (ty - ty0)*ntx + tx] = (A dY A^T)[xi] for the tile rows
 * [ty0, ty1) of B images dy [B, O, H, W]; row length Tp (the columns past
 * the tiles zero). tmp: wino_tmp_floats floats. With the two output rows
 * y0, y1 of a tile and its columns a, b:
 *   A dY: (y0, y0 + y1, y0 - y1, -y1) per column, then the same along the row. */
__attribute__((noinline)) static void wino_dy(const float *dy, int64_t B, int64_t O, int64_t H, int64_t W,
                                              int64_t ty0, int64_t ty1, int64_t Tp, float *dM, float *tmp)
{
    const int64_t ntx = wino_tx(W), ntx8 = wino_pad8(ntx), OT = O * Tp + WINO_SKEW, tpi = (ty1 - ty0) * ntx;
    const int64_t np = 2 * ntx8 + 8;
    float *P = tmp;               /* [2][np]: the tile row's two output rows, zero-padded */
    float *R = P + 2 * np;        /* [4][2][ntx8]: A dY per column parity */
    memset(P, 0, (size_t)(2 * np) * sizeof(float));
    for (int64_t o = 0; o < O; o++)
        for (int64_t bi = 0; bi < B; bi++) {
            const float *yp = dy + (bi * O + o) * H * W;
            for (int64_t ty = ty0; ty < ty1; ty++) {
                for (int k = 0; k < 2; k++) {
                    const int64_t r = 2 * ty + k;
                    float *dst = P + k * np;
                    if (r < H) {
                        const float *src = yp + r * W;
#pragma omp simd
                        for (int64_t j = 0; j < W; j++) dst[j] = src[j];
                    } else {
                        for (int64_t j = 0; j < W; j++) dst[j] = 0.0f;
                    }
                }
                const float *p0 = P, *p1 = P + np;
                float *e0 = R, *e1 = e0 + ntx8, *e2 = e1 + ntx8, *e3 = e2 + ntx8; /* column 2tx */
                float *f0 = e3 + ntx8, *f1 = f0 + ntx8, *f2 = f1 + ntx8, *f3 = f2 + ntx8; /* column 2tx+1 */
#pragma omp simd
                for (int64_t tx = 0; tx < ntx8; tx++) {
                    float a0 = p0[2 * tx], a1 = p1[2 * tx], b0 = p0[2 * tx + 1], b1 = p1[2 * tx + 1];
                    e0[tx] = a0, e1[tx] = a0 + a1, e2[tx] = a0 - a1, e3[tx] = -a1;
                    f0[tx] = b0, f1[tx] = b0 + b1, f2[tx] = b0 - b1, f3[tx] = -b1;
                }
                const int64_t off = o * Tp + bi * tpi + (ty - ty0) * ntx;
                const int64_t n = bi * tpi + (ty - ty0) * ntx + ntx8 <= Tp ? ntx8 : ntx;
                for (int i = 0; i < 4; i++) {
                    const float *e = R + i * ntx8, *f = R + (4 + i) * ntx8;
                    float *m0 = dM + (int64_t)(i * 4) * OT + off, *m1 = m0 + OT, *m2 = m1 + OT, *m3 = m2 + OT;
#pragma omp simd
                    for (int64_t tx = 0; tx < n; tx++) {
                        m0[tx] = e[tx];
                        m1[tx] = e[tx] + f[tx];
                        m2[tx] = e[tx] - f[tx];
                        m3[tx] = -f[tx];
                    }
                }
            }
            if (bi < B - 1) continue;
            const int64_t last = bi * tpi + (ty1 - ty0 - 1) * ntx, done = last + (last + ntx8 <= Tp ? ntx8 : ntx);
            if (Tp > done)
                for (int xi = 0; xi < 16; xi++)
                    for (int64_t j = done; j < Tp; j++) dM[xi * OT + o * Tp + j] = 0.0f;
        }
}

int64_t ss_wino_wgrad_scratch_floats(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N, int nthreads)
{
    wino_plan P = wino_plan_budget(C, O, H, W, N, WINO_WGRAD_BUDGET);
    int64_t per = 16 * ((C + O) * P.tpmax + 2 * WINO_SKEW) + wino_tmp_floats(&P) + 16 * O * C + O;
    return per * (nthreads < 1 ? 1 : nthreads);
}

void ss_wino_wgrad3x3(const float *x, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O,
                      float *gw, float *gb, float *scratch, int nthreads)
{
    if (N <= 0 || H <= 0 || W <= 0) return;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > N) nthreads = (int)N;
    const wino_plan P = wino_plan_budget(C, O, H, W, N, WINO_WGRAD_BUDGET);
    const int64_t per = 16 * ((C + O) * P.tpmax + 2 * WINO_SKEW) + wino_tmp_floats(&P) + 16 * O * C + O;
    int used = nthreads;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
        used = nt;
        float *V = scratch + (int64_t)t * per, *M = V + 16 * (C * P.tpmax + WINO_SKEW);
        float *tmp = M + 16 * (O * P.tpmax + WINO_SKEW), *dU = tmp + wino_tmp_floats(&P), *pb = dU + 16 * O * C;
        memset(dU, 0, (size_t)(16 * O * C + O) * sizeof(float));
        int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
        for (int64_t b = lo; b < hi; b += P.imgs) {
            const int64_t B = hi - b < P.imgs ? hi - b : P.imgs;
            if (gb)
                for (int64_t bi = 0; bi < B; bi++)
                    for (int64_t o = 0; o < O; o++) {
                        const float *r = dy + ((b + bi) * O + o) * H * W;
                        double acc = 0.0;
#pragma omp simd reduction(+ : acc)
                        for (int64_t j = 0; j < H * W; j++) acc += r[j];
                        pb[o] += (float)acc;
                    }
            for (int64_t ty0 = 0; ty0 < P.nty; ty0 += P.rows) {
                int64_t ty1 = ty0 + P.rows < P.nty ? ty0 + P.rows : P.nty, Tp = wino_pad16(B * (ty1 - ty0) * P.ntx);
                wino_input(x + b * C * H * W, B, C, H, W, ty0, ty1, Tp, V, tmp);
                wino_dy(dy + b * O * H * W, B, O, H, W, ty0, ty1, Tp, M, tmp);
                for (int xi = 0; xi < 16; xi++)
                    ss_gemm(0, 1, (int)O, (int)C, (int)Tp, 1.0f, M + (int64_t)xi * (O * Tp + WINO_SKEW), (int)Tp,
                            V + (int64_t)xi * (C * Tp + WINO_SKEW), (int)Tp, 1.0f, dU + (int64_t)xi * O * C, (int)C);
            }
        }
    }
    /* Partials in thread order, then dW += G^T dU G per (o, c). */
    float *dU0 = scratch + 16 * ((C + O) * P.tpmax + 2 * WINO_SKEW) + wino_tmp_floats(&P);
    for (int t = 1; t < used; t++) {
        const float *d = dU0 + (int64_t)t * per;
        for (int64_t i = 0; i < 16 * O * C + O; i++) dU0[i] += d[i];
    }
    if (gb)
        for (int64_t o = 0; o < O; o++) gb[o] += dU0[16 * O * C + o];
    const int64_t OC = O * C;
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++) {
            float u[4][4], t3[3][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) u[i][j] = dU0[(int64_t)(i * 4 + j) * OC + o * C + c];
            /* G^T u: G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1] */
            for (int j = 0; j < 4; j++) {
                t3[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t3[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t3[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            float *g = gw + (o * C + c) * 9;
            for (int i = 0; i < 3; i++) { /* (G^T u) G */
                g[i * 3 + 0] += t3[i][0] + 0.5f * (t3[i][1] + t3[i][2]);
                g[i * 3 + 1] += 0.5f * (t3[i][1] - t3[i][2]);
                g[i * 3 + 2] += 0.5f * (t3[i][1] + t3[i][2]) + t3[i][3];
            }
        }
}
