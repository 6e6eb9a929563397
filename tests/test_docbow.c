/* The docbow pretext (document-context prediction) and length bucketing:
 * sentence splitting, the target against a hand computation, the soft
 * cross-entropy it trains with (value and gradient against double
 * precision, rows whose targets do not sum to 1 included), the batcher's
 * length buckets (every sentence once per epoch, shorter batches,
 * deterministic), the second head on the mean token embedding (its loss
 * added with its weight, on the same batch), and a short pretraining on
 * generated documents whose loss falls and whose embedding head then predicts
 * a sentence's polarity words from its token embeddings alone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/textrun.h"
#include "testutil.h"
#include "train/textrun_internal.h"

static void set_add(ss_textset *s, const char *text)
{
    s->texts = realloc(s->texts, sizeof(char *) * (size_t)(s->n + 1));
    s->lens = realloc(s->lens, sizeof(size_t) * (size_t)(s->n + 1));
    s->labels = realloc(s->labels, sizeof(int32_t) * (size_t)(s->n + 1));
    s->texts[s->n] = strdup(text);
    s->lens[s->n] = strlen(text);
    s->labels[s->n] = -1;
    s->n++;
}

static void test_sentences(void)
{
    ss_textset docs;
    memset(&docs, 0, sizeof docs);
    snprintf(docs.source, sizeof docs.source, "generated");
    set_add(&docs, "first line .\n  second line \r\n\n");
    set_add(&docs, "only one sentence here .");
    set_add(&docs, "a short one. Then the split, after forty bytes. This sentence is long enough to be split here. And "
                   "the tail! ok");
    ss_textset out;
    int64_t nd = -1;
    CHECK_OK(ss_docbow_sentences(&docs, &out, &nd));
    CHECK(nd == 2);
    CHECK(out.n == 5);
    /* the first '.' comes 12 bytes in: no split; the next ones after 40+ */
    static const char *want[] = {"first line .", "second line", "a short one. Then the split, after forty bytes.",
                                 "This sentence is long enough to be split here.", "And the tail! ok"};
    static const int32_t lab[] = {0, 0, 1, 1, 1};
    for (int64_t i = 0; i < out.n && i < 5; i++) {
        CHECK_MSG(!strcmp(out.texts[i], want[i]), "sentence %lld is '%s'", (long long)i, out.texts[i]);
        CHECK(out.lens[i] == strlen(want[i]));
        CHECK(out.labels[i] == lab[i]);
    }
    ss_textset_free(&out);
    /* nothing with two sentences: no documents, no error from the splitter */
    ss_textset one;
    memset(&one, 0, sizeof one);
    set_add(&one, "just this");
    CHECK_OK(ss_docbow_sentences(&one, &out, &nd));
    CHECK(nd == 0 && out.n == 0);
    ss_textset_free(&out);
    ss_textset_free(&one);
    ss_textset_free(&docs);
}

static void test_target(void)
{
    enum { V = 10 };
    /* document: token 5 x3, token 6 x1, token 9 x2; the sentence holds 5, 6,
     * 6 (one more 6 than the document: clamped at zero) and specials */
    int32_t dt[] = {5, 6, 9};
    float dc[] = {3, 1, 2};
    int32_t ids[] = {SS_TOK_CLS, 5, 6, 6, SS_TOK_SEP, SS_TOK_PAD};
    float w[V];
    for (int v = 0; v < V; v++) w[v] = 1.0f / (float)(v + 1);
    float out[V];
    CHECK(ss_docbow_target(dt, dc, 3, ids, 6, w, V, out) == 1);
    /* left: 5 x2 (w 1/6), 9 x2 (w 1/10) -> 1/3 and 1/5, sum 8/15 */
    double z = 2.0 / 6 + 2.0 / 10;
    for (int v = 0; v < V; v++) {
        double e = v == 5 ? (2.0 / 6) / z : v == 9 ? (2.0 / 10) / z : 0.0;
        CHECK_NEAR(out[v], e, 1e-6);
    }
    /* a one-sentence remainder that the sentence uses up: no target */
    int32_t ids2[] = {5, 5, 5, 6, 9, 9};
    CHECK(ss_docbow_target(dt, dc, 3, ids2, 6, w, V, out) == 0);
    double s = 0;
    for (int v = 0; v < V; v++) s += out[v];
    CHECK(s == 0.0);
}

static void test_soft_ce(void)
{
    enum { N = 3, C = 5 };
    const float Z[N * C] = {0.3f, -1.2f, 2.0f, 0.1f, -0.4f, 1.5f, 0.2f, -0.7f, 0.9f, 0.0f,
                            -2.0f, 0.5f, 0.5f, 1.1f, -0.3f};
    /* row 0 a distribution, row 1 all zero (no target), row 2 sums to 2 */
    float T[N * C] = {0.1f, 0.0f, 0.6f, 0.3f, 0.0f, 0, 0, 0, 0, 0, 0.5f, 0.5f, 0.25f, 0.25f, 0.5f};
    const float scale = -0.5f;
    ss_graph *g = ss_graph_new();
    ss_tensor *z = ss_new(g, 2, (int64_t[]){N, C});
    memcpy(z->data, Z, sizeof Z);
    z->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *loss = ss_soft_cross_entropy(g, z, T, scale);
    CHECK(loss && loss->numel == 1);
    double ref = 0, grad[N * C];
    for (int i = 0; i < N; i++) {
        double mx = Z[i * C], se = 0, ts = 0;
        for (int c = 1; c < C; c++) mx = Z[i * C + c] > mx ? Z[i * C + c] : mx;
        for (int c = 0; c < C; c++) se += exp((double)Z[i * C + c] - mx);
        for (int c = 0; c < C; c++) ts += T[i * C + c];
        for (int c = 0; c < C; c++) {
            double lp = (double)Z[i * C + c] - mx - log(se);
            ref += scale * T[i * C + c] * lp;
            grad[i * C + c] = scale * (T[i * C + c] - exp(lp) * ts); /* d/dz of scale * sum t log p */
        }
    }
    if (loss) {
        CHECK_NEAR(loss->data[0], ref, 1e-6);
        CHECK_OK(ss_backward(g, loss));
        for (int k = 0; k < N * C; k++) CHECK_NEAR(z->grad[k], grad[k], 1e-6);
    }
    /* logits that are not [N,C]: an error, not a crash */
    ss_tensor *z1 = ss_new(g, 1, (int64_t[]){C});
    CHECK(ss_soft_cross_entropy(g, z1, T, 1.0f) == NULL);
    ss_graph_free(g);
}

/* Documents of two kinds: "good" documents use good words, "bad" ones bad
 * words, both share filler. One sentence per line. */
static void make_docs(ss_textset *docs, int n)
{
    static const char *good[] = {"great", "superb", "moving", "funny"}, *bad[] = {"dull", "awful", "boring", "weak"};
    static const char *fill[] = {"the film", "this movie", "the plot", "its cast", "the ending"};
    memset(docs, 0, sizeof *docs);
    snprintf(docs->source, sizeof docs->source, "generated");
    uint32_t r = 7;
    for (int d = 0; d < n; d++) {
        char buf[4096];
        size_t k = 0;
        const char **w = d % 2 ? good : bad;
        int ns = 3 + d % 4;
        for (int i = 0; i < ns; i++) {
            r = r * 1103515245u + 12345u;
            int extra = (int)((r >> 10) % 3);
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s was %s", fill[(r >> 16) % 5], w[(r >> 20) % 4]);
            for (int e = 0; e < extra; e++)
                k += (size_t)snprintf(buf + k, sizeof buf - k, " and %s %s", fill[(r >> (4 + e)) % 5], w[(r >> (8 + e)) % 4]);
            k += (size_t)snprintf(buf + k, sizeof buf - k, " .\n");
        }
        set_add(docs, buf);
    }
}

static void test_bucketing(const ss_tokenizer *tok, const ss_textset *sent)
{
    int64_t n = sent->n, B = 8;
    double spread[2] = {0, 0};
    for (int bucket = 0; bucket <= 1; bucket++) {
        ss_text_batcher_opts o = {.seq_len = 48, .batch = (int)B, .shuffle = 1, .drop_last = 0, .seed = 3,
                                  .bucket = bucket ? 4 : 0};
        ss_text_batcher *tb = NULL, *tb2 = NULL;
        CHECK_OK(ss_text_batcher_new(tok, sent, NULL, n, &o, &tb));
        CHECK_OK(ss_text_batcher_new(tok, sent, NULL, n, &o, &tb2));
        if (!tb || !tb2) return;
        ss_batch_source src = ss_text_batcher_source(tb), src2 = ss_text_batcher_source(tb2);
        int64_t nb = ss_text_batcher_batches(tb);
        CHECK(nb == (n + B - 1) / B);
        for (int ep = 0; ep < 2; ep++) {
            int *seen = calloc((size_t)n, sizeof(int));
            int64_t tokens = 0;
            for (int64_t b = 0; b < nb; b++) {
                ss_batch bt, bt2;
                CHECK_OK(src.next(src.ctx, &bt));
                CHECK_OK(src2.next(src2.ctx, &bt2));
                const int32_t *ids, *ids2;
                int64_t bn, bn2;
                int t, t2;
                ss_text_batcher_current(tb, &ids, NULL, &bn, &t);
                ss_text_batcher_current(tb2, &ids2, NULL, &bn2, &t2);
                CHECK(bn == bn2 && t == t2 && !memcmp(ids, ids2, sizeof(int32_t) * (size_t)(bn * t)));
                CHECK(b < nb - 1 || bn == n - (nb - 1) * B); /* the short batch stays last */
                for (int64_t i = 0; i < bn; i++) seen[bt.idx[i]]++;
                tokens += bn * t;
            }
            int once = 1;
            for (int64_t i = 0; i < n; i++) once &= seen[i] == 1;
            CHECK_MSG(once, "bucket %d epoch %d: a sentence missing or repeated", bucket, ep);
            spread[bucket] += (double)tokens;
            free(seen);
        }
        ss_text_batcher_free(tb);
        ss_text_batcher_free(tb2);
    }
    printf("bucketing: %.0f padded tokens per 2 epochs without, %.0f with\n", spread[0], spread[1]);
    CHECK(spread[1] < 0.9 * spread[0]);
}

/* The second head applied by hand, in double precision: the mean of the
 * token embeddings of "the film was great ." (resp. "... dull .") times
 * docbow_emb_head, softmax over the vocabulary; returns the probability of
 * the three other words of the sentence's polarity minus that of the four
 * words of the other polarity, in the rest of such a document. */
static double emb_head_margin(const ss_model *m, const ss_tokenizer *tok, int good)
{
    static const char *w[8] = {" great", " superb", " moving", " funny", " dull", " awful", " boring", " weak"};
    const char *sentence = good ? "the film was great ." : "the film was dull .";
    const ss_tensor *tab = ss_text_token_table(m->enc);
    const ss_tensor *W = ss_params_find(m->p, "docbow_emb_head.weight"), *bias = ss_params_find(m->p, "docbow_emb_head.bias");
    int D = m->enc->feat_dim, V = ss_tokenizer_vocab_size(tok);
    if (!W || !bias || D > 256 || W->numel != (int64_t)V * D) return 0.0;
    /* the input as training sees it: [CLS] tokens [SEP], the mean over the
     * non-[PAD] positions */
    int32_t ids[32];
    ss_tokenizer_encode_seq(tok, sentence, strlen(sentence), ids, 32);
    int k = 0;
    for (int j = 0; j < 32; j++) k += ids[j] != SS_TOK_PAD;
    CHECK(k >= 3);
    double e[256];
    for (int d = 0; d < D; d++) {
        e[d] = 0.0;
        for (int j = 0; j < 32; j++)
            if (ids[j] != SS_TOK_PAD) e[d] += tab->data[(int64_t)ids[j] * D + d] / (double)k;
    }
    double *p = malloc(sizeof(double) * (size_t)V), mx = -1e300, sum = 0.0;
    for (int v = 0; v < V; v++) {
        p[v] = bias->data[v];
        for (int d = 0; d < D; d++) p[v] += W->data[(int64_t)v * D + d] * e[d];
        mx = p[v] > mx ? p[v] : mx;
    }
    for (int v = 0; v < V; v++) sum += (p[v] = exp(p[v] - mx));
    double margin = 0.0;
    for (int i = 0; i < 8; i++) {
        if (i == (good ? 0 : 4)) continue; /* the sentence's own word */
        int32_t wid[16];
        int64_t n = ss_tokenizer_encode(tok, w[i], strlen(w[i]), wid, 16);
        double q = 0.0;
        for (int64_t j = 0; j < n && j < 16; j++) q += p[wid[j]] / sum;
        margin += ((i < 4) == good ? 1.0 : -1.0) * q;
    }
    free(p);
    return margin;
}

static void test_pretrain(void)
{
    ss_textset docs;
    make_docs(&docs, 48);
    ss_textset sent;
    int64_t nd = 0;
    CHECK_OK(ss_docbow_sentences(&docs, &sent, &nd));
    CHECK(nd == 48);
    const char **tx = malloc(sizeof(char *) * (size_t)docs.n);
    for (int64_t i = 0; i < docs.n; i++) tx[i] = docs.texts[i];
    ss_tokenizer_opts to = ss_tokenizer_opts_default();
    to.vocab_size = 400;
    ss_tokenizer *tok = NULL;
    CHECK_OK(ss_tokenizer_train(tx, docs.n, &to, &tok));
    free(tx);
    if (!tok) return;
    test_bucketing(tok, &sent);

    ss_model m;
    ss_fit_result res;
    ss_text_run_opts o = ss_text_run_defaults(1);
    CHECK(o.docbow_emb_weight == 0.0f); /* off by default (docs/TEXT_RESULTS.md) */
    o.batch = 16;
    o.warmup_epochs = 0.5f;
    o.seq_len = 32;
    o.quiet = 1;
    o.seed = 1;

    /* The loss is main + weight x second head, on the same batch: one step
     * at lr 0 with weights 0, 1 and 2. An untrained head guesses close to
     * uniform, so the second head's cross-entropy is near log V. */
    double L[3] = {0, 0, 0};
    for (int wi = 0; wi < 3; wi++) {
        ss_text_run_opts z = o;
        z.docbow_emb_weight = (float)wi;
        z.epochs = 1;
        z.max_steps = 1;
        z.lr = 0.0f;
        CHECK_OK(ss_text_model_create(&m, tok, 32, 0));
        CHECK_OK(ss_text_pretrain_docbow(&m, tok, &docs, &z, &res));
        CHECK(res.steps == 1);
        L[wi] = res.final_loss;
        /* without the second head (--emb-weight 0) there is no docbow_emb_head */
        CHECK((ss_params_find(m.p, "docbow_emb_head.weight") != NULL) == (wi > 0));
        ss_fit_result_free(&res);
        ss_model_free(&m);
    }
    printf("docbow: first-step loss %.5f / %.5f / %.5f with the second head weighted 0 / 1 / 2 (log V %.5f)\n", L[0],
           L[1], L[2], log(400.0));
    CHECK_NEAR(L[2] - L[1], L[1] - L[0], 1e-4);
    CHECK_NEAR(L[1] - L[0], log(400.0), 0.5);

    /* the default, top head only: the loss falls */
    o.epochs = getenv("SS_SANITIZED") ? 3 : 6;
    o.lr = 2e-3f;
    CHECK_OK(ss_text_model_create(&m, tok, 32, 0));
    CHECK_OK(ss_text_pretrain_docbow(&m, tok, &docs, &o, &res));
    CHECK(res.nhist == o.epochs);
    if (res.nhist >= 2) {
        double first = res.hist_loss[0], last = res.hist_loss[res.nhist - 1];
        printf("docbow: epoch loss %.4f -> %.4f (uniform guess %.4f)\n", first, last, log(400.0));
        CHECK(isfinite(first) && isfinite(last));
        CHECK_MSG(last < first - 0.05, "loss %.4f -> %.4f", first, last);
    }
    ss_fit_result_free(&res);
    ss_model_free(&m);
    /* a weight that is not a number >= 0 is refused */
    o.docbow_emb_weight = -1.0f;
    CHECK_OK(ss_text_model_create(&m, tok, 32, 0));
    CHECK(ss_text_pretrain_docbow(&m, tok, &docs, &o, &res) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "emb weight") != NULL);
    ss_model_free(&m);

    /* 12 epochs at lr 1e-2: at 6 epochs of 2e-3 the loss falls, but the
     * embedding head has learned little more than token frequencies. Under
     * the sanitizers 3 epochs check the memory of this path, not the margin
     * (the plain build checks that). */
    int sanitized = getenv("SS_SANITIZED") != NULL;
    o.epochs = sanitized ? 3 : 12;
    o.lr = 1e-2f;
    o.docbow_emb_weight = 1.0f;
    CHECK_OK(ss_text_model_create(&m, tok, 32, 0));
    CHECK_OK(ss_text_pretrain_docbow(&m, tok, &docs, &o, &res));
    CHECK(res.nhist == o.epochs);
    if (res.nhist >= 2) {
        double first = res.hist_loss[0], last = res.hist_loss[res.nhist - 1];
        printf("docbow: epoch loss %.4f -> %.4f (two heads; uniform guesses %.4f)\n", first, last, 2 * log(400.0));
        CHECK(isfinite(first) && isfinite(last));
        CHECK_MSG(last < first - 0.05, "loss %.4f -> %.4f", first, last);
    }
    CHECK(ss_params_find(m.p, "docbow_head.weight") != NULL);
    CHECK(ss_params_find(m.p, "docbow_emb_head.weight") != NULL);
    /* from the token embeddings alone, a sentence predicts its document's
     * other polarity words, not the opposite ones */
    double mg = emb_head_margin(&m, tok, 1), mb = emb_head_margin(&m, tok, 0);
    printf("docbow: embedding head, p(same polarity) - p(opposite): %.4f (great), %.4f (dull)\n", mg, mb);
    CHECK_MSG(sanitized || (mg > 0.0 && mb > 0.0), "margins %.4f %.4f", mg, mb);
    ss_fit_result_free(&res);
    ss_model_free(&m);

    /* documents of one sentence only: a clear error, no training */
    ss_textset one;
    memset(&one, 0, sizeof one);
    snprintf(one.source, sizeof one.source, "single.txt");
    set_add(&one, "the film was great .");
    set_add(&one, "the plot was dull .");
    CHECK_OK(ss_text_model_create(&m, tok, 32, 0));
    CHECK(ss_text_pretrain_docbow(&m, tok, &one, &o, &res) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "single.txt") != NULL && strstr(ss_errmsg(), "two or more sentences") != NULL);
    ss_model_free(&m);
    ss_textset_free(&one);
    ss_tokenizer_free(tok);
    ss_textset_free(&sent);
    ss_textset_free(&docs);
}

int main(void)
{
    test_sentences();
    test_target();
    test_soft_ce();
    test_pretrain();
    TEST_MAIN_END();
}
