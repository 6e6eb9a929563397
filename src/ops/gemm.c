/* Matrix products: CBLAS sgemm (fp32) or a bfloat16 kernel (AVX-512 BF16).
 *
 * The bf16 path is GotoBLAS-style blocking around one instruction,
 *   vdpbf16ps acc, a, b:  acc[l] += a[2l]*b[2l] + a[2l+1]*b[2l+1]  (fp32 sums)
 * so both operands are packed as 32-bit words that hold two consecutive k
 * (even k in the low half), rounded to bf16 (nearest even):
 *   A block: [MC/MR panels][KC2 pairs][MR rows]   (one word is broadcast)
 *   B panel: [KC2 pairs][NR = 48 columns]         (three zmm per pair)
 * Micro-kernel: MR = 8 rows x 48 columns = 24 zmm accumulators (8
 * broadcasts and 3 loads feed 24 vdpbf16ps; 8 divides every channel count
 * of the reference encoders), the whole
 * K block in registers, then C = alpha * acc + beta * C (beta == 0 never
 * reads C). Loops: K blocks of 2*KC2 = 512 (the first applies beta, later
 * ones add into C), M blocks of MC = 192 rows (A block 192 KB, for L2; more rows when
 * the K block is short), N panels of 48 (B panel <= 48 KB), then the A block's panels.
 *
 * Threads: outside an OpenMP region and for products of >= 4 MFLOP the N
 * panels (or, when there are fewer panels than threads, the rows) are split
 * in contiguous ranges over the threads; every C element is summed by one
 * thread in a fixed order, so the same thread count gives the same bits.
 * Inside a region (the conv chunks) each call runs on its own thread.
 * Scratch: one 240 KB buffer per thread, allocated on its first bf16 call
 * and kept (no allocation per step); if it cannot be had, that thread uses
 * fp32 sgemm instead.
 *
 * The instructions treat bf16 denormals as zero; ss_bf16_round (the scalar
 * reference) keeps them, which matters only below 1.2e-38. */
#include "ops/gemm.h"

#include <cblas.h>
#include <omp.h>
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

#define MR 8
#define NR 48
#define KC2 256 /* k pairs per K block */
#define MC 192 /* rows per M block (a multiple of MR) */
#define BUF_WORDS ((size_t)MC * KC2 + (size_t)KC2 * NR)
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static inline int imin(int a, int b) { return a < b ? a : b; }

/* Layout of the source of a pack: element (r, k) at src[r*ld + k] (RK: k
 * contiguous) or at src[k*ld + r] (KR: r contiguous). */
enum { RK = 0, KR = 1 };

/* In-register transpose of a 16x16 matrix of 32-bit words (v[i] = row i
 * on entry, column i on return). */
TGT static inline void transpose16(__m512i v[16])
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

/* dst[kp*W + r] = bf16 pair (k = 2kp, 2kp+1) of row r, for kp < ceil(kn/2)
 * and r < W; rows r >= R and the k beyond kn are zero. */
TGT static void pack(uint32_t *dst, int W, int layout, const float *src, int64_t ld, int R, int kn)
{
    const int k2 = (kn + 1) / 2;
    if (layout == KR) {
        const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                               22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (int kp = 0; kp < k2; kp++) {
            const float *s0 = src + (int64_t)(2 * kp) * ld, *s1 = s0 + ld;
            const int has1 = 2 * kp + 1 < kn;
            for (int r = 0; r < W; r += 16) {
                int n = imin(16, R - r), w = imin(16, W - r);
                __mmask16 m = n <= 0 ? 0 : (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
                __m512 x0 = _mm512_maskz_loadu_ps(m, s0 + r);
                __m512 x1 = has1 ? _mm512_maskz_loadu_ps(m, s1 + r) : _mm512_setzero_ps();
                __m512i v = _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
                _mm512_mask_storeu_epi32(dst + (size_t)kp * W + r, (__mmask16)(w >= 16 ? 0xffffu : (1u << w) - 1u), v);
            }
        }
        return;
    }
    /* RK: 16 rows x 32 k at a time: each row's 32 floats become 16 pair
     * words (row-major), a 16x16 word transpose turns them into 16 pair rows
     * of 16 columns, stored at dst[kp*W + r]. */
    for (int r0 = 0; r0 < W; r0 += 16) {
        const int w = imin(16, W - r0);
        const __mmask16 wm = (__mmask16)(w >= 16 ? 0xffffu : (1u << w) - 1u);
        for (int k0 = 0; k0 < kn; k0 += 32) {
            const int n = imin(32, kn - k0), nlo = imin(16, n), nhi = n - nlo, np = (n + 1) / 2;
            const __mmask16 mlo = (__mmask16)(nlo >= 16 ? 0xffffu : (1u << nlo) - 1u);
            const __mmask16 mhi = (__mmask16)(nhi >= 16 ? 0xffffu : nhi > 0 ? (1u << nhi) - 1u : 0u);
            __m512i v[16];
            for (int q = 0; q < 16; q++) {
                if (r0 + q >= R) {
                    v[q] = _mm512_setzero_si512();
                    continue;
                }
                const float *s = src + (int64_t)(r0 + q) * ld + k0;
                v[q] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(mhi, s + 16), _mm512_maskz_loadu_ps(mlo, s));
            }
            transpose16(v);
            for (int p = 0; p < np; p++) _mm512_mask_storeu_epi32(dst + (size_t)(k0 / 2 + p) * W + r0, wm, v[p]);
        }
    }
}

/* C[mr, nr] = alpha * (A panel · B panel) + beta * C over k2 pairs. */
TGT static void kernel(int k2, const uint32_t *ap, const uint32_t *bp, float *C, int64_t ldc, int mr, int nr,
                       float alpha, float beta)
{
    __m512 acc[MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = acc[i][2] = _mm512_setzero_ps();
    for (int kp = 0; kp < k2; kp++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 16),
                 b2 = (__m512bh)_mm512_loadu_si512(bp + 32);
        bp += NR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
            acc[i][2] = _mm512_dpbf16_ps(acc[i][2], a, b2);
        }
        ap += MR;
    }
    __mmask16 m[3];
    for (int h = 0; h < 3; h++) {
        int w = nr - 16 * h;
        m[h] = (__mmask16)(w >= 16 ? 0xffffu : w > 0 ? (1u << w) - 1u : 0u);
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        float *c = C + (int64_t)i * ldc;
#pragma GCC unroll 3
        for (int h = 0; h < 3; h++) {
            __m512 r = _mm512_mul_ps(acc[i][h], va);
            if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[h], c + 16 * h), r);
            _mm512_mask_storeu_ps(c + 16 * h, m[h], r);
        }
    }
}

TGT static void gemm_serial(int ta, int tb, int M, int N, int K, float alpha, const float *A, int64_t lda,
                            const float *B, int64_t ldb, float beta, float *C, int64_t ldc, uint32_t *buf)
{
    uint32_t *abuf = buf, *bbuf = buf + (size_t)MC * KC2;
    for (int k0 = 0; k0 < K; k0 += 2 * KC2) {
        const int kn = imin(2 * KC2, K - k0), k2 = (kn + 1) / 2;
        const float bt = k0 == 0 ? beta : 1.0f;
        /* Rows per M block: as many as the A buffer holds for this K block
         * (a short K block takes more rows, so B is packed fewer times). */
        const int mc = imin(M, (int)((size_t)MC * KC2 / (size_t)k2 / MR * MR));
        for (int i0 = 0; i0 < M; i0 += mc) {
            const int mn = imin(mc, M - i0);
            for (int ip = 0; ip < mn; ip += MR) {
                const float *s = ta ? A + (int64_t)k0 * lda + (i0 + ip) : A + (int64_t)(i0 + ip) * lda + k0;
                pack(abuf + (size_t)(ip / MR) * k2 * MR, MR, ta ? KR : RK, s, lda, imin(MR, mn - ip), kn);
            }
            for (int j0 = 0; j0 < N; j0 += NR) {
                const int nr = imin(NR, N - j0);
                const float *s = tb ? B + (int64_t)j0 * ldb + k0 : B + (int64_t)k0 * ldb + j0;
                pack(bbuf, NR, tb ? RK : KR, s, ldb, nr, kn);
                for (int ip = 0; ip < mn; ip += MR)
                    kernel(k2, abuf + (size_t)(ip / MR) * k2 * MR, bbuf, C + (int64_t)(i0 + ip) * ldc + j0, ldc,
                           imin(MR, mn - ip), nr, alpha, bt);
            }
        }
    }
}

static _Thread_local uint32_t *tls_buf;

static uint32_t *thread_buf(void)
{
    if (!tls_buf) tls_buf = aligned_alloc(64, BUF_WORDS * sizeof(uint32_t));
    return tls_buf;
}

/* One thread's share: rows [i0, i0+m) x columns [j0, j0+n) of C. */
static void gemm_part(int ta, int tb, int i0, int m, int j0, int n, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
    const float *a = ta ? A + i0 : A + (int64_t)i0 * lda;
    const float *b = tb ? B + (int64_t)j0 * ldb : B + j0;
    float *c = C + (int64_t)i0 * ldc + j0;
    uint32_t *buf = thread_buf();
    if (buf) gemm_serial(ta, tb, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc, buf);
    else cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, K, alpha,
                     a, lda, b, ldb, beta, c, ldc);
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
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (T < 2 || 2.0 * M * (double)N * K < 4194304.0) {
        gemm_part(ta, tb, 0, M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return 1;
    }
    const int np = (N + NR - 1) / NR, mp = (M + MR - 1) / MR;
    const int by_cols = np >= T || np >= mp;
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (by_cols) {
            int p0 = (int)((int64_t)np * t / nt), p1 = (int)((int64_t)np * (t + 1) / nt);
            int j0 = p0 * NR, j1 = imin(N, p1 * NR);
            gemm_part(ta, tb, 0, M, j0, j1 - j0, K, alpha, A, lda, B, ldb, beta, C, ldc);
        } else {
            int p0 = (int)((int64_t)mp * t / nt), p1 = (int)((int64_t)mp * (t + 1) / nt);
            int i0 = p0 * MR, i1 = imin(M, p1 * MR);
            gemm_part(ta, tb, i0, i1 - i0, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
