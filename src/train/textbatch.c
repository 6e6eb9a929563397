/* Text batcher: token sequences for ss_fit_source (see selfsup/textrun.h).
 * Everything is tokenised once; a batch is a gather of sequences plus, for
 * MLM, a fresh masking keyed by (seed, epoch, sequence), so a run is
 * deterministic and resumes exactly. */
#include <stdlib.h>
#include <string.h>

#include "selfsup/textrun.h"

typedef struct len_key {
    int32_t len, pos, id;
} len_key;

struct ss_text_batcher {
    int T, B, mlm, shuffle, drop_last, vocab, bucket;
    float p;
    uint64_t seed;
    int64_t nseq, spe;
    int32_t *ids;  /* nseq*T, padded */
    int32_t *lens; /* unpadded length of each sequence */
    int32_t *labels, *src;
    int32_t *perm;
    int64_t perm_epoch;
    len_key *bk_kv; /* length bucketing buffers, allocated up front */
    int32_t *bk_order, *bk_tmp;
    int64_t epoch, next_b; /* the next batch to hand out */
    /* current batch */
    int32_t *cur_in, *cur_tg, *cur_y, *cur_idx;
    int64_t cur_n;
    int cur_t;
};

static ss_status pack_texts(ss_text_batcher *b, const ss_tokenizer *tok, const ss_textset *set, const int32_t *idx,
                            int64_t n)
{
    /* Count, then encode into one stream, each text followed by [SEP]. */
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        total += ss_tokenizer_encode(tok, set->texts[k], set->lens[k], NULL, 0) + 1;
    }
    int32_t *stream = malloc(sizeof(int32_t) * (size_t)(total ? total : 1));
    if (!stream) return ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory (%lld tokens)", (long long)total);
    int64_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        o += ss_tokenizer_encode(tok, set->texts[k], set->lens[k], stream + o, total - o);
        stream[o++] = SS_TOK_SEP;
    }
    int W = b->T - 2;
    b->nseq = (o + W - 1) / W;
    b->ids = calloc((size_t)(b->nseq ? b->nseq : 1) * (size_t)b->T, sizeof(int32_t));
    b->lens = malloc(sizeof(int32_t) * (size_t)(b->nseq ? b->nseq : 1));
    b->labels = malloc(sizeof(int32_t) * (size_t)(b->nseq ? b->nseq : 1));
    b->src = malloc(sizeof(int32_t) * (size_t)(b->nseq ? b->nseq : 1));
    if (!b->ids || !b->lens || !b->labels || !b->src) {
        free(stream);
        return ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
    }
    for (int64_t s = 0; s < b->nseq; s++) {
        int32_t *row = b->ids + s * b->T;
        int64_t a = s * W, len = o - a < W ? o - a : W;
        row[0] = SS_TOK_CLS;
        memcpy(row + 1, stream + a, sizeof(int32_t) * (size_t)len);
        int L = (int)len + 1;
        if (row[L - 1] != SS_TOK_SEP) row[L++] = SS_TOK_SEP; /* a chunk ending on [SEP] needs no second one */
        b->lens[s] = L;
        b->labels[s] = -1;
        b->src[s] = (int32_t)s;
    }
    free(stream);
    return SS_OK;
}

static ss_status one_per_text(ss_text_batcher *b, const ss_tokenizer *tok, const ss_textset *set, const int32_t *idx,
                              int64_t n)
{
    b->nseq = n;
    b->ids = calloc((size_t)(n ? n : 1) * (size_t)b->T, sizeof(int32_t));
    b->lens = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    b->labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    b->src = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!b->ids || !b->lens || !b->labels || !b->src) return ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
    for (int64_t i = 0; i < n; i++) {
        int64_t k = idx ? idx[i] : i;
        if (k < 0 || k >= set->n)
            return ss_seterr(SS_ERR_INVALID, "text batcher: index %lld out of range [0, %lld)", (long long)k,
                             (long long)set->n);
        b->lens[i] = ss_tokenizer_encode_seq(tok, set->texts[k], set->lens[k], b->ids + i * b->T, b->T);
        b->labels[i] = set->labels ? set->labels[k] : -1;
        b->src[i] = (int32_t)i;
    }
    return SS_OK;
}

ss_status ss_text_batcher_new(const ss_tokenizer *tok, const ss_textset *set, const int32_t *idx, int64_t n,
                              const ss_text_batcher_opts *o, ss_text_batcher **out)
{
    *out = NULL;
    if (!idx) n = set->n;
    ss_text_batcher *b = calloc(1, sizeof *b);
    if (!b) return ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
    b->T = o->seq_len > 0 ? o->seq_len : 128;
    b->B = o->batch > 0 ? o->batch : 64;
    b->mlm = o->mlm;
    b->p = o->mask_prob > 0 ? o->mask_prob : 0.15f;
    b->shuffle = o->shuffle;
    b->drop_last = o->drop_last;
    b->bucket = o->bucket > 0 ? o->bucket : 0;
    b->seed = o->seed;
    b->vocab = ss_tokenizer_vocab_size(tok);
    b->perm_epoch = -1;
    ss_status s = SS_OK;
    if (b->T < 3 || b->T > 65536) s = ss_seterr(SS_ERR_INVALID, "text batcher: sequence length %d outside [3, 65536]", b->T);
    if (!s) s = o->pack ? pack_texts(b, tok, set, idx, n) : one_per_text(b, tok, set, idx, n);
    if (!s && o->max_sequences > 0 && o->max_sequences < b->nseq) {
        /* Keep a seeded subset, in its original order (a fixed token budget). */
        int32_t *keep = malloc(sizeof(int32_t) * (size_t)b->nseq);
        if (!keep) s = ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
        else {
            for (int64_t i = 0; i < b->nseq; i++) keep[i] = (int32_t)i;
            ss_rng r;
            ss_rng_seed(&r, b->seed ^ 0x737562736574ull, 0);
            ss_rng_shuffle_i32(&r, keep, b->nseq);
            int64_t k = o->max_sequences;
            /* sort the kept ids ascending (counting pass over a mark array) */
            char *mark = calloc((size_t)b->nseq, 1);
            if (!mark) s = ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
            for (int64_t i = 0; mark && i < k; i++) mark[keep[i]] = 1;
            int64_t j = 0;
            for (int64_t i = 0; mark && i < b->nseq; i++) {
                if (!mark[i]) continue;
                memmove(b->ids + j * b->T, b->ids + i * b->T, sizeof(int32_t) * (size_t)b->T);
                b->lens[j] = b->lens[i];
                b->labels[j] = b->labels[i];
                b->src[j] = b->src[i];
                j++;
            }
            if (mark) b->nseq = k;
            free(mark);
            free(keep);
        }
    }
    if (!s) {
        b->spe = b->drop_last ? b->nseq / b->B : (b->nseq + b->B - 1) / b->B;
        size_t cap = (size_t)b->B * (size_t)b->T;
        b->perm = malloc(sizeof(int32_t) * (size_t)(b->nseq ? b->nseq : 1));
        b->cur_in = malloc(sizeof(int32_t) * cap);
        b->cur_tg = malloc(sizeof(int32_t) * cap);
        b->cur_y = malloc(sizeof(int32_t) * (size_t)b->B);
        b->cur_idx = malloc(sizeof(int32_t) * (size_t)b->B);
        if (!b->perm || !b->cur_in || !b->cur_tg || !b->cur_y || !b->cur_idx)
            s = ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
    }
    if (!s && b->bucket && b->shuffle) {
        int64_t full = b->nseq / b->B, pool = (int64_t)b->bucket * b->B;
        if (pool > full * b->B) pool = full * b->B;
        b->bk_kv = malloc(sizeof *b->bk_kv * (size_t)(pool > 0 ? pool : 1));
        b->bk_order = malloc(sizeof(int32_t) * (size_t)(full > 0 ? full : 1));
        b->bk_tmp = malloc(sizeof(int32_t) * (size_t)(full > 0 ? full * b->B : 1));
        if (!b->bk_kv || !b->bk_order || !b->bk_tmp) s = ss_seterr(SS_ERR_NOMEM, "text batcher: out of memory");
    }
    if (s) {
        ss_text_batcher_free(b);
        return s;
    }
    *out = b;
    return SS_OK;
}

void ss_text_batcher_free(ss_text_batcher *b)
{
    if (!b) return;
    free(b->ids);
    free(b->lens);
    free(b->labels);
    free(b->src);
    free(b->perm);
    free(b->bk_kv);
    free(b->bk_order);
    free(b->bk_tmp);
    free(b->cur_in);
    free(b->cur_tg);
    free(b->cur_y);
    free(b->cur_idx);
    free(b);
}

int64_t ss_text_batcher_sequences(const ss_text_batcher *b) { return b->nseq; }
int64_t ss_text_batcher_batches(const ss_text_batcher *b) { return b->spe; }

/* Length bucketing: sort each pool of `bucket` batches of the shuffled order
 * by length (ties by position), then shuffle the order of the full batches;
 * a short last batch stays last. Batches then hold sentences of similar
 * length and are trimmed to far fewer tokens. */

static int by_len(const void *a, const void *b)
{
    const len_key *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static void bucket_by_length(ss_text_batcher *b, ss_rng *r)
{
    int64_t full = b->nseq / b->B, pool = (int64_t)b->bucket * b->B, used = full * b->B;
    len_key *kv = b->bk_kv;
    int32_t *order = b->bk_order, *tmp = b->bk_tmp;
    for (int64_t p0 = 0; p0 < used; p0 += pool) {
        int64_t m = used - p0 < pool ? used - p0 : pool;
        for (int64_t i = 0; i < m; i++) {
            int32_t id = b->perm[p0 + i];
            kv[i] = (len_key){b->lens[id], (int32_t)i, id};
        }
        qsort(kv, (size_t)m, sizeof *kv, by_len);
        for (int64_t i = 0; i < m; i++) b->perm[p0 + i] = kv[i].id;
    }
    for (int64_t i = 0; i < full; i++) order[i] = (int32_t)i;
    ss_rng_shuffle_i32(r, order, full);
    for (int64_t i = 0; i < full; i++)
        memcpy(tmp + i * b->B, b->perm + (int64_t)order[i] * b->B, sizeof(int32_t) * (size_t)b->B);
    memcpy(b->perm, tmp, sizeof(int32_t) * (size_t)used);
}

static void make_perm(ss_text_batcher *b, int64_t epoch)
{
    if (b->perm_epoch == epoch) return;
    for (int64_t i = 0; i < b->nseq; i++) b->perm[i] = (int32_t)i;
    if (b->shuffle) {
        ss_rng r;
        ss_rng_seed(&r, b->seed ^ 0x7465787462617463ull, (uint64_t)epoch);
        ss_rng_shuffle_i32(&r, b->perm, b->nseq);
        if (b->bucket) bucket_by_length(b, &r);
    }
    b->perm_epoch = epoch;
}

static int64_t src_spe(void *ctx) { return ((ss_text_batcher *)ctx)->spe; }
static double src_wait(void *ctx)
{
    (void)ctx;
    return 0.0; /* batches are built in the training thread */
}

static ss_status src_seek(void *ctx, int64_t epoch, int64_t batch)
{
    ss_text_batcher *b = ctx;
    if (epoch < 0 || batch < 0 || batch > b->spe)
        return ss_seterr(SS_ERR_INVALID, "text batcher: cannot seek to epoch %lld batch %lld", (long long)epoch,
                         (long long)batch);
    b->epoch = epoch;
    b->next_b = batch;
    return SS_OK;
}

static ss_status src_next(void *ctx, ss_batch *out)
{
    ss_text_batcher *b = ctx;
    if (b->spe <= 0) return ss_seterr(SS_ERR_INVALID, "text batcher: no batch (fewer sequences than the batch size?)");
    if (b->next_b >= b->spe) {
        b->epoch++;
        b->next_b = 0;
    }
    make_perm(b, b->epoch);
    int64_t i0 = b->next_b * b->B, n = b->nseq - i0 < b->B ? b->nseq - i0 : b->B;
    int t = 2;
    for (int64_t i = 0; i < n; i++) {
        int L = b->lens[b->perm[i0 + i]];
        if (L > t) t = L;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t s = b->perm[i0 + i];
        const int32_t *row = b->ids + s * b->T;
        int32_t *in = b->cur_in + i * t, *tg = b->cur_tg + i * t;
        if (b->mlm) {
            ss_rng r;
            ss_rng_seed(&r, ss_mix64(b->seed ^ ss_mix64((uint64_t)b->epoch + 0x6d6c6dull)), (uint64_t)s);
            ss_mlm_mask(row, t, b->vocab, b->p, &r, in, tg);
        } else {
            memcpy(in, row, sizeof(int32_t) * (size_t)t);
        }
        b->cur_y[i] = b->labels[s];
        b->cur_idx[i] = b->src[s];
    }
    b->cur_n = n;
    b->cur_t = t;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->views = 1;
    out->y = b->cur_y;
    out->idx = b->cur_idx;
    out->epoch = b->epoch;
    out->index_in_epoch = b->next_b;
    b->next_b++;
    return SS_OK;
}

ss_batch_source ss_text_batcher_source(ss_text_batcher *b)
{
    ss_batch_source s = {b, src_spe, src_next, src_seek, src_wait};
    return s;
}

void ss_text_batcher_current(const ss_text_batcher *b, const int32_t **ids, const int32_t **targets, int64_t *n,
                             int *t)
{
    if (ids) *ids = b->cur_in;
    if (targets) *targets = b->mlm ? b->cur_tg : NULL;
    if (n) *n = b->cur_n;
    if (t) *t = b->cur_t;
}
