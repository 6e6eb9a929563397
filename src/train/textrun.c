/* Text models and runs (selfsup/textrun.h): pooled text-s classifiers, MLM
 * pretraining, supervised training / fine-tuning, the linear probe and the
 * robustness evaluation, all through the shared loop ss_fit_source. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/knn.h"
#include "selfsup/textrun.h"
#include "train/textrun_internal.h"

int ss_text_pool_parse(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "cls")) return SS_POOL_CLS;
    if (!strcmp(s, "mean")) return SS_POOL_MEAN;
    return -1;
}

const char *ss_text_pool_name(int pool) { return pool == SS_POOL_CLS ? "cls" : "mean"; }

/* mean over non-[PAD] positions: w [n,1,t] @ hid [n,t,D] -> [n,D] */
static ss_tensor *mean_over_tokens(ss_graph *g, ss_tensor *hid, const int32_t *ids, int64_t n, int t, int D)
{
    ss_tensor *w = hid ? ss_new3(g, n, 1, t) : NULL;
    if (!w) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int cnt = 0;
        for (int j = 0; j < t; j++) cnt += ids[i * t + j] != SS_TOK_PAD;
        for (int j = 0; j < t; j++) w->data[i * t + j] = ids[i * t + j] != SS_TOK_PAD ? 1.0f / (float)(cnt ? cnt : 1) : 0.0f;
    }
    return ss_reshape(g, ss_matmul(g, w, hid, 0, 0), 2, (int64_t[]){n, D});
}

ss_tensor *ss_text_features(ss_graph *g, const ss_model *m, const int32_t *ids, int64_t n, int t, int pool)
{
    ss_tensor *hid = ss_text_encode(g, m->enc, ids, n, t); /* [n,t,D] */
    if (!hid) return NULL;
    int D = m->enc->feat_dim;
    if (pool == SS_POOL_CLS) {
        int32_t *r = ss_arena_alloc(ss_graph_arena(g), sizeof(int32_t) * (size_t)n);
        if (!r) return NULL;
        for (int64_t i = 0; i < n; i++) r[i] = (int32_t)(i * t);
        return ss_index_select(g, ss_reshape(g, hid, 2, (int64_t[]){n * t, D}), 0, r, n);
    }
    return mean_over_tokens(g, hid, ids, n, t, D);
}

ss_tensor *ss_text_logits(ss_graph *g, const ss_model *m, const int32_t *ids, int64_t n, int t, int pool)
{
    return ss_linear_forward(g, &m->head, ss_text_features(g, m, ids, n, t, pool));
}

ss_status ss_text_model_create(ss_model *m, const ss_tokenizer *tok, int seq_len, int nclasses)
{
    /* in_chans/img_size are image fields; a text checkpoint records 1 and the
     * sequence length there so the image-side range checks still pass. */
    ss_encoder_config ec = {.kind = "text-s", .in_chans = 1, .img_size = seq_len,
                            .vocab = ss_tokenizer_vocab_size(tok), .seq_len = seq_len};
    ss_status s = ss_model_create(m, &ec, nclasses);
    if (s) return s;
    size_t len = 0;
    return ss_tokenizer_to_json(tok, &m->tokenizer_json, &len);
}

ss_status ss_text_checkpoint_tokenizer(const char *path, ss_tokenizer **tok, int *pool)
{
    *tok = NULL;
    char *kind = ss_checkpoint_meta(path, "encoder");
    if (!kind) /* unreadable (I/O) or no 'encoder' key (format): ss_checkpoint_meta said which */
        return ss_errcode() != SS_OK ? ss_errcode() : SS_ERR_IO;
    int is_text = !strcmp(kind, "text-s");
    free(kind);
    if (!is_text) return ss_seterr(SS_ERR_INVALID, "%s: not a text model (its encoder is not text-s)", path);
    char *tj = ss_checkpoint_meta(path, "tokenizer");
    if (!tj) return ss_seterr(SS_ERR_FORMAT, "%s: metadata has no 'tokenizer' (not a selfsup text checkpoint)", path);
    char label[1100];
    snprintf(label, sizeof label, "%s (tokenizer metadata)", path);
    ss_status s = ss_tokenizer_load_memory(tj, strlen(tj), label, tok);
    free(tj);
    if (s) return s;
    if (pool) {
        *pool = SS_POOL_MEAN;
        char *cfg = ss_checkpoint_meta(path, "config");
        cJSON *j = cfg ? cJSON_Parse(cfg) : NULL;
        cJSON *p = j ? cJSON_GetObjectItem(j, "pool") : NULL;
        if (cJSON_IsString(p) && ss_text_pool_parse(p->valuestring) >= 0) *pool = ss_text_pool_parse(p->valuestring);
        cJSON_Delete(j);
        free(cfg);
    }
    return SS_OK;
}

/* Run the model over set's samples in batches: logits (nclasses) or pooled
 * features (D) per sample into out. */
static ss_status run_text_batches(const ss_model *m, const ss_tokenizer *tok, const ss_textset *set,
                                  const int32_t *idx, int64_t n, int pool, char *const *texts, const size_t *lens,
                                  int logits, float *out)
{
    int T = m->ecfg.seq_len > 0 ? m->ecfg.seq_len : 128, B = 128;
    int dim = logits ? m->nclasses : m->enc->feat_dim;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)T), *packed = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    int *L = malloc(sizeof(int) * (size_t)B);
    ss_graph *g = ss_graph_new();
    ss_status s = SS_OK;
    if (!ids || !packed || !L || !g) s = ss_seterr(SS_ERR_NOMEM, "text evaluate: out of memory");
    if (g) {
        ss_graph_set_training(g, 0);
        ss_graph_set_grad_enabled(g, 0);
    }
    for (int64_t i0 = 0; !s && i0 < n; i0 += B) {
        int64_t b = n - i0 < B ? n - i0 : B;
        int t = 2;
        for (int64_t i = 0; i < b; i++) {
            int64_t k = idx ? idx[i0 + i] : i0 + i;
            if (k < 0 || k >= set->n) {
                s = ss_seterr(SS_ERR_INVALID, "text evaluate: index %lld out of range", (long long)k);
                break;
            }
            const char *tx = texts ? texts[i0 + i] : set->texts[k];
            size_t tl = texts ? lens[i0 + i] : set->lens[k];
            L[i] = ss_tokenizer_encode_seq(tok, tx, tl, ids + i * T, T);
            if (L[i] > t) t = L[i];
        }
        if (s) break;
        for (int64_t i = 0; i < b; i++) memcpy(packed + i * t, ids + i * T, sizeof(int32_t) * (size_t)t);
        ss_graph_reset(g);
        ss_tensor *y = logits ? ss_text_logits(g, m, packed, b, t, pool) : ss_text_features(g, m, packed, b, t, pool);
        if (!y) {
            s = ss_seterr(ss_graph_status(g) ? ss_graph_status(g) : SS_ERR_INVALID, "%s", ss_graph_errmsg(g));
            break;
        }
        memcpy(out + i0 * dim, y->data, sizeof(float) * (size_t)(b * dim));
    }
    ss_graph_free(g);
    free(ids);
    free(packed);
    free(L);
    return s;
}

ss_status ss_text_evaluate(const ss_model *m, const ss_tokenizer *tok, const ss_textset *set, const int32_t *idx,
                           int64_t n, int pool, char *const *texts, const size_t *lens, double *acc,
                           int64_t *confusion)
{
    int C = m->nclasses;
    if (C <= 0) return ss_seterr(SS_ERR_INVALID, "text evaluate: the model has no classifier head");
    if (!idx) n = set->n;
    if (set->nclasses > C)
        return ss_seterr(SS_ERR_SHAPE, "%s: %d classes but the model has %d outputs", set->source, set->nclasses, C);
    float *lg = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)C);
    if (!lg) return ss_seterr(SS_ERR_NOMEM, "text evaluate: out of memory");
    ss_status s = run_text_batches(m, tok, set, idx, n, pool, texts, lens, 1, lg);
    if (confusion) memset(confusion, 0, sizeof(int64_t) * (size_t)C * (size_t)C);
    int64_t correct = 0, counted = 0;
    for (int64_t i = 0; !s && i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        int y = set->labels ? set->labels[k] : -1;
        if (y < 0 || y >= C) continue;
        const float *l = lg + i * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (l[c] > l[best]) best = c;
        correct += best == y;
        counted++;
        if (confusion) confusion[y * C + best]++;
    }
    free(lg);
    if (!s) *acc = counted ? (double)correct / (double)counted : 0.0;
    return s;
}

ss_status ss_text_extract_features(const ss_model *m, const ss_tokenizer *tok, const ss_textset *set,
                                   const int32_t *idx, int64_t n, int pool, float *out)
{
    if (!idx) n = set->n;
    return run_text_batches(m, tok, set, idx, n, pool, NULL, NULL, 0, out);
}

/* ------------------------------------------------------------------ runs */

ss_text_run_opts ss_text_run_defaults(int pretrain)
{
    ss_text_run_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = pretrain ? 10 : 20;
    o.batch = pretrain ? 64 : 32;
    o.lr = pretrain ? 1e-3f : 5e-4f;
    o.wd = 0.01f;
    o.warmup_epochs = pretrain ? 1.0f : 1.0f;
    o.final_lr_frac = pretrain ? 0.01f : 0.0f;
    o.clip_norm = 1.0f;
    o.seq_len = 128;
    o.pool = SS_POOL_MEAN;
    o.encoder_lr_scale = 1.0f;
    o.layer_decay = 1.0f;
    o.docbow_emb_weight = 0.0f;
    return o;
}

static ss_fit_config fit_config(const ss_text_run_opts *o, const char *what)
{
    ss_fit_config fc;
    memset(&fc, 0, sizeof fc);
    fc.epochs = o->epochs;
    fc.lr = o->lr;
    fc.final_lr = o->lr * o->final_lr_frac;
    fc.warmup_epochs = o->warmup_epochs;
    fc.opt = ss_opt_defaults(SS_OPT_ADAMW);
    fc.opt.weight_decay = o->wd;
    fc.clip_norm = o->clip_norm;
    fc.seed = o->seed;
    fc.run_dir = o->run_dir;
    fc.config_json = o->config_json;
    fc.what = o->what ? o->what : what;
    fc.resume = o->resume;
    fc.quiet = o->quiet;
    fc.max_steps = o->max_steps;
    return fc;
}

/* A pretraining run on a batcher: refuse one with no full batch (naming
 * the data and what it holds), else ss_fit_source with the loss hook. */
static ss_status fit_pretext(ss_model *m, ss_text_batcher *tb, const ss_text_run_opts *o, const char *source,
                             const char *items, const char *what, void *ctx,
                             ss_tensor *(*loss)(void *, ss_graph *, const ss_batch *, double *, double *),
                             ss_fit_result *res)
{
    if (ss_text_batcher_batches(tb) <= 0)
        return ss_seterr(SS_ERR_INVALID, "%s: %lld %s, fewer than one batch of %d", source,
                         (long long)ss_text_batcher_sequences(tb), items, o->batch);
    ss_batch_source src = ss_text_batcher_source(tb);
    ss_fit_config fc = fit_config(o, what);
    ss_fit_hooks h = {ctx, loss, NULL, NULL, NULL, NULL, NULL};
    return ss_fit_source(m, &src, &fc, &h, res);
}

typedef struct mlm_ctx {
    ss_mlm_head head;
    ss_model *m;
    ss_text_batcher *tb;
} mlm_ctx;

static ss_tensor *mlm_step_loss(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    mlm_ctx *c = ctx;
    (void)b;
    (void)correct;
    (void)count;
    const int32_t *in, *tg;
    int64_t n;
    int t;
    ss_text_batcher_current(c->tb, &in, &tg, &n, &t);
    return ss_mlm_loss(g, &c->head, c->m, in, tg, n, t);
}

ss_status ss_text_pretrain_mlm(ss_model *m, const ss_tokenizer *tok, const ss_textset *corpus,
                               const ss_text_run_opts *o, ss_fit_result *res)
{
    memset(res, 0, sizeof *res);
    mlm_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    ss_status s = ss_mlm_head_init(&c.head, m->p, m->enc);
    if (!s) s = ss_model_finalize(m, o->seed);
    if (s) return s;
    ss_text_batcher_opts bo = {.seq_len = m->ecfg.seq_len, .batch = o->batch, .pack = 1, .mlm = 1,
                               .mask_prob = 0.15f, .shuffle = 1, .drop_last = 1, .seed = o->seed,
                               .max_sequences = o->max_sequences};
    if ((s = ss_text_batcher_new(tok, corpus, NULL, corpus->n, &bo, &c.tb))) return s;
    char items[64];
    snprintf(items, sizeof items, "sequences of %d tokens", bo.seq_len);
    s = fit_pretext(m, c.tb, o, corpus->source, items, "mlm", &c, mlm_step_loss, res);
    ss_text_batcher_free(c.tb);
    return s;
}

/* ---- document-context pretraining (docbow) ----------------------------------
 * Each sample is one sentence of a document; the target is the rest of that
 * document as a bag of tokens, each token weighted 1/sqrt(corpus count + 1)
 * (frequent tokens such as "the" and "." matter little), normalised to a
 * distribution. loss = cross-entropy between that distribution and
 * softmax(head(pool(encoder(sentence)))). To predict which words the rest of
 * a review uses, the encoder must infer the document's topic and the
 * writer's opinion from one sentence (cf. PV-DBOW, Le and Mikolov 2014),
 * where masked-token prediction rewards syntax and puts antonyms together.
 * A second head ("docbow_emb_head", weight o->docbow_emb_weight) predicts the
 * same target from the mean of the sentence's token embeddings alone (no
 * positions, no blocks): deep supervision of the token table, which the
 * blocks otherwise leave a weak bag of words. Off by default: it made the
 * token table a better bag of words but fine-tuned worse with few labels
 * (docs/TEXT_RESULTS.md). */

typedef struct docbow_ctx {
    ss_model *m;
    ss_linear_layer head, emb_head;
    ss_text_batcher *tb;
    int V, pool;
    float emb_weight;
    float *w;            /* [V] token weight */
    int64_t *doc_off;    /* [ndocs+1] into doc_tok / doc_cnt */
    int32_t *doc_tok;    /* the tokens each document holds, ascending */
    float *doc_cnt;      /* their counts */
} docbow_ctx;

static ss_tensor *docbow_step_loss(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    docbow_ctx *c = ctx;
    (void)correct;
    (void)count;
    const int32_t *in;
    int64_t n;
    int t;
    ss_text_batcher_current(c->tb, &in, NULL, &n, &t);
    ss_tensor *logits = ss_linear_forward(g, &c->head, ss_text_features(g, c->m, in, n, t, c->pool));
    float *tg = ss_arena_alloc(ss_graph_arena(g), sizeof(float) * (size_t)(n * c->V));
    if (!logits || !tg) return NULL;
    int64_t rows = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t d = b->y[i];
        rows += ss_docbow_target(c->doc_tok + c->doc_off[d], c->doc_cnt + c->doc_off[d],
                                 c->doc_off[d + 1] - c->doc_off[d], in + i * t, t, c->w, c->V, tg + i * c->V);
    }
    /* mean over the rows with a target of -sum(target * log p) */
    float scale = -1.0f / (float)(rows ? rows : 1);
    ss_tensor *loss = ss_soft_cross_entropy(g, logits, tg, scale);
    if (c->emb_weight > 0.0f) {
        /* the same target from the mean of the sentence's token embeddings */
        int D = c->m->enc->feat_dim;
        ss_tensor *e = ss_embedding(g, ss_text_token_table(c->m->enc), in, 2, (int64_t[]){n, t});
        ss_tensor *el = ss_linear_forward(g, &c->emb_head, mean_over_tokens(g, e, in, n, t, D));
        loss = el ? ss_add(g, loss, ss_soft_cross_entropy(g, el, tg, scale * c->emb_weight)) : NULL;
    }
    return loss;
}

int ss_docbow_target(const int32_t *doc_tok, const float *doc_cnt, int64_t nnz, const int32_t *ids, int t,
                     const float *w, int V, float *out)
{
    memset(out, 0, sizeof(float) * (size_t)V);
    for (int64_t k = 0; k < nnz; k++) out[doc_tok[k]] = doc_cnt[k];
    for (int j = 0; j < t; j++) { /* the rest of the document: not the sentence itself */
        int32_t id = ids[j];
        if (id >= SS_TOK_NSPECIAL && id < V && out[id] > 0.0f) out[id] -= 1.0f;
    }
    double sum = 0;
    for (int v = 0; v < V; v++) sum += (double)(out[v] *= w[v]);
    float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
    for (int v = 0; v < V; v++) out[v] *= inv;
    return sum > 0;
}

ss_status ss_docbow_sentences(const ss_textset *docs, ss_textset *sent, int64_t *ndocs_used)
{
    memset(sent, 0, sizeof *sent);
    int64_t cap = 0, used = 0;
    for (int64_t d = 0; d < docs->n; d++) {
        const char *txt = docs->texts[d];
        size_t len = docs->lens[d];
        int64_t first = sent->n;
        size_t a = 0;
        while (a < len) {
            size_t e = a;
            while (e < len && txt[e] != '\n') {
                if ((txt[e] == '.' || txt[e] == '!' || txt[e] == '?') && e + 1 < len &&
                    (txt[e + 1] == ' ' || txt[e + 1] == '\t') && e + 1 - a >= 40) {
                    e++;
                    break;
                }
                e++;
            }
            size_t s0 = a, s1 = e;
            while (s0 < s1 && (txt[s0] == ' ' || txt[s0] == '\t' || txt[s0] == '\r')) s0++;
            while (s1 > s0 && (txt[s1 - 1] == ' ' || txt[s1 - 1] == '\t' || txt[s1 - 1] == '\r')) s1--;
            a = e < len && txt[e] == '\n' ? e + 1 : e;
            if (s1 == s0) continue;
            if (sent->n == cap) {
                cap = cap ? 2 * cap : 1024;
                char **tx = realloc(sent->texts, sizeof(char *) * (size_t)cap);
                if (tx) sent->texts = tx;
                size_t *ln = realloc(sent->lens, sizeof(size_t) * (size_t)cap);
                if (ln) sent->lens = ln;
                int32_t *lb = realloc(sent->labels, sizeof(int32_t) * (size_t)cap);
                if (lb) sent->labels = lb;
                if (!tx || !ln || !lb) return ss_seterr(SS_ERR_NOMEM, "docbow: out of memory");
            }
            char *p = malloc(s1 - s0 + 1);
            if (!p) return ss_seterr(SS_ERR_NOMEM, "docbow: out of memory");
            memcpy(p, txt + s0, s1 - s0);
            p[s1 - s0] = '\0';
            sent->texts[sent->n] = p;
            sent->lens[sent->n] = s1 - s0;
            sent->labels[sent->n] = (int32_t)used;
            sent->n++;
        }
        if (sent->n - first >= 2) used++;
        else { /* one sentence: no context to predict */
            for (int64_t k = first; k < sent->n; k++) free(sent->texts[k]);
            sent->n = first;
        }
    }
    *ndocs_used = used;
    return SS_OK;
}

ss_status ss_text_pretrain_docbow(ss_model *m, const ss_tokenizer *tok, const ss_textset *docs,
                                  const ss_text_run_opts *o, ss_fit_result *res)
{
    memset(res, 0, sizeof *res);
    docbow_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.V = ss_tokenizer_vocab_size(tok);
    c.pool = o->pool;
    ss_textset sent;
    int64_t nd = 0;
    int32_t *ids = NULL;
    float *dense = NULL;
    c.emb_weight = o->docbow_emb_weight;
    if (!(c.emb_weight >= 0.0f) || !isfinite(c.emb_weight)) /* before any work on the corpus */
        return ss_seterr(SS_ERR_INVALID, "docbow: emb weight %g must be a finite number >= 0", (double)c.emb_weight);
    ss_status s = ss_docbow_sentences(docs, &sent, &nd);
    if (!s && nd == 0)
        s = ss_seterr(SS_ERR_INVALID,
                      "%s: no document of two or more sentences (docbow predicts the rest of a document from one of "
                      "its sentences: give a folder of one file per document, without --by-line)",
                      docs->source);
    if (s) goto done;
    snprintf(sent.source, sizeof sent.source, "%s", docs->source);
    /* Bag of tokens of every document, and corpus counts. */
    int64_t cap = 1 << 16, nnz = 0, maxlen = 1 << 12;
    c.w = calloc((size_t)c.V, sizeof(float));
    c.doc_off = calloc((size_t)nd + 1, sizeof(int64_t));
    c.doc_tok = malloc(sizeof(int32_t) * (size_t)cap);
    c.doc_cnt = malloc(sizeof(float) * (size_t)cap);
    dense = calloc((size_t)c.V, sizeof(float));
    ids = malloc(sizeof(int32_t) * (size_t)maxlen);
    if (!c.w || !c.doc_off || !c.doc_tok || !c.doc_cnt || !dense || !ids) {
        s = ss_seterr(SS_ERR_NOMEM, "docbow: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < sent.n && !s; i++) {
        int64_t k = ss_tokenizer_encode(tok, sent.texts[i], sent.lens[i], ids, maxlen);
        if (k > maxlen) {
            int32_t *bigger = realloc(ids, sizeof(int32_t) * (size_t)k);
            if (!bigger) {
                s = ss_seterr(SS_ERR_NOMEM, "docbow: out of memory");
                break;
            }
            ids = bigger;
            maxlen = k;
            k = ss_tokenizer_encode(tok, sent.texts[i], sent.lens[i], ids, maxlen);
        }
        /* a document is the tokens the model sees: each sentence cut as
         * ss_tokenizer_encode_seq cuts it, so a target never holds the
         * truncated tail of its own sentence */
        if (k > m->ecfg.seq_len - 2) k = m->ecfg.seq_len - 2 > 0 ? m->ecfg.seq_len - 2 : 0;
        for (int64_t j = 0; j < k; j++)
            if (ids[j] >= SS_TOK_NSPECIAL && ids[j] < c.V) dense[ids[j]] += 1.0f;
        int last = i + 1 == sent.n || sent.labels[i + 1] != sent.labels[i];
        if (!last) continue;
        int32_t d = sent.labels[i];
        for (int v = 0; v < c.V; v++) {
            if (dense[v] == 0.0f) continue;
            if (nnz == cap) {
                cap *= 2;
                int32_t *nt = realloc(c.doc_tok, sizeof(int32_t) * (size_t)cap);
                if (nt) c.doc_tok = nt;
                float *nc = realloc(c.doc_cnt, sizeof(float) * (size_t)cap);
                if (nc) c.doc_cnt = nc;
                if (!nt || !nc) {
                    s = ss_seterr(SS_ERR_NOMEM, "docbow: out of memory");
                    break;
                }
            }
            c.doc_tok[nnz] = v;
            c.doc_cnt[nnz++] = dense[v];
            c.w[v] += dense[v];
            dense[v] = 0.0f;
        }
        c.doc_off[d + 1] = nnz;
    }
    if (s) goto done;
    for (int v = 0; v < c.V; v++) c.w[v] = 1.0f / sqrtf(c.w[v] + 1.0f);
    if ((s = ss_linear_init(&c.head, m->p, "docbow_head", m->enc->feat_dim, c.V, 1))) goto done;
    if (c.emb_weight > 0.0f &&
        (s = ss_linear_init(&c.emb_head, m->p, "docbow_emb_head", m->enc->feat_dim, c.V, 1)))
        goto done;
    if ((s = ss_model_finalize(m, o->seed))) goto done;
    ss_text_batcher_opts bo = {.seq_len = m->ecfg.seq_len, .batch = o->batch, .pack = 0, .mlm = 0,
                               .shuffle = 1, .drop_last = 1, .seed = o->seed, .max_sequences = o->max_sequences,
                               .bucket = 50};
    if ((s = ss_text_batcher_new(tok, &sent, NULL, sent.n, &bo, &c.tb))) goto done;
    if (!o->quiet)
        fprintf(stderr, "docbow: %lld sentences of %lld documents (%lld single-sentence documents left out)\n",
                (long long)sent.n, (long long)nd, (long long)(docs->n - nd));
    s = fit_pretext(m, c.tb, o, docs->source, "sentences", "docbow", &c, docbow_step_loss, res);
done:
    ss_text_batcher_free(c.tb);
    ss_textset_free(&sent);
    free(c.w);
    free(c.doc_off);
    free(c.doc_tok);
    free(c.doc_cnt);
    free(dense);
    free(ids);
    return s;
}

typedef struct cls_ctx {
    ss_model *m;
    const ss_tokenizer *tok;
    ss_text_batcher *tb;
    const ss_textset *test;
    const int32_t *test_idx;
    int64_t ntest;
    const ss_text_run_opts *o;
    double last_acc;
} cls_ctx;

static ss_tensor *cls_step_loss(void *ctx, ss_graph *g, const ss_batch *b, double *correct, double *count)
{
    cls_ctx *c = ctx;
    const int32_t *in;
    int64_t n;
    int t;
    ss_text_batcher_current(c->tb, &in, NULL, &n, &t);
    ss_tensor *logits = ss_text_logits(g, c->m, in, n, t, c->o->pool);
    ss_tensor *loss = ss_cross_entropy(g, logits, b->y, c->o->label_smoothing);
    if (!loss) return NULL;
    int C = c->m->nclasses;
    for (int64_t i = 0; i < n; i++) {
        const float *l = logits->data + i * C;
        int best = 0;
        for (int k = 1; k < C; k++)
            if (l[k] > l[best]) best = k;
        *correct += best == b->y[i];
        *count += 1;
    }
    return loss;
}

static ss_status cls_epoch_end(void *ctx, int64_t epoch, double *metric)
{
    cls_ctx *c = ctx;
    int last = epoch + 1 == c->o->epochs;
    int every = c->o->eval_every;
    if (!last && (every <= 0 || (epoch + 1) % every != 0)) return SS_OK;
    double acc;
    ss_status s = ss_text_evaluate(c->m, c->tok, c->test, c->test_idx, c->ntest, c->o->pool, NULL, NULL, &acc, NULL);
    if (s) return s;
    *metric = acc;
    c->last_acc = acc;
    return SS_OK;
}

ss_status ss_text_train_classifier(ss_model *m, const ss_tokenizer *tok, const ss_textset *train,
                                   const int32_t *idx, int64_t n, const ss_textset *test, const int32_t *test_idx,
                                   int64_t ntest, const ss_text_run_opts *o, double *test_acc, ss_fit_result *res)
{
    memset(res, 0, sizeof *res);
    if (m->nclasses <= 0) return ss_seterr(SS_ERR_INVALID, "text classifier: the model has no head");
    if (train->nclasses > m->nclasses)
        return ss_seterr(SS_ERR_SHAPE, "%s: %d classes but the model has %d outputs", train->source, train->nclasses,
                         m->nclasses);
    /* Learning-rate scales: encoder scale, layer-wise decay over text-s blocks. */
    if (o->encoder_lr_scale != 1.0f || o->layer_decay != 1.0f) {
        int D = 4; /* text-s depth (REFERENCE_MODELS.md) */
        ss_params_set_lr_scale(m->p, "encoder.", o->encoder_lr_scale * powf(o->layer_decay, (float)(D + 1)));
        for (int i = 0; i < D; i++) {
            char pre[64];
            snprintf(pre, sizeof pre, "encoder.blocks.%d.", i);
            ss_params_set_lr_scale(m->p, pre, o->encoder_lr_scale * powf(o->layer_decay, (float)(D - i)));
        }
        ss_params_set_lr_scale(m->p, "encoder.norm", o->encoder_lr_scale);
    }
    ss_text_batcher_opts bo = {.seq_len = m->ecfg.seq_len, .batch = o->batch, .pack = 0, .mlm = 0,
                               .shuffle = 1, .drop_last = n > o->batch, .seed = o->seed};
    cls_ctx c = {m, tok, NULL, test, test_idx, test_idx ? ntest : test->n, o, NAN};
    ss_status s = ss_text_batcher_new(tok, train, idx, n, &bo, &c.tb);
    if (s) return s;
    ss_batch_source src = ss_text_batcher_source(c.tb);
    ss_fit_config fc = fit_config(o, "train");
    ss_fit_hooks h = {&c, cls_step_loss, NULL, cls_epoch_end, NULL, NULL, NULL};
    s = ss_fit_source(m, &src, &fc, &h, res);
    ss_text_batcher_free(c.tb);
    if (!s && isnan(c.last_acc) && res->steps > 0) /* stopped early (max_steps): evaluate now */
        s = ss_text_evaluate(m, tok, test, test_idx, c.ntest, o->pool, NULL, NULL, &c.last_acc, NULL);
    if (!s) *test_acc = c.last_acc;
    return s;
}

ss_status ss_text_probe(const ss_model *m, const ss_tokenizer *tok, const ss_textset *train, const int32_t *idx,
                        int64_t n, const ss_textset *test, const int32_t *test_idx, int64_t ntest, int pool,
                        int epochs, uint64_t seed, double *test_acc)
{
    if (!idx) n = train->n;
    if (!test_idx) ntest = test->n;
    int D = m->enc->feat_dim, C = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    if (C < 2) return ss_seterr(SS_ERR_INVALID, "%s: a probe needs labelled data with 2 or more classes", train->source);
    float *ftr = malloc(sizeof(float) * (size_t)(n ? n : 1) * (size_t)D);
    float *fte = malloc(sizeof(float) * (size_t)(ntest ? ntest : 1) * (size_t)D);
    int32_t *ytr = malloc(sizeof(int32_t) * (size_t)(n ? n : 1)), *yte = malloc(sizeof(int32_t) * (size_t)(ntest ? ntest : 1));
    ss_status s = SS_OK;
    if (!ftr || !fte || !ytr || !yte) s = ss_seterr(SS_ERR_NOMEM, "probe: out of memory");
    if (!s) s = ss_text_extract_features(m, tok, train, idx, n, pool, ftr);
    if (!s) s = ss_text_extract_features(m, tok, test, test_idx, ntest, pool, fte);
    if (!s) {
        for (int64_t i = 0; i < n; i++) ytr[i] = train->labels[idx ? idx[i] : i];
        for (int64_t i = 0; i < ntest; i++) yte[i] = test->labels[test_idx ? test_idx[i] : i];
        s = ss_linear_probe(ftr, ytr, n, fte, yte, ntest, D, C, epochs > 0 ? epochs : 100, seed, test_acc, NULL,
                            NULL);
    }
    free(ftr);
    free(fte);
    free(ytr);
    free(yte);
    return s;
}

ss_status ss_text_robustness(const ss_model *m, const ss_tokenizer *tok, const ss_textset *test,
                             const int32_t *test_idx, int64_t ntest, int pool, uint64_t seed,
                             ss_text_robust_result *r)
{
    memset(r, 0, sizeof *r);
    if (!test_idx) ntest = test->n;
    r->samples = ntest;
    ss_status s = ss_text_evaluate(m, tok, test, test_idx, ntest, pool, NULL, NULL, &r->clean, NULL);
    if (s) return s;
    char **tx = calloc((size_t)(ntest ? ntest : 1), sizeof(char *));
    size_t *tl = calloc((size_t)(ntest ? ntest : 1), sizeof(size_t));
    if (!tx || !tl) s = ss_seterr(SS_ERR_NOMEM, "robustness: out of memory");
    r->n = ss_text_corruption_count();
    if (r->n > 8) r->n = 8;
    for (int c = 0; !s && c < r->n; c++) {
        r->name[c] = ss_text_corruption_name(c);
        for (int sev = 1; !s && sev <= SS_TEXT_SEVERITIES; sev++) {
            for (int64_t i = 0; i < ntest; i++) {
                int64_t k = test_idx ? test_idx[i] : i;
                free(tx[i]);
                tx[i] = ss_text_corrupt(r->name[c], sev, seed, k, test->texts[k], test->lens[k], &tl[i]);
                if (!tx[i]) {
                    s = SS_ERR_INVALID; /* ss_text_corrupt set the message */
                    break;
                }
            }
            if (!s) s = ss_text_evaluate(m, tok, test, test_idx, ntest, pool, tx, tl, &r->acc[c][sev - 1], NULL);
        }
    }
    if (tx)
        for (int64_t i = 0; i < ntest; i++) free(tx[i]);
    free(tx);
    free(tl);
    return s;
}

double ss_text_robust_mean(const ss_text_robust_result *r)
{
    double sum = 0;
    int k = 0;
    for (int c = 0; c < r->n; c++)
        for (int s = 0; s < SS_TEXT_SEVERITIES; s++) {
            sum += r->acc[c][s];
            k++;
        }
    return k ? sum / k : 0.0;
}
