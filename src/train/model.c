/* Models (encoder + heads in one store), checkpoints, evaluation. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/safetensors.h"
#include "selfsup/train.h"

ss_status ss_model_create(ss_model *m, const ss_encoder_config *ec, int nclasses)
{
    memset(m, 0, sizeof *m);
    m->ecfg = *ec;
    m->nclasses = nclasses;
    for (int c = 0; c < 3; c++) m->std[c] = 1.0f;
    m->p = ss_params_new();
    if (!m->p) return ss_seterr(SS_ERR_NOMEM, "model: out of memory");
    ss_status s = ss_encoder_new(ec, m->p, "encoder.", &m->enc);
    if (s) return s;
    m->ecfg = m->enc->cfg;
    if (nclasses > 0) {
        s = ss_linear_init(&m->head, m->p, "head", m->enc->feat_dim, nclasses, 1);
        if (s) return s;
    }
    return SS_OK;
}

ss_status ss_model_finalize(ss_model *m, uint64_t seed)
{
    ss_status s = ss_params_finalize(m->p);
    if (s) return s;
    ss_params_init(m->p, SS_INIT_TORCH_DEFAULT, seed);
    return SS_OK;
}

void ss_model_free(ss_model *m)
{
    if (!m) return;
    ss_encoder_free(m->enc);
    ss_params_free(m->p);
    if (m->class_names) {
        for (int i = 0; i < m->nclasses; i++) free(m->class_names[i]);
        free(m->class_names);
    }
    free(m->tokenizer_json);
    memset(m, 0, sizeof *m);
}

ss_tensor *ss_model_features(ss_graph *g, const ss_model *m, ss_tensor *x) { return m->enc->forward(g, m->enc, x); }

ss_tensor *ss_model_logits(ss_graph *g, const ss_model *m, ss_tensor *x)
{
    return ss_linear_forward(g, &m->head, ss_model_features(g, m, x));
}

/* ---- checkpoints ------------------------------------------------------------------- */
static char *json_floats(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

/* Index of the first non-finite float of v[0..n) or -1. */
static int64_t first_nonfinite(const float *v, int64_t n)
{
    for (int64_t i = 0; v && i < n; i++)
        if (!isfinite(v[i])) return i;
    return -1;
}

/* A NaN/Inf checkpoint must never replace a good one: refuse to write it. */
static ss_status check_finite_state(const char *path, const ss_model *m, ss_optimizer *opt)
{
    const ss_params *stores[2] = {m->p, m->extra};
    for (int k = 0; k < 2; k++) {
        if (!stores[k]) continue;
        for (int i = 0; i < ss_params_count(stores[k]); i++) {
            ss_tensor *t = ss_params_at(stores[k], i);
            if (first_nonfinite(t->data, t->numel) >= 0)
                return ss_seterr(SS_ERR_NAN, "%s: not written: tensor '%s%s' holds NaN or Inf (the last good "
                                 "checkpoint is kept)", path, k ? m->extra_prefix : "", t->name);
        }
    }
    if (opt) {
        int64_t n = 0;
        ss_params_values(m->p, &n);
        if (first_nonfinite(ss_opt_moment1(opt, NULL), n) >= 0 || first_nonfinite(ss_opt_moment2(opt, NULL), n) >= 0)
            return ss_seterr(SS_ERR_NAN, "%s: not written: the optimiser moments hold NaN or Inf (the last good "
                             "checkpoint is kept)", path);
    }
    return SS_OK;
}

ss_status ss_checkpoint_save(const char *path, const ss_model *m, ss_optimizer *opt, const ss_train_state *st,
                             const char *config_json)
{
    ss_status fs = check_finite_state(path, m, opt);
    if (fs) return fs;
    ss_st_writer *w = ss_st_writer_new();
    if (!w) return ss_seterr(SS_ERR_NOMEM, "checkpoint: out of memory");
    ss_status s = SS_OK;
    int n = ss_params_count(m->p);
    /* Names for the optimiser moments must outlive the writer until save. */
    char **names = calloc((size_t)n * 2, sizeof(char *));
    float *values = ss_params_values(m->p, NULL);
    float *m1 = opt ? ss_opt_moment1(opt, NULL) : NULL, *m2 = opt ? ss_opt_moment2(opt, NULL) : NULL;
    for (int i = 0; i < n && s == SS_OK; i++) {
        ss_tensor *t = ss_params_at(m->p, i);
        s = ss_st_writer_add(w, t->name, SS_DT_F32, t->ndim, t->shape, t->data);
        if (s || !opt || !(t->flags & SS_T_PARAM)) continue;
        int64_t off = t->data - values;
        size_t len = strlen(t->name) + 16;
        names[2 * i] = malloc(len);
        snprintf(names[2 * i], len, "optim.m1.%s", t->name);
        s = ss_st_writer_add(w, names[2 * i], SS_DT_F32, t->ndim, t->shape, m1 + off);
        if (!s && m2) {
            names[2 * i + 1] = malloc(len);
            snprintf(names[2 * i + 1], len, "optim.m2.%s", t->name);
            s = ss_st_writer_add(w, names[2 * i + 1], SS_DT_F32, t->ndim, t->shape, m2 + off);
        }
    }
    int nx = m->extra ? ss_params_count(m->extra) : 0;
    char **xnames = calloc((size_t)nx + 1, sizeof(char *));
    for (int i = 0; i < nx && s == SS_OK; i++) {
        ss_tensor *t = ss_params_at(m->extra, i);
        size_t len = strlen(t->name) + strlen(m->extra_prefix) + 1;
        if (!(xnames[i] = malloc(len))) {
            s = ss_seterr(SS_ERR_NOMEM, "checkpoint: out of memory");
            break;
        }
        snprintf(xnames[i], len, "%s%s", m->extra_prefix, t->name);
        s = ss_st_writer_add(w, xnames[i], SS_DT_F32, t->ndim, t->shape, t->data);
    }
    char buf[64];
    const ss_encoder_config *e = &m->ecfg;
    if (!s) s = ss_st_writer_meta(w, "format", "selfsup-checkpoint-v1");
    if (!s) s = ss_st_writer_meta(w, "encoder", e->kind);
    snprintf(buf, sizeof buf, "%d", e->in_chans);
    if (!s) s = ss_st_writer_meta(w, "in_chans", buf);
    snprintf(buf, sizeof buf, "%d", e->img_size);
    if (!s) s = ss_st_writer_meta(w, "img_size", buf);
    snprintf(buf, sizeof buf, "%d", m->nclasses);
    if (!s) s = ss_st_writer_meta(w, "num_classes", buf);
    if (e->vocab) {
        snprintf(buf, sizeof buf, "%d", e->vocab);
        if (!s) s = ss_st_writer_meta(w, "vocab_size", buf);
        snprintf(buf, sizeof buf, "%d", e->seq_len);
        if (!s) s = ss_st_writer_meta(w, "seq_len", buf);
    }
    if (m->class_names && !s) {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < m->nclasses; i++) cJSON_AddItemToArray(a, cJSON_CreateString(m->class_names[i]));
        char *js = cJSON_PrintUnformatted(a);
        s = ss_st_writer_meta(w, "class_names", js);
        free(js);
        cJSON_Delete(a);
    }
    char *mj = json_floats(m->mean, 3), *sj = json_floats(m->std, 3);
    if (!s) s = ss_st_writer_meta(w, "mean", mj);
    if (!s) s = ss_st_writer_meta(w, "std", sj);
    free(mj);
    free(sj);
    if (config_json && !s) s = ss_st_writer_meta(w, "config", config_json);
    if (m->tokenizer_json && !s) s = ss_st_writer_meta(w, "tokenizer", m->tokenizer_json);
    if (st && !s) {
        char js[512];
        snprintf(js, sizeof js,
                 "{\"epoch\":%lld,\"batch\":%lld,\"step\":%lld,\"opt_steps\":%lld,\"best_metric\":%.17g,"
                 "\"best_epoch\":%lld,\"lr_scale\":%.17g,\"rollbacks\":%lld}",
                 (long long)st->epoch, (long long)st->batch, (long long)st->step,
                 (long long)(opt ? ss_opt_steps(opt) : 0), isfinite(st->best_metric) ? st->best_metric : -1.0,
                 (long long)st->best_epoch, st->lr_scale > 0 ? st->lr_scale : 1.0, (long long)st->rollbacks);
        s = ss_st_writer_meta(w, "state", js);
    }
    if (!s) s = ss_st_writer_save(w, path);
    ss_st_writer_free(w);
    for (int i = 0; i < 2 * n; i++) free(names[i]);
    free(names);
    for (int i = 0; i < nx; i++) free(xnames[i]);
    free(xnames);
    return s;
}

char *ss_checkpoint_meta(const char *path, const char *key)
{
    ss_safetensors *st = NULL;
    if (ss_st_open(path, &st) != SS_OK) return NULL;
    const char *v = ss_st_meta(st, key);
    char *r = v ? strdup(v) : NULL;
    ss_st_close(st);
    if (!v) /* the caller decides whether that is an error; this says what was missing */
        ss_seterr(SS_ERR_FORMAT, "%s: no '%s' in its safetensors metadata (selfsup writes it into every checkpoint; "
                  "was the file written by another program?)", path, key);
    else if (!r) ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    return r;
}

/* Integer metadata; -1 when it is not an integer in [0, 2^31) (hostile
 * files: then reported as out of range). */
static int meta_int(ss_safetensors *st, const char *key, int def)
{
    const char *v = ss_st_meta(st, key);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > INT_MAX) return -1;
    return (int)x;
}

static void meta_floats(ss_safetensors *st, const char *key, float *out, int n)
{
    const char *v = ss_st_meta(st, key);
    if (!v) return;
    cJSON *a = cJSON_Parse(v);
    if (cJSON_IsArray(a))
        for (int i = 0; i < n && i < cJSON_GetArraySize(a); i++) {
            cJSON *x = cJSON_GetArrayItem(a, i);
            if (cJSON_IsNumber(x)) out[i] = (float)x->valuedouble;
        }
    cJSON_Delete(a);
}

static ss_status load_tensors(ss_safetensors *st, const char *path, ss_model *m, const char *prefix_only,
                              int allow_missing, ss_optimizer *opt)
{
    int n = ss_params_count(m->p);
    float *values = ss_params_values(m->p, NULL);
    float *m1 = opt ? ss_opt_moment1(opt, NULL) : NULL, *m2 = opt ? ss_opt_moment2(opt, NULL) : NULL;
    size_t pl = prefix_only ? strlen(prefix_only) : 0;
    int loaded = 0;
    for (int i = 0; i < n; i++) {
        ss_tensor *t = ss_params_at(m->p, i);
        if (prefix_only && strncmp(t->name, prefix_only, pl) != 0) continue;
        if (!ss_st_find(st, t->name)) {
            if (allow_missing) continue;
            if (opt) /* resuming: the run was started with another model (a head more or less) */
                return ss_seterr(SS_ERR_FORMAT,
                                 "%s: no tensor '%s' to resume from: resume with the options the run was started with",
                                 path, t->name);
            return ss_seterr(SS_ERR_FORMAT, "%s: no tensor '%s' (the checkpoint does not match a %s model)", path,
                             t->name, m->ecfg.kind);
        }
        ss_status s = ss_st_read_f32(st, t->name, t->data, t->ndim, t->shape);
        if (s) return s;
        loaded++;
        if (opt && (t->flags & SS_T_PARAM)) {
            char key[300];
            int64_t off = t->data - values;
            snprintf(key, sizeof key, "optim.m1.%s", t->name);
            if (!ss_st_find(st, key)) return ss_seterr(SS_ERR_FORMAT, "%s: no optimiser state '%s' to resume from", path, key);
            if ((s = ss_st_read_f32(st, key, m1 + off, t->ndim, t->shape))) return s;
            if (m2) {
                snprintf(key, sizeof key, "optim.m2.%s", t->name);
                if (!ss_st_find(st, key)) return ss_seterr(SS_ERR_FORMAT, "%s: no optimiser state '%s' to resume from", path, key);
                if ((s = ss_st_read_f32(st, key, m2 + off, t->ndim, t->shape))) return s;
            }
        }
    }
    if (loaded == 0)
        return ss_seterr(SS_ERR_FORMAT, "%s: no tensor of this model found%s%s", path, prefix_only ? " under " : "",
                         prefix_only ? prefix_only : "");
    /* Resuming the whole model: every tensor of the file must have a place,
     * or a part of the run (say a second head) would be dropped unseen. */
    for (int i = 0; opt && !prefix_only && i < ss_st_count(st); i++) {
        const char *name = ss_st_entry_at(st, i)->name;
        const char *base = name;
        const ss_params *in = m->p;
        if (!strncmp(name, "optim.m1.", 9) || !strncmp(name, "optim.m2.", 9)) base = name + 9;
        else if (m->extra && m->extra_prefix && !strncmp(name, m->extra_prefix, strlen(m->extra_prefix))) {
            base = name + strlen(m->extra_prefix);
            in = m->extra;
        }
        if (!ss_params_find(in, base))
            return ss_seterr(SS_ERR_FORMAT,
                             "%s: holds '%s', which this run's model does not have: resume with the options the run "
                             "was started with",
                             path, name);
    }
    /* Resuming: the extra store (BYOL's target network) is part of the state. */
    for (int i = 0; opt && m->extra && i < ss_params_count(m->extra); i++) {
        ss_tensor *t = ss_params_at(m->extra, i);
        char key[300];
        snprintf(key, sizeof key, "%s%s", m->extra_prefix, t->name);
        if (!ss_st_find(st, key)) return ss_seterr(SS_ERR_FORMAT, "%s: no tensor '%s' to resume from", path, key);
        ss_status s = ss_st_read_f32(st, key, t->data, t->ndim, t->shape);
        if (s) return s;
    }
    return SS_OK;
}

/* Integer JSON field, range-checked before the cast (hostile files): -1 if
 * absent, -2 if not a number in [0, 2^52]. */
static int64_t json_i64(const cJSON *j, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!x) return -1;
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble <= 4503599627370496.0)) return -2;
    return (int64_t)x->valuedouble;
}

static ss_status read_state(ss_safetensors *st, const char *path, ss_optimizer *opt, ss_train_state *ts)
{
    const char *v = ss_st_meta(st, "state");
    if (!v) return ss_seterr(SS_ERR_FORMAT, "%s: no training state to resume from", path);
    cJSON *j = cJSON_Parse(v);
    if (!j) return ss_seterr(SS_ERR_FORMAT, "%s: metadata 'state' is not JSON", path);
    memset(ts, 0, sizeof *ts);
    cJSON *x;
    int64_t opt_steps = json_i64(j, "opt_steps");
    ts->epoch = json_i64(j, "epoch");
    ts->batch = json_i64(j, "batch");
    ts->step = json_i64(j, "step");
    ts->best_epoch = json_i64(j, "best_epoch");
    ts->rollbacks = json_i64(j, "rollbacks");
    if (ts->best_epoch == -1) ts->best_epoch = 0;
    if (ts->rollbacks == -1) ts->rollbacks = 0;
    ts->best_metric = -1;
    if ((x = cJSON_GetObjectItem(j, "best_metric")) && cJSON_IsNumber(x)) ts->best_metric = x->valuedouble;
    ts->lr_scale = 1.0;
    if ((x = cJSON_GetObjectItem(j, "lr_scale")) && cJSON_IsNumber(x)) ts->lr_scale = x->valuedouble;
    if (opt && opt_steps >= 0) ss_opt_set_steps(opt, opt_steps);
    cJSON_Delete(j);
    if (ts->epoch < 0 || ts->batch < 0 || ts->step < 0 || ts->best_epoch < 0 || opt_steps == -2)
        return ss_seterr(SS_ERR_FORMAT, "%s: metadata 'state' lacks epoch/batch/step or has one that is not an "
                         "integer in [0, 2^52]", path);
    if (!(ts->lr_scale > 0 && ts->lr_scale <= 1) || ts->rollbacks < 0)
        return ss_seterr(SS_ERR_FORMAT, "%s: metadata 'state' has lr_scale %g or rollbacks %lld out of range", path,
                         ts->lr_scale, (long long)ts->rollbacks);
    return SS_OK;
}

ss_status ss_checkpoint_load_into(const char *path, ss_model *m, const char *prefix_only, int allow_missing,
                                  ss_optimizer *opt, ss_train_state *ts)
{
    ss_safetensors *st = NULL;
    ss_status s = ss_st_open(path, &st);
    if (s) return s;
    s = load_tensors(st, path, m, prefix_only, allow_missing, opt);
    if (!s && ts) s = read_state(st, path, opt, ts);
    ss_st_close(st);
    return s;
}

ss_status ss_checkpoint_load_model(const char *path, ss_model *m, ss_register_fn extra, void *ctx)
{
    ss_safetensors *st = NULL;
    memset(m, 0, sizeof *m);
    ss_status s = ss_st_open(path, &st);
    if (s) return s;
    const char *kind = ss_st_meta(st, "encoder");
    if (!kind) {
        ss_st_close(st);
        return ss_seterr(SS_ERR_FORMAT, "%s: metadata has no 'encoder' (not a selfsup checkpoint?)", path);
    }
    ss_encoder_config ec;
    memset(&ec, 0, sizeof ec);
    static char kind_buf[32];
    snprintf(kind_buf, sizeof kind_buf, "%s", kind);
    ec.kind = kind_buf;
    ec.in_chans = meta_int(st, "in_chans", 1);
    ec.img_size = meta_int(st, "img_size", 28);
    ec.vocab = meta_int(st, "vocab_size", 0);
    ec.seq_len = meta_int(st, "seq_len", 0);
    int nclasses = meta_int(st, "num_classes", 0);
    if (ec.in_chans < 1 || ec.in_chans > 4 || ec.img_size < 4 || ec.img_size > 4096 || nclasses < 0 ||
        nclasses > 100000 || ec.vocab < 0 || ec.vocab > (1 << 24) || ec.seq_len < 0 || ec.seq_len > (1 << 16)) {
        ss_st_close(st);
        return ss_seterr(SS_ERR_FORMAT, "%s: metadata out of range (in_chans %d, img_size %d, num_classes %d, "
                         "vocab_size %d, seq_len %d)", path, ec.in_chans, ec.img_size, nclasses, ec.vocab, ec.seq_len);
    }
    if (!strncmp(kind_buf, "vit", 3) && ec.img_size > 512) { /* its position table grows with img_size^2 */
        ss_st_close(st);
        return ss_seterr(SS_ERR_FORMAT, "%s: metadata img_size %d is out of range for %s (at most 512)", path,
                         ec.img_size, kind_buf);
    }
    s = ss_model_create(m, &ec, nclasses);
    if (!s && extra) s = extra(ctx, m);
    /* Every tensor the metadata implies must be in the file with its size
     * before the model is allocated, so the allocation is bounded by the
     * file's own size whatever the metadata claims. */
    for (int i = 0; !s && i < ss_params_count(m->p); i++) {
        ss_tensor *t = ss_params_at(m->p, i);
        const ss_st_entry *e = ss_st_find(st, t->name);
        if (!e && extra) continue; /* a method head may be absent */
        if (!e) s = ss_seterr(SS_ERR_FORMAT, "%s: no tensor '%s' (metadata says a %s model)", path, t->name, kind_buf);
        else if (e->nbytes / ss_dtype_size(e->dtype) != (size_t)t->numel)
            s = ss_seterr(SS_ERR_SHAPE, "%s: tensor '%s' has %zu elements; the %s model of the metadata needs %lld",
                          path, t->name, e->nbytes / ss_dtype_size(e->dtype), kind_buf, (long long)t->numel);
    }
    if (!s) s = ss_model_finalize(m, 0);
    if (!s) s = load_tensors(st, path, m, NULL, extra != NULL, NULL);
    if (!s) {
        meta_floats(st, "mean", m->mean, 3);
        meta_floats(st, "std", m->std, 3);
        const char *cn = ss_st_meta(st, "class_names");
        cJSON *a = cn ? cJSON_Parse(cn) : NULL;
        if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == nclasses && nclasses > 0) {
            m->class_names = calloc((size_t)nclasses, sizeof(char *));
            for (int i = 0; i < nclasses; i++) {
                cJSON *x = cJSON_GetArrayItem(a, i);
                m->class_names[i] = strdup(cJSON_IsString(x) ? x->valuestring : "?");
            }
        }
        cJSON_Delete(a);
        const char *tj = ss_st_meta(st, "tokenizer");
        if (tj && !(m->tokenizer_json = strdup(tj))) s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    }
    ss_st_close(st);
    if (s) ss_model_free(m); /* nothing half-built is left to the caller */
    return s;
}

/* ---- evaluation ----------------------------------------------------------------------- */
void ss_images_to_float(const ss_dataset *d, const int32_t *idx, int64_t i0, int64_t n, const float *mean,
                        const float *std, float *out)
{
    int64_t plane = (int64_t)d->h * d->w, img = plane * d->c;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i0 + i] : i0 + i;
        const uint8_t *src = d->pixels + k * img;
        float *dst = out + i * img;
        for (int c = 0; c < d->c; c++) {
            float mu = mean ? mean[c] : 0.0f, inv = std && std[c] > 0 ? 1.0f / std[c] : 1.0f;
            for (int64_t j = 0; j < plane; j++) dst[c * plane + j] = ((float)src[c * plane + j] / 255.0f - mu) * inv;
        }
    }
}

static ss_status run_batches(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                             int logits, float *out, int dim)
{
    ss_graph *g = ss_graph_new();
    if (!g) return ss_seterr(SS_ERR_NOMEM, "evaluate: out of memory");
    ss_graph_set_training(g, 0);
    ss_graph_set_grad_enabled(g, 0);
    int64_t img = (int64_t)d->c * d->h * d->w;
    ss_status s = SS_OK;
    for (int64_t i0 = 0; i0 < n; i0 += batch) {
        int64_t b = n - i0 < batch ? n - i0 : batch;
        ss_graph_reset(g);
        float *x = ss_arena_alloc(ss_graph_arena(g), (size_t)(b * img) * sizeof(float));
        if (!x) {
            s = ss_seterr(SS_ERR_NOMEM, "evaluate: out of memory");
            break;
        }
        ss_images_to_float(d, idx, i0, b, m->mean, m->std, x);
        ss_tensor *xt = ss_wrap(g, x, 4, (int64_t[]){b, d->c, d->h, d->w});
        ss_tensor *y = logits ? ss_model_logits(g, m, xt) : ss_model_features(g, m, xt);
        if (!y) {
            s = ss_seterr(ss_graph_status(g), "%s", ss_graph_errmsg(g));
            break;
        }
        memcpy(out + i0 * dim, y->data, (size_t)(b * dim) * sizeof(float));
    }
    ss_graph_free(g);
    return s;
}

ss_status ss_extract_features(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                              float *out)
{
    return run_batches(m, d, idx, n, batch, 0, out, m->enc->feat_dim);
}

ss_status ss_predict_logits(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                            float *out)
{
    if (m->nclasses <= 0) return ss_seterr(SS_ERR_INVALID, "predict: the model has no classifier head");
    if (d->c != m->ecfg.in_chans || (m->ecfg.img_size && d->h != m->ecfg.img_size))
        return ss_seterr(SS_ERR_SHAPE, "%s: images are %dx%dx%d but the model expects %dx%dx%d", d->source, d->c,
                         d->h, d->w, m->ecfg.in_chans, m->ecfg.img_size, m->ecfg.img_size);
    return run_batches(m, d, idx, n, batch, 1, out, m->nclasses);
}

ss_status ss_evaluate(const ss_model *m, const ss_dataset *d, const int32_t *idx, int64_t n, int batch,
                      double *acc, double *per_class, int64_t *confusion)
{
    int C = m->nclasses;
    if (C <= 0) return ss_seterr(SS_ERR_INVALID, "evaluate: the model has no classifier head");
    if (d->c != m->ecfg.in_chans || (m->ecfg.img_size && d->h != m->ecfg.img_size))
        return ss_seterr(SS_ERR_SHAPE, "%s: images are %dx%dx%d but the model expects %dx%dx%d", d->source, d->c,
                         d->h, d->w, m->ecfg.in_chans, m->ecfg.img_size, m->ecfg.img_size);
    float *logits = malloc((size_t)(n ? n : 1) * (size_t)C * sizeof(float));
    if (!logits) return ss_seterr(SS_ERR_NOMEM, "evaluate: out of memory");
    ss_status s = run_batches(m, d, idx, n, batch, 1, logits, C);
    if (s) {
        free(logits);
        return s;
    }
    int64_t correct = 0, *cnt = calloc((size_t)C, sizeof(int64_t)), *hit = calloc((size_t)C, sizeof(int64_t));
    if (confusion) memset(confusion, 0, (size_t)C * C * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        int y = d->labels ? d->labels[k] : -1;
        const float *l = logits + i * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (l[c] > l[best]) best = c;
        if (y < 0 || y >= C) continue;
        cnt[y]++;
        if (best == y) {
            correct++;
            hit[y]++;
        }
        if (confusion) confusion[y * C + best]++;
    }
    int64_t labelled = 0;
    for (int c = 0; c < C; c++) labelled += cnt[c];
    *acc = labelled ? (double)correct / (double)labelled : 0.0;
    if (per_class)
        for (int c = 0; c < C; c++) per_class[c] = cnt[c] ? (double)hit[c] / (double)cnt[c] : 0.0;
    free(cnt);
    free(hit);
    free(logits);
    return SS_OK;
}
