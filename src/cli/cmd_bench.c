/* selfsup bench [NAME...]: the step benchmarks of REFERENCE_MODELS.md. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "ops/gemm.h"

double ss_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak throughput of one instruction: per thread, 12 independent vector
 * accumulator chains (so they stay in registers and hide the latency),
 * n rounds; the best of three timed runs over `threads` threads. */
typedef float (*peak_loop)(long n);

static double peak_gflops(int threads, peak_loop loop, double flops_per_round)
{
    const long rounds = 20000000; /* about 40 ms per run: 2 M rounds (4 ms) read 150-275 GFLOP/s from run to run on a Zen 3 */
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = ss_now();
        float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += loop(rounds);
        double gf = flops_per_round * (double)rounds * threads / (ss_now() - t0) / 1e9;
        if (gf > best) best = gf;
        if (sink == 12345.0f) printf(" "); /* keeps the loops alive */
    }
    return best;
}

/* Twelve independent accumulator chains c = OP(c, a, b) of vector type T
 * (a, b of type AT), summed and reduced to one float at the end: the body
 * of every peak loop below. */
#define SS_PEAK_CHAINS(T, AT, C0, A0, B0, OP, ADD, RED)                                                            \
    AT a = A0, b = B0;                                                                                             \
    T c0 = C0, c1 = C0, c2 = C0, c3 = C0, c4 = C0, c5 = C0, c6 = C0, c7 = C0, c8 = C0, c9 = C0, c10 = C0, c11 = C0; \
    for (long it = 0; it < n; it++) {                                                                              \
        c0 = OP(c0, a, b); c1 = OP(c1, a, b); c2 = OP(c2, a, b); c3 = OP(c3, a, b);                                \
        c4 = OP(c4, a, b); c5 = OP(c5, a, b); c6 = OP(c6, a, b); c7 = OP(c7, a, b);                                \
        c8 = OP(c8, a, b); c9 = OP(c9, a, b); c10 = OP(c10, a, b); c11 = OP(c11, a, b);                            \
    }                                                                                                              \
    T s = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7)));                                       \
    s = ADD(s, ADD(ADD(c8, c9), ADD(c10, c11)));                                                                   \
    return RED(s);

/* FMA: 2 flops per lane, with the widest FMA the CPU has, chosen at run
 * time: a generic 64-byte vector type built without AVX-512 measured a
 * fifth of the peak on a Zen 3. */
typedef float v16 __attribute__((vector_size(64)));
#define V16_SET1(x) ((v16){0} + (x))
#define V16_MULADD(c, a, b) ((c) * (a) + (b))
#define V16_ADD(x, y) ((x) + (y))
#define V16_FIRST(v) ((v)[0])
/* Elsewhere (no AVX2/AVX-512 FMA, other architectures): a generic 16-wide
 * multiply-add, which the compiler may or may not fuse; a lower bound. */
static float generic_loop(long n) { SS_PEAK_CHAINS(v16, v16, V16_SET1(1e-7f), V16_SET1(0.999999f), V16_SET1(1e-7f), V16_MULADD, V16_ADD, V16_FIRST) }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx512f"))) static float fma512_loop(long n)
{
    SS_PEAK_CHAINS(__m512, __m512, _mm512_set1_ps(1e-7f), _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f), _mm512_fmadd_ps,
                   _mm512_add_ps, _mm512_reduce_add_ps)
}
__attribute__((target("avx2,fma"))) static float red256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    return _mm_cvtss_f32(x) + _mm_cvtss_f32(_mm_movehdup_ps(x));
}
__attribute__((target("avx2,fma"))) static float fma256_loop(long n)
{
    SS_PEAK_CHAINS(__m256, __m256, _mm256_set1_ps(1e-7f), _mm256_set1_ps(0.999999f), _mm256_set1_ps(1e-7f), _mm256_fmadd_ps,
                   _mm256_add_ps, red256)
}
/* vdpbf16ps: 2 bf16 products + 2 adds per fp32 lane. */
__attribute__((target("avx512f,avx512bf16"))) static float bf16_loop(long n)
{
    SS_PEAK_CHAINS(__m512, __m512bh, _mm512_set1_ps(1e-7f), (__m512bh)_mm512_set1_epi32(0x3f803f80),
                   (__m512bh)_mm512_set1_epi32(0x33003300), _mm512_dpbf16_ps, _mm512_add_ps, _mm512_reduce_add_ps)
}
static double bf16_peak_gflops(int threads)
{
    return ss_cpu_has_bf16() ? peak_gflops(threads, bf16_loop, 4.0 * 16 * 12) : 0.0;
}
#else
static double bf16_peak_gflops(int threads) { (void)threads; return 0; }
#endif

static double fma_peak_gflops(int threads)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return peak_gflops(threads, fma512_loop, 2.0 * 16 * 12);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return peak_gflops(threads, fma256_loop, 2.0 * 8 * 12);
#endif
    return peak_gflops(threads, generic_loop, 2.0 * 16 * 12);
}

/* Share of the measured peak, 0 where there was none to measure. */
static double share_of(double gf, double peak) { return peak > 0 ? gf / peak : 0.0; }

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static int bench_gemm(int threads, double peak, int json)
{
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 1;
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    double times[15];
    int reps = 15;
    for (int r = 0; r < reps + 3; r++) {
        double t0 = ss_now();
        ss_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        if (r >= 3) times[r - 3] = ss_now() - t0;
    }
    double med = ss_median(times, reps);
    double gf = 2.0 * n * n * (double)n / med / 1e9;
    if (json)
        printf("{\"bench\":\"gemm\",\"precision\":\"%s\",\"threads\":%d,\"ms\":%.3f,\"gflops\":%.1f,\"peak_gflops\":%.1f,\"share\":%.3f,"
               "\"peak_mib\":%ld}\n",
               ss_precision_name(ss_get_precision()), threads, med * 1e3, gf, peak, share_of(gf, peak), peak_rss_kb() / 1024);
    else
        printf("%-18s %9s %10.2f %9.1f %8.1f%% %10ld\n", "gemm", "-", med * 1e3, gf, 100 * share_of(gf, peak),
               peak_rss_kb() / 1024);
    free(a);
    free(b);
    free(c);
    return 0;
}

double ss_median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cmd_bench(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "bench", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup bench [NAME...] [--threads 2] [--steps 10] [--precision fp32|bf16] [--json]\n"
               "NAME: gemm, step-convnet-sup, step-rotation, step-simclr, step-mae, step-mlm (default: all).\n"
               "Each step benchmark times one forward + backward + AdamW update on synthetic inputs of the\n"
               "reference shapes (--steps timed steps after a warm-up) and prints images/s (tokens/s for\n"
               "step-mlm), ms per step, peak memory, GFLOP/s and its share of this machine's peak, measured\n"
               "first by a short FMA (or bf16 dot-product) loop. bench/compare_torch.py runs the same\n"
               "configurations in PyTorch beside it.\n");
        return 0;
    }
    int ok = 1;
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    int json = args_flag(&a, "json");
    args_positional(&a);
    int steps = (int)args_int(&a, "steps", 10, 1, 100000, &ok);
    ss_precision prec = SS_PRECISION_FP32;
    if (!cli_read_precision(&a, "fp32", &prec)) ok = 0;
    if (!ok || ss_args_finish(&a)) return cli_fail();
    ss_set_threads(threads);
    const char *all[] = {"gemm", "step-convnet-sup", "step-rotation", "step-simclr", "step-mae", "step-mlm"};
    int nall = (int)(sizeof all / sizeof all[0]);
    int npos = a.npos;
    const char **names = npos ? a.pos : all;
    int n = npos ? npos : nall;
    for (int i = 0; i < n; i++) { /* every name checked before the peak is measured */
        int found = 0;
        for (int k = 0; k < nall; k++)
            if (!strcmp(names[i], all[k])) found = 1;
        if (!found) {
            fprintf(stderr, "selfsup bench: unknown benchmark '%s' (expected gemm, step-convnet-sup, step-rotation, "
                            "step-simclr, step-mae, step-mlm)\n", names[i]);
            return 2;
        }
    }
    /* Share of peak is against the peak of the precision in use: FMA for
     * fp32, vdpbf16ps for bf16. */
    double peak = prec == SS_PRECISION_BF16 ? bf16_peak_gflops(threads) : fma_peak_gflops(threads);
    if (!json) {
        printf("selfsup bench: %d thread(s), %s, measured %s peak %.0f GFLOP/s\n", threads, ss_precision_name(prec),
               prec == SS_PRECISION_BF16 ? "bf16 dot-product" : "FMA", peak);
        printf("%-18s %9s %10s %9s %9s %10s\n", "benchmark", "items/s", "ms/step", "GFLOP/s", "of peak", "peak MiB");
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        reset_peak_rss();
        if (!strcmp(names[i], "gemm")) {
            rc |= bench_gemm(threads, peak, json);
            continue;
        }
        ss_step_bench_result r;
        if (ss_step_bench(names[i], steps, &r) != SS_OK) {
            fprintf(stderr, "selfsup bench: %s: %s\n", names[i], ss_errmsg());
            rc = 1;
            continue;
        }
        double gf = r.flops_per_step / r.sec_per_step / 1e9;
        if (json)
            printf("{\"bench\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"items_per_s\":%.1f,\"unit\":\"%s\",\"ms\":%.3f,\"gflops\":%.1f,"
                   "\"share\":%.3f,\"peak_mib\":%ld}\n",
                   names[i], ss_precision_name(prec), threads, r.items_per_step / r.sec_per_step, r.unit, r.sec_per_step * 1e3, gf, share_of(gf, peak),
                   peak_rss_kb() / 1024);
        else
            printf("%-18s %9.0f %10.2f %9.1f %8.1f%% %10ld  (%s/s)\n", names[i], r.items_per_step / r.sec_per_step,
                   r.sec_per_step * 1e3, gf, 100 * share_of(gf, peak), peak_rss_kb() / 1024, r.unit);
    }
    return rc;
}
