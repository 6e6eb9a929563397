/* vit-t (REFERENCE_MODELS.md): patch 4, width 128, depth 6, 4 heads, MLP 512,
 * pre-LN, GELU, learned [CLS], fixed 2-D sin-cos positions, final LayerNorm.
 * Names (timm/MAE): PREFIX.patch_embed.proj.weight/bias, PREFIX.cls_token,
 * PREFIX.blocks.{i}.*, PREFIX.norm.*; the position table is not a parameter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/encoder_internal.h"

typedef struct vit {
    ss_tensor *patch_w, *patch_b, *cls;
    ss_block *blocks;
    ss_norm_layer norm;
    float *pos; /* [1+P, D], row 0 (cls) zeros */
    int dim, depth, heads, patch, grid, npatch;
} vit;

static void vit_free(void *impl)
{
    vit *m = impl;
    if (!m) return;
    free(m->blocks);
    free(m->pos);
    free(m);
}

/* MAE's get_2d_sincos_pos_embed for a gh x gw grid (no cls row):
 * out[p, 0:D/2] encodes the column j, out[p, D/2:D] the row i, p = i*gw + j;
 * each half is [sin(pos*w_k) for k<D/4, cos(pos*w_k) for k<D/4],
 * w_k = 10000^(-k/(D/4)). */
void ss_sincos_pos_embed_2d(float *out, int dim, int gh, int gw)
{
    int q = dim / 4;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            float *row = out + (size_t)(i * gw + j) * dim;
            for (int k = 0; k < q; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / q);
                row[k] = (float)sin(j * omega);
                row[q + k] = (float)cos(j * omega);
                row[2 * q + k] = (float)sin(i * omega);
                row[3 * q + k] = (float)cos(i * omega);
            }
        }
}

int ss_vit_num_patches(const ss_encoder *e) { return ((const vit *)e->impl)->npatch; }
int ss_vit_patch_size(const ss_encoder *e) { return ((const vit *)e->impl)->patch; }

/* x [N,C,H,W] -> patch tokens + position [N,P,D] */
ss_tensor *ss_vit_patch_tokens(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    const vit *m = e->impl;
    if (!x) return NULL;
    if (x->ndim != 4 || x->shape[2] != m->grid * m->patch || x->shape[3] != m->grid * m->patch) {
        char b[64];
        return ss_op_error(g, "vit", "input %s, expected [N,%d,%d,%d]", ss_shape_str(x, b, sizeof b),
                           e->cfg.in_chans, m->grid * m->patch, m->grid * m->patch);
    }
    int64_t N = x->shape[0];
    ss_tensor *t = ss_conv2d(g, x, m->patch_w, m->patch_b, m->patch, 0); /* [N,D,g,g] */
    t = ss_reshape(g, t, 3, (int64_t[]){N, m->dim, m->npatch});
    t = ss_contiguous(g, ss_permute(g, t, (int[]){0, 2, 1})); /* [N,P,D] */
    ss_tensor *pos = ss_wrap(g, m->pos + m->dim, 2, (int64_t[]){m->npatch, m->dim});
    return ss_add(g, t, pos);
}

/* tokens [N,T,D] -> [N,1+T,D] after [CLS], blocks and final norm */
ss_tensor *ss_vit_encode_tokens(ss_graph *g, const ss_encoder *e, ss_tensor *tokens)
{
    const vit *m = e->impl;
    if (!tokens) return NULL;
    int64_t N = tokens->shape[0];
    ss_tensor *z = ss_zeros(g, 3, (int64_t[]){N, 1, m->dim});
    ss_tensor *cls = ss_add(g, z, m->cls); /* pos row 0 is zero */
    ss_tensor *xs[2] = {cls, tokens};
    ss_tensor *x = ss_concat(g, 2, xs, 1);
    for (int i = 0; i < m->depth; i++) x = ss_block_forward(g, &m->blocks[i], x, NULL);
    return ss_layernorm_forward(g, &m->norm, x);
}

/* x [N,C,H,W] -> [CLS] features [N,D] */
static ss_tensor *vit_forward(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    const vit *m = e->impl;
    ss_tensor *h = ss_vit_encode_tokens(g, e, ss_vit_patch_tokens(g, e, x));
    if (!h) return NULL;
    return ss_reshape(g, ss_slice(g, h, 1, 0, 1), 2, (int64_t[]){h->shape[0], m->dim});
}

ss_status ss_vit_new(ss_encoder *e, ss_params *p, const char *prefix)
{
    vit *m = calloc(1, sizeof *m);
    if (!m) return ss_seterr(SS_ERR_NOMEM, "vit: out of memory");
    e->impl = m;
    e->free_impl = vit_free;
    int cin = e->cfg.in_chans > 0 ? e->cfg.in_chans : 1;
    int img = e->cfg.img_size > 0 ? e->cfg.img_size : 28;
    m->dim = e->cfg.dim > 0 ? e->cfg.dim : 128;
    m->depth = e->cfg.depth > 0 ? e->cfg.depth : 6;
    m->heads = e->cfg.heads > 0 ? e->cfg.heads : 4;
    m->patch = e->cfg.patch > 0 ? e->cfg.patch : 4;
    int mlp = e->cfg.mlp > 0 ? e->cfg.mlp : 4 * m->dim;
    if (img % m->patch) return ss_seterr(SS_ERR_INVALID, "vit: image size %d is not a multiple of patch %d", img, m->patch);
    if (m->dim % 4) return ss_seterr(SS_ERR_INVALID, "vit: width %d is not a multiple of 4", m->dim);
    m->grid = img / m->patch;
    m->npatch = m->grid * m->grid;
    e->cfg.in_chans = cin;
    e->cfg.img_size = img;
    char n[256];
    snprintf(n, sizeof n, "%spatch_embed.proj.weight", prefix);
    m->patch_w = ss_params_add(p, n, 4, (int64_t[]){m->dim, cin, m->patch, m->patch}, SS_T_PARAM);
    snprintf(n, sizeof n, "%spatch_embed.proj.bias", prefix);
    m->patch_b = ss_params_add(p, n, 1, (int64_t[]){m->dim}, SS_T_PARAM);
    snprintf(n, sizeof n, "%scls_token", prefix);
    m->cls = ss_params_add(p, n, 3, (int64_t[]){1, 1, m->dim}, SS_T_PARAM);
    if (!m->patch_w || !m->patch_b || !m->cls) return SS_ERR_INVALID;
    /* MAE: patch embedding xavier-uniform on the flattened [D, C*p*p] view. */
    int fan_in = cin * m->patch * m->patch;
    ss_params_set_rule(p, m->patch_w, SS_RULE_UNIFORM, sqrtf(6.0f / (float)(fan_in + m->dim)));
    ss_params_set_rule(p, m->patch_b, SS_RULE_ZEROS, 0);
    ss_params_set_rule(p, m->cls, SS_RULE_NORMAL, 0.02f);
    m->blocks = calloc((size_t)m->depth, sizeof *m->blocks);
    m->pos = calloc((size_t)(1 + m->npatch) * (size_t)m->dim, sizeof(float));
    if (!m->blocks || !m->pos) return ss_seterr(SS_ERR_NOMEM, "vit: out of memory");
    ss_sincos_pos_embed_2d(m->pos + m->dim, m->dim, m->grid, m->grid);
    for (int i = 0; i < m->depth; i++) {
        snprintf(n, sizeof n, "%sblocks.%d.", prefix, i);
        ss_status s = ss_block_init(&m->blocks[i], p, n, m->dim, m->heads, mlp);
        if (s) return s;
    }
    snprintf(n, sizeof n, "%snorm", prefix);
    ss_status s = ss_layernorm_init(&m->norm, p, n, m->dim, 1e-6f);
    if (s) return s;
    e->feat_dim = m->dim;
    e->forward = vit_forward;
    return SS_OK;
}
