/* Vectorisable erf for GELU (elementwise.c). libm's erff is a scalar call,
 * 8% of the MAE step; this one is straight-line arithmetic, so GELU's loops
 * vectorise. |x| < 1: Taylor series; otherwise Abramowitz & Stegun 7.1.26
 * with the exp from nn_internal.h:
 *   erf(|x|) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2),
 *   t = 1 / (1 + p |x|),  erf(-x) = -erf(x).
 * Absolute error below 2.5e-7 (tests/test_perf_kernels.c checks it against
 * libm's erff, the reference, on a dense grid); NaN gives NaN. */
#ifndef SS_OPS_FASTMATH_H
#define SS_OPS_FASTMATH_H

#include "ops/nn_internal.h"

__attribute__((always_inline)) static inline float ss_erf_fast(float x)
{
    /* |x| < 1: the Taylor series to x^23 (error < 1e-9 there), which also
     * avoids 1 - (a value near 1) losing digits for small |x|. */
    float z = x * x, q = -1.229055530e-09f;
    q = q * z + 1.480719282e-08f;
    q = q * z + -1.636584469e-07f;
    q = q * z + 1.646211437e-06f;
    q = q * z + -1.492565036e-05f;
    q = q * z + 1.205533298e-04f;
    q = q * z + -8.548327023e-04f;
    q = q * z + 5.223977625e-03f;
    q = q * z + -2.686617065e-02f;
    q = q * z + 1.128379167e-01f;
    q = q * z + -3.761263890e-01f;
    q = q * z + 1.128379167e+00f;
    float small = x * q;
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float e = ss_exp_nonpos(-ax * ax);
    float r = 1.0f - p * t * e;
    r = copysignf(r, x);
    return ax < 1.0f ? small : r;
}

#endif
