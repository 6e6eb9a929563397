/* selfsup — runtime settings (threads) and the step benchmarks. */
#ifndef SELFSUP_RUNTIME_H
#define SELFSUP_RUNTIME_H

#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Use n threads for OpenMP loops and the BLAS. Same seed + same thread
 * count = same bits. */
void ss_set_threads(int n);
int ss_get_threads(void);

/* Precision of the matrix products (conv2d, linear, matmul; attention's
 * products and everything else stay fp32). FP32: CBLAS sgemm. BF16: operands
 * rounded to bfloat16, products summed in fp32, weights, gradients and
 * optimiser state kept in fp32 ("mixed precision"); needs AVX-512 BF16.
 * ss_set_precision returns the precision now in effect: asking for BF16 on a
 * CPU (or build) without it leaves FP32. Set it before training, not while
 * other threads compute. Same seed + same precision = same bits (bf16
 * results do not depend on the thread count). */
typedef enum ss_precision { SS_PRECISION_FP32 = 0, SS_PRECISION_BF16 = 1 } ss_precision;
ss_precision ss_set_precision(ss_precision p);
ss_precision ss_get_precision(void);
/* 1 when this CPU and OS run AVX-512 BF16 (cpuid + xgetbv) and the build has
 * the kernel; 0 otherwise. */
int ss_cpu_has_bf16(void);
/* "fp32" / "bf16", or NULL for another name. */
const char *ss_precision_name(ss_precision p);
int ss_precision_parse(const char *name, ss_precision *out);

/* OpenMP defaults for a CPU shared with other work: when neither
 * GOMP_SPINCOUNT nor OMP_WAIT_POLICY is set, set GOMP_SPINCOUNT=10000 (idle
 * OpenMP threads spin ~10 us, then sleep, instead of ~0.3 s of busy-waiting
 * that steals the cores from the BLAS and the other thread) and re-execute
 * the program (libgomp reads the variable only at start-up) with the same
 * argv. Call first thing in main(). Returns only if nothing had to change or
 * the re-exec failed (then the program just runs with libgomp's defaults). */
void ss_runtime_omp_defaults(char **argv);

/* Floating-point operations done by the matrix-product kernels (matmul,
 * linear, conv2d, attention; forward and backward) since the start: the
 * "achieved GFLOP/s" of selfsup bench. Counted on the calling thread. */
void ss_flops_add(double flops);
double ss_flops_get(void);

typedef struct ss_step_bench_result {
    double sec_per_step;   /* median over the measured steps */
    double items_per_step; /* images (or tokens) per step */
    double flops_per_step; /* forward+backward estimate */
    const char *unit;      /* "images" or "tokens" */
} ss_step_bench_result;

/* Run a reference step benchmark ("step-convnet-sup", "step-rotation",
 * "step-simclr", "step-mae", "step-mlm") for `steps` measured steps after 3
 * warm-up steps, on synthetic inputs of the reference shapes. */
ss_status ss_step_bench(const char *name, int steps, ss_step_bench_result *r);

#ifdef __cplusplus
}
#endif
#endif
