/* Shared set-up for the image commands: data, labelled subset, model,
 * loader, run folder and the config JSON of every setting. */
#ifndef SS_CLI_COMMON_H
#define SS_CLI_COMMON_H

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "selfsup/augment.h"
#include "selfsup/data.h"
#include "selfsup/train.h"

typedef struct image_run {
    /* flags */
    const char *data, *test_data, *labels, *encoder, *out, *model, *augment, *optimizer;
    int epochs, batch, threads, workers, json, resume, quiet, eval_every, check_finite;
    int sync_bn; /* --sync-bn: batch norm over all MPI ranks */
    ss_precision precision; /* --precision fp32|bf16 (the one in effect) */
    int on_nan, max_rollbacks; /* --on-nan stop|rollback, --max-rollbacks N */
    long debug_nan_at_step;    /* hidden --debug-nan-at-step N (tests) */
    float lr, wd, warmup, label_smoothing, clip;
    double val_frac;
    uint64_t seed;
    long max_images;
    /* state */
    ss_dataset train, test;
    int32_t *lab_idx, *val_idx;
    int64_t nlab, nval;
    float mean[3], std[3];
    cJSON *config; /* every setting, written to config.json and checkpoints */
} image_run;

/* Read the shared flags (defaults given by the caller in r before): --data,
 * --test-data, --threads, --seed, --max-images, --json, --quiet,
 * --precision always, and each group below only when use has it; the flags
 * of the other groups stay unread, so ss_args_finish() refuses them. */
enum {
    RF_MODEL = 1,      /* --model */
    RF_EPOCHS = 2,     /* --epochs */
    RF_TRAIN = 4,      /* the optimiser and run folder: --encoder --out --augment --optimizer --batch --workers
                        * --lr --wd --warmup --clip --resume --check-finite --sync-bn --on-nan --max-rollbacks */
    RF_SUPERVISED = 8, /* --eval-every --label-smoothing --val */
    RF_LABELS = 16,    /* --labels */
};
int run_read_flags(image_run *r, ss_args *a, unsigned use, int *ok);
/* Copy the NaN-policy flags into a fit config. */
void run_fit_nan_opts(const image_run *r, ss_fit_config *fc);
/* Load train/test data, draw the labelled subset and validation split,
 * compute normalisation; writes indices into the run folder. */
ss_status run_load_data(image_run *r, int need_labels);
void run_free(image_run *r);
/* Default epochs for n labelled images (about 20k-120k steps worth). */
int default_epochs(int64_t n);
/* Default supervised augmentation for an image size. */
const char *default_sup_augment(int c, int h);
/* Fill config JSON with the run settings. */
void run_config_json(image_run *r, const char *command);
char *run_config_string(image_run *r);
/* Print a result line or JSON object. */
void print_kv_result(int json, const char *what, cJSON *obj);
#endif
