/* ResNet-18 with the CIFAR stem (conv3x3 stride 1, no max-pool), torchvision
 * names: conv1, bn1, layer{1..4}.{0,1}.conv1/bn1/conv2/bn2, downsample.0/1.
 * x [N,C,32,32] -> [N,512]. */
#include <stdio.h>
#include <stdlib.h>

#include "nn/encoder_internal.h"

typedef struct basic_block {
    ss_conv_bn c1, c2, down;
    int has_down;
} basic_block;

typedef struct resnet18 {
    ss_conv_bn stem;
    basic_block b[8];
} resnet18;

static ss_tensor *block_forward(ss_graph *g, const basic_block *b, ss_tensor *x)
{
    ss_tensor *h = ss_conv_bn_forward(g, &b->c1, x, 1);
    h = ss_conv_bn_forward(g, &b->c2, h, 0);
    ss_tensor *sc = b->has_down ? ss_conv_bn_forward(g, &b->down, x, 0) : x;
    return ss_relu(g, ss_add(g, h, sc));
}

/* x [N,C,H,W] -> [N,512,H/8,W/8] (before the global pool) */
static ss_tensor *resnet18_map(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    const resnet18 *m = e->impl;
    x = ss_conv_bn_forward(g, &m->stem, x, 1);
    for (int i = 0; i < 8; i++) x = block_forward(g, &m->b[i], x);
    return x;
}

static ss_tensor *resnet18_forward(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    return ss_global_avg_pool(g, resnet18_map(g, e, x));
}

ss_status ss_resnet18_new(ss_encoder *e, ss_params *p, const char *prefix)
{
    resnet18 *m = calloc(1, sizeof *m);
    if (!m) return ss_seterr(SS_ERR_NOMEM, "resnet18: out of memory");
    e->impl = m;
    int cin = e->cfg.in_chans > 0 ? e->cfg.in_chans : 3;
    ss_status s = ss_conv_bn_init(&m->stem, p, prefix, "conv1", "bn1", cin, 64, 3, 1, 1);
    if (s) return s;
    int ch = 64;
    for (int l = 0; l < 4; l++) {
        int out = 64 << l;
        for (int j = 0; j < 2; j++) {
            basic_block *b = &m->b[l * 2 + j];
            int stride = (j == 0 && l > 0) ? 2 : 1;
            char pre[200];
            snprintf(pre, sizeof pre, "%slayer%d.%d.", prefix, l + 1, j);
            if ((s = ss_conv_bn_init(&b->c1, p, pre, "conv1", "bn1", ch, out, 3, stride, 1))) return s;
            if ((s = ss_conv_bn_init(&b->c2, p, pre, "conv2", "bn2", out, out, 3, 1, 1))) return s;
            if (stride != 1 || ch != out) {
                b->has_down = 1;
                if ((s = ss_conv_bn_init(&b->down, p, pre, "downsample.0", "downsample.1", ch, out, 1, stride, 0)))
                    return s;
            }
            ch = out;
        }
    }
    e->feat_dim = 512;
    e->forward = resnet18_forward;
    e->forward_map = resnet18_map;
    return SS_OK;
}
