/* Gradient checks and exact values for the nn-level ops: layer_norm,
 * l2_normalize, softmax, log_softmax, cross_entropy, mse, cosine_sim,
 * embedding, attention (fast path held to the naive reference).
 * Tolerances: gradcheck.h defaults unless stated. */
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gradcheck.h"
#include "ops/nn_internal.h"

/* ---- op wrappers for the gradient checker ---------------------------------- */
static ss_tensor *f_ln(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_layer_norm(g, x[0], x[1], x[2], 1e-5f); }
static ss_tensor *f_ln_plain(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_layer_norm(g, x[0], NULL, NULL, 1e-5f); }
static ss_tensor *f_ln_gamma(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_layer_norm(g, x[0], x[1], NULL, 1e-5f); }
static ss_tensor *f_l2n(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_l2_normalize(g, x[0], 1e-12f); }
static ss_tensor *f_softmax(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_softmax(g, x[0]); }
static ss_tensor *f_logsoftmax(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_log_softmax(g, x[0]); }
static ss_tensor *f_mse(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_mse(g, x[0], x[1]); }
static ss_tensor *f_cos(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_cosine_sim(g, x[0], x[1], 1e-8f); }
static ss_tensor *f_cos_self(ss_graph *g, ss_tensor **x, void *c) { (void)c; return ss_cosine_sim(g, x[0], x[0], 1e-8f); }
static ss_tensor *f_softmax_strided(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    int perm[2] = {1, 0};
    return ss_softmax(g, ss_permute(g, x[0], perm));
}

typedef struct { const int32_t *t; float ls; } ce_ctx;
static ss_tensor *f_ce(ss_graph *g, ss_tensor **x, void *c)
{
    ce_ctx *k = c;
    return ss_cross_entropy(g, x[0], k->t, k->ls);
}

static ss_tensor *f_emb(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    static const int32_t ids[6] = {3, 0, 3, 5, 1, 3}; /* repeats accumulate */
    int64_t shape[2] = {2, 3};
    return ss_tanh(g, ss_embedding(g, x[0], ids, 2, shape));
}

typedef struct { int heads; const float *mask; } at_ctx;
static ss_tensor *f_attn(ss_graph *g, ss_tensor **x, void *c)
{
    at_ctx *k = c;
    return ss_attention(g, x[0], x[1], x[2], k->heads, k->mask);
}
static ss_tensor *f_attn_self(ss_graph *g, ss_tensor **x, void *c)
{
    at_ctx *k = c;
    return ss_attention(g, x[0], x[0], x[0], k->heads, k->mask);
}
/* x [B,T,3C] split into q, k, v column windows (used in place). */
static ss_tensor *f_attn_qkv(ss_graph *g, ss_tensor **x, void *c)
{
    at_ctx *k = c;
    int64_t C = x[0]->shape[2] / 3;
    return ss_attention(g, ss_slice(g, x[0], 2, 0, C), ss_slice(g, x[0], 2, C, C), ss_slice(g, x[0], 2, 2 * C, C),
                        k->heads, k->mask);
}
/* Overlapping windows of one tensor: q = x[..., 0:C], k = x[..., 1:C+1]
 * (forces the private copy path), v = x[..., 0:C] (same as q). */
static ss_tensor *f_attn_overlap(ss_graph *g, ss_tensor **x, void *c)
{
    at_ctx *k = c;
    int64_t C = x[0]->shape[2] - 1;
    ss_tensor *q = ss_slice(g, x[0], 2, 0, C);
    return ss_attention(g, q, ss_slice(g, x[0], 2, 1, C), q, k->heads, k->mask);
}
/* x [T,B,C] permuted to [B,T,C] (strided rows, used in place). */
static ss_tensor *f_attn_perm(ss_graph *g, ss_tensor **x, void *c)
{
    at_ctx *k = c;
    int perm[3] = {1, 0, 2};
    ss_tensor *p = ss_permute(g, x[0], perm);
    return ss_attention(g, p, p, ss_permute(g, x[1], perm), k->heads, k->mask);
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

static ss_tensor *leaf(ss_graph *g, int ndim, const int64_t *shape, const float *v, int grad)
{
    ss_tensor *t = ss_new(g, ndim, shape);
    int64_t n = t->numel;
    memcpy(t->data, v, (size_t)n * sizeof(float));
    if (grad) t->flags |= SS_T_REQUIRES_GRAD;
    return t;
}

static void gradchecks(void)
{
    gc_opts o = gc_default();
    {
        gc_input in[3] = {IN(3, 2, 3, 5), IN(1, 5), IN(1, 5)};
        run1("layer_norm gamma beta", f_ln, NULL, 3, in, -2, 2, o);
        gc_input in1[1] = {IN(2, 4, 6)};
        run1("layer_norm plain", f_ln_plain, NULL, 1, in1, -2, 2, o);
        gc_input in2[2] = {IN(2, 4, 6), IN(1, 6)};
        run1("layer_norm gamma only", f_ln_gamma, NULL, 2, in2, -2, 2, o);
    }
    {
        gc_input in[1] = {IN(2, 3, 5)};
        run1("l2_normalize", f_l2n, NULL, 1, in, -2, 2, o);
        gc_input in3[1] = {IN(3, 2, 3, 5)};
        run1("softmax", f_softmax, NULL, 1, in3, -3, 3, o);
        run1("log_softmax", f_logsoftmax, NULL, 1, in3, -3, 3, o);
        gc_input in4[1] = {IN(2, 5, 4)};
        run1("softmax strided input", f_softmax_strided, NULL, 1, in4, -3, 3, o);
    }
    {
        static const int32_t t[5] = {1, -1, 3, 0, 2};
        ce_ctx c0 = {t, 0.0f}, c1 = {t, 0.1f};
        gc_input in[1] = {IN(2, 5, 4)};
        run1("cross_entropy ls=0 ignore", f_ce, &c0, 1, in, -3, 3, o);
        run1("cross_entropy ls=0.1 ignore", f_ce, &c1, 1, in, -3, 3, o);
    }
    {
        gc_input in[2] = {IN(2, 3, 4), IN(2, 3, 4)};
        run1("mse", f_mse, NULL, 2, in, -2, 2, o);
        gc_input in2[2] = {IN(2, 3, 5), IN(2, 4, 5)};
        run1("cosine_sim", f_cos, NULL, 2, in2, -2, 2, o);
        gc_input in3[1] = {IN(2, 4, 5)};
        run1("cosine_sim a==b", f_cos_self, NULL, 1, in3, -2, 2, o);
    }
    {
        gc_input in[1] = {IN(2, 6, 4)};
        run1("embedding", f_emb, NULL, 1, in, -1, 1, o);
    }
    {
        /* B=2, Tq=3, Tk=4, H=2, Dh=3 */
        at_ctx c = {2, NULL};
        gc_input in[3] = {IN(3, 2, 3, 6), IN(3, 2, 4, 6), IN(3, 2, 4, 6)};
        run1("attention cross", f_attn, &c, 3, in, -1.5f, 1.5f, o);
        /* item 0 drops keys 1 and 3; item 1 drops every key (outputs 0) */
        static const float mask[8] = {1, 0, 1, 0, 0, 0, 0, 0};
        at_ctx cm = {2, mask};
        run1("attention masked", f_attn, &cm, 3, in, -1.5f, 1.5f, o);
        static const float mask2[6] = {1, 1, 0, 0, 1, 1};
        at_ctx cs = {3, mask2};
        gc_input in2[1] = {IN(3, 2, 3, 6)};
        run1("attention self q=k=v", f_attn_self, &cs, 1, in2, -1.5f, 1.5f, o);
        at_ctx c2 = {2, NULL};
        gc_input in3[1] = {IN(3, 2, 3, 12)};
        run1("attention qkv slices", f_attn_qkv, &c2, 1, in3, -1.5f, 1.5f, o);
        gc_input in4[1] = {IN(3, 2, 3, 5)};
        run1("attention overlapping views", f_attn_overlap, &c2, 1, in4, -1.5f, 1.5f, o);
        gc_input in5[2] = {IN(3, 3, 2, 4), IN(3, 3, 2, 4)};
        run1("attention permuted [T,B,C]", f_attn_perm, &c2, 2, in5, -1.5f, 1.5f, o);
    }
}

/* ---- exact values -------------------------------------------------------------- */
static void values(void)
{
    ss_graph *g = ss_graph_new();
    int64_t s3[1] = {3}, s4[1] = {4};
    /* softmax / log_softmax of [1,2,3] */
    float x3[3] = {1, 2, 3};
    ss_tensor *t = ss_wrap(g, x3, 1, s3);
    ss_tensor *sm = ss_softmax(g, t), *lsm = ss_log_softmax(g, t);
    CHECK_NEAR(sm->data[0], 0.09003057, 1e-7);
    CHECK_NEAR(sm->data[1], 0.24472847, 1e-7);
    CHECK_NEAR(sm->data[2], 0.66524096, 1e-7);
    CHECK_NEAR(lsm->data[0], -2.40760596, 1e-6);
    CHECK_NEAR(lsm->data[2], -0.40760596, 1e-6);
    /* stability: huge logits do not overflow */
    float big[3] = {1000, 1001, 1002};
    ss_tensor *smb = ss_softmax(g, ss_wrap(g, big, 1, s3));
    CHECK_NEAR(smb->data[2], 0.66524096, 1e-7);

    /* layer_norm of [1,2,3,4]: mean 2.5, biased var 1.25 */
    float x4[4] = {1, 2, 3, 4};
    ss_tensor *ln = ss_layer_norm(g, ss_wrap(g, x4, 1, s4), NULL, NULL, 1e-5f);
    double rs = 1.0 / sqrt(1.25 + 1e-5);
    CHECK_NEAR(ln->data[0], -1.5 * rs, 1e-6);
    CHECK_NEAR(ln->data[0], -1.341635, 1e-5);
    CHECK_NEAR(ln->data[3], 1.5 * rs, 1e-6);
    float gm[4] = {2, 2, 2, 2}, bt[4] = {1, 1, 1, 1};
    ss_tensor *ln2 = ss_layer_norm(g, ss_wrap(g, x4, 1, s4), ss_wrap(g, gm, 1, s4), ss_wrap(g, bt, 1, s4), 1e-5f);
    CHECK_NEAR(ln2->data[1], 1.0 - rs, 1e-6);

    /* l2_normalize */
    float v34[4] = {3, 4, 0, 0};
    int64_t s22[2] = {2, 2};
    ss_tensor *l2 = ss_l2_normalize(g, ss_wrap(g, v34, 2, s22), 1e-12f);
    CHECK(l2->data[0] == 0.6f && l2->data[1] == 0.8f && l2->data[2] == 0.0f && l2->data[3] == 0.0f);

    /* mse */
    float ma[3] = {1, 2, 3}, mb[3] = {1, 0, 0};
    ss_tensor *ms = ss_mse(g, ss_wrap(g, ma, 1, s3), ss_wrap(g, mb, 1, s3));
    CHECK(ms->ndim == 1 && ms->shape[0] == 1);
    CHECK_NEAR(ms->data[0], 13.0 / 3.0, 1e-6);

    /* cosine_sim: orthogonal, parallel, anti-parallel, 45 degrees, zero */
    float ca[4] = {1, 0, 2, 2}, cb[8] = {0, 3, 1, 1, -1, 0, 0, 0};
    int64_t sa[2] = {2, 2}, sb[2] = {4, 2};
    ss_tensor *cs = ss_cosine_sim(g, ss_wrap(g, ca, 2, sa), ss_wrap(g, cb, 2, sb), 1e-8f);
    CHECK(cs->shape[0] == 2 && cs->shape[1] == 4);
    CHECK_NEAR(cs->data[0], 0.0, 1e-7);
    CHECK_NEAR(cs->data[1], 0.70710678, 1e-6);
    CHECK_NEAR(cs->data[2], -1.0, 1e-6);
    CHECK_NEAR(cs->data[3], 0.0, 1e-7);
    CHECK_NEAR(cs->data[4], 0.70710678, 1e-6);
    CHECK_NEAR(cs->data[5], 1.0, 1e-6);
    CHECK_NEAR(cs->data[6], -0.70710678, 1e-6);

    /* cross-entropy, 2x3 by hand: logits [[1,2,3],[1,0,-1]], targets [2,1]
     * row 0: -log softmax([1,2,3])[2] = 0.40760596
     * row 1: -log softmax([1,0,-1])[1] = 1.40760596 -> mean 0.90760596
     * ls=0.1: mean_c(-log p) = lse - mean(z) = 1.40760596 for both rows:
     *   row 0: 0.9*0.40760596 + 0.1*1.40760596 = 0.50760596
     *   row 1: 1.40760596 -> mean 0.95760596 */
    ss_graph_reset(g);
    float lg[6] = {1, 2, 3, 1, 0, -1};
    int64_t s23[2] = {2, 3};
    int32_t tg[2] = {2, 1};
    ss_tensor *z = leaf(g, 2, s23, lg, 1);
    ss_tensor *ce = ss_cross_entropy(g, z, tg, 0.0f);
    CHECK(ce->ndim == 1 && ce->shape[0] == 1);
    CHECK_NEAR(ce->data[0], 0.90760596, 1e-6);
    CHECK_OK(ss_backward(g, ce));
    /* d/dz = (softmax - onehot) / 2 */
    CHECK_NEAR(z->grad[0], 0.09003057 / 2, 1e-7);
    CHECK_NEAR(z->grad[2], (0.66524096 - 1) / 2, 1e-7);
    CHECK_NEAR(z->grad[4], (0.24472847 - 1) / 2, 1e-7);
    CHECK_NEAR(ss_cross_entropy(g, z, tg, 0.1f)->data[0], 0.95760596, 1e-6);
    int32_t tg_ign[2] = {2, -1};
    CHECK_NEAR(ss_cross_entropy(g, z, tg_ign, 0.0f)->data[0], 0.40760596, 1e-6);
    /* PyTorch F.cross_entropy (float64) on a 3x4 case, with an ignored row
     * and label smoothing 0.1, and with label smoothing 0.25 */
    float lg3[12] = {0.3f, -1.2f, 2.5f, 0.7f, 1.1f, 0.4f, -0.6f, 0.0f, -2.0f, 1.5f, 0.2f, 0.9f};
    int64_t s34[2] = {3, 4};
    int32_t t3a[3] = {2, -1, 1}, t3b[3] = {2, 0, 1};
    CHECK_NEAR(ss_cross_entropy(g, ss_wrap(g, lg3, 2, s34), t3a, 0.1f)->data[0], 0.6032586415970826, 1e-6);
    CHECK_NEAR(ss_cross_entropy(g, ss_wrap(g, lg3, 2, s34), t3b, 0.25f)->data[0], 0.8719053571846129, 1e-6);
    /* every row ignored: loss 0, zero gradients */
    ss_graph_reset(g);
    z = leaf(g, 2, s23, lg, 1);
    int32_t none[2] = {-1, -1};
    ce = ss_cross_entropy(g, z, none, 0.1f);
    CHECK(ce->data[0] == 0.0f);
    CHECK_OK(ss_backward(g, ce));
    int nz = 0;
    for (int i = 0; i < 6; i++) nz += z->grad && z->grad[i] != 0.0f;
    CHECK(nz == 0);
    /* target out of range: SS_ERR_RANGE naming row and value */
    ss_graph_reset(g);
    int32_t badt[2] = {0, 3};
    CHECK(ss_cross_entropy(g, ss_wrap(g, lg, 2, s23), badt, 0.0f) == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_RANGE);
    CHECK_MSG(strstr(ss_graph_errmsg(g), "target 3 at row 1 outside [0,3)") != NULL, "%s", ss_graph_errmsg(g));
    ss_graph_reset(g);
    int32_t badt2[2] = {-2, 0};
    CHECK(ss_cross_entropy(g, ss_wrap(g, lg, 2, s23), badt2, 0.0f) == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_RANGE);

    /* embedding: values, shape, error */
    ss_graph_reset(g);
    float tab[6] = {0, 1, 10, 11, 20, 21};
    int64_t stab[2] = {3, 2}, sid[2] = {2, 2};
    int32_t ids[4] = {2, 0, 1, 2};
    ss_tensor *tt = leaf(g, 2, stab, tab, 1);
    ss_tensor *e = ss_embedding(g, tt, ids, 2, sid);
    CHECK(e->ndim == 3 && e->shape[0] == 2 && e->shape[1] == 2 && e->shape[2] == 2);
    CHECK(e->data[0] == 20 && e->data[1] == 21 && e->data[2] == 0 && e->data[5] == 11 && e->data[7] == 21);
    CHECK_OK(ss_backward(g, ss_sum_all(g, e)));
    CHECK(tt->grad[0] == 1 && tt->grad[2] == 1 && tt->grad[4] == 2 && tt->grad[5] == 2);
    int32_t badid[4] = {2, 0, 3, 1};
    CHECK(ss_embedding(g, tt, badid, 2, sid) == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_RANGE);
    CHECK_MSG(strstr(ss_graph_errmsg(g), "id 3 at position 2 outside [0,3)") != NULL, "%s", ss_graph_errmsg(g));

    /* attention with one key: every output row equals v (probability 1) */
    ss_graph_reset(g);
    float q1[2 * 3 * 4], k1[2 * 1 * 4], v1[2 * 1 * 4];
    gc_fill(q1, 24, -1, 1, 5);
    gc_fill(k1, 8, -1, 1, 6);
    gc_fill(v1, 8, -1, 1, 7);
    int64_t sq[3] = {2, 3, 4}, skv[3] = {2, 1, 4};
    ss_tensor *ao = ss_attention(g, ss_wrap(g, q1, 3, sq), ss_wrap(g, k1, 3, skv), ss_wrap(g, v1, 3, skv), 2, NULL);
    int same = 1;
    for (int b = 0; b < 2; b++)
        for (int t2 = 0; t2 < 3; t2++)
            for (int c = 0; c < 4; c++) same &= ao->data[(b * 3 + t2) * 4 + c] == v1[b * 4 + c];
    CHECK(same);
    /* fully masked item outputs zeros, not NaN */
    float m1[2] = {1, 0};
    ao = ss_attention(g, ss_wrap(g, q1, 3, sq), ss_wrap(g, k1, 3, skv), ss_wrap(g, v1, 3, skv), 2, m1);
    int zero = 1;
    for (int i = 12; i < 24; i++) zero &= ao->data[i] == 0.0f;
    CHECK(zero && ao->data[0] == v1[0]);
    /* mask values other than 0/1 are an error */
    float mbad[2] = {1, 0.5f};
    CHECK(ss_attention(g, ss_wrap(g, q1, 3, sq), ss_wrap(g, k1, 3, skv), ss_wrap(g, v1, 3, skv), 2, mbad) == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_RANGE);
    CHECK_MSG(strstr(ss_graph_errmsg(g), "key_mask[1,0] = 0.5") != NULL, "%s", ss_graph_errmsg(g));
    /* shape errors */
    ss_graph_reset(g);
    CHECK(ss_attention(g, ss_wrap(g, q1, 3, sq), ss_wrap(g, k1, 3, skv), ss_wrap(g, v1, 3, skv), 3, NULL) == NULL);
    CHECK(ss_graph_status(g) == SS_ERR_SHAPE);
    ss_graph_reset(g);
    CHECK(ss_mse(g, ss_wrap(g, x3, 1, s3), ss_wrap(g, x4, 1, s4)) == NULL);
    CHECK(strstr(ss_graph_errmsg(g), "mse: shapes [3] and [4] differ") != NULL);
    ss_graph_free(g);
}

/* ---- fast attention against the naive reference at model-like sizes ----------- */
static double max_rel(const float *a, const float *b, int64_t n)
{
    double scale = 0, err = 0;
    for (int64_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs((double)b[i]));
        err = fmax(err, fabs((double)a[i] - b[i]));
    }
    return err / (scale > 0 ? scale : 1);
}

static void attention_vs_ref(int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t Dh, int masked)
{
    int64_t HD = H * Dh, nq = B * Tq * HD, nk = B * Tk * HD;
    float *q = malloc(nq * sizeof(float)), *k = malloc(nk * sizeof(float)), *v = malloc(nk * sizeof(float));
    float *go = malloc(nq * sizeof(float)), *mask = malloc(B * Tk * sizeof(float));
    float *ro = malloc(nq * sizeof(float)), *rq = calloc(nq, sizeof(float)), *rk = calloc(nk, sizeof(float)),
          *rv = calloc(nk, sizeof(float));
    gc_fill(q, nq, -2, 2, 21);
    gc_fill(k, nk, -2, 2, 22);
    gc_fill(v, nk, -1, 1, 23);
    gc_fill(go, nq, -1, 1, 24);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Tk; j++) /* item 0 keeps all; others drop ~1/3; last drops all */
            mask[b * Tk + j] = b == B - 1 && B > 1 ? 0.0f : (b == 0 || (j * 7 + b) % 3) ? 1.0f : 0.0f;
    const float *m = masked ? mask : NULL;
    ss_attention_ref(q, k, v, m, B, Tq, Tk, H, Dh, ro, go, rq, rk, rv);
    ss_graph *g = ss_graph_new();
    int64_t sq[3] = {B, Tq, HD}, sk[3] = {B, Tk, HD};
    ss_tensor *tq = leaf(g, 3, sq, q, 1), *tk = leaf(g, 3, sk, k, 1), *tv = leaf(g, 3, sk, v, 1);
    ss_tensor *out = ss_attention(g, tq, tk, tv, (int)H, m);
    CHECK(out != NULL);
    if (out) {
        CHECK_OK(ss_backward_seed(g, out, go));
        double eo = max_rel(out->data, ro, nq), eq = max_rel(tq->grad, rq, nq), ek = max_rel(tk->grad, rk, nk),
               ev = max_rel(tv->grad, rv, nk);
        CHECK_MSG(eo < 1e-5 && eq < 1e-4 && ek < 1e-4 && ev < 1e-5,
                  "attention B=%lld Tq=%lld Tk=%lld H=%lld Dh=%lld mask=%d: rel err out %.3g dq %.3g dk %.3g dv %.3g",
                  (long long)B, (long long)Tq, (long long)Tk, (long long)H, (long long)Dh, masked, eo, eq, ek, ev);
        if (masked && B > 1) { /* the fully masked item: zero output and zero k/v gradients */
            int z = 1;
            for (int64_t i = (B - 1) * Tq * HD; i < nq; i++) z &= out->data[i] == 0.0f && tq->grad[i] == 0.0f;
            for (int64_t i = (B - 1) * Tk * HD; i < nk; i++) z &= tk->grad[i] == 0.0f && tv->grad[i] == 0.0f;
            CHECK(z);
        }
    }
    ss_graph_free(g);
    free(q), free(k), free(v), free(go), free(mask), free(ro), free(rq), free(rk), free(rv);
}

/* Same inputs, 1 thread vs 2 threads: identical bits (static schedules). */
static void thread_independence(void)
{
#ifdef _OPENMP
    int64_t B = 8, T = 72, HD = 32, n = B * T * HD; /* above the parallel thresholds */
    float *x = malloc(n * sizeof(float)), *go = malloc(n * sizeof(float)), *res[2][4];
    float gm[32], bt[32];
    gc_fill(x, n, -2, 2, 31);
    gc_fill(go, n, -1, 1, 32);
    gc_fill(gm, 32, 0.5f, 1.5f, 33);
    gc_fill(bt, 32, -0.5f, 0.5f, 34);
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 2 : 1);
        ss_graph *g = ss_graph_new();
        int64_t s[3] = {B, T, HD}, sd[1] = {32};
        ss_tensor *tx = leaf(g, 3, s, x, 1), *tg = leaf(g, 1, sd, gm, 1), *tb = leaf(g, 1, sd, bt, 1);
        ss_tensor *h = ss_layer_norm(g, tx, tg, tb, 1e-5f);
        ss_tensor *out = ss_attention(g, h, h, h, 4, NULL);
        CHECK_OK(ss_backward_seed(g, out, go));
        float *parts[4] = {out->data, tx->grad, tg->grad, tb->grad};
        int64_t len[4] = {n, n, 32, 32};
        for (int i = 0; i < 4; i++) {
            res[r][i] = malloc(len[i] * sizeof(float));
            memcpy(res[r][i], parts[i], len[i] * sizeof(float));
        }
        ss_graph_free(g);
    }
    omp_set_num_threads(saved);
    int64_t len[4] = {n, n, 32, 32};
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(memcmp(res[0][i], res[1][i], len[i] * sizeof(float)) == 0, "part %d differs across thread counts", i);
        free(res[0][i]);
        free(res[1][i]);
    }
    free(x);
    free(go);
#endif
}

/* The vectorisable exp used by softmax/attention/cross-entropy. */
static void exp_accuracy(void)
{
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f * (float)i / 200000.0f;
        double r = exp((double)x), e = fabs(ss_exp_nonpos(x) - r) / r;
        worst = e > worst ? e : worst;
    }
    CHECK_MSG(worst < 1.5e-7, "ss_exp_nonpos worst relative error %g", worst);
    CHECK(ss_exp_nonpos(0.0f) == 1.0f && ss_exp_nonpos(-INFINITY) == 0.0f && ss_exp_nonpos(-1e9f) == 0.0f);
    CHECK(isnan(ss_exp_nonpos(NAN)));
}

int main(void)
{
    exp_accuracy();
    gradchecks();
    values();
    attention_vs_ref(2, 7, 5, 3, 4, 1);
    attention_vs_ref(3, 50, 50, 4, 32, 1); /* vit-t shape (small batch) */
    attention_vs_ref(2, 50, 50, 4, 32, 0);
    attention_vs_ref(1, 9, 33, 2, 8, 1);
    thread_independence();
    TEST_MAIN_END();
}
