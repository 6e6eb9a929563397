/* Optimised kernels against their simple reference versions:
 *  - ss_batch_norm_relu (fused) vs ss_relu(ss_batch_norm(...)): the same bits
 *    forward and for the gradients of x, gamma and beta ([N,C,H,W] and [N,C],
 *    training and eval);
 *  - first-writer gradients (ss_grad_fresh: store instead of zero-fill +
 *    accumulate) vs a run where the gradient buffer already exists (so the
 *    accumulating path runs): the same bits for linear, matmul, relu, scale,
 *    add_scalar and batch norm inputs;
 *  - ss_erf_fast (GELU) vs libm's erff;
 *  - the linear layer's bias gradient, split over columns on the threads:
 *    against a double-precision sum and the same bits with 1 and 2 threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph_internal.h"
#include "ops/fastmath.h"
#include "selfsup/ops.h"
#include "selfsup/rng.h"
#include "testutil.h"

static void fill(float *v, int64_t n, uint64_t seed)
{
    ss_rng r;
    ss_rng_seed(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) v[i] = ss_rng_normal(&r);
}

static ss_tensor *leaf(ss_graph *g, const float *v, int nd, const int64_t *sh)
{
    ss_tensor *t = ss_new(g, nd, sh);
    memcpy(t->data, v, (size_t)t->numel * sizeof(float));
    t->flags |= SS_T_REQUIRES_GRAD;
    return t;
}

static int same_bits(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

/* fused = 1: ss_batch_norm_relu; 0: ss_relu(ss_batch_norm). Writes y, gx, gg, gb. */
static void bn_run(int fused, int training, int nd, const int64_t *sh, const float *x, const float *gam,
                   const float *bet, const float *seed, float *y, float *gx, float *gg, float *gb)
{
    ss_graph *g = ss_graph_new();
    ss_graph_set_training(g, training);
    int64_t C = sh[1], cs[1] = {C};
    float rm[256], rv[256];
    for (int64_t c = 0; c < C; c++) rm[c] = 0.1f * (float)c, rv[c] = 1.0f + 0.05f * (float)c;
    ss_tensor *tx = leaf(g, x, nd, sh), *tg = leaf(g, gam, 1, cs), *tb = leaf(g, bet, 1, cs);
    ss_tensor *trm = ss_wrap(g, rm, 1, cs), *trv = ss_wrap(g, rv, 1, cs);
    ss_tensor *out = fused ? ss_batch_norm_relu(g, tx, tg, tb, trm, trv, 0.1f, 1e-5f)
                           : ss_relu(g, ss_batch_norm(g, tx, tg, tb, trm, trv, 0.1f, 1e-5f));
    CHECK(out != NULL);
    if (out) {
        memcpy(y, out->data, (size_t)out->numel * sizeof(float));
        CHECK_OK(ss_backward_seed(g, out, seed));
        memcpy(gx, tx->grad, (size_t)tx->numel * sizeof(float));
        memcpy(gg, tg->grad, (size_t)C * sizeof(float));
        memcpy(gb, tb->grad, (size_t)C * sizeof(float));
    }
    ss_graph_free(g);
}

static void test_bn_relu(int nd, const int64_t *sh, int training)
{
    int64_t n = 1, C = sh[1];
    for (int i = 0; i < nd; i++) n *= sh[i];
    float *x = malloc(sizeof(float) * (size_t)n), *seed = malloc(sizeof(float) * (size_t)n);
    float *y[2], *gx[2], gg[2][256], gb[2][256], gam[256], bet[256];
    fill(x, n, 1);
    fill(seed, n, 2);
    fill(gam, C, 3);
    fill(bet, C, 4);
    for (int k = 0; k < 2; k++) {
        y[k] = malloc(sizeof(float) * (size_t)n);
        gx[k] = malloc(sizeof(float) * (size_t)n);
        bn_run(k, training, nd, sh, x, gam, bet, seed, y[k], gx[k], gg[k], gb[k]);
    }
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) pos += y[0][i] > 0.0f;
    CHECK_MSG(pos > n / 5 && pos < n - n / 5, "relu active on %lld of %lld", (long long)pos, (long long)n);
    CHECK_MSG(same_bits(y[0], y[1], n), "bn_relu forward differs (nd %d training %d)", nd, training);
    CHECK_MSG(same_bits(gx[0], gx[1], n), "bn_relu dx differs (nd %d training %d)", nd, training);
    CHECK_MSG(same_bits(gg[0], gg[1], C), "bn_relu dgamma differs (nd %d training %d)", nd, training);
    CHECK_MSG(same_bits(gb[0], gb[1], C), "bn_relu dbeta differs (nd %d training %d)", nd, training);
    for (int k = 0; k < 2; k++) free(y[k]), free(gx[k]);
    free(x);
    free(seed);
}

/* One op whose input gradient is written by the op alone. pre = 1: the
 * input's gradient buffer is created (zeroed) before the backward, so the
 * accumulating path runs instead of the first-writer path. */
typedef ss_tensor *(*op_fn)(ss_graph *g, ss_tensor *a, ss_tensor *b);
static ss_tensor *op_linear(ss_graph *g, ss_tensor *a, ss_tensor *b) { return ss_linear(g, a, b, NULL); }
static ss_tensor *op_matmul(ss_graph *g, ss_tensor *a, ss_tensor *b) { return ss_matmul(g, a, b, 0, 1); }
static ss_tensor *op_matmul_t(ss_graph *g, ss_tensor *a, ss_tensor *b) { return ss_matmul(g, a, b, 1, 0); }
static ss_tensor *op_relu(ss_graph *g, ss_tensor *a, ss_tensor *b) { (void)b; return ss_relu(g, a); }
static ss_tensor *op_scale(ss_graph *g, ss_tensor *a, ss_tensor *b) { (void)b; return ss_scale(g, a, 0.3f); }
static ss_tensor *op_adds(ss_graph *g, ss_tensor *a, ss_tensor *b) { (void)b; return ss_add_scalar(g, a, 2.f); }
static ss_tensor *op_gelu(ss_graph *g, ss_tensor *a, ss_tensor *b) { (void)b; return ss_gelu(g, a); }
static ss_tensor *op_bn(ss_graph *g, ss_tensor *a, ss_tensor *b)
{
    (void)b;
    return ss_batch_norm_relu(g, a, NULL, NULL, NULL, NULL, 0.1f, 1e-5f);
}

static void fresh_run(op_fn f, int pre, const int64_t *sa, const int64_t *sb, float *ga, float *gb)
{
    ss_graph *g = ss_graph_new();
    ss_graph_set_training(g, 1);
    int64_t na = sa[0] * sa[1] * sa[2], nb = sb[0] * sb[1];
    float *va = malloc(sizeof(float) * (size_t)na), *vb = malloc(sizeof(float) * (size_t)nb);
    fill(va, na, 5);
    fill(vb, nb, 6);
    ss_tensor *a = leaf(g, va, 3, sa), *b = leaf(g, vb, 2, sb);
    ss_tensor *out = f(g, a, b);
    CHECK(out != NULL);
    if (out) {
        if (pre) {
            CHECK(ss_grad(g, a) != NULL);
            CHECK(ss_grad(g, b) != NULL);
        }
        float *seed = malloc(sizeof(float) * (size_t)out->numel);
        fill(seed, out->numel, 7);
        CHECK_OK(ss_backward_seed(g, out, seed));
        free(seed);
        memcpy(ga, a->grad ? a->grad : va, (size_t)na * sizeof(float));
        if (b->grad) memcpy(gb, b->grad, (size_t)nb * sizeof(float));
        else memset(gb, 0, (size_t)nb * sizeof(float));
    }
    free(va);
    free(vb);
    ss_graph_free(g);
}

static void test_fresh(const char *name, op_fn f, const int64_t *sa, const int64_t *sb)
{
    int64_t na = sa[0] * sa[1] * sa[2], nb = sb[0] * sb[1];
    float *ga[2], *gb[2];
    for (int k = 0; k < 2; k++) {
        ga[k] = malloc(sizeof(float) * (size_t)na);
        gb[k] = malloc(sizeof(float) * (size_t)nb);
        fresh_run(f, k, sa, sb, ga[k], gb[k]);
    }
    CHECK_MSG(same_bits(ga[0], ga[1], na), "%s: first-writer dA differs from accumulated", name);
    CHECK_MSG(same_bits(gb[0], gb[1], nb), "%s: first-writer dB differs from accumulated", name);
    for (int k = 0; k < 2; k++) free(ga[k]), free(gb[k]);
}

static void test_erf(void)
{
    double worst = 0.0;
    for (int i = -800000; i <= 800000; i++) {
        float x = (float)i * 1e-5f; /* [-8, 8] */
        double d = fabs((double)ss_erf_fast(x) - (double)erff(x));
        if (d > worst) worst = d;
    }
    CHECK_MSG(worst < 2.5e-7, "ss_erf_fast vs erff: max abs error %g", worst);
    CHECK(ss_erf_fast(INFINITY) == 1.0f && ss_erf_fast(-INFINITY) == -1.0f);
    CHECK(isnan(ss_erf_fast(NAN)));
    CHECK(ss_erf_fast(0.0f) == 0.0f);
}

/* y = x W^T + b with R*OUT above the threading threshold (OUT = 300: column
 * ranges that are not multiples of the 8-wide blocks at the end). */
static void linear_bias_grad(int threads, float *gb_out)
{
    omp_set_num_threads(threads);
    const int64_t R = 257, IN = 5, OUT = 300;
    ss_graph *g = ss_graph_new();
    int64_t sx[2] = {R, IN}, sw[2] = {OUT, IN}, sb[1] = {OUT};
    ss_tensor *x = ss_new(g, 2, sx), *w = ss_new(g, 2, sw), *b = ss_new(g, 1, sb);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int64_t i = 0; i < w->numel; i++) w->data[i] = (float)((i * 13) % 7) / 7.0f - 0.5f;
    for (int64_t i = 0; i < OUT; i++) b->data[i] = 0.01f * (float)i;
    b->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *y = ss_linear(g, x, w, b);
    float *seed = malloc((size_t)(R * OUT) * sizeof(float));
    for (int64_t i = 0; i < R * OUT; i++) seed[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    CHECK_OK(ss_backward_seed(g, y, seed));
    memcpy(gb_out, b->grad, (size_t)OUT * sizeof(float));
    double worst = 0;
    for (int64_t o = 0; o < OUT; o++) {
        double ref = 0;
        for (int64_t r = 0; r < R; r++) ref += seed[r * OUT + o];
        double d = fabs(ref - gb_out[o]);
        if (d > worst) worst = d;
    }
    CHECK_MSG(worst < 1e-3, "linear bias grad (%d threads) differs from the double sum by %g", threads, worst);
    free(seed);
    ss_graph_free(g);
}

static void test_linear_bias_grad(void)
{
    static float g1[300], g2[300];
    int maxt = omp_get_max_threads();
    linear_bias_grad(1, g1);
    linear_bias_grad(2, g2);
    omp_set_num_threads(maxt);
    CHECK(memcmp(g1, g2, sizeof g1) == 0);
}

int main(void)
{
    test_erf();
    test_linear_bias_grad();
    int64_t s4[4] = {6, 5, 7, 9}, s2[2] = {40, 24};
    for (int tr = 0; tr < 2; tr++) {
        test_bn_relu(4, s4, tr);
        test_bn_relu(2, s2, tr);
    }
    int64_t big[4] = {64, 32, 14, 14}; /* the threaded path */
    test_bn_relu(4, big, 1);

    int64_t sa[3] = {3, 17, 12}, sw[2] = {9, 12}, sm[2] = {17, 12};
    test_fresh("linear", op_linear, sa, sw);
    test_fresh("matmul shared-b tb", op_matmul, sa, sw);
    test_fresh("matmul shared-b ta", op_matmul_t, sa, sm);
    test_fresh("relu", op_relu, sa, sw);
    test_fresh("scale", op_scale, sa, sw);
    test_fresh("add_scalar", op_adds, sa, sw);
    test_fresh("gelu", op_gelu, sa, sw);
    test_fresh("batch_norm_relu", op_bn, sa, sw);
    TEST_MAIN_END();
}
