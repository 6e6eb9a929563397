/* The step benchmarks of REFERENCE_MODELS.md on synthetic inputs of the
 * reference shapes: one forward + backward + AdamW update per step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "selfsup/runtime.h"
#include "selfsup/ssl.h"
#include "selfsup/text.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct sup_state {
    ss_model *m;
} sup_state;

static ss_tensor *sup_loss(void *st, ss_graph *g, const ss_model *m, const ss_batch *b, double *c, double *n)
{
    (void)st;
    (void)c;
    (void)n;
    ss_tensor *x = ss_wrap(g, b->x[0], 4, (int64_t[]){b->n, b->c, b->h, b->w});
    return ss_cross_entropy(g, ss_model_logits(g, m, x), b->y, 0.0f);
}

/* MLM step on text-s: 64 x 128 tokens, 15% masked, tied decoder. */
static ss_status bench_mlm(int steps, ss_step_bench_result *r)
{
    ss_encoder_config ec = {.kind = "text-s", .vocab = 8192, .seq_len = 128};
    ss_model m;
    ss_status s = ss_model_create(&m, &ec, 0);
    ss_mlm_head head;
    if (!s) s = ss_mlm_head_init(&head, m.p, m.enc);
    if (!s) s = ss_model_finalize(&m, 1);
    if (s) return s;
    const int B = 64, T = 128;
    int32_t *ids = malloc(sizeof(int32_t) * B * T), *in = malloc(sizeof(int32_t) * B * T),
            *tg = malloc(sizeof(int32_t) * B * T);
    ss_rng rng;
    ss_rng_seed(&rng, 1, 2);
    for (int i = 0; i < B * T; i++) ids[i] = (i % T == 0) ? SS_TOK_CLS : 5 + (int)ss_rng_below(&rng, 8000);
    for (int b = 0; b < B; b++) ss_mlm_mask(ids + b * T, T, 8192, 0.15f, &rng, in + b * T, tg + b * T);
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    ss_optimizer *opt = NULL;
    ss_graph *g = ss_graph_new();
    if ((s = ss_opt_new(m.p, &oc, &opt))) goto out;
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int i = 0; i < steps + 3; i++) {
        double t0 = now_s();
        ss_graph_reset(g);
        ss_params_zero_grad(m.p);
        double f0 = ss_flops_get();
        ss_tensor *loss = ss_mlm_loss(g, &head, &m, in, tg, B, T);
        if (!loss || (s = ss_backward(g, loss))) {
            if (!s) s = ss_seterr(ss_graph_status(g), "%s", ss_graph_errmsg(g));
            break;
        }
        ss_opt_step(opt, 1e-3f);
        if (i >= 3) t[i - 3] = now_s() - t0;
        r->flops_per_step = ss_flops_get() - f0;
    }
    if (!s) {
        r->sec_per_step = median(t, steps);
        r->items_per_step = B * T;
        r->unit = "tokens";
    }
    free(t);
out:
    ss_opt_free(opt);
    ss_graph_free(g);
    ss_model_free(&m);
    free(ids);
    free(in);
    free(tg);
    return s;
}

ss_status ss_step_bench(const char *name, int steps, ss_step_bench_result *r)
{
    memset(r, 0, sizeof *r);
    if (steps < 1) steps = 1;
    if (!strcmp(name, "step-mlm")) return bench_mlm(steps, r);
    const ss_method *meth = NULL;
    const char *enc = "convnet-s";
    int batch = 256, images_per = 256;
    if (!strcmp(name, "step-convnet-sup")) {
    } else if (!strcmp(name, "step-rotation")) {
        meth = ss_method_find("rotation");
    } else if (!strcmp(name, "step-simclr")) {
        meth = ss_method_find("simclr");
    } else if (!strcmp(name, "step-mae")) {
        meth = ss_method_find("mae");
        enc = "vit-t";
    } else {
        return ss_seterr(SS_ERR_INVALID, "unknown benchmark '%s'", name);
    }
    ss_encoder_config ec = {.kind = enc, .in_chans = 1, .img_size = 28};
    ss_model m;
    void *state = NULL;
    ss_method_opts mo;
    memset(&mo, 0, sizeof mo);
    ss_status s = ss_model_create(&m, &ec, meth ? 0 : 10);
    if (!s && meth) s = meth->create(&m, &mo, &state);
    if (!s) s = ss_model_finalize(&m, 1);
    if (!s && meth && meth->setup) s = meth->setup(state, &m);
    if (s) return s;
    int views = meth ? meth->views : 1;
    ss_batch b;
    memset(&b, 0, sizeof b);
    b.n = batch;
    b.c = 1;
    b.h = b.w = 28;
    b.views = views;
    ss_rng rng;
    ss_rng_seed(&rng, 3, 4);
    for (int v = 0; v < views; v++) {
        b.x[v] = malloc(sizeof(float) * (size_t)batch * 784);
        for (int i = 0; i < batch * 784; i++) b.x[v][i] = ss_rng_normal(&rng);
    }
    b.y = malloc(sizeof(int32_t) * (size_t)batch);
    b.idx = malloc(sizeof(int32_t) * (size_t)batch);
    for (int i = 0; i < batch; i++) {
        b.y[i] = i % 10;
        b.idx[i] = i;
    }
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    ss_optimizer *opt = NULL;
    ss_graph *g = ss_graph_new();
    double *t = malloc(sizeof(double) * (size_t)steps);
    if ((s = ss_opt_new(m.p, &oc, &opt))) goto out;
    for (int i = 0; i < steps + 3; i++) {
        double t0 = now_s(), c = 0, n = 0;
        ss_graph_reset(g);
        ss_graph_set_seed(g, 1, (uint64_t)i);
        ss_params_zero_grad(m.p);
        b.index_in_epoch = i;
        double f0 = ss_flops_get();
        ss_tensor *loss = meth ? meth->loss(state, g, &m, &b, &c, &n) : sup_loss(NULL, g, &m, &b, &c, &n);
        if (!loss || (s = ss_backward(g, loss))) {
            if (!s) s = ss_seterr(ss_graph_status(g), "%s", ss_graph_errmsg(g));
            break;
        }
        ss_opt_step(opt, 1e-3f);
        if (meth && meth->after_step) meth->after_step(state, &m, 0.5);
        if (i >= 3) t[i - 3] = now_s() - t0;
        r->flops_per_step = ss_flops_get() - f0;
    }
    if (!s) {
        r->sec_per_step = median(t, steps);
        r->items_per_step = images_per;
        r->unit = "images";
    }
out:
    free(t);
    ss_opt_free(opt);
    ss_graph_free(g);
    if (meth && meth->destroy) meth->destroy(state);
    ss_model_free(&m);
    for (int v = 0; v < views; v++) free(b.x[v]);
    free(b.y);
    free(b.idx);
    return s;
}
