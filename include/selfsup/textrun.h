/* selfsup — the text side's training level: a batch source of token
 * sequences for ss_fit_source, text-s classifiers (pooled features + linear
 * head), and the library calls behind `selfsup ... --text`: MLM
 * pretraining, supervised training / fine-tuning, linear probe, evaluation
 * and robustness under text corruptions.
 *
 * A text model is an ss_model whose encoder is text-s. Its checkpoint holds
 * the tokenizer JSON in the metadata key "tokenizer" (m->tokenizer_json) and
 * the feature pooling in the config JSON ("pool": "cls" or "mean"), so a
 * checkpoint alone is enough to fine-tune, probe or evaluate it.
 */
#ifndef SELFSUP_TEXTRUN_H
#define SELFSUP_TEXTRUN_H

#include "selfsup/ssl.h"
#include "selfsup/text.h"
#include "selfsup/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ text batcher */

typedef struct ss_text_batcher ss_text_batcher;

typedef struct ss_text_batcher_opts {
    int seq_len;     /* tokens per sequence incl. [CLS] and [SEP]; default 128 */
    int batch;       /* sequences per batch; default 64 */
    int pack;        /* 1: concatenate every text (each followed by [SEP]) into
                        one token stream and cut it into seq_len - 2 token
                        chunks, each framed [CLS] ... [SEP] (pretraining: no
                        padding wasted); 0: one sequence per text, truncated */
    int mlm;         /* 1: BERT masking (ss_mlm_mask) of every batch, drawn
                        afresh each epoch from (seed, epoch, sequence) */
    float mask_prob; /* default 0.15 */
    int shuffle;     /* permutation from (seed, epoch) each epoch */
    int drop_last;   /* drop a last partial batch */
    uint64_t seed;
    int64_t max_sequences; /* > 0: keep a seeded random subset of this many
                              sequences (the same every epoch): a token budget */
    int bucket;      /* > 0 (with shuffle): length bucketing: each pool of
                        this many batches of the shuffled order is sorted by
                        length and the batches' order shuffled again, so a
                        batch holds sentences of similar length (fewer
                        padding tokens); 0: plain shuffle */
} ss_text_batcher_opts;

/* Tokenise set's samples idx[0..n) (idx NULL = all) once. The batcher keeps
 * no pointer to set or idx; tok must outlive it. Batches are trimmed to the
 * longest sequence they hold (padding is masked out of attention), so short
 * sentences cost short sequences. Deterministic in seed. */
ss_status ss_text_batcher_new(const ss_tokenizer *tok, const ss_textset *set, const int32_t *idx, int64_t n,
                              const ss_text_batcher_opts *o, ss_text_batcher **out);
void ss_text_batcher_free(ss_text_batcher *b);
/* Sequences the batcher holds, and batches per epoch. */
int64_t ss_text_batcher_sequences(const ss_text_batcher *b);
int64_t ss_text_batcher_batches(const ss_text_batcher *b);
/* The batcher as ss_fit_source's batch source. Each ss_batch has n, y
 * (labels, -1 in pack mode), idx (positions in the given idx list, or chunk
 * numbers), epoch and index_in_epoch; no image data (x[0] is NULL). The
 * tokens of the batch last handed out are read with ss_text_batcher_current. */
ss_batch_source ss_text_batcher_source(ss_text_batcher *b);
/* Current batch: *n sequences of *t tokens; ids (the model input: masked
 * when mlm) and targets (mlm: original id at chosen positions, -1 elsewhere;
 * NULL when not mlm). */
void ss_text_batcher_current(const ss_text_batcher *b, const int32_t **ids, const int32_t **targets, int64_t *n,
                             int *t);

/* ---------------------------------------------------------- text models */

enum { SS_POOL_CLS = 0, SS_POOL_MEAN = 1 };
/* "cls" / "mean" <-> SS_POOL_*; parse returns -1 for anything else. */
int ss_text_pool_parse(const char *s);
const char *ss_text_pool_name(int pool);

/* Pooled features [n, D] of ids [n, t]: the [CLS] output, or the mean of
 * the outputs over non-[PAD] positions. */
ss_tensor *ss_text_features(ss_graph *g, const ss_model *m, const int32_t *ids, int64_t n, int t, int pool);
/* Logits [n, nclasses] = head(features). */
ss_tensor *ss_text_logits(ss_graph *g, const ss_model *m, const int32_t *ids, int64_t n, int t, int pool);

/* Create a text-s model for tok (vocab = its size) with sequences of
 * seq_len and nclasses outputs (0 = encoder only); the tokenizer JSON is
 * stored in m->tokenizer_json. Call ss_model_finalize after adding heads. */
ss_status ss_text_model_create(ss_model *m, const ss_tokenizer *tok, int seq_len, int nclasses);
/* Load a text checkpoint's tokenizer (from its metadata) and its pooling
 * (from its config; SS_POOL_MEAN when not recorded). pool may be NULL. */
ss_status ss_text_checkpoint_tokenizer(const char *path, ss_tokenizer **tok, int *pool);

/* Accuracy of a classifier on set's samples idx[0..n) (idx NULL = all);
 * confusion [nclasses*nclasses] when not NULL. texts, when not NULL,
 * replaces the samples' texts (lens their lengths), e.g. corrupted copies. */
ss_status ss_text_evaluate(const ss_model *m, const ss_tokenizer *tok, const ss_textset *set, const int32_t *idx,
                           int64_t n, int pool, char *const *texts, const size_t *lens, double *acc,
                           int64_t *confusion);
/* Pooled features of set's samples idx[0..n) into out [n, D] (eval mode). */
ss_status ss_text_extract_features(const ss_model *m, const ss_tokenizer *tok, const ss_textset *set,
                                   const int32_t *idx, int64_t n, int pool, float *out);

/* ------------------------------------------------------------ text runs */

typedef struct ss_text_run_opts {
    int epochs;
    int batch;
    float lr, wd, warmup_epochs, final_lr_frac; /* cosine from lr to lr*final_lr_frac */
    float clip_norm;
    int seq_len;
    int pool;                 /* SS_POOL_* (classifiers) */
    float encoder_lr_scale;   /* fine-tune: encoder lr multiplier (1 = same) */
    float layer_decay;        /* fine-tune: block i of D gets decay^(D-i), embeddings decay^(D+1); 1 = off */
    float label_smoothing;
    int eval_every;           /* epochs between test evaluations (0 = last only) */
    uint64_t seed;
    const char *run_dir;      /* NULL = no run folder */
    const char *config_json;  /* written into checkpoints */
    const char *what;         /* progress label */
    int quiet, resume;
    int64_t max_steps;
    int64_t max_sequences;    /* pretraining: a seeded subset of this many packed sequences (0 = all) */
    float docbow_emb_weight;  /* docbow: weight of the second head, on the mean token embedding (0 = off, the default) */
} ss_text_run_opts;

/* Defaults: MLM pretraining (lr 1e-3, wd 0.01, batch 64, warm-up 1 epoch,
 * seq 128) or classification (lr 5e-4, wd 0.01, batch 32, mean pooling,
 * encoder lr scale 1, layer decay 1). */
ss_text_run_opts ss_text_run_defaults(int pretrain);

/* MLM pretraining of m (a text model from ss_text_model_create with
 * nclasses 0, not yet finalized: the MLM head is added here and the model
 * finalized with o->seed) on corpus (all samples, packed). */
ss_status ss_text_pretrain_mlm(ss_model *m, const ss_tokenizer *tok, const ss_textset *corpus,
                               const ss_text_run_opts *o, ss_fit_result *res);

/* Document-context pretraining ("docbow") of m (as for MLM: nclasses 0, not
 * finalized; the head "docbow_head", a linear map from the pooled features
 * o->pool to the vocabulary, is added here). docs holds one document per
 * sample; each is split into sentences (lines, and after . ! ? inside long
 * lines) and documents of one sentence are left out. Each step predicts, for
 * a batch of sentences, the bag of tokens of the rest of their documents (a
 * document's tokens counted as the model sees its sentences: each cut to
 * seq_len - 2 tokens)
 * (tokens weighted 1/sqrt(corpus count + 1), normalised): cross-entropy
 * against softmax of the head's logits. With o->docbow_emb_weight > 0 a
 * second head, "docbow_emb_head", predicts the same target from the mean of
 * the sentence's token embeddings, and its cross-entropy, times that weight,
 * is added to the loss. A weight that is not a finite number >= 0 is
 * SS_ERR_INVALID. A resume (o->resume) must use the weight the run started
 * with, zero or not: the checkpoint loader refuses a head more or less. */
ss_status ss_text_pretrain_docbow(ss_model *m, const ss_tokenizer *tok, const ss_textset *docs,
                                  const ss_text_run_opts *o, ss_fit_result *res);

/* Train a classifier m (finalized; encoder from scratch or pretrained) on
 * train's samples idx[0..n); evaluate on test's samples test_idx[0..ntest)
 * (test_idx NULL = all) at the end (and every eval_every epochs: the
 * metric of metrics.jsonl). *test_acc: accuracy after the last epoch. */
ss_status ss_text_train_classifier(ss_model *m, const ss_tokenizer *tok, const ss_textset *train,
                                   const int32_t *idx, int64_t n, const ss_textset *test, const int32_t *test_idx,
                                   int64_t ntest, const ss_text_run_opts *o, double *test_acc, ss_fit_result *res);

/* Linear probe (ss_linear_probe) on frozen pooled features. */
ss_status ss_text_probe(const ss_model *m, const ss_tokenizer *tok, const ss_textset *train, const int32_t *idx,
                        int64_t n, const ss_textset *test, const int32_t *test_idx, int64_t ntest, int pool,
                        int epochs, uint64_t seed, double *test_acc);

/* Robustness: accuracy on the test samples under every text corruption
 * (ss_text_corruption_name) at severities 1..3. */
#define SS_TEXT_SEVERITIES 3
typedef struct ss_text_robust_result {
    double clean;
    int n; /* corruptions */
    const char *name[8];
    double acc[8][SS_TEXT_SEVERITIES];
    int64_t samples;
} ss_text_robust_result;
ss_status ss_text_robustness(const ss_model *m, const ss_tokenizer *tok, const ss_textset *test,
                             const int32_t *test_idx, int64_t ntest, int pool, uint64_t seed,
                             ss_text_robust_result *r);
/* Mean over the corruptions and severities. */
double ss_text_robust_mean(const ss_text_robust_result *r);

#ifdef __cplusplus
}
#endif
#endif
