/* The CenterNet-style detector: a small head on the encoder's spatial
 * feature map, its training loss, and batched prediction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/graph_internal.h"
#include "nn/params_internal.h"
#include "selfsup/detect.h"

#define HEAD_HIDDEN 64

static ss_tensor *add_param(ss_params *p, const char *name, int ndim, const int64_t *shape, float bound)
{
    ss_tensor *t = ss_params_add(p, name, ndim, shape, SS_T_PARAM);
    if (t) ss_params_set_rule(p, t, bound > 0 ? SS_RULE_UNIFORM : SS_RULE_FIXED, bound);
    return t;
}

ss_status ss_detector_register(ss_detector *d, ss_model *m, int nclasses)
{
    memset(d, 0, sizeof *d);
    if (nclasses < 1 || nclasses > 100000) return ss_seterr(SS_ERR_INVALID, "detector: %d classes", nclasses);
    if (!m->enc->forward_map)
        return ss_seterr(SS_ERR_UNSUPPORTED, "detector: encoder %s has no spatial feature map (use convnet-s or resnet18)",
                         m->ecfg.kind);
    int F = m->enc->feat_dim, H = HEAD_HIDDEN;
    d->nclasses = nclasses;
    d->hidden = H;
    float b1 = 1.0f / sqrtf((float)F * 9), b2 = 1.0f / sqrtf((float)H);
    d->conv_w = add_param(m->p, "det_head.conv.weight", 4, (int64_t[]){H, F, 3, 3}, b1);
    d->conv_b = add_param(m->p, "det_head.conv.bias", 1, (int64_t[]){H}, b1);
    d->heat_w = add_param(m->p, "det_head.heat.weight", 4, (int64_t[]){nclasses, H, 1, 1}, b2);
    d->heat_b = add_param(m->p, "det_head.heat.bias", 1, (int64_t[]){nclasses}, 0);
    d->reg_w = add_param(m->p, "det_head.reg.weight", 4, (int64_t[]){4, H, 1, 1}, b2);
    d->reg_b = add_param(m->p, "det_head.reg.bias", 1, (int64_t[]){4}, b2);
    if (!d->conv_w || !d->conv_b || !d->heat_w || !d->heat_b || !d->reg_w || !d->reg_b)
        return ss_seterr(SS_ERR_INVALID, "detector: cannot register the head: %s", ss_errmsg());
    return SS_OK;
}

void ss_detector_init_bias(ss_detector *d)
{
    for (int c = 0; c < d->nclasses; c++) d->heat_b->data[c] = -2.19f;
}

ss_status ss_detector_forward(ss_graph *g, const ss_model *m, const ss_detector *d, ss_tensor *x, ss_tensor **heat,
                              ss_tensor **reg)
{
    ss_tensor *f = ss_encoder_feature_map(g, m->enc, x);
    ss_tensor *h = ss_relu(g, ss_conv2d(g, f, d->conv_w, d->conv_b, 1, 1));
    *heat = ss_conv2d(g, h, d->heat_w, d->heat_b, 1, 0);
    *reg = ss_conv2d(g, h, d->reg_w, d->reg_b, 1, 0);
    if (!*heat || !*reg) return ss_graph_status(g) ? ss_graph_status(g) : SS_ERR_INVALID;
    return SS_OK;
}

ss_tensor *ss_detector_loss(ss_graph *g, const ss_model *m, const ss_detector *d, ss_tensor *x,
                            const ss_det_object *const *objs, const int64_t *counts, float size_weight)
{
    ss_tensor *heat, *reg;
    if (ss_detector_forward(g, m, d, x, &heat, &reg)) return NULL;
    int64_t N = heat->shape[0], C = heat->shape[1], oh = heat->shape[2], ow = heat->shape[3];
    int stride = (int)(x->shape[2] / oh);
    if (C != d->nclasses || stride < 1) return ss_op_error(g, "detector_loss", "unexpected head output shape");
    int64_t plane = oh * ow, tot = 0;
    for (int64_t i = 0; i < N; i++) tot += counts[i];
    float *target = ss_scratch(g, N * C * plane);
    float *rt = ss_scratch(g, tot * 4 > 0 ? tot * 4 : 1);
    int64_t *cells = ss_arena_alloc(ss_graph_arena(g), sizeof(int64_t) * (size_t)(tot > 0 ? tot : 1));
    int32_t *cell1 = ss_arena_alloc(ss_graph_arena(g), sizeof(int32_t) * (size_t)(tot > 0 ? tot : 1));
    if (!target || !rt || !cells || !cell1) return ss_op_error(g, "detector_loss", "out of memory");
    int64_t m_obj = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t k = ss_centernet_encode(objs[i], counts[i], (int)C, (int)oh, (int)ow, stride, target + i * C * plane,
                                        cell1 + m_obj, rt + m_obj * 4);
        for (int64_t j = 0; j < k; j++) cells[m_obj + j] = i * plane + cell1[m_obj + j];
        m_obj += k;
    }
    float w[4] = {size_weight, size_weight, 1.0f, 1.0f};
    ss_tensor *lh = ss_focal_heatmap_loss(g, heat, target);
    ss_tensor *lr = ss_sparse_l1_loss(g, reg, cells, rt, m_obj, w);
    return ss_add(g, lh, lr);
}

ss_status ss_detector_predict(const ss_model *m, const ss_detector *d, const ss_dataset *ds, const int32_t *idx,
                              int64_t n, int batch, int k, float thresh, float nms_iou, ss_detection *out,
                              int64_t *start)
{
    if (batch < 1 || k < 1) return ss_seterr(SS_ERR_INVALID, "detector: batch and k must be positive");
    ss_graph *g = ss_graph_new();
    int64_t img = (int64_t)ds->c * ds->h * ds->w;
    float *buf = malloc(sizeof(float) * (size_t)(img * batch));
    if (!g || !buf) {
        ss_graph_free(g);
        free(buf);
        return ss_seterr(SS_ERR_NOMEM, "detector: out of memory");
    }
    ss_graph_set_training(g, 0);
    ss_graph_set_grad_enabled(g, 0);
    ss_status s = SS_OK;
    start[0] = 0;
    for (int64_t i0 = 0; i0 < n && !s; i0 += batch) {
        int64_t nb = n - i0 < batch ? n - i0 : batch;
        ss_graph_reset(g);
        ss_images_to_float(ds, idx, i0, nb, m->mean, m->std, buf);
        ss_tensor *x = ss_wrap(g, buf, 4, (int64_t[]){nb, ds->c, ds->h, ds->w});
        ss_tensor *heat, *reg;
        if ((s = ss_detector_forward(g, m, d, x, &heat, &reg))) {
            s = ss_seterr(s, "detector: %s", ss_graph_errmsg(g));
            break;
        }
        int64_t C = heat->shape[1], oh = heat->shape[2], ow = heat->shape[3], plane = oh * ow;
        int stride = (int)(ds->h / oh);
        for (int64_t e = 0; e < heat->numel; e++) {
            float v = heat->data[e];
            heat->data[e] = v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
        }
        for (int64_t i = 0; i < nb; i++) {
            int64_t at = i0 + i;
            int64_t got = ss_centernet_decode(heat->data + i * C * plane, reg->data + i * 4 * plane, (int)C, (int)oh,
                                              (int)ow, stride, k, thresh, nms_iou, out + start[at]);
            start[at + 1] = start[at] + got;
        }
    }
    ss_graph_free(g);
    free(buf);
    return s;
}
