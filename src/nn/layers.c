/* Layers: conv+BN(+ReLU), linear, layer norm, pre-LN transformer block. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/params_internal.h"

static ss_tensor *reg(ss_params *p, const char *prefix, const char *name, int ndim, const int64_t *shape, int flags)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return ss_params_add(p, full, ndim, shape, flags);
}

/* ---- conv + batch norm ----------------------------------------------------------
 * x [N,cin,H,W] -> [N,cout,H',W']. */
ss_status ss_conv_bn_init(ss_conv_bn *m, ss_params *p, const char *prefix, const char *conv_name,
                          const char *bn_name, int cin, int cout, int k, int stride, int pad)
{
    char pre[200], n1[96];
    memset(m, 0, sizeof *m);
    m->cin = cin;
    m->cout = cout;
    m->k = k;
    m->stride = stride;
    m->pad = pad;
    int64_t ws[4] = {cout, cin, k, k}, cs[1] = {cout};
    snprintf(n1, sizeof n1, "%s.weight", conv_name);
    m->w = reg(p, prefix, n1, 4, ws, SS_T_PARAM);
    snprintf(pre, sizeof pre, "%s%s.", prefix, bn_name);
    m->gamma = reg(p, pre, "weight", 1, cs, SS_T_PARAM);
    m->beta = reg(p, pre, "bias", 1, cs, SS_T_PARAM);
    m->rmean = reg(p, pre, "running_mean", 1, cs, SS_T_BUFFER);
    m->rvar = reg(p, pre, "running_var", 1, cs, SS_T_BUFFER);
    if (!m->w || !m->gamma || !m->beta || !m->rmean || !m->rvar) return SS_ERR_INVALID;
    ss_params_set_rule(p, m->w, SS_RULE_UNIFORM, 1.0f / sqrtf((float)(cin * k * k)));
    ss_params_set_rule(p, m->gamma, SS_RULE_ONES, 0);
    ss_params_set_rule(p, m->rvar, SS_RULE_ONES, 0);
    return SS_OK;
}

ss_tensor *ss_conv_bn_forward(ss_graph *g, const ss_conv_bn *m, ss_tensor *x, int relu)
{
    ss_tensor *y = ss_conv2d(g, x, m->w, NULL, m->stride, m->pad);
    return (relu ? ss_batch_norm_relu : ss_batch_norm)(g, y, m->gamma, m->beta, m->rmean, m->rvar, 0.1f, 1e-5f);
}

/* ---- linear ---------------------------------------------------------------------
 * x [..., in] -> [..., out]; names NAME.weight [out,in], NAME.bias [out]. */
ss_status ss_linear_init(ss_linear_layer *m, ss_params *p, const char *name, int in, int out, int bias)
{
    char n[256];
    memset(m, 0, sizeof *m);
    m->in = in;
    m->out = out;
    int64_t ws[2] = {out, in}, bs[1] = {out};
    snprintf(n, sizeof n, "%s.weight", name);
    m->w = ss_params_add(p, n, 2, ws, SS_T_PARAM);
    if (!m->w) return SS_ERR_INVALID;
    float bound = 1.0f / sqrtf((float)in);
    ss_params_set_rule(p, m->w, SS_RULE_UNIFORM, bound);
    if (bias) {
        snprintf(n, sizeof n, "%s.bias", name);
        m->b = ss_params_add(p, n, 1, bs, SS_T_PARAM);
        if (!m->b) return SS_ERR_INVALID;
        ss_params_set_rule(p, m->b, SS_RULE_UNIFORM, bound);
    }
    return SS_OK;
}

ss_tensor *ss_linear_forward(ss_graph *g, const ss_linear_layer *m, ss_tensor *x)
{
    return ss_linear(g, x, m->w, m->b);
}

/* ---- layer norm ------------------------------------------------------------------ */
ss_status ss_layernorm_init(ss_norm_layer *m, ss_params *p, const char *name, int dim, float eps)
{
    char n[256];
    int64_t s[1] = {dim};
    m->eps = eps;
    snprintf(n, sizeof n, "%s.weight", name);
    m->w = ss_params_add(p, n, 1, s, SS_T_PARAM);
    snprintf(n, sizeof n, "%s.bias", name);
    m->b = ss_params_add(p, n, 1, s, SS_T_PARAM);
    if (!m->w || !m->b) return SS_ERR_INVALID;
    ss_params_set_rule(p, m->w, SS_RULE_ONES, 0);
    return SS_OK;
}

ss_tensor *ss_layernorm_forward(ss_graph *g, const ss_norm_layer *m, ss_tensor *x)
{
    return ss_layer_norm(g, x, m->w, m->b, m->eps);
}

/* ---- transformer block --------------------------------------------------------------
 * x [B,T,D] -> [B,T,D]. Linear weights: xavier-uniform, biases 0 (MAE/timm). */
static void xavier(ss_params *p, ss_linear_layer *l)
{
    ss_params_set_rule(p, l->w, SS_RULE_UNIFORM, sqrtf(6.0f / (float)(l->in + l->out)));
    if (l->b) ss_params_set_rule(p, l->b, SS_RULE_ZEROS, 0);
}

ss_status ss_block_init(ss_block *m, ss_params *p, const char *prefix, int dim, int heads, int mlp)
{
    char n[256];
    ss_status s = SS_OK;
    m->dim = dim;
    m->heads = heads;
    if (heads <= 0 || dim % heads) return ss_seterr(SS_ERR_INVALID, "transformer block: width %d not divisible by %d heads", dim, heads);
#define SUB(x) (snprintf(n, sizeof n, "%s%s", prefix, x), n)
    if ((s = ss_layernorm_init(&m->norm1, p, SUB("norm1"), dim, 1e-6f))) return s;
    if ((s = ss_linear_init(&m->qkv, p, SUB("attn.qkv"), dim, 3 * dim, 1))) return s;
    if ((s = ss_linear_init(&m->proj, p, SUB("attn.proj"), dim, dim, 1))) return s;
    if ((s = ss_layernorm_init(&m->norm2, p, SUB("norm2"), dim, 1e-6f))) return s;
    if ((s = ss_linear_init(&m->fc1, p, SUB("mlp.fc1"), dim, mlp, 1))) return s;
    if ((s = ss_linear_init(&m->fc2, p, SUB("mlp.fc2"), mlp, dim, 1))) return s;
#undef SUB
    xavier(p, &m->qkv);
    xavier(p, &m->proj);
    xavier(p, &m->fc1);
    xavier(p, &m->fc2);
    return SS_OK;
}

ss_tensor *ss_block_forward(ss_graph *g, const ss_block *m, ss_tensor *x, const float *key_mask)
{
    int D = m->dim;
    ss_tensor *h = ss_layernorm_forward(g, &m->norm1, x);
    ss_tensor *qkv = ss_linear_forward(g, &m->qkv, h); /* [B,T,3D] = [q | k | v] */
    ss_tensor *q = ss_slice(g, qkv, -1, 0, D);
    ss_tensor *k = ss_slice(g, qkv, -1, D, D);
    ss_tensor *v = ss_slice(g, qkv, -1, 2 * D, D);
    ss_tensor *a = ss_attention(g, q, k, v, m->heads, key_mask);
    x = ss_add(g, x, ss_linear_forward(g, &m->proj, a));
    h = ss_layernorm_forward(g, &m->norm2, x);
    h = ss_linear_forward(g, &m->fc2, ss_gelu(g, ss_linear_forward(g, &m->fc1, h)));
    return ss_add(g, x, h);
}
