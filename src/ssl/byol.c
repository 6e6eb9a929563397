/* BYOL (Grill et al. 2020): online encoder + projector + predictor; target
 * encoder + projector is an exponential moving average of the online one
 * (tau from ema_base to 1 on a cosine); loss 2 - 2 cos(q(v1), sg(z'(v2)))
 * symmetrised. Heads: projector, predictor; the target lives in its own
 * store with the same names. */
#include <math.h>
#include <stdlib.h>

#include "ssl/ssl_internal.h"

typedef struct byol_state {
    ss_mlp proj, pred;
    ss_model target;
    ss_mlp tproj;
    float ema_base;
    int have_target;
} byol_state;

static const char *byol_augment(int c, int h)
{
    (void)h;
    if (c == 3) return "rrc:0.2-1,hflip,jitter:0.4:0.4:0.2:0.1@0.8,gray:0.2,blur:0.1-2@0.5";
    return "rrc:0.3-1,hflip,jitter:0.4:0.4,noise:0.05";
}

static ss_status byol_create(ss_model *m, const ss_method_opts *o, void **state)
{
    byol_state *s = calloc(1, sizeof *s);
    if (!s) return ss_seterr(SS_ERR_NOMEM, "byol: out of memory");
    *state = s;
    s->ema_base = o->ema_base > 0 ? o->ema_base : 0.99f;
    int hid = o->proj_hidden > 0 ? o->proj_hidden : 256, out = o->proj_dim > 0 ? o->proj_dim : 64;
    ss_status st = ss_mlp_init(&s->proj, m->p, "projector", m->enc->feat_dim, hid, out);
    if (!st) st = ss_mlp_init(&s->pred, m->p, "predictor", out, hid, out);
    if (st) return st;
    /* Target network: same encoder and projector, its own store. */
    st = ss_model_create(&s->target, &m->ecfg, 0);
    if (!st) st = ss_mlp_init(&s->tproj, s->target.p, "projector", m->enc->feat_dim, hid, out);
    if (!st) st = ss_params_finalize(s->target.p);
    s->have_target = 1;
    return st;
}

static ss_status byol_setup(void *state, ss_model *m)
{
    byol_state *s = state;
    ss_params_copy_matching(s->target.p, "", m->p, "");
    return SS_OK;
}

/* mean over rows of 2 - 2 cos(a_i, b_i) */
static ss_tensor *cos_loss(ss_graph *g, ss_tensor *a, ss_tensor *b)
{
    ss_tensor *c = ss_sum(g, ss_mul(g, ss_l2_normalize(g, a, 1e-12f), ss_l2_normalize(g, b, 1e-12f)), 1, 0);
    return ss_add_scalar(g, ss_scale(g, ss_mean_all(g, c), -2.0f), 2.0f);
}

static ss_tensor *byol_loss(void *state, ss_graph *g, const ss_model *m, const ss_batch *b, double *c, double *n)
{
    byol_state *s = state;
    (void)c;
    (void)n;
    ss_tensor *views[2] = {batch_view(g, b, 0), batch_view(g, b, 1)};
    ss_tensor *x = ss_concat(g, 2, views, 0);
    ss_tensor *q = ss_mlp_forward(g, &s->pred, ss_mlp_forward(g, &s->proj, ss_model_features(g, m, x)));
    /* Target: no gradient. */
    int ge = ss_graph_grad_enabled(g);
    ss_graph_set_grad_enabled(g, 0);
    ss_tensor *zt = ss_mlp_forward(g, &s->tproj, ss_model_features(g, &s->target, x));
    ss_graph_set_grad_enabled(g, ge);
    if (!q || !zt) return NULL;
    zt = ss_detach(g, zt);
    int64_t nn = b->n;
    ss_tensor *q1 = ss_slice(g, q, 0, 0, nn), *q2 = ss_slice(g, q, 0, nn, nn);
    ss_tensor *t1 = ss_slice(g, zt, 0, 0, nn), *t2 = ss_slice(g, zt, 0, nn, nn);
    return ss_add(g, cos_loss(g, q1, t2), cos_loss(g, q2, t1));
}

static void byol_after_step(void *state, ss_model *m, double progress)
{
    byol_state *s = state;
    float tau = 1.0f - (1.0f - s->ema_base) * (float)(cos(M_PI * progress) + 1.0) / 2.0f;
    ss_ema_update(s->target.p, "", m->p, "", tau);
}

ss_params *ss_byol_target(void *state) { return ((byol_state *)state)->target.p; }

static void byol_destroy(void *state)
{
    byol_state *s = state;
    if (!s) return;
    if (s->have_target) ss_model_free(&s->target);
    free(s);
}

const ss_method ss_method_byol = {
    .name = "byol",
    .default_encoder = "convnet-s",
    .views = 2,
    .default_augment = byol_augment,
    .default_lr = 1e-3f,
    .default_wd = 1e-4f,
    .default_batch = 256,
    .default_optimizer = "adamw",
    .create = byol_create,
    .setup = byol_setup,
    .loss = byol_loss,
    .after_step = byol_after_step,
    .destroy = byol_destroy,
};
