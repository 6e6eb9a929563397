/* selfsup scenes: compose detection scenes (PNG + COCO JSON) from a
 * labelled image dataset.
 * selfsup detect train|eval|predict: a CenterNet-style detector on an
 * encoder's feature map, trained from scratch or from a pretrained
 * checkpoint; COCO-style mAP; predictions drawn on PNGs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "selfsup/detect.h"
#include "selfsup/fileio.h"
#include "selfsup/plot.h"
#include "selfsup/safetensors.h"

/* ---- shared ------------------------------------------------------------------ */
/* path: a folder holding annotations.json, or the JSON file itself. */
static ss_status load_det(const char *path, const char *images, int size, int channels, ss_det_dataset *d)
{
    char js[1100];
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".json")) snprintf(js, sizeof js, "%s", path);
    else snprintf(js, sizeof js, "%s/annotations.json", path);
    ss_coco_opts o = {channels, size, 0};
    return ss_coco_load(js, images, &o, d);
}

static void set_mean_std(const ss_dataset *d, const int32_t *idx, int64_t n, float *mean, float *std)
{
    int64_t plane = (int64_t)d->h * d->w;
    for (int c = 0; c < d->c; c++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *p = d->pixels + (size_t)idx[i] * d->c * plane + (size_t)c * plane;
            for (int64_t j = 0; j < plane; j++) {
                double v = p[j] / 255.0;
                s += v;
                s2 += v * v;
            }
        }
        double cnt = (double)n * plane, mu = cnt > 0 ? s / cnt : 0, var = cnt > 0 ? s2 / cnt - mu * mu : 1;
        mean[c] = (float)mu;
        std[c] = (float)sqrt(var > 1e-6 ? var : 1e-6);
    }
}

/* Detector checkpoint: model metadata plus "config" JSON with det_classes
 * and det_class_names. */
typedef struct det_reg {
    ss_detector *det;
    int nclasses;
} det_reg;

static ss_status register_det(void *ctx, ss_model *m)
{
    det_reg *r = ctx;
    return ss_detector_register(r->det, m, r->nclasses);
}

static void free_names(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static ss_status load_detector(const char *path, ss_model *m, ss_detector *det, char ***names)
{
    memset(m, 0, sizeof *m);
    char *cfg = ss_checkpoint_meta(path, "config");
    if (!cfg) {
        ss_safetensors *st = NULL; /* a missing or broken file says so, not "no metadata" */
        ss_status s = ss_st_open(path, &st);
        ss_st_close(st);
        if (s) return s;
        return ss_seterr(SS_ERR_FORMAT, "%s: no 'config' metadata (not a detector checkpoint?)", path);
    }
    cJSON *c = cJSON_Parse(cfg);
    free(cfg);
    cJSON *nc = cJSON_GetObjectItemCaseSensitive(c, "det_classes");
    cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "det_class_names");
    if (!cJSON_IsNumber(nc) || nc->valuedouble < 1 || nc->valuedouble > 100000 || !cJSON_IsArray(nm) ||
        cJSON_GetArraySize(nm) != (int)nc->valuedouble) {
        cJSON_Delete(c);
        return ss_seterr(SS_ERR_FORMAT, "%s: config metadata has no valid det_classes / det_class_names (not a "
                         "detector checkpoint? train one with 'selfsup detect train')", path);
    }
    det_reg r = {det, (int)nc->valuedouble};
    *names = calloc((size_t)r.nclasses, sizeof(char *));
    for (int i = 0; i < r.nclasses; i++) {
        cJSON *x = cJSON_GetArrayItem(nm, i);
        (*names)[i] = strdup(cJSON_IsString(x) ? x->valuestring : "?");
    }
    cJSON_Delete(c);
    ss_status s = ss_checkpoint_load_model(path, m, register_det, &r);
    if (s) {
        free_names(*names, r.nclasses);
        *names = NULL;
    }
    return s;
}

/* eval and predict: the detector from `model`, the scenes from `data` at
 * its input size, with the same classes. On failure everything is freed. */
static ss_status open_detector(const char *model, const char *data, const char *images, ss_model *m,
                               ss_detector *det, char ***names, ss_det_dataset *d)
{
    memset(d, 0, sizeof *d);
    *names = NULL;
    ss_status s = load_detector(model, m, det, names);
    if (!s) s = load_det(data, images, m->ecfg.img_size, m->ecfg.in_chans, d);
    if (!s && d->images.nclasses != det->nclasses)
        s = ss_seterr(SS_ERR_INVALID, "%s: %d classes, the detector has %d", data, d->images.nclasses, det->nclasses);
    if (s) {
        ss_det_dataset_free(d);
        if (*names) free_names(*names, det->nclasses);
        *names = NULL;
        ss_model_free(m);
    }
    return s;
}

/* Predict on all of d and evaluate. */
static ss_status evaluate_det(const ss_model *m, const ss_detector *det, const ss_det_dataset *d, int k, float thresh,
                              float nms, ss_det_metrics *met)
{
    int64_t n = d->images.n;
    ss_detection *out = malloc(sizeof(ss_detection) * (size_t)(n * k));
    int64_t *start = malloc(sizeof(int64_t) * (size_t)(n + 1));
    ss_status s = (!out || !start) ? ss_seterr(SS_ERR_NOMEM, "detect eval: out of memory") : SS_OK;
    if (!s) s = ss_detector_predict(m, det, &d->images, NULL, n, 64, k, thresh, nms, out, start);
    if (!s) s = ss_det_evaluate(d->objs, d->start, out, start, n, det->nclasses, 100, met);
    free(out);
    free(start);
    return s;
}

static cJSON *metrics_json(const ss_det_metrics *met, char **names)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "map50", met->map50);
    cJSON_AddNumberToObject(o, "map75", met->map75);
    cJSON_AddNumberToObject(o, "map", met->map);
    cJSON *pc = cJSON_CreateObject();
    for (int c = 0; c < met->nclasses; c++) {
        if (!isfinite(met->ap[c])) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "ap50", met->ap50[c]);
        cJSON_AddNumberToObject(x, "ap", met->ap[c]);
        cJSON_AddItemToObject(pc, names ? names[c] : "?", x);
    }
    cJSON_AddItemToObject(o, "per_class", pc);
    return o;
}

/* ---- selfsup scenes ----------------------------------------------------------- */
int cmd_scenes(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "scenes", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup scenes --data PATH --out DIR [--split train|test] [--n 1000] [--size 64] [--seed 0]\n"
               "  [--min-objects 1] [--max-objects 4] [--min-scale 0.22] [--max-scale 0.6] [--max-overlap 0.2]\n"
               "  [--background texture|none]\n"
               "Composes labelled items (Fashion-MNIST, CIFAR-10 folders, any labelled dataset) at random positions\n"
               "and scales on size x size canvases; writes DIR/images/*.png and DIR/annotations.json (COCO).\n");
        return 0;
    }
    ss_scene_opts o = ss_scene_defaults();
    int ok = 1;
    const char *data = args_str(&a, "data", "/usr/share/datasets/fashion-mnist");
    const char *out = args_str(&a, "out", NULL);
    const char *split = args_str(&a, "split", "train");
    const char *bg = args_str(&a, "background", "texture");
    o.n = args_int(&a, "n", o.n, 1, 10000000, &ok);
    o.size = (int)args_int(&a, "size", o.size, 16, 4096, &ok);
    o.seed = (uint64_t)args_int(&a, "seed", 0, 0, 1L << 40, &ok);
    o.min_objects = (int)args_int(&a, "min-objects", o.min_objects, 1, 64, &ok);
    o.max_objects = (int)args_int(&a, "max-objects", o.max_objects, 1, 64, &ok);
    o.min_scale = (float)args_float(&a, "min-scale", o.min_scale, 0.01, 1, &ok);
    o.max_scale = (float)args_float(&a, "max-scale", o.max_scale, 0.01, 1, &ok);
    o.max_overlap = (float)args_float(&a, "max-overlap", o.max_overlap, 0, 1, &ok);
    int json = args_flag(&a, "json");
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!out) {
        fprintf(stderr, "selfsup scenes: --out DIR is required\n");
        return 2;
    }
    if (strcmp(bg, "texture") && strcmp(bg, "none")) {
        fprintf(stderr, "selfsup scenes: --background must be texture or none (got '%s')\n", bg);
        return 2;
    }
    o.texture = !strcmp(bg, "texture");
    double t0 = ss_now();
    ss_dataset src;
    ss_load_opts lo = {.split = split};
    if (ss_dataset_load(data, &lo, &src)) return cli_fail();
    ss_det_dataset d;
    ss_status s = ss_scenes_generate(&src, &o, &d);
    ss_dataset_free(&src);
    if (s) return cli_fail();
    s = ss_det_dataset_write(&d, out);
    if (!s) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "out", out);
        cJSON_AddNumberToObject(r, "scenes", (double)d.images.n);
        cJSON_AddNumberToObject(r, "objects", (double)d.nobjs);
        cJSON_AddNumberToObject(r, "classes", d.images.nclasses);
        cJSON_AddNumberToObject(r, "seconds", ss_now() - t0);
        print_kv_result(json, "scenes", r);
        cJSON_Delete(r);
    }
    ss_det_dataset_free(&d);
    return s ? cli_fail() : 0;
}

/* ---- selfsup detect train ------------------------------------------------------ */
typedef struct det_ctx {
    ss_model *m;
    ss_detector *det;
    const ss_det_dataset *train, *val;
    float size_weight;
    int flip, eval_every, epochs, k;
    uint64_t seed;
    ss_det_metrics last;
    char **names;
} det_ctx;

static ss_tensor *det_loss(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    (void)correct;
    (void)count;
    det_ctx *c = ctx;
    const ss_det_dataset *d = c->train;
    int64_t n = b->n, img = (int64_t)b->c * b->h * b->w;
    const ss_det_object **objs = ss_arena_alloc(ss_graph_arena(g), sizeof(void *) * (size_t)n);
    int64_t *counts = ss_arena_alloc(ss_graph_arena(g), sizeof(int64_t) * (size_t)n);
    if (!objs || !counts) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = b->idx[i], o0 = d->start[k], no = d->start[k + 1] - o0;
        counts[i] = no;
        objs[i] = d->objs + o0;
        /* Horizontal flip of image and boxes, seeded by (seed, epoch, index). */
        if (!c->flip || !(ss_mix64(c->seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)b->epoch << 32) ^ (uint64_t)k) & 1))
            continue;
        float *x = b->x[0] + i * img;
        for (int64_t r = 0; r < (int64_t)b->c * b->h; r++) {
            float *row = x + r * b->w;
            for (int j = 0; j < b->w / 2; j++) {
                float t = row[j];
                row[j] = row[b->w - 1 - j];
                row[b->w - 1 - j] = t;
            }
        }
        ss_det_object *fo = ss_arena_alloc(ss_graph_arena(g), sizeof(ss_det_object) * (size_t)(no ? no : 1));
        if (!fo) return NULL;
        for (int64_t j = 0; j < no; j++) {
            fo[j] = d->objs[o0 + j];
            fo[j].box.x0 = (float)b->w - d->objs[o0 + j].box.x1;
            fo[j].box.x1 = (float)b->w - d->objs[o0 + j].box.x0;
        }
        objs[i] = fo;
    }
    ss_tensor *x = ss_wrap(g, b->x[0], 4, (int64_t[]){n, b->c, b->h, b->w});
    return ss_detector_loss(g, c->m, c->det, x, objs, counts, c->size_weight);
}

static ss_status det_epoch_end(void *ctx, int64_t epoch, double *metric)
{
    det_ctx *c = ctx;
    int last = epoch + 1 == c->epochs;
    if (!c->val || (!last && (c->eval_every <= 0 || (epoch + 1) % c->eval_every != 0))) return SS_OK;
    ss_det_metrics_free(&c->last);
    ss_status s = evaluate_det(c->m, c->det, c->val, c->k, 0.01f, 0.5f, &c->last);
    if (s) return s;
    *metric = c->last.map;
    return SS_OK;
}

static int detect_train(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "detect train", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup detect train --data SCENES [--val-data SCENES] [--images DIR] [--n-train N (0 = all)]\n"
               "  [--model PRETRAINED (start from its encoder)] [--encoder convnet-s|resnet18] [--epochs 40]\n"
               "  [--batch 16] [--lr 2e-3] [--wd 1e-4] [--warmup 1] [--encoder-lr-scale 1] [--size-weight 0.1]\n"
               "  [--no-flip] [--eval-every N (0 = the last epoch only)] [--seed 0] [--threads 2]\n"
               "  [--precision fp32|bf16] [--out RUN_DIR] [--resume] [--max-steps N] [--json]\n"
               "SCENES: a folder with annotations.json (+ images/) or a COCO JSON file. mAP is evaluated on\n"
               "--val-data (e.g. scenes made with 'selfsup scenes --split test').\n");
        return 0;
    }
    int ok = 1;
    const char *data = args_str(&a, "data", NULL), *val = args_str(&a, "val-data", NULL);
    const char *images = args_str(&a, "images", NULL), *model = args_str(&a, "model", NULL);
    const char *encoder = args_str(&a, "encoder", "convnet-s"), *out = args_str(&a, "out", NULL);
    long ntrain = args_int(&a, "n-train", 0, 0, 1L << 40, &ok);
    int epochs = (int)args_int(&a, "epochs", 40, 1, 100000, &ok);
    int batch = (int)args_int(&a, "batch", 16, 1, 4096, &ok);
    float lr = (float)args_float(&a, "lr", 2e-3, 0, 10, &ok);
    float wd = (float)args_float(&a, "wd", 1e-4, 0, 10, &ok);
    float warmup = (float)args_float(&a, "warmup", 1, 0, 1000, &ok);
    float enc_scale = (float)args_float(&a, "encoder-lr-scale", 1, 0, 10, &ok);
    float size_weight = (float)args_float(&a, "size-weight", 0.1, 0, 100, &ok);
    int eval_every = (int)args_int(&a, "eval-every", 0, 0, 100000, &ok);
    uint64_t seed = (uint64_t)args_int(&a, "seed", 0, 0, 1L << 40, &ok);
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    long max_steps = args_int(&a, "max-steps", 0, 0, 1L << 40, &ok);
    int resume = args_flag(&a, "resume");
    int flip = !args_flag(&a, "no-flip"), json = args_flag(&a, "json"), quiet = args_flag(&a, "quiet") || json;
    ss_precision prec;
    if (!cli_read_precision(&a, "fp32", &prec)) ok = 0;
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!data) {
        fprintf(stderr, "selfsup detect train: --data SCENES is required\n");
        return 2;
    }
    ss_set_threads(threads);
    ss_det_dataset tr, va;
    memset(&va, 0, sizeof va);
    if (load_det(data, images, 0, 0, &tr)) return cli_fail();
    if (val && load_det(val, NULL, tr.images.h, tr.images.c, &va)) {
        ss_det_dataset_free(&tr);
        return cli_fail();
    }
    if (val && va.images.nclasses != tr.images.nclasses) {
        fprintf(stderr, "selfsup detect train: %s has %d classes, %s has %d\n", data, tr.images.nclasses, val,
                va.images.nclasses);
        ss_det_dataset_free(&tr);
        ss_det_dataset_free(&va);
        return 1;
    }
    /* Labelled subset: n-train scenes drawn with the seed. */
    int64_t n = tr.images.n;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)i;
    if (ntrain > 0 && ntrain < n) {
        ss_rng r;
        ss_rng_seed(&r, seed, 0xDE7EC7ull);
        ss_rng_shuffle_i32(&r, idx, n);
        n = ntrain;
        for (int64_t i = 1; i < n; i++) /* sort the drawn subset */
            for (int64_t j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
                int32_t t = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = t;
            }
    }
    char *kind = NULL;
    if (model && !(kind = ss_checkpoint_meta(model, "encoder"))) {
        free(idx);
        ss_det_dataset_free(&tr);
        ss_det_dataset_free(&va);
        return cli_fail();
    }
    ss_encoder_config ec = {.kind = kind ? kind : encoder, .in_chans = tr.images.c, .img_size = tr.images.h};
    ss_model m;
    ss_detector det;
    ss_loader *L = NULL;
    char *cfg = NULL;
    det_ctx dc;
    memset(&dc, 0, sizeof dc);
    ss_status s = ss_model_create(&m, &ec, 0);
    if (!s) s = ss_detector_register(&det, &m, tr.images.nclasses);
    if (!s) s = ss_model_finalize(&m, seed);
    if (!s) ss_detector_init_bias(&det);
    if (!s && model) s = ss_checkpoint_load_into(model, &m, "encoder.", 0, NULL, NULL);
    if (s) goto fail;
    if (model && enc_scale != 1.0f) ss_params_set_lr_scale(m.p, "encoder.", enc_scale);
    set_mean_std(&tr.images, idx, n, m.mean, m.std);
    cJSON *cj = cJSON_CreateObject();
    cJSON_AddStringToObject(cj, "command", "detect train");
    cJSON_AddStringToObject(cj, "data", data);
    if (val) cJSON_AddStringToObject(cj, "val_data", val);
    cJSON_AddStringToObject(cj, "encoder", ec.kind);
    if (model) cJSON_AddStringToObject(cj, "model", model);
    cJSON_AddNumberToObject(cj, "n_train", (double)n);
    cJSON_AddNumberToObject(cj, "epochs", epochs);
    cJSON_AddNumberToObject(cj, "batch", batch);
    cJSON_AddNumberToObject(cj, "lr", lr);
    cJSON_AddNumberToObject(cj, "wd", wd);
    cJSON_AddNumberToObject(cj, "warmup", warmup);
    cJSON_AddNumberToObject(cj, "encoder_lr_scale", enc_scale);
    cJSON_AddNumberToObject(cj, "size_weight", size_weight);
    cJSON_AddBoolToObject(cj, "flip", flip);
    cJSON_AddNumberToObject(cj, "seed", (double)seed);
    cJSON_AddNumberToObject(cj, "threads", threads);
    cJSON_AddNumberToObject(cj, "det_classes", tr.images.nclasses);
    cJSON *cn = cJSON_CreateArray();
    for (int c = 0; c < tr.images.nclasses; c++) cJSON_AddItemToArray(cn, cJSON_CreateString(tr.images.class_names[c]));
    cJSON_AddItemToObject(cj, "det_class_names", cn);
    cfg = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);

    ss_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.batch = batch;
    lo.shuffle = 1;
    lo.drop_last = n > batch;
    lo.seed = seed;
    lo.workers = 1;
    lo.indices = idx;
    lo.nindices = n;
    lo.views = 1;
    memcpy(lo.mean, m.mean, sizeof lo.mean);
    memcpy(lo.std, m.std, sizeof lo.std);
    if ((s = ss_loader_new(&tr.images, &lo, &L))) goto fail;
    ss_fit_config fc;
    memset(&fc, 0, sizeof fc);
    fc.epochs = epochs;
    fc.lr = lr;
    fc.warmup_epochs = warmup;
    fc.opt = ss_opt_defaults(SS_OPT_ADAMW);
    fc.opt.weight_decay = wd;
    fc.clip_norm = 10.0f;
    fc.seed = seed;
    fc.run_dir = out;
    fc.config_json = cfg;
    fc.what = "detect";
    fc.quiet = quiet;
    fc.max_steps = max_steps;
    fc.resume = resume;
    dc.m = &m;
    dc.det = &det;
    dc.train = &tr;
    dc.val = val ? &va : NULL;
    dc.size_weight = size_weight;
    dc.flip = flip;
    dc.eval_every = eval_every;
    dc.epochs = epochs;
    dc.k = 100;
    dc.seed = seed;
    ss_fit_hooks h = {&dc, det_loss, NULL, det_epoch_end, NULL, NULL, NULL};
    ss_fit_result res;
    if ((s = ss_fit(&m, L, &fc, &h, &res))) goto fail;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", "detect train");
    cJSON_AddStringToObject(o, "init", model ? model : "scratch");
    cJSON_AddNumberToObject(o, "n_train", (double)n);
    cJSON_AddNumberToObject(o, "epochs", epochs);
    cJSON_AddNumberToObject(o, "seed", (double)seed);
    cJSON_AddNumberToObject(o, "final_loss", res.final_loss);
    if (val && dc.last.ap) {
        cJSON_AddNumberToObject(o, "map50", dc.last.map50);
        cJSON_AddNumberToObject(o, "map75", dc.last.map75);
        cJSON_AddNumberToObject(o, "map", dc.last.map);
    }
    cJSON_AddNumberToObject(o, "train_seconds", res.seconds);
    if (out) {
        cJSON_AddStringToObject(o, "run_dir", out);
        cJSON *full = cJSON_Duplicate(o, 1);
        if (val && dc.last.ap) cJSON_AddItemToObject(full, "val", metrics_json(&dc.last, tr.images.class_names));
        char p[1100], *js = cJSON_Print(full);
        snprintf(p, sizeof p, "%s/result.json", out);
        s = ss_write_file_atomic(p, js, strlen(js));
        free(js);
        cJSON_Delete(full);
    }
    print_kv_result(json, "detect train", o);
    cJSON_Delete(o);
    ss_fit_result_free(&res);
    if (s) goto fail;
    ss_loader_free(L);
    ss_det_metrics_free(&dc.last);
    ss_model_free(&m);
    ss_det_dataset_free(&tr);
    ss_det_dataset_free(&va);
    free(idx);
    free(kind);
    free(cfg);
    return 0;
fail:
    fprintf(stderr, "selfsup detect train: %s\n", ss_errmsg());
    ss_loader_free(L);
    ss_det_metrics_free(&dc.last);
    ss_model_free(&m);
    ss_det_dataset_free(&tr);
    ss_det_dataset_free(&va);
    free(idx);
    free(kind);
    free(cfg);
    return 1;
}

/* ---- selfsup detect eval ------------------------------------------------------- */
static int detect_eval(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "detect eval", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup detect eval --model CHECKPOINT --data SCENES [--images DIR] [--k 100] [--thresh 0.01]\n"
               "  [--nms 0.5] [--threads 2] [--json]\n"
               "COCO-style mAP@0.5, mAP@0.75 and mAP@[.5:.95] (101-point interpolated AP, per class).\n");
        return 0;
    }
    int ok = 1;
    const char *data = args_str(&a, "data", NULL), *images = args_str(&a, "images", NULL);
    const char *model = args_str(&a, "model", NULL);
    int k = (int)args_int(&a, "k", 100, 1, 10000, &ok);
    float thresh = (float)args_float(&a, "thresh", 0.01, 0, 1, &ok);
    float nms = (float)args_float(&a, "nms", 0.5, 0, 2, &ok);
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    int json = args_flag(&a, "json");
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!data || !model) {
        fprintf(stderr, "selfsup detect eval: --model CHECKPOINT and --data SCENES are required\n");
        return 2;
    }
    ss_set_threads(threads);
    ss_model m;
    ss_detector det;
    char **names;
    ss_det_dataset d;
    ss_det_metrics met;
    memset(&met, 0, sizeof met);
    double t0 = ss_now();
    if (open_detector(model, data, images, &m, &det, &names, &d)) return cli_fail();
    ss_status s = evaluate_det(&m, &det, &d, k, thresh, nms, &met);
    if (!s) {
        cJSON *o = metrics_json(&met, names);
        cJSON_AddNumberToObject(o, "images", (double)d.images.n);
        cJSON_AddNumberToObject(o, "objects", (double)d.nobjs);
        cJSON_AddNumberToObject(o, "seconds", ss_now() - t0);
        if (json) print_kv_result(1, "detect eval", o);
        else {
            printf("detect eval: %lld images, %lld objects: mAP@0.5 %.4f  mAP@0.75 %.4f  mAP@[.5:.95] %.4f\n",
                   (long long)d.images.n, (long long)d.nobjs, met.map50, met.map75, met.map);
            for (int c = 0; c < met.nclasses; c++)
                if (isfinite(met.ap[c])) printf("  %-14s AP50 %.4f  AP %.4f\n", names[c], met.ap50[c], met.ap[c]);
        }
        cJSON_Delete(o);
    }
    ss_det_metrics_free(&met);
    ss_det_dataset_free(&d);
    free_names(names, det.nclasses);
    ss_model_free(&m);
    return s ? cli_fail() : 0;
}

/* ---- selfsup detect predict ---------------------------------------------------- */
static const uint32_t det_palette[10] = {0xff4040, 0x40ff40, 0x4080ff, 0xffff40, 0xff40ff,
                                         0x40ffff, 0xff9020, 0xa060ff, 0xffffff, 0x90ff90};

static void draw_rect(unsigned char *rgb, int W, int H, int x0, int y0, int x1, int y1, uint32_t c, int th)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            if (x < 0 || y < 0 || x >= W || y >= H) continue;
            int edge = x < x0 + th || x > x1 - th || y < y0 + th || y > y1 - th;
            if (!edge) continue;
            unsigned char *q = rgb + ((size_t)y * W + x) * 3;
            q[0] = (unsigned char)(c >> 16);
            q[1] = (unsigned char)(c >> 8);
            q[2] = (unsigned char)c;
        }
}

/* Scene i enlarged by `scale` into rgb (W = cols * cell) at cell (cx, cy). */
static void draw_scene(unsigned char *rgb, int W, int H, int ox, int oy, const ss_dataset *d, int64_t i, int scale,
                       const ss_detection *det, int64_t nd, char **names, int show_gt, const ss_det_dataset *gtd)
{
    int h = d->h, w = d->w;
    const uint8_t *px = d->pixels + (size_t)i * d->c * h * w;
    for (int y = 0; y < h * scale; y++)
        for (int x = 0; x < w * scale; x++) {
            int sy = y / scale, sx = x / scale;
            unsigned char *q = rgb + ((size_t)(oy + y) * W + (ox + x)) * 3;
            for (int ch = 0; ch < 3; ch++) q[ch] = px[(size_t)(d->c == 3 ? ch : 0) * h * w + (size_t)sy * w + sx];
        }
    if (show_gt)
        for (int64_t j = gtd->start[i]; j < gtd->start[i + 1]; j++) {
            const ss_box *b = &gtd->objs[j].box;
            draw_rect(rgb, W, H, ox + (int)lroundf(b->x0 * scale), oy + (int)lroundf(b->y0 * scale),
                      ox + (int)lroundf(b->x1 * scale) - 1, oy + (int)lroundf(b->y1 * scale) - 1, 0x808080, 1);
        }
    for (int64_t j = 0; j < nd; j++) {
        const ss_box *b = &det[j].box;
        uint32_t c = det_palette[det[j].cls % 10];
        int x0 = ox + (int)lroundf(b->x0 * scale), y0 = oy + (int)lroundf(b->y0 * scale);
        int x1 = ox + (int)lroundf(b->x1 * scale) - 1, y1 = oy + (int)lroundf(b->y1 * scale) - 1;
        x0 = x0 < ox ? ox : x0;
        y0 = y0 < oy ? oy : y0;
        x1 = x1 > ox + w * scale - 1 ? ox + w * scale - 1 : x1;
        y1 = y1 > oy + h * scale - 1 ? oy + h * scale - 1 : y1;
        draw_rect(rgb, W, H, x0, y0, x1, y1, c, 2);
        char label[64];
        snprintf(label, sizeof label, "%.10s %.0f%%", names[det[j].cls], 100.0 * det[j].score);
        int ty = y0 - 9 >= oy ? y0 - 9 : y0 + 2, tw = (int)strlen(label) * 6 + 1;
        for (int y = ty - 1; y < ty + 8; y++) /* dark backing so the label reads on any background */
            for (int x = x0; x < x0 + tw && x < ox + w * scale; x++) {
                if (x < 0 || y < 0 || x >= W || y >= H) continue;
                unsigned char *q = rgb + ((size_t)y * W + x) * 3;
                q[0] = q[1] = q[2] = 0;
            }
        ss_draw_text_rgb(rgb, W, H, x0 + 1, ty, label, 1, c);
    }
}

static int detect_predict(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "detect predict", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup detect predict --model CHECKPOINT --data SCENES --out DIR [--images DIR] [--n 16]\n"
               "  [--thresh 0.3] [--nms 0.5] [--scale 4] [--cols 4] [--gt] [--threads 2] [--json]\n"
               "Writes DIR/<image>.png with predicted boxes and labels (--gt: ground truth in grey),\n"
               "DIR/predictions.png (a grid of the first --n) and DIR/detections.json (COCO results format).\n");
        return 0;
    }
    int ok = 1;
    const char *data = args_str(&a, "data", NULL), *images = args_str(&a, "images", NULL);
    const char *model = args_str(&a, "model", NULL), *out = args_str(&a, "out", NULL);
    long nshow = args_int(&a, "n", 16, 1, 1L << 30, &ok);
    float thresh = (float)args_float(&a, "thresh", 0.3, 0, 1, &ok);
    float nms = (float)args_float(&a, "nms", 0.5, 0, 2, &ok);
    int scale = (int)args_int(&a, "scale", 4, 1, 16, &ok);
    int cols = (int)args_int(&a, "cols", 4, 1, 64, &ok);
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    int show_gt = args_flag(&a, "gt"), json = args_flag(&a, "json");
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!data || !model || !out) {
        fprintf(stderr, "selfsup detect predict: --model, --data and --out are required\n");
        return 2;
    }
    ss_set_threads(threads);
    ss_model m;
    ss_detector det;
    char **names;
    ss_det_dataset d;
    if (open_detector(model, data, images, &m, &det, &names, &d)) return cli_fail();
    ss_status s = SS_OK;
    int64_t n = d.images.n < nshow ? d.images.n : nshow;
    int k = 100;
    ss_detection *dets = malloc(sizeof(ss_detection) * (size_t)(n * k));
    int64_t *start = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int h = d.images.h * scale, w = d.images.w * scale;
    unsigned char *one = malloc((size_t)h * w * 3);
    int rows = (int)((n + cols - 1) / cols), gc = n < cols ? (int)n : cols, gap = 4;
    int GW = gc * w + (gc - 1) * gap, GH = rows * h + (rows - 1) * gap;
    unsigned char *grid = calloc((size_t)GW * GH * 3, 1);
    if (!dets || !start || !one || !grid) s = ss_seterr(SS_ERR_NOMEM, "detect predict: out of memory");
    if (!s) s = ss_mkdir_p(out);
    if (!s) s = ss_detector_predict(&m, &det, &d.images, NULL, n, 64, k, thresh, nms, dets, start);
    cJSON *res = cJSON_CreateArray();
    for (int64_t i = 0; i < n && !s; i++) {
        draw_scene(one, w, h, 0, 0, &d.images, i, scale, dets + start[i], start[i + 1] - start[i], names, show_gt, &d);
        char p[1200], base[256];
        snprintf(base, sizeof base, "%s", d.file_names[i]);
        char *dot = strrchr(base, '.');
        if (dot) *dot = 0;
        for (char *q = base; *q; q++)
            if (*q == '/') *q = '_';
        snprintf(p, sizeof p, "%s/%s.png", out, base);
        s = ss_png_write_rgb(p, one, w, h);
        draw_scene(grid, GW, GH, (int)(i % cols) * (w + gap), (int)(i / cols) * (h + gap), &d.images, i, scale,
                   dets + start[i], start[i + 1] - start[i], names, show_gt, &d);
        for (int64_t j = start[i]; j < start[i + 1]; j++) {
            cJSON *o = cJSON_CreateObject();
            const ss_box *b = &dets[j].box;
            float sx = 1, sy = 1; /* boxes are in the stored (possibly resized) image's pixels */
            cJSON_AddNumberToObject(o, "image_id", (double)d.image_ids[i]);
            cJSON_AddNumberToObject(o, "category_id", d.cat_ids[dets[j].cls]);
            cJSON *bb = cJSON_CreateArray();
            cJSON_AddItemToArray(bb, cJSON_CreateNumber(b->x0 * sx));
            cJSON_AddItemToArray(bb, cJSON_CreateNumber(b->y0 * sy));
            cJSON_AddItemToArray(bb, cJSON_CreateNumber((b->x1 - b->x0) * sx));
            cJSON_AddItemToArray(bb, cJSON_CreateNumber((b->y1 - b->y0) * sy));
            cJSON_AddItemToObject(o, "bbox", bb);
            cJSON_AddNumberToObject(o, "score", dets[j].score);
            cJSON_AddItemToArray(res, o);
        }
    }
    if (!s) {
        char p[1200];
        snprintf(p, sizeof p, "%s/predictions.png", out);
        s = ss_png_write_rgb(p, grid, GW, GH);
    }
    if (!s) {
        char p[1200], *js = cJSON_PrintUnformatted(res);
        snprintf(p, sizeof p, "%s/detections.json", out);
        s = ss_write_file_atomic(p, js, strlen(js));
        free(js);
    }
    if (!s) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "out", out);
        cJSON_AddNumberToObject(o, "images", (double)n);
        cJSON_AddNumberToObject(o, "detections", (double)start[n]);
        print_kv_result(json, "detect predict", o);
        cJSON_Delete(o);
    }
    cJSON_Delete(res);
    free(dets);
    free(start);
    free(one);
    free(grid);
    ss_det_dataset_free(&d);
    free_names(names, det.nclasses);
    ss_model_free(&m);
    return s ? cli_fail() : 0;
}

int cmd_detect(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        printf("usage: selfsup detect train|eval|predict [options]   ('selfsup detect train --help' for each)\n");
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "train")) return detect_train(argc - 1, argv + 1);
    if (!strcmp(argv[0], "eval")) return detect_eval(argc - 1, argv + 1);
    if (!strcmp(argv[0], "predict")) return detect_predict(argc - 1, argv + 1);
    fprintf(stderr, "selfsup detect: unknown subcommand '%s' (expected train, eval or predict)\n", argv[0]);
    return 2;
}
