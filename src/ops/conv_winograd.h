/* Internal: 3x3 stride-1 pad-1 convolution by Winograd F(2x2, 3x3)
 * (conv_winograd.c), used by conv.c for the forward pass, dx, and dW with db. */
#ifndef SS_OPS_CONV_WINOGRAD_H
#define SS_OPS_CONV_WINOGRAD_H

#include <stdint.h>

/* 1 where Winograd pays for these sizes: the 2x2 tiles waste at most a
 * quarter of their outputs on the plane (5x5: 36 for 25, no; 7x7: 64 for
 * 49, yes: convnet-s' last conv measured 1.07x faster at the step), and a
 * chunk (tile rows of one image, or whole images where one fits) fills at
 * least three quarters of the product kernel's 16-column blocks (a single
 * 4x4 plane of ResNet-18 at 512 channels does not, and keeps im2col). */
int ss_wino_suits(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N);

/* Floats of scratch ss_wino_conv3x3 needs for these sizes and threads. */
int64_t ss_wino_scratch_floats(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N, int nthreads);

/* out[N,O,H,W] = conv3x3(x[N,C,H,W], w[O,C,3,3], stride 1, pad 1) + bias[O]
 * (bias may be NULL); with add, the result is added to out instead. The
 * images are split over nthreads threads (call it outside parallel regions).
 * scratch: ss_wino_scratch_floats(C, O, H, W, N, nthreads) floats. */
void ss_wino_conv3x3(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *w, int64_t O,
                     const float *bias, float *out, int add, float *scratch, int nthreads);

/* dW[O,C,3,3] += the weight gradient of ss_wino_conv3x3 given x [N,C,H,W]
 * and dy [N,O,H,W], by the transposed Winograd transform; gb[O] += the sums
 * of dy (gb may be NULL). Threads over images as above. scratch:
 * ss_wino_wgrad_scratch_floats(C, O, H, W, N, nthreads) floats. */
int64_t ss_wino_wgrad_scratch_floats(int64_t C, int64_t O, int64_t H, int64_t W, int64_t N, int nthreads);
void ss_wino_wgrad3x3(const float *x, const float *dy, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O,
                      float *gw, float *gb, float *scratch, int nthreads);

#endif
