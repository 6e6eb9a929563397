#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void ss_runtime_omp_defaults(char **argv)
{
    if (!argv || !argv[0] || getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY")) return;
    /* Under valgrind /proc/self/exe is the valgrind tool, which refuses to
     * be started directly: keep libgomp's defaults there. */
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with libgomp's defaults (already initialised). */
}
