/* SimCLR (Chen et al. 2020): two augmented views, encoder, projection MLP
 * 128-128-64 ("projector"), NT-Xent with temperature 0.2 over the 2n views
 * (REFERENCE_MODELS.md). */
#include <stdlib.h>

#include "ssl/ssl_internal.h"

typedef struct simclr_state {
    ss_mlp proj;
    float temperature;
} simclr_state;

static const char *simclr_augment(int c, int h)
{
    if (c == 3) return "rrc:0.2-1,hflip,jitter:0.4:0.4:0.4:0.1@0.8,gray:0.2";
    return h <= 28 ? "rrc:0.3-1,hflip,jitter:0.4:0.4,noise:0.05" : "rrc:0.3-1,hflip,jitter:0.4:0.4,noise:0.05";
}

static ss_status simclr_create(ss_model *m, const ss_method_opts *o, void **state)
{
    simclr_state *s = calloc(1, sizeof *s);
    if (!s) return ss_seterr(SS_ERR_NOMEM, "simclr: out of memory");
    *state = s;
    s->temperature = o->temperature > 0 ? o->temperature : 0.2f;
    int hid = o->proj_hidden > 0 ? o->proj_hidden : 128, out = o->proj_dim > 0 ? o->proj_dim : 64;
    return ss_mlp_init(&s->proj, m->p, "projector", m->enc->feat_dim, hid, out);
}

static ss_tensor *simclr_loss(void *state, ss_graph *g, const ss_model *m, const ss_batch *b, double *correct,
                              double *count)
{
    simclr_state *s = state;
    (void)correct;
    (void)count;
    ss_tensor *views[2] = {batch_view(g, b, 0), batch_view(g, b, 1)};
    ss_tensor *x = ss_concat(g, 2, views, 0); /* [2n,C,H,W]: BN sees both views */
    ss_tensor *z = ss_mlp_forward(g, &s->proj, ss_model_features(g, m, x));
    /* Data parallel: negatives from every rank's batch. */
    return ss_ntxent(g, ss_ssl_gather_views(g, z, b->n), s->temperature);
}

const ss_method ss_method_simclr = {
    .name = "simclr",
    .default_encoder = "convnet-s",
    .views = 2,
    .default_augment = simclr_augment,
    .default_lr = 2e-3f,
    .default_wd = 1e-4f,
    .default_batch = 256,
    .default_optimizer = "adamw",
    .create = simclr_create,
    .loss = simclr_loss,
    .destroy = free,
};
