/* selfsup train: supervised training of encoder + linear head on a labelled
 * subset (from scratch, or from a pretrained encoder: selfsup finetune). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "selfsup/aux.h"
#include "selfsup/dist.h"
#include "selfsup/fileio.h"

typedef struct sup_ctx {
    image_run *r;
    ss_model *m;
    float label_smoothing;
    ss_aux *aux; /* optional auxiliary self-supervised loss */
    int eval_every, epochs;
    int64_t eval_images;
    double last_acc;
    int64_t full_eval_epoch; /* the epoch (1-based) whose monitor read the whole test set; 0 = none */
    /* Distillation (--distill): per training image, the target distribution
     * (teacher's softmax at temperature T, or one-hot for labelled images). */
    const float *soft;
    float temp;
    /* Linear probe, then fine-tune (--lp-epochs; Kumar et al. 2022): the
     * encoder is frozen for the first lp_steps steps, then its learning-rate
     * scales (enc_scale, layer-wise decay: base_scale[i]) ramp linearly from 0
     * over ramp_steps (no burst from fresh AdamW moments). A function of the
     * step alone, so resume is exact. */
    int64_t lp_steps, ramp_steps;
    float *base_scale, ramp; /* ramp: the factor last applied (-1: none) */
    int frozen;
    /* --eval-images N: N test images spread evenly over the test set (the
     * first N of a class-ordered image folder would be one or two classes). */
    int32_t *eval_idx;
    /* --semi fixmatch (Sohn et al. 2020): per batch, labelled images (weak
     * view, x[0]) get cross-entropy with their label; every other image gets
     * cross-entropy between the model's prediction on its strong view (x[1])
     * and the pseudo-label the current model, in eval mode and without
     * gradients, gives its weak view, counted only where that prediction's
     * probability is >= tau; loss = mean_labelled + w * sum_unlabelled / n_u. */
    int semi;
    float tau, semi_w;
    const unsigned char *is_lab; /* per training-set index */
    ss_graph *g2;                /* the pseudo-labelling forward */
    double n_unl, n_mask, n_pl_right, n_pl_known; /* this epoch on this rank, for the log line */
    double tot[4];                                /* the same summed over the ranks at the epoch's end */
    double last_unl;                              /* the last epoch's unlabelled images (all ranks) */
    double last_above, last_agree;                /* the last epoch's shares, for result.json (-1: none);
                                                   * over the batches computed in that epoch, summed over
                                                   * the ranks under mpirun (after --resume or a NaN
                                                   * rollback: the rest of the epoch) */
    int64_t last_step;                            /* the step before_step saw last (-1: none yet) */
} sup_ctx;

static int argmax_row(const float *l, int C)
{
    int best = 0;
    for (int c = 1; c < C; c++)
        if (l[c] > l[best]) best = c;
    return best;
}

/* Soft cross-entropy T^2 * mean_i -sum_c p_ic log softmax(z_i / T)_c against
 * the targets of the batch's images (Hinton et al. 2015; SimCLRv2's
 * distillation step uses it with the unlabelled pool). */
static ss_tensor *distill_loss(sup_ctx *s, ss_graph *g, const ss_batch *b, ss_tensor *logits, double *correct,
                               double *count)
{
    int C = s->m->nclasses;
    float *t = ss_arena_alloc(ss_graph_arena(g), (size_t)(b->n * C) * sizeof(float));
    if (!t) return NULL;
    for (int64_t i = 0; i < b->n; i++) {
        const float *p = s->soft + (int64_t)b->idx[i] * C, *l = logits->data + i * C;
        memcpy(t + i * C, p, (size_t)C * sizeof(float));
        *correct += argmax_row(l, C) == argmax_row(p, C); /* agreement with the target, not with hidden labels */
        *count += 1;
    }
    ss_tensor *z = s->temp != 1.0f ? ss_scale(g, logits, 1.0f / s->temp) : logits;
    return ss_soft_cross_entropy(g, z, t, -s->temp * s->temp / (float)b->n);
}

static ss_tensor *semi_loss(sup_ctx *s, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    int C = s->m->nclasses;
    int64_t n = b->n, img = (int64_t)b->c * b->h * b->w, nu = 0, nl = 0;
    ss_arena *ar = ss_graph_arena(g);
    float *x = ss_arena_alloc(ar, (size_t)(n * img) * sizeof(float));
    float *t = ss_arena_alloc(ar, (size_t)(n * C) * sizeof(float));
    int32_t *urow = ss_arena_alloc(ar, (size_t)n * sizeof(int32_t));
    if (!x || !t || !urow) return ss_op_error(g, "semi", "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (!s->is_lab[b->idx[i]]) urow[nu++] = (int32_t)i;
        else if (b->y[i] >= 0 && b->y[i] < C) nl++;
    }
    /* Pseudo-labels: weak views of the unlabelled rows, eval mode, no grad. */
    const float *pl = NULL;
    if (nu > 0) {
        ss_graph_reset(s->g2);
        float *xu = ss_arena_alloc(ss_graph_arena(s->g2), (size_t)(nu * img) * sizeof(float));
        if (!xu) return ss_op_error(g, "semi", "out of memory");
        for (int64_t k = 0; k < nu; k++) memcpy(xu + k * img, b->x[0] + urow[k] * img, (size_t)img * sizeof(float));
        ss_tensor *lu = ss_model_logits(s->g2, s->m, ss_wrap(s->g2, xu, 4, (int64_t[]){nu, b->c, b->h, b->w}));
        if (!lu) return ss_op_error(g, "semi", "pseudo-labelling forward: %s", ss_graph_errmsg(s->g2));
        pl = lu->data;
    }
    memset(t, 0, (size_t)(n * C) * sizeof(float));
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        float *ti = t + i * C;
        if (s->is_lab[b->idx[i]]) { /* weak view, true label */
            memcpy(x + i * img, b->x[0] + i * img, (size_t)img * sizeof(float));
            int y = b->y[i];
            if (y >= 0 && y < C) ti[y] = 1.0f / (float)nl;
            continue;
        }
        memcpy(x + i * img, b->x[1] + i * img, (size_t)img * sizeof(float)); /* strong view */
        const float *l = pl + k++ * C;
        int best = argmax_row(l, C);
        double z = 0;
        for (int c = 0; c < C; c++) z += exp((double)(l[c] - l[best]));
        double conf = 1.0 / z; /* softmax probability of the argmax */
        s->n_unl += 1;
        if (conf >= s->tau) {
            ti[best] = s->semi_w / (float)nu;
            s->n_mask += 1;
            if (b->y && b->y[i] >= 0) { /* hidden label: for the log only, never for training */
                s->n_pl_known += 1;
                s->n_pl_right += b->y[i] == best;
            }
        }
    }
    ss_tensor *logits = ss_model_logits(g, s->m, ss_wrap(g, x, 4, (int64_t[]){n, b->c, b->h, b->w}));
    if (!logits) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (!s->is_lab[b->idx[i]]) continue;
        *correct += argmax_row(logits->data + i * C, C) == b->y[i];
        *count += 1;
    }
    ss_tensor *loss = ss_soft_cross_entropy(g, logits, t, -1.0f);
    return loss && s->aux ? ss_aux_add_loss(s->aux, g, s->m, b, loss) : loss;
}

/* logits = head(encoder(x)); CE over the batch labels. */
static ss_tensor *sup_loss(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    sup_ctx *s = ctx;
    if (s->semi) return semi_loss(s, g, b, correct, count);
    ss_tensor *x = ss_wrap(g, b->x[0], 4, (int64_t[]){b->n, b->c, b->h, b->w});
    ss_tensor *logits = ss_model_logits(g, s->m, x);
    if (logits && s->soft) {
        ss_tensor *dl = distill_loss(s, g, b, logits, correct, count);
        return dl && s->aux ? ss_aux_add_loss(s->aux, g, s->m, b, dl) : dl;
    }
    ss_tensor *loss = ss_cross_entropy(g, logits, b->y, s->label_smoothing);
    if (!loss) return NULL;
    int C = s->m->nclasses;
    for (int64_t i = 0; i < b->n; i++) {
        *correct += argmax_row(logits->data + i * C, C) == b->y[i];
        *count += 1;
    }
    if (s->aux) loss = ss_aux_add_loss(s->aux, g, s->m, b, loss);
    return loss;
}

static void sup_before_step(void *ctx, int64_t step)
{
    sup_ctx *s = ctx;
    /* Steps only grow, except after a NaN rollback: the batches since the
     * checkpoint (and the diagnosis's re-run of the bad one) were counted,
     * and are run again, so the epoch's --semi counts restart here. */
    if (step <= s->last_step) s->n_unl = s->n_mask = s->n_pl_right = s->n_pl_known = 0;
    s->last_step = step;
    if (s->lp_steps <= 0) return;
    int frozen = step < s->lp_steps;
    if (frozen != s->frozen) {
        ss_params_set_trainable(s->m->p, "encoder.", !frozen);
        s->frozen = frozen;
    }
    double t = frozen ? 0.0 : (double)(step - s->lp_steps + 1) / (double)s->ramp_steps;
    float f = (float)(t < 1.0 ? t : 1.0);
    if (f == s->ramp) return; /* after the ramp: nothing to do per step */
    s->ramp = f;
    for (int i = 0; i < ss_params_count(s->m->p); i++)
        if (!strncmp(ss_params_name(s->m->p, i), "encoder.", 8))
            ss_params_set_lr_scale_at(s->m->p, i, s->base_scale[i] * f);
}

/* On every rank at the end of an epoch: the --semi counts of all ranks. */
static ss_status sup_epoch_collective(void *ctx)
{
    sup_ctx *s = ctx;
    if (!s->semi) return SS_OK;
    double c[4] = {s->n_unl, s->n_mask, s->n_pl_right, s->n_pl_known};
    ss_status st = ss_dist_allreduce_sum_f64(c, 4);
    if (st) return st;
    memcpy(s->tot, c, sizeof c);
    s->n_unl = s->n_mask = s->n_pl_right = s->n_pl_known = 0;
    return SS_OK;
}

static ss_status sup_epoch_end(void *ctx, int64_t epoch, double *metric)
{
    sup_ctx *s = ctx;
    if (s->semi && s->tot[0] > 0) { /* tot: this epoch, all ranks (sup_epoch_collective) */
        s->last_above = s->tot[1] / s->tot[0];
        s->last_unl = s->tot[0];
        s->last_agree = s->tot[3] > 0 ? s->tot[2] / s->tot[3] : -1;
        if (!s->r->quiet && ss_dist_rank() == 0) {
            fprintf(stderr, "semi: epoch %lld: %.1f%% of unlabelled images above the threshold %.2f", (long long)epoch + 1,
                    100.0 * s->last_above, (double)s->tau);
            if (s->last_agree >= 0) /* the data set's own labels, which training never reads for these images */
                fprintf(stderr, "; their pseudo-labels agree with the hidden labels on %.1f%%", 100.0 * s->last_agree);
            fprintf(stderr, "\n");
        }
    }
    int last = epoch + 1 == s->epochs;
    if (!last && s->eval_every > 0 && (epoch + 1) % s->eval_every != 0) return SS_OK;
    image_run *r = s->r;
    double acc;
    ss_status st;
    if (r->val_idx) st = ss_evaluate(s->m, &r->train, r->val_idx, r->nval, 256, &acc, NULL, NULL);
    else st = ss_evaluate(s->m, &r->test, s->eval_idx, s->eval_idx ? s->eval_images : r->test.n,
                          256, &acc, NULL, NULL);
    if (st) return st;
    *metric = acc;
    s->last_acc = acc;
    s->full_eval_epoch = !r->val_idx && !s->eval_idx ? epoch + 1 : 0;
    return SS_OK;
}

/* Targets for distillation: the teacher's softmax(logits / T) on every
 * (clean) training image; the labelled subset's images get their one-hot
 * label. */
static ss_status make_soft_targets(image_run *r, const char *teacher, float T, float **out)
{
    ss_model t;
    ss_status s = ss_checkpoint_load_model(teacher, &t, NULL, NULL);
    if (s) return s;
    int C = r->train.nclasses;
    if (t.nclasses != C) {
        s = ss_seterr(SS_ERR_SHAPE, "%s: the teacher has %d classes but %s has %d", teacher, t.nclasses,
                      r->train.source, C);
        ss_model_free(&t);
        return s;
    }
    int64_t n = r->train.n;
    float *p = malloc((size_t)(n * C) * sizeof(float));
    if (!p) {
        ss_model_free(&t);
        return ss_seterr(SS_ERR_NOMEM, "distill: cannot hold %lld x %d targets", (long long)n, C);
    }
    if (!r->quiet) fprintf(stderr, "distill: teacher %s labels %lld images\n", teacher, (long long)n);
    s = ss_predict_logits(&t, &r->train, NULL, n, 256, p);
    ss_model_free(&t);
    if (s) {
        free(p);
        return s;
    }
    for (int64_t i = 0; i < n; i++) {
        float *l = p + i * C, mx = l[0];
        for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
        double z = 0;
        for (int c = 0; c < C; c++) z += (l[c] = expf((l[c] - mx) / T));
        for (int c = 0; c < C; c++) l[c] = (float)(l[c] / z);
    }
    for (int64_t j = 0; j < r->nlab; j++) {
        int64_t i = r->lab_idx[j];
        int y = r->train.labels ? r->train.labels[i] : -1;
        if (y < 0 || y >= C) continue;
        for (int c = 0; c < C; c++) p[i * C + c] = c == y ? 1.0f : 0.0f;
    }
    *out = p;
    return SS_OK;
}

static int train_main(int argc, char **argv, const char *cmd)
{
    ss_args a;
    if (ss_args_parse(&a, cmd, argc, argv)) return cli_fail();
    int finetune = !strcmp(cmd, "finetune");
    if (args_flag(&a, "help")) {
        printf("usage: selfsup %s --data PATH [--test-data PATH] [--labels 1%%|10%%|100%%|N/class (default 100%%)]%s\n"
               "  [--encoder convnet-s|vit-t|resnet18] [--epochs N] [--batch 64] [--lr 1e-3] [--wd 0.05]\n"
               "  [--optimizer adamw|sgd|lars] [--warmup EPOCHS] [--augment SPEC] [--label-smoothing X (default 0)]\n"
               "  [--val F (a validation split of the labelled set; default 0 = none)] [--seed 0] [--threads 2] [--precision fp32|bf16] [--workers 1] [--out RUN_DIR (default: none, nothing saved)] [--resume (needs --out)] [--json] [--quiet]\n"
               "  [--max-steps N] [--eval-every N] [--eval-images 2000 (the per-epoch monitor: this many test images spread over the set; 0 = all)] [--clip NORM]\n"
               "  [--check-finite] [--max-images N] [--sync-bn (mpirun: batch norm over all ranks; --batch is per rank)]\n"
               "  [--checkpoint-every STEPS] [--checkpoint-minutes M] [--on-nan stop|rollback] [--max-rollbacks 3]%s\n",
               cmd, finetune ? " --model PRETRAINED" : "",
               finetune ? "\n  [--encoder-lr-scale 1] [--layer-decay 0.75 (vit)] [--freeze-encoder] [--aux rotation:0.5]\n"
                          "  [--lp-epochs N: train the head alone on the frozen encoder for N epochs, then fine-tune all]"
                        : "\n  [--model CHECKPOINT: start from its encoder; with it --encoder-lr-scale 1, --layer-decay 0.75\n"
                          "   (vit), --freeze-encoder] [--aux rotation:0.5]\n"
                          "  [--distill TEACHER [--distill-temp 1]: train on every training image against the\n"
                          "   teacher's predictions (labelled images keep their labels)]\n"
                          "  [--semi fixmatch: labelled images plus pseudo-labels on every other training image, from\n"
                          "   the model itself on a weak view, learned on a strong view (Sohn et al. 2020);\n"
                          "   --semi-threshold 0.95 --semi-weight 1 --semi-ratio 7 (unlabelled per labelled image)\n"
                          "   --strong-augment SPEC; with --model a classifier checkpoint, its head is loaded too]");
        return 0;
    }
    image_run r;
    memset(&r, 0, sizeof r);
    r.wd = -1;
    int ok = 1;
    run_read_flags(&r, &a, RF_LABELS | RF_MODEL | RF_EPOCHS | RF_TRAIN | RF_SUPERVISED, &ok);
    /* The encoder trains at the head's rate by default: at half of it (the earlier
     * default) a pretrained convnet-s fitted the labelled set less than scratch and
     * ended under it at 10% labels on Fashion-MNIST and CIFAR-10 on every seed (0.7
     * and 0.9 points on the mean; docs/RESULTS.md); ViT keeps lower rates for lower
     * layers through --layer-decay. */
    /* the encoder's rates apply to a loaded encoder (finetune, train --model) */
    float enc_scale = r.model ? (float)args_float(&a, "encoder-lr-scale", 1.0, 0, 10, &ok) : 1.0f;
    float layer_decay = r.model ? (float)args_float(&a, "layer-decay", 0.75, 0.01, 1, &ok) : 0.75f;
    int freeze = r.model ? args_flag(&a, "freeze-encoder") : 0;
    double lp_epochs = finetune ? args_float(&a, "lp-epochs", 0, 0, 1e6, &ok) : 0;
    const char *aux_spec = args_str(&a, "aux", NULL);
    /* The per-epoch monitor reads 2,000 test images spread over the set by
     * default (0 = all of them): a whole 10,000-image pass every few epochs
     * took longer than the training itself at 1% labels. best.safetensors
     * is the best epoch on the monitor's images; test_acc in result.json
     * is on the whole test set. */
    long eval_images = args_int(&a, "eval-images", 2000, 0, 1L << 40, &ok);
    long max_steps = args_int(&a, "max-steps", 0, 0, 1L << 40, &ok);
    long ck_steps = args_int(&a, "checkpoint-every", 0, 0, 1L << 40, &ok);
    double ck_min = args_float(&a, "checkpoint-minutes", 0, 0, 1e6, &ok);
    const char *distill = finetune ? NULL : args_str(&a, "distill", NULL);
    float dtemp = distill ? (float)args_float(&a, "distill-temp", 1.0, 0.05, 100, &ok) : 1.0f;
    const char *semi = finetune ? NULL : args_str(&a, "semi", NULL);
    float semi_tau = 0.95f, semi_w = 1.0f;
    long semi_mu = 7;
    const char *strong_spec = NULL;
    if (semi) { /* read only with --semi: elsewhere they are unknown flags, not silently ignored */
        semi_tau = (float)args_float(&a, "semi-threshold", 0.95, 0, 1, &ok);
        semi_w = (float)args_float(&a, "semi-weight", 1.0, 0, 100, &ok);
        semi_mu = args_int(&a, "semi-ratio", 7, 1, 1000, &ok);
        strong_spec = args_str(&a, "strong-augment", NULL);
    }
    /* flags that belong to another one: said so, not "does not take" */
    if (ok && !r.model &&
        (args_needs(&a, "encoder-lr-scale", "model") || args_needs(&a, "layer-decay", "model") ||
         args_needs(&a, "freeze-encoder", "model")))
        ok = 0;
    if (ok && !finetune && !distill && args_needs(&a, "distill-temp", "distill")) ok = 0;
    if (ok && !finetune && !semi &&
        (args_needs(&a, "semi-threshold", "semi") || args_needs(&a, "semi-weight", "semi") ||
         args_needs(&a, "semi-ratio", "semi") || args_needs(&a, "strong-augment", "semi")))
        ok = 0;
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (r.resume && !r.out) {
        ss_seterr(SS_ERR_INVALID, "--resume needs --out RUN_DIR (the run folder whose last.safetensors it continues)");
        return cli_fail();
    }
    if (!r.out && !r.quiet && ss_dist_rank() == 0)
        fprintf(stderr, "selfsup %s: no --out RUN_DIR: the model will not be saved (only the result is printed)\n", cmd);
    if (semi && strcmp(semi, "fixmatch")) {
        fprintf(stderr, "selfsup train: --semi takes fixmatch (got '%s')\n", semi);
        return 2;
    }
    if (semi && r.label_smoothing > 0) {
        fprintf(stderr, "selfsup train: --semi builds its own targets; --label-smoothing does not apply to it\n");
        return 2;
    }
    if (semi && distill) {
        fprintf(stderr, "selfsup train: --semi and --distill are two ways to use the unlabelled images: pick one\n");
        return 2;
    }
    if (finetune && !r.model) {
        fprintf(stderr, "selfsup finetune: --model PRETRAINED_CHECKPOINT is required\n");
        return 2;
    }
    /* The encoder comes from --model: read its kind before any data loads,
     * so a contradicting --encoder is refused at once. */
    char *kind_from_ckpt = NULL;
    if (r.model) {
        kind_from_ckpt = ss_checkpoint_meta(r.model, "encoder");
        if (kind_from_ckpt && args_has(&a, "encoder") && strcmp(r.encoder, kind_from_ckpt)) {
            ss_seterr(SS_ERR_INVALID, "--encoder %s: %s holds a %s encoder (the encoder comes from --model; leave "
                      "--encoder out)", r.encoder, r.model, kind_from_ckpt);
            free(kind_from_ckpt);
            kind_from_ckpt = NULL;
        }
        if (!kind_from_ckpt) {
            run_free(&r);
            return cli_fail();
        }
        r.encoder = kind_from_ckpt;
    }
    if (run_load_data(&r, 1)) {
        free(kind_from_ckpt);
        run_free(&r);
        return cli_fail();
    }
    float *soft = NULL;
    int32_t *eval_idx = NULL; /* --eval-images: an even spread over the test set */
    float *base_scale = NULL;  /* --lp-epochs: the encoder's learning-rate scales after the ramp */
    if (distill && make_soft_targets(&r, distill, dtemp, &soft)) {
        free(kind_from_ckpt);
        run_free(&r);
        return cli_fail();
    }
    if (!r.epochs) r.epochs = distill || semi ? 10 : default_epochs(r.nlab);
    if (!r.augment) r.augment = default_sup_augment(r.train.c, r.train.h);
    if (!r.eval_every) r.eval_every = r.epochs > 20 ? r.epochs / 20 : 1;
    ss_augment *aug = NULL;
    if (strcmp(r.augment, "none") && ss_augment_parse(r.augment, &aug)) {
        free(kind_from_ckpt);
        run_free(&r);
        return cli_fail();
    }
    /* --semi: the pool is every training image outside the labelled and
     * validation sets, plus the labelled images repeated so that a batch
     * holds about one labelled image per semi_mu unlabelled ones. */
    ss_augment *strong = NULL;
    unsigned char *is_lab = NULL;
    int32_t *pool = NULL;
    int64_t npool = 0, lab_repeat = 0;
    if (semi) {
        if (!strong_spec) strong_spec = r.train.c == 1 ? (r.train.h <= 28 ? "crop:2,hflip,jitter:0.4:0.4@0.8,erase:0.5"
                                                                            : "crop:4,hflip,jitter:0.4:0.4@0.8,erase:0.5")
                                                       : (r.train.h <= 28 ? "crop:2,hflip,jitter:0.4:0.4:0.4@0.8,erase:0.5"
                                                                          : "crop:4,hflip,jitter:0.4:0.4:0.4@0.8,erase:0.5");
        if (ss_augment_parse(strong_spec, &strong)) {
            ss_augment_free(aug);
            free(kind_from_ckpt);
            run_free(&r);
            return cli_fail();
        }
        is_lab = calloc((size_t)r.train.n, 1);
        unsigned char *is_val = calloc((size_t)r.train.n, 1);
        int64_t nu = 0;
        if (is_lab && is_val) {
            for (int64_t j = 0; j < r.nlab; j++) is_lab[r.lab_idx[j]] = 1;
            for (int64_t j = 0; j < r.nval; j++) is_val[r.val_idx[j]] = 1;
            for (int64_t i = 0; i < r.train.n; i++) nu += !is_lab[i] && !is_val[i];
            lab_repeat = r.nlab > 0 ? (int64_t)((double)nu / (double)(semi_mu * r.nlab) + 0.5) : 0;
            if (lab_repeat < 1) lab_repeat = 1;
            pool = malloc(sizeof(int32_t) * (size_t)(nu + lab_repeat * r.nlab + 1));
        }
        if (pool) {
            for (int64_t i = 0; i < r.train.n; i++)
                if (!is_lab[i] && !is_val[i]) pool[npool++] = (int32_t)i;
            for (int64_t k = 0; k < lab_repeat; k++)
                for (int64_t j = 0; j < r.nlab; j++) pool[npool++] = r.lab_idx[j];
        }
        free(is_val);
        if (!pool || r.nlab == 0 || nu == 0) {
            if (pool) fprintf(stderr, "selfsup train: --semi needs labelled and unlabelled images (%lld labelled, %lld unlabelled)\n",
                              (long long)r.nlab, (long long)nu);
            else fprintf(stderr, "selfsup train: out of memory\n");
            free(pool);
            free(is_lab);
            ss_augment_free(strong);
            ss_augment_free(aug);
            free(kind_from_ckpt);
            run_free(&r);
            return pool ? 2 : 1;
        }
    }
    ss_encoder_config ec = {.kind = r.encoder, .in_chans = r.train.c, .img_size = r.train.h};
    ss_model m;
    ss_status s = ss_model_create(&m, &ec, r.train.nclasses);
    ss_aux *aux = NULL;
    if (!s && aux_spec) s = ss_aux_new(aux_spec, &m, &aux);
    if (!s) s = ss_model_finalize(&m, r.seed);
    if (!s && r.model) s = ss_checkpoint_load_into(r.model, &m, "encoder.", 0, NULL, NULL);
    int head_loaded = 0;
    if (!s && r.model && semi) { /* a classifier checkpoint: its head too, so pseudo-labels are good from step 1 */
        char *nc = ss_checkpoint_meta(r.model, "num_classes");
        if (nc && atoi(nc) == m.nclasses) {
            s = ss_checkpoint_load_into(r.model, &m, "head.", 0, NULL, NULL);
            head_loaded = !s;
        }
        free(nc);
    }
    if (s) {
        ss_model_free(&m);
        run_free(&r);
        ss_augment_free(aug);
        ss_augment_free(strong);
        free(is_lab);
        free(pool);
        free(kind_from_ckpt);
        return cli_fail();
    }
    memcpy(m.mean, r.mean, sizeof m.mean);
    memcpy(m.std, r.std, sizeof m.std);
    if (r.train.class_names) {
        m.class_names = calloc((size_t)m.nclasses, sizeof(char *));
        for (int i = 0; i < m.nclasses; i++) m.class_names[i] = strdup(r.train.class_names[i]);
    }
    if (r.model) {
        ss_params_set_lr_scale(m.p, "encoder.", freeze ? 0.0f : enc_scale);
        if (freeze) ss_params_set_trainable(m.p, "encoder.", 0);
        if (!strcmp(ec.kind, "vit-t") && !freeze) {
            /* Layer-wise decay: block i of depth D gets decay^(D-i); embeddings decay^(D+1). */
            int D = 6;
            for (int i = 0; i < D; i++) {
                char pre[64];
                snprintf(pre, sizeof pre, "encoder.blocks.%d.", i);
                ss_params_set_lr_scale(m.p, pre, enc_scale * powf(layer_decay, (float)(D - i)));
            }
            ss_params_set_lr_scale(m.p, "encoder.patch_embed.", enc_scale * powf(layer_decay, (float)(D + 1)));
            ss_params_set_lr_scale(m.p, "encoder.cls_token", enc_scale * powf(layer_decay, (float)(D + 1)));
        }
    }
    run_config_json(&r, cmd);
    cJSON_AddNumberToObject(r.config, "eval_every", r.eval_every);
    if (!r.val_idx) /* the monitor's test images (test_acc always reads them all) */
        cJSON_AddNumberToObject(r.config, "eval_images",
                                (double)(eval_images > 0 && eval_images < r.test.n ? eval_images : r.test.n));
    if (r.model) cJSON_AddNumberToObject(r.config, "encoder_lr_scale", freeze ? 0 : enc_scale);
    if (aux_spec) cJSON_AddStringToObject(r.config, "aux", aux_spec);
    if (lp_epochs > 0) cJSON_AddNumberToObject(r.config, "lp_epochs", lp_epochs);
    if (distill) {
        cJSON_AddStringToObject(r.config, "distill", distill);
        cJSON_AddNumberToObject(r.config, "distill_temp", dtemp);
    }
    if (semi) {
        cJSON_AddStringToObject(r.config, "semi", semi);
        cJSON_AddNumberToObject(r.config, "semi_threshold", semi_tau);
        cJSON_AddNumberToObject(r.config, "semi_weight", semi_w);
        cJSON_AddNumberToObject(r.config, "semi_ratio", (double)semi_mu);
        cJSON_AddNumberToObject(r.config, "semi_labelled_repeat", (double)lab_repeat);
        cJSON_AddNumberToObject(r.config, "semi_pool", (double)npool);
        cJSON_AddStringToObject(r.config, "strong_augment", strong_spec);
        cJSON_AddBoolToObject(r.config, "head_from_model", head_loaded);
    }
    char *cfg = run_config_string(&r);

    ss_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.batch = r.batch;
    lo.shuffle = 1;
    lo.drop_last = (soft ? r.train.n : semi ? npool : r.nlab) > r.batch;
    lo.seed = r.seed;
    lo.workers = r.workers;
    lo.indices = soft ? NULL : semi ? pool : r.lab_idx; /* distillation: the whole pool */
    lo.nindices = soft ? 0 : semi ? npool : r.nlab;
    lo.views = semi ? 2 : 1; /* --semi: weak and strong views */
    lo.transform[1] = strong ? ss_augment_transform : NULL;
    lo.transform_ctx[1] = strong;
    lo.rank = ss_dist_rank(); /* mpirun: this rank's slice of each global batch */
    lo.world = ss_dist_world();
    lo.transform[0] = aug ? ss_augment_transform : NULL;
    lo.transform_ctx[0] = aug;
    memcpy(lo.mean, r.mean, sizeof lo.mean);
    memcpy(lo.std, r.std, sizeof lo.std);
    ss_loader *L = NULL;
    ss_graph *g2 = NULL; /* --semi: the pseudo-labelling forward's graph */
    if ((s = ss_loader_new(&r.train, &lo, &L))) goto fail;
    ss_opt_kind ok_kind;
    if ((s = ss_opt_parse(r.optimizer, &ok_kind))) goto fail;
    ss_fit_config fc;
    memset(&fc, 0, sizeof fc);
    fc.epochs = r.epochs;
    fc.lr = r.lr;
    fc.final_lr = 0;
    fc.warmup_epochs = r.warmup;
    fc.opt = ss_opt_defaults(ok_kind);
    fc.opt.weight_decay = r.wd;
    fc.clip_norm = r.clip;
    fc.seed = r.seed;
    fc.run_dir = r.out;
    fc.config_json = cfg;
    fc.what = cmd;
    fc.resume = r.resume;
    fc.quiet = r.quiet;
    fc.check_finite = r.check_finite;
    fc.max_steps = max_steps;
    fc.sync_bn = r.sync_bn;
    fc.ckpt_every_steps = ck_steps;
    fc.ckpt_every_minutes = ck_min;
    run_fit_nan_opts(&r, &fc);
    sup_ctx sc = {.r = &r, .m = &m, .label_smoothing = r.label_smoothing, .aux = aux, .eval_every = r.eval_every,
                  .epochs = r.epochs, .eval_images = eval_images, .last_acc = NAN, .soft = soft, .temp = dtemp,
                  .ramp = -1, .semi = semi != NULL, .tau = semi_tau, .semi_w = semi_w, .is_lab = is_lab,
                  .last_above = -1, .last_agree = -1, .last_step = -1}; /* the rest 0 / NULL */
    if (semi) {
        if (!(g2 = ss_graph_new())) {
            s = ss_seterr(SS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        ss_graph_set_training(g2, 0);
        ss_graph_set_grad_enabled(g2, 0);
        sc.g2 = g2;
    }
    if (eval_images > 0 && eval_images < r.test.n) {
        if (!(eval_idx = ss_indices_spread(r.test.n, eval_images))) {
            s = ss_seterr(SS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        sc.eval_idx = eval_idx;
    }
    if (lp_epochs > 0 && r.model && !freeze) {
        int64_t spe = ss_loader_batches_per_epoch(L);
        sc.lp_steps = (int64_t)(lp_epochs * (double)spe + 0.5);
        sc.ramp_steps = spe > 0 ? spe : 1; /* one epoch */
        if (!(base_scale = malloc(sizeof(float) * (size_t)ss_params_count(m.p)))) {
            s = ss_seterr(SS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < ss_params_count(m.p); i++) base_scale[i] = ss_params_lr_scale(m.p, i);
        sc.base_scale = base_scale;
    }
    ss_fit_hooks h = {&sc, sup_loss, NULL, sup_epoch_end, sup_before_step, sup_epoch_collective, NULL};
    ss_fit_result res;
    if ((s = ss_fit(&m, L, &fc, &h, &res))) goto fail;
    double test_acc = sc.last_acc;
    /* rank 0 reports (the monitor, too, runs on rank 0 only). The monitor's
     * accuracy is test_acc only when it read the whole test set after the
     * last epoch; a run cut short by --max-steps ends between monitor epochs. */
    if (ss_dist_rank() == 0 && sc.full_eval_epoch != r.epochs) {
        if ((s = ss_evaluate(&m, &r.test, NULL, r.test.n, 256, &test_acc, NULL, NULL))) goto fail;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", cmd);
    cJSON_AddStringToObject(o, "encoder", ec.kind);
    cJSON_AddNumberToObject(o, "labelled", (double)r.nlab);
    if (soft) cJSON_AddNumberToObject(o, "distilled_on", (double)r.train.n);
    if (semi && sc.last_above >= 0) { /* the last epoch: share of unlabelled images pseudo-labelled, and how
                                       * many of those agree with the data set's own (unused) labels */
        cJSON_AddNumberToObject(o, "semi_above_threshold", sc.last_above);
        cJSON_AddNumberToObject(o, "semi_unlabelled_images", sc.last_unl); /* that epoch's, over all ranks */
        if (sc.last_agree >= 0) cJSON_AddNumberToObject(o, "semi_pseudo_label_agreement", sc.last_agree);
    }
    cJSON_AddNumberToObject(o, "epochs", r.epochs);
    cJSON_AddNumberToObject(o, "test_acc", test_acc);
    if (r.val_idx) cJSON_AddNumberToObject(o, "best_val_acc", res.best_metric);
    cJSON_AddNumberToObject(o, "train_seconds", res.seconds);
    cJSON_AddNumberToObject(o, "data_wait_seconds", res.data_wait_seconds);
    if (r.out && ss_dist_rank() == 0) {
        cJSON_AddStringToObject(o, "run_dir", r.out);
        char p[1100], *js = cJSON_Print(o);
        snprintf(p, sizeof p, "%s/result.json", r.out);
        s = ss_write_file_atomic(p, js, strlen(js));
        free(js);
        if (s) goto fail;
    }
    print_kv_result(r.json, cmd, o);
    cJSON_Delete(o);
    ss_fit_result_free(&res);
    ss_loader_free(L);
    ss_model_free(&m);
    ss_aux_free(aux);
    run_free(&r);
    ss_augment_free(aug);
    free(cfg);
    free(kind_from_ckpt);
    free(soft);
    free(eval_idx);
    free(base_scale);
    ss_graph_free(g2);
    ss_augment_free(strong);
    free(is_lab);
    free(pool);
    return 0;
fail:
    fprintf(stderr, "selfsup %s: %s\n", cmd, ss_errmsg());
    ss_loader_free(L);
    ss_model_free(&m);
    ss_aux_free(aux);
    run_free(&r);
    ss_augment_free(aug);
    free(cfg);
    free(kind_from_ckpt);
    free(soft);
    free(eval_idx);
    free(base_scale);
    ss_graph_free(g2);
    ss_augment_free(strong);
    free(is_lab);
    free(pool);
    return 1;
}

int cmd_train(int argc, char **argv) { return train_main(argc, argv, "train"); }
int cmd_finetune(int argc, char **argv) { return train_main(argc, argv, "finetune"); }
