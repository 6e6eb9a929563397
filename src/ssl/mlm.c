/* BERT-style masked-token prediction on text-s (Devlin et al. 2019). */
#include <stdio.h>

#include "ssl/ssl_internal.h"

ss_status ss_mlm_head_init(ss_mlm_head *h, ss_params *p, const ss_encoder *e)
{
    h->dim = e->feat_dim;
    h->vocab = e->cfg.vocab;
    h->table = ss_text_token_table(e);
    ss_status s = ss_linear_init(&h->dense, p, "mlm_head.dense", h->dim, h->dim, 1);
    if (!s) s = ss_layernorm_init(&h->norm, p, "mlm_head.norm", h->dim, 1e-6f);
    if (s) return s;
    h->bias = ss_params_add(p, "mlm_head.bias", 1, (int64_t[]){h->vocab}, SS_T_PARAM);
    return h->bias ? SS_OK : SS_ERR_INVALID;
}

ss_tensor *ss_mlm_loss(ss_graph *g, const ss_mlm_head *h, const ss_model *m, const int32_t *inputs,
                       const int32_t *targets, int64_t n, int t)
{
    ss_tensor *hid = ss_text_encode(g, m->enc, inputs, n, t); /* [n,t,D] */
    if (!hid) return NULL;
    int32_t *rows = ss_scratch_bytes(g, sizeof(int32_t) * (size_t)(n * t));
    int32_t *tg = ss_scratch_bytes(g, sizeof(int32_t) * (size_t)(n * t));
    if (!rows || !tg) return NULL;
    int64_t k = 0;
    for (int64_t i = 0; i < n * t; i++)
        if (targets[i] >= 0) {
            rows[k] = (int32_t)i;
            tg[k++] = targets[i];
        }
    if (k == 0) { /* nothing chosen: a zero loss that still depends on the model */
        return ss_scale(g, ss_mean_all(g, hid), 0.0f);
    }
    ss_tensor *x = ss_index_select(g, ss_reshape(g, hid, 2, (int64_t[]){n * t, h->dim}), 0, rows, k);
    x = ss_layernorm_forward(g, &h->norm, ss_gelu(g, ss_linear_forward(g, &h->dense, x)));
    ss_tensor *logits = ss_linear(g, x, h->table, h->bias); /* tied decoder [k,V] */
    return ss_cross_entropy(g, logits, tg, 0.0f);
}
