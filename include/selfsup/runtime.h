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
