/* selfsup — models, checkpoints and the shared training loop.
 *
 * A model is one parameter store holding an encoder under "encoder." plus
 * any heads ("head." for the classifier; method heads such as "rot_head.",
 * "projector.", "decoder." for pretext tasks). Checkpoints are safetensors
 * files with the tensors under those names (the PyTorch reference modules'
 * state_dict names), the optimiser moments under "optim.m1.NAME" and
 * "optim.m2.NAME", and metadata (all strings):
 *   encoder, in_chans, img_size, num_classes, class_names (JSON list),
 *   mean, std (JSON lists), config (JSON of every setting of the run),
 *   state (JSON: epoch, batch, step, best metric) for exact resume.
 * Writes are atomic (temp file, fsync, rename).
 *
 * ss_fit() is the one training loop every command uses: supervised
 * training, fine-tuning and every pretext task plug in through ss_fit_hooks.
 * Under MPI (selfsup/dist.h, world > 1) it is data parallel: parameters are
 * broadcast from rank 0 at the start, the gradient block is averaged after
 * every backward, the logged loss and accuracy are global, BN running
 * statistics are averaged at epoch ends and before checkpoints, and only
 * rank 0 prints, runs epoch_end and writes the run folder.
 */
#ifndef SELFSUP_TRAIN_H
#define SELFSUP_TRAIN_H

#include "selfsup/data.h"
#include "selfsup/nn.h"
#include "selfsup/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_model {
    ss_params *p;
    ss_encoder *enc;
    ss_encoder_config ecfg;
    ss_linear_layer head; /* used when nclasses > 0 */
    int nclasses;
    char **class_names; /* nclasses strings (owned) or NULL */
    float mean[3], std[3];
    /* Optional second store saved and resumed with the model under
     * extra_prefix (BYOL's target network: "target."); not owned. */
    ss_params *extra;
    const char *extra_prefix;
    char *tokenizer_json; /* text models: the tokenizer (owned), saved in the
                             checkpoint metadata as "tokenizer"; else NULL */
} ss_model;

/* Register encoder (+ head when nclasses > 0) in a fresh store. Call
 * ss_model_finalize() after adding any extra heads to m->p. */
ss_status ss_model_create(ss_model *m, const ss_encoder_config *ec, int nclasses);
ss_status ss_model_finalize(ss_model *m, uint64_t seed);
void ss_model_free(ss_model *m);
/* [N,C,H,W] -> features [N,D] / logits [N,nclasses]. */
ss_tensor *ss_model_features(ss_graph *g, const ss_model *m, ss_tensor *x);
ss_tensor *ss_model_logits(ss_graph *g, const ss_model *m, ss_tensor *x);

/* Training state saved with a checkpoint. */
typedef struct ss_train_state {
    int64_t epoch, batch, step; /* next position to run */
    double best_metric;
    int64_t best_epoch;
    double lr_scale; /* learning-rate factor after NaN rollbacks (1 = none; 0 reads as 1) */
    int64_t rollbacks;
} ss_train_state;

/* Save model values+buffers (+ m->extra under m->extra_prefix, + optimiser
 * moments when opt != NULL, + state when st != NULL) with metadata;
 * config_json may be NULL. Refuses (SS_ERR_NAN, nothing written) when a
 * value, buffer or moment is NaN or infinite, so a diverged run never
 * replaces a good checkpoint. */
ss_status ss_checkpoint_save(const char *path, const ss_model *m, ss_optimizer *opt, const ss_train_state *st,
                             const char *config_json);
/* Read the metadata of a checkpoint and build the model it describes
 * (encoder + head of num_classes), values loaded. extra_heads: called after
 * the encoder and head are registered and before finalize, so a pretext
 * method can register its heads and load them too (NULL for none). */
typedef ss_status (*ss_register_fn)(void *ctx, ss_model *m);
ss_status ss_checkpoint_load_model(const char *path, ss_model *m, ss_register_fn extra, void *ctx);
/* Load into an existing model: every tensor of m must be present with the
 * right shape unless allow_missing; with prefix_only, only names starting
 * with that prefix are loaded (e.g. "encoder." to start a fine-tune from a
 * pretrained checkpoint). Optimiser moments and state when given; with opt,
 * m->extra (when set) is loaded too and must be present. Resuming (opt given,
 * no prefix_only), the file may hold nothing else: a tensor without a place
 * in m (a head the run had and this model lacks) is SS_ERR_FORMAT naming it. */
ss_status ss_checkpoint_load_into(const char *path, ss_model *m, const char *prefix_only, int allow_missing,
                                  ss_optimizer *opt, ss_train_state *st);
/* Metadata value of a checkpoint (malloc'd), or NULL with the error set
 * (ss_errmsg, ss_errcode): the file cannot be read or is not safetensors,
 * or it has no such key, SS_ERR_FORMAT (say, a safetensors file written by
 * another program). */
char *ss_checkpoint_meta(const char *path, const char *key);

/* ---- the training loop ------------------------------------------------------------ */
typedef struct ss_fit_hooks {
    void *ctx;
    /* Loss of one batch. May add to *correct / *count for a running accuracy. */
    ss_tensor *(*loss)(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count);
    /* After each optimiser step (EMA targets). progress in [0,1]. */
    void (*after_step)(void *ctx, int64_t step, double progress);
    /* End of epoch: evaluate; *metric is what "best" is chosen by (higher is
     * better; leave NAN when there is none). Also writes images etc. */
    ss_status (*epoch_end)(void *ctx, int64_t epoch, double *metric);
    /* Before each step's loss, on every rank, also after a resume (schedules
     * that change what trains, e.g. linear-probe-then-fine-tune). Optional. */
    void (*before_step)(void *ctx, int64_t step);
    /* End of epoch, on every rank, before epoch_end (which runs on rank 0
     * only): all-reduce what epoch_end reports. Optional. */
    ss_status (*epoch_collective)(void *ctx);
    /* The run stopped inside epoch `epoch` (max_steps), so epoch_end did not
     * run for what it trained last: the outputs that need no whole epoch
     * (e.g. MAE's reconstruction grid). Rank 0 only. Optional. */
    ss_status (*stopped_mid_epoch)(void *ctx, int64_t epoch);
} ss_fit_hooks;

typedef struct ss_fit_config {
    int epochs;
    float lr, final_lr; /* cosine from lr to final_lr */
    float warmup_epochs;
    ss_opt_config opt;
    float clip_norm; /* 0 = off */
    uint64_t seed;
    const char *run_dir;     /* metrics.jsonl, last/best checkpoints, loss curve */
    const char *config_json; /* written into checkpoints and config.json */
    const char *what;        /* "train", "pretrain rotation", ... for the progress bar */
    int resume;              /* continue from run_dir/last.safetensors */
    int64_t ckpt_every_steps;  /* extra periodic checkpoint; 0 = epoch ends only */
    double ckpt_every_minutes; /* likewise by time */
    int quiet;               /* no progress bar */
    int check_finite;        /* NaN/Inf guard on every op (slower) */
    int64_t max_steps;       /* stop after this many steps (0 = all); for tests */
    int sync_bn;             /* data parallel (selfsup/dist.h): batch-norm
                                statistics over all ranks; else per rank */
    /* NaN/Inf guard: a non-finite loss or gradient is always caught at the
     * step it appears (the op that made it is named by re-running that
     * step's forward pass with check_finite). SS_ON_NAN_STOP: fail with
     * SS_ERR_NAN, last checkpoint untouched. SS_ON_NAN_ROLLBACK: reload
     * run_dir/last.safetensors (one is written at the start when there is
     * none), halve the learning rate and go on; fail after max_rollbacks. */
    int on_nan;
    int max_rollbacks;
    int64_t debug_nan_at_step; /* tests: poison a weight with NaN before step N (once; 0 = off) */
} ss_fit_config;

enum { SS_ON_NAN_STOP = 0, SS_ON_NAN_ROLLBACK = 1 };

typedef struct ss_fit_result {
    double best_metric, last_metric, final_loss; /* final_loss: the last epoch's mean loss, or that of the
                                                    steps run in the epoch a max_steps stop cut short */
    int64_t best_epoch, steps;
    double seconds, data_wait_seconds;
    /* Per-epoch history (malloc'd, epochs entries): mean loss, metric,
     * wall seconds since start. */
    double *hist_loss, *hist_metric, *hist_time;
    int nhist;
} ss_fit_result;

ss_status ss_fit(ss_model *m, ss_loader *L, const ss_fit_config *c, const ss_fit_hooks *h, ss_fit_result *res);

/* Where ss_fit_source takes its batches from: an image loader (ss_fit wraps
 * one), a text batcher (selfsup/textrun.h), or anything that can hand out
 * numbered batches and jump to (epoch, batch) for resume. */
typedef struct ss_batch_source {
    void *ctx;
    int64_t (*batches_per_epoch)(void *ctx);
    ss_status (*next)(void *ctx, ss_batch *b); /* valid until the next call */
    ss_status (*seek)(void *ctx, int64_t epoch, int64_t batch);
    double (*wait_seconds)(void *ctx); /* total time blocked in next */
} ss_batch_source;
ss_status ss_fit_source(ss_model *m, const ss_batch_source *src, const ss_fit_config *c, const ss_fit_hooks *h,
                        ss_fit_result *res);
void ss_fit_result_free(ss_fit_result *r);

/* ---- evaluation --------------------------------------------------------------------- */
/* Logits-based accuracy of m on (d, idx) (idx NULL = all); per-class
 * accuracy and confusion matrix [nclasses*nclasses] when not NULL. */
ss_status ss_evaluate(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                      double *acc, double *per_class, int64_t *confusion);
/* Encoder features of images (eval mode, no grad): out [n, feat_dim]. */
/* Logits [n, nclasses] of m in eval mode on (d, idx) (idx NULL = 0..n-1). */
ss_status ss_predict_logits(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                            float *out);
ss_status ss_extract_features(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                              float *out);
/* Convert dataset images idx[i0..i0+n) to normalised floats [n,C,H,W]. */
void ss_images_to_float(const ss_dataset *d, const int32_t *idx, int64_t i0, int64_t n, const float *mean,
                        const float *std, float *out);

#ifdef __cplusplus
}
#endif
#endif
