#include <cblas.h>
#include <omp.h>

#include "selfsup/runtime.h"

/* OpenBLAS (OpenMP build) exposes this; declared here to avoid depending on
 * openblas_config.h. */
void openblas_set_num_threads(int num_threads);

static int g_threads = 0;

void ss_set_threads(int n)
{
    if (n < 1) n = 1;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ss_get_threads(void) { return g_threads ? g_threads : omp_get_max_threads(); }

static double g_flops = 0;
void ss_flops_add(double f) { g_flops += f; }
double ss_flops_get(void) { return g_flops; }
