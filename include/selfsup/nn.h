/* selfsup — parameters, layers and the reference encoders.
 *
 * Parameters live in an ss_params store: every trainable tensor's values in
 * one contiguous block, their gradients in a parallel block (so zeroing,
 * clipping, the optimiser, all-reduce and checkpointing are single loops),
 * and buffers (batch-norm running statistics) in a third block. Names follow
 * the PyTorch reference modules' state_dict (scripts/ref_models.py), e.g.
 * "encoder.blocks.0.conv.weight", so checkpoints load in PyTorch.
 *
 * Layers are plain structs of tensor pointers with an *_init that registers
 * their parameters under a name prefix and a *_forward that builds the graph.
 * An encoder is an ss_encoder: a table of functions plus its layers.
 */
#ifndef SELFSUP_NN_H
#define SELFSUP_NN_H

#include "selfsup/ops.h"
#include "selfsup/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameter store ------------------------------------------------------ */
typedef struct ss_params ss_params;

ss_params *ss_params_new(void);
void ss_params_free(ss_params *p);
/* Register a tensor (before ss_params_finalize). flags: SS_T_PARAM (trainable)
 * or SS_T_BUFFER; SS_T_NO_DECAY is added automatically for 0/1-D params and
 * for names ending in cls_token, pos_embed, mask_token. The name is copied.
 * Returns the tensor (data valid after finalize) or NULL on error. */
ss_tensor *ss_params_add(ss_params *p, const char *name, int ndim, const int64_t *shape, int flags);
/* Allocate the blocks (values zeroed). */
ss_status ss_params_finalize(ss_params *p);
int ss_params_count(const ss_params *p);
ss_tensor *ss_params_at(const ss_params *p, int i);
ss_tensor *ss_params_find(const ss_params *p, const char *name);
/* Trainable values / gradients as one block each (n floats). */
float *ss_params_values(const ss_params *p, int64_t *n);
float *ss_params_grads(const ss_params *p, int64_t *n);
/* Buffers block (running statistics). */
float *ss_params_buffers(const ss_params *p, int64_t *n);
int64_t ss_params_num_trainable(const ss_params *p);
void ss_params_zero_grad(ss_params *p);
/* Per-parameter learning-rate multiplier (layer-wise decay, frozen parts). */
void ss_params_set_lr_scale(ss_params *p, const char *prefix, float scale);
float ss_params_lr_scale(const ss_params *p, int i);
void ss_params_set_lr_scale_at(ss_params *p, int i, float scale);
/* Name of parameter i (as in the checkpoint). */
const char *ss_params_name(const ss_params *p, int i);
/* Mark every parameter under prefix as (not) requiring gradients. */
void ss_params_set_trainable(ss_params *p, const char *prefix, int trainable);
/* Copy values and buffers of every tensor whose name exists in both (same
 * shape required); returns the number copied. src_prefix/dst_prefix are
 * stripped/added ("" for none). */
int ss_params_copy_matching(ss_params *dst, const char *dst_prefix, const ss_params *src, const char *src_prefix);

/* Initialisation. */
typedef enum ss_init_kind {
    SS_INIT_TORCH_DEFAULT, /* PyTorch's default module init, from rng */
    SS_INIT_HASH           /* deterministic hash init of docs/REFERENCE_VECTORS.md */
} ss_init_kind;
/* Initialise every tensor: layers register their own init rule through the
 * name (".weight" of conv/linear: kaiming-uniform bound 1/sqrt(fan_in),
 * ".bias": same bound, norm/bn weight 1 and bias 0, running_var 1, tokens
 * normal(0.02), ViT linear xavier-uniform as MAE). */
void ss_params_init(ss_params *p, ss_init_kind kind, uint64_t seed);
/* The hash-init uniform value u in [-1,1) for (name, index). */
float ss_hash_uniform(const char *name, int64_t i);

/* ---- layers ---------------------------------------------------------------- */
typedef struct ss_conv_bn {
    ss_tensor *w, *gamma, *beta, *rmean, *rvar;
    int cin, cout, k, stride, pad;
} ss_conv_bn;
/* conv kxk (no bias) + BatchNorm2d; names PREFIX.conv.weight, PREFIX.bn.* */
ss_status ss_conv_bn_init(ss_conv_bn *m, ss_params *p, const char *prefix, const char *conv_name,
                          const char *bn_name, int cin, int cout, int k, int stride, int pad);
ss_tensor *ss_conv_bn_forward(ss_graph *g, const ss_conv_bn *m, ss_tensor *x, int relu);

typedef struct ss_linear_layer {
    ss_tensor *w, *b;
    int in, out;
} ss_linear_layer;
ss_status ss_linear_init(ss_linear_layer *m, ss_params *p, const char *name, int in, int out, int bias);
ss_tensor *ss_linear_forward(ss_graph *g, const ss_linear_layer *m, ss_tensor *x);

typedef struct ss_norm_layer {
    ss_tensor *w, *b;
    float eps;
} ss_norm_layer;
ss_status ss_layernorm_init(ss_norm_layer *m, ss_params *p, const char *name, int dim, float eps);
ss_tensor *ss_layernorm_forward(ss_graph *g, const ss_norm_layer *m, ss_tensor *x);

/* Pre-LN transformer block: x + attn(norm1(x)); x + mlp(norm2(x)). Names
 * PREFIX.norm1, .attn.qkv, .attn.proj, .norm2, .mlp.fc1, .mlp.fc2. */
typedef struct ss_block {
    ss_norm_layer norm1, norm2;
    ss_linear_layer qkv, proj, fc1, fc2;
    int dim, heads;
} ss_block;
ss_status ss_block_init(ss_block *m, ss_params *p, const char *prefix, int dim, int heads, int mlp);
/* x [B,T,D]; key_mask [B,T] (1 keep, 0 drop) or NULL. */
ss_tensor *ss_block_forward(ss_graph *g, const ss_block *m, ss_tensor *x, const float *key_mask);

/* ---- encoders ---------------------------------------------------------------- */
typedef struct ss_encoder ss_encoder;
typedef struct ss_encoder_config {
    const char *kind; /* "convnet-s", "vit-t", "resnet18", "text-s" */
    int in_chans, img_size; /* images */
    int vocab, seq_len;     /* text */
    /* overrides (0 = reference value) */
    int dim, depth, heads, mlp, patch;
} ss_encoder_config;

struct ss_encoder {
    ss_encoder_config cfg;
    int feat_dim;
    /* Image encoders: x [N,C,H,W] -> features [N,feat_dim]. */
    ss_tensor *(*forward)(ss_graph *g, const ss_encoder *e, ss_tensor *x);
    void *impl;
    void (*free_impl)(void *impl);
    /* Image CNN encoders: x [N,C,H,W] -> the spatial map before the global
     * pool [N,feat_dim,H/s,W/s] (NULL for encoders without one). */
    ss_tensor *(*forward_map)(ss_graph *g, const ss_encoder *e, ss_tensor *x);
};

/* Build an encoder, registering its parameters under `prefix` (e.g.
 * "encoder.") in p (p must not be finalized yet). */
ss_status ss_encoder_new(const ss_encoder_config *cfg, ss_params *p, const char *prefix, ss_encoder **out);
void ss_encoder_free(ss_encoder *e);
/* The spatial feature map before global pooling (dense heads, detection):
 * convnet-s: [N,128,H/4,W/4]; resnet18: [N,512,H/8,W/8]. An encoder without
 * one (vit-t, text-s) is an SS_ERR_UNSUPPORTED error recorded in g (NULL). */
ss_tensor *ss_encoder_feature_map(ss_graph *g, const ss_encoder *e, ss_tensor *x);
/* Names accepted by ss_encoder_new, for help and errors. */
const char *ss_encoder_names(void);

/* ViT specifics (MAE): patch tokens with position embedding, no [CLS]:
 * x [N,C,H,W] -> [N,P,D]. */
ss_tensor *ss_vit_patch_tokens(ss_graph *g, const ss_encoder *e, ss_tensor *x);
/* Run [CLS] + tokens [N,T,D] through the blocks and final norm -> [N,1+T,D]. */
ss_tensor *ss_vit_encode_tokens(ss_graph *g, const ss_encoder *e, ss_tensor *tokens);
int ss_vit_num_patches(const ss_encoder *e);
int ss_vit_patch_size(const ss_encoder *e);
/* Fixed 2-D sin-cos position table [gh*gw, dim] (MAE's formula). */
void ss_sincos_pos_embed_2d(float *out, int dim, int gh, int gw);

/* Text encoder: ids [N,T] (int32, [PAD]=0 masked from attention keys) ->
 * hidden states [N,T,D] (final-normed); features = position 0. */
ss_tensor *ss_text_encode(ss_graph *g, const ss_encoder *e, const int32_t *ids, int64_t n, int t);
/* The token embedding table (for a tied MLM decoder). */
ss_tensor *ss_text_token_table(const ss_encoder *e);

#ifdef __cplusplus
}
#endif
#endif
