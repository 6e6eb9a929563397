/* Helpers shared between the nn-level op files (norm_ln.c, softmax.c, attention.c). */
#ifndef SS_OPS_NN_INTERNAL_H
#define SS_OPS_NN_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for x <= 0 (softmax-style arguments: x - rowmax), written so that
 * loops over it vectorise (libm's expf does not). Cephes' expf scheme:
 * x = n ln2 + r with |r| <= ln2/2, a degree-7 polynomial for e^r, and 2^n
 * put together from its exponent bits. Relative error below 1e-7 (8.5e-8
 * measured over every float in [-87, 0]). Returns exactly 0 for x < -87
 * (where expf would give values below 1.7e-38) and for x = -inf; x > 0 is
 * treated as 0; NaN gives NaN. No float-to-int conversion or signed overflow
 * happens, so every input is defined behaviour. */
__attribute__((always_inline)) static inline float ss_exp_nonpos(float x)
{
    const float log2e = 1.44269504088896341f, c1 = 0.693359375f, c2 = -2.12194440e-4f;
    float xc = x < -87.0f ? -87.0f : (x > 0.0f ? 0.0f : x); /* x > 0 gives 1 */
    float t = xc * log2e + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    float nf = t - 12582912.0f;
    uint32_t ti;
    memcpy(&ti, &t, sizeof ti);
    uint32_t bits = (ti - 0x4B400000u + 127u) << 23; /* 2^n, n in [-126, 0] (wraps for NaN) */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float r = xc - nf * c1 - nf * c2;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = (p * r * r + r + 1.0f) * scale;
    return x < -87.0f ? 0.0f : y;
}

/* max(x[0..n)) ignoring NaN (-inf when n == 0 or all NaN), and the same
 * over the elements with keep[j] != 0. Eight independent lanes so gcc and
 * clang both vectorise it (clang 14 does not vectorise a float max
 * reduction under "omp simd"); the result does not depend on the order. */
static inline float ss_row_max(const float *x, int64_t n)
{
    float mv[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) mv[l] = x[j + l] > mv[l] ? x[j + l] : mv[l];
    for (; j < n; j++) mv[0] = x[j] > mv[0] ? x[j] : mv[0];
    float m = mv[0];
    for (int l = 1; l < 8; l++) m = mv[l] > m ? mv[l] : m;
    return m;
}

static inline float ss_row_max_masked(const float *x, const float *keep, int64_t n)
{
    float mv[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) mv[l] = (keep[j + l] != 0.0f && x[j + l] > mv[l]) ? x[j + l] : mv[l];
    for (; j < n; j++) mv[0] = (keep[j] != 0.0f && x[j] > mv[0]) ? x[j] : mv[0];
    float m = mv[0];
    for (int l = 1; l < 8; l++) m = mv[l] > m ? mv[l] : m;
    return m;
}

/* Normalise R rows of D floats from src into dst (may not alias);
 * div[r] = max(||src_r||_2, eps). Parallel over rows. */
void ss_l2_rows(const float *src, float *dst, float *div, int64_t R, int64_t D, float eps);
/* Backward of ss_l2_rows given y = dst and dy:
 * dx_r += (dy_r - y_r (y_r . dy_r)) / div_r, or dy_r / eps where the norm
 * was clamped to eps. */
void ss_l2_rows_backward(const float *y, const float *dy, const float *div, float *dx, int64_t R, int64_t D,
                         float eps);

/* Naive attention (attention.c), the reference the tests hold the fast
 * path to. Contiguous q [B,Tq,H*Dh], k/v [B,Tk,H*Dh], keep-mask [B,Tk] or
 * NULL; writes out; when dout is non-NULL also ACCUMULATES dq/dk/dv (each
 * may be NULL). On allocation failure it writes nothing. */
void ss_attention_ref(const float *q, const float *k, const float *v, const float *mask, int64_t B, int64_t Tq,
                      int64_t Tk, int64_t H, int64_t Dh, float *out, const float *dout, float *dq, float *dk,
                      float *dv);

#endif
