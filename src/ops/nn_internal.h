/* Helpers shared between the nn-level op files (norm_ln.c, softmax.c, attention.c). */
#ifndef SS_OPS_NN_INTERNAL_H
#define SS_OPS_NN_INTERNAL_H

#include <stdint.h>

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
