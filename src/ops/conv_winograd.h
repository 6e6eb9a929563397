/* Internal: 3x3 stride-1 pad-1 convolution by Winograd F(2x2, 3x3)
 * (conv_winograd.c), used by conv.c for the forward pass and for dx. */
#ifndef SS_OPS_CONV_WINOGRAD_H
#define SS_OPS_CONV_WINOGRAD_H

#include <stdint.h>

/* Floats of scratch ss_wino_conv3x3 needs for these sizes and threads. */
int64_t ss_wino_scratch_floats(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N, int nthreads);

/* out[N,O,H,W] = conv3x3(x[N,C,H,W], w[O,C,3,3], stride 1, pad 1) + bias[O]
 * (bias may be NULL); with add, the result is added to out instead. The
 * images are split over nthreads threads (call it outside parallel regions).
 * scratch: ss_wino_scratch_floats(C, O, H, W, N, nthreads) floats. */
void ss_wino_conv3x3(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *w, int64_t O,
                     const float *bias, float *out, int add, float *scratch, int nthreads);

#endif
