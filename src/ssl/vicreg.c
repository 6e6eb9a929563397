/* VICReg (Bardes et al. 2022): two views, expander MLP ("expander"),
 * 25*invariance + 25*variance + 1*covariance. */
#include <stdlib.h>

#include "ssl/ssl_internal.h"

typedef struct vic_state {
    ss_mlp exp;
} vic_state;

static const char *vic_augment(int c, int h)
{
    (void)h;
    if (c == 3) return "rrc:0.2-1,hflip,jitter:0.4:0.4:0.4:0.1@0.8,gray:0.2";
    return "rrc:0.3-1,hflip,jitter:0.4:0.4,noise:0.05";
}

static ss_status vic_create(ss_model *m, const ss_method_opts *o, void **state)
{
    vic_state *s = calloc(1, sizeof *s);
    if (!s) return ss_seterr(SS_ERR_NOMEM, "vicreg: out of memory");
    *state = s;
    int hid = o->proj_hidden > 0 ? o->proj_hidden : 512, out = o->proj_dim > 0 ? o->proj_dim : 512;
    return ss_mlp_init(&s->exp, m->p, "expander", m->enc->feat_dim, hid, out);
}

static ss_tensor *vic_loss(void *state, ss_graph *g, const ss_model *m, const ss_batch *b, double *c, double *n)
{
    vic_state *s = state;
    (void)c;
    (void)n;
    ss_tensor *views[2] = {batch_view(g, b, 0), batch_view(g, b, 1)};
    ss_tensor *z = ss_mlp_forward(g, &s->exp, ss_model_features(g, m, ss_concat(g, 2, views, 0)));
    /* Data parallel: variance and covariance over the global batch. */
    z = ss_ssl_gather_views(g, z, b->n);
    if (!z) return NULL;
    int64_t half = z->shape[0] / 2;
    ss_tensor *z1 = ss_slice(g, z, 0, 0, half), *z2 = ss_slice(g, z, 0, half, half);
    return ss_vicreg_loss(g, z1, z2, NULL);
}

const ss_method ss_method_vicreg = {
    .name = "vicreg",
    .default_encoder = "convnet-s",
    .views = 2,
    .default_augment = vic_augment,
    .default_lr = 1e-3f,
    .default_wd = 1e-4f,
    .default_batch = 256,
    .default_optimizer = "adamw",
    .create = vic_create,
    .loss = vic_loss,
    .destroy = free,
};
