/* selfsup — counter-based random numbers (Philox-4x32-10).
 *
 * A stream is (key, counter): the same seed and stream id always give the
 * same sequence, independent of thread count. The state is a plain struct
 * that checkpoints save and restore byte for byte. For parallel loops, derive
 * one stream per item with ss_rng_seed(&r, seed, item_id) instead of sharing
 * one generator.
 */
#ifndef SELFSUP_RNG_H
#define SELFSUP_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_rng {
    uint64_t key;
    uint64_t counter;
    uint32_t buf[4];
    uint32_t pos; /* next unread word of buf (4 = empty) */
    uint32_t have_normal;
    float spare_normal;
} ss_rng;

/* The 4x32 Philox block for (key, counter). */
void ss_philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]);

void ss_rng_seed(ss_rng *r, uint64_t seed, uint64_t stream);
uint32_t ss_rng_u32(ss_rng *r);
uint64_t ss_rng_u64(ss_rng *r);
/* Uniform in [0,1) with 24 random bits. */
float ss_rng_uniform(ss_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint32_t ss_rng_below(ss_rng *r, uint32_t n);
/* Standard normal (Box-Muller). */
float ss_rng_normal(ss_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void ss_rng_shuffle_i32(ss_rng *r, int32_t *idx, int64_t n);
/* Mix a 64-bit value (splitmix64 finaliser); for deriving seeds. */
uint64_t ss_mix64(uint64_t x);

#ifdef __cplusplus
}
#endif
#endif
