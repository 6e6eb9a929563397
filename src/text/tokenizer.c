/* Byte-level BPE tokenizer: pre-tokenisation, training, encoding, decoding.
 * Save/load (Hugging Face JSON) lives in tokenizer_json.c. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

const char *const ss_tok_special_names[SS_TOK_NSPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                           "[MASK]"};

ss_tokenizer_opts ss_tokenizer_opts_default(void)
{
    ss_tokenizer_opts o = {8192, 1, 2};
    return o;
}

/* ------------------------------------------------------- pre-tokenisation */

enum { CL_L = 0, CL_N = 1, CL_W = 2, CL_P = 3 };

static uint8_t g_class[256];
static pthread_once_t g_class_once = PTHREAD_ONCE_INIT;

static void class_init(void)
{
    for (int c = 0; c < 256; c++) {
        uint8_t k = CL_P;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) k = CL_L;
        else if (c >= '0' && c <= '9') k = CL_N;
        else if (c == ' ' || (c >= '\t' && c <= '\r')) k = CL_W;
        g_class[c] = k;
    }
}

/* End of the pre-token that starts at i (< n); see text.h for the rule. */
static size_t pretok_next(const uint8_t *s, size_t n, size_t i)
{
    if (s[i] == '\'' && i + 1 < n) {
        uint8_t c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            uint8_t c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                return i + 3;
        }
    }
    size_t j = i;
    if (s[j] == ' ' && j + 1 < n && g_class[s[j + 1]] != CL_W) j++;
    uint8_t c = g_class[s[j]];
    if (c != CL_W) {
        while (j < n && g_class[s[j]] == c) j++;
        return j;
    }
    while (j < n && g_class[s[j]] == CL_W) j++;
    if (j == n) return n;          /* \s+(?!\S) at the end */
    if (j - i >= 2) return j - 1;  /* leave the last space to the next word */
    return j;                      /* \s+ */
}

int64_t ss_tokenizer_pretokenize(const char *text, size_t len, size_t *starts, size_t *lens,
                                 int64_t max)
{
    pthread_once(&g_class_once, class_init);
    const uint8_t *s = (const uint8_t *)text;
    int64_t k = 0;
    for (size_t i = 0; i < len;) {
        size_t e = pretok_next(s, len, i);
        if (k < max) {
            if (starts) starts[k] = i;
            if (lens) lens[k] = e - i;
        }
        k++;
        i = e;
    }
    return k;
}

/* -------------------------------------------------------------- building */

void ss_tokenizer_free(ss_tokenizer *t)
{
    if (!t) return;
    free(t->tok_bytes);
    free(t->tok_off);
    free(t->merge_a);
    free(t->merge_b);
    free(t->merge_res);
    ss_txt_pairmap_free(&t->ranks);
    ss_txt_strset_free(&t->cache);
    free(t->cache_start);
    free(t->cache_n);
    free(t->cache_ids);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

ss_status ss_tok_build(int lowercase, int32_t ntok, uint8_t *tok_bytes, size_t *tok_off,
                       int32_t nmerges, int32_t *ma, int32_t *mb, int32_t *mres,
                       ss_tokenizer **out)
{
    *out = NULL;
    ss_tokenizer *t = calloc(1, sizeof *t);
    if (!t || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        free(tok_bytes);
        free(tok_off);
        free(ma);
        free(mb);
        free(mres);
        return ss_seterr(SS_ERR_NOMEM, "tokenizer: cannot allocate");
    }
    t->lowercase = lowercase;
    t->ntok = ntok;
    t->tok_bytes = tok_bytes;
    t->tok_off = tok_off;
    t->nmerges = nmerges;
    t->merge_a = ma;
    t->merge_b = mb;
    t->merge_res = mres;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int32_t id = SS_TOK_NSPECIAL; id < ntok; id++)
        if (tok_off[id + 1] - tok_off[id] == 1) t->byte_id[tok_bytes[tok_off[id]]] = id;
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) {
            ss_tokenizer_free(t);
            return ss_seterr(SS_ERR_FORMAT, "tokenizer: no token for byte 0x%02x", b);
        }
    for (int32_t r = 0; r < nmerges; r++)
        if (ss_txt_pairmap_put(&t->ranks, ma[r], mb[r], r)) {
            ss_tokenizer_free(t);
            return ss_seterr(SS_ERR_NOMEM, "tokenizer: cannot allocate the merge table");
        }
    *out = t;
    return SS_OK;
}

int ss_tokenizer_vocab_size(const ss_tokenizer *t) { return t ? t->ntok : 0; }
int ss_tokenizer_merge_count(const ss_tokenizer *t) { return t ? t->nmerges : 0; }
int ss_tokenizer_lowercase(const ss_tokenizer *t) { return t ? t->lowercase : 0; }

const char *ss_tokenizer_token_bytes(const ss_tokenizer *t, int32_t id, size_t *len)
{
    if (!t || id < 0 || id >= t->ntok) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tok_off[id + 1] - t->tok_off[id];
    return (const char *)t->tok_bytes + t->tok_off[id];
}

/* -------------------------------------------------------------- training */

typedef struct pair_info {
    int64_t count;
    int32_t a, b;
    int32_t *words; /* words that (may) contain the pair; may hold stale entries */
    int32_t nw, cw;
} pair_info;

typedef struct heap_ent {
    int64_t count;
    int32_t a, b;
} heap_ent;

/* Higher count first; among equal counts the lowest (a, b). */
static inline int heap_before(const heap_ent *x, const heap_ent *y)
{
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

typedef struct trainer {
    /* unique words */
    ss_txt_strset words;
    int64_t *wcount;
    int64_t wcount_cap;
    int32_t *sym;    /* symbols of all words, back to back */
    int64_t *soff;   /* per word: offset into sym */
    int32_t *slen;   /* per word: current number of symbols */
    /* pairs */
    ss_txt_pairmap pidx;
    pair_info *pairs;
    int32_t npairs, cpairs;
    heap_ent *heap;
    int64_t nheap, cheap;
    /* tokens beyond the bytes */
    ss_txt_strset toks; /* raw bytes of merged tokens; entry e has id SS_TOK_MIN_VOCAB + e */
    int32_t *ma, *mb, *mres;
    int32_t nmerges, cmerges;
} trainer;

static void trainer_free(trainer *tr)
{
    ss_txt_strset_free(&tr->words);
    free(tr->wcount);
    free(tr->sym);
    free(tr->soff);
    free(tr->slen);
    ss_txt_pairmap_free(&tr->pidx);
    for (int32_t p = 0; p < tr->npairs; p++) free(tr->pairs[p].words);
    free(tr->pairs);
    free(tr->heap);
    ss_txt_strset_free(&tr->toks);
    free(tr->ma);
    free(tr->mb);
    free(tr->mres);
}

static int heap_push(trainer *tr, int64_t count, int32_t a, int32_t b)
{
    if (tr->nheap == tr->cheap) {
        int64_t nc = tr->cheap ? tr->cheap * 2 : 1024;
        heap_ent *h = realloc(tr->heap, (size_t)nc * sizeof *h);
        if (!h) return -1;
        tr->heap = h;
        tr->cheap = nc;
    }
    heap_ent e = {count, a, b};
    int64_t i = tr->nheap++;
    while (i > 0) {
        int64_t par = (i - 1) / 2;
        if (!heap_before(&e, &tr->heap[par])) break;
        tr->heap[i] = tr->heap[par];
        i = par;
    }
    tr->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(trainer *tr)
{
    heap_ent top = tr->heap[0];
    heap_ent last = tr->heap[--tr->nheap];
    int64_t i = 0, n = tr->nheap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&tr->heap[c + 1], &tr->heap[c])) c++;
        if (!heap_before(&tr->heap[c], &last)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n > 0) tr->heap[i] = last;
    return top;
}

/* Index of pair (a, b), creating it; -1 when out of memory. */
static int32_t pair_get(trainer *tr, int32_t a, int32_t b)
{
    int32_t p = ss_txt_pairmap_get(&tr->pidx, a, b);
    if (p >= 0) return p;
    if (tr->npairs == tr->cpairs) {
        int32_t nc = tr->cpairs ? tr->cpairs * 2 : 4096;
        pair_info *np = realloc(tr->pairs, (size_t)nc * sizeof *np);
        if (!np) return -1;
        tr->pairs = np;
        tr->cpairs = nc;
    }
    p = tr->npairs++;
    pair_info *pi = &tr->pairs[p];
    memset(pi, 0, sizeof *pi);
    pi->a = a;
    pi->b = b;
    if (ss_txt_pairmap_put(&tr->pidx, a, b, p)) return -1;
    return p;
}

static int pair_add_word(pair_info *pi, int32_t w)
{
    if (pi->nw && pi->words[pi->nw - 1] == w) return 0;
    if (pi->nw == pi->cw) {
        int32_t nc = pi->cw ? pi->cw * 2 : 4;
        int32_t *nw = realloc(pi->words, (size_t)nc * sizeof *nw);
        if (!nw) return -1;
        pi->words = nw;
        pi->cw = nc;
    }
    pi->words[pi->nw++] = w;
    return 0;
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* Count words of all texts. */
static ss_status count_words(trainer *tr, const char *const *texts, const size_t *lens,
                             int64_t ntexts, int lowercase)
{
    uint8_t *low = NULL;
    size_t lowcap = 0;
    for (int64_t k = 0; k < ntexts; k++) {
        if (!texts[k]) continue;
        size_t n = lens ? lens[k] : strlen(texts[k]);
        const uint8_t *s = (const uint8_t *)texts[k];
        if (lowercase) {
            if (n > lowcap) {
                uint8_t *nl = realloc(low, n);
                if (!nl) {
                    free(low);
                    return ss_seterr(SS_ERR_NOMEM, "tokenizer training: cannot allocate");
                }
                low = nl;
                lowcap = n;
            }
            for (size_t i = 0; i < n; i++)
                low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (uint8_t)(s[i] + 32) : s[i];
            s = low;
        }
        for (size_t i = 0; i < n;) {
            size_t e = pretok_next(s, n, i);
            int added;
            int64_t w = ss_txt_strset_add(&tr->words, s + i, e - i, &added);
            if (w < 0 || w >= INT32_MAX) {
                free(low);
                return ss_seterr(SS_ERR_NOMEM, "tokenizer training: too many distinct words");
            }
            if (w >= tr->wcount_cap) {
                int64_t nc = tr->wcount_cap ? tr->wcount_cap * 2 : 4096;
                int64_t *nw = realloc(tr->wcount, (size_t)nc * sizeof *nw);
                if (!nw) {
                    free(low);
                    return ss_seterr(SS_ERR_NOMEM, "tokenizer training: cannot allocate");
                }
                memset(nw + tr->wcount_cap, 0, (size_t)(nc - tr->wcount_cap) * sizeof *nw);
                tr->wcount = nw;
                tr->wcount_cap = nc;
            }
            tr->wcount[w]++;
            i = e;
        }
    }
    free(low);
    return SS_OK;
}

/* Token id for the concatenation of tokens a and b (adding it); -1 on OOM. */
static int32_t merged_token(trainer *tr, int32_t a, int32_t b)
{
    uint8_t small[2];
    const uint8_t *pa, *pb;
    size_t la, lb;
    if (a < SS_TOK_MIN_VOCAB) {
        small[0] = (uint8_t)(a - SS_TOK_NSPECIAL);
        pa = &small[0];
        la = 1;
    } else {
        pa = ss_txt_strset_key(&tr->toks, a - SS_TOK_MIN_VOCAB, &la);
    }
    if (b < SS_TOK_MIN_VOCAB) {
        small[1] = (uint8_t)(b - SS_TOK_NSPECIAL);
        pb = &small[1];
        lb = 1;
    } else {
        pb = ss_txt_strset_key(&tr->toks, b - SS_TOK_MIN_VOCAB, &lb);
    }
    uint8_t stackbuf[256];
    uint8_t *buf = la + lb <= sizeof stackbuf ? stackbuf : malloc(la + lb);
    if (!buf) return -1;
    /* pa/pb may point into toks.kbuf, which ss_txt_strset_add can move:
     * copy first. */
    memcpy(buf, pa, la);
    memcpy(buf + la, pb, lb);
    int64_t e = ss_txt_strset_add(&tr->toks, buf, la + lb, NULL);
    if (buf != stackbuf) free(buf);
    if (e < 0) return -1;
    return (int32_t)(SS_TOK_MIN_VOCAB + e);
}

static ss_status oom(void) { return ss_seterr(SS_ERR_NOMEM, "tokenizer training: out of memory"); }

/* Apply merge (a, b) -> id to every word holding the pair, updating counts. */
static ss_status apply_merge(trainer *tr, int32_t p, int32_t id, int32_t **changed,
                             int32_t *nchanged, int32_t *cchanged)
{
    int32_t a = tr->pairs[p].a, b = tr->pairs[p].b;
    int32_t *wl = tr->pairs[p].words;
    int32_t nw = tr->pairs[p].nw;
    tr->pairs[p].words = NULL;
    tr->pairs[p].nw = tr->pairs[p].cw = 0;
    qsort(wl, (size_t)nw, sizeof *wl, cmp_i32);
    *nchanged = 0;
    for (int32_t k = 0; k < nw; k++) {
        int32_t w = wl[k];
        if (k && wl[k - 1] == w) continue;
        int32_t *s = tr->sym + tr->soff[w];
        int32_t n = tr->slen[w];
        int has = 0;
        for (int32_t i = 0; i + 1 < n; i++)
            if (s[i] == a && s[i + 1] == b) {
                has = 1;
                break;
            }
        if (!has) continue;
        int64_t c = tr->wcount[w];
        for (int32_t i = 0; i + 1 < n; i++) {
            int32_t q = ss_txt_pairmap_get(&tr->pidx, s[i], s[i + 1]);
            tr->pairs[q].count -= c;
        }
        int32_t m = 0;
        for (int32_t i = 0; i < n;) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                s[m++] = id;
                i += 2;
            } else {
                s[m++] = s[i++];
            }
        }
        tr->slen[w] = m;
        for (int32_t i = 0; i + 1 < m; i++) {
            int32_t q = pair_get(tr, s[i], s[i + 1]);
            if (q < 0) {
                free(wl);
                return oom();
            }
            tr->pairs[q].count += c;
            if (s[i] == id || s[i + 1] == id) {
                if (pair_add_word(&tr->pairs[q], w)) {
                    free(wl);
                    return oom();
                }
                if (*nchanged == *cchanged) {
                    int32_t nc = *cchanged ? *cchanged * 2 : 256;
                    int32_t *nb = realloc(*changed, (size_t)nc * sizeof *nb);
                    if (!nb) {
                        free(wl);
                        return oom();
                    }
                    *changed = nb;
                    *cchanged = nc;
                }
                (*changed)[(*nchanged)++] = q;
            }
        }
    }
    free(wl);
    return SS_OK;
}

static ss_status train_run(trainer *tr, const ss_tokenizer_opts *o)
{
    /* Symbols: the bytes of every word. */
    int64_t nw = tr->words.n;
    size_t total = tr->words.klen;
    tr->sym = malloc((total ? total : 1) * sizeof *tr->sym);
    tr->soff = malloc((size_t)(nw ? nw : 1) * sizeof *tr->soff);
    tr->slen = malloc((size_t)(nw ? nw : 1) * sizeof *tr->slen);
    if (!tr->sym || !tr->soff || !tr->slen) return oom();
    for (int64_t w = 0; w < nw; w++) {
        size_t l;
        const uint8_t *k = ss_txt_strset_key(&tr->words, w, &l);
        if (l > INT32_MAX) return ss_seterr(SS_ERR_NOMEM, "tokenizer training: a word is too long");
        tr->soff[w] = (int64_t)tr->words.koff[w];
        tr->slen[w] = (int32_t)l;
        for (size_t i = 0; i < l; i++) tr->sym[tr->words.koff[w] + i] = SS_TOK_NSPECIAL + k[i];
    }
    /* Initial pair counts and index. */
    for (int64_t w = 0; w < nw; w++) {
        const int32_t *s = tr->sym + tr->soff[w];
        for (int32_t i = 0; i + 1 < tr->slen[w]; i++) {
            int32_t q = pair_get(tr, s[i], s[i + 1]);
            if (q < 0) return oom();
            tr->pairs[q].count += tr->wcount[w];
            if (pair_add_word(&tr->pairs[q], (int32_t)w)) return oom();
        }
    }
    for (int32_t q = 0; q < tr->npairs; q++)
        if (heap_push(tr, tr->pairs[q].count, tr->pairs[q].a, tr->pairs[q].b)) return oom();

    int32_t *changed = NULL, nchanged = 0, cchanged = 0;
    int32_t ntok = SS_TOK_MIN_VOCAB;
    int64_t minf = o->min_frequency > 1 ? o->min_frequency : 1;
    ss_status st = SS_OK;
    while (ntok < o->vocab_size && tr->nheap > 0) {
        heap_ent top = heap_pop(tr);
        int32_t p = ss_txt_pairmap_get(&tr->pidx, top.a, top.b);
        int64_t cur = tr->pairs[p].count;
        if (cur != top.count) {
            if (cur > 0 && heap_push(tr, cur, top.a, top.b)) {
                st = oom();
                break;
            }
            continue;
        }
        if (cur < minf) break;
        int32_t id = merged_token(tr, top.a, top.b);
        if (id < 0 || tr->nmerges >= SS_TOK_MAX_MERGES) {
            st = oom();
            break;
        }
        ntok = (int32_t)(SS_TOK_MIN_VOCAB + tr->toks.n);
        if (tr->nmerges == tr->cmerges) {
            int32_t nc = tr->cmerges ? tr->cmerges * 2 : 1024;
            int32_t *na = realloc(tr->ma, (size_t)nc * sizeof *na);
            if (na) tr->ma = na;
            int32_t *nb = realloc(tr->mb, (size_t)nc * sizeof *nb);
            if (nb) tr->mb = nb;
            int32_t *nr = realloc(tr->mres, (size_t)nc * sizeof *nr);
            if (nr) tr->mres = nr;
            if (!na || !nb || !nr) {
                st = oom();
                break;
            }
            tr->cmerges = nc;
        }
        tr->ma[tr->nmerges] = top.a;
        tr->mb[tr->nmerges] = top.b;
        tr->mres[tr->nmerges] = id;
        tr->nmerges++;
        st = apply_merge(tr, p, id, &changed, &nchanged, &cchanged);
        if (st != SS_OK) break;
        if (nchanged > 1) qsort(changed, (size_t)nchanged, sizeof *changed, cmp_i32); /* changed may be NULL when empty */
        for (int32_t k = 0; k < nchanged; k++) {
            if (k && changed[k] == changed[k - 1]) continue;
            pair_info *pi = &tr->pairs[changed[k]];
            if (pi->count > 0 && heap_push(tr, pi->count, pi->a, pi->b)) {
                st = oom();
                break;
            }
        }
        if (st != SS_OK) break;
    }
    free(changed);
    return st;
}

ss_status ss_tokenizer_train_n(const char *const *texts, const size_t *lens, int64_t ntexts,
                               const ss_tokenizer_opts *o, ss_tokenizer **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_tokenizer_train: out is NULL");
    *out = NULL;
    ss_tokenizer_opts opts = o ? *o : ss_tokenizer_opts_default();
    if (opts.vocab_size < SS_TOK_MIN_VOCAB || opts.vocab_size > SS_TOK_MAX_VOCAB)
        return ss_seterr(SS_ERR_INVALID,
                         "tokenizer: vocab_size %d out of range (expected %d .. %d)",
                         opts.vocab_size, SS_TOK_MIN_VOCAB, SS_TOK_MAX_VOCAB);
    if (ntexts < 0 || (ntexts > 0 && !texts))
        return ss_seterr(SS_ERR_INVALID, "tokenizer: no texts given (ntexts %lld)",
                         (long long)ntexts);
    pthread_once(&g_class_once, class_init);
    trainer tr;
    memset(&tr, 0, sizeof tr);
    ss_status st = count_words(&tr, texts, lens, ntexts, opts.lowercase != 0);
    if (st == SS_OK) st = train_run(&tr, &opts);
    if (st != SS_OK) {
        trainer_free(&tr);
        return st;
    }
    /* Assemble the vocabulary. */
    int32_t ntok = (int32_t)(SS_TOK_MIN_VOCAB + tr.toks.n);
    size_t nbytes = tr.toks.klen + 256;
    for (int k = 0; k < SS_TOK_NSPECIAL; k++) nbytes += strlen(ss_tok_special_names[k]);
    uint8_t *tb = malloc(nbytes);
    size_t *to = malloc(((size_t)ntok + 1) * sizeof *to);
    if (!tb || !to) {
        free(tb);
        free(to);
        trainer_free(&tr);
        return oom();
    }
    size_t pos = 0;
    for (int32_t id = 0; id < ntok; id++) {
        to[id] = pos;
        if (id < SS_TOK_NSPECIAL) {
            size_t l = strlen(ss_tok_special_names[id]);
            memcpy(tb + pos, ss_tok_special_names[id], l);
            pos += l;
        } else if (id < SS_TOK_MIN_VOCAB) {
            tb[pos++] = (uint8_t)(id - SS_TOK_NSPECIAL);
        } else {
            size_t l;
            const uint8_t *k = ss_txt_strset_key(&tr.toks, id - SS_TOK_MIN_VOCAB, &l);
            memcpy(tb + pos, k, l);
            pos += l;
        }
    }
    to[ntok] = pos;
    int32_t nm = tr.nmerges;
    int32_t *ma = tr.ma, *mb = tr.mb, *mr = tr.mres;
    tr.ma = tr.mb = tr.mres = NULL;
    trainer_free(&tr);
    return ss_tok_build(opts.lowercase != 0, ntok, tb, to, nm, ma, mb, mr, out);
}

ss_status ss_tokenizer_train(const char *const *texts, int64_t ntexts, const ss_tokenizer_opts *o,
                             ss_tokenizer **out)
{
    return ss_tokenizer_train_n(texts, NULL, ntexts, o, out);
}

/* -------------------------------------------------------------- encoding */

/* BPE of one word: ids of bytes, merged lowest rank first (leftmost among
 * equal ranks) until no adjacent pair has a merge. Writes the result over
 * ids and returns its length. */
static int64_t bpe_word(const ss_tokenizer *t, int32_t *ids, int64_t n, int64_t *nxt,
                        int64_t *prv, uint64_t *heap)
{
    int64_t nh = 0;
#define HPUSH(v)                                                               \
    do {                                                                       \
        uint64_t hv_ = (v);                                                    \
        int64_t hi_ = nh++;                                                    \
        while (hi_ > 0 && heap[(hi_ - 1) / 2] > hv_) {                         \
            heap[hi_] = heap[(hi_ - 1) / 2];                                   \
            hi_ = (hi_ - 1) / 2;                                               \
        }                                                                      \
        heap[hi_] = hv_;                                                       \
    } while (0)
    for (int64_t i = 0; i < n; i++) {
        nxt[i] = i + 1 < n ? i + 1 : -1;
        prv[i] = i - 1;
    }
    for (int64_t i = 0; i + 1 < n; i++) {
        int32_t r = ss_txt_pairmap_get(&t->ranks, ids[i], ids[i + 1]);
        if (r >= 0) HPUSH(((uint64_t)r << 32) | (uint64_t)i);
    }
    while (nh > 0) {
        uint64_t top = heap[0];
        uint64_t last = heap[--nh];
        int64_t i = 0;
        for (;;) {
            int64_t c = 2 * i + 1;
            if (c >= nh) break;
            if (c + 1 < nh && heap[c + 1] < heap[c]) c++;
            if (heap[c] >= last) break;
            heap[i] = heap[c];
            i = c;
        }
        if (nh > 0) heap[i] = last;
        int32_t r = (int32_t)(top >> 32);
        int64_t pos = (int64_t)(top & 0xffffffffu);
        if (ids[pos] < 0) continue; /* merged away */
        int64_t nx = nxt[pos];
        if (nx < 0) continue;
        if (ss_txt_pairmap_get(&t->ranks, ids[pos], ids[nx]) != r) continue; /* stale */
        ids[pos] = t->merge_res[r];
        ids[nx] = -1;
        nxt[pos] = nxt[nx];
        if (nxt[nx] >= 0) prv[nxt[nx]] = pos;
        if (prv[pos] >= 0) {
            int32_t r2 = ss_txt_pairmap_get(&t->ranks, ids[prv[pos]], ids[pos]);
            if (r2 >= 0) HPUSH(((uint64_t)r2 << 32) | (uint64_t)prv[pos]);
        }
        if (nxt[pos] >= 0) {
            int32_t r2 = ss_txt_pairmap_get(&t->ranks, ids[pos], ids[nxt[pos]]);
            if (r2 >= 0) HPUSH(((uint64_t)r2 << 32) | (uint64_t)pos);
        }
    }
#undef HPUSH
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] >= 0) ids[m++] = ids[i];
    return m;
}

#define CACHE_MAX_WORD 64
#define CACHE_MAX_ENTRIES (1 << 20)

typedef struct enc_scratch {
    int32_t *ids;
    int64_t *nxt, *prv;
    uint64_t *heap;
    int64_t cap;
} enc_scratch;

static int scratch_reserve(enc_scratch *sc, int64_t n)
{
    if (n <= sc->cap) return 0;
    /* Positions live in 32 bits inside the heap keys. */
    if (n > (int64_t)0xffffffff) return -1;
    int64_t nc = n < 64 ? 64 : n;
    free(sc->ids);
    free(sc->nxt);
    free(sc->prv);
    free(sc->heap);
    sc->ids = malloc((size_t)nc * sizeof *sc->ids);
    sc->nxt = malloc((size_t)nc * sizeof *sc->nxt);
    sc->prv = malloc((size_t)nc * sizeof *sc->prv);
    sc->heap = malloc((size_t)nc * 3 * sizeof *sc->heap);
    sc->cap = nc;
    if (!sc->ids || !sc->nxt || !sc->prv || !sc->heap) {
        sc->cap = 0;
        return -1;
    }
    return 0;
}

static void cache_clear(ss_tokenizer *t)
{
    ss_txt_strset_free(&t->cache);
    free(t->cache_start);
    free(t->cache_n);
    free(t->cache_ids);
    t->cache_start = NULL;
    t->cache_n = NULL;
    t->cache_ids = NULL;
    t->cache_ecap = t->cache_nids = t->cache_idcap = 0;
}

/* Insert a word's ids into the cache (best effort; called with lock held). */
static void cache_put(ss_tokenizer *t, const uint8_t *w, size_t wl, const int32_t *ids, int64_t n)
{
    if (t->cache.n >= CACHE_MAX_ENTRIES) cache_clear(t);
    if (t->cache_nids + n > t->cache_idcap) {
        int64_t nc = t->cache_idcap ? t->cache_idcap * 2 : 4096;
        while (nc < t->cache_nids + n) nc *= 2;
        int32_t *ni = realloc(t->cache_ids, (size_t)nc * sizeof *ni);
        if (!ni) return;
        t->cache_ids = ni;
        t->cache_idcap = nc;
    }
    if (t->cache.n >= t->cache_ecap) {
        int64_t nc = t->cache_ecap ? t->cache_ecap * 2 : 1024;
        int64_t *ns = realloc(t->cache_start, (size_t)nc * sizeof *ns);
        if (!ns) return;
        t->cache_start = ns;
        int32_t *nn = realloc(t->cache_n, (size_t)nc * sizeof *nn);
        if (!nn) return;
        t->cache_n = nn;
        t->cache_ecap = nc;
    }
    int added;
    int64_t e = ss_txt_strset_add(&t->cache, w, wl, &added);
    if (e < 0 || !added) return;
    t->cache_start[e] = t->cache_nids;
    t->cache_n[e] = (int32_t)n;
    memcpy(t->cache_ids + t->cache_nids, ids, (size_t)n * sizeof *ids);
    t->cache_nids += n;
}

int64_t ss_tokenizer_encode(const ss_tokenizer *tc, const char *text, size_t len, int32_t *ids,
                            int64_t max)
{
    if (!tc || !text || len == 0) return 0;
    if (!ids) max = 0;
    pthread_once(&g_class_once, class_init);
    /* The cache is logically const: it never changes results. */
    ss_tokenizer *t = (ss_tokenizer *)tc;
    const uint8_t *s = (const uint8_t *)text;
    uint8_t *low = NULL;
    if (t->lowercase) {
        low = malloc(len);
        if (!low) {
            ss_seterr(SS_ERR_NOMEM, "tokenizer: cannot allocate %zu bytes", len);
            return 0;
        }
        for (size_t i = 0; i < len; i++)
            low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (uint8_t)(s[i] + 32) : s[i];
        s = low;
    }
    enc_scratch sc = {0};
    int32_t small_ids[CACHE_MAX_WORD];
    int64_t small_nxt[CACHE_MAX_WORD], small_prv[CACHE_MAX_WORD];
    uint64_t small_heap[3 * CACHE_MAX_WORD];
    int64_t count = 0;
    for (size_t i = 0; i < len;) {
        size_t e = pretok_next(s, len, i);
        size_t wl = e - i;
        const uint8_t *w = s + i;
        i = e;
        if (wl == 1) {
            if (count < max) ids[count] = t->byte_id[w[0]];
            count++;
            continue;
        }
        if (wl <= CACHE_MAX_WORD) {
            int hit = 0;
            pthread_mutex_lock(&t->lock);
            int64_t ce = ss_txt_strset_find(&t->cache, w, wl);
            if (ce >= 0) {
                hit = 1;
                const int32_t *cid = t->cache_ids + t->cache_start[ce];
                for (int32_t k = 0; k < t->cache_n[ce]; k++, count++)
                    if (count < max) ids[count] = cid[k];
            }
            pthread_mutex_unlock(&t->lock);
            if (hit) continue;
            for (size_t k = 0; k < wl; k++) small_ids[k] = t->byte_id[w[k]];
            int64_t m = bpe_word(t, small_ids, (int64_t)wl, small_nxt, small_prv, small_heap);
            pthread_mutex_lock(&t->lock);
            cache_put(t, w, wl, small_ids, m);
            pthread_mutex_unlock(&t->lock);
            for (int64_t k = 0; k < m; k++, count++)
                if (count < max) ids[count] = small_ids[k];
            continue;
        }
        if (scratch_reserve(&sc, (int64_t)wl)) {
            /* Out of memory on a huge word: fall back to its bytes. */
            for (size_t k = 0; k < wl; k++, count++)
                if (count < max) ids[count] = t->byte_id[w[k]];
            continue;
        }
        for (size_t k = 0; k < wl; k++) sc.ids[k] = t->byte_id[w[k]];
        int64_t m = bpe_word(t, sc.ids, (int64_t)wl, sc.nxt, sc.prv, sc.heap);
        for (int64_t k = 0; k < m; k++, count++)
            if (count < max) ids[count] = sc.ids[k];
    }
    free(sc.ids);
    free(sc.nxt);
    free(sc.prv);
    free(sc.heap);
    free(low);
    return count;
}

int ss_tokenizer_encode_seq(const ss_tokenizer *t, const char *text, size_t len, int32_t *ids,
                            int seq_len)
{
    if (seq_len <= 0 || !ids) return 0;
    if (seq_len == 1) {
        ids[0] = SS_TOK_CLS;
        return 1;
    }
    ids[0] = SS_TOK_CLS;
    int64_t n = ss_tokenizer_encode(t, text, len, ids + 1, seq_len - 2);
    if (n > seq_len - 2) n = seq_len - 2;
    ids[n + 1] = SS_TOK_SEP;
    for (int k = (int)n + 2; k < seq_len; k++) ids[k] = SS_TOK_PAD;
    return (int)n + 2;
}

size_t ss_tokenizer_decode(const ss_tokenizer *t, const int32_t *ids, int64_t nids, char *out,
                           size_t n)
{
    if (!t || !ids) return 0;
    size_t pos = 0;
    for (int64_t k = 0; k < nids; k++) {
        int32_t id = ids[k];
        if (id < SS_TOK_NSPECIAL || id >= t->ntok) continue;
        size_t l = t->tok_off[id + 1] - t->tok_off[id];
        if (out && pos < n) {
            size_t c = n - pos < l ? n - pos : l;
            memcpy(out + pos, t->tok_bytes + t->tok_off[id], c);
        }
        pos += l;
    }
    return pos;
}
