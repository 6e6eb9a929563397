/* Internal: the naive direct-loop 2-D convolution the fast im2col + GEMM path
 * in conv.c is tested against, and a test hook for the chunk size. Not part
 * of the public API (tests include it from src/). */
#ifndef SS_CONV_REF_H
#define SS_CONV_REF_H

#include <stdint.h>

/* out[N,O,Ho,Wo] = conv(x[N,C,H,W], w[O,C,kh,kw]) + b[O] (b may be NULL),
 * zero padding `pad`, stride `stride`; Ho = (H + 2 pad - kh) / stride + 1. */
void ss_conv2d_reference_forward(const float *x, const float *w, const float *b, int64_t N, int64_t C,
                                 int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int stride,
                                 int pad, float *out);

/* Gradients of the above given dy[N,O,Ho,Wo]; each output pointer may be NULL
 * (not wanted). The results are ADDED to gx[N,C,H,W], gw[O,C,kh,kw], gb[O]. */
void ss_conv2d_reference_backward(const float *x, const float *w, const float *dy, int64_t N, int64_t C,
                                  int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int stride,
                                  int pad, float *gx, float *gw, float *gb);

/* Test hook: the im2col column buffer's budget in floats (the batch is
 * processed in chunks of images whose columns fit; at least one image per
 * chunk). n <= 0 restores the default (512K floats = 2 MB). */
void ss_conv2d_set_chunk_floats(int64_t n);

/* Test hook: on (the default, any nonzero value), dx of a conv with stride
 * 1, a square kernel, pad <= k-1 and O <= C is computed as the forward
 * convolution of dy with the flipped weights; off, by W^T · dy and col2im
 * as for every other geometry (tests run both against the reference). */
void ss_conv2d_set_dx_transposed(int on);

/* Test hook: on (the default), the forward pass and dx of a 3x3 stride-1
 * pad-1 conv with at least 8 input and output channels, in fp32, on a plane
 * its 2x2 tiles cover with at most a quarter to spare, run by Winograd
 * F(2x2, 3x3) (conv_winograd.c); off, by im2col + GEMM. */
void ss_conv2d_set_winograd(int on);

/* Test hook: on (the default), where Winograd runs, dW and db too by its
 * transposed transform; off, by im2col. */
void ss_conv2d_set_winograd_dw(int on);

/* Test hook: how many forward passes, dx and dW computations have run by
 * Winograd so far (counted on the calling thread's side; not thread-safe). */
int64_t ss_conv2d_winograd_runs(void);

#endif
