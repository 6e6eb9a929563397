/* Convolution, pooling and batch norm: exact values on hand-computed cases,
 * the fast conv path against the naive reference (forward and backward,
 * with and without chunking), finite-difference gradient checks for every op
 * and mode, and run-to-run / thread-count determinism. */
#include <omp.h>

#include "gradcheck.h"
#include "ops/conv_ref.h"

/* ---- helpers ----------------------------------------------------------------- */
static ss_tensor *leaf(ss_graph *g, int ndim, const int64_t *shape, const float *v, int rg)
{
    ss_tensor *t = ss_new(g, ndim, shape);
    if (!t) return NULL;
    memcpy(t->data, v, (size_t)t->numel * sizeof(float));
    if (rg) t->flags |= SS_T_REQUIRES_GRAD;
    return t;
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* Distinct values: a random permutation of lo + gap*i (for max-pool checks). */
static void fill_distinct(float *x, int64_t n, float lo, float gap, uint64_t seed)
{
    int32_t *perm = malloc((size_t)n * sizeof *perm);
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    ss_rng r;
    ss_rng_seed(&r, seed, 0);
    ss_rng_shuffle_i32(&r, perm, n);
    for (int64_t i = 0; i < n; i++) x[i] = lo + gap * (float)perm[i];
    free(perm);
}

/* ---- conv: exact values ------------------------------------------------------ */
static void test_conv_exact(void)
{
    ss_graph *g = ss_graph_new();
    float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t sx[4] = {1, 1, 3, 3};
    /* 3x3 all-ones kernel, pad 1: neighbourhood sums, plus bias 0.5. */
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, bias = 0.5f;
    int64_t sw[4] = {1, 1, 3, 3}, sb[1] = {1};
    ss_tensor *x = leaf(g, 4, sx, xv, 1), *w = leaf(g, 4, sw, ones, 1), *b = leaf(g, 1, sb, &bias, 1);
    ss_tensor *y = ss_conv2d(g, x, w, b, 1, 1);
    float want[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
    CHECK(y && y->shape[0] == 1 && y->shape[1] == 1 && y->shape[2] == 3 && y->shape[3] == 3);
    for (int i = 0; i < 9 && y; i++) CHECK_NEAR(y->data[i], want[i] + 0.5, 1e-5);
    /* d(sum y)/dx = number of windows covering each pixel; dw = sum of the
     * inputs each weight touches; db = 9. */
    CHECK_OK(ss_backward(g, ss_sum_all(g, y)));
    float gxw[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    float gww[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28}; /* dw[ky,kx] = sum of the shifted input */
    for (int i = 0; i < 9; i++) CHECK_NEAR(x->grad[i], gxw[i], 1e-5);
    for (int i = 0; i < 9; i++) CHECK_NEAR(w->grad[i], gww[i], 1e-5);
    CHECK_NEAR(b->grad[0], 9, 1e-5);
    /* 2x2 kernel [[1,2],[3,4]], no padding. */
    ss_graph_reset(g);
    float k2[4] = {1, 2, 3, 4};
    int64_t sw2[4] = {1, 1, 2, 2};
    x = leaf(g, 4, sx, xv, 0);
    y = ss_conv2d(g, x, leaf(g, 4, sw2, k2, 0), NULL, 1, 0);
    float want2[4] = {37, 47, 67, 77};
    CHECK(y && y->shape[2] == 2 && y->shape[3] == 2);
    for (int i = 0; i < 4 && y; i++) CHECK_NEAR(y->data[i], want2[i], 1e-5);
    /* Same kernel, stride 2, pad 1: windows at (-1,-1), (-1,1), (1,-1), (1,1). */
    y = ss_conv2d(g, x, leaf(g, 4, sw2, k2, 0), NULL, 2, 1);
    float want3[4] = {4 * 1, 3 * 2 + 4 * 3, 2 * 4 + 4 * 7, 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9};
    CHECK(y && y->shape[2] == 2 && y->shape[3] == 2);
    for (int i = 0; i < 4 && y; i++) CHECK_NEAR(y->data[i], want3[i], 1e-5);
    /* Errors: channel mismatch, bias size, kernel too large. */
    int64_t swbad[4] = {2, 2, 3, 3};
    float z[36] = {0};
    CHECK(ss_conv2d(g, x, leaf(g, 4, swbad, z, 0), NULL, 1, 0) == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_SHAPE && strstr(ss_graph_errmsg(g), "conv2d: input [1,1,3,3]"));
    ss_graph_reset(g);
    int64_t sb2[1] = {2};
    x = leaf(g, 4, sx, xv, 0);
    CHECK(ss_conv2d(g, x, leaf(g, 4, sw, ones, 0), leaf(g, 1, sb2, z, 0), 1, 0) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "bias has 2 elements, expected 1") != NULL);
    ss_graph_reset(g);
    int64_t swbig[4] = {1, 1, 5, 5};
    x = leaf(g, 4, sx, xv, 0);
    CHECK(ss_conv2d(g, x, leaf(g, 4, swbig, z, 0), NULL, 1, 0) == NULL);
    ss_graph_reset(g);
    x = leaf(g, 4, sx, xv, 0);
    CHECK(ss_conv2d(g, x, leaf(g, 4, sw, ones, 0), NULL, 0, 0) == NULL);
    ss_graph_free(g);
}

/* ---- conv: fast path vs reference -------------------------------------------- */
typedef struct conv_case {
    int64_t N, C, H, W, O, kh, kw;
    int s, p, bias;
} conv_case;

static void conv_vs_ref(const conv_case *cc, int64_t chunk)
{
    ss_conv2d_set_chunk_floats(chunk);
    int64_t sx[4] = {cc->N, cc->C, cc->H, cc->W}, sw[4] = {cc->O, cc->C, cc->kh, cc->kw}, sb[1] = {cc->O};
    int64_t nx = cc->N * cc->C * cc->H * cc->W, nw = cc->O * cc->C * cc->kh * cc->kw;
    int64_t Ho = (cc->H + 2 * cc->p - cc->kh) / cc->s + 1, Wo = (cc->W + 2 * cc->p - cc->kw) / cc->s + 1;
    int64_t ny = cc->N * cc->O * Ho * Wo;
    float *xv = malloc((size_t)nx * 4), *wv = malloc((size_t)nw * 4), *bv = malloc((size_t)cc->O * 4);
    float *dy = malloc((size_t)ny * 4), *ry = malloc((size_t)ny * 4);
    float *rgx = calloc((size_t)nx, 4), *rgw = calloc((size_t)nw, 4), *rgb = calloc((size_t)cc->O, 4);
    gc_fill(xv, nx, -1, 1, 1);
    gc_fill(wv, nw, -0.5f, 0.5f, 2);
    gc_fill(bv, cc->O, -1, 1, 3);
    gc_fill(dy, ny, -1, 1, 4);
    ss_conv2d_reference_forward(xv, wv, cc->bias ? bv : NULL, cc->N, cc->C, cc->H, cc->W, cc->O, cc->kh, cc->kw,
                                cc->s, cc->p, ry);
    ss_conv2d_reference_backward(xv, wv, dy, cc->N, cc->C, cc->H, cc->W, cc->O, cc->kh, cc->kw, cc->s, cc->p, rgx,
                                 rgw, cc->bias ? rgb : NULL);
    ss_graph *g = ss_graph_new();
    ss_tensor *x = leaf(g, 4, sx, xv, 1), *w = leaf(g, 4, sw, wv, 1), *b = cc->bias ? leaf(g, 1, sb, bv, 1) : NULL;
    ss_tensor *y = ss_conv2d(g, x, w, b, cc->s, cc->p);
    char name[160];
    snprintf(name, sizeof name, "conv N%lld C%lld %lldx%lld O%lld k%lldx%lld s%d p%d bias%d chunk%lld",
             (long long)cc->N, (long long)cc->C, (long long)cc->H, (long long)cc->W, (long long)cc->O,
             (long long)cc->kh, (long long)cc->kw, cc->s, cc->p, cc->bias, (long long)chunk);
    CHECK_MSG(y && y->numel == ny && y->shape[2] == Ho && y->shape[3] == Wo, "%s: shape", name);
    if (y && y->numel == ny) {
        double e = max_abs_diff(y->data, ry, ny);
        CHECK_MSG(e < 1e-4, "%s: forward differs from reference by %g", name, e);
        CHECK_OK(ss_backward_seed(g, y, dy));
        double ex = max_abs_diff(x->grad, rgx, nx), ew = max_abs_diff(w->grad, rgw, nw);
        double eb = cc->bias ? max_abs_diff(b->grad, rgb, cc->O) : 0;
        /* dW sums N*Ho*Wo products: scale the tolerance. */
        double tw = 1e-4 * (1.0 + sqrt((double)(cc->N * Ho * Wo)));
        CHECK_MSG(ex < 1e-4, "%s: dx differs by %g", name, ex);
        CHECK_MSG(ew < tw, "%s: dw differs by %g", name, ew);
        CHECK_MSG(eb < tw, "%s: db differs by %g", name, eb);
    }
    ss_graph_free(g);
    free(xv), free(wv), free(bv), free(dy), free(ry), free(rgx), free(rgw), free(rgb);
    ss_conv2d_set_chunk_floats(0);
}

static void test_conv_vs_ref(void)
{
    static const conv_case cases[] = {
        {2, 3, 7, 7, 4, 3, 3, 1, 1, 1},   /* 3x3 pad 1, C=3 */
        {2, 1, 8, 8, 5, 3, 3, 1, 1, 0},   /* C=1 stem, no bias */
        {3, 4, 9, 9, 6, 3, 3, 2, 1, 1},   /* stride 2 pad 1 */
        {2, 4, 8, 7, 3, 3, 3, 2, 0, 1},   /* stride 2 pad 0, non-square */
        {2, 3, 8, 8, 6, 4, 4, 4, 0, 1},   /* ViT patch embed: k4 s4 */
        {2, 5, 6, 6, 7, 1, 1, 1, 0, 1},   /* 1x1 */
        {1, 3, 5, 6, 2, 2, 3, 1, 1, 1},   /* rectangular kernel */
        {2, 1, 28, 28, 4, 3, 3, 1, 1, 1}, /* 28x28 */
        {4, 16, 7, 7, 8, 3, 3, 1, 1, 1},  /* deeper, 7x7 */
        {2, 2, 5, 5, 3, 4, 4, 2, 2, 1},   /* kernel 4 stride 2 pad 2 */
        {2, 2, 7, 6, 3, 5, 5, 1, 2, 1},   /* kernel 5 pad 2 (same size) */
        {2, 2, 1, 5, 3, 3, 3, 1, 1, 1},   /* H = 1 */
        {2, 2, 5, 1, 3, 3, 3, 1, 1, 1},   /* W = 1 */
        {2, 2, 4, 4, 3, 3, 3, 1, 2, 1},   /* pad larger than needed */
        /* O <= C, stride 1: dx by the transposed convolution */
        {2, 4, 7, 7, 4, 3, 3, 1, 1, 1},   /* 3x3 pad 1, O = C */
        {2, 6, 6, 5, 3, 3, 3, 1, 1, 0},   /* O < C, no bias */
        {2, 4, 7, 6, 2, 5, 5, 1, 2, 1},   /* kernel 5 pad 2 */
        {2, 3, 4, 4, 3, 3, 3, 1, 2, 1},   /* pad 2: output larger than input */
        {2, 3, 5, 5, 2, 3, 3, 1, 0, 1},   /* pad 0: output smaller */
        {2, 6, 6, 6, 5, 1, 1, 1, 0, 1},   /* 1x1 */
        {2, 4, 5, 6, 3, 2, 3, 1, 1, 1},   /* rectangular kernel, pad 1 */
    };
    for (int tr = 1; tr >= 0; tr--) { /* dx by the transposed convolution where it applies, then never */
        ss_conv2d_set_dx_transposed(tr);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            conv_vs_ref(&cases[i], 0);
            conv_vs_ref(&cases[i], 1); /* one image per chunk */
        }
    }
    ss_conv2d_set_dx_transposed(1);
    conv_case odd = {5, 3, 6, 6, 4, 3, 3, 1, 1, 1};
    conv_vs_ref(&odd, 3 * 9 * 36 * 2); /* chunks of 2 images, last chunk of 1 */
    /* Enough chunks that each of 2 threads takes a range of images (per-thread
     * dW/db partials); 9 images so the ranges are uneven. */
    conv_case many = {9, 3, 10, 10, 5, 3, 3, 1, 1, 1};
    conv_vs_ref(&many, 3 * 9 * 100 * 2);
    conv_vs_ref(&many, 1);
    conv_case manyt = {9, 5, 8, 8, 5, 3, 3, 1, 1, 1}; /* the same with the transposed dx */
    conv_vs_ref(&manyt, 5 * 9 * 64 * 2);
    conv_vs_ref(&manyt, 1);
    conv_case many7 = {9, 8, 7, 7, 6, 3, 3, 2, 1, 1};
    conv_vs_ref(&many7, 8 * 9 * 16 * 2);
}

/* Winograd F(2x2, 3x3) (3x3, stride 1, pad 1, >= 8 channels each way; the
 * forward pass, dx, and dW with db) against the reference, the same cases
 * with dW by im2col, and with Winograd switched off (im2col). The shapes cover odd planes (a last tile with one
 * output row or column), planes wider than 16 (two 8-tile vectors per tile
 * row), output channels that fill the product kernel's 6-row, 4-row and
 * single-row blocks, several chunks of tile rows per image with a shorter
 * last one (64 + 64 channels: 4 of 7 tile rows per chunk), chunks of
 * several whole images (small planes), and batches split unevenly over
 * threads. */
static void test_conv_winograd(void)
{
    static const conv_case cases[] = {
        {3, 8, 13, 12, 8, 3, 3, 1, 1, 1},   /* odd H; O = 8: two 4-row blocks */
        {2, 12, 10, 10, 10, 3, 3, 1, 1, 0}, /* O = 10: a 6-row and a 4-row block; no bias */
        {2, 9, 15, 14, 13, 3, 3, 1, 1, 1},  /* odd C; O = 13: 4-row blocks and a single row */
        {2, 8, 17, 30, 8, 3, 3, 1, 1, 1},   /* 15 tiles per row */
        {2, 64, 14, 14, 64, 3, 3, 1, 1, 1}, /* two chunks of tile rows per image */
        {5, 16, 6, 6, 32, 3, 3, 1, 1, 1},   /* 5 images over the threads, whole images per chunk; O = 32 */
        {70, 8, 6, 6, 8, 3, 3, 1, 1, 1},    /* chunks of 28 whole images and a shorter last one */
        {2, 8, 2, 13, 9, 3, 3, 1, 1, 1},    /* one tile row */
    };
    /* mode 2: forward, dx and dW by Winograd; 1: dW by im2col; 0: none */
    for (int mode = 2; mode >= 0; mode--) {
        ss_conv2d_set_winograd(mode > 0);
        ss_conv2d_set_winograd_dw(mode > 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int64_t before = ss_conv2d_winograd_runs();
            conv_vs_ref(&cases[i], 0);
            const int64_t want = mode == 2 ? 3 : mode == 1 ? 2 : 0;
            CHECK_MSG(ss_conv2d_winograd_runs() - before == want, "winograd case %zu (mode %d): %lld runs", i,
                      mode, (long long)(ss_conv2d_winograd_runs() - before));
        }
    }
    ss_conv2d_set_winograd(1);
    ss_conv2d_set_winograd_dw(1);
    /* Planes whose tiles waste more than a quarter of their outputs keep
     * im2col (5x5: 36 outputs for 25); 7x7 (64 for 49, convnet-s' last
     * 3x3 conv) takes Winograd. */
    int64_t before = ss_conv2d_winograd_runs();
    conv_case c5 = {2, 8, 5, 5, 8, 3, 3, 1, 1, 1}, c7 = {3, 64, 7, 7, 128, 3, 3, 1, 1, 1};
    conv_vs_ref(&c5, 0);
    CHECK(ss_conv2d_winograd_runs() == before);
    conv_vs_ref(&c7, 0);
    CHECK(ss_conv2d_winograd_runs() == before + 3);
}

/* Winograd with only some gradients wanted (x a data batch, frozen weights,
 * a trainable bias alone): each wanted gradient against the reference, the
 * others left alone. */
static void test_conv_winograd_grad_subsets(void)
{
    const int64_t N = 3, C = 8, H = 10, W = 10, O = 12, nx = N * C * H * W, nw = O * C * 9, ny = N * O * H * W;
    int64_t sx[4] = {N, C, H, W}, sw[4] = {O, C, 3, 3}, sb[1] = {O};
    float *xv = malloc((size_t)nx * 4), *wv = malloc((size_t)nw * 4), *bv = malloc((size_t)O * 4);
    float *dy = malloc((size_t)ny * 4), *rgx = calloc((size_t)nx, 4), *rgw = calloc((size_t)nw, 4);
    float *rgb = calloc((size_t)O, 4);
    gc_fill(xv, nx, -1, 1, 41);
    gc_fill(wv, nw, -0.5f, 0.5f, 42);
    gc_fill(bv, O, -1, 1, 43);
    gc_fill(dy, ny, -1, 1, 44);
    ss_conv2d_reference_backward(xv, wv, dy, N, C, H, W, O, 3, 3, 1, 1, rgx, rgw, rgb);
    static const int want[][3] = {{0, 1, 1}, {1, 0, 1}, {0, 0, 1}, {1, 1, 0}, {0, 1, 0}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        ss_graph *g = ss_graph_new();
        ss_tensor *x = leaf(g, 4, sx, xv, want[k][0]), *w = leaf(g, 4, sw, wv, want[k][1]);
        ss_tensor *b = leaf(g, 1, sb, bv, want[k][2]);
        int64_t before = ss_conv2d_winograd_runs();
        ss_tensor *y = ss_conv2d(g, x, w, b, 1, 1);
        CHECK_MSG(y && y->numel == ny, "grad subset %zu: shape", k);
        if (y && y->numel == ny) {
            CHECK_OK(ss_backward_seed(g, y, dy));
            double tw = 1e-4 * (1.0 + sqrt((double)(N * H * W)));
            if (want[k][0]) CHECK_MSG(x->grad && max_abs_diff(x->grad, rgx, nx) < 1e-4, "grad subset %zu: dx", k);
            if (want[k][1]) CHECK_MSG(w->grad && max_abs_diff(w->grad, rgw, nw) < tw, "grad subset %zu: dw", k);
            if (want[k][2]) CHECK_MSG(b->grad && max_abs_diff(b->grad, rgb, O) < tw, "grad subset %zu: db", k);
            CHECK_MSG(want[k][0] || !x->grad, "grad subset %zu: dx computed though not wanted", k);
            CHECK_MSG(want[k][1] || !w->grad, "grad subset %zu: dw computed though not wanted", k);
            /* the forward pass, dx when wanted, dW when wanted */
            CHECK_MSG(ss_conv2d_winograd_runs() - before == 1 + want[k][0] + want[k][1], "grad subset %zu: %lld runs",
                      k, (long long)(ss_conv2d_winograd_runs() - before));
        }
        ss_graph_free(g);
    }
    free(xv), free(wv), free(bv), free(dy), free(rgx), free(rgw), free(rgb);
}

/* dx accumulated over two uses of x (the second conv's backward adds to a
 * gradient the first one wrote): y = conv(x, w1) + conv(x, w2), both 3x3
 * stride 1 pad 1 (the transposed-convolution data path), against the
 * reference's dx summed over both weights. chunk 0: several images per chunk;
 * 1: one image per chunk (the GEMM adds into dx with beta 1); N = 9 with
 * small chunks: threads over image ranges. C = O = 8 on a 6x8 plane: dx by
 * Winograd, written by the first conv's backward and added to by the
 * second's. */
static void conv_dx_accumulates(int64_t N, int64_t chunk, int64_t C, int64_t W)
{
    ss_conv2d_set_chunk_floats(chunk);
    const int64_t H = 6, O = C, nx = N * C * H * W, nw = O * C * 9, ny = N * O * H * W;
    int64_t sx[4] = {N, C, H, W}, sw[4] = {O, C, 3, 3};
    float *xv = malloc((size_t)nx * 4), *w1 = malloc((size_t)nw * 4), *w2 = malloc((size_t)nw * 4);
    float *dy = malloc((size_t)ny * 4), *rgx = calloc((size_t)nx, 4), *rgw = calloc((size_t)nw, 4);
    gc_fill(xv, nx, -1, 1, 11);
    gc_fill(w1, nw, -0.5f, 0.5f, 12);
    gc_fill(w2, nw, -0.5f, 0.5f, 13);
    gc_fill(dy, ny, -1, 1, 14);
    ss_conv2d_reference_backward(xv, w1, dy, N, C, H, W, O, 3, 3, 1, 1, rgx, rgw, NULL);
    ss_conv2d_reference_backward(xv, w2, dy, N, C, H, W, O, 3, 3, 1, 1, rgx, rgw, NULL);
    ss_graph *g = ss_graph_new();
    ss_tensor *x = leaf(g, 4, sx, xv, 1);
    ss_tensor *y = ss_add(g, ss_conv2d(g, x, leaf(g, 4, sw, w1, 0), NULL, 1, 1),
                          ss_conv2d(g, x, leaf(g, 4, sw, w2, 0), NULL, 1, 1));
    CHECK_MSG(y && y->numel == ny, "conv dx accumulates N%lld chunk%lld: shape", (long long)N, (long long)chunk);
    if (y && y->numel == ny) {
        CHECK_OK(ss_backward_seed(g, y, dy));
        double e = max_abs_diff(x->grad, rgx, nx);
        CHECK_MSG(e < 1e-4, "conv dx accumulates N%lld chunk%lld: dx differs by %g", (long long)N, (long long)chunk,
                  e);
    }
    ss_graph_free(g);
    free(xv), free(w1), free(w2), free(dy), free(rgx), free(rgw);
    ss_conv2d_set_chunk_floats(0);
}

static void test_conv_dx_accumulates(void)
{
    conv_dx_accumulates(2, 0, 3, 5);
    conv_dx_accumulates(2, 1, 3, 5);
    conv_dx_accumulates(9, 3 * 9 * 30 * 2, 3, 5);
    conv_dx_accumulates(9, 1, 3, 5);
    int64_t before = ss_conv2d_winograd_runs();
    conv_dx_accumulates(2, 0, 8, 8); /* Winograd dx: the second conv adds into dx */
    conv_dx_accumulates(5, 0, 8, 8);
    CHECK(ss_conv2d_winograd_runs() - before == 8); /* 2 runs x 2 convs x (forward, dx) */
}

/* ---- gradient checks ---------------------------------------------------------- */
typedef struct conv_ctx {
    int s, p;
    int64_t chunk;
} conv_ctx;
static ss_tensor *f_conv(ss_graph *g, ss_tensor **x, void *c)
{
    conv_ctx *cc = c;
    ss_conv2d_set_chunk_floats(cc->chunk);
    return ss_conv2d(g, x[0], x[1], x[2], cc->s, cc->p);
}
static ss_tensor *f_conv_nb(ss_graph *g, ss_tensor **x, void *c)
{
    conv_ctx *cc = c;
    ss_conv2d_set_chunk_floats(cc->chunk);
    return ss_conv2d(g, x[0], x[1], NULL, cc->s, cc->p);
}
typedef struct pool_ctx {
    int k, s, p;
} pool_ctx;
static ss_tensor *f_maxpool(ss_graph *g, ss_tensor **x, void *c)
{
    pool_ctx *pc = c;
    return ss_max_pool2d(g, x[0], pc->k, pc->s, pc->p);
}
static ss_tensor *f_avgpool(ss_graph *g, ss_tensor **x, void *c)
{
    pool_ctx *pc = c;
    return ss_avg_pool2d(g, x[0], pc->k, pc->s, pc->p);
}
static ss_tensor *f_gap(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    return ss_global_avg_pool(g, x[0]);
}
typedef struct bn_ctx {
    int training, affine, running;
    float rm[80], rv[80];
    int64_t C;
} bn_ctx;
static ss_tensor *f_bn(ss_graph *g, ss_tensor **x, void *c)
{
    bn_ctx *b = c;
    ss_graph_set_training(g, b->training);
    ss_tensor *rm = NULL, *rv = NULL;
    if (b->running) {
        int64_t s[1] = {b->C};
        /* Fresh copies each call, so training-mode updates do not drift. */
        rm = leaf(g, 1, s, b->rm, 0);
        rv = leaf(g, 1, s, b->rv, 0);
    }
    return ss_batch_norm(g, x[0], b->affine ? x[1] : NULL, b->affine ? x[2] : NULL, rm, rv, 0.1f, 1e-5f);
}

#define IN(nd, ...) {nd, {__VA_ARGS__}, NULL, 1}

static void run_gc(const char *name, gc_fn f, void *ctx, int nin, gc_input *ins, float lo, float hi, gc_opts o)
{
    for (int i = 0; i < nin; i++) {
        int64_t n = gc_numel(&ins[i]);
        ins[i].data = malloc((size_t)n * sizeof(float));
        gc_fill(ins[i].data, n, lo, hi, 20 + (uint64_t)i);
    }
    gradcheck(name, f, ctx, nin, ins, o);
    for (int i = 0; i < nin; i++) free(ins[i].data);
}

static void test_gradchecks(void)
{
    gc_opts o = gc_default();
    {
        conv_ctx c = {1, 1, 0};
        gc_input in[3] = {IN(4, 2, 3, 5, 5), IN(4, 4, 3, 3, 3), IN(1, 4)};
        run_gc("conv 3x3 s1 p1 bias", f_conv, &c, 3, in, -1, 1, o);
        gc_input in2[2] = {IN(4, 2, 3, 5, 5), IN(4, 4, 3, 3, 3)};
        run_gc("conv 3x3 s1 p1 no bias", f_conv_nb, &c, 2, in2, -1, 1, o);
        c.chunk = 1; /* one image per chunk: chunked forward and backward */
        run_gc("conv 3x3 s1 p1 chunked", f_conv, &c, 3, in, -1, 1, o);
        c.chunk = 0; /* 8 -> 8 channels: forward and dx by Winograd F(2x2, 3x3) */
        gc_input in3[3] = {IN(4, 2, 8, 6, 8), IN(4, 8, 8, 3, 3), IN(1, 8)};
        int64_t before = ss_conv2d_winograd_runs();
        run_gc("conv 3x3 s1 p1 winograd", f_conv, &c, 3, in3, -1, 1, o);
        CHECK(ss_conv2d_winograd_runs() > before);
    }
    {
        conv_ctx c = {2, 1, 0};
        gc_input in[3] = {IN(4, 2, 2, 6, 6), IN(4, 3, 2, 3, 3), IN(1, 3)};
        run_gc("conv 3x3 s2 p1 bias", f_conv, &c, 3, in, -1, 1, o);
    }
    {
        conv_ctx c = {4, 0, 0};
        gc_input in[3] = {IN(4, 1, 3, 8, 8), IN(4, 5, 3, 4, 4), IN(1, 5)};
        run_gc("conv 4x4 s4 (patch embed)", f_conv, &c, 3, in, -1, 1, o);
    }
    {
        conv_ctx c = {1, 0, 0};
        gc_input in[3] = {IN(4, 2, 4, 3, 3), IN(4, 3, 4, 1, 1), IN(1, 3)};
        run_gc("conv 1x1", f_conv, &c, 3, in, -1, 1, o);
        gc_input in2[3] = {IN(4, 1, 2, 4, 5), IN(4, 3, 2, 2, 3), IN(1, 3)};
        run_gc("conv 2x3 kernel", f_conv, &c, 3, in2, -1, 1, o);
    }
    ss_conv2d_set_chunk_floats(0);
    /* Pools: distinct values 0.02 apart in [-1, 1), h = 2e-3 (< gap / 2). */
    {
        gc_opts op = o;
        op.h_rel = 2e-3;
        static const pool_ctx mp[] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {2, 1, 0}};
        for (size_t i = 0; i < sizeof mp / sizeof mp[0]; i++) {
            gc_input in[1] = {IN(4, 2, 2, 7, 7)};
            if (mp[i].k == 2 && mp[i].s == 2) in[0].shape[2] = in[0].shape[3] = 6;
            int64_t n = gc_numel(&in[0]);
            in[0].data = malloc((size_t)n * sizeof(float));
            fill_distinct(in[0].data, n, -1.0f, 2.0f / (float)n, 30 + i);
            char name[64];
            snprintf(name, sizeof name, "max_pool k%d s%d p%d", mp[i].k, mp[i].s, mp[i].p);
            pool_ctx pc = mp[i];
            gradcheck(name, f_maxpool, &pc, 1, in, op);
            free(in[0].data);
        }
        static const pool_ctx ap[] = {{2, 2, 0}, {3, 1, 1}, {3, 2, 1}};
        for (size_t i = 0; i < sizeof ap / sizeof ap[0]; i++) {
            gc_input in[1] = {IN(4, 2, 2, 6, 6)};
            char name[64];
            snprintf(name, sizeof name, "avg_pool k%d s%d p%d", ap[i].k, ap[i].s, ap[i].p);
            pool_ctx pc = ap[i];
            run_gc(name, f_avgpool, &pc, 1, in, -1, 1, o);
        }
        gc_input in[1] = {IN(4, 2, 3, 4, 5)};
        run_gc("global_avg_pool", f_gap, NULL, 1, in, -1, 1, o);
    }
    /* Batch norm, every mode. */
    {
        bn_ctx b = {1, 1, 1, {0}, {0}, 5};
        for (int c = 0; c < 80; c++) b.rm[c] = 0.1f * (float)(c % 7) - 0.3f, b.rv[c] = 0.5f + 0.1f * (float)(c % 5);
        gc_input in[3] = {IN(2, 6, 5), IN(1, 5), IN(1, 5)};
        run_gc("batch_norm 1d train", f_bn, &b, 3, in, -2, 2, o);
        b.training = 0;
        run_gc("batch_norm 1d eval", f_bn, &b, 3, in, -2, 2, o);
        b.training = 1, b.affine = 0, b.running = 0;
        gc_input in1[1] = {IN(2, 6, 5)};
        run_gc("batch_norm 1d train no affine", f_bn, &b, 1, in1, -2, 2, o);
        b.C = 70, b.affine = 1, b.running = 1; /* more than one channel block */
        gc_input inw[3] = {IN(2, 4, 70), IN(1, 70), IN(1, 70)};
        gc_opts ow = o;
        ow.max_checks = 60;
        run_gc("batch_norm 1d train 70 channels", f_bn, &b, 3, inw, -2, 2, ow);
        b.C = 4, b.training = 1, b.affine = 1, b.running = 1;
        gc_input in2[3] = {IN(4, 3, 4, 3, 3), IN(1, 4), IN(1, 4)};
        run_gc("batch_norm 2d train", f_bn, &b, 3, in2, -2, 2, o);
        b.training = 0;
        run_gc("batch_norm 2d eval", f_bn, &b, 3, in2, -2, 2, o);
        b.training = 0, b.running = 0; /* eval without running stats: batch stats */
        run_gc("batch_norm 2d eval no running", f_bn, &b, 3, in2, -2, 2, o);
        b.training = 1, b.affine = 0;
        gc_input in3[1] = {IN(4, 2, 3, 2, 3)};
        run_gc("batch_norm 2d train no affine", f_bn, &b, 1, in3, -2, 2, o);
    }
}

/* ---- pools: exact values ---------------------------------------------------------- */
static void test_pool_exact(void)
{
    ss_graph *g = ss_graph_new();
    /* 4x4 plane, 2x2 max pool; argmax positions differ per window. */
    float xv[16] = {1, 5, 2, 0,   3, 4, 7, 7,   9, 0, 1, 1,   2, 2, 1, 8};
    int64_t sx[4] = {1, 1, 4, 4};
    ss_tensor *x = leaf(g, 4, sx, xv, 1);
    ss_tensor *y = ss_max_pool2d(g, x, 2, 2, 0);
    CHECK(y && y->shape[2] == 2 && y->shape[3] == 2);
    CHECK(y && y->data[0] == 5 && y->data[1] == 7 && y->data[2] == 9 && y->data[3] == 8);
    float sd[4] = {1, 2, 3, 4};
    CHECK_OK(ss_backward_seed(g, y, sd));
    /* Tie 7,7 in window 1: the first (row-major) wins. */
    float gw[16] = {0, 1, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 4};
    CHECK(memcmp(x->grad, gw, sizeof gw) == 0);
    /* Generic path: 3x3 stride 2 pad 1 on the same plane (padding is -inf,
     * so a window of negatives still picks a real value). */
    ss_graph_reset(g);
    float neg[16];
    for (int i = 0; i < 16; i++) neg[i] = -xv[i] - 1;
    x = leaf(g, 4, sx, neg, 1);
    y = ss_max_pool2d(g, x, 3, 2, 1);
    /* windows rows/cols {0,1},{1,2,3}: max of -x-1 = -(min x)-1 */
    CHECK(y && y->shape[2] == 2 && y->shape[3] == 2);
    CHECK(y && y->data[0] == -2 && y->data[1] == -1 && y->data[2] == -1 && y->data[3] == -1);
    CHECK_OK(ss_backward(g, ss_sum_all(g, y)));
    /* min x per window: w0 {1,5,3,4} -> (0,0); w1 rows0-1 cols1-3 {5,2,0,4,7,7}
     * -> (0,3); w2 rows1-3 cols0-1 {3,4,9,0,2,2} -> (2,1); w3 rows1-3 cols1-3
     * {4,7,7,0,1,1,2,1,8} -> (2,1) again. */
    float gw2[16] = {1, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0};
    CHECK(memcmp(x->grad, gw2, sizeof gw2) == 0);
    /* 2x2 max pool on a 5x5 plane: the last row and column are in no window
     * and their gradient is 0 (the other entries as the windows say). */
    ss_graph_reset(g);
    {
        float x5[25];
        for (int i = 0; i < 25; i++) x5[i] = (float)((i * 7) % 25);
        int64_t s5[4] = {1, 1, 5, 5};
        x = leaf(g, 4, s5, x5, 1);
        y = ss_max_pool2d(g, x, 2, 2, 0);
        CHECK_OK(ss_backward(g, ss_sum_all(g, y)));
        int ok = 1, ones = 0;
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < 5; c++) {
                float v = x->grad[r * 5 + c];
                if (r == 4 || c == 4) ok &= v == 0.0f;
                else ok &= v == 0.0f || v == 1.0f, ones += v == 1.0f;
            }
        CHECK(ok && ones == 4);
    }
    /* x used twice: loss = sum(max_pool(x)) + sum(gap(x)) + sum(x), so the
     * pools add to a gradient that sum(x) wrote first (backward runs in
     * reverse order): 1 + 1/16 everywhere, + 1 at the four argmaxes. */
    ss_graph_reset(g);
    x = leaf(g, 4, sx, xv, 1);
    {
        ss_tensor *l = ss_add(g, ss_sum_all(g, ss_max_pool2d(g, x, 2, 2, 0)), ss_sum_all(g, ss_global_avg_pool(g, x)));
        CHECK_OK(ss_backward(g, ss_add(g, l, ss_sum_all(g, x))));
        int ok = 1;
        for (int i = 0; i < 16; i++) ok &= fabsf(x->grad[i] - (1.0f + 1.0f / 16 + (gw[i] != 0.0f))) < 1e-6f;
        CHECK(ok);
    }
    /* Avg pool 2x2 s2, and 3x3 s1 p1 at a corner (padding counts: /9). */
    ss_graph_reset(g);
    x = leaf(g, 4, sx, xv, 0);
    y = ss_avg_pool2d(g, x, 2, 2, 0);
    CHECK(y && y->data[0] == 13.0f / 4 && y->data[1] == 16.0f / 4 && y->data[2] == 13.0f / 4 &&
          y->data[3] == 11.0f / 4);
    y = ss_avg_pool2d(g, x, 3, 1, 1);
    CHECK(y && y->shape[2] == 4 && y->shape[3] == 4);
    CHECK(y && fabsf(y->data[0] - 13.0f / 9) < 1e-6f && fabsf(y->data[5] - 32.0f / 9) < 1e-6f);
    ss_tensor *gp = ss_global_avg_pool(g, x);
    CHECK(gp && gp->ndim == 2 && gp->shape[0] == 1 && gp->shape[1] == 1 && gp->data[0] == 53.0f / 16);
    /* 2x2 fast path on long rows (19 outputs: a full and a partial vector
     * block) with many ties and a NaN, against naive loops. */
    ss_graph_reset(g);
    {
        int64_t sl[4] = {2, 3, 40, 38}, n = 2 * 3 * 40 * 38;
        float *v = malloc((size_t)n * sizeof(float));
        gc_fill(v, n, 0, 4, 55);
        for (int64_t i = 0; i < n; i++) v[i] = floorf(v[i]); /* values 0..3: ties */
        v[5 * 38 + 7] = NAN;
        ss_tensor *xl = leaf(g, 4, sl, v, 1);
        ss_tensor *yl = ss_max_pool2d(g, xl, 2, 2, 0);
        CHECK_OK(ss_backward(g, ss_sum_all(g, yl)));
        int bad = 0;
        float *gref = calloc((size_t)n, sizeof(float));
        for (int64_t pl = 0; pl < 6; pl++)
            for (int64_t oy = 0; oy < 20; oy++)
                for (int64_t ox = 0; ox < 19; ox++) {
                    int64_t best = -1;
                    float m = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            int64_t i = pl * 1520 + (2 * oy + dy) * 38 + 2 * ox + dx;
                            if (best < 0 || v[i] > m || isnan(v[i])) m = v[i], best = i;
                        }
                    float got = yl->data[(pl * 20 + oy) * 19 + ox];
                    bad += !(got == m || (isnan(got) && isnan(m)));
                    gref[best] += 1.0f;
                }
        CHECK_MSG(bad == 0, "max_pool 2x2 long rows: %d outputs differ", bad);
        CHECK(memcmp(gref, xl->grad, (size_t)n * sizeof(float)) == 0);
        free(gref);
        free(v);
    }
    ss_graph_reset(g);
    x = leaf(g, 4, sx, xv, 0);
    /* Errors. */
    CHECK(ss_max_pool2d(g, x, 2, 2, 2) == NULL); /* padding > kernel/2 */
    CHECK(strstr(ss_graph_errmsg(g), "max_pool2d: kernel 2, stride 2, padding 2") != NULL);
    ss_graph_reset(g);
    int64_t s2[2] = {4, 4};
    CHECK(ss_avg_pool2d(g, ss_wrap(g, xv, 2, s2), 2, 2, 0) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "avg_pool2d: input [4,4] is not [N,C,H,W]") != NULL);
    ss_graph_free(g);
}

/* ---- batch norm: exact values -------------------------------------------------- */
static void test_bn_exact(void)
{
    ss_graph *g = ss_graph_new();
    /* [4,2]: channel 0 = 1,2,3,4 (mean 2.5, var 1.25, unbiased 5/3),
     *        channel 1 = 2,4,6,8 (mean 5, var 5, unbiased 20/3). */
    float xv[8] = {1, 2, 2, 4, 3, 6, 4, 8};
    float gv[2] = {2, 1}, bv[2] = {0, 1}, rmv[2] = {0, 0}, rvv[2] = {1, 1};
    int64_t sx[2] = {4, 2}, sc[1] = {2};
    ss_tensor *gam = leaf(g, 1, sc, gv, 1), *bet = leaf(g, 1, sc, bv, 1);
    ss_tensor *rm = ss_wrap(g, rmv, 1, sc), *rv = ss_wrap(g, rvv, 1, sc);
    ss_tensor *x = leaf(g, 2, sx, xv, 1);
    ss_tensor *y = ss_batch_norm(g, x, gam, bet, rm, rv, 0.1f, 1e-5f);
    CHECK(y != NULL);
    CHECK_NEAR(rmv[0], 0.25, 1e-7);
    CHECK_NEAR(rmv[1], 0.5, 1e-7);
    CHECK_NEAR(rvv[0], 0.9 + 0.1 * 5.0 / 3.0, 1e-6);
    CHECK_NEAR(rvv[1], 0.9 + 0.1 * 20.0 / 3.0, 1e-6);
    for (int r = 0; r < 4 && y; r++) {
        CHECK_NEAR(y->data[r * 2], (xv[r * 2] - 2.5) / sqrt(1.25 + 1e-5) * 2, 1e-5);
        CHECK_NEAR(y->data[r * 2 + 1], (xv[r * 2 + 1] - 5.0) / sqrt(5.0 + 1e-5) + 1, 1e-5);
    }
    /* dL/dbeta = sum dy; dL/dx of sum(y) is 0 (mean removed). */
    CHECK_OK(ss_backward(g, ss_sum_all(g, y)));
    CHECK_NEAR(bet->grad[0], 4, 1e-6);
    CHECK_NEAR(gam->grad[0], 0, 1e-5);
    for (int i = 0; i < 8; i++) CHECK_NEAR(x->grad[i], 0, 1e-5);
    /* A second training step updates once more (and only once). */
    ss_graph_reset(g);
    rm = ss_wrap(g, rmv, 1, sc), rv = ss_wrap(g, rvv, 1, sc);
    ss_graph_set_grad_enabled(g, 0);
    y = ss_batch_norm(g, ss_wrap(g, xv, 2, sx), ss_wrap(g, gv, 1, sc), ss_wrap(g, bv, 1, sc), rm, rv, 0.1f, 1e-5f);
    CHECK(y != NULL && ss_graph_num_nodes(g) == 0);
    CHECK_NEAR(rmv[0], 0.9 * 0.25 + 0.25, 1e-6);
    CHECK_NEAR(rvv[1], 0.9 * (0.9 + 0.1 * 20.0 / 3.0) + 0.1 * 20.0 / 3.0, 1e-5);
    /* Eval: (x - rm)/sqrt(rv + eps)*g + b, running stats untouched. */
    ss_graph_set_grad_enabled(g, 1);
    ss_graph_set_training(g, 0);
    float rm0[2] = {rmv[0], rmv[1]}, rv0[2] = {rvv[0], rvv[1]};
    x = leaf(g, 2, sx, xv, 1);
    y = ss_batch_norm(g, x, ss_wrap(g, gv, 1, sc), ss_wrap(g, bv, 1, sc), rm, rv, 0.1f, 1e-5f);
    CHECK(memcmp(rm0, rmv, sizeof rm0) == 0 && memcmp(rv0, rvv, sizeof rv0) == 0);
    for (int i = 0; i < 8 && y; i++) {
        int c = i % 2;
        CHECK_NEAR(y->data[i], (xv[i] - rmv[c]) / sqrt(rvv[c] + 1e-5) * gv[c] + bv[c], 1e-5);
    }
    CHECK_OK(ss_backward(g, ss_sum_all(g, y)));
    for (int i = 0; i < 8; i++) CHECK_NEAR(x->grad[i], gv[i % 2] / sqrt(rvv[i % 2] + 1e-5), 1e-5);
    /* 2-D: [2,2,2,2], stats over N,H,W; compare with double loops. */
    ss_graph_reset(g);
    ss_graph_set_training(g, 1);
    float x4[16], r2m[2] = {0.5f, -0.5f}, r2v[2] = {2, 3};
    for (int i = 0; i < 16; i++) x4[i] = (float)((i * 7) % 11) - 3.0f;
    int64_t s4[4] = {2, 2, 2, 2};
    y = ss_batch_norm(g, ss_wrap(g, x4, 4, s4), NULL, NULL, ss_wrap(g, r2m, 1, sc), ss_wrap(g, r2v, 1, sc), 0.25f,
                      1e-3f);
    for (int c = 0; c < 2; c++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++) s += x4[n * 8 + c * 4 + j];
        double m = s / 8;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++) s2 += (x4[n * 8 + c * 4 + j] - m) * (x4[n * 8 + c * 4 + j] - m);
        double v = s2 / 8;
        CHECK_NEAR(r2m[c], 0.75 * (c ? -0.5 : 0.5) + 0.25 * m, 1e-6);
        CHECK_NEAR(r2v[c], 0.75 * (c ? 3 : 2) + 0.25 * s2 / 7, 1e-5);
        for (int n = 0; n < 2 && y; n++)
            for (int j = 0; j < 4; j++)
                CHECK_NEAR(y->data[n * 8 + c * 4 + j], (x4[n * 8 + c * 4 + j] - m) / sqrt(v + 1e-3), 1e-5);
    }
    /* Accuracy with a large offset and a large batch: 1000 + noise. */
    ss_graph_reset(g);
    int64_t sl[4] = {64, 2, 32, 32};
    ss_tensor *xl = ss_new(g, 4, sl);
    gc_fill(xl->data, xl->numel, -1, 1, 77);
    for (int64_t i = 0; i < xl->numel; i++) xl->data[i] = 1000.0f + xl->data[i] * (i % 2048 < 1024 ? 1.0f : 0.01f);
    y = ss_batch_norm(g, xl, NULL, NULL, NULL, NULL, 0.1f, 1e-8f);
    for (int c = 0; c < 2 && y; c++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < 64; n++)
            for (int j = 0; j < 1024; j++) {
                double v = y->data[(n * 2 + c) * 1024 + j];
                s += v, s2 += v * v;
            }
        CHECK_NEAR(s / 65536, 0, 1e-4);
        CHECK_NEAR(s2 / 65536, 1, 1e-3);
    }
    /* Errors: a single value per channel in training; wrong gamma size. */
    ss_graph_reset(g);
    int64_t s1[2] = {1, 2};
    CHECK(ss_batch_norm(g, ss_wrap(g, xv, 2, s1), NULL, NULL, NULL, NULL, 0.1f, 1e-5f) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "batch_norm: expected more than 1 value per channel") != NULL);
    ss_graph_reset(g);
    int64_t s3[1] = {3};
    CHECK(ss_batch_norm(g, ss_wrap(g, xv, 2, sx), ss_wrap(g, gv, 1, s3), NULL, NULL, NULL, 0.1f, 1e-5f) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "gamma/beta have 3/2 elements, expected 2") != NULL);
    ss_graph_free(g);
}

/* ---- determinism: a small conv-BN-ReLU-pool block, 1 vs 2 threads -------------- */
static void block_run(int threads, float *out_y, float *out_gx, float *out_gw, float *out_gw2, float *out_rm)
{
    omp_set_num_threads(threads);
    ss_graph *g = ss_graph_new();
    int64_t sx[4] = {8, 3, 12, 12}, sw[4] = {16, 3, 3, 3}, sc[1] = {16};
    ss_tensor *x = ss_new(g, 4, sx), *w = ss_new(g, 4, sw), *ga = ss_new(g, 1, sc), *be = ss_new(g, 1, sc);
    gc_fill(x->data, x->numel, -1, 1, 5);
    gc_fill(w->data, w->numel, -0.3f, 0.3f, 6);
    gc_fill(ga->data, 16, 0.5f, 1.5f, 7);
    gc_fill(be->data, 16, -0.5f, 0.5f, 8);
    x->flags |= SS_T_REQUIRES_GRAD, w->flags |= SS_T_REQUIRES_GRAD;
    ga->flags |= SS_T_REQUIRES_GRAD, be->flags |= SS_T_REQUIRES_GRAD;
    float rmv[16] = {0}, rvv[16];
    for (int i = 0; i < 16; i++) rvv[i] = 1;
    ss_tensor *rm = ss_wrap(g, rmv, 1, sc), *rv = ss_wrap(g, rvv, 1, sc);
    ss_tensor *h = ss_conv2d(g, x, w, NULL, 1, 1);
    h = ss_relu(g, ss_batch_norm(g, h, ga, be, rm, rv, 0.1f, 1e-5f));
    /* 16 -> 16: dx by the transposed convolution */
    int64_t sw2[4] = {16, 16, 3, 3};
    ss_tensor *w2 = ss_new(g, 4, sw2);
    gc_fill(w2->data, w2->numel, -0.1f, 0.1f, 10);
    w2->flags |= SS_T_REQUIRES_GRAD; /* dW by Winograd too */
    h = ss_conv2d(g, h, w2, NULL, 1, 1);
    h = ss_max_pool2d(g, h, 2, 2, 0);
    ss_tensor *y = ss_global_avg_pool(g, ss_avg_pool2d(g, h, 3, 1, 1));
    float seed[8 * 16];
    gc_fill(seed, 8 * 16, -1, 1, 9);
    CHECK_OK(ss_backward_seed(g, y, seed));
    memcpy(out_y, y->data, sizeof seed);
    memcpy(out_gx, x->grad, (size_t)x->numel * 4);
    memcpy(out_gw, w->grad, (size_t)w->numel * 4);
    memcpy(out_gw2, w2->grad, (size_t)w2->numel * 4);
    memcpy(out_rm, rvv, sizeof rvv);
    ss_graph_free(g);
}

static void test_determinism(void)
{
    static float y1[128], y2[128], y3[128], gx1[3456], gx2[3456], gx3[3456], gw1[432], gw2[432], gw3[432];
    static float hw1[2304], hw2[2304], hw3[2304]; /* the 16 -> 16 conv's dW (Winograd) */
    float r1[16], r2[16], r3[16];
    int maxt = omp_get_max_threads();
    block_run(2, y1, gx1, gw1, hw1, r1);
    block_run(2, y2, gx2, gw2, hw2, r2);
    block_run(1, y3, gx3, gw3, hw3, r3);
    omp_set_num_threads(maxt);
    CHECK(memcmp(y1, y2, sizeof y1) == 0 && memcmp(gx1, gx2, sizeof gx1) == 0 && memcmp(gw1, gw2, sizeof gw1) == 0 &&
          memcmp(hw1, hw2, sizeof hw1) == 0 &&
          memcmp(r1, r2, sizeof r1) == 0);
    /* Across thread counts the promise is "close", not "equal": BN and the
     * pools split work per channel/plane, but OpenBLAS may block a product
     * differently with 1 and 2 threads (bit-equal with its SkylakeX kernels
     * on a Zen 4; not with its Zen kernels on a Zen 3). */
    CHECK(max_abs_diff(y1, y3, 128) < 1e-5 && max_abs_diff(r1, r3, 16) < 1e-5);
    CHECK(max_abs_diff(gx1, gx3, 3456) < 1e-5 && max_abs_diff(gw1, gw3, 432) < 1e-5);
    CHECK(max_abs_diff(hw1, hw3, 2304) < 1e-4);
}

int main(void)
{
    test_conv_exact();
    test_conv_vs_ref();
    test_conv_winograd();
    test_conv_winograd_grad_subsets();
    test_conv_dx_accumulates();
    test_gradchecks();
    test_pool_exact();
    test_bn_exact();
    test_determinism();
    TEST_MAIN_END();
}
