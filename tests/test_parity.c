/* PyTorch parity: the conv block, the transformer block (with and without a
 * key mask), convnet-s, vit-t and text-s against the committed reference
 * vectors of scripts/gen_reference.py (docs/REFERENCE_VECTORS.md).
 *
 * Tolerances (relative to the largest reference magnitude of each tensor):
 *   forward outputs, features, losses   2e-5
 *   full gradients, BN running stats    2e-4
 *   gradient fingerprints               2e-4 of fp[1] (sum |g|)
 *   5 AdamW losses                      2e-3
 * Every comparison's worst error is printed with SS_PARITY_VERBOSE=1. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "selfsup/nn.h"
#include "selfsup/optim.h"
#include "selfsup/safetensors.h"
#include "testutil.h"

static int verbose;

static ss_safetensors *open_ref(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ref/%s.safetensors", tu_data_dir(), name);
    ss_safetensors *st = NULL;
    if (ss_st_open(path, &st) != SS_OK) {
        fprintf(stderr, "cannot open %s: %s\n", path, ss_errmsg());
        CHECK(0);
        return NULL;
    }
    return st;
}

/* Reads a float tensor of whatever shape into malloc'd memory. */
static float *read_any(ss_safetensors *st, const char *key, int64_t *n)
{
    const ss_st_entry *e = ss_st_find(st, key);
    if (!e) {
        CHECK_MSG(0, "reference has no '%s'", key);
        return NULL;
    }
    int64_t cnt = 1;
    for (int i = 0; i < e->ndim; i++) cnt *= e->shape[i];
    float *d = malloc((size_t)(cnt ? cnt : 1) * sizeof(float));
    if (ss_st_read_f32(st, key, d, e->ndim, e->shape) != SS_OK) {
        CHECK_MSG(0, "%s: %s", key, ss_errmsg());
        free(d);
        return NULL;
    }
    if (n) *n = cnt;
    return d;
}

/* max |a-b| / max |ref| */
static void cmp(const char *what, const float *got, const float *ref, int64_t n, double tol)
{
    if (!got || !ref) {
        CHECK_MSG(0, "%s: missing data", what);
        return;
    }
    double md = 0, mr = 1e-12;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    double rel = md / mr;
    if (verbose) printf("  %-48s rel err %.2e\n", what, rel);
    CHECK_MSG(rel <= tol, "%s: relative error %.3g > %.1g", what, rel, tol);
}

static void cmp_key(ss_safetensors *st, const char *key, const float *got, double tol)
{
    int64_t n = 0;
    float *ref = read_any(st, key, &n);
    cmp(key, got, ref, n, tol);
    free(ref);
}

static void fingerprint(const char *name, const float *x, int64_t n, double fp[6])
{
    memset(fp, 0, 6 * sizeof(double));
    char pn[3][300];
    for (int k = 0; k < 3; k++) snprintf(pn[k], sizeof pn[k], "%s#%d", name, k);
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        fp[0] += v;
        fp[1] += fabs(v);
        fp[2] += v * v;
        for (int k = 0; k < 3; k++) fp[3 + k] += v * (double)ss_hash_uniform(pn[k], i);
    }
}

static void cmp_fp(ss_safetensors *st, const char *prefix, const char *name, const float *x, int64_t n, double tol)
{
    char key[320];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    int64_t cnt;
    float *ref = read_any(st, key, &cnt);
    if (!ref) return;
    double fp[6];
    fingerprint(name, x, n, fp);
    double worst = 0, scale = fabs(ref[1]) > 1e-30 ? fabs(ref[1]) : 1e-30;
    for (int k = 0; k < 6; k++) {
        double s = (k == 2) ? fabs(ref[2]) + 1e-30 : scale;
        double e = fabs(fp[k] - ref[k]) / s;
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    if (verbose > 1) printf("  %-48s fp rel err %.2e\n", key, worst);
    CHECK_MSG(worst <= tol, "%s: fingerprint relative error %.3g > %.1g", key, worst, tol);
    free(ref);
}

/* Check every parameter's hash-init fingerprint and gradient. */
static void check_params(ss_safetensors *st, ss_params *p, int init_only)
{
    double worst_fp = 0;
    (void)worst_fp;
    for (int i = 0; i < ss_params_count(p); i++) {
        ss_tensor *t = ss_params_at(p, i);
        if (!(t->flags & SS_T_PARAM)) continue;
        if (init_only) {
            cmp_fp(st, "init_fp.", t->name, t->data, t->numel, 1e-5);
            continue;
        }
        char key[320];
        snprintf(key, sizeof key, "grad.%s", t->name);
        if (ss_st_find(st, key)) cmp_key(st, key, t->grad, 2e-4);
        cmp_fp(st, "fp.", t->name, t->grad, t->numel, 2e-4);
    }
}

static void check_hash(ss_safetensors *st)
{
    float ref[8];
    CHECK_OK(ss_st_read_f32(st, "hash_init_test", ref, 1, (int64_t[]){8}));
    for (int i = 0; i < 8; i++) CHECK(ss_hash_uniform("test", i) == ref[i]);
}

/* ---- conv block ------------------------------------------------------------ */
static void conv_block_case(const char *file, int eval)
{
    ss_safetensors *st = open_ref(file);
    if (!st) return;
    if (verbose) printf("%s\n", file);
    ss_params *p = ss_params_new();
    ss_conv_bn m;
    CHECK_OK(ss_conv_bn_init(&m, p, "", "conv", "bn", 3, 8, 3, 1, 1));
    CHECK_OK(ss_params_finalize(p));
    ss_params_init(p, SS_INIT_HASH, 0);
    check_params(st, p, 1);
    if (eval) {
        CHECK_OK(ss_st_read_f32(st, "buf.bn.running_mean", m.rmean->data, 1, (int64_t[]){8}));
        CHECK_OK(ss_st_read_f32(st, "buf.bn.running_var", m.rvar->data, 1, (int64_t[]){8}));
    }
    ss_graph *g = ss_graph_new();
    ss_graph_set_training(g, !eval);
    float *in = read_any(st, "input", NULL), *seed = read_any(st, "seed_grad", NULL);
    ss_tensor *x = ss_wrap(g, in, 4, (int64_t[]){4, 3, 8, 8});
    x->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *y = ss_conv_bn_forward(g, &m, x, 1);
    CHECK(y != NULL);
    if (y) {
        cmp_key(st, "out", y->data, 2e-5);
        CHECK_OK(ss_backward_seed(g, y, seed));
        cmp_key(st, "grad.input", x->grad, 2e-4);
        check_params(st, p, 0);
        cmp_key(st, "buf.bn.running_mean", m.rmean->data, 2e-4);
        cmp_key(st, "buf.bn.running_var", m.rvar->data, 2e-4);
    }
    free(in);
    free(seed);
    ss_graph_free(g);
    ss_params_free(p);
    ss_st_close(st);
}

/* ---- transformer block ----------------------------------------------------------- */
static void block_case(const char *file, int masked)
{
    ss_safetensors *st = open_ref(file);
    if (!st) return;
    if (verbose) printf("%s\n", file);
    ss_params *p = ss_params_new();
    ss_block m;
    CHECK_OK(ss_block_init(&m, p, "", 16, 4, 64));
    CHECK_OK(ss_params_finalize(p));
    ss_params_init(p, SS_INIT_HASH, 0);
    check_params(st, p, 1);
    ss_graph *g = ss_graph_new();
    float *in = read_any(st, "input", NULL), *seed = read_any(st, "seed_grad", NULL);
    float *mask = masked ? read_any(st, "key_mask", NULL) : NULL;
    ss_tensor *x = ss_wrap(g, in, 3, (int64_t[]){2, 5, 16});
    x->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *y = ss_block_forward(g, &m, x, mask);
    CHECK_MSG(y != NULL, "%s", ss_graph_errmsg(g));
    if (y) {
        cmp_key(st, "out", y->data, 2e-5);
        CHECK_OK(ss_backward_seed(g, y, seed));
        cmp_key(st, "grad.input", x->grad, 2e-4);
        check_params(st, p, 0);
    }
    free(in);
    free(seed);
    free(mask);
    ss_graph_free(g);
    ss_params_free(p);
    ss_st_close(st);
}

/* ---- classifiers ------------------------------------------------------------------ */
typedef struct clf {
    ss_params *p;
    ss_encoder *enc;
    ss_linear_layer head;
} clf;

static int clf_new(clf *c, const ss_encoder_config *cfg)
{
    c->p = ss_params_new();
    if (ss_encoder_new(cfg, c->p, "encoder.", &c->enc) != SS_OK) {
        CHECK_MSG(0, "encoder: %s", ss_errmsg());
        return 0;
    }
    CHECK_OK(ss_linear_init(&c->head, c->p, "head", c->enc->feat_dim, 10, 1));
    CHECK_OK(ss_params_finalize(c->p));
    ss_params_init(c->p, SS_INIT_HASH, 0);
    return 1;
}

static void clf_free(clf *c)
{
    ss_encoder_free(c->enc);
    ss_params_free(c->p);
}

/* Forward: features then logits; text when ids != NULL. */
static ss_tensor *clf_forward(ss_graph *g, clf *c, ss_tensor *x, const int32_t *ids, int64_t n, int t,
                              ss_tensor **feat)
{
    ss_tensor *f;
    if (ids) {
        ss_tensor *h = ss_text_encode(g, c->enc, ids, n, t);
        f = h ? ss_reshape(g, ss_slice(g, h, 1, 0, 1), 2, (int64_t[]){n, h->shape[2]}) : NULL;
    } else {
        f = c->enc->forward(g, c->enc, x);
    }
    *feat = f;
    return ss_linear_forward(g, &c->head, f);
}

static void classifier_case(const char *file, const ss_encoder_config *cfg, int ndim, const int64_t *in_shape,
                            int text)
{
    ss_safetensors *st = open_ref(file);
    if (!st) return;
    if (verbose) printf("%s\n", file);
    check_hash(st);
    clf c;
    if (!clf_new(&c, cfg)) return;
    check_params(st, c.p, 1);
    int64_t nin = 1;
    for (int i = 0; i < ndim; i++) nin *= in_shape[i];
    int64_t N = in_shape[0];
    int32_t *target = malloc((size_t)N * sizeof(int32_t));
    CHECK_OK(ss_st_read_i32(st, "target", target, N));
    float *in = NULL;
    int32_t *ids = NULL;
    if (text) {
        ids = malloc((size_t)nin * sizeof(int32_t));
        CHECK_OK(ss_st_read_i32(st, "input", ids, nin));
    } else {
        in = read_any(st, "input", NULL);
    }
    ss_graph *g = ss_graph_new();
    ss_tensor *x = text ? NULL : ss_wrap(g, in, ndim, in_shape);
    if (x) x->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *feat = NULL;
    ss_tensor *logits = clf_forward(g, &c, x, ids, N, text ? (int)in_shape[1] : 0, &feat);
    ss_tensor *loss = ss_cross_entropy(g, logits, target, 0.0f);
    CHECK_MSG(loss != NULL, "%s forward: %s", file, ss_graph_errmsg(g));
    if (loss) {
        cmp_key(st, "feat", feat->data, 2e-5);
        cmp_key(st, "out", logits->data, 2e-5);
        cmp_key(st, "loss", loss->data, 2e-5);
        CHECK_OK(ss_backward(g, loss));
        if (x && ss_st_find(st, "grad.input")) cmp_key(st, "grad.input", x->grad, 2e-4);
        check_params(st, c.p, 0);
        for (int i = 0; i < ss_params_count(c.p); i++) {
            ss_tensor *t = ss_params_at(c.p, i);
            char key[320];
            snprintf(key, sizeof key, "buf.%s", t->name);
            if ((t->flags & SS_T_BUFFER) && ss_st_find(st, key)) cmp_key(st, key, t->data, 2e-4);
        }
    }
    /* 5 AdamW steps from a fresh init on the same batch. */
    ss_params_init(c.p, SS_INIT_HASH, 0);
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    oc.weight_decay = 0.05f;
    ss_optimizer *opt = NULL;
    CHECK_OK(ss_opt_new(c.p, &oc, &opt));
    float losses[5] = {0};
    for (int s = 0; s < 5 && opt; s++) {
        ss_graph_reset(g);
        ss_params_zero_grad(c.p);
        x = text ? NULL : ss_wrap(g, in, ndim, in_shape);
        logits = clf_forward(g, &c, x, ids, N, text ? (int)in_shape[1] : 0, &feat);
        loss = ss_cross_entropy(g, logits, target, 0.0f);
        if (!loss) break;
        losses[s] = loss->data[0];
        if (ss_backward(g, loss) != SS_OK) break;
        ss_opt_step(opt, 1e-3f);
    }
    cmp_key(st, "adamw_losses", losses, 2e-3);
    if (verbose) printf("  adamw losses %.5f %.5f %.5f %.5f %.5f\n", losses[0], losses[1], losses[2], losses[3], losses[4]);
    ss_opt_free(opt);
    free(in);
    free(ids);
    free(target);
    ss_graph_free(g);
    clf_free(&c);
    ss_st_close(st);
}

static void vit_pos_case(void)
{
    ss_safetensors *st = open_ref("vit_t");
    if (!st) return;
    float pos[50 * 128];
    memset(pos, 0, sizeof pos);
    ss_sincos_pos_embed_2d(pos + 128, 128, 7, 7);
    cmp_key(st, "pos_embed", pos, 1e-6);
    ss_st_close(st);
}

int main(void)
{
    verbose = getenv("SS_PARITY_VERBOSE") ? atoi(getenv("SS_PARITY_VERBOSE")) : 0;
    if (verbose < 1 && getenv("SS_PARITY_VERBOSE")) verbose = 1;
    conv_block_case("conv_block", 0);
    conv_block_case("conv_block_eval", 1);
    block_case("transformer_block", 0);
    block_case("transformer_block_mask", 1);
    vit_pos_case();
    ss_encoder_config cn = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    classifier_case("convnet_s", &cn, 4, (int64_t[]){8, 1, 28, 28}, 0);
    ss_encoder_config vt = {.kind = "vit-t", .in_chans = 1, .img_size = 28};
    classifier_case("vit_t", &vt, 4, (int64_t[]){4, 1, 28, 28}, 0);
    ss_encoder_config ts = {.kind = "text-s", .vocab = 512, .seq_len = 16};
    classifier_case("text_s", &ts, 2, (int64_t[]){4, 16}, 1);
    TEST_MAIN_END();
}
