/* selfsup — optimisers, learning-rate schedules, gradient clipping, EMA.
 *
 * An optimiser updates every trainable tensor of an ss_params store whose
 * REQUIRES_GRAD flag is set, with the per-tensor learning-rate multiplier of
 * the store (ss_params_set_lr_scale). Weight decay skips tensors flagged
 * SS_T_NO_DECAY (biases, norm parameters, tokens). The moments live in
 * blocks parallel to the store's value block, so checkpoints save them as
 * single arrays.
 */
#ifndef SELFSUP_OPTIM_H
#define SELFSUP_OPTIM_H

#include "selfsup/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ss_opt_kind { SS_OPT_SGD, SS_OPT_ADAMW, SS_OPT_LARS } ss_opt_kind;

typedef struct ss_opt_config {
    ss_opt_kind kind;
    float weight_decay;
    float momentum;     /* SGD/LARS (0.9) */
    int nesterov;       /* SGD */
    float beta1, beta2; /* AdamW (0.9, 0.999) */
    float eps;          /* AdamW (1e-8) */
    float lars_eta;     /* LARS trust coefficient (0.001); NO_DECAY tensors skip adaptation */
} ss_opt_config;

/* Defaults for a kind (lr is given per step). */
ss_opt_config ss_opt_defaults(ss_opt_kind kind);
/* "sgd", "adamw", "lars" -> kind; SS_ERR_INVALID otherwise. */
ss_status ss_opt_parse(const char *name, ss_opt_kind *kind);

typedef struct ss_optimizer ss_optimizer;
ss_status ss_opt_new(ss_params *p, const ss_opt_config *c, ss_optimizer **out);
void ss_opt_free(ss_optimizer *o);
/* One update with learning rate lr (before per-tensor multipliers). */
void ss_opt_step(ss_optimizer *o, float lr);
/* Optimiser state for checkpoints: first/second moment blocks (n floats each,
 * parallel to ss_params_values; m2 NULL for SGD/LARS) and the step count. */
float *ss_opt_moment1(ss_optimizer *o, int64_t *n);
float *ss_opt_moment2(ss_optimizer *o, int64_t *n);
int64_t ss_opt_steps(const ss_optimizer *o);
void ss_opt_set_steps(ss_optimizer *o, int64_t steps);

/* Scale all gradients so their global L2 norm is at most max_norm; returns
 * the norm before clipping (computed in double). */
double ss_clip_grad_norm(ss_params *p, double max_norm);
/* Global L2 norm of the gradients (double accumulation). */
double ss_grad_norm(const ss_params *p);

/* Cosine schedule with linear warm-up: lr rises linearly from 0 over
 * `warmup` steps to base, then follows a half cosine down to final_lr at
 * `total` steps. */
float ss_lr_cosine(int64_t step, int64_t total, int64_t warmup, float base, float final_lr);

/* target = tau * target + (1 - tau) * online, for every tensor (params and
 * buffers) whose name matches after stripping the prefixes. BYOL's target. */
void ss_ema_update(ss_params *target, const char *target_prefix, const ss_params *online,
                   const char *online_prefix, float tau);

#ifdef __cplusplus
}
#endif
#endif
