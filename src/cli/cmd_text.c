/* The text side of the command-line tool:
 *   selfsup tokenizer train --text CORPUS [--vocab 8192] --out tok.json
 *   selfsup pretrain --method mlm --text CORPUS [--add-text LABELLED]
 *   selfsup train|finetune|probe|eval|robustness --text LABELLED ...
 * main.c sends a command here when it is given --text. Labelled data
 * without --test-text is split once, by --split-seed (default 0), into a
 * fixed 90/10 train/test split (docs/rt-polarity-split.txt for rt-polarity);
 * --labels draws a class-balanced subset of the train part by --seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "cli/text_cli.h"
#include "selfsup/fileio.h"
#include "selfsup/textrun.h"

/* ------------------------------------------------------------- shared set-up */

typedef struct text_cli {
    const char *text, *test_text, *labels, *out, *model, *tokenizer, *add_text;
    int epochs, batch, threads, json, quiet, seq_len, pool, vocab, by_line, eval_every, resume;
    ss_precision precision;
    float lr, wd, warmup, enc_scale, layer_decay, label_smoothing, clip;
    double test_frac;
    uint64_t seed, split_seed;
    long max_steps;
} text_cli;

/* Flags common to the text commands (defaults from o where relevant). */
static void read_common(ss_args *a, text_cli *c, const ss_text_run_opts *o, int *ok)
{
    c->text = args_str(a, "text", NULL);
    c->test_text = args_str(a, "test-text", NULL);
    c->labels = args_str(a, "labels", "100%");
    c->out = args_str(a, "out", NULL);
    c->model = args_str(a, "model", NULL);
    c->tokenizer = args_str(a, "tokenizer", NULL);
    c->epochs = (int)args_int(a, "epochs", o->epochs, 0, 100000, ok);
    c->batch = (int)args_int(a, "batch", o->batch, 1, 65536, ok);
    c->threads = (int)args_int(a, "threads", 2, 1, 256, ok);
    c->seq_len = (int)args_int(a, "seq-len", 0, 8, 4096, ok);
    c->vocab = (int)args_int(a, "vocab", 8192, SS_TOK_MIN_VOCAB, 1 << 22, ok);
    c->eval_every = (int)args_int(a, "eval-every", 0, 0, 100000, ok);
    c->lr = (float)args_float(a, "lr", o->lr, 0, 100, ok);
    c->wd = (float)args_float(a, "wd", o->wd, 0, 10, ok);
    c->warmup = (float)args_float(a, "warmup", o->warmup_epochs, 0, 1000, ok);
    c->clip = (float)args_float(a, "clip", o->clip_norm, 0, 1e6, ok);
    c->enc_scale = (float)args_float(a, "encoder-lr-scale", o->encoder_lr_scale, 0, 10, ok);
    c->layer_decay = (float)args_float(a, "layer-decay", o->layer_decay, 0.01, 1, ok);
    c->label_smoothing = (float)args_float(a, "label-smoothing", 0, 0, 0.99, ok);
    c->test_frac = args_float(a, "test-frac", 0.1, 0.01, 0.9, ok);
    c->seed = (uint64_t)args_int(a, "seed", 0, 0, 1L << 40, ok);
    c->split_seed = (uint64_t)args_int(a, "split-seed", 0, 0, 1L << 40, ok);
    c->max_steps = args_int(a, "max-steps", 0, 0, 1L << 40, ok);
    c->by_line = args_flag(a, "by-line");
    c->json = args_flag(a, "json");
    c->quiet = args_flag(a, "quiet") || c->json;
    c->resume = args_flag(a, "resume");
    const char *pool = args_str(a, "pool", NULL);
    c->pool = -1;
    if (pool && (c->pool = ss_text_pool_parse(pool)) < 0) {
        ss_seterr(SS_ERR_INVALID, "--pool '%s': expected cls or mean", pool);
        *ok = 0;
    }
    if (!cli_read_precision(a, "fp32", &c->precision)) *ok = 0;
    ss_set_threads(c->threads);
}

/* Labelled data: the set, its train indices (after the fixed split) and the
 * test set + indices (the split's test part, or all of --test-text). */
typedef struct labelled {
    ss_textset set, test_set;
    int32_t *train_idx, *test_idx, *lab_idx;
    int64_t ntrain, ntest, nlab;
    const ss_textset *test; /* &set or &test_set */
} labelled;

static void labelled_free(labelled *l)
{
    ss_textset_free(&l->set);
    ss_textset_free(&l->test_set);
    free(l->train_idx);
    free(l->test_idx);
    free(l->lab_idx);
    memset(l, 0, sizeof *l);
}

static ss_status load_labelled(const text_cli *c, int need_subset, labelled *l)
{
    memset(l, 0, sizeof *l);
    ss_status s = ss_textset_load_labelled(c->text, &l->set);
    if (s) return s;
    if (l->set.nclasses < 2)
        return ss_seterr(SS_ERR_FORMAT, "%s: %d class(es) found; classification needs 2 or more", c->text,
                         l->set.nclasses);
    if (c->test_text) {
        if ((s = ss_textset_load_labelled(c->test_text, &l->test_set))) return s;
        if (l->test_set.nclasses != l->set.nclasses)
            return ss_seterr(SS_ERR_FORMAT, "%s: %d classes, but %s has %d", c->test_text, l->test_set.nclasses,
                             c->text, l->set.nclasses);
        l->test = &l->test_set;
        l->ntrain = l->set.n;
        l->train_idx = malloc(sizeof(int32_t) * (size_t)(l->ntrain ? l->ntrain : 1));
        if (!l->train_idx) return ss_seterr(SS_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < l->ntrain; i++) l->train_idx[i] = (int32_t)i;
        l->ntest = l->test_set.n;
        l->test_idx = malloc(sizeof(int32_t) * (size_t)(l->ntest ? l->ntest : 1));
        if (!l->test_idx) return ss_seterr(SS_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < l->ntest; i++) l->test_idx[i] = (int32_t)i;
    } else {
        if ((s = ss_textset_split(&l->set, c->test_frac, c->split_seed, &l->train_idx, &l->ntrain, &l->test_idx,
                                  &l->ntest)))
            return s;
        l->test = &l->set;
    }
    if (need_subset &&
        (s = ss_textset_subset(&l->set, l->train_idx, l->ntrain, c->labels, c->seed, &l->lab_idx, &l->nlab)))
        return s;
    if (c->out && l->lab_idx) {
        char p[1100];
        if ((s = ss_mkdir_p(c->out))) return s;
        snprintf(p, sizeof p, "%s/labelled_indices.txt", c->out);
        if ((s = ss_indices_write(p, l->lab_idx, l->nlab))) return s;
    }
    return SS_OK;
}

/* --tokenizer PATH: a tokenizer JSON, or a text checkpoint holding one. */
static ss_status load_tokenizer_any(const char *path, ss_tokenizer **tok)
{
    size_t n = strlen(path);
    if (n > 12 && !strcmp(path + n - 12, ".safetensors")) return ss_text_checkpoint_tokenizer(path, tok, NULL);
    return ss_tokenizer_load(path, tok);
}

static ss_status train_tokenizer_on(const ss_textset *set, const int32_t *idx, int64_t n, int vocab,
                                    ss_tokenizer **tok)
{
    if (!idx) n = set->n;
    const char **tx = malloc(sizeof(char *) * (size_t)(n ? n : 1));
    size_t *ln = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    if (!tx || !ln) {
        free(tx);
        free(ln);
        return ss_seterr(SS_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        tx[i] = set->texts[k];
        ln[i] = set->lens[k];
    }
    ss_tokenizer_opts o = ss_tokenizer_opts_default();
    o.vocab_size = vocab;
    ss_status s = ss_tokenizer_train_n(tx, ln, n, &o, tok);
    free(tx);
    free(ln);
    return s;
}

static cJSON *config_of(const text_cli *c, const char *command, const ss_text_run_opts *o, int vocab)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "command", command);
    cJSON_AddStringToObject(j, "text", c->text);
    if (c->test_text) cJSON_AddStringToObject(j, "test_text", c->test_text);
    if (c->add_text) cJSON_AddStringToObject(j, "add_text", c->add_text);
    if (c->model) cJSON_AddStringToObject(j, "model", c->model);
    if (c->tokenizer) cJSON_AddStringToObject(j, "tokenizer", c->tokenizer);
    cJSON_AddStringToObject(j, "encoder", "text-s");
    cJSON_AddNumberToObject(j, "vocab", vocab);
    cJSON_AddNumberToObject(j, "seq_len", o->seq_len);
    cJSON_AddStringToObject(j, "pool", ss_text_pool_name(o->pool));
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddStringToObject(j, "optimizer", "adamw");
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "weight_decay", o->wd);
    cJSON_AddNumberToObject(j, "warmup_epochs", o->warmup_epochs);
    cJSON_AddNumberToObject(j, "clip_norm", o->clip_norm);
    cJSON_AddNumberToObject(j, "seed", (double)c->seed);
    cJSON_AddNumberToObject(j, "split_seed", (double)c->split_seed);
    cJSON_AddNumberToObject(j, "threads", c->threads);
    cJSON_AddStringToObject(j, "precision", ss_precision_name(c->precision));
    return j;
}

static int write_result(const char *out, cJSON *o)
{
    if (!out) return 0;
    char p[1100], *js = cJSON_Print(o);
    snprintf(p, sizeof p, "%s/result.json", out);
    ss_status s = ss_mkdir_p(out);
    if (!s) s = ss_write_file_atomic(p, js, strlen(js));
    free(js);
    return s != SS_OK;
}

static int fail(const char *cmd)
{
    fprintf(stderr, "selfsup %s: %s\n", cmd, ss_errmsg()[0] ? ss_errmsg() : "failed");
    return 1;
}

/* ------------------------------------------------------------ tokenizer */

int cmd_tokenizer(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : NULL;
    int sub_help = 0; /* "tokenizer train --help" */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) sub_help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h") || sub_help) {
        printf("usage: selfsup tokenizer train --text CORPUS [--vocab 8192] [--min-frequency 2] [--no-lowercase]\n"
               "         [--by-line] --out tok.json\n"
               "       selfsup tokenizer encode --tokenizer tok.json [--file LINES.txt] [--] TEXT...\n"
               "         (one line of token ids per TEXT, or per line of --file)\n"
               "Byte-level BPE in the Hugging Face tokenizers JSON format. CORPUS: a text file (one sample per\n"
               "line), a .csv/.tsv (its text column) or a folder (one sample per file).\n");
        return sub ? 0 : 2;
    }
    ss_args a;
    if (ss_args_parse(&a, "tokenizer", argc - 1, argv + 1)) return cli_fail();
    int ok = 1;
    if (!strcmp(sub, "encode")) {
        const char *tp = args_str(&a, "tokenizer", NULL);
        const char *file = args_str(&a, "file", NULL);
        args_positional(&a);
        if (!ok || ss_args_finish(&a)) return cli_fail();
        if (!tp) {
            fprintf(stderr, "selfsup tokenizer encode: --tokenizer tok.json is required\n");
            return 2;
        }
        if (file && a.npos > 0) {
            fprintf(stderr, "selfsup tokenizer encode: give TEXT arguments or --file, not both\n");
            return 2;
        }
        ss_tokenizer *tok = NULL;
        if (load_tokenizer_any(tp, &tok)) return fail("tokenizer");
        char *buf = NULL;
        size_t blen = 0;
        if (file && ss_read_file(file, (size_t)1 << 31, (void **)&buf, &blen)) {
            ss_tokenizer_free(tok);
            return fail("tokenizer encode");
        }
        /* One line of ids per TEXT argument, or per line of --file. */
        int64_t cap = 0;
        int32_t *ids = NULL;
        size_t pos = 0;
        for (int i = 0; file ? pos < blen : i < a.npos; i++) {
            const char *tx;
            size_t len;
            if (file) {
                tx = buf + pos;
                const char *nl = memchr(tx, '\n', blen - pos);
                len = nl ? (size_t)(nl - tx) : blen - pos;
                pos += len + (nl != NULL);
                if (len && tx[len - 1] == '\r') len--;
            } else {
                tx = a.pos[i];
                len = strlen(tx);
            }
            int64_t k = ss_tokenizer_encode(tok, tx, len, NULL, 0);
            if (k > cap) {
                int32_t *p = realloc(ids, sizeof(int32_t) * (size_t)k);
                if (!p) {
                    free(ids);
                    free(buf);
                    ss_tokenizer_free(tok);
                    fprintf(stderr, "selfsup tokenizer encode: out of memory\n");
                    return 1;
                }
                ids = p;
                cap = k;
            }
            ss_tokenizer_encode(tok, tx, len, ids, k);
            for (int64_t j = 0; j < k; j++) printf("%s%d", j ? " " : "", ids[j]);
            printf("\n");
        }
        free(ids);
        free(buf);
        ss_tokenizer_free(tok);
        return 0;
    }
    if (strcmp(sub, "train")) {
        fprintf(stderr, "selfsup tokenizer: unknown subcommand '%s' (train, encode)\n", sub);
        return 2;
    }
    const char *text = args_str(&a, "text", NULL), *out = args_str(&a, "out", NULL);
    ss_tokenizer_opts o = ss_tokenizer_opts_default();
    o.vocab_size = (int)args_int(&a, "vocab", 8192, SS_TOK_MIN_VOCAB, 1 << 22, &ok);
    o.min_frequency = (int)args_int(&a, "min-frequency", 2, 1, 1 << 30, &ok);
    o.lowercase = !args_flag(&a, "no-lowercase");
    int by_line = args_flag(&a, "by-line");
    int json = args_flag(&a, "json");
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!text || !out) {
        fprintf(stderr, "selfsup tokenizer train: --text CORPUS and --out tok.json are required\n");
        return 2;
    }
    ss_textset set;
    memset(&set, 0, sizeof set);
    double t0 = ss_now();
    if (ss_textset_load_corpus(text, by_line, &set)) return fail("tokenizer train");
    ss_tokenizer *tok = NULL;
    ss_status s = ss_tokenizer_train_n((const char *const *)set.texts, set.lens, set.n, &o, &tok);
    if (!s) s = ss_tokenizer_save(tok, out);
    if (s) {
        ss_textset_free(&set);
        ss_tokenizer_free(tok);
        return fail("tokenizer train");
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "tokenizer", out);
    cJSON_AddNumberToObject(r, "vocab", ss_tokenizer_vocab_size(tok));
    cJSON_AddNumberToObject(r, "merges", ss_tokenizer_merge_count(tok));
    cJSON_AddNumberToObject(r, "samples", (double)set.n);
    cJSON_AddNumberToObject(r, "seconds", ss_now() - t0);
    print_kv_result(json, "tokenizer train", r);
    cJSON_Delete(r);
    ss_textset_free(&set);
    ss_tokenizer_free(tok);
    return 0;
}

/* ------------------------------------------------------------ pretrain */

static int text_pretrain(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "pretrain", argc, argv)) return cli_fail();
    a.help_args = " --text x";
    if (args_flag(&a, "help")) {
        printf("usage: selfsup pretrain --method mlm|docbow --text CORPUS [--add-text LABELLED (its train split's text,\n"
               "  labels dropped)] [--tokenizer tok.json | --vocab 8192] [--seq-len 128] [--epochs 10] [--batch 64]\n"
               "  [--lr 1e-3] [--wd 0.01] [--warmup 1] [--pool mean|cls (recorded for fine-tuning; docbow trains on it)] [--seed 0]\n"
               "  [--threads 2] [--precision fp32|bf16] [--out RUN_DIR] [--resume] [--by-line] [--json]\n"
               "  [--max-sequences N (a seeded subset of N packed sequences: a fixed token budget)] [--emb-weight W (docbow)]\n"
               "The corpus is packed into sequences of --seq-len tokens; 15%% of tokens are chosen each epoch\n"
               "afresh (80%% [MASK], 10%% random, 10%% kept). The checkpoint holds the tokenizer.\n"
               "docbow: CORPUS is one document per file (e.g. a folder of reviews); each sentence is one sample,\n"
               "and the encoder's pooled features predict the bag of tokens of the rest of its document (tokens\n"
               "weighted 1/sqrt(count + 1)). Documents of one sentence are left out; --by-line is refused, and\n"
               "--add-text joins the tokenizer's training text only. --max-sequences keeps a seeded subset of that\n"
               "many sentences. --emb-weight W (docbow, default 0 = off): a second head predicts the same target\n"
               "from the mean of the sentence's token embeddings, its loss added with weight W.\n");
        return 0;
    }
    ss_text_run_opts o = ss_text_run_defaults(1);
    text_cli c;
    memset(&c, 0, sizeof c);
    int ok = 1;
    const char *method = args_str(&a, "method", "mlm");
    read_common(&a, &c, &o, &ok);
    c.add_text = args_str(&a, "add-text", NULL);
    o.max_sequences = args_int(&a, "max-sequences", 0, 0, 1L << 40, &ok);
    int emb_given = args_str(&a, "emb-weight", NULL) != NULL;
    o.docbow_emb_weight = args_float(&a, "emb-weight", o.docbow_emb_weight, 0.0, 100.0, &ok);
    if (!ok || ss_args_finish(&a)) return cli_fail();
    int docbow = !strcmp(method, "docbow");
    if (strcmp(method, "mlm") && !docbow) {
        fprintf(stderr, "selfsup pretrain: --text takes --method mlm or docbow (got '%s')\n", method);
        return 2;
    }
    if (!docbow && emb_given) {
        fprintf(stderr, "selfsup pretrain: --emb-weight weights docbow's second head; --method %s has none\n", method);
        return 2;
    }
    if (docbow && c.by_line) {
        fprintf(stderr, "selfsup pretrain: --method docbow reads whole documents (one file per document) and predicts "
                        "the rest of a document from one of its sentences; --by-line gives single sentences\n");
        return 2;
    }
    if (docbow && c.add_text && c.tokenizer) {
        fprintf(stderr, "selfsup pretrain: with --method docbow, --add-text only adds text to the tokenizer's training "
                        "(single sentences have no document); --tokenizer is given, so there is nothing to add it to\n");
        return 2;
    }
    if (!c.text) {
        fprintf(stderr, "selfsup pretrain: --text CORPUS is required\n");
        return 2;
    }
    if (!c.out) c.out = docbow ? "runs/docbow" : "runs/mlm";
    o.epochs = c.epochs;
    o.batch = c.batch;
    o.lr = c.lr;
    o.wd = c.wd;
    o.warmup_epochs = c.warmup;
    o.clip_norm = c.clip;
    o.seq_len = c.seq_len ? c.seq_len : 128;
    o.pool = c.pool >= 0 ? c.pool : SS_POOL_MEAN;
    o.seed = c.seed;
    o.run_dir = c.out;
    o.quiet = c.quiet;
    o.resume = c.resume;
    o.max_steps = c.max_steps;
    ss_textset corpus;
    memset(&corpus, 0, sizeof corpus);
    labelled extra;
    memset(&extra, 0, sizeof extra);
    ss_tokenizer *tok = NULL;
    ss_model m;
    memset(&m, 0, sizeof m);
    char *cfg = NULL;
    double t0 = ss_now(), tok_s = 0;
    ss_status s = ss_textset_load_corpus(c.text, c.by_line, &corpus);
    int64_t ndocs = corpus.n; /* docbow: the documents, before --add-text */
    if (!s && c.add_text) {
        /* The train part of the labelled set's fixed split, appended as
         * unlabelled samples (its test part is never seen). */
        text_cli e = c;
        e.text = c.add_text;
        e.test_text = NULL;
        e.out = NULL;
        s = load_labelled(&e, 0, &extra);
        if (!s) {
            int64_t n = corpus.n + extra.ntrain;
            char **tx = realloc(corpus.texts, sizeof(char *) * (size_t)n);
            if (tx) corpus.texts = tx;
            size_t *ln = realloc(corpus.lens, sizeof(size_t) * (size_t)n);
            if (ln) corpus.lens = ln;
            int32_t *lb = realloc(corpus.labels, sizeof(int32_t) * (size_t)n);
            if (lb) corpus.labels = lb;
            if (!tx || !ln || !lb) s = ss_seterr(SS_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; !s && i < extra.ntrain; i++) {
                int32_t k = extra.train_idx[i];
                corpus.texts[corpus.n] = extra.set.texts[k];
                corpus.lens[corpus.n] = extra.set.lens[k];
                corpus.labels[corpus.n] = -1;
                extra.set.texts[k] = NULL; /* moved */
                corpus.n++;
            }
        }
    }
    if (!s) {
        if (c.tokenizer) s = load_tokenizer_any(c.tokenizer, &tok);
        else {
            if (!c.quiet) fprintf(stderr, "%s: training a %d-token BPE tokenizer on %lld samples\n", method, c.vocab,
                        (long long)corpus.n);
            s = train_tokenizer_on(&corpus, NULL, corpus.n, c.vocab, &tok);
            tok_s = ss_now() - t0;
            if (!s && c.out) {
                char p[1100];
                snprintf(p, sizeof p, "%s/tokenizer.json", c.out);
                s = ss_mkdir_p(c.out);
                if (!s) s = ss_tokenizer_save(tok, p);
            }
        }
    }
    if (!s && docbow && corpus.n > ndocs) { /* --add-text served the tokenizer only */
        for (int64_t i = ndocs; i < corpus.n; i++) free(corpus.texts[i]);
        corpus.n = ndocs;
    }
    if (!s) s = ss_text_model_create(&m, tok, o.seq_len, 0);
    if (s) goto fail;
    cJSON *cj = config_of(&c, "pretrain", &o, ss_tokenizer_vocab_size(tok));
    cJSON_AddStringToObject(cj, "method", method);
    if (docbow) {
        cJSON_AddStringToObject(cj, "target", "rest of the document, tokens weighted 1/sqrt(count+1)");
        cJSON_AddNumberToObject(cj, "emb_weight", o.docbow_emb_weight);
    }
    else cJSON_AddNumberToObject(cj, "mask_prob", 0.15);
    cJSON_AddNumberToObject(cj, "corpus_samples", (double)corpus.n);
    if (o.max_sequences) cJSON_AddNumberToObject(cj, "max_sequences", (double)o.max_sequences);
    cfg = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    o.config_json = cfg;
    ss_fit_result res;
    if ((s = docbow ? ss_text_pretrain_docbow(&m, tok, &corpus, &o, &res)
                    : ss_text_pretrain_mlm(&m, tok, &corpus, &o, &res)))
        goto fail;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "command", "pretrain");
    cJSON_AddStringToObject(r, "method", method);
    cJSON_AddStringToObject(r, "encoder", "text-s");
    cJSON_AddNumberToObject(r, "epochs", o.epochs);
    cJSON_AddNumberToObject(r, "steps", (double)res.steps);
    cJSON_AddNumberToObject(r, "final_loss", res.final_loss);
    cJSON_AddNumberToObject(r, "corpus_samples", (double)corpus.n);
    cJSON_AddNumberToObject(r, "tokenizer_seconds", tok_s);
    cJSON_AddNumberToObject(r, "train_seconds", res.seconds);
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/last.safetensors", c.out);
    cJSON_AddStringToObject(r, "checkpoint", ck);
    if (write_result(c.out, r)) {
        cJSON_Delete(r);
        ss_fit_result_free(&res);
        goto fail;
    }
    print_kv_result(c.json, "pretrain", r);
    cJSON_Delete(r);
    ss_fit_result_free(&res);
    ss_model_free(&m);
    ss_tokenizer_free(tok);
    ss_textset_free(&corpus);
    labelled_free(&extra);
    free(cfg);
    return 0;
fail:
    ss_model_free(&m);
    ss_tokenizer_free(tok);
    ss_textset_free(&corpus);
    labelled_free(&extra);
    free(cfg);
    return fail("pretrain");
}

/* ------------------------------------------------------- train / finetune */

static int text_train(int argc, char **argv, const char *cmd)
{
    ss_args a;
    if (ss_args_parse(&a, cmd, argc, argv)) return cli_fail();
    a.help_args = " --text x";
    int finetune = !strcmp(cmd, "finetune");
    if (args_flag(&a, "help")) {
        printf("usage: selfsup %s --text LABELLED [--test-text PATH | --test-frac 0.1 --split-seed 0]\n"
               "  [--labels 1%%|10%%|100%%|N/class] %s [--seq-len 128]\n"
               "  [--pool mean|cls] [--epochs 20] [--batch 32] [--lr 5e-4] [--wd 0.01] [--warmup 1] [--clip 1]\n"
               "  [--encoder-lr-scale 1] [--layer-decay 1] [--label-smoothing 0] [--eval-every N] [--seed 0]\n"
               "  [--threads 2] [--out RUN_DIR] [--json]\n"
               "LABELLED: a .tsv/.csv of text,label; a folder of one file per class (rt-polarity .neg/.pos);\n"
               "or a folder with one subfolder per class.\n",
               cmd, finetune ? "--model PRETRAINED" : "[--tokenizer tok.json|CKPT | --vocab 8192]");
        return 0;
    }
    ss_text_run_opts o = ss_text_run_defaults(0);
    text_cli c;
    memset(&c, 0, sizeof c);
    int ok = 1;
    read_common(&a, &c, &o, &ok);
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!c.text) {
        fprintf(stderr, "selfsup %s: --text LABELLED is required\n", cmd);
        return 2;
    }
    if (finetune && !c.model) {
        fprintf(stderr, "selfsup finetune: --model PRETRAINED_CHECKPOINT is required\n");
        return 2;
    }
    labelled l;
    ss_tokenizer *tok = NULL;
    ss_model m;
    memset(&m, 0, sizeof m);
    char *cfg = NULL;
    int ck_pool = SS_POOL_MEAN;
    ss_status s = load_labelled(&c, 1, &l);
    if (s) goto fail;
    int seq_len = c.seq_len ? c.seq_len : 128;
    if (c.model) {
        if ((s = ss_text_checkpoint_tokenizer(c.model, &tok, &ck_pool))) goto fail;
        char *sl = ss_checkpoint_meta(c.model, "seq_len");
        if (sl && !c.seq_len) seq_len = atoi(sl);
        free(sl);
        if (seq_len < 8 || seq_len > 4096) {
            s = ss_seterr(SS_ERR_FORMAT, "%s: metadata seq_len out of range", c.model);
            goto fail;
        }
    } else if (c.tokenizer) {
        if ((s = load_tokenizer_any(c.tokenizer, &tok))) goto fail;
    } else {
        if ((s = train_tokenizer_on(&l.set, l.train_idx, l.ntrain, c.vocab, &tok))) goto fail;
    }
    o.epochs = c.epochs;
    o.batch = c.batch;
    o.lr = c.lr;
    o.wd = c.wd;
    o.warmup_epochs = c.warmup;
    o.clip_norm = c.clip;
    o.seq_len = seq_len;
    o.pool = c.pool >= 0 ? c.pool : ck_pool;
    o.encoder_lr_scale = c.model ? c.enc_scale : 1.0f;
    o.layer_decay = c.model ? c.layer_decay : 1.0f;
    o.label_smoothing = c.label_smoothing;
    o.eval_every = c.eval_every;
    o.seed = c.seed;
    o.run_dir = c.out;
    o.quiet = c.quiet;
    o.resume = c.resume;
    o.max_steps = c.max_steps;
    o.what = cmd;
    if ((s = ss_text_model_create(&m, tok, seq_len, l.set.nclasses))) goto fail;
    if ((s = ss_model_finalize(&m, c.seed))) goto fail;
    if (c.model && (s = ss_checkpoint_load_into(c.model, &m, "encoder.", 0, NULL, NULL))) goto fail;
    m.class_names = calloc((size_t)m.nclasses, sizeof(char *));
    for (int i = 0; m.class_names && i < m.nclasses; i++) m.class_names[i] = strdup(l.set.class_names[i]);
    cJSON *cj = config_of(&c, cmd, &o, ss_tokenizer_vocab_size(tok));
    cJSON_AddStringToObject(cj, "labels", c.labels);
    cJSON_AddNumberToObject(cj, "labelled", (double)l.nlab);
    cJSON_AddNumberToObject(cj, "test_samples", (double)l.ntest);
    if (c.model) {
        cJSON_AddNumberToObject(cj, "encoder_lr_scale", o.encoder_lr_scale);
        cJSON_AddNumberToObject(cj, "layer_decay", o.layer_decay);
    }
    cfg = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    o.config_json = cfg;
    double acc = NAN;
    ss_fit_result res;
    if ((s = ss_text_train_classifier(&m, tok, &l.set, l.lab_idx, l.nlab, l.test, l.test_idx, l.ntest, &o, &acc,
                                      &res)))
        goto fail;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "command", cmd);
    cJSON_AddStringToObject(r, "encoder", "text-s");
    cJSON_AddStringToObject(r, "labels", c.labels);
    cJSON_AddNumberToObject(r, "labelled", (double)l.nlab);
    cJSON_AddNumberToObject(r, "epochs", o.epochs);
    cJSON_AddNumberToObject(r, "test_acc", acc);
    cJSON_AddNumberToObject(r, "test_samples", (double)l.ntest);
    cJSON_AddNumberToObject(r, "seed", (double)c.seed);
    cJSON_AddNumberToObject(r, "train_seconds", res.seconds);
    if (c.out) cJSON_AddStringToObject(r, "run_dir", c.out);
    ss_fit_result_free(&res);
    int werr = write_result(c.out, r);
    if (!werr) print_kv_result(c.json, cmd, r);
    cJSON_Delete(r);
    if (werr) goto fail;
    ss_model_free(&m);
    ss_tokenizer_free(tok);
    labelled_free(&l);
    free(cfg);
    return 0;
fail:
    ss_model_free(&m);
    ss_tokenizer_free(tok);
    labelled_free(&l);
    free(cfg);
    return fail(cmd);
}

/* --------------------------------------------------------- probe / eval / robustness */

/* Model (encoder only for probe; with head otherwise) + its tokenizer. */
static ss_status load_text_model(const char *path, int with_head, ss_model *m, ss_tokenizer **tok, int *pool)
{
    memset(m, 0, sizeof *m);
    ss_status s = ss_text_checkpoint_tokenizer(path, tok, pool);
    if (s) return s;
    if (with_head) {
        s = ss_checkpoint_load_model(path, m, NULL, NULL);
        if (!s && m->nclasses <= 0)
            s = ss_seterr(SS_ERR_INVALID, "%s has no classifier head (a pretrained encoder: use probe or finetune)",
                          path);
        return s;
    }
    char *sl = ss_checkpoint_meta(path, "seq_len");
    int seq_len = sl ? atoi(sl) : 128;
    free(sl);
    if (seq_len < 8 || seq_len > 4096) return ss_seterr(SS_ERR_FORMAT, "%s: metadata seq_len out of range", path);
    s = ss_text_model_create(m, *tok, seq_len, 0);
    if (!s) s = ss_model_finalize(m, 0);
    if (!s) s = ss_checkpoint_load_into(path, m, "encoder.", 0, NULL, NULL);
    return s;
}

static int text_eval_like(int argc, char **argv, const char *cmd)
{
    ss_args a;
    if (ss_args_parse(&a, cmd, argc, argv)) return cli_fail();
    a.help_args = " --text x";
    int probe = !strcmp(cmd, "probe"), robust = !strcmp(cmd, "robustness");
    if (args_flag(&a, "help")) {
        printf("usage: selfsup %s --text LABELLED --model CHECKPOINT [--test-text PATH | --test-frac 0.1\n"
               "  --split-seed 0]%s [--pool mean|cls] [--seed 0] [--threads 2] [--out DIR] [--json]\n%s",
               cmd, probe ? " [--labels 100%] [--epochs 100]" : "",
               robust ? "Accuracy under typos, case changes and word dropout at severities 1-3 on the test split.\n"
                      : "");
        return 0;
    }
    ss_text_run_opts o = ss_text_run_defaults(0);
    o.epochs = 100;
    text_cli c;
    memset(&c, 0, sizeof c);
    int ok = 1;
    read_common(&a, &c, &o, &ok);
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!c.text || !c.model) {
        fprintf(stderr, "selfsup %s: --text LABELLED and --model CHECKPOINT are required\n", cmd);
        return 2;
    }
    labelled l;
    ss_tokenizer *tok = NULL;
    ss_model m;
    memset(&m, 0, sizeof m);
    int pool = SS_POOL_MEAN;
    ss_status s = load_labelled(&c, probe, &l);
    if (!s) s = load_text_model(c.model, !probe, &m, &tok, &pool);
    if (s) goto fail;
    if (c.pool >= 0) pool = c.pool;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "command", cmd);
    cJSON_AddStringToObject(r, "model", c.model);
    cJSON_AddStringToObject(r, "pool", ss_text_pool_name(pool));
    cJSON_AddNumberToObject(r, "test_samples", (double)l.ntest);
    double t0 = ss_now();
    if (probe) {
        double acc;
        s = ss_text_probe(&m, tok, &l.set, l.lab_idx, l.nlab, l.test, l.test_idx, l.ntest, pool, c.epochs, c.seed,
                          &acc);
        cJSON_AddStringToObject(r, "labels", c.labels);
        cJSON_AddNumberToObject(r, "labelled", (double)l.nlab);
        cJSON_AddNumberToObject(r, "probe_acc", acc);
    } else if (!robust) {
        double acc;
        int C = m.nclasses;
        int64_t *conf = calloc((size_t)C * (size_t)C, sizeof(int64_t));
        s = conf ? ss_text_evaluate(&m, tok, l.test, l.test_idx, l.ntest, pool, NULL, NULL, &acc, conf)
                 : ss_seterr(SS_ERR_NOMEM, "out of memory");
        if (!s) {
            cJSON_AddNumberToObject(r, "test_acc", acc);
            cJSON *pc = cJSON_AddObjectToObject(r, "per_class_acc");
            cJSON *cm = cJSON_AddArrayToObject(r, "confusion");
            for (int y = 0; y < C; y++) {
                int64_t tot = 0;
                cJSON *row = cJSON_CreateArray();
                for (int k = 0; k < C; k++) {
                    tot += conf[y * C + k];
                    cJSON_AddItemToArray(row, cJSON_CreateNumber((double)conf[y * C + k]));
                }
                cJSON_AddItemToArray(cm, row);
                const char *nm = m.class_names ? m.class_names[y] : l.set.class_names[y];
                cJSON_AddNumberToObject(pc, nm, tot ? (double)conf[y * C + y] / (double)tot : 0.0);
            }
        }
        free(conf);
    } else {
        ss_text_robust_result rr;
        s = ss_text_robustness(&m, tok, l.test, l.test_idx, l.ntest, pool, c.seed, &rr);
        if (!s) {
            cJSON_AddNumberToObject(r, "clean_acc", rr.clean);
            cJSON_AddNumberToObject(r, "mean_corruption_acc", ss_text_robust_mean(&rr));
            cJSON *arr = cJSON_AddArrayToObject(r, "corruptions");
            for (int i = 0; i < rr.n; i++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "name", rr.name[i]);
                cJSON *ac = cJSON_AddArrayToObject(e, "acc");
                double mean = 0;
                for (int k = 0; k < SS_TEXT_SEVERITIES; k++) {
                    cJSON_AddItemToArray(ac, cJSON_CreateNumber(rr.acc[i][k]));
                    mean += rr.acc[i][k] / SS_TEXT_SEVERITIES;
                }
                cJSON_AddNumberToObject(e, "mean_acc", mean);
                cJSON_AddNumberToObject(e, "drop", rr.clean - mean);
                cJSON_AddItemToArray(arr, e);
            }
            if (!c.json) {
                printf("%-14s %7s %7s %7s %7s %7s\n", "corruption", "s1", "s2", "s3", "mean", "drop");
                printf("%-14s %7.2f\n", "clean", 100 * rr.clean);
                for (int i = 0; i < rr.n; i++) {
                    double mean = 0;
                    printf("%-14s", rr.name[i]);
                    for (int k = 0; k < SS_TEXT_SEVERITIES; k++) {
                        printf(" %7.2f", 100 * rr.acc[i][k]);
                        mean += rr.acc[i][k] / SS_TEXT_SEVERITIES;
                    }
                    printf(" %7.2f %+7.2f\n", 100 * mean, -100 * (rr.clean - mean));
                }
            }
            if (c.out) {
                char p[1100], *js = cJSON_Print(r);
                snprintf(p, sizeof p, "%s/robustness.json", c.out);
                s = ss_mkdir_p(c.out);
                if (!s) s = ss_write_file_atomic(p, js, strlen(js));
                free(js);
            }
        }
    }
    cJSON_AddNumberToObject(r, "seconds", ss_now() - t0);
    if (!s) {
        if (robust && !c.json)
            printf("mean corruption accuracy %.2f%% (clean %.2f%%)\n",
                   100 * cJSON_GetObjectItem(r, "mean_corruption_acc")->valuedouble,
                   100 * cJSON_GetObjectItem(r, "clean_acc")->valuedouble);
        else print_kv_result(c.json, cmd, r);
    }
    cJSON_Delete(r);
    if (s) goto fail;
    ss_model_free(&m);
    ss_tokenizer_free(tok);
    labelled_free(&l);
    return 0;
fail:
    ss_model_free(&m);
    ss_tokenizer_free(tok);
    labelled_free(&l);
    return fail(cmd);
}

/* ------------------------------------------------------------ dispatch */

int text_flag_given(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--text") || !strncmp(argv[i], "--text=", 7)) return 1;
    return 0;
}

int cmd_text(const char *cmd, int argc, char **argv)
{
    if (!strcmp(cmd, "pretrain")) return text_pretrain(argc, argv);
    if (!strcmp(cmd, "train") || !strcmp(cmd, "finetune")) return text_train(argc, argv, cmd);
    if (!strcmp(cmd, "probe") || !strcmp(cmd, "eval") || !strcmp(cmd, "robustness"))
        return text_eval_like(argc, argv, cmd);
    if (!strcmp(cmd, "demo")) return cmd_text_demo(argc, argv);
    if (!strcmp(cmd, "tokenizer")) return cmd_tokenizer(argc, argv);
    fprintf(stderr, "selfsup %s: does not take --text\n", cmd);
    return 2;
}
