/* RotNet (Gidaris et al. 2018): every image of the batch in all 4 rotations
 * (0/90/180/270 degrees), a linear 4-way head on the encoder features,
 * cross-entropy. Head: rot_head. */
#include <stdlib.h>

#include "selfsup/augment.h"
#include "ssl/ssl_internal.h"

typedef struct rot_state {
    ss_linear_layer head;
} rot_state;

static const char *rot_augment(int c, int h)
{
    (void)c;
    return h <= 28 ? "crop:2,hflip" : "crop:4,hflip";
}

static ss_status rot_create(ss_model *m, const ss_method_opts *o, void **state)
{
    (void)o;
    rot_state *s = calloc(1, sizeof *s);
    if (!s) return ss_seterr(SS_ERR_NOMEM, "rotation: out of memory");
    *state = s;
    return ss_linear_init(&s->head, m->p, "rot_head", m->enc->feat_dim, 4, 1);
}

/* Rotated copies: out [4n,C,H,W] with image 4i+k = rot90(x_i, k); y[4i+k] = k. */
void ss_rotation_batch(const float *x, int64_t n, int c, int h, int w, float *out, int32_t *y)
{
    int64_t img = (int64_t)c * h * w;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            ss_rotate90(x + i * img, out + (4 * i + k) * img, c, h, w, k);
            y[4 * i + k] = k;
        }
}

static ss_tensor *rot_loss(void *state, ss_graph *g, const ss_model *m, const ss_batch *b, double *correct,
                           double *count)
{
    rot_state *s = state;
    int64_t img = (int64_t)b->c * b->h * b->w;
    float *x = ss_scratch(g, 4 * b->n * img);
    int32_t *y = ss_scratch_bytes(g, (size_t)(4 * b->n) * sizeof(int32_t));
    if (!x || !y) return NULL;
    ss_rotation_batch(b->x[0], b->n, b->c, b->h, b->w, x, y);
    ss_tensor *xt = ss_wrap(g, x, 4, (int64_t[]){4 * b->n, b->c, b->h, b->w});
    ss_tensor *logits = ss_linear_forward(g, &s->head, ss_model_features(g, m, xt));
    ss_tensor *loss = ss_cross_entropy(g, logits, y, 0.0f);
    if (!loss) return NULL;
    for (int64_t i = 0; i < 4 * b->n; i++) {
        const float *l = logits->data + i * 4;
        int best = 0;
        for (int k = 1; k < 4; k++)
            if (l[k] > l[best]) best = k;
        *correct += best == y[i];
        *count += 1;
    }
    return loss;
}

const ss_method ss_method_rotation = {
    .name = "rotation",
    .default_encoder = "convnet-s",
    .views = 1,
    .default_augment = rot_augment,
    .default_lr = 2e-3f,
    .default_wd = 0.05f,
    .default_batch = 128,
    .default_optimizer = "adamw",
    .create = rot_create,
    .loss = rot_loss,
    .destroy = free,
};
