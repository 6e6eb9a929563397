/* MAE (He et al. 2022) on vit-t: mask 75% of the patches per image (random,
 * per image), the encoder sees only the visible patches, a light decoder
 * (width 64, depth 2, 4 heads) reconstructs every patch from the encoded
 * visible ones plus mask tokens, and the loss is the MSE on per-patch
 * normalised pixels of the masked patches only. MAE's names: decoder_embed,
 * mask_token, decoder_blocks.{i}, decoder_norm, decoder_pred. Each epoch
 * writes a PNG grid of original / masked / reconstructed test images. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/plot.h"
#include "ssl/ssl_internal.h"

#define DEC_DIM 64
#define DEC_DEPTH 2

typedef struct mae_state {
    ss_linear_layer embed, pred;
    ss_tensor *mask_token;
    ss_block blocks[DEC_DEPTH];
    ss_norm_layer norm;
    float *dec_pos; /* [L, DEC_DIM] */
    float ratio;
    int L, p, pd;
    uint64_t seed;
} mae_state;

static const char *mae_augment(int c, int h)
{
    (void)c;
    return h <= 28 ? "rrc:0.6-1,hflip" : "rrc:0.4-1,hflip";
}

static ss_status mae_create(ss_model *m, const ss_method_opts *o, void **state)
{
    if (strcmp(m->ecfg.kind, "vit-t") != 0)
        return ss_seterr(SS_ERR_INVALID, "mae needs --encoder vit-t (got %s)", m->ecfg.kind);
    mae_state *s = calloc(1, sizeof *s);
    if (!s) return ss_seterr(SS_ERR_NOMEM, "mae: out of memory");
    *state = s;
    s->ratio = o->mask_ratio > 0 ? o->mask_ratio : 0.75f;
    s->seed = o->seed;
    s->L = ss_vit_num_patches(m->enc);
    s->p = ss_vit_patch_size(m->enc);
    s->pd = s->p * s->p * m->ecfg.in_chans;
    int grid = (int)lrintf(sqrtf((float)s->L));
    ss_status st = ss_linear_init(&s->embed, m->p, "decoder_embed", m->enc->feat_dim, DEC_DIM, 1);
    if (st) return st;
    s->mask_token = ss_params_add(m->p, "mask_token", 3, (int64_t[]){1, 1, DEC_DIM}, SS_T_PARAM);
    if (!s->mask_token) return SS_ERR_INVALID;
    ss_params_set_rule(m->p, s->mask_token, SS_RULE_NORMAL, 0.02f);
    for (int i = 0; i < DEC_DEPTH; i++) {
        char n[64];
        snprintf(n, sizeof n, "decoder_blocks.%d.", i);
        if ((st = ss_block_init(&s->blocks[i], m->p, n, DEC_DIM, 4, 4 * DEC_DIM))) return st;
    }
    if ((st = ss_layernorm_init(&s->norm, m->p, "decoder_norm", DEC_DIM, 1e-6f))) return st;
    if ((st = ss_linear_init(&s->pred, m->p, "decoder_pred", DEC_DIM, s->pd, 1))) return st;
    s->dec_pos = calloc((size_t)s->L * DEC_DIM, sizeof(float));
    if (!s->dec_pos) return ss_seterr(SS_ERR_NOMEM, "mae: out of memory");
    ss_sincos_pos_embed_2d(s->dec_pos, DEC_DIM, grid, grid);
    return SS_OK;
}

static void mae_destroy(void *state)
{
    mae_state *s = state;
    if (!s) return;
    free(s->dec_pos);
    free(s);
}

/* x [N,C,H,W] -> predicted patches [N,L,pd]; mask [N*L] (1 = masked). */
static ss_tensor *mae_forward(mae_state *s, ss_graph *g, const ss_model *m, ss_tensor *x, int64_t N, int64_t i0,
                              uint64_t stream, float **mask_out, int *keep_out)
{
    int L = s->L;
    int32_t *keep_idx = ss_scratch_bytes(g, (size_t)(N * L) * sizeof(int32_t));
    float *mask = ss_scratch(g, N * L);
    if (!keep_idx || !mask) return NULL;
    int keep = ss_mae_random_mask_at(N, i0, L, s->ratio, s->seed, stream, keep_idx, mask);
    int nm = L - keep;
    ss_tensor *tok = ss_vit_patch_tokens(g, m->enc, x); /* [N,L,D] */
    if (!tok) return NULL;
    int64_t D = tok->shape[2];
    int32_t *rows = ss_scratch_bytes(g, (size_t)(N * L) * sizeof(int32_t));
    if (!rows) return NULL;
    for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < keep; j++) rows[i * keep + j] = (int32_t)(i * L + keep_idx[i * keep + j]);
    ss_tensor *vis = ss_index_select(g, ss_reshape(g, tok, 2, (int64_t[]){N * L, D}), 0, rows, N * keep);
    ss_tensor *lat = ss_vit_encode_tokens(g, m->enc, ss_reshape(g, vis, 3, (int64_t[]){N, keep, D}));
    ss_tensor *y = ss_linear_forward(g, &s->embed, lat); /* [N,1+keep,64] */
    if (!y) return NULL;
    ss_tensor *cls = ss_slice(g, y, 1, 0, 1);
    ss_tensor *yv = ss_reshape(g, ss_contiguous(g, ss_slice(g, y, 1, 1, keep)), 2, (int64_t[]){N * keep, DEC_DIM});
    ss_tensor *mt = ss_add(g, ss_zeros(g, 2, (int64_t[]){N * nm, DEC_DIM}),
                           ss_reshape(g, s->mask_token, 2, (int64_t[]){1, DEC_DIM}));
    ss_tensor *parts[2] = {yv, mt};
    ss_tensor *all = ss_concat(g, 2, parts, 0); /* visible rows, then mask rows */
    /* Restore patch order. */
    for (int64_t i = 0; i < N; i++) {
        int kv = 0, km = 0;
        for (int j = 0; j < L; j++) {
            if (mask[i * L + j] == 0.0f) rows[i * L + j] = (int32_t)(i * keep + kv++);
            else rows[i * L + j] = (int32_t)(N * keep + i * nm + km++);
        }
    }
    ss_tensor *full = ss_reshape(g, ss_index_select(g, all, 0, rows, N * L), 3, (int64_t[]){N, L, DEC_DIM});
    full = ss_add(g, full, ss_wrap(g, s->dec_pos, 2, (int64_t[]){L, DEC_DIM}));
    ss_tensor *seq[2] = {cls, full};
    ss_tensor *h = ss_concat(g, 2, seq, 1);
    for (int i = 0; i < DEC_DEPTH; i++) h = ss_block_forward(g, &s->blocks[i], h, NULL);
    h = ss_linear_forward(g, &s->pred, ss_layernorm_forward(g, &s->norm, h));
    if (!h) return NULL;
    *mask_out = mask;
    *keep_out = keep;
    return ss_slice(g, h, 1, 1, L); /* [N,L,pd] */
}

/* Per-patch normalised targets [N*L, pd]. */
static float *mae_targets(ss_graph *g, const float *x, int64_t N, int c, int hh, int ww, int p, int L, int pd)
{
    float *t = ss_scratch(g, N * L * pd);
    if (!t) return NULL;
    ss_patchify(x, N, c, hh, ww, p, t);
    for (int64_t r = 0; r < N * L; r++) {
        float *v = t + r * pd;
        double mu = 0, var = 0;
        for (int k = 0; k < pd; k++) mu += v[k];
        mu /= pd;
        for (int k = 0; k < pd; k++) var += (v[k] - mu) * (v[k] - mu);
        var /= (pd - 1); /* MAE uses torch.var (unbiased) */
        float inv = (float)(1.0 / sqrt(var + 1e-6));
        for (int k = 0; k < pd; k++) v[k] = (float)((v[k] - mu) * inv);
    }
    return t;
}

static ss_tensor *mae_loss(void *state, ss_graph *g, const ss_model *m, const ss_batch *b, double *c, double *n)
{
    mae_state *s = state;
    (void)c;
    (void)n;
    float *mask;
    int keep;
    uint64_t stream = (uint64_t)b->epoch * 1000003u + (uint64_t)b->index_in_epoch;
    ss_tensor *pred = mae_forward(s, g, m, batch_view(g, b, 0), b->n, b->offset, stream, &mask, &keep);
    if (!pred) return NULL;
    float *tgt = mae_targets(g, b->x[0], b->n, b->c, b->h, b->w, s->p, s->L, s->pd);
    if (!tgt) return NULL;
    (void)keep;
    return ss_mae_masked_loss(g, pred, tgt, mask);
}

ss_tensor *ss_mae_masked_loss(ss_graph *g, ss_tensor *pred, const float *tgt, const float *mask)
{
    if (!pred) return NULL;
    int64_t N = pred->shape[0], L = pred->shape[1], P = pred->shape[2];
    int32_t *mrows = ss_scratch_bytes(g, (size_t)(N * L) * sizeof(int32_t));
    float *tm = ss_scratch(g, N * L * P);
    if (!mrows || !tm) return NULL;
    int64_t k = 0;
    for (int64_t r = 0; r < N * L; r++)
        if (mask[r] != 0.0f) {
            memcpy(tm + k * P, tgt + r * P, (size_t)P * sizeof(float));
            mrows[k++] = (int32_t)r;
        }
    if (k == 0) return ss_op_error(g, "mae", "no patch is masked");
    ss_tensor *pm = ss_index_select(g, ss_reshape(g, pred, 2, (int64_t[]){N * L, P}), 0, mrows, k);
    return ss_mse(g, pm, ss_wrap(g, tm, 2, (int64_t[]){k, P}));
}

/* Grid: 8 test images x (original, masked, reconstruction). */
static ss_status mae_epoch_end(void *state, const ss_model *m, const ss_dataset *test, const char *run_dir,
                               int64_t epoch)
{
    mae_state *s = state;
    if (!run_dir || !test || test->n == 0) return SS_OK;
    int64_t N = test->n < 8 ? test->n : 8;
    int c = test->c, hh = test->h, ww = test->w, p = s->p, L = s->L, pd = s->pd;
    int64_t img = (int64_t)c * hh * ww;
    ss_graph *g = ss_graph_new();
    if (!g) return ss_seterr(SS_ERR_NOMEM, "mae: out of memory");
    ss_graph_set_training(g, 0);
    ss_graph_set_grad_enabled(g, 0);
    float *x = ss_scratch(g, N * img);
    ss_images_to_float(test, NULL, 0, N, m->mean, m->std, x);
    float *mask;
    int keep;
    ss_tensor *pred = mae_forward(s, g, m, ss_wrap(g, x, 4, (int64_t[]){N, c, hh, ww}), N, 0, 999, &mask, &keep);
    ss_status st = SS_OK;
    if (!pred) {
        st = ss_seterr(ss_graph_status(g), "mae grid: %s", ss_graph_errmsg(g));
        ss_graph_free(g);
        return st;
    }
    pred = ss_contiguous(g, pred);
    float *orig = ss_scratch(g, N * L * pd), *grid = malloc(sizeof(float) * (size_t)(3 * N * img));
    ss_patchify(x, N, c, hh, ww, p, orig);
    int gw = ww / p;
    for (int64_t i = 0; i < N; i++)
        for (int j = 0; j < L; j++) {
            const float *o = orig + (i * L + j) * pd, *pr = pred->data + (i * L + j) * pd;
            double mu = 0, var = 0;
            for (int k = 0; k < pd; k++) mu += o[k];
            mu /= pd;
            for (int k = 0; k < pd; k++) var += (o[k] - mu) * (o[k] - mu);
            double sd = sqrt(var / (pd - 1) + 1e-6);
            int masked = mask[i * L + j] != 0.0f;
            int a = j / gw, bq = j % gw;
            for (int y = 0; y < p; y++)
                for (int xx = 0; xx < p; xx++)
                    for (int ch = 0; ch < c; ch++) {
                        int k = (y * p + xx) * c + ch;
                        int64_t pix = ((int64_t)ch * hh + a * p + y) * ww + bq * p + xx;
                        float mu_c = m->mean[ch], sd_c = m->std[ch] > 0 ? m->std[ch] : 1;
                        float ov = o[k] * sd_c + mu_c;
                        float rv = masked ? (float)(pr[k] * sd + mu) * sd_c + mu_c : ov;
                        grid[(3 * i) * img + pix] = ov;
                        grid[(3 * i + 1) * img + pix] = masked ? 0.5f : ov;
                        grid[(3 * i + 2) * img + pix] = rv < 0 ? 0 : rv > 1 ? 1 : rv;
                    }
        }
    char path[1100];
    snprintf(path, sizeof path, "%s/mae_recon_epoch%03lld.png", run_dir, (long long)epoch + 1);
    st = ss_png_write_grid(path, grid, (int)(3 * N), c, hh, ww, 6, 3);
    free(grid);
    ss_graph_free(g);
    return st;
}

const ss_method ss_method_mae = {
    .name = "mae",
    .default_encoder = "vit-t",
    .views = 1,
    .default_augment = mae_augment,
    .default_lr = 1.5e-3f,
    .default_wd = 0.05f,
    .default_batch = 256,
    .default_optimizer = "adamw",
    .create = mae_create,
    .loss = mae_loss,
    .epoch_end = mae_epoch_end,
    .destroy = mae_destroy,
};
