/* Matrix products: CBLAS sgemm (fp32) or a bfloat16 kernel (AVX-512 BF16).
 *
 * The bf16 path is GotoBLAS-style blocking around one instruction,
 *   vdpbf16ps acc, a, b:  acc[l] += a[2l]*b[2l] + a[2l+1]*b[2l+1]  (fp32 sums)
 * so both operands are packed as 32-bit words that hold two consecutive k
 * (even k in the low half), rounded to bf16 (nearest even):
 *   A block: [MC/MR panels][KC2 pairs][MR rows]   (one word is broadcast)
 *   B panel: [KC2 pairs][NR = 48 or 32 columns]   (three or two zmm per pair)
 * Micro-kernels: MR = 8 rows x 48 columns or 12 x 32 (whichever pads the
 * product less; chosen from the whole product's shape), 24 zmm accumulators
 * either way, the whole K block in registers, then C = alpha * acc + beta * C
 * (beta == 0 never reads C). Loops: K blocks of 2*KC2 = 512 (the first
 * applies beta, later ones add into C), M blocks of MC = 192 rows (A block
 * 192 KB, for L2; more rows when the K block is short), N panels (B panel
 * <= 48 KB), then the A block's panels.
 *
 * Threads: outside an OpenMP region and for products of >= 4 MFLOP the N
 * panels (or, when there are too few for an even share, the rows) are split
 * in contiguous ranges over the threads. Each C element is summed the same
 * way whichever thread owns it, so the bits do not depend on the thread
 * count. Inside a region (the conv chunks) each call runs on its own thread.
 * Scratch: one 240 KB buffer per thread, allocated on its first bf16 call
 * and kept until the thread exits (no allocation per step).
 *
 * The instructions treat denormal inputs as zero and flush denormal results
 * (they do not consult MXCSR); ss_bf16_round (the scalar reference) keeps
 * them, which matters only below 1.2e-38. If a thread cannot allocate its
 * scratch buffer (out of memory), its share of the product runs in fp32. */
#include "ops/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/runtime.h"

float ss_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* NaN: keep a mantissa bit above the cut */
    else u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float y;
    memcpy(&y, &u, sizeof y);
    return y;
}

void ss_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc)
{
    if (ss_get_precision() == SS_PRECISION_BF16 && ss_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KC2 256 /* k pairs per K block */
#define MC 192  /* rows per M block (a multiple of both MRs) */
#define NR_MAX 48
#define BUF_WORDS ((size_t)MC * KC2 + (size_t)KC2 * NR_MAX)
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline __mmask16 lanes(int n) { return (__mmask16)(n >= 16 ? 0xffffu : n > 0 ? (1u << n) - 1u : 0u); }

/* Layout of the source of a pack: element (r, k) at src[r*ld + k] (RK: k
 * contiguous) or at src[k*ld + r] (KR: r contiguous). */
enum { RK = 0, KR = 1 };

/* In-register transpose of a 16x16 matrix of 32-bit words (v[i] = row i
 * on entry, column i on return). */
TGT __attribute__((always_inline)) static inline void transpose16(__m512i v[16])
{
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        v[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        v[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        v[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        v[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            t[8 * h + i] = _mm512_shuffle_i32x4(v[8 * h + i], v[8 * h + 4 + i], 0x88);
            t[8 * h + 4 + i] = _mm512_shuffle_i32x4(v[8 * h + i], v[8 * h + 4 + i], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        v[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
        v[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
    }
}

/* Store lane l of v (the pair word of row r0 + l at pair kp) into its panel:
 * row r of the block lives in panel r / W at dst[(r/W)*k2*W + kp*W + r%W].
 * One masked store per panel the 16 rows touch; lanes at rows >= rows are
 * not stored. */
TGT __attribute__((always_inline)) static inline void store_rows(uint32_t *dst, int W, int k2, int rows, int r0, int kp, __m512i v)
{
    const int lim = imin(16, rows - r0);
    if (rows == W) { /* one panel (every B panel) */
        _mm512_mask_storeu_epi32(dst + (int64_t)kp * W + r0, lanes(lim), v);
        return;
    }
    for (int l = 0; l < lim;) {
        const int P = (r0 + l) / W, l1 = imin(lim, (P + 1) * W - r0);
        /* lane l' goes to dst + P*k2*W + kp*W + (r0 + l' - P*W); the base is
         * inside the buffer since k2 >= 1. */
        uint32_t *base = dst + ((int64_t)P * k2 * W - (int64_t)P * W + (int64_t)kp * W + r0);
        _mm512_mask_storeu_epi32(base, (__mmask16)(lanes(l1) & ~lanes(l)), v);
        l = l1;
    }
}

/* Pack rows [0, rows) (rows a multiple of W; rows >= R are zero) and k in
 * [0, kn) (zero-padded to even) into panels of W rows:
 * dst[p*k2*W + kp*W + r] = bf16 pair (k = 2kp, 2kp+1) of row p*W + r.
 * Always inlined with a constant W (pack() below), so the panel arithmetic
 * has no divisions. */
TGT __attribute__((always_inline)) static inline void pack_w(uint32_t *dst, const int W, int rows, int layout,
                                                             const float *src, int64_t ld, int R, int kn)
{
    const int k2 = (kn + 1) / 2;
    if (layout == KR) {
        /* Per panel and pair: rows r..r+15 of k and of k+1 are two
         * contiguous loads; one conversion and one interleave give the pair
         * words. */
        const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                               22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (int p0 = 0; p0 < rows; p0 += W) {
            uint32_t *d = dst + (int64_t)(p0 / W) * k2 * W;
            for (int kp = 0; kp < k2; kp++) {
                const int has1 = 2 * kp + 1 < kn;
                const float *s0 = src + (int64_t)(2 * kp) * ld, *s1 = has1 ? s0 + ld : s0;
                for (int r = 0; r < W; r += 16) {
                    /* rows at or past R load nothing (and form no pointer past them) */
                    const __mmask16 m = lanes(imin(R - p0 - r, W - r));
                    __m512 x0 = m ? _mm512_maskz_loadu_ps(m, s0 + p0 + r) : _mm512_setzero_ps();
                    __m512 x1 = m && has1 ? _mm512_maskz_loadu_ps(m, s1 + p0 + r) : _mm512_setzero_ps();
                    _mm512_mask_storeu_epi32(d + (int64_t)kp * W + r, lanes(W - r),
                                             _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(x1, x0)));
                }
            }
        }
        return;
    }
    /* RK: 16 rows x 32 k at a time: each row's 32 floats become 16 pair
     * words, a 16x16 word transpose turns them into 16 pair rows of 16
     * rows' words. */
    for (int r0 = 0; r0 < rows; r0 += 16) {
        for (int k0 = 0; k0 < kn; k0 += 32) {
            const int n = imin(32, kn - k0), np = (n + 1) / 2;
            const __mmask16 mlo = lanes(n), mhi = lanes(n - 16);
            __m512i v[16];
            for (int q = 0; q < 16; q++) {
                if (r0 + q >= R) {
                    v[q] = _mm512_setzero_si512();
                    continue;
                }
                const float *s = src + (int64_t)(r0 + q) * ld + k0;
                __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(mhi, s + 16) : _mm512_setzero_ps();
                v[q] = (__m512i)_mm512_cvtne2ps_pbh(hi, _mm512_maskz_loadu_ps(mlo, s));
            }
            transpose16(v);
            for (int p = 0; p < np; p++) store_rows(dst, W, k2, rows, r0, k0 / 2 + p, v[p]);
        }
    }
}

TGT static void pack(uint32_t *dst, int W, int rows, int layout, const float *src, int64_t ld, int R, int kn)
{
    switch (W) {
    case 8: pack_w(dst, 8, rows, layout, src, ld, R, kn); break;
    case 12: pack_w(dst, 12, rows, layout, src, ld, R, kn); break;
    case 32: pack_w(dst, 32, rows, layout, src, ld, R, kn); break;
    default: pack_w(dst, 48, rows, layout, src, ld, R, kn); break;
    }
}

/* Micro-kernels: C[mr, nr] = alpha * (A panel · B panel) + beta * C over k2
 * pairs, MR rows x (NV x 16) columns, MR * NV accumulators in registers. */
#define SS_BF16_KERNEL(NAME, MRV, NV)                                                                                  \
    TGT static void NAME(int k2, const uint32_t *ap, const uint32_t *bp, float *C, int64_t ldc, int mr, int nr,       \
                         float alpha, float beta)                                                                     \
    {                                                                                                                  \
        __m512 acc[MRV][NV];                                                                                           \
        _Pragma("GCC unroll 12") for (int i = 0; i < MRV; i++)                                                         \
            _Pragma("GCC unroll 3") for (int h = 0; h < NV; h++) acc[i][h] = _mm512_setzero_ps();                      \
        for (int kp = 0; kp < k2; kp++) {                                                                              \
            __m512bh b[NV];                                                                                            \
            _Pragma("GCC unroll 3") for (int h = 0; h < NV; h++) b[h] = (__m512bh)_mm512_loadu_si512(bp + 16 * h);     \
            bp += 16 * NV;                                                                                             \
            _Pragma("GCC unroll 12") for (int i = 0; i < MRV; i++)                                                     \
            {                                                                                                          \
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[i]);                                                  \
                _Pragma("GCC unroll 3") for (int h = 0; h < NV; h++) acc[i][h] = _mm512_dpbf16_ps(acc[i][h], a, b[h]); \
            }                                                                                                          \
            ap += MRV;                                                                                                 \
        }                                                                                                              \
        __mmask16 m[NV];                                                                                               \
        for (int h = 0; h < NV; h++) m[h] = lanes(nr - 16 * h);                                                        \
        const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                            \
        _Pragma("GCC unroll 12") for (int i = 0; i < MRV; i++)                                                         \
        {                                                                                                              \
            if (i >= mr) break;                                                                                        \
            float *c = C + (int64_t)i * ldc;                                                                           \
            _Pragma("GCC unroll 3") for (int h = 0; h < NV; h++)                                                       \
            {                                                                                                          \
                if (16 * h >= nr) break; /* no pointer past the row's end */                                          \
                __m512 r = _mm512_mul_ps(acc[i][h], va);                                                               \
                if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[h], c + 16 * h), r);                 \
                _mm512_mask_storeu_ps(c + 16 * h, m[h], r);                                                            \
            }                                                                                                          \
        }                                                                                                              \
    }

/* 8 x 48: 8 broadcasts + 3 loads feed 24 vdpbf16ps. 12 x 32: 12 + 2 feed
 * 24; for N that 48 cuts badly (64, 128). */
SS_BF16_KERNEL(kernel_8x48, 8, 3)
SS_BF16_KERNEL(kernel_12x32, 12, 2)

typedef void (*kernel_fn)(int, const uint32_t *, const uint32_t *, float *, int64_t, int, int, float, float);
typedef struct cfg {
    int mr, nr;
    kernel_fn kern;
} cfg;

/* The shape whose padded product (rows to MR, columns to NR) is smallest;
 * 12 x 32 pays for its 50% more broadcasts per product with 8% (measured
 * ratio of the two on a square product). */
static cfg choose(int M, int N)
{
    double a = (double)((M + 7) / 8 * 8) * ((N + 47) / 48 * 48);
    double b = 1.08 * (double)((M + 11) / 12 * 12) * ((N + 31) / 32 * 32);
    return a <= b ? (cfg){8, 48, kernel_8x48} : (cfg){12, 32, kernel_12x32};
}

TGT static void gemm_serial(cfg c, int ta, int tb, int M, int N, int K, float alpha, const float *A, int64_t lda,
                            const float *B, int64_t ldb, float beta, float *C, int64_t ldc, uint32_t *buf)
{
    const int MR = c.mr, NR = c.nr;
    uint32_t *abuf = buf, *bbuf = buf + (size_t)MC * KC2;
    for (int k0 = 0; k0 < K; k0 += 2 * KC2) {
        const int kn = imin(2 * KC2, K - k0), k2 = (kn + 1) / 2;
        const float bt = k0 == 0 ? beta : 1.0f;
        /* Rows per M block: as many as the A buffer holds for this K block
         * (a short K block takes more rows, so B is packed fewer times). */
        const int mc = imin(M, (int)((size_t)MC * KC2 / (size_t)k2 / (size_t)MR * (size_t)MR));
        for (int i0 = 0; i0 < M; i0 += mc) {
            const int mn = imin(mc, M - i0), rows = (mn + MR - 1) / MR * MR;
            const float *sa = ta ? A + (int64_t)k0 * lda + i0 : A + (int64_t)i0 * lda + k0;
            pack(abuf, MR, rows, ta ? KR : RK, sa, lda, mn, kn);
            for (int j0 = 0; j0 < N; j0 += NR) {
                const int nr = imin(NR, N - j0);
                const float *sb = tb ? B + (int64_t)j0 * ldb + k0 : B + (int64_t)k0 * ldb + j0;
                pack(bbuf, NR, NR, tb ? RK : KR, sb, ldb, nr, kn);
                for (int ip = 0; ip < mn; ip += MR)
                    c.kern(k2, abuf + (size_t)(ip / MR) * k2 * MR, bbuf, C + (int64_t)(i0 + ip) * ldc + j0, ldc,
                           imin(MR, mn - ip), nr, alpha, bt);
            }
        }
    }
}

/* The calling thread's scratch buffer, made on its first bf16 product and
 * freed when the thread exits (a pthread key's destructor: OpenMP pools
 * that grow and shrink with the thread count must not leak one per thread). */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static int buf_key_ok;

static void buf_free(void *p) { free(p); }
static void buf_key_init(void) { buf_key_ok = pthread_key_create(&buf_key, buf_free) == 0; }

static uint32_t *thread_buf(void)
{
    if (pthread_once(&buf_once, buf_key_init) != 0 || !buf_key_ok) return NULL;
    uint32_t *b = pthread_getspecific(buf_key);
    if (!b) {
        b = aligned_alloc(64, BUF_WORDS * sizeof(uint32_t));
        if (b && pthread_setspecific(buf_key, b) != 0) {
            free(b);
            b = NULL;
        }
    }
    return b;
}

/* One thread's share: rows [i0, i0+m) x columns [j0, j0+n) of C. */
static void gemm_part(cfg c, int ta, int tb, int i0, int m, int j0, int n, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
    const float *a = ta ? A + i0 : A + (int64_t)i0 * lda;
    const float *b = tb ? B + (int64_t)j0 * ldb : B + j0;
    float *cc = C + (int64_t)i0 * ldc + j0;
    uint32_t *buf = thread_buf();
    if (buf) gemm_serial(c, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, cc, ldc, buf);
    else cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, K, alpha,
                     a, lda, b, ldb, beta, cc, ldc);
}

int ss_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    if (!ss_cpu_has_bf16()) return 0;
    if (M <= 0 || N <= 0) return 1;
    if (K <= 0) { /* C = beta * C, as BLAS does */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return 1;
    }
    const cfg c = choose(M, N);
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (T < 2 || 2.0 * M * (double)N * K < 4194304.0) {
        gemm_part(c, ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return 1;
    }
    /* Split the columns when there are panels enough for an even share,
     * else the rows. */
    const int np = (N + c.nr - 1) / c.nr, mp = (M + c.mr - 1) / c.mr;
    const int by_cols = np >= 4 * T || np >= mp;
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (by_cols) {
            int p0 = (int)((int64_t)np * t / nt), p1 = (int)((int64_t)np * (t + 1) / nt);
            int j0 = p0 * c.nr, j1 = imin(N, p1 * c.nr);
            gemm_part(c, ta, tb, 0, M, j0, j1 - j0, K, alpha, A, lda, B, ldb, beta, C, ldc);
        } else {
            int p0 = (int)((int64_t)mp * t / nt), p1 = (int)((int64_t)mp * (t + 1) / nt);
            int i0 = p0 * c.mr, i1 = imin(M, p1 * c.mr);
            gemm_part(c, ta, tb, i0, i1 - i0, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
    }
    return 1;
}

#else /* no x86-64 AVX-512 BF16 kernel in this build */

int ss_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta,
        (void)C, (void)ldc;
    return 0;
}

#endif
