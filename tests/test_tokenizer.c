/* Byte-level BPE tokenizer: pre-tokenisation, training (known merges and
 * determinism), exact round trips on arbitrary bytes, save/load, hostile
 * JSON, sequence encoding, thread safety, speed. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "selfsup/text.h"
#include "testutil.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char g_dir[256];

static const char *tmp_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* ---------------------------------------------------------------- corpus */

/* A synthetic English-like corpus: seeded sentences over a word list with
 * some punctuation, digits and capitals. */
static const char *const g_words[] = {
    "the", "movie", "film", "is", "a", "great", "bad", "story", "acting", "director", "it's",
    "not", "very", "funny", "boring", "and", "but", "with", "characters", "plot", "of", "to",
    "in", "that", "this", "one", "best", "worst", "year", "performance", "script", "scenes",
    "entertaining", "predictable", "charming", "unwatchable", "they're", "we've", "I'll",
    "Hollywood", "café", "naïve", "2005", "90", "minutes", "--", "...", "(", ")", "!", "?", ","};

static char **make_corpus(int n, uint64_t seed)
{
    char **t = malloc((size_t)n * sizeof *t);
    ss_rng r;
    ss_rng_seed(&r, seed, 0);
    int nw = (int)(sizeof g_words / sizeof g_words[0]);
    for (int i = 0; i < n; i++) {
        char buf[1024];
        size_t k = 0;
        int len = 4 + (int)ss_rng_below(&r, 20);
        for (int w = 0; w < len; w++) {
            const char *s = g_words[ss_rng_below(&r, (uint32_t)nw)];
            if (w) buf[k++] = ' ';
            size_t l = strlen(s);
            memcpy(buf + k, s, l);
            if (w == 0 && buf[k] >= 'a' && buf[k] <= 'z') buf[k] -= 32;
            k += l;
        }
        buf[k++] = '.';
        buf[k] = '\0';
        t[i] = strdup(buf);
    }
    return t;
}

static void free_corpus(char **t, int n)
{
    for (int i = 0; i < n; i++) free(t[i]);
    free(t);
}

/* ---------------------------------------------------------------- checks */

static void check_pretok(const char *s, size_t n, const char *const *expect, int ne)
{
    size_t st[64], ln[64];
    int64_t k = ss_tokenizer_pretokenize(s, n, st, ln, 64);
    CHECK_MSG(k == ne, "pretokenize gave %lld pieces, expected %d", (long long)k, ne);
    for (int i = 0; i < ne && i < k; i++)
        CHECK_MSG(ln[i] == strlen(expect[i]) && memcmp(s + st[i], expect[i], ln[i]) == 0,
                  "piece %d is \"%.*s\", expected \"%s\"", i, (int)ln[i], s + st[i], expect[i]);
}

static void test_pretokenize(void)
{
    /* Expected pieces come from Python's re with the GPT-2 pattern on bytes,
     * ASCII classes (L = [A-Za-z\x80-\xff], N = [0-9]). */
    static const char *const e1[] = {"Hello", " world", "!", " ", " it", "'s", " 2024", "\n"};
    const char *s1 = "Hello world!  it's 2024\n";
    check_pretok(s1, strlen(s1), e1, 8);
    static const char *const e2[] = {"the", " rock", "'s", " \"", "new", "\"", " movie",
                                     " ,", " 12", "ab", "\t", "x", "  "};
    const char *s2 = "the rock's \"new\" movie , 12ab\tx  ";
    check_pretok(s2, strlen(s2), e2, 13);
    static const char *const e3[] = {"caf\xc3\xa9", " \xe9t\xe9\x92s", " ---", " ok", "?", "\n",
                                     "\n", "next"};
    const char *s3 = "caf\xc3\xa9 \xe9t\xe9\x92s --- ok?\n\nnext";
    check_pretok(s3, strlen(s3), e3, 8);
    /* Count only (max 0). */
    CHECK(ss_tokenizer_pretokenize(s1, strlen(s1), NULL, NULL, 0) == 8);
}

/* A hand-checked training run: "ab ab ab" + "abc abc", no lowercasing.
 * Words: "ab" x1, " ab" x2, "abc" x1, " abc" x1. Pair counts: (a,b) 5,
 * ( ,a) 3, (b,c) 2 -> merge a+b = 261; then ( ,ab) 3 -> " ab" = 262; then
 * (ab,c) and ( ab,c) occur once each, below min_frequency 2: stop. */
static void test_train_known(void)
{
    const char *texts[] = {"ab ab ab", "abc abc"};
    ss_tokenizer_opts o = {300, 0, 2};
    ss_tokenizer *t = NULL;
    CHECK_OK(ss_tokenizer_train(texts, 2, &o, &t));
    if (!t) return;
    CHECK(ss_tokenizer_vocab_size(t) == 263);
    CHECK(ss_tokenizer_merge_count(t) == 2);
    size_t l;
    const char *b = ss_tokenizer_token_bytes(t, 261, &l);
    CHECK(b && l == 2 && memcmp(b, "ab", 2) == 0);
    b = ss_tokenizer_token_bytes(t, 262, &l);
    CHECK(b && l == 3 && memcmp(b, " ab", 3) == 0);
    b = ss_tokenizer_token_bytes(t, SS_TOK_MASK, &l);
    CHECK(b && l == 6 && memcmp(b, "[MASK]", 6) == 0);
    b = ss_tokenizer_token_bytes(t, 5 + 'z', &l);
    CHECK(b && l == 1 && b[0] == 'z');
    CHECK(ss_tokenizer_token_bytes(t, 263, &l) == NULL);
    int32_t ids[16];
    int64_t n = ss_tokenizer_encode(t, "abc ab", 6, ids, 16);
    CHECK(n == 3);
    CHECK(ids[0] == 261 && ids[1] == 5 + 'c' && ids[2] == 262);
    /* Upper case is not folded when lowercase is off. */
    n = ss_tokenizer_encode(t, "AB", 2, ids, 16);
    CHECK(n == 2 && ids[0] == 5 + 'A' && ids[1] == 5 + 'B');
    /* min_frequency 1 continues: (ab,c) and ( ab,c) tie at 1, the lower
     * pair ids (261, 104) go first. */
    ss_tokenizer *t1 = NULL;
    ss_tokenizer_opts o1 = {300, 0, 1};
    CHECK_OK(ss_tokenizer_train(texts, 2, &o1, &t1));
    if (t1) {
        CHECK(ss_tokenizer_vocab_size(t1) == 265);
        b = ss_tokenizer_token_bytes(t1, 263, &l);
        CHECK(b && l == 3 && memcmp(b, "abc", 3) == 0);
        b = ss_tokenizer_token_bytes(t1, 264, &l);
        CHECK(b && l == 4 && memcmp(b, " abc", 4) == 0);
    }
    ss_tokenizer_free(t1);
    /* Lowercasing (default) folds before training and encoding. */
    const char *upper[] = {"AB AB AB", "ABC ABC"};
    ss_tokenizer *tl = NULL;
    ss_tokenizer_opts ol = {300, 1, 2};
    CHECK_OK(ss_tokenizer_train(upper, 2, &ol, &tl));
    if (tl) {
        CHECK(ss_tokenizer_lowercase(tl) == 1);
        n = ss_tokenizer_encode(tl, "Abc aB", 6, ids, 16);
        CHECK(n == 3 && ids[0] == 261 && ids[1] == 5 + 'c' && ids[2] == 262);
    }
    ss_tokenizer_free(tl);
    /* Bad options. */
    ss_tokenizer *bad = NULL;
    ss_tokenizer_opts ob = {100, 1, 2};
    CHECK(ss_tokenizer_train(texts, 2, &ob, &bad) == SS_ERR_INVALID && bad == NULL);
    CHECK(strstr(ss_errmsg(), "vocab_size") != NULL);
    ss_tokenizer_free(t);
}

static void check_roundtrip(const ss_tokenizer *t, const char *s, size_t n, int lower, const char *what)
{
    int64_t need = ss_tokenizer_encode(t, s, n, NULL, 0);
    int32_t *ids = malloc((size_t)(need + 1) * sizeof *ids);
    int64_t got = ss_tokenizer_encode(t, s, n, ids, need);
    CHECK_MSG(got == need, "%s: encode count %lld vs %lld", what, (long long)got, (long long)need);
    int bad_id = 0;
    for (int64_t i = 0; i < got; i++)
        if (ids[i] < SS_TOK_NSPECIAL || ids[i] >= ss_tokenizer_vocab_size(t)) bad_id = 1;
    CHECK_MSG(!bad_id, "%s: encode produced a special or out-of-range id", what);
    size_t dn = ss_tokenizer_decode(t, ids, got, NULL, 0);
    char *d = malloc(dn + 1);
    size_t dn2 = ss_tokenizer_decode(t, ids, got, d, dn);
    int same = dn == n && dn2 == n;
    for (size_t i = 0; same && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (lower && c >= 'A' && c <= 'Z') c += 32;
        same = (unsigned char)d[i] == c;
    }
    CHECK_MSG(same, "%s: decode(encode(x)) != x (%zu bytes in, %zu out)", what, n, dn);
    free(ids);
    free(d);
}

static void test_roundtrip(void)
{
    const int N = 600;
    char **corpus = make_corpus(N, 7);
    ss_tokenizer_opts o = {1000, 0, 2};
    ss_tokenizer *t = NULL;
    CHECK_OK(ss_tokenizer_train((const char *const *)corpus, N, &o, &t));
    if (!t) return;
    CHECK(ss_tokenizer_vocab_size(t) > 300);
    for (int i = 0; i < N; i += 37) check_roundtrip(t, corpus[i], strlen(corpus[i]), 0, "corpus");
    const char *ascii = "The quick brown fox -- jumps over 13 lazy dogs!! It's (not) funny.\r\n\tx";
    check_roundtrip(t, ascii, strlen(ascii), 0, "ascii");
    const char *utf8 = "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                       "\xf0\x9f\x99\x82 \xce\xbb-calculus";
    check_roundtrip(t, utf8, strlen(utf8), 0, "utf8");
    const char invalid[] = "rt-polarity: \xe9t\xe9 \x85 \x91quoted\x92 \x96 \xff\xfe\xc0\x80 "
                           "\xed\xa0\x80 \xf8\x88\x80\x80\x80 end\x05\x12";
    check_roundtrip(t, invalid, sizeof invalid - 1, 0, "invalid utf8");
    const char nul[] = {'a', 0, 'b', 0, 0, ' ', 'c'};
    check_roundtrip(t, nul, sizeof nul, 0, "nul bytes");
    ss_rng r;
    ss_rng_seed(&r, 99, 1);
    char buf[4096];
    int all_ok = 1;
    for (int k = 0; k < 200; k++) {
        size_t n = ss_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = (char)ss_rng_below(&r, 256);
        int before = tu_fail;
        check_roundtrip(t, buf, n, 0, "random bytes");
        if (tu_fail != before) all_ok = 0;
    }
    CHECK(all_ok);
    /* One long run of letters (one pre-token, not cached). */
    char *longw = malloc(200000);
    for (int i = 0; i < 200000; i++) longw[i] = "abcdefghij"[ss_rng_below(&r, 10)];
    check_roundtrip(t, longw, 200000, 0, "long word");
    free(longw);
    /* Every byte alone encodes to its byte token 5 + b. */
    int bytes_ok = 1;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t id = -1;
        if (ss_tokenizer_encode(t, &c, 1, &id, 1) != 1 || id != 5 + b) bytes_ok = 0;
    }
    CHECK(bytes_ok);
    /* Empty text. */
    CHECK(ss_tokenizer_encode(t, "", 0, NULL, 0) == 0);
    ss_tokenizer_free(t);

    /* Lowercasing tokenizer: round trip gives the lowercased bytes. */
    ss_tokenizer_opts ol = {800, 1, 2};
    CHECK_OK(ss_tokenizer_train((const char *const *)corpus, N, &ol, &t));
    if (t) {
        check_roundtrip(t, ascii, strlen(ascii), 1, "ascii lowercased");
        check_roundtrip(t, invalid, sizeof invalid - 1, 1, "invalid utf8 lowercased");
        for (int k = 0; k < 50; k++) {
            size_t n = ss_rng_below(&r, 2000);
            for (size_t i = 0; i < n; i++) buf[i] = (char)ss_rng_below(&r, 256);
            check_roundtrip(t, buf, n, 1, "random bytes lowercased");
        }
    }
    ss_tokenizer_free(t);
    free_corpus(corpus, N);
}

static void test_determinism_and_io(void)
{
    const int N = 500;
    char **corpus = make_corpus(N, 11);
    ss_tokenizer_opts o = ss_tokenizer_opts_default();
    o.vocab_size = 700;
    ss_tokenizer *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(ss_tokenizer_train((const char *const *)corpus, N, &o, &a));
    CHECK_OK(ss_tokenizer_train((const char *const *)corpus, N, &o, &b));
    if (!a || !b) return;
    char *ja, *jb, *jc;
    size_t la, lb, lc;
    CHECK_OK(ss_tokenizer_to_json(a, &ja, &la));
    CHECK_OK(ss_tokenizer_to_json(b, &jb, &lb));
    CHECK(la == lb && memcmp(ja, jb, la) == 0);

    /* Structure of the JSON: the fields Hugging Face `tokenizers` reads. */
    cJSON *root = cJSON_Parse(ja);
    CHECK(root != NULL);
    if (root) {
        cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(model, "type")) &&
              strcmp(cJSON_GetObjectItemCaseSensitive(model, "type")->valuestring, "BPE") == 0);
        cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
        CHECK(cJSON_GetArraySize(vocab) == ss_tokenizer_vocab_size(a));
        CHECK(cJSON_GetObjectItemCaseSensitive(vocab, "[MASK]")->valuedouble == 4);
        CHECK(cJSON_GetObjectItemCaseSensitive(vocab, "\xc4\xa0")->valuedouble == 5 + ' '); /* "Ġ" */
        CHECK(cJSON_GetObjectItemCaseSensitive(vocab, "!")->valuedouble == 5 + '!');
        cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
        CHECK(cJSON_GetArraySize(merges) == ss_tokenizer_merge_count(a));
        CHECK(cJSON_IsString(cJSON_GetArrayItem(merges, 0)));
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix")));
        cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(pre, "type")->valuestring, "ByteLevel") == 0);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space")));
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "type")->valuestring,
                     "Lowercase") == 0);
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "type")->valuestring,
                     "ByteLevel") == 0);
        cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
        CHECK(cJSON_GetArraySize(added) == 5);
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(added, 2), "content")->valuestring,
                     "[CLS]") == 0);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(added, 2), "special")));
        cJSON_Delete(root);
    }

    /* Save, load: same JSON, same encodings. */
    const char *path = tmp_path("tok.json");
    CHECK_OK(ss_tokenizer_save(a, path));
    CHECK(access(path, F_OK) == 0);
    CHECK_OK(ss_tokenizer_load(path, &c));
    if (c) {
        CHECK_OK(ss_tokenizer_to_json(c, &jc, &lc));
        CHECK(lc == la && memcmp(ja, jc, la) == 0);
        free(jc);
        CHECK(ss_tokenizer_vocab_size(c) == ss_tokenizer_vocab_size(a));
        CHECK(ss_tokenizer_lowercase(c) == 1);
        int same = 1;
        int32_t ia[512], ic[512];
        for (int i = 0; i < N; i++) {
            int64_t na = ss_tokenizer_encode(a, corpus[i], strlen(corpus[i]), ia, 512);
            int64_t nc = ss_tokenizer_encode(c, corpus[i], strlen(corpus[i]), ic, 512);
            if (na != nc || memcmp(ia, ic, (size_t)(na < 512 ? na : 512) * sizeof *ia) != 0) same = 0;
        }
        CHECK(same);
    }
    ss_tokenizer_free(c);
    c = NULL;
    /* Merges written as ["a", "b"] pairs (tokenizers >= 0.20) load too. */
    root = cJSON_Parse(ja);
    if (root) {
        cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges");
        cJSON *pairs = cJSON_CreateArray();
        cJSON *m;
        cJSON_ArrayForEach(m, merges)
        {
            char *sp = strchr(m->valuestring, ' ');
            *sp = '\0';
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, cJSON_CreateString(m->valuestring));
            cJSON_AddItemToArray(p, cJSON_CreateString(sp + 1));
            cJSON_AddItemToArray(pairs, p);
        }
        cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "merges", pairs);
        char *txt = cJSON_PrintUnformatted(root);
        CHECK_OK(ss_tokenizer_load_memory(txt, strlen(txt), "pairs.json", &c));
        if (c) {
            CHECK_OK(ss_tokenizer_to_json(c, &jc, &lc));
            CHECK(lc == la && memcmp(ja, jc, la) == 0);
            free(jc);
        }
        ss_tokenizer_free(c);
        c = NULL;
        cJSON_free(txt);
        cJSON_Delete(root);
    }
    free(ja);
    free(jb);
    ss_tokenizer_free(a);
    ss_tokenizer_free(b);
    free_corpus(corpus, N);
}

/* ------------------------------------------------------------ hostile JSON */

typedef void (*mutator)(cJSON *root);

static void m_no_model(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "model"); }
static cJSON *model_of(cJSON *r) { return cJSON_GetObjectItemCaseSensitive(r, "model"); }
static cJSON *vocab_of(cJSON *r) { return cJSON_GetObjectItemCaseSensitive(model_of(r), "vocab"); }
static cJSON *merges_of(cJSON *r) { return cJSON_GetObjectItemCaseSensitive(model_of(r), "merges"); }
static void m_unknown_merge(cJSON *r)
{
    cJSON_ReplaceItemInArray(merges_of(r), 0, cJSON_CreateString("nosuchtoken a"));
}
static void m_merge_result_missing(cJSON *r)
{
    /* "z" + "q": both tokens exist, "zq" does not. */
    cJSON_AddItemToArray(merges_of(r), cJSON_CreateString("z q"));
}
static void m_bad_merge_string(cJSON *r)
{
    cJSON_ReplaceItemInArray(merges_of(r), 0, cJSON_CreateString("abc"));
}
static void m_dup_merge(cJSON *r)
{
    cJSON *first = cJSON_GetArrayItem(merges_of(r), 0);
    cJSON_AddItemToArray(merges_of(r), cJSON_CreateString(first->valuestring));
}
static void m_id_out_of_range(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(vocab_of(r), "a", cJSON_CreateNumber(99999));
}
static void m_id_negative(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(vocab_of(r), "a", cJSON_CreateNumber(-1));
}
static void m_id_fraction(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(vocab_of(r), "a", cJSON_CreateNumber(70.5));
}
static void m_dup_id(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(vocab_of(r), "a", cJSON_CreateNumber(5 + 'b'));
}
static void m_id_string(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(vocab_of(r), "a", cJSON_CreateString("x"));
}
static void m_missing_byte(cJSON *r)
{
    /* Rename byte token "a" to a multi-byte token (keeps ids dense). */
    cJSON *v = vocab_of(r);
    double id = cJSON_GetObjectItemCaseSensitive(v, "a")->valuedouble;
    cJSON_DeleteItemFromObjectCaseSensitive(v, "a");
    cJSON_AddNumberToObject(v, "zzzq", id);
}
static void m_not_byte_level(cJSON *r)
{
    cJSON *v = vocab_of(r);
    double id = cJSON_GetObjectItemCaseSensitive(v, "a")->valuedouble;
    cJSON_DeleteItemFromObjectCaseSensitive(v, "a");
    cJSON_AddNumberToObject(v, "\xe6\x97\xa5", id); /* U+65E5 is not in the alphabet */
}
static void m_no_vocab(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(model_of(r), "vocab"); }
static void m_no_merges(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(model_of(r), "merges"); }
static void m_no_added(cJSON *r) { cJSON_DeleteItemFromObjectCaseSensitive(r, "added_tokens"); }
static void m_special_moved(cJSON *r)
{
    cJSON *v = vocab_of(r);
    cJSON_ReplaceItemInObjectCaseSensitive(v, "[PAD]", cJSON_CreateNumber(5 + 'a'));
    cJSON_ReplaceItemInObjectCaseSensitive(v, "a", cJSON_CreateNumber(0));
}
static void m_wordpiece(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(model_of(r), "type", cJSON_CreateString("WordPiece"));
}
static void m_prefix_space(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "pre_tokenizer"), "add_prefix_space",
                              cJSON_CreateTrue());
}
static void m_whitespace_pre(cJSON *r)
{
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "pre_tokenizer"), "type",
                              cJSON_CreateString("Whitespace"));
}
static void m_root_array(cJSON *r)
{
    (void)r; /* handled by text below */
}

static void check_hostile(const char *base, const char *name, mutator m, ss_status want,
                          const char *field)
{
    cJSON *root = cJSON_Parse(base);
    m(root);
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    const char *path = tmp_path(name);
    write_file(path, txt, strlen(txt));
    cJSON_free(txt);
    ss_tokenizer *t = NULL;
    ss_status st = ss_tokenizer_load(path, &t);
    CHECK_MSG(st == want && t == NULL, "%s: status %d, expected %d (%s)", name, (int)st, (int)want,
              ss_errmsg());
    CHECK_MSG(strstr(ss_errmsg(), path) != NULL, "%s: message does not name the file: %s", name,
              ss_errmsg());
    CHECK_MSG(strstr(ss_errmsg(), field) != NULL, "%s: message does not name %s: %s", name, field,
              ss_errmsg());
    ss_tokenizer_free(t);
}

static void test_hostile(void)
{
    const char *texts[] = {"ab ab ab", "abc abc", "zz zz"};
    ss_tokenizer_opts o = {300, 0, 2};
    ss_tokenizer *t = NULL;
    CHECK_OK(ss_tokenizer_train(texts, 3, &o, &t));
    if (!t) return;
    char *js;
    size_t jl;
    CHECK_OK(ss_tokenizer_to_json(t, &js, &jl));
    ss_tokenizer_free(t);

    check_hostile(js, "no_model.json", m_no_model, SS_ERR_FORMAT, "model");
    check_hostile(js, "unknown_merge.json", m_unknown_merge, SS_ERR_FORMAT, "model.merges[0]");
    check_hostile(js, "merge_result.json", m_merge_result_missing, SS_ERR_FORMAT, "model.merges[");
    check_hostile(js, "bad_merge.json", m_bad_merge_string, SS_ERR_FORMAT, "model.merges[0]");
    check_hostile(js, "dup_merge.json", m_dup_merge, SS_ERR_FORMAT, "repeats merges[0]");
    check_hostile(js, "id_range.json", m_id_out_of_range, SS_ERR_FORMAT, "model.vocab");
    check_hostile(js, "id_neg.json", m_id_negative, SS_ERR_FORMAT, "model.vocab");
    check_hostile(js, "id_frac.json", m_id_fraction, SS_ERR_FORMAT, "model.vocab");
    check_hostile(js, "dup_id.json", m_dup_id, SS_ERR_FORMAT, "model.vocab: id");
    check_hostile(js, "id_string.json", m_id_string, SS_ERR_FORMAT, "model.vocab");
    check_hostile(js, "missing_byte.json", m_missing_byte, SS_ERR_FORMAT, "no token for byte 0x61");
    check_hostile(js, "not_bl.json", m_not_byte_level, SS_ERR_FORMAT, "byte-level");
    check_hostile(js, "no_vocab.json", m_no_vocab, SS_ERR_FORMAT, "model.vocab");
    check_hostile(js, "no_merges.json", m_no_merges, SS_ERR_FORMAT, "model.merges");
    check_hostile(js, "no_added.json", m_no_added, SS_ERR_FORMAT, "added_tokens");
    check_hostile(js, "special_moved.json", m_special_moved, SS_ERR_FORMAT, "[PAD]");
    check_hostile(js, "wordpiece.json", m_wordpiece, SS_ERR_UNSUPPORTED, "model.type");
    check_hostile(js, "prefix.json", m_prefix_space, SS_ERR_UNSUPPORTED, "add_prefix_space");
    check_hostile(js, "ws.json", m_whitespace_pre, SS_ERR_UNSUPPORTED, "pre_tokenizer.type");
    (void)m_root_array;

    /* Truncated file and non-object JSON. */
    const char *path = tmp_path("truncated.json");
    write_file(path, js, jl / 2);
    ss_tokenizer *x = NULL;
    CHECK(ss_tokenizer_load(path, &x) == SS_ERR_FORMAT && x == NULL);
    CHECK(strstr(ss_errmsg(), path) != NULL && strstr(ss_errmsg(), "not valid JSON") != NULL);
    CHECK(ss_tokenizer_load_memory("[1,2]", 5, "arr.json", &x) == SS_ERR_FORMAT);
    CHECK(strstr(ss_errmsg(), "arr.json") != NULL);
    CHECK(ss_tokenizer_load_memory("", 0, "empty.json", &x) == SS_ERR_FORMAT);
    CHECK(ss_tokenizer_load_memory("{\"model\":{}}", 12, "m.json", &x) == SS_ERR_FORMAT);
    CHECK(ss_tokenizer_load(tmp_path("does-not-exist.json"), &x) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "does-not-exist.json") != NULL);
    /* Every prefix of a valid file fails cleanly (no crash, no leak). */
    int all_fail = 1;
    for (size_t n = 0; n + 1 < jl; n += 97) {
        if (ss_tokenizer_load_memory(js, n, "prefix", &x) == SS_OK) {
            all_fail = 0;
            ss_tokenizer_free(x);
        }
    }
    CHECK(all_fail);
    /* The unmodified text loads. */
    CHECK_OK(ss_tokenizer_load_memory(js, jl, "ok.json", &x));
    ss_tokenizer_free(x);
    free(js);
}

/* -------------------------------------------------------- sequence encode */

static void test_encode_seq(void)
{
    const char *texts[] = {"ab ab ab", "abc abc"};
    ss_tokenizer_opts o = {300, 0, 2};
    ss_tokenizer *t = NULL;
    CHECK_OK(ss_tokenizer_train(texts, 2, &o, &t));
    if (!t) return;
    int32_t ids[16];
    /* "abc ab" -> 261 104 262 */
    int n = ss_tokenizer_encode_seq(t, "abc ab", 6, ids, 8);
    CHECK(n == 5);
    int32_t want[8] = {SS_TOK_CLS, 261, 5 + 'c', 262, SS_TOK_SEP, SS_TOK_PAD, SS_TOK_PAD, SS_TOK_PAD};
    CHECK(memcmp(ids, want, sizeof want) == 0);
    /* Truncation: 4 slots hold [CLS] 261 104 [SEP]. */
    n = ss_tokenizer_encode_seq(t, "abc ab", 6, ids, 4);
    CHECK(n == 4 && ids[0] == SS_TOK_CLS && ids[1] == 261 && ids[2] == 5 + 'c' && ids[3] == SS_TOK_SEP);
    n = ss_tokenizer_encode_seq(t, "abc ab", 6, ids, 2);
    CHECK(n == 2 && ids[0] == SS_TOK_CLS && ids[1] == SS_TOK_SEP);
    n = ss_tokenizer_encode_seq(t, "abc ab", 6, ids, 1);
    CHECK(n == 1 && ids[0] == SS_TOK_CLS);
    CHECK(ss_tokenizer_encode_seq(t, "abc", 3, ids, 0) == 0);
    n = ss_tokenizer_encode_seq(t, "", 0, ids, 4);
    CHECK(n == 2 && ids[1] == SS_TOK_SEP && ids[2] == SS_TOK_PAD);
    /* encode with a short buffer: the full count, writes only max. */
    for (int i = 0; i < 16; i++) ids[i] = -7;
    CHECK(ss_tokenizer_encode(t, "abc ab", 6, ids, 2) == 3);
    CHECK(ids[0] == 261 && ids[1] == 5 + 'c' && ids[2] == -7);
    /* decode skips specials; short output buffer gets a prefix. */
    int32_t seq[] = {SS_TOK_CLS, 261, 5 + 'c', 262, SS_TOK_SEP, SS_TOK_PAD, 99999, -3};
    char out[16];
    memset(out, '#', sizeof out);
    CHECK(ss_tokenizer_decode(t, seq, 8, out, sizeof out) == 6);
    CHECK(memcmp(out, "abc ab", 6) == 0);
    memset(out, '#', sizeof out);
    CHECK(ss_tokenizer_decode(t, seq, 8, out, 4) == 6);
    CHECK(memcmp(out, "abc #", 5) == 0);
    ss_tokenizer_free(t);
}

/* ------------------------------------------------------- threads and speed */

typedef struct job {
    const ss_tokenizer *t;
    char **texts;
    int from, to;
    int32_t *out; /* 64 per text */
} job;

static void *encode_job(void *p)
{
    job *j = p;
    for (int i = j->from; i < j->to; i++)
        ss_tokenizer_encode_seq(j->t, j->texts[i], strlen(j->texts[i]), j->out + (size_t)i * 64, 64);
    return NULL;
}

static void test_threads_and_speed(void)
{
    const int N = 10000;
    char **corpus = make_corpus(N, 3);
    ss_tokenizer_opts o = ss_tokenizer_opts_default();
    o.vocab_size = 2000;
    ss_tokenizer *t = NULL, *t2 = NULL;
    CHECK_OK(ss_tokenizer_train((const char *const *)corpus, N, &o, &t));
    CHECK_OK(ss_tokenizer_train((const char *const *)corpus, N, &o, &t2));
    if (!t || !t2) return;
    int32_t *serial = malloc((size_t)N * 64 * sizeof *serial);
    int32_t *par = malloc((size_t)N * 64 * sizeof *par);
    double t0 = now_s();
    job js = {t, corpus, 0, N, serial};
    encode_job(&js);
    double dt = now_s() - t0;
    printf("encode_seq of %d sentences (cold cache): %.3f s\n", N, dt);
    CHECK_MSG(dt < 2.0, "encoding %d sentences took %.3f s", N, dt);
    /* Four threads on a fresh tokenizer (cache filled concurrently). */
    pthread_t th[4];
    job jobs[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] = (job){t2, corpus, k * N / 4, (k + 1) * N / 4, par};
        pthread_create(&th[k], NULL, encode_job, &jobs[k]);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    CHECK(memcmp(serial, par, (size_t)N * 64 * sizeof *serial) == 0);
    free(serial);
    free(par);
    ss_tokenizer_free(t);
    ss_tokenizer_free(t2);
    free_corpus(corpus, N);
}

/* Train the full default size on Debian's python3-pattern review sample. */
static void test_pattern_corpus(void)
{
    const char *path = ss_text_default_corpus();
    if (access(path, R_OK) != 0) {
        printf("SKIP pattern corpus: %s not present (install python3-pattern)\n", path);
        return;
    }
    ss_textset s;
    CHECK_OK(ss_textset_load_corpus(path, 1, &s));
    if (s.n == 0) return;
    double t0 = now_s();
    ss_tokenizer *t = NULL;
    CHECK_OK(ss_tokenizer_train_n((const char *const *)s.texts, s.lens, s.n, NULL, &t));
    double dt = now_s() - t0;
    printf("trained %d tokens on %lld sentences of %s in %.2f s\n", ss_tokenizer_vocab_size(t),
           (long long)s.n, path, dt);
    CHECK(ss_tokenizer_vocab_size(t) == 8192);
    /* Compression on its own corpus: well under one token per 3 bytes. */
    int64_t bytes = 0, toks = 0;
    for (int64_t i = 0; i < s.n; i += 10) {
        bytes += (int64_t)s.lens[i];
        toks += ss_tokenizer_encode(t, s.texts[i], s.lens[i], NULL, 0);
    }
    printf("bytes per token: %.2f\n", (double)bytes / (double)toks);
    CHECK((double)bytes / (double)toks > 3.5);
    for (int64_t i = 0; i < s.n; i += 997) check_roundtrip(t, s.texts[i], s.lens[i], 1, "pattern");
    ss_tokenizer_free(t);
    ss_textset_free(&s);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ss_test_tok_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_pretokenize();
    test_train_known();
    test_roundtrip();
    test_determinism_and_io();
    test_hostile();
    test_encode_seq();
    test_threads_and_speed();
    test_pattern_corpus();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    TEST_MAIN_END();
}
