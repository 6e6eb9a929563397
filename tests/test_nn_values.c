/* Gradient checks and exact values for layer norm, L2 normalise, softmax,
 * log-softmax, cross-entropy (label smoothing, ignored rows), MSE, cosine
 * similarity, embedding and attention (with masks), plus the fast attention
 * against a naive reference and the ops against PyTorch's values in
 * tests/data/ref/ops.safetensors. Tolerances: gradcheck.h defaults. */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "selfsup/safetensors.h"

static ss_tensor *f_ln(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_layer_norm(g, x[0], x[1], x[2], 1e-5f); }
static ss_tensor *f_ln_noaff(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_layer_norm(g, x[0], NULL, NULL, 1e-5f); }
static ss_tensor *f_l2n(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_l2_normalize(g, x[0], 1e-6f); }
static ss_tensor *f_softmax(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_softmax(g, x[0]); }
static ss_tensor *f_logsoftmax(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_log_softmax(g, x[0]); }
static ss_tensor *f_mse(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_mse(g, x[0], x[1]); }
static ss_tensor *f_cos(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_cosine_sim(g, x[0], x[1], 1e-8f); }
static ss_tensor *f_cos_self(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_cosine_sim(g, x[0], x[0], 1e-8f); }

typedef struct { const int32_t *t; float ls; } ce_ctx;
static ss_tensor *f_ce(ss_graph *g, ss_tensor **x, void *c)
{
    ce_ctx *k = c;
    return ss_cross_entropy(g, x[0], k->t, k->ls);
}
static ss_tensor *f_emb(ss_graph *g, ss_tensor **x, void *c)
{
    const int32_t *ids = c;
    return ss_embedding(g, x[0], ids, 2, (int64_t[]){2, 3});
}
typedef struct { int heads; const float *mask; } at_ctx;
static ss_tensor *f_attn(ss_graph *g, ss_tensor **x, void *c)
{
    at_ctx *k = c;
    return ss_attention(g, x[0], x[1], x[2], k->heads, k->mask);
}

#define IN(nd, ...) {nd, {__VA_ARGS__}, NULL, 1}

static void run(const char *name, gc_fn f, void *ctx, int nin, gc_input *ins, float lo, float hi)
{
    for (int i = 0; i < nin; i++) {
        int64_t n = gc_numel(&ins[i]);
        ins[i].data = malloc((size_t)n * sizeof(float));
        gc_fill(ins[i].data, n, lo, hi, 20 + (uint64_t)i);
    }
    gradcheck(name, f, ctx, nin, ins, gc_default());
    for (int i = 0; i < nin; i++) free(ins[i].data);
}

/* Naive attention on the packed layout, for comparison. */
static void attn_ref(const float *q, const float *k, const float *v, int B, int Tq, int Tk, int H, int Dh,
                     const float *mask, float *out)
{
    int HD = H * Dh;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                double s[64], mx = -1e300, z = 0;
                int any = 0;
                for (int j = 0; j < Tk; j++) {
                    if (mask && mask[b * Tk + j] == 0) continue;
                    double d = 0;
                    for (int e = 0; e < Dh; e++) d += q[(b * Tq + i) * HD + h * Dh + e] * k[(b * Tk + j) * HD + h * Dh + e];
                    s[j] = d / sqrt(Dh);
                    if (s[j] > mx) mx = s[j];
                    any = 1;
                }
                for (int j = 0; j < Tk; j++) {
                    if (mask && mask[b * Tk + j] == 0) s[j] = 0;
                    else {
                        s[j] = exp(s[j] - mx);
                        z += s[j];
                    }
                }
                for (int e = 0; e < Dh; e++) {
                    double o = 0;
                    for (int j = 0; j < Tk && any; j++)
                        if (!mask || mask[b * Tk + j] != 0) o += s[j] / z * v[(b * Tk + j) * HD + h * Dh + e];
                    out[(b * Tq + i) * HD + h * Dh + e] = (float)o;
                }
            }
}

static void check_ref_ops(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ref/ops.safetensors", tu_data_dir());
    ss_safetensors *st = NULL;
    CHECK_OK(ss_st_open(path, &st));
    if (!st) return;
    ss_graph *g = ss_graph_new();
    float in[3 * 7 * 16], w[16], b[16], out[3 * 7 * 16];
    CHECK_OK(ss_st_read_f32(st, "layer_norm.input", in, 3, (int64_t[]){3, 7, 16}));
    CHECK_OK(ss_st_read_f32(st, "layer_norm.weight", w, 1, (int64_t[]){16}));
    CHECK_OK(ss_st_read_f32(st, "layer_norm.bias", b, 1, (int64_t[]){16}));
    CHECK_OK(ss_st_read_f32(st, "layer_norm.out", out, 3, (int64_t[]){3, 7, 16}));
    ss_tensor *y = ss_layer_norm(g, ss_wrap(g, in, 3, (int64_t[]){3, 7, 16}), ss_wrap(g, w, 1, (int64_t[]){16}),
                                 ss_wrap(g, b, 1, (int64_t[]){16}), 1e-6f);
    double md = 0;
    for (int i = 0; i < 3 * 7 * 16; i++) md = fmax(md, fabs(y->data[i] - out[i]));
    CHECK_MSG(md < 1e-5, "layer_norm vs PyTorch: %g", md);
    float lg[30], ce;
    int32_t t[6];
    CHECK_OK(ss_st_read_f32(st, "cross_entropy_ls.input", lg, 2, (int64_t[]){6, 5}));
    CHECK_OK(ss_st_read_i32(st, "cross_entropy_ls.target", t, 6));
    CHECK_OK(ss_st_read_f32(st, "cross_entropy_ls.out", &ce, 1, (int64_t[]){1}));
    ss_tensor *l = ss_cross_entropy(g, ss_wrap(g, lg, 2, (int64_t[]){6, 5}), t, 0.1f);
    CHECK_NEAR(l->data[0], ce, 1e-5);
    float gi[64], go[64];
    CHECK_OK(ss_st_read_f32(st, "gelu.input", gi, 1, (int64_t[]){64}));
    CHECK_OK(ss_st_read_f32(st, "gelu.out", go, 1, (int64_t[]){64}));
    ss_tensor *ge = ss_gelu(g, ss_wrap(g, gi, 1, (int64_t[]){64}));
    md = 0;
    for (int i = 0; i < 64; i++) md = fmax(md, fabs(ge->data[i] - go[i]));
    CHECK_MSG(md < 1e-6, "gelu vs PyTorch: %g", md);
    ss_graph_free(g);
    ss_st_close(st);
}

int main(void)
{
    {
        gc_input in[3] = {IN(3, 2, 3, 8), IN(1, 8), IN(1, 8)};
        run("layer_norm", f_ln, NULL, 3, in, -2, 2);
        gc_input in2[1] = {IN(2, 4, 6)};
        run("layer_norm no affine", f_ln_noaff, NULL, 1, in2, -2, 2);
        gc_input in3[1] = {IN(2, 4, 6)};
        run("l2_normalize", f_l2n, NULL, 1, in3, -2, 2);
        gc_input in4[1] = {IN(2, 3, 7)};
        run("softmax", f_softmax, NULL, 1, in4, -3, 3);
        gc_input in5[1] = {IN(2, 3, 7)};
        run("log_softmax", f_logsoftmax, NULL, 1, in5, -3, 3);
        gc_input in6[2] = {IN(2, 3, 5), IN(2, 3, 5)};
        run("mse", f_mse, NULL, 2, in6, -1, 1);
        gc_input in7[2] = {IN(2, 4, 6), IN(2, 5, 6)};
        run("cosine_sim", f_cos, NULL, 2, in7, -1, 1);
        gc_input in8[1] = {IN(2, 4, 6)};
        run("cosine_sim a==b", f_cos_self, NULL, 1, in8, -1, 1);
    }
    {
        int32_t t[5] = {0, 3, -1, 2, 4};
        ce_ctx c0 = {t, 0.0f}, c1 = {t, 0.1f};
        gc_input in[1] = {IN(2, 5, 5)};
        run("cross_entropy", f_ce, &c0, 1, in, -2, 2);
        gc_input in2[1] = {IN(2, 5, 5)};
        run("cross_entropy smoothing 0.1", f_ce, &c1, 1, in2, -2, 2);
    }
    {
        int32_t ids[6] = {1, 3, 1, 0, 4, 3};
        gc_input in[1] = {IN(2, 5, 4)};
        run("embedding", f_emb, ids, 1, in, -1, 1);
    }
    {
        at_ctx c = {2, NULL};
        gc_input in[3] = {IN(3, 2, 4, 6), IN(3, 2, 5, 6), IN(3, 2, 5, 6)};
        run("attention", f_attn, &c, 3, in, -1, 1);
        float mask[10] = {1, 1, 0, 1, 0, 0, 0, 0, 0, 0}; /* batch item 1: every key masked */
        at_ctx cm = {2, mask};
        gc_input in2[3] = {IN(3, 2, 4, 6), IN(3, 2, 5, 6), IN(3, 2, 5, 6)};
        run("attention masked", f_attn, &cm, 3, in2, -1, 1);
    }
    /* Exact values. */
    ss_graph *g = ss_graph_new();
    float x[3] = {1, 2, 3};
    ss_tensor *sm = ss_softmax(g, ss_wrap(g, x, 2, (int64_t[]){1, 3}));
    double z = exp(1) + exp(2) + exp(3);
    CHECK_NEAR(sm->data[2], exp(3) / z, 1e-6);
    float l4[4] = {1, 2, 3, 4};
    ss_tensor *ln = ss_layer_norm(g, ss_wrap(g, l4, 2, (int64_t[]){1, 4}), NULL, NULL, 0.0f);
    CHECK_NEAR(ln->data[0], -1.5 / sqrt(1.25), 1e-6);
    float lg[6] = {1, 0, 0, 0, 2, 0};
    int32_t t2[2] = {0, 2};
    ss_tensor *ce = ss_cross_entropy(g, ss_wrap(g, lg, 2, (int64_t[]){2, 3}), t2, 0.0f);
    double l0 = -(1 - log(exp(1) + 2)), l1 = -(0 - log(exp(2) + 2));
    CHECK_NEAR(ce->data[0], (l0 + l1) / 2, 1e-6);
    int32_t bad[2] = {0, 3};
    CHECK(ss_cross_entropy(g, ss_wrap(g, lg, 2, (int64_t[]){2, 3}), bad, 0.0f) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "target 3 at row 1") != NULL);
    ss_graph_reset(g);
    float a[4] = {1, 0, 0, 2}, b[4] = {0, 3, 5, 0};
    ss_tensor *cs = ss_cosine_sim(g, ss_wrap(g, a, 2, (int64_t[]){2, 2}), ss_wrap(g, b, 2, (int64_t[]){2, 2}), 1e-8f);
    CHECK_NEAR(cs->data[0], 0, 1e-6);
    CHECK_NEAR(cs->data[1], 1, 1e-6);
    CHECK_NEAR(cs->data[2], 1, 1e-6);
    /* attention with one key returns v */
    float q1[4] = {1, 2, 3, 4}, k1[4] = {0.5f, 1, 1, 0}, v1[4] = {7, 8, 9, 10};
    ss_tensor *o1 = ss_attention(g, ss_wrap(g, q1, 3, (int64_t[]){1, 1, 4}), ss_wrap(g, k1, 3, (int64_t[]){1, 1, 4}),
                                 ss_wrap(g, v1, 3, (int64_t[]){1, 1, 4}), 2, NULL);
    CHECK(o1 && o1->data[0] == 7 && o1->data[3] == 10);
    /* fast attention vs naive, T=33, 4 heads, with a mask */
    {
        int B = 2, T = 33, H = 4, Dh = 8, HD = 32;
        float *q = malloc(sizeof(float) * B * T * HD), *k = malloc(sizeof(float) * B * T * HD),
              *v = malloc(sizeof(float) * B * T * HD), *r = malloc(sizeof(float) * B * T * HD), m[66];
        gc_fill(q, B * T * HD, -1, 1, 1);
        gc_fill(k, B * T * HD, -1, 1, 2);
        gc_fill(v, B * T * HD, -1, 1, 3);
        for (int i = 0; i < 66; i++) m[i] = (i % 7 == 3) ? 0.0f : 1.0f;
        ss_tensor *o = ss_attention(g, ss_wrap(g, q, 3, (int64_t[]){B, T, HD}), ss_wrap(g, k, 3, (int64_t[]){B, T, HD}),
                                    ss_wrap(g, v, 3, (int64_t[]){B, T, HD}), H, m);
        attn_ref(q, k, v, B, T, T, H, Dh, m, r);
        double md = 0;
        for (int i = 0; i < B * T * HD; i++) md = fmax(md, fabs(o->data[i] - r[i]));
        CHECK_MSG(md < 1e-5, "attention vs reference: %g", md);
        free(q);
        free(k);
        free(v);
        free(r);
    }
    /* embedding: id out of range */
    float tab[8] = {0};
    int32_t ids[2] = {0, 4};
    CHECK(ss_embedding(g, ss_wrap(g, tab, 2, (int64_t[]){4, 2}), ids, 1, (int64_t[]){2}) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "id 4 at position 1") != NULL);
    ss_graph_free(g);
    check_ref_ops();
    TEST_MAIN_END();
}
