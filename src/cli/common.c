#include "cli/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/dist.h"
#include "selfsup/fileio.h"

int cli_read_precision(ss_args *a, const char *def, ss_precision *out)
{
    const char *name = args_str(a, "precision", def);
    ss_precision want;
    if (!ss_precision_parse(name, &want)) {
        ss_seterr(SS_ERR_INVALID, "--precision '%s': expected fp32 or bf16", name);
        return 0;
    }
    *out = ss_set_precision(want);
    if (*out != want)
        fprintf(stderr, "selfsup: --precision bf16: this CPU has no AVX-512 BF16 (or this build lacks the kernel); "
                        "running in fp32\n");
    return 1;
}

/* Each group of flags is read only by the commands that use it (RF_*): a
 * flag outside the command's groups is never read, so ss_args_finish()
 * names it ("'knn' does not take --lr"). Unread fields keep their defaults. */
int run_read_flags(image_run *r, ss_args *a, unsigned use, int *ok)
{
#define STR(grp, key, def) ((use & (grp)) ? args_str(a, key, def) : (def))
#define INT(grp, key, def, lo, hi) ((use & (grp)) ? args_int(a, key, def, lo, hi, ok) : (def))
#define FLT(grp, key, def, lo, hi) ((use & (grp)) ? args_float(a, key, def, lo, hi, ok) : (def))
#define FLAG(grp, key) ((use & (grp)) ? args_flag(a, key) : 0)
    r->data = args_str(a, "data", r->data ? r->data : "/usr/share/datasets/fashion-mnist");
    r->test_data = args_str(a, "test-data", r->test_data);
    r->labels = STR(RF_LABELS, "labels", r->labels ? r->labels : "100%");
    r->model = STR(RF_MODEL, "model", r->model);
    r->encoder = STR(RF_TRAIN, "encoder", r->encoder ? r->encoder : "convnet-s");
    r->out = STR(RF_TRAIN, "out", r->out);
    r->augment = STR(RF_TRAIN, "augment", r->augment);
    r->optimizer = STR(RF_TRAIN, "optimizer", r->optimizer ? r->optimizer : "adamw");
    r->epochs = (int)INT(RF_EPOCHS, "epochs", r->epochs, 0, 100000);
    r->batch = (int)INT(RF_TRAIN, "batch", r->batch ? r->batch : 64, 1, 65536);
    r->threads = (int)args_int(a, "threads", r->threads ? r->threads : 2, 1, 256, ok);
    r->workers = (int)INT(RF_TRAIN, "workers", r->workers ? r->workers : 1, 1, 64);
    r->eval_every = (int)INT(RF_SUPERVISED, "eval-every", r->eval_every, 0, 100000);
    r->lr = (float)FLT(RF_TRAIN, "lr", r->lr > 0 ? r->lr : 1e-3, 0, 100);
    r->wd = (float)FLT(RF_TRAIN, "wd", r->wd >= 0 ? r->wd : 0.05, 0, 10);
    r->warmup = (float)FLT(RF_TRAIN, "warmup", r->warmup, 0, 1000);
    r->label_smoothing = (float)FLT(RF_SUPERVISED, "label-smoothing", r->label_smoothing, 0, 0.99);
    r->clip = (float)FLT(RF_TRAIN, "clip", r->clip, 0, 1e6);
    r->val_frac = FLT(RF_SUPERVISED, "val", 0, 0, 0.9);
    r->seed = (uint64_t)args_int(a, "seed", (long)r->seed, 0, 1L << 40, ok);
    r->max_images = args_int(a, "max-images", 0, 0, 1L << 40, ok);
    r->json = args_flag(a, "json");
    r->resume = FLAG(RF_TRAIN, "resume");
    r->quiet = args_flag(a, "quiet") || r->json;
    r->check_finite = FLAG(RF_TRAIN, "check-finite");
    r->sync_bn = FLAG(RF_TRAIN, "sync-bn");
    const char *on_nan = STR(RF_TRAIN, "on-nan", "stop");
    if (!strcmp(on_nan, "rollback")) r->on_nan = SS_ON_NAN_ROLLBACK;
    else if (!strcmp(on_nan, "stop")) r->on_nan = SS_ON_NAN_STOP;
    else {
        ss_seterr(SS_ERR_INVALID, "--on-nan '%s': expected stop or rollback", on_nan);
        *ok = 0;
    }
    r->max_rollbacks = (int)INT(RF_TRAIN, "max-rollbacks", 3, 0, 1000);
    r->debug_nan_at_step = INT(RF_TRAIN, "debug-nan-at-step", 0, 0, 1L << 40);
#undef STR
#undef INT
#undef FLT
#undef FLAG
    if (!cli_read_precision(a, "fp32", &r->precision)) *ok = 0;
    /* --labels and --augment are checked now, naming the flag, not after the
     * data set has loaded */
    if (*ok && ss_subset_check(r->labels)) {
        char why[512];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        ss_seterr(SS_ERR_INVALID, "--labels: %s", why);
        *ok = 0;
    }
    if (*ok && (use & RF_TRAIN) && args_str(a, "encoder", NULL) && strcmp(r->encoder, "convnet-s") && strcmp(r->encoder, "vit-t") &&
        strcmp(r->encoder, "resnet18")) {
        ss_seterr(SS_ERR_INVALID, "--encoder '%.100s': expected convnet-s, vit-t or resnet18%s", r->encoder,
                  strcmp(r->encoder, "text-s") ? "" : " (text-s is the text encoder: give --text)");
        *ok = 0;
    }
    ss_augment *aug = NULL;
    if (*ok && r->augment && ss_augment_parse(r->augment, &aug)) {
        char why[512];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        ss_seterr(SS_ERR_INVALID, "--augment: %s", why);
        *ok = 0;
    }
    ss_augment_free(aug);
    ss_set_threads(r->threads);
    return *ok;
}

void run_fit_nan_opts(const image_run *r, ss_fit_config *fc)
{
    fc->on_nan = r->on_nan;
    fc->max_rollbacks = r->max_rollbacks;
    fc->debug_nan_at_step = r->debug_nan_at_step;
}

int default_epochs(int64_t n)
{
    if (n <= 0) return 1;
    long e = 120000 / n;
    if (e < 15) e = 15;
    if (e > 200) e = 200;
    return (int)e;
}

const char *default_sup_augment(int c, int h)
{
    (void)c;
    return h <= 28 ? "crop:2,hflip" : "crop:4,hflip";
}

ss_status run_load_data(image_run *r, int need_labels)
{
    ss_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.split = "train";
    lo.max_images = r->max_images;
    ss_status s = ss_dataset_load(r->data, &lo, &r->train);
    if (s) return s;
    char tpath[1024];
    const char *tsplit = "test";
    const char *tp = r->test_data;
    if (!tp) {
        if (ss_dataset_default_test_path(r->data, tpath, sizeof tpath, &tsplit) == SS_OK) tp = tpath;
    }
    if (tp) {
        ss_load_opts to = lo;
        to.split = r->test_data ? "test" : tsplit;
        to.max_images = r->max_images ? (r->max_images < 10000 ? r->max_images : 10000) : 0;
        to.target_h = r->train.h;
        to.target_w = r->train.w;
        to.channels = r->train.c;
        if ((s = ss_dataset_load(tp, &to, &r->test))) return s;
    } else if (need_labels) {
        return ss_seterr(SS_ERR_IO, "%s: no test split found next to it; give --test-data", r->data);
    }
    /* Normalisation from the (unlabelled) training images. */
    int64_t plane = (int64_t)r->train.h * r->train.w;
    for (int c = 0; c < 3; c++) {
        r->mean[c] = 0;
        r->std[c] = 1;
    }
    for (int c = 0; c < r->train.c && c < 3; c++) {
        double sum = 0, sq = 0;
        int64_t cnt = 0;
        int64_t step = r->train.n > 10000 ? r->train.n / 10000 : 1;
        for (int64_t i = 0; i < r->train.n; i += step) {
            const uint8_t *p = r->train.pixels + (i * r->train.c + c) * plane;
            for (int64_t j = 0; j < plane; j++) {
                double v = p[j] / 255.0;
                sum += v;
                sq += v * v;
            }
            cnt += plane;
        }
        double mu = sum / (double)cnt;
        r->mean[c] = (float)mu;
        r->std[c] = (float)sqrt(fmax(sq / (double)cnt - mu * mu, 1e-6));
    }
    if (need_labels) {
        if (!r->train.labels) return ss_seterr(SS_ERR_INVALID, "%s: the data has no labels", r->data);
        int32_t *pool = NULL, *tr = NULL;
        int64_t npool = 0, ntr = 0;
        if (r->val_frac > 0) {
            if ((s = ss_split_train_val(&r->train, NULL, r->train.n, r->val_frac, r->seed, &tr, &ntr, &r->val_idx,
                                        &r->nval)))
                return s;
            pool = tr;
            npool = ntr;
            s = ss_subset_parse_draw_from(&r->train, pool, npool, r->labels, r->seed, &r->lab_idx, &r->nlab);
            free(tr);
        } else {
            s = ss_subset_parse_draw(&r->train, r->labels, r->seed, &r->lab_idx, &r->nlab);
        }
        if (s) return s;
    }
    if (r->out && ss_dist_rank() == 0) { /* data parallel: rank 0 writes */
        if ((s = ss_mkdir_p(r->out))) return s;
        char p[1100];
        if (r->lab_idx) {
            snprintf(p, sizeof p, "%s/labelled_indices.txt", r->out);
            if ((s = ss_indices_write(p, r->lab_idx, r->nlab))) return s;
        }
        if (r->val_idx) {
            snprintf(p, sizeof p, "%s/val_indices.txt", r->out);
            if ((s = ss_indices_write(p, r->val_idx, r->nval))) return s;
        }
    }
    return SS_OK;
}

void run_free(image_run *r)
{
    ss_dataset_free(&r->train);
    ss_dataset_free(&r->test);
    free(r->lab_idx);
    free(r->val_idx);
    cJSON_Delete(r->config);
}

void run_config_json(image_run *r, const char *command)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "command", command);
    cJSON_AddStringToObject(c, "data", r->data);
    if (r->test_data) cJSON_AddStringToObject(c, "test_data", r->test_data);
    cJSON_AddStringToObject(c, "labels", r->labels);
    cJSON_AddNumberToObject(c, "labelled_images", (double)r->nlab);
    cJSON_AddStringToObject(c, "encoder", r->encoder);
    cJSON_AddNumberToObject(c, "epochs", r->epochs);
    cJSON_AddNumberToObject(c, "batch", r->batch);
    cJSON_AddStringToObject(c, "optimizer", r->optimizer);
    cJSON_AddNumberToObject(c, "lr", r->lr);
    cJSON_AddNumberToObject(c, "weight_decay", r->wd);
    cJSON_AddNumberToObject(c, "warmup_epochs", r->warmup);
    cJSON_AddNumberToObject(c, "label_smoothing", r->label_smoothing);
    cJSON_AddNumberToObject(c, "clip_norm", r->clip);
    cJSON_AddNumberToObject(c, "val_fraction", r->val_frac);
    cJSON_AddNumberToObject(c, "seed", (double)r->seed);
    cJSON_AddNumberToObject(c, "threads", r->threads);
    cJSON_AddStringToObject(c, "precision", ss_precision_name(r->precision));
    cJSON_AddNumberToObject(c, "processes", ss_dist_world());
    if (r->sync_bn) cJSON_AddBoolToObject(c, "sync_bn", 1);
    if (r->augment) cJSON_AddStringToObject(c, "augment", r->augment);
    if (r->model) cJSON_AddStringToObject(c, "model", r->model);
    cJSON *m = cJSON_AddArrayToObject(c, "mean"), *sd = cJSON_AddArrayToObject(c, "std");
    for (int i = 0; i < r->train.c && i < 3; i++) {
        cJSON_AddItemToArray(m, cJSON_CreateNumber(r->mean[i]));
        cJSON_AddItemToArray(sd, cJSON_CreateNumber(r->std[i]));
    }
    cJSON_Delete(r->config);
    r->config = c;
}

char *run_config_string(image_run *r) { return cJSON_PrintUnformatted(r->config); }

void print_kv_result(int json, const char *what, cJSON *obj)
{
    if (ss_dist_rank() != 0) return; /* data parallel: rank 0 reports */
    if (json) {
        char *s = cJSON_PrintUnformatted(obj);
        printf("%s\n", s);
        free(s);
        return;
    }
    printf("%s:", what);
    cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (cJSON_IsNumber(it)) {
            double v = it->valuedouble;
            if (strstr(it->string, "acc")) printf(" %s %.2f%%", it->string, 100 * v);
            else if (v == floor(v) && fabs(v) < 1e15) printf(" %s %.0f", it->string, v);
            else printf(" %s %.4g", it->string, v);
        } else if (cJSON_IsString(it)) {
            printf(" %s %s", it->string, it->valuestring);
        }
    }
    printf("\n");
}
