/* The one matrix-product entry point of the ops (conv2d, linear, matmul):
 * row-major C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, op = transpose
 * when ta / tb. With precision fp32 (the default) it is CBLAS sgemm; with
 * bf16 (ss_set_precision, AVX-512 BF16 CPUs) the operands are rounded to
 * bfloat16 (nearest even) and multiplied with fp32 accumulation
 * (src/ops/gemm.c). beta == 0 never reads C. */
#ifndef SS_OPS_GEMM_H
#define SS_OPS_GEMM_H

void ss_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

/* The bf16 kernel itself, whatever the precision setting (tests compare it
 * with a scalar reference). Returns 0 (and does nothing) when the CPU or the
 * build lacks AVX-512 BF16. */
int ss_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* x rounded to bfloat16 (nearest even; NaN stays NaN), as a float. */
float ss_bf16_round(float x);

#endif
