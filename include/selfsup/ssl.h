/* selfsup — self-supervised pretext tasks.
 *
 * Each method is one file in src/ssl/ that fills an ss_method table; the
 * table list is in src/ssl/methods.c (adding a method = one file + one
 * line). All methods train through the shared loop ss_fit().
 */
#ifndef SELFSUP_SSL_H
#define SELFSUP_SSL_H

#include "selfsup/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_method_opts {
    float temperature; /* simclr (0.2) */
    float mask_ratio;  /* mae (0.75) */
    float ema_base;    /* byol target EMA start (0.99), cosine to 1 */
    int proj_dim, proj_hidden;
    uint64_t seed;
} ss_method_opts;

typedef struct ss_method {
    const char *name;
    const char *default_encoder;
    int views; /* augmented views per image the loader must produce */
    /* Defaults that work out of the box on 28x28 grey / 32x32 RGB. */
    const char *(*default_augment)(int c, int h);
    float default_lr, default_wd;
    int default_batch;
    const char *default_optimizer;
    /* Register the method's heads in m->p (before finalize); return state. */
    ss_status (*create)(ss_model *m, const ss_method_opts *o, void **state);
    /* After finalize and init (BYOL: build and copy the target network). */
    ss_status (*setup)(void *state, ss_model *m);
    /* The pretext loss of one batch; *metric (optional) e.g. accuracy. */
    ss_tensor *(*loss)(void *state, ss_graph *g, const ss_model *m, const ss_batch *b, double *correct,
                       double *count);
    void (*after_step)(void *state, ss_model *m, double progress); /* may be NULL */
    /* Per-epoch artefacts (MAE reconstruction grid); may be NULL. */
    ss_status (*epoch_end)(void *state, const ss_model *m, const ss_dataset *test, const char *run_dir,
                           int64_t epoch);
    void (*destroy)(void *state);
} ss_method;

const ss_method *ss_method_find(const char *name);
const char *ss_method_names(void);

/* Building blocks shared by the methods (and tested directly). */
/* NT-Xent over 2n embeddings z [2n,D] where rows i and i+n are positives. */
ss_tensor *ss_ntxent(ss_graph *g, ss_tensor *z, float temperature);
/* VICReg terms for z1, z2 [n,D]: out[0..2] = invariance, variance,
 * covariance (unweighted); returns 25*inv + 25*var + 1*cov. */
ss_tensor *ss_vicreg_loss(ss_graph *g, ss_tensor *z1, ss_tensor *z2, float terms_out[3]);
/* MAE per-sample random masking: for each of n images choose keep = L -
 * round-down(L*ratio) ... precisely keep = (int)(L*(1-ratio)) patches (as
 * MAE). keep_idx [n*keep] (sorted ascending per image), mask [n*L] (1 =
 * masked). Deterministic in (seed, stream). */
int ss_mae_random_mask(int64_t n, int L, float ratio, uint64_t seed, uint64_t stream, int32_t *keep_idx,
                       float *mask);
/* BYOL's target network (encoder + projector) of a byol method state. */
ss_params *ss_byol_target(void *byol_state);
/* RotNet batch: out [4n,C,H,W] with image 4i+k = x_i rotated by k*90
 * degrees counter-clockwise, y[4i+k] = k. */
void ss_rotation_batch(const float *x, int64_t n, int c, int h, int w, float *out, int32_t *y);
/* MAE loss: mean squared error between pred [N,L,P] and target [N*L*P]
 * over the masked patches only (mask [N*L], 1 = masked). */
ss_tensor *ss_mae_masked_loss(ss_graph *g, ss_tensor *pred, const float *target, const float *mask);
/* [N,C,H,W] -> [N, L, p*p*C] patches (row-major patches, pixels (i,j,c)). */
void ss_patchify(const float *img, int64_t n, int c, int h, int w, int p, float *out);

/* ---- text: masked-token prediction (BERT) on text-s ------------------------------- */
/* Head: mlm_head.dense (D->D), GELU, mlm_head.norm, then the decoder tied to
 * the token embedding table plus mlm_head.bias [V]. */
typedef struct ss_mlm_head {
    ss_linear_layer dense;
    ss_norm_layer norm;
    ss_tensor *bias, *table;
    int dim, vocab;
} ss_mlm_head;
ss_status ss_mlm_head_init(ss_mlm_head *h, ss_params *p, const ss_encoder *text_encoder);
/* Cross-entropy on the chosen tokens only (targets >= 0; -1 elsewhere):
 * inputs/targets [n,t] from ss_mlm_mask. Logits are computed only for the
 * chosen positions. */
ss_tensor *ss_mlm_loss(ss_graph *g, const ss_mlm_head *h, const ss_model *m, const int32_t *inputs,
                       const int32_t *targets, int64_t n, int t);

#ifdef __cplusplus
}
#endif
#endif
