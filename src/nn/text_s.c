/* text-s (REFERENCE_MODELS.md): token + learned position embeddings, 4 pre-LN
 * blocks (width 128, 4 heads, MLP 512), final LayerNorm; [PAD] (id 0) keys
 * are masked out of attention; the feature is the [CLS] output (position 0).
 * Names: PREFIX.tok_embed.weight, PREFIX.pos_embed.weight, PREFIX.blocks.{i},
 * PREFIX.norm. */
#include <stdio.h>
#include <stdlib.h>

#include "core/graph_internal.h"
#include "nn/encoder_internal.h"

typedef struct text_s {
    ss_tensor *tok, *pos;
    ss_block *blocks;
    ss_norm_layer norm;
    int dim, depth, heads, vocab, seq;
} text_s;

static void text_free(void *impl)
{
    text_s *m = impl;
    if (!m) return;
    free(m->blocks);
    free(m);
}

ss_tensor *ss_text_token_table(const ss_encoder *e) { return ((const text_s *)e->impl)->tok; }

/* ids [n,t] -> hidden [n,t,D] */
ss_tensor *ss_text_encode(ss_graph *g, const ss_encoder *e, const int32_t *ids, int64_t n, int t)
{
    const text_s *m = e->impl;
    if (ss_graph_status(g) != SS_OK) return NULL;
    if (t > m->seq) return ss_op_error(g, "text-s", "sequence length %d exceeds the model's %d", t, m->seq);
    ss_tensor *x = ss_embedding(g, m->tok, ids, 2, (int64_t[]){n, t});
    ss_tensor *pos = ss_slice(g, m->pos, 0, 0, t); /* [t,D] */
    x = ss_add(g, x, pos);
    float *mask = ss_scratch(g, n * t);
    if (!mask) return NULL;
    int any_pad = 0;
    for (int64_t i = 0; i < n * t; i++) {
        mask[i] = ids[i] != 0 ? 1.0f : 0.0f;
        any_pad |= ids[i] == 0;
    }
    for (int i = 0; i < m->depth; i++) x = ss_block_forward(g, &m->blocks[i], x, any_pad ? mask : NULL);
    return ss_layernorm_forward(g, &m->norm, x);
}

static ss_tensor *text_forward_unused(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    (void)e;
    (void)x;
    return ss_op_error(g, "text-s", "text encoders take token ids: use ss_text_encode");
}

ss_status ss_text_s_new(ss_encoder *e, ss_params *p, const char *prefix)
{
    text_s *m = calloc(1, sizeof *m);
    if (!m) return ss_seterr(SS_ERR_NOMEM, "text-s: out of memory");
    e->impl = m;
    e->free_impl = text_free;
    m->dim = e->cfg.dim > 0 ? e->cfg.dim : 128;
    m->depth = e->cfg.depth > 0 ? e->cfg.depth : 4;
    m->heads = e->cfg.heads > 0 ? e->cfg.heads : 4;
    m->vocab = e->cfg.vocab > 0 ? e->cfg.vocab : 8192;
    m->seq = e->cfg.seq_len > 0 ? e->cfg.seq_len : 128;
    int mlp = e->cfg.mlp > 0 ? e->cfg.mlp : 4 * m->dim;
    e->cfg.vocab = m->vocab;
    e->cfg.seq_len = m->seq;
    char n[256];
    snprintf(n, sizeof n, "%stok_embed.weight", prefix);
    m->tok = ss_params_add(p, n, 2, (int64_t[]){m->vocab, m->dim}, SS_T_PARAM);
    snprintf(n, sizeof n, "%spos_embed.weight", prefix);
    m->pos = ss_params_add(p, n, 2, (int64_t[]){m->seq, m->dim}, SS_T_PARAM);
    if (!m->tok || !m->pos) return SS_ERR_INVALID;
    ss_params_set_rule(p, m->tok, SS_RULE_NORMAL, 0.02f);
    ss_params_set_rule(p, m->pos, SS_RULE_NORMAL, 0.02f);
    m->blocks = calloc((size_t)m->depth, sizeof *m->blocks);
    if (!m->blocks) return ss_seterr(SS_ERR_NOMEM, "text-s: out of memory");
    for (int i = 0; i < m->depth; i++) {
        snprintf(n, sizeof n, "%sblocks.%d.", prefix, i);
        ss_status s = ss_block_init(&m->blocks[i], p, n, m->dim, m->heads, mlp);
        if (s) return s;
    }
    snprintf(n, sizeof n, "%snorm", prefix);
    ss_status s = ss_layernorm_init(&m->norm, p, n, m->dim, 1e-6f);
    if (s) return s;
    e->feat_dim = m->dim;
    e->forward = text_forward_unused;
    return SS_OK;
}
