/* Optimisers, schedule, clipping, EMA and determinism: exact values against
 * hand-computed updates. */
#include <math.h>
#include <string.h>

#include "selfsup/optim.h"
#include "selfsup/train.h"
#include "testutil.h"

/* A store with w [2,2] (decayed) and b [2] (not decayed). */
static ss_params *tiny(ss_tensor **w, ss_tensor **b)
{
    ss_params *p = ss_params_new();
    *w = ss_params_add(p, "w", 2, (int64_t[]){2, 2}, SS_T_PARAM);
    *b = ss_params_add(p, "b", 1, (int64_t[]){2}, SS_T_PARAM);
    ss_params_finalize(p);
    for (int i = 0; i < 4; i++) {
        (*w)->data[i] = 1.0f + i;
        (*w)->grad[i] = 0.5f - 0.25f * i;
    }
    for (int i = 0; i < 2; i++) {
        (*b)->data[i] = -1.0f;
        (*b)->grad[i] = 2.0f;
    }
    return p;
}

static void test_sgd(int nesterov)
{
    ss_tensor *w, *b;
    ss_params *p = tiny(&w, &b);
    CHECK(!(w->flags & SS_T_NO_DECAY) && (b->flags & SS_T_NO_DECAY));
    ss_opt_config c = ss_opt_defaults(SS_OPT_SGD);
    c.momentum = 0.9f;
    c.weight_decay = 0.1f;
    c.nesterov = nesterov;
    ss_optimizer *o;
    CHECK_OK(ss_opt_new(p, &c, &o));
    float lr = 0.5f;
    /* two steps with the same gradient; reference in double */
    double wr[4], mw[4] = {0}, br[2], mb[2] = {0};
    for (int i = 0; i < 4; i++) wr[i] = w->data[i];
    for (int i = 0; i < 2; i++) br[i] = b->data[i];
    for (int s = 0; s < 2; s++) {
        ss_opt_step(o, lr);
        for (int i = 0; i < 4; i++) {
            double gk = (0.5 - 0.25 * i) + 0.1 * wr[i];
            mw[i] = 0.9 * mw[i] + gk;
            wr[i] -= lr * (nesterov ? gk + 0.9 * mw[i] : mw[i]);
        }
        for (int i = 0; i < 2; i++) {
            double gk = 2.0;
            mb[i] = 0.9 * mb[i] + gk;
            br[i] -= lr * (nesterov ? gk + 0.9 * mb[i] : mb[i]);
        }
    }
    for (int i = 0; i < 4; i++) CHECK_NEAR(w->data[i], wr[i], 1e-5);
    for (int i = 0; i < 2; i++) CHECK_NEAR(b->data[i], br[i], 1e-5);
    ss_opt_free(o);
    ss_params_free(p);
}

static void test_adamw(void)
{
    ss_tensor *w, *b;
    ss_params *p = tiny(&w, &b);
    ss_opt_config c = ss_opt_defaults(SS_OPT_ADAMW);
    c.weight_decay = 0.05f;
    ss_optimizer *o;
    CHECK_OK(ss_opt_new(p, &c, &o));
    double wr[4], m[4] = {0}, v[4] = {0};
    for (int i = 0; i < 4; i++) wr[i] = w->data[i];
    for (int t = 1; t <= 3; t++) {
        ss_opt_step(o, 1e-2f);
        for (int i = 0; i < 4; i++) {
            double g = 0.5 - 0.25 * i;
            wr[i] *= 1 - 1e-2 * 0.05;
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            wr[i] -= 1e-2 * (m[i] / (1 - pow(0.9, t))) / (sqrt(v[i] / (1 - pow(0.999, t))) + 1e-8);
        }
    }
    for (int i = 0; i < 4; i++) CHECK_NEAR(w->data[i], wr[i], 1e-5);
    CHECK(ss_opt_steps(o) == 3);
    /* the bias is not decayed: after 3 Adam steps with constant g, b = -1 - 3*lr */
    CHECK_NEAR(b->data[0], -1.0 - 3e-2, 1e-5);
    /* lr scale 0 freezes a tensor */
    ss_params_set_lr_scale(p, "b", 0.0f);
    float before = b->data[1];
    ss_opt_step(o, 1e-2f);
    CHECK(b->data[1] == before);
    ss_opt_free(o);
    ss_params_free(p);
}

static void test_lars(void)
{
    ss_tensor *w, *b;
    ss_params *p = tiny(&w, &b);
    ss_opt_config c = ss_opt_defaults(SS_OPT_LARS);
    c.weight_decay = 1e-3f;
    c.lars_eta = 0.02f;
    ss_optimizer *o;
    CHECK_OK(ss_opt_new(p, &c, &o));
    double wn = 0, gn = 0, w0[4];
    for (int i = 0; i < 4; i++) {
        w0[i] = w->data[i];
        wn += w0[i] * w0[i];
        gn += (0.5 - 0.25 * i) * (0.5 - 0.25 * i);
    }
    wn = sqrt(wn);
    gn = sqrt(gn);
    double trust = 0.02 * wn / (gn + 1e-3 * wn);
    ss_opt_step(o, 0.1f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(w->data[i], w0[i] - 0.1 * trust * ((0.5 - 0.25 * i) + 1e-3 * w0[i]), 1e-5);
    CHECK_NEAR(b->data[0], -1.0 - 0.1 * 2.0, 1e-6); /* not adapted, not decayed */
    ss_opt_free(o);
    ss_params_free(p);
}

static void test_schedule_clip_ema(void)
{
    CHECK_NEAR(ss_lr_cosine(0, 100, 10, 1.0f, 0.0f), 0.1, 1e-6);
    CHECK_NEAR(ss_lr_cosine(9, 100, 10, 1.0f, 0.0f), 1.0, 1e-6);
    CHECK_NEAR(ss_lr_cosine(10, 100, 10, 1.0f, 0.0f), 1.0, 1e-6);
    CHECK_NEAR(ss_lr_cosine(55, 100, 10, 1.0f, 0.0f), 0.5, 1e-6);
    CHECK_NEAR(ss_lr_cosine(100, 100, 10, 1.0f, 0.1f), 0.1, 1e-6);
    ss_tensor *w, *b;
    ss_params *p = tiny(&w, &b);
    double n = ss_grad_norm(p);
    CHECK_NEAR(n, sqrt(0.25 + 0.0625 + 0 + 0.0625 + 8), 1e-6);
    double n2 = ss_clip_grad_norm(p, 1.0);
    CHECK_NEAR(n2, n, 1e-9);
    CHECK_NEAR(ss_grad_norm(p), 1.0, 1e-4);
    /* EMA: target = 0.9 target + 0.1 online */
    ss_tensor *w2, *b2;
    ss_params *t = tiny(&w2, &b2);
    for (int i = 0; i < 4; i++) w2->data[i] = 0;
    ss_ema_update(t, "", p, "", 0.9f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(w2->data[i], 0.1 * (1.0 + i), 1e-6);
    ss_params_free(t);
    ss_params_free(p);
}

/* Three supervised steps of convnet-s twice from the same seed: same bits. */
static void run_steps(float *out, int64_t *n)
{
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    ss_model m;
    CHECK_OK(ss_model_create(&m, &ec, 10));
    CHECK_OK(ss_model_finalize(&m, 42));
    ss_opt_config c = ss_opt_defaults(SS_OPT_ADAMW);
    ss_optimizer *o;
    CHECK_OK(ss_opt_new(m.p, &c, &o));
    ss_graph *g = ss_graph_new();
    ss_rng r;
    ss_rng_seed(&r, 5, 0);
    float *x = malloc(sizeof(float) * 16 * 784);
    int32_t y[16];
    for (int i = 0; i < 16 * 784; i++) x[i] = ss_rng_normal(&r);
    for (int i = 0; i < 16; i++) y[i] = i % 10;
    for (int s = 0; s < 3; s++) {
        ss_graph_reset(g);
        ss_params_zero_grad(m.p);
        ss_tensor *xt = ss_wrap(g, x, 4, (int64_t[]){16, 1, 28, 28});
        ss_tensor *l = ss_cross_entropy(g, ss_model_logits(g, &m, xt), y, 0.1f);
        CHECK_OK(ss_backward(g, l));
        ss_opt_step(o, 1e-3f);
    }
    float *v = ss_params_values(m.p, n);
    memcpy(out, v, sizeof(float) * (size_t)*n);
    free(x);
    ss_graph_free(g);
    ss_opt_free(o);
    ss_model_free(&m);
}

int main(void)
{
    test_sgd(0);
    test_sgd(1);
    test_adamw();
    test_lars();
    test_schedule_clip_ema();
    float *a = malloc(sizeof(float) * 200000), *b = malloc(sizeof(float) * 200000);
    int64_t na = 0, nb = 0;
    run_steps(a, &na);
    run_steps(b, &nb);
    CHECK(na == nb && na > 100000 && na < 200000);
    CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)na) == 0, "same seed and thread count must give the same bits");
    free(a);
    free(b);
    TEST_MAIN_END();
}
