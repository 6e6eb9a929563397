/* selfsup pretrain --method M: self-supervised pretraining on unlabelled
 * images (labels, if any, are ignored except by the optional k-NN monitor). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "selfsup/dist.h"
#include "selfsup/knn.h"
#include "selfsup/ssl.h"

typedef struct pre_ctx {
    const ss_method *meth;
    void *state;
    ss_model *m;
    image_run *r;
    int knn_every, epochs;
    double last_knn;
} pre_ctx;

static ss_tensor *pre_loss(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    pre_ctx *p = ctx;
    return p->meth->loss(p->state, g, p->m, b, correct, count);
}

static void pre_after(void *ctx, int64_t step, double progress)
{
    pre_ctx *p = ctx;
    (void)step;
    if (p->meth->after_step) p->meth->after_step(p->state, p->m, progress);
}

/* --max-steps inside an epoch: the method's images (MAE's grid) for the
 * epoch it stopped in; the k-NN monitor keeps to whole epochs */
static ss_status pre_stopped(void *ctx, int64_t epoch)
{
    pre_ctx *p = ctx;
    return p->meth->epoch_end ? p->meth->epoch_end(p->state, p->m, &p->r->test, p->r->out, epoch) : SS_OK;
}

static ss_status pre_epoch_end(void *ctx, int64_t epoch, double *metric)
{
    pre_ctx *p = ctx;
    ss_status s = SS_OK;
    if (p->meth->epoch_end && (s = p->meth->epoch_end(p->state, p->m, &p->r->test, p->r->out, epoch))) return s;
    /* Online k-NN monitor (solo-learn style): 20-NN on frozen features of a
     * labelled slice of train, scored on the test split. */
    int last = epoch + 1 == p->epochs;
    if (p->knn_every > 0 && p->r->train.labels && p->r->test.n && (last || (epoch + 1) % p->knn_every == 0)) {
        double acc20, acc200;
        if ((s = ss_knn_eval(p->m, &p->r->train, p->r->lab_idx, p->r->nlab, &p->r->test, 5000, 0.07f, &acc20, &acc200)))
            return s;
        *metric = acc20;
        p->last_knn = acc20;
    }
    return SS_OK;
}

int cmd_pretrain(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "pretrain", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup pretrain --method rotation|simclr|mae|byol|vicreg [--data PATH]\n"
               "  (text: --method mlm|docbow --text CORPUS; 'selfsup pretrain --text x --help')\n"
               "  [--encoder convnet-s|vit-t|resnet18] [--epochs N] [--batch N] [--lr X] [--wd X] [--optimizer adamw|sgd|lars]\n"
               "  [--augment SPEC] [--temperature 0.2] [--mask-ratio 0.75] [--ema 0.99] [--warmup EPOCHS]\n"
               "  [--knn-every N (0 = off)] [--knn-labels 10%%] [--seed 0] [--threads 2] [--precision fp32|bf16] [--workers 1]\n"
               "  [--out RUN_DIR (default runs/pretrain)] [--resume] [--max-steps N] [--quiet] [--checkpoint-every STEPS] [--checkpoint-minutes M] [--json]\n"
               "  [--sync-bn (mpirun: batch norm over all ranks; --batch is per rank)]\n"
               "  [--on-nan stop|rollback] [--max-rollbacks 3] [--check-finite] [--clip NORM]\n"
               "  [--test-data PATH (the k-NN monitor's test split; default: found beside --data)] [--max-images N]\n"
               "Defaults per method are printed into RUN_DIR/config.json.\n");
        return 0;
    }
    const char *mname = args_str(&a, "method", "simclr");
    const ss_method *meth = ss_method_find(mname);
    if (!meth && (!strcmp(mname, "mlm") || !strcmp(mname, "docbow"))) {
        fprintf(stderr, "selfsup pretrain: --method %s is a text method: give the corpus with --text CORPUS "
                        "(see 'selfsup pretrain --text x --help')\n", mname);
        return 2;
    }
    if (!meth) return cli_fail();
    image_run r;
    memset(&r, 0, sizeof r);
    r.encoder = meth->default_encoder;
    r.lr = meth->default_lr;
    r.wd = meth->default_wd;
    r.batch = meth->default_batch;
    r.optimizer = meth->default_optimizer;
    r.epochs = 0;
    r.warmup = -1;
    r.labels = "10%";
    int ok = 1;
    r.warmup = 0;
    float warm = (float)args_float(&a, "warmup", -1, -1, 1000, &ok);
    /* no warm start (--model), no labelled training (its monitor is --knn-every) */
    run_read_flags(&r, &a, RF_EPOCHS | RF_TRAIN, &ok);
    if (ok && args_has(&a, "labels")) {
        ss_seterr(SS_ERR_INVALID, "'pretrain' learns without labels: --labels has no use here (--knn-labels picks the "
                                  "labelled subset of the optional k-NN monitor)");
        ok = 0;
    }
    ss_method_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.temperature = (float)args_float(&a, "temperature", 0.2, 1e-3, 10, &ok);
    mo.mask_ratio = (float)args_float(&a, "mask-ratio", 0.75, 0.05, 0.95, &ok);
    mo.ema_base = (float)args_float(&a, "ema", 0.99, 0.5, 1, &ok);
    int knn_every = (int)args_int(&a, "knn-every", -1, 0, 100000, &ok);
    const char *knn_labels = args_str(&a, "knn-labels", NULL);
    if (ok && knn_labels && ss_subset_check(knn_labels)) {
        char why[512];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        ss_seterr(SS_ERR_INVALID, "--knn-labels: %s", why);
        ok = 0;
    }
    long ck_steps = args_int(&a, "checkpoint-every", 0, 0, 1L << 40, &ok);
    double ck_min = args_float(&a, "checkpoint-minutes", 0, 0, 1e6, &ok);
    long max_steps = args_int(&a, "max-steps", 0, 0, 1L << 40, &ok);
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (knn_labels) r.labels = knn_labels;
    mo.seed = r.seed;
    if (!r.out) r.out = "runs/pretrain";
    /* Labels are only for the monitor: never needed. */
    ss_status s = run_load_data(&r, 0);
    if (!s && r.train.labels && knn_every != 0)
        s = ss_subset_parse_draw(&r.train, r.labels, r.seed, &r.lab_idx, &r.nlab);
    if (s) {
        run_free(&r);
        return cli_fail();
    }
    if (!r.epochs) r.epochs = r.train.n >= 50000 ? 10 : 30;
    if (knn_every < 0) knn_every = r.epochs > 10 ? r.epochs / 5 : r.epochs;
    if (!r.augment) r.augment = meth->default_augment(r.train.c, r.train.h);
    r.warmup = warm >= 0 ? warm : (r.epochs >= 10 ? 1.0f : 0.0f);
    ss_augment *aug = NULL;
    if (strcmp(r.augment, "none") && ss_augment_parse(r.augment, &aug)) {
        run_free(&r);
        return cli_fail();
    }
    ss_encoder_config ec = {.kind = r.encoder, .in_chans = r.train.c, .img_size = r.train.h};
    ss_model m;
    void *state = NULL;
    ss_loader *L = NULL;
    char *cfg = NULL;
    s = ss_model_create(&m, &ec, 0);
    if (!s) s = meth->create(&m, &mo, &state);
    if (!s) s = ss_model_finalize(&m, r.seed);
    if (!s && meth->setup) s = meth->setup(state, &m);
    if (s) goto fail;
    memcpy(m.mean, r.mean, sizeof m.mean);
    memcpy(m.std, r.std, sizeof m.std);
    run_config_json(&r, "pretrain");
    cJSON_AddStringToObject(r.config, "method", meth->name);
    cJSON_AddNumberToObject(r.config, "temperature", mo.temperature);
    cJSON_AddNumberToObject(r.config, "mask_ratio", mo.mask_ratio);
    cJSON_AddNumberToObject(r.config, "ema_base", mo.ema_base);
    cJSON_AddNumberToObject(r.config, "unlabelled_images", (double)r.train.n);
    cfg = run_config_string(&r);
    ss_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.batch = r.batch;
    lo.shuffle = 1;
    lo.drop_last = 1;
    lo.seed = r.seed;
    lo.workers = r.workers;
    lo.views = meth->views;
    lo.rank = ss_dist_rank(); /* mpirun: this rank's slice of each global batch */
    lo.world = ss_dist_world();
    for (int v = 0; v < meth->views; v++) {
        lo.transform[v] = aug ? ss_augment_transform : NULL;
        lo.transform_ctx[v] = aug;
    }
    memcpy(lo.mean, r.mean, sizeof lo.mean);
    memcpy(lo.std, r.std, sizeof lo.std);
    if ((s = ss_loader_new(&r.train, &lo, &L))) goto fail;
    ss_opt_kind kind;
    if ((s = ss_opt_parse(r.optimizer, &kind))) goto fail;
    ss_fit_config fc;
    memset(&fc, 0, sizeof fc);
    fc.epochs = r.epochs;
    fc.lr = r.lr;
    fc.final_lr = r.lr * 0.01f;
    fc.warmup_epochs = r.warmup;
    fc.opt = ss_opt_defaults(kind);
    fc.opt.weight_decay = r.wd;
    fc.clip_norm = r.clip;
    fc.seed = r.seed;
    fc.run_dir = r.out;
    fc.config_json = cfg;
    char what[64];
    snprintf(what, sizeof what, "%s", meth->name);
    fc.what = what;
    fc.resume = r.resume;
    fc.quiet = r.quiet;
    fc.check_finite = r.check_finite;
    fc.ckpt_every_steps = ck_steps;
    fc.ckpt_every_minutes = ck_min;
    fc.max_steps = max_steps;
    fc.sync_bn = r.sync_bn;
    run_fit_nan_opts(&r, &fc);
    if (!strcmp(meth->name, "byol")) { /* the target network is training state too */
        m.extra = ss_byol_target(state);
        m.extra_prefix = "target.";
    }
    pre_ctx pc = {meth, state, &m, &r, knn_every, r.epochs, NAN};
    ss_fit_hooks h = {&pc, pre_loss, pre_after, pre_epoch_end, NULL, NULL, pre_stopped};
    ss_fit_result res;
    if ((s = ss_fit(&m, L, &fc, &h, &res))) goto fail;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", "pretrain");
    cJSON_AddStringToObject(o, "method", meth->name);
    cJSON_AddStringToObject(o, "encoder", m.ecfg.kind);
    cJSON_AddNumberToObject(o, "epochs", r.epochs);
    cJSON_AddNumberToObject(o, "final_loss", res.final_loss);
    if (isfinite(pc.last_knn)) cJSON_AddNumberToObject(o, "knn20_acc", pc.last_knn);
    cJSON_AddNumberToObject(o, "train_seconds", res.seconds);
    cJSON_AddNumberToObject(o, "data_wait_seconds", res.data_wait_seconds);
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/last.safetensors", r.out);
    cJSON_AddStringToObject(o, "checkpoint", ck);
    print_kv_result(r.json, "pretrain", o);
    cJSON_Delete(o);
    ss_fit_result_free(&res);
    ss_loader_free(L);
    if (meth->destroy) meth->destroy(state);
    ss_model_free(&m);
    ss_augment_free(aug);
    run_free(&r);
    free(cfg);
    return 0;
fail:
    fprintf(stderr, "selfsup pretrain: %s\n", ss_errmsg());
    ss_loader_free(L);
    if (meth->destroy && state) meth->destroy(state);
    ss_model_free(&m);
    ss_augment_free(aug);
    run_free(&r);
    free(cfg);
    return 1;
}
