/* Gradient checks for the core ops: views, element-wise, reductions, matmul,
 * linear. Tolerances: see gradcheck.h (h = 1e-2 relative, atol 2e-3, rtol 2e-2
 * unless stated). */
#include "gradcheck.h"

static ss_tensor *f_add(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_add(g, x[0], x[1]); }
static ss_tensor *f_sub(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_sub(g, x[0], x[1]); }
static ss_tensor *f_mul(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_mul(g, x[0], x[1]); }
static ss_tensor *f_div(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_div(g, x[0], x[1]); }
static ss_tensor *f_scale(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_scale(g, x[0], -1.7f); }
static ss_tensor *f_adds(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_add_scalar(g, x[0], 0.3f); }
static ss_tensor *f_relu(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_relu(g, x[0]); }
static ss_tensor *f_gelu(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_gelu(g, x[0]); }
static ss_tensor *f_sigmoid(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_sigmoid(g, x[0]); }
static ss_tensor *f_sqrt(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_sqrt(g, x[0]); }
static ss_tensor *f_tanh(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_tanh(g, x[0]); }
static ss_tensor *f_dropout(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_dropout(g, x[0], 0.3f); }
static ss_tensor *f_sum1(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_sum(g, x[0], 1, 0); }
static ss_tensor *f_mean0k(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_mean(g, x[0], 0, 1); }
static ss_tensor *f_meanall(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_mean_all(g, x[0]); }
static ss_tensor *f_sumall(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_sum_all(g, x[0]); }
static ss_tensor *f_linear(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_linear(g, x[0], x[1], x[2]); }
static ss_tensor *f_linear_nb(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_linear(g, x[0], x[1], NULL); }

typedef struct { int ta, tb; } mm_ctx;
static ss_tensor *f_matmul(ss_graph *g, ss_tensor **x, void *c)
{
    mm_ctx *m = c;
    return ss_matmul(g, x[0], x[1], m->ta, m->tb);
}
static ss_tensor *f_permute_mul(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    int perm[3] = {2, 0, 1};
    ss_tensor *p = ss_permute(g, x[0], perm); /* [4,2,3] strided */
    return ss_mul(g, p, p);                   /* contiguous() inside */
}
static ss_tensor *f_slice(ss_graph *g, ss_tensor *x0, int dim, int64_t s, int64_t l)
{
    return ss_gelu(g, ss_slice(g, x0, dim, s, l));
}
static ss_tensor *f_slice_last(ss_graph *g, ss_tensor **x, void *c) { (void)c; return f_slice(g, x[0], 2, 1, 2); }
static ss_tensor *f_slice_first(ss_graph *g, ss_tensor **x, void *c) { (void)c; return f_slice(g, x[0], 0, 1, 1); }
static ss_tensor *f_reshape(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    int64_t s[2] = {-1, 4};
    ss_tensor *r = ss_reshape(g, x[0], 2, s);
    return ss_mul(g, r, r);
}
static ss_tensor *f_concat(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    ss_tensor *xs[3] = {x[0], x[1], x[0]};
    return ss_tanh(g, ss_concat(g, 3, xs, 1));
}
static ss_tensor *f_index(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    int32_t idx[4] = {2, 0, 2, 1};
    return ss_sigmoid(g, ss_index_select(g, x[0], 1, idx, 4));
}
static ss_tensor *f_detach(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c; /* d/dx [x * detach(x)] = detach(x) */
    return ss_mul(g, x[0], ss_detach(g, x[0]));
}

#define IN(nd, ...) {nd, {__VA_ARGS__}, NULL, 1}

static void run1(const char *name, gc_fn f, void *ctx, int nin, gc_input *ins, float lo, float hi, gc_opts o)
{
    for (int i = 0; i < nin; i++) {
        int64_t n = gc_numel(&ins[i]);
        ins[i].data = malloc((size_t)n * sizeof(float));
        gc_fill(ins[i].data, n, lo, hi, 10 + (uint64_t)i);
    }
    gradcheck(name, f, ctx, nin, ins, o);
    for (int i = 0; i < nin; i++) free(ins[i].data);
}

int main(void)
{
    gc_opts o = gc_default();
    {
        gc_input in[2] = {IN(3, 2, 3, 4), IN(3, 2, 3, 4)};
        run1("add same", f_add, NULL, 2, in, -1, 1, o);
    }
    {
        gc_input in[2] = {IN(3, 2, 3, 4), IN(1, 4)};
        run1("add bcast last", f_add, NULL, 2, in, -1, 1, o);
    }
    {
        gc_input in[2] = {IN(3, 2, 1, 4), IN(2, 3, 1)};
        run1("sub bcast both", f_sub, NULL, 2, in, -1, 1, o);
    }
    {
        gc_input in[2] = {IN(2, 3, 4), IN(2, 3, 1)};
        run1("mul bcast col", f_mul, NULL, 2, in, -1, 1, o);
    }
    {
        gc_input in[2] = {IN(2, 3, 4), IN(1, 1)};
        run1("mul scalar", f_mul, NULL, 2, in, -1, 1, o);
    }
    {
        gc_input in[2] = {IN(2, 3, 4), IN(2, 3, 4)};
        run1("div same", f_div, NULL, 2, in, 0.5f, 2, o);
    }
    {
        gc_input in[2] = {IN(2, 3, 4), IN(1, 4)};
        run1("div bcast", f_div, NULL, 2, in, 0.5f, 2, o);
    }
    {
        gc_input in[1] = {IN(2, 5, 7)};
        run1("scale", f_scale, NULL, 1, in, -2, 2, o);
        run1("add_scalar", f_adds, NULL, 1, in, -2, 2, o);
        run1("gelu", f_gelu, NULL, 1, in, -3, 3, o);
        run1("sigmoid", f_sigmoid, NULL, 1, in, -4, 4, o);
        run1("tanh", f_tanh, NULL, 1, in, -2, 2, o);
        run1("sqrt", f_sqrt, NULL, 1, in, 0.2f, 3, o);
        run1("dropout", f_dropout, NULL, 1, in, -2, 2, o);
        run1("sum axis1", f_sum1, NULL, 1, in, -2, 2, o);
        run1("mean axis0 keepdim", f_mean0k, NULL, 1, in, -2, 2, o);
        run1("mean_all", f_meanall, NULL, 1, in, -2, 2, o);
        run1("sum_all", f_sumall, NULL, 1, in, -2, 2, o);
    }
    {
        /* ReLU: inputs at least 0.05 away from the kink, h = 1e-2 < gap. */
        gc_input in[1] = {IN(2, 6, 7)};
        in[0].data = malloc(42 * sizeof(float));
        gc_fill_away0(in[0].data, 42, 0.05f, 3);
        gradcheck("relu", f_relu, NULL, 1, in, o);
        free(in[0].data);
    }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            mm_ctx c = {ta, tb};
            char name[64];
            /* batched [2, M=3, K=4] x [2, K=4, N=5] */
            gc_input in[2] = {IN(3, 2, ta ? 4 : 3, ta ? 3 : 4), IN(3, 2, tb ? 5 : 4, tb ? 4 : 5)};
            snprintf(name, sizeof name, "matmul batched ta=%d tb=%d", ta, tb);
            run1(name, f_matmul, &c, 2, in, -1, 1, o);
            gc_input in2[2] = {IN(3, 2, ta ? 4 : 3, ta ? 3 : 4), IN(2, tb ? 5 : 4, tb ? 4 : 5)};
            snprintf(name, sizeof name, "matmul shared-b ta=%d tb=%d", ta, tb);
            run1(name, f_matmul, &c, 2, in2, -1, 1, o);
        }
    {
        gc_input in[3] = {IN(3, 2, 3, 5), IN(2, 4, 5), IN(1, 4)};
        run1("linear", f_linear, NULL, 3, in, -1, 1, o);
        gc_input in2[2] = {IN(2, 3, 5), IN(2, 4, 5)};
        run1("linear no bias", f_linear_nb, NULL, 2, in2, -1, 1, o);
    }
    {
        gc_input in[1] = {IN(3, 2, 3, 4)};
        run1("permute+contiguous", f_permute_mul, NULL, 1, in, -1, 1, o);
        run1("slice last dim", f_slice_last, NULL, 1, in, -1, 1, o);
        run1("slice first dim", f_slice_first, NULL, 1, in, -1, 1, o);
        run1("reshape", f_reshape, NULL, 1, in, -1, 1, o);
        run1("index_select", f_index, NULL, 1, in, -1, 1, o);
    }
    {
        gc_input in[2] = {IN(3, 2, 3, 4), IN(3, 2, 2, 4)};
        run1("concat", f_concat, NULL, 2, in, -1, 1, o);
    }

    /* Values, not just gradients. */
    ss_graph *g = ss_graph_new();
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    ss_tensor *ta = ss_wrap(g, a, 2, sa), *tb = ss_wrap(g, b, 1, sb);
    ss_tensor *s = ss_add(g, ta, tb);
    CHECK(s && s->data[4] == 25.0f);
    int perm[2] = {1, 0};
    ss_tensor *p = ss_contiguous(g, ss_permute(g, ta, perm));
    CHECK(p && p->shape[0] == 3 && p->data[1] == 4.0f && p->data[2] == 2.0f);
    ss_tensor *m = ss_matmul(g, ta, ss_reshape(g, tb, 2, (int64_t[]){3, 1}), 0, 0);
    CHECK(m && m->data[0] == 140.0f && m->data[1] == 320.0f);
    CHECK(ss_mean_all(g, ta)->data[0] == 3.5f);
    /* Errors: bad shapes give NULL and a message naming the op. */
    int64_t sc[1] = {4};
    float c4[4] = {0};
    ss_tensor *bad = ss_add(g, ta, ss_wrap(g, c4, 1, sc));
    CHECK(bad == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_SHAPE);
    CHECK(strstr(ss_graph_errmsg(g), "add: shapes [2,3] and [4] do not broadcast") != NULL);
    CHECK(ss_relu(g, bad) == NULL); /* errors propagate */
    ss_graph_reset(g);
    CHECK(ss_graph_status(g) == SS_OK);
    /* Dropout is identity in eval mode and keeps ~1-p of elements in training. */
    float big[10000];
    for (int i = 0; i < 10000; i++) big[i] = 1.0f;
    int64_t sbig[1] = {10000};
    ss_tensor *tbig = ss_wrap(g, big, 1, sbig);
    ss_tensor *d = ss_dropout(g, tbig, 0.25f);
    int kept = 0;
    for (int i = 0; i < 10000; i++) kept += d->data[i] != 0.0f;
    CHECK_MSG(abs(kept - 7500) < 200, "kept %d of 10000", kept);
    CHECK_NEAR(d->data[0] == 0.0f ? 0.0 : d->data[0], d->data[0] == 0.0f ? 0.0 : 1.0 / 0.75, 1e-6);
    ss_graph_set_training(g, 0);
    CHECK(ss_dropout(g, tbig, 0.25f) == tbig);
    /* detach: d/dx [x * detach(x)] = x (finite differences cannot see a
     * stop-gradient, so check the tape's answer directly). */
    ss_graph_reset(g);
    ss_graph_set_training(g, 1);
    float xv[3] = {0.5f, -2.0f, 3.0f};
    int64_t s3[1] = {3};
    ss_tensor *xl = ss_new(g, 1, s3);
    memcpy(xl->data, xv, sizeof xv);
    xl->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *dl = ss_sum_all(g, f_detach(g, &xl, NULL));
    CHECK_OK(ss_backward(g, dl));
    CHECK(xl->grad && xl->grad[0] == 0.5f && xl->grad[1] == -2.0f && xl->grad[2] == 3.0f);
    ss_graph_free(g);
    TEST_MAIN_END();
}
