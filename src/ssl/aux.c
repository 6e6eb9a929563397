/* Rotation as an auxiliary loss in supervised training. */
#include <stdlib.h>
#include <string.h>

#include "core/graph_internal.h"
#include "selfsup/augment.h"
#include "selfsup/aux.h"

struct ss_aux {
    float weight;
    ss_linear_layer head;
};

ss_status ss_aux_new(const char *spec, ss_model *m, ss_aux **out)
{
    *out = NULL;
    float w = 0.5f;
    if (strncmp(spec, "rotation", 8) != 0 || (spec[8] && spec[8] != ':'))
        return ss_seterr(SS_ERR_INVALID, "--aux '%s': expected rotation[:WEIGHT]", spec);
    if (spec[8] == ':') {
        char *end;
        w = strtof(spec + 9, &end);
        if (*end || !(w > 0 && w <= 100)) return ss_seterr(SS_ERR_INVALID, "--aux '%s': weight must be in (0, 100]", spec);
    }
    if (m->ecfg.img_size <= 0) return ss_seterr(SS_ERR_INVALID, "--aux rotation needs square images");
    ss_aux *a = calloc(1, sizeof *a);
    if (!a) return ss_seterr(SS_ERR_NOMEM, "aux: out of memory");
    a->weight = w;
    ss_status s = ss_linear_init(&a->head, m->p, "aux_rot_head", m->enc->feat_dim, 4, 1);
    if (s) {
        free(a);
        return s;
    }
    *out = a;
    return SS_OK;
}

void ss_aux_free(ss_aux *a) { free(a); }

ss_tensor *ss_aux_add_loss(ss_aux *a, ss_graph *g, const ss_model *m, const ss_batch *b, ss_tensor *loss)
{
    if (!loss) return NULL;
    int64_t img = (int64_t)b->c * b->h * b->w;
    float *x = ss_scratch(g, b->n * img);
    int32_t *y = ss_scratch_bytes(g, (size_t)b->n * sizeof(int32_t));
    if (!x || !y) return NULL;
    for (int64_t i = 0; i < b->n; i++) {
        /* The rotation of image i depends only on its dataset index and epoch. */
        ss_rng r;
        ss_rng_seed(&r, (uint64_t)b->idx[i] * 7919u + 17u, (uint64_t)b->epoch);
        int k = (int)ss_rng_below(&r, 4);
        y[i] = k;
        ss_rotate90(b->x[0] + i * img, x + i * img, b->c, b->h, b->w, k);
    }
    ss_tensor *xt = ss_wrap(g, x, 4, (int64_t[]){b->n, b->c, b->h, b->w});
    ss_tensor *logits = ss_linear_forward(g, &a->head, ss_model_features(g, m, xt));
    ss_tensor *rl = ss_cross_entropy(g, logits, y, 0.0f);
    return ss_add(g, loss, ss_scale(g, rl, a->weight));
}
