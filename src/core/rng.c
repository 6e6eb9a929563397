/* Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011). */
#include "selfsup/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void ss_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

uint64_t ss_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void ss_rng_seed(ss_rng *r, uint64_t seed, uint64_t stream)
{
    r->key = ss_mix64(seed ^ ss_mix64(stream + 0x5151));
    r->counter = 0;
    r->pos = 4;
    r->have_normal = 0;
    r->spare_normal = 0.0f;
    for (int i = 0; i < 4; i++) r->buf[i] = 0;
}

uint32_t ss_rng_u32(ss_rng *r)
{
    if (r->pos >= 4) {
        ss_philox4x32(r->key, r->counter++, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t ss_rng_u64(ss_rng *r)
{
    uint64_t hi = ss_rng_u32(r);
    return (hi << 32) | ss_rng_u32(r);
}

float ss_rng_uniform(ss_rng *r) { return (float)(ss_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

uint32_t ss_rng_below(ss_rng *r, uint32_t n)
{
    /* Lemire's method with rejection. */
    uint64_t m = (uint64_t)ss_rng_u32(r) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)ss_rng_u32(r) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float ss_rng_normal(ss_rng *r)
{
    if (r->have_normal) {
        r->have_normal = 0;
        return r->spare_normal;
    }
    float u1 = ((float)(ss_rng_u32(r) >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0,1] */
    float u2 = ss_rng_uniform(r);
    float rad = sqrtf(-2.0f * logf(u1));
    float th = 6.28318530717958647692f * u2;
    r->spare_normal = rad * sinf(th);
    r->have_normal = 1;
    return rad * cosf(th);
}

void ss_rng_shuffle_i32(ss_rng *r, int32_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ss_rng_below(r, (uint32_t)(i + 1));
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
