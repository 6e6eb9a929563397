/* The bf16 matrix-product kernel (src/ops/gemm.c) against a scalar
 * reference that rounds the operands with ss_bf16_round and sums in double:
 * every transpose combination; sizes that cut through every block edge
 * (8x48 and 12x32 micro-kernels, transposes of 16, K blocks of 512, M
 * blocks of 192 or more, odd K, leading dimensions larger than the matrix);
 * alpha/beta over several K blocks; beta = 0 over a C full of NaN (never
 * read). The threaded splits (by columns and by rows, 2 and 4 threads, some
 * threads without work) and calls inside a parallel region give the same
 * bits as one thread. ss_gemm follows the precision setting; a whole
 * conv + linear step in bf16 stays close to fp32. Skips (and says so) on a
 * CPU without AVX-512 BF16: only the rounding helper and the fp32 fallback
 * are checked there. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include <cblas.h>

#include "ops/gemm.h"
#include "selfsup/ops.h"
#include "selfsup/rng.h"
#include "selfsup/runtime.h"
#include "testutil.h"

static void fill(float *v, int64_t n, uint64_t seed)
{
    ss_rng r;
    ss_rng_seed(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) v[i] = ss_rng_normal(&r);
}

static void test_round(void)
{
    CHECK(ss_bf16_round(1.0f) == 1.0f);
    CHECK(ss_bf16_round(-2.5f) == -2.5f);
    /* 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1). */
    CHECK(ss_bf16_round(1.0f + 0x1p-8f) == 1.0f);
    CHECK(ss_bf16_round(1.0f + 0x1p-7f + 0x1p-8f) == 1.0f + 0x1p-6f); /* tie, odd below: up */
    CHECK(ss_bf16_round(1.0f + 0x1p-8f + 0x1p-12f) == 1.0f + 0x1p-7f); /* above half: up */
    CHECK(isnan(ss_bf16_round(NAN)));
    CHECK(isinf(ss_bf16_round(INFINITY)));
    float r = ss_bf16_round(3.14159265f);
    CHECK(fabsf(r - 3.14159265f) <= 3.14159265f * 0x1p-9f);
}

/* C = alpha op(A) op(B) + beta C with bf16-rounded operands, in double. */
static void ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc, double *absum)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                double a = ss_bf16_round(ta ? A[(int64_t)k * lda + i] : A[(int64_t)i * lda + k]);
                double b = ss_bf16_round(tb ? B[(int64_t)j * ldb + k] : B[(int64_t)k * ldb + j]);
                s += a * b;
                sa += fabs(a * b);
            }
            double c = alpha * s + (beta != 0.0f ? beta * (double)C[(int64_t)i * ldc + j] : 0.0);
            C[(int64_t)i * ldc + j] = (float)c;
            absum[(int64_t)i * N + j] = fabs(alpha) * sa + fabs(beta) * fabs((double)C[(int64_t)i * ldc + j]) + 1e-30;
        }
}

static void one_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad)
{
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int64_t na = (int64_t)(ta ? K : M) * lda, nb = (int64_t)(tb ? N : K) * ldb, nc = (int64_t)M * ldc;
    float *A = malloc((size_t)na * 4), *B = malloc((size_t)nb * 4), *C = malloc((size_t)nc * 4),
          *R = malloc((size_t)nc * 4), *C1 = malloc((size_t)nc * 4);
    double *abs = malloc((size_t)M * N * sizeof(double));
    fill(A, na, 1000 + M), fill(B, nb, 2000 + N), fill(C, nc, 3000 + K);
    if (beta == 0.0f)
        for (int64_t i = 0; i < nc; i++) C[i] = NAN; /* must never be read */
    memcpy(R, C, (size_t)nc * 4);
    memcpy(C1, C, (size_t)nc * 4);
    ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc, abs);
    float *C4 = malloc((size_t)nc * 4);
    memcpy(C4, C, (size_t)nc * 4);
    omp_set_num_threads(2);
    int ran = ss_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    omp_set_num_threads(4); /* more threads than panels for the narrow cases */
    ss_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C4, ldc);
    omp_set_num_threads(1);
    ss_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    CHECK(ran == 1);
    CHECK_MSG(!memcmp(C4, C1, (size_t)nc * 4), "ta %d tb %d M %d N %d K %d: 4 threads differ from 1", ta, tb, M, N, K);
    free(C4);
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double d = fabs((double)C[(int64_t)i * ldc + j] - R[(int64_t)i * ldc + j]);
            double tol = 1e-6 * (K + 4) * abs[(int64_t)i * N + j];
            if (!(d <= tol)) bad++;
            if (d / abs[(int64_t)i * N + j] > worst) worst = d / abs[(int64_t)i * N + j];
        }
    /* The padding columns of C are left alone. */
    int pad_ok = 1;
    for (int i = 0; i < M && pad; i++)
        for (int j = N; j < ldc; j++)
            if (memcmp(&C[(int64_t)i * ldc + j], &R[(int64_t)i * ldc + j], 4)) pad_ok = 0;
    CHECK_MSG(bad == 0, "ta %d tb %d M %d N %d K %d alpha %g beta %g pad %d: %d elements off (worst rel %.3g)", ta,
              tb, M, N, K, alpha, beta, pad, bad, worst);
    CHECK_MSG(pad_ok, "ta %d tb %d M %d N %d K %d: padding columns changed", ta, tb, M, N, K);
    CHECK_MSG(!memcmp(C, C1, (size_t)nc * 4), "ta %d tb %d M %d N %d K %d: 2 threads differ from 1", ta, tb, M, N, K);
    free(A), free(B), free(C), free(R), free(C1), free(abs);
}

static void test_kernel(void)
{
    const int sizes[][3] = {{1, 1, 1},     {12, 32, 2},   {13, 33, 3},    {11, 31, 7},   {8, 48, 16},   {9, 49, 17},  {7, 47, 31},   {24, 64, 64},
                            {37, 70, 513}, {200, 45, 33}, {5, 200, 1030}, {64, 1024, 288}, {128, 96, 1100}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                one_case(ta, tb, M, N, K, 1.0f, 0.0f, (int)(s % 3));
                if (s % 2) one_case(ta, tb, M, N, K, -0.5f, 1.0f, 1);
            }
    one_case(0, 0, 30, 40, 50, 2.0f, 0.25f, 0);
    one_case(1, 1, 3, 5, 0, 1.0f, 0.5f, 0); /* K = 0: C = beta C */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* alpha and beta over several K blocks (beta only in the first) */
            one_case(ta, tb, 37, 70, 1100, -0.5f, 0.75f, 1);
            /* several M blocks (192 rows per block at K >= 512) */
            one_case(ta, tb, 200, 45, 600, 1.0f, 1.0f, 0);
            /* the 12x32 kernel (N = 64) with K blocks and the row split */
            one_case(ta, tb, 256, 64, 1100, 1.0f, 0.0f, 2);
            /* more threads than column panels: some threads get none */
            one_case(ta, tb, 16, 100, 3000, 1.0f, 0.5f, 0);
        }
}

/* Calls from inside a parallel region (the conv chunks' path: one call per
 * thread, each on its own scratch buffer) give the serial call's bits. */
static void test_in_region(void)
{
    enum { M = 64, N = 200, K = 288, T = 4 };
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *Cs = malloc(sizeof(float) * M * N), *Cp = malloc(sizeof(float) * T * M * N);
    fill(A, M * K, 21), fill(B, K * N, 22);
    omp_set_num_threads(1);
    ss_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, Cs, N);
    int ran = 0;
#pragma omp parallel num_threads(T) reduction(+ : ran)
    ran += ss_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, Cp + (size_t)omp_get_thread_num() * M * N, N);
    int same = 1;
    for (int t = 0; t < ran; t++) same &= !memcmp(Cs, Cp + (size_t)t * M * N, sizeof(float) * M * N);
    CHECK(ran >= 1);
    CHECK_MSG(same, "a call inside a parallel region differs from the serial one");
    free(A), free(B), free(Cs), free(Cp);
}

/* ss_gemm follows the precision setting: fp32 is CBLAS's bits, bf16 the
 * kernel's. */
static void test_dispatch(void)
{
    int M = 20, N = 40, K = 60;
    float A[20 * 60], B[60 * 40], C0[20 * 40], C1[20 * 40], C2[20 * 40];
    fill(A, M * K, 7), fill(B, K * N, 8);
    CHECK(ss_set_precision(SS_PRECISION_FP32) == SS_PRECISION_FP32);
    ss_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C0, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    CHECK(!memcmp(C0, C1, sizeof C0));
    ss_precision p = ss_set_precision(SS_PRECISION_BF16);
    CHECK(p == (ss_cpu_has_bf16() ? SS_PRECISION_BF16 : SS_PRECISION_FP32));
    ss_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    if (ss_cpu_has_bf16()) {
        ss_gemm_bf16(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
        CHECK(!memcmp(C1, C2, sizeof C1));
    } else {
        CHECK(!memcmp(C0, C2, sizeof C0)); /* the fallback */
    }
    ss_set_precision(SS_PRECISION_FP32);
    ss_precision q;
    CHECK(ss_precision_parse("bf16", &q) && q == SS_PRECISION_BF16);
    CHECK(ss_precision_parse("fp32", &q) && q == SS_PRECISION_FP32);
    CHECK(!ss_precision_parse("fp16", &q));
    CHECK(!strcmp(ss_precision_name(SS_PRECISION_BF16), "bf16"));
}

/* A conv -> relu -> linear forward and backward in bf16 stays within bf16's
 * precision of the fp32 one. */
static double conv_step(ss_precision p, float *gw_out, int64_t ngw)
{
    ss_set_precision(p);
    ss_graph *g = ss_graph_new();
    int64_t xs[4] = {8, 3, 12, 12}, ws[4] = {16, 3, 3, 3}, ls[2] = {10, 16 * 12 * 12};
    ss_tensor *x = ss_new(g, 4, xs), *w = ss_new(g, 4, ws), *lw = ss_new(g, 2, ls);
    fill(x->data, x->numel, 11), fill(w->data, w->numel, 12), fill(lw->data, lw->numel, 13);
    for (int64_t i = 0; i < lw->numel; i++) lw->data[i] *= 0.02f;
    w->flags |= SS_T_REQUIRES_GRAD;
    lw->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *h = ss_relu(g, ss_conv2d(g, x, w, NULL, 1, 1));
    int64_t fs[2] = {8, 16 * 12 * 12};
    ss_tensor *y = ss_linear(g, ss_reshape(g, h, 2, fs), lw, NULL);
    ss_tensor *loss = ss_mean_all(g, ss_mul(g, y, y));
    CHECK(loss && ss_backward(g, loss) == SS_OK);
    double l = loss ? loss->data[0] : NAN;
    if (w->grad) memcpy(gw_out, w->grad, (size_t)ngw * sizeof(float));
    ss_graph_free(g);
    ss_set_precision(SS_PRECISION_FP32);
    return l;
}

static void test_conv_step(void)
{
    float g32[16 * 27], g16[16 * 27];
    double l32 = conv_step(SS_PRECISION_FP32, g32, 16 * 27), l16 = conv_step(SS_PRECISION_BF16, g16, 16 * 27);
    CHECK_NEAR(l16, l32, 0.02 * fabs(l32));
    double num = 0, den = 0;
    for (int i = 0; i < 16 * 27; i++) num += (g16[i] - g32[i]) * (double)(g16[i] - g32[i]), den += g32[i] * (double)g32[i];
    /* dW sums 1,152 products of mixed sign per element: bf16's 2^-9
     * relative rounding of each operand shows as a few percent there. */
    CHECK_MSG(sqrt(num / den) < 0.08, "relative gradient difference %.4f", sqrt(num / den));
    if (ss_cpu_has_bf16()) CHECK(memcmp(g32, g16, sizeof g32) != 0); /* bf16 really ran */
}

int main(void)
{
    test_round();
    test_dispatch();
    if (!ss_cpu_has_bf16()) {
        printf("test_gemm_bf16: this CPU has no AVX-512 BF16: the bf16 kernel tests are skipped\n");
    } else {
        test_kernel();
        test_in_region();
    }
    test_conv_step();
    TEST_MAIN_END();
}
