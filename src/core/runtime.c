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

static ss_precision g_precision = SS_PRECISION_FP32;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
static int detect_bf16(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0xE6u) != 0xE6u) return 0; /* OS saves SSE, AVX and the AVX-512 state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 16)) || !(b & (1u << 30)) || !(b & (1u << 31))) return 0; /* AVX512F, BW, VL */
    if (a < 1) return 0; /* no leaf 7 subleaf 1 */
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1u; /* AVX512_BF16 */
}
#else
static int detect_bf16(void) { return 0; }
#endif

static int g_bf16 = -1;

int ss_cpu_has_bf16(void)
{
    int v = __atomic_load_n(&g_bf16, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_bf16();
        __atomic_store_n(&g_bf16, v, __ATOMIC_RELAXED);
    }
    return v;
}

ss_precision ss_set_precision(ss_precision p)
{
    g_precision = (p == SS_PRECISION_BF16 && ss_cpu_has_bf16()) ? SS_PRECISION_BF16 : SS_PRECISION_FP32;
    return g_precision;
}

ss_precision ss_get_precision(void) { return g_precision; }

const char *ss_precision_name(ss_precision p)
{
    return p == SS_PRECISION_FP32 ? "fp32" : p == SS_PRECISION_BF16 ? "bf16" : NULL;
}

int ss_precision_parse(const char *name, ss_precision *out)
{
    if (!name) return 0;
    if (!strcmp(name, "fp32")) *out = SS_PRECISION_FP32;
    else if (!strcmp(name, "bf16")) *out = SS_PRECISION_BF16;
    else return 0;
    return 1;
}

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
