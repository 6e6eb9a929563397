/* convnet-s (REFERENCE_MODELS.md): 5 conv3x3-BN-ReLU blocks, max-pools after
 * blocks 1 and 3, global average pool -> 128 features.
 * Names: PREFIX.blocks.{0..4}.conv.weight, PREFIX.blocks.{i}.bn.* */
#include <stdio.h>
#include <stdlib.h>

#include "nn/encoder_internal.h"

typedef struct convnet_s {
    ss_conv_bn blocks[5];
} convnet_s;

/* x [N,C,H,W] -> [N,128,H/4,W/4] (before the global pool) */
static ss_tensor *convnet_s_map(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    const convnet_s *m = e->impl;
    x = ss_conv_bn_forward(g, &m->blocks[0], x, 1);
    x = ss_conv_bn_forward(g, &m->blocks[1], x, 1);
    x = ss_max_pool2d(g, x, 2, 2, 0);
    x = ss_conv_bn_forward(g, &m->blocks[2], x, 1);
    x = ss_conv_bn_forward(g, &m->blocks[3], x, 1);
    x = ss_max_pool2d(g, x, 2, 2, 0);
    return ss_conv_bn_forward(g, &m->blocks[4], x, 1);
}

/* x [N,C,H,W] -> [N,128] */
static ss_tensor *convnet_s_forward(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    return ss_global_avg_pool(g, convnet_s_map(g, e, x));
}

ss_status ss_convnet_s_new(ss_encoder *e, ss_params *p, const char *prefix)
{
    convnet_s *m = calloc(1, sizeof *m);
    if (!m) return ss_seterr(SS_ERR_NOMEM, "convnet-s: out of memory");
    e->impl = m;
    int cin = e->cfg.in_chans > 0 ? e->cfg.in_chans : 1;
    int ch[6] = {cin, 32, 32, 64, 64, 128};
    for (int i = 0; i < 5; i++) {
        char pre[200];
        snprintf(pre, sizeof pre, "%sblocks.%d.", prefix, i);
        ss_status s = ss_conv_bn_init(&m->blocks[i], p, pre, "conv", "bn", ch[i], ch[i + 1], 3, 1, 1);
        if (s != SS_OK) return s;
    }
    e->feat_dim = 128;
    e->forward = convnet_s_forward;
    e->forward_map = convnet_s_map;
    return SS_OK;
}
