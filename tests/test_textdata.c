/* Text datasets (tables, folders, gzip, corpora), splits and subsets, MLM
 * masking statistics, and text corruptions. */
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "selfsup/text.h"
#include "testutil.h"

static char g_dir[256];

static const char *tmp_path(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static const char *write_file(const char *name, const char *data, size_t n)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static const char *write_str(const char *name, const char *s) { return write_file(name, s, strlen(s)); }

static void mkdir_tmp(const char *name) { mkdir(tmp_path(name), 0755); }

static int text_is(const ss_textset *s, int64_t i, const char *want)
{
    return i < s->n && s->lens[i] == strlen(want) && strcmp(s->texts[i], want) == 0;
}

/* ------------------------------------------------------------------ tables */

static void test_tables(void)
{
    ss_textset s;
    /* TSV with a header and label names; trailing spaces trimmed. */
    const char *p = write_str("a.tsv", "text\tlabel\n"
                                       "a fine film . \tpos\n"
                                       "\n"
                                       "dull , dull , dull\tneg\r\n"
                                       "it has \"quotes\" in it\tpos\n"
                                       "meh\tmixed\n");
    CHECK_OK(ss_textset_load_labelled(p, &s));
    CHECK(s.n == 4 && s.nclasses == 3);
    if (s.n == 4 && s.nclasses == 3) {
        CHECK(strcmp(s.class_names[0], "mixed") == 0 && strcmp(s.class_names[1], "neg") == 0 &&
              strcmp(s.class_names[2], "pos") == 0);
        CHECK(text_is(&s, 0, "a fine film .") && s.labels[0] == 2);
        CHECK(text_is(&s, 1, "dull , dull , dull") && s.labels[1] == 1);
        CHECK(text_is(&s, 2, "it has \"quotes\" in it") && s.labels[2] == 2);
        CHECK(text_is(&s, 3, "meh") && s.labels[3] == 0);
        CHECK(strcmp(s.source, p) == 0);
    }
    ss_textset_free(&s);
    CHECK(s.n == 0 && s.texts == NULL);

    /* No header, integer labels 0..K-1 used directly. */
    p = write_str("b.txt", "one\t2\ntwo\t0\nthree\t1\nfour\t2\n");
    CHECK_OK(ss_textset_load_labelled(p, &s));
    CHECK(s.n == 4 && s.nclasses == 3);
    if (s.n == 4) {
        CHECK(s.labels[0] == 2 && s.labels[1] == 0 && s.labels[2] == 1 && s.labels[3] == 2);
        CHECK(strcmp(s.class_names[2], "2") == 0);
    }
    ss_textset_free(&s);

    /* python3-pattern style CSV: BOM, "label","text", -1/1, doubled quotes,
     * a multi-line quoted field, CRLF row ends. */
    const char csv[] = "\xef\xbb\xbf\"1\",\"the rock is \"\"new\"\" . \n\"\r\n"
                       "\"-1\",\"line one .\nline two . \n\"\r\n"
                       "\"1\",\"caf\xe9 \x92ok\x92\"\r\n";
    p = write_file("pat.csv", csv, sizeof csv - 1);
    CHECK_OK(ss_textset_load_labelled(p, &s));
    CHECK(s.n == 3 && s.nclasses == 2);
    if (s.n == 3 && s.nclasses == 2) {
        CHECK(strcmp(s.class_names[0], "-1") == 0 && strcmp(s.class_names[1], "1") == 0);
        CHECK(text_is(&s, 0, "the rock is \"new\" .") && s.labels[0] == 1);
        CHECK(text_is(&s, 1, "line one .\nline two .") && s.labels[1] == 0);
        CHECK(text_is(&s, 2, "caf\xe9 \x92ok\x92") && s.labels[2] == 1);
    }
    ss_textset_free(&s);
    /* The same table as a corpus, split by lines: 4 sentences, unlabelled. */
    CHECK_OK(ss_textset_load_corpus(p, 1, &s));
    CHECK(s.n == 4 && s.nclasses == 0);
    if (s.n == 4) {
        CHECK(text_is(&s, 1, "line one .") && text_is(&s, 2, "line two .") && s.labels[2] == -1);
    }
    ss_textset_free(&s);

    /* gzip-compressed TSV. */
    const char *gzp = tmp_path("c.tsv.gz");
    gzFile g = gzopen(gzp, "wb");
    gzputs(g, "good\tpos\nbad\tneg\n");
    gzclose(g);
    CHECK_OK(ss_textset_load_labelled(gzp, &s));
    CHECK(s.n == 2 && s.nclasses == 2 && text_is(&s, 1, "bad") && s.labels[1] == 0);
    ss_textset_free(&s);

    /* Bad rows name the file and the line. */
    struct {
        const char *name, *data, *where;
    } bad[] = {
        {"bad1.tsv", "ok\tpos\nfine\tneg\ntoo\tmany\tfields\n", "bad1.tsv:3: expected 2 fields"},
        {"bad2.tsv", "ok\tpos\nno label here\n", "bad2.tsv:2: expected 2 fields"},
        {"bad3.tsv", "ok\tpos\nempty label\t \n", "bad3.tsv:2: empty label"},
        {"bad4.tsv", "ok\tpos\n\n\t neg\n", "bad4.tsv:3: empty text"},
        {"bad5.csv", "\"ok\",\"pos\"\n\"never closed,neg\n", "bad5.csv:2: unterminated"},
        {"bad6.csv", "\"ok\"x,pos\n", "bad6.csv:1: unexpected character"},
        {"bad7.tsv", "text\tlabel\n", "no data rows"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        p = write_str(bad[k].name, bad[k].data);
        ss_status st = ss_textset_load_labelled(p, &s);
        CHECK_MSG(st == SS_ERR_FORMAT, "%s: status %d", bad[k].name, (int)st);
        CHECK_MSG(strstr(ss_errmsg(), bad[k].where) != NULL, "%s: message \"%s\" lacks \"%s\"",
                  bad[k].name, ss_errmsg(), bad[k].where);
        CHECK(s.n == 0 && s.texts == NULL);
    }
    CHECK(ss_textset_load_labelled(tmp_path("missing.tsv"), &s) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "missing.tsv") != NULL);
}

/* ----------------------------------------------------------------- folders */

static void test_folders(void)
{
    ss_textset s;
    /* One file per class (rt-polarity layout) plus files to skip. */
    mkdir_tmp("rt");
    write_str("rt/rt-polarity.pos", "good fun . \nwarm and witty . \n");
    write_str("rt/rt-polarity.neg", "a mess . \n\nflat . \ndreary . \n");
    write_str("rt/PROVENANCE.md", "# not data\n");
    write_str("rt/SHA256SUMS", "abc  rt-polarity.pos\n");
    write_str("rt/.hidden", "x\n");
    CHECK_OK(ss_textset_load_labelled(tmp_path("rt"), &s));
    CHECK(s.n == 5 && s.nclasses == 2);
    if (s.n == 5 && s.nclasses == 2) {
        CHECK(strcmp(s.class_names[0], "neg") == 0 && strcmp(s.class_names[1], "pos") == 0);
        CHECK(text_is(&s, 0, "a mess .") && text_is(&s, 2, "dreary .") && s.labels[2] == 0);
        CHECK(text_is(&s, 3, "good fun .") && s.labels[3] == 1 && text_is(&s, 4, "warm and witty ."));
    }
    ss_textset_free(&s);

    /* Files without a common stem: class = name without extension. */
    mkdir_tmp("byname");
    write_str("byname/pos.txt", "yes\n");
    write_str("byname/neg.txt", "no\nnope\n");
    CHECK_OK(ss_textset_load_labelled(tmp_path("byname"), &s));
    CHECK(s.n == 3 && s.nclasses == 2 && strcmp(s.class_names[0], "neg") == 0 &&
          s.labels[2] == 1 && text_is(&s, 2, "yes"));
    ss_textset_free(&s);

    /* One subfolder per class, each file a sample (nested too). */
    mkdir_tmp("sub");
    mkdir_tmp("sub/pos");
    mkdir_tmp("sub/neg");
    mkdir_tmp("sub/neg/more");
    write_str("sub/README.txt", "ignored\n");
    write_str("sub/pos/cv001.txt", "great .\nreally great .\n");
    write_str("sub/neg/cv000.txt", "awful .\n");
    write_str("sub/neg/more/cv002.txt", "worse .\n");
    CHECK_OK(ss_textset_load_labelled(tmp_path("sub"), &s));
    CHECK(s.n == 3 && s.nclasses == 2);
    if (s.n == 3 && s.nclasses == 2) {
        CHECK(strcmp(s.class_names[0], "neg") == 0);
        CHECK(text_is(&s, 0, "awful .") && text_is(&s, 1, "worse .") && s.labels[1] == 0);
        CHECK(text_is(&s, 2, "great .\nreally great .") && s.labels[2] == 1);
    }
    ss_textset_free(&s);

    /* The same folder as a corpus: documents, or lines. */
    CHECK_OK(ss_textset_load_corpus(tmp_path("sub"), 0, &s));
    CHECK(s.n == 3 && s.nclasses == 0 && s.labels[0] == -1);
    ss_textset_free(&s);
    CHECK_OK(ss_textset_load_corpus(tmp_path("sub"), 1, &s));
    CHECK(s.n == 4);
    /* Sorted by name per level: neg/cv000, neg/more/cv002, pos/cv001. */
    CHECK(text_is(&s, 0, "awful .") && text_is(&s, 1, "worse .") && text_is(&s, 3, "really great ."));
    ss_textset_free(&s);

    /* A plain text file corpus: non-blank lines. */
    const char *p = write_str("lines.txt", "first line \n\n   \nsecond\r\nthird");
    CHECK_OK(ss_textset_load_corpus(p, 0, &s));
    CHECK(s.n == 3 && text_is(&s, 0, "first line") && text_is(&s, 1, "second") && text_is(&s, 2, "third"));
    ss_textset_free(&s);

    mkdir_tmp("empty");
    CHECK(ss_textset_load_labelled(tmp_path("empty"), &s) == SS_ERR_FORMAT);
    CHECK(ss_textset_load_corpus(tmp_path("empty"), 1, &s) == SS_ERR_FORMAT);
    CHECK(strstr(ss_errmsg(), "empty") != NULL);
}

/* ------------------------------------------------------------ split/subset */

static void test_split_subset(void)
{
    /* 3 classes of 100, 50 and 7 samples. */
    ss_textset s;
    memset(&s, 0, sizeof s);
    s.n = 157;
    s.labels = malloc((size_t)s.n * sizeof *s.labels);
    for (int64_t i = 0; i < s.n; i++) s.labels[i] = i < 100 ? 0 : (i < 150 ? 1 : 2);
    s.nclasses = 3;
    snprintf(s.source, sizeof s.source, "synthetic");
    int32_t *tr, *te, *tr2, *te2;
    int64_t ntr, nte, ntr2, nte2;
    CHECK_OK(ss_textset_split(&s, 0.1, 5, &tr, &ntr, &te, &nte));
    /* round(10) + round(5) + round(0.7) = 16 */
    CHECK(nte == 16 && ntr == 141);
    int cnt[3] = {0, 0, 0};
    for (int64_t i = 0; i < nte; i++) cnt[s.labels[te[i]]]++;
    CHECK(cnt[0] == 10 && cnt[1] == 5 && cnt[2] == 1);
    char *seen = calloc((size_t)s.n, 1);
    int sorted = 1, dup = 0;
    for (int64_t i = 0; i < ntr; i++) {
        dup |= seen[tr[i]]++;
        if (i && tr[i] <= tr[i - 1]) sorted = 0;
    }
    for (int64_t i = 0; i < nte; i++) {
        dup |= seen[te[i]]++;
        if (i && te[i] <= te[i - 1]) sorted = 0;
    }
    int all = 1;
    for (int64_t i = 0; i < s.n; i++) all &= seen[i] == 1;
    CHECK(sorted && !dup && all);
    free(seen);
    CHECK_OK(ss_textset_split(&s, 0.1, 5, &tr2, &ntr2, &te2, &nte2));
    CHECK(nte2 == nte && memcmp(te, te2, (size_t)nte * sizeof *te) == 0);
    free(tr2);
    free(te2);
    CHECK_OK(ss_textset_split(&s, 0.1, 6, &tr2, &ntr2, &te2, &nte2));
    CHECK(nte2 == nte && memcmp(te, te2, (size_t)nte * sizeof *te) != 0);
    free(tr2);
    free(te2);
    CHECK(ss_textset_split(&s, 1.5, 0, &tr2, &ntr2, &te2, &nte2) == SS_ERR_INVALID);

    /* Subsets of the train split. */
    int32_t *a, *b, *c, *d;
    int64_t na, nb, nc, nd;
    CHECK_OK(ss_textset_subset(&s, tr, ntr, "10%", 1, &a, &na));
    /* train has 90, 45, 6 per class -> 9 + 5 (4.5 rounds up) + 1 */
    CHECK(na == 15);
    CHECK_OK(ss_textset_subset(&s, tr, ntr, "1%", 1, &b, &nb));
    CHECK(nb == 3); /* at least one per class */
    CHECK_OK(ss_textset_subset(&s, tr, ntr, "100%", 1, &c, &nc));
    CHECK(nc == ntr && memcmp(c, tr, (size_t)ntr * sizeof *tr) == 0);
    free(c);
    CHECK_OK(ss_textset_subset(&s, tr, ntr, "all", 1, &c, &nc));
    CHECK(nc == ntr);
    free(c);
    CHECK_OK(ss_textset_subset(&s, tr, ntr, "8/class", 1, &d, &nd));
    CHECK(nd == 8 + 8 + 6);
    int per[3] = {0, 0, 0};
    for (int64_t i = 0; i < nd; i++) per[s.labels[d[i]]]++;
    CHECK(per[0] == 8 && per[1] == 8 && per[2] == 6);
    /* Nested: 1% inside 10%; all inside train. */
    int nested = 1;
    for (int64_t i = 0; i < nb; i++) {
        int found = 0;
        for (int64_t j = 0; j < na; j++) found |= a[j] == b[i];
        nested &= found;
    }
    CHECK(nested);
    int in_train = 1;
    for (int64_t i = 0; i < na; i++) {
        int found = 0;
        for (int64_t j = 0; j < ntr; j++) found |= tr[j] == a[i];
        in_train &= found;
    }
    CHECK(in_train);
    free(a);
    free(b);
    free(d);
    const char *bad_specs[] = {"0%", "150%", "abc", "x/class", "0/class", "10", ""};
    for (size_t k = 0; k < sizeof bad_specs / sizeof bad_specs[0]; k++) {
        CHECK_MSG(ss_textset_subset(&s, tr, ntr, bad_specs[k], 1, &a, &na) == SS_ERR_INVALID,
                  "spec \"%s\" accepted", bad_specs[k]);
    }
    int32_t badidx[2] = {3, 999};
    CHECK(ss_textset_subset(&s, badidx, 2, "all", 1, &a, &na) == SS_ERR_RANGE);
    free(tr);
    free(te);
    free(s.labels);
}

/* ---------------------------------------------------------- real corpora */

static void test_pattern(void)
{
    const char *lab = ss_text_default_labelled();
    const char *cor = ss_text_default_corpus();
    ss_textset s;
    if (access(lab, R_OK) != 0) {
        printf("SKIP pattern labelled set: %s not present (install python3-pattern)\n", lab);
    } else {
        CHECK_OK(ss_textset_load_labelled(lab, &s));
        CHECK(s.n == 4000 && s.nclasses == 2);
        if (s.nclasses == 2) {
            CHECK(strcmp(s.class_names[0], "-1") == 0 && strcmp(s.class_names[1], "1") == 0);
            int pos = 0;
            for (int64_t i = 0; i < s.n; i++) pos += s.labels[i] == 1;
            CHECK(pos == 2000);
            /* First row of the file. */
            const char *first = "the rock is destined to be the 21st century's new \" conan \"";
            CHECK(strncmp(s.texts[0], first, strlen(first)) == 0 && s.labels[0] == 1);
        }
        ss_textset_free(&s);
    }
    if (access(cor, R_OK) != 0) {
        printf("SKIP pattern corpus: %s not present (install python3-pattern)\n", cor);
    } else {
        CHECK_OK(ss_textset_load_corpus(cor, 0, &s));
        CHECK(s.n == 1500 && s.nclasses == 0);
        ss_textset_free(&s);
        CHECK_OK(ss_textset_load_corpus(cor, 1, &s));
        CHECK(s.n == 48659);
        ss_textset_free(&s);
    }
}

/* rt-polarity from ../shared/data when present: counts and the committed split. */
static void test_rt_polarity(void)
{
    const char *src = getenv("SS_SOURCE_DIR");
    char data[1024], doc[1024];
    snprintf(data, sizeof data, "%s/../shared/data/rt-polarity", src ? src : ".");
    snprintf(doc, sizeof doc, "%s/docs/rt-polarity-split.txt", src ? src : ".");
    if (access(data, R_OK) != 0) {
        printf("SKIP rt-polarity: %s not present\n", data);
        return;
    }
    ss_textset s;
    CHECK_OK(ss_textset_load_labelled(data, &s));
    CHECK(s.n == 10662 && s.nclasses == 2);
    if (s.n != 10662 || s.nclasses != 2) {
        ss_textset_free(&s);
        return;
    }
    CHECK(strcmp(s.class_names[0], "neg") == 0 && strcmp(s.class_names[1], "pos") == 0);
    CHECK(text_is(&s, 0, "simplistic , silly and tedious .") && s.labels[0] == 0);
    CHECK(s.labels[5330] == 0 && s.labels[5331] == 1);
    int32_t *tr, *te;
    int64_t ntr, nte;
    CHECK_OK(ss_textset_split(&s, 0.1, 0, &tr, &ntr, &te, &nte));
    CHECK(ntr == 9596 && nte == 1066);
    FILE *f = fopen(doc, "r");
    CHECK_MSG(f != NULL, "cannot open %s", doc);
    if (f) {
        char line[256];
        int64_t k = 0;
        int same = 1;
        while (fgets(line, sizeof line, f)) {
            if (line[0] == '#' || line[0] == '\n') continue;
            if (k >= nte || atoi(line) != te[k]) same = 0;
            k++;
        }
        fclose(f);
        CHECK_MSG(same && k == nte, "docs/rt-polarity-split.txt differs from the computed split");
    }
    free(tr);
    free(te);
    ss_textset_free(&s);
}

/* --------------------------------------------------------------------- MLM */

static void test_mlm(void)
{
    enum { L = 128, NSEQ = 4000, V = 1000 };
    int32_t ids[L], in[L], tg[L];
    ss_rng r;
    ss_rng_seed(&r, 42, 0);
    ss_rng gen;
    ss_rng_seed(&gen, 43, 0);
    int64_t eligible = 0, chosen = 0, masked = 0, randomised = 0, kept = 0, same_random = 0;
    int ok_special = 1, ok_target = 1, ok_count = 1, ok_unchosen = 1, ok_range = 1;
    for (int s = 0; s < NSEQ; s++) {
        int len = 10 + (int)ss_rng_below(&gen, L - 12); /* real tokens */
        ids[0] = SS_TOK_CLS;
        for (int i = 1; i <= len; i++) ids[i] = SS_TOK_NSPECIAL + (int32_t)ss_rng_below(&gen, V - 5);
        ids[len + 1] = SS_TOK_SEP;
        for (int i = len + 2; i < L; i++) ids[i] = SS_TOK_PAD;
        if (s % 7 == 0) ids[3] = SS_TOK_UNK; /* specials inside are never chosen */
        int k = 0;
        for (int i = 0; i < L; i++) k += ids[i] >= SS_TOK_NSPECIAL;
        eligible += k;
        ss_mlm_mask(ids, L, V, 0.15f, &r, in, tg);
        int m = 0;
        for (int i = 0; i < L; i++) {
            if (ids[i] < SS_TOK_NSPECIAL && (tg[i] != -1 || in[i] != ids[i])) ok_special = 0;
            if (tg[i] == -1) {
                if (in[i] != ids[i]) ok_unchosen = 0;
                continue;
            }
            m++;
            if (tg[i] != ids[i]) ok_target = 0;
            if (in[i] == SS_TOK_MASK) masked++;
            else if (in[i] == ids[i]) kept++;
            else {
                randomised++;
                if (in[i] < SS_TOK_NSPECIAL || in[i] >= V) ok_range = 0;
            }
        }
        /* exactly max(1, round(0.15 k)) chosen */
        int want = (int)(0.15 * k + 0.5);
        if (want < 1) want = 1;
        if (m != want) ok_count = 0;
        chosen += m;
        (void)same_random;
    }
    CHECK(ok_special && ok_target && ok_count && ok_unchosen && ok_range);
    double fc = (double)chosen / (double)eligible;
    double fm = (double)masked / (double)chosen, fr = (double)randomised / (double)chosen,
           fk = (double)kept / (double)chosen;
    printf("mlm: chosen %.4f of %lld eligible; of chosen: mask %.4f random %.4f kept %.4f\n", fc,
           (long long)eligible, fm, fr, fk);
    /* ~38k chosen: binomial s.d. of the 0.8 share is 0.002; tolerances ~4 s.d. */
    CHECK_NEAR(fc, 0.15, 0.003);
    CHECK_NEAR(fm, 0.80, 0.008);
    /* A random token equal to the original counts as kept: 0.1 * 1/995. */
    CHECK_NEAR(fr, 0.10 * (1.0 - 1.0 / (V - 5)), 0.006);
    CHECK_NEAR(fk, 0.10 + 0.10 / (V - 5), 0.006);

    /* Dynamic: two calls give different masks; same stream gives the same. */
    for (int i = 0; i < L; i++) ids[i] = 5 + i;
    int32_t in2[L], tg2[L];
    ss_rng r1, r2;
    ss_rng_seed(&r1, 1, 9);
    ss_rng_seed(&r2, 1, 9);
    ss_mlm_mask(ids, L, V, 0.15f, &r1, in, tg);
    ss_mlm_mask(ids, L, V, 0.15f, &r2, in2, tg2);
    CHECK(memcmp(in, in2, sizeof in) == 0 && memcmp(tg, tg2, sizeof tg) == 0);
    ss_mlm_mask(ids, L, V, 0.15f, &r1, in2, tg2);
    CHECK(memcmp(tg, tg2, sizeof tg) != 0);
    /* Edge cases: all specials -> nothing; p = 0 -> nothing; one token -> chosen. */
    int32_t sp[4] = {SS_TOK_CLS, SS_TOK_SEP, SS_TOK_PAD, SS_TOK_PAD};
    ss_mlm_mask(sp, 4, V, 0.15f, &r1, in, tg);
    CHECK(tg[0] == -1 && tg[1] == -1 && tg[2] == -1 && tg[3] == -1 && in[0] == SS_TOK_CLS);
    ss_mlm_mask(ids, L, V, 0.0f, &r1, in, tg);
    int none = 1;
    for (int i = 0; i < L; i++) none &= tg[i] == -1 && in[i] == ids[i];
    CHECK(none);
    int32_t one[3] = {SS_TOK_CLS, 77, SS_TOK_SEP};
    ss_mlm_mask(one, 3, V, 0.15f, &r1, in, tg);
    CHECK(tg[0] == -1 && tg[1] == 77 && tg[2] == -1);
}

/* ------------------------------------------------------------- corruptions */

static void test_corruptions(void)
{
    CHECK(ss_text_corruption_count() == 3);
    CHECK(strcmp(ss_text_corruption_name(0), "typo") == 0);
    CHECK(strcmp(ss_text_corruption_name(2), "word-dropout") == 0);
    CHECK(ss_text_corruption_name(3) == NULL && ss_text_corruption_name(-1) == NULL);

    /* A long text: 2000 words of mixed case with some high bytes. */
    size_t cap = 20000, n = 0;
    char *txt = malloc(cap);
    ss_rng g;
    ss_rng_seed(&g, 5, 0);
    int nwords = 0;
    while (n + 20 < cap && nwords < 2000) {
        int wl = 2 + (int)ss_rng_below(&g, 7);
        for (int i = 0; i < wl; i++) txt[n++] = (char)('a' + ss_rng_below(&g, 26));
        if (nwords % 50 == 0) {
            txt[n++] = (char)0xc3;
            txt[n++] = (char)0xa9;
        }
        txt[n++] = ' ';
        nwords++;
    }
    txt[n] = '\0';
    size_t letters = 0;
    for (size_t i = 0; i < n; i++) letters += txt[i] >= 'a' && txt[i] <= 'z';

    for (int c = 0; c < ss_text_corruption_count(); c++) {
        const char *name = ss_text_corruption_name(c);
        for (int sev = 0; sev <= 3; sev++) {
            size_t l1, l2, l3;
            char *a = ss_text_corrupt(name, sev, 7, 3, txt, n, &l1);
            char *b = ss_text_corrupt(name, sev, 7, 3, txt, n, &l2);
            char *d = ss_text_corrupt(name, sev, 7, 4, txt, n, &l3);
            CHECK(a && b && d);
            if (!a || !b || !d) continue;
            CHECK(l1 == l2 && memcmp(a, b, l1) == 0); /* deterministic */
            CHECK(a[l1] == '\0');
            if (sev == 0) CHECK(l1 == n && memcmp(a, txt, n) == 0);
            else CHECK(l1 != l3 || memcmp(a, d, l1) != 0); /* index matters */
            /* UTF-8 "é" sequences survive intact: count them. */
            int e_in = 0, e_out = 0;
            for (size_t i = 0; i + 1 < n; i++) e_in += (unsigned char)txt[i] == 0xc3 && (unsigned char)txt[i + 1] == 0xa9;
            for (size_t i = 0; i + 1 < l1; i++) e_out += (unsigned char)a[i] == 0xc3 && (unsigned char)a[i + 1] == 0xa9;
            int hi_ok = 1;
            for (size_t i = 0; i < l1; i++)
                if ((unsigned char)a[i] == 0xc3 && (i + 1 >= l1 || (unsigned char)a[i + 1] != 0xa9)) hi_ok = 0;
            CHECK(hi_ok);
            if (strcmp(name, "case") == 0) {
                size_t flips = 0;
                int same_letters = l1 == n;
                for (size_t i = 0; same_letters && i < n; i++) {
                    if (a[i] != txt[i]) {
                        flips++;
                        if ((a[i] ^ 0x20) != txt[i]) same_letters = 0;
                    }
                }
                CHECK(same_letters && e_in == e_out);
                static const double rate[4] = {0, 0.1, 0.25, 0.5};
                CHECK_NEAR((double)flips / (double)letters, rate[sev], 0.02);
            } else if (strcmp(name, "typo") == 0) {
                CHECK(e_in == e_out && l1 <= n);
                /* Dropped letters: each affected letter is dropped with odds 1/2. */
                static const double rate[4] = {0, 0.03, 0.07, 0.15};
                double dropped = (double)(n - l1) / (double)letters;
                CHECK_NEAR(dropped, rate[sev] / 2, 0.015);
                /* Letters only move within words: spaces stay at word ends. */
                size_t sp_in = 0, sp_out = 0;
                for (size_t i = 0; i < n; i++) sp_in += txt[i] == ' ';
                for (size_t i = 0; i < l1; i++) sp_out += a[i] == ' ';
                CHECK(sp_in == sp_out);
            } else {
                /* word-dropout: the output's words are a subsequence of the input's. */
                static const double rate[4] = {0, 0.1, 0.2, 0.35};
                int wout = 0;
                for (size_t i = 0; i < l1; i++) wout += a[i] == ' ';
                CHECK_NEAR(1.0 - (double)wout / nwords, rate[sev], 0.035);
                const char *p = txt;
                int subseq = 1;
                for (size_t i = 0; i < l1 && subseq;) {
                    size_t e = i;
                    while (e < l1 && a[e] != ' ') e++;
                    /* find this word at a word start in txt after p */
                    int found = 0;
                    while (*p) {
                        const char *q = strchr(p, ' ');
                        size_t wl = q ? (size_t)(q - p) : strlen(p);
                        int match = wl == e - i && memcmp(p, a + i, wl) == 0;
                        p = q ? q + 1 : p + wl;
                        if (match) {
                            found = 1;
                            break;
                        }
                    }
                    subseq = found;
                    i = e + 1;
                }
                CHECK(subseq);
            }
            free(a);
            free(b);
            free(d);
        }
    }
    /* Word dropout keeps at least one word. */
    int kept_one = 1;
    for (int64_t idx = 0; idx < 200; idx++) {
        size_t l;
        char *o = ss_text_corrupt("word-dropout", 3, 1, idx, "only", 4, &l);
        kept_one &= o && l == 4 && strcmp(o, "only") == 0;
        free(o);
    }
    CHECK(kept_one);
    /* A known small case: severity 3 "case" on a fixed seed toggles only letters. */
    size_t l;
    char *o = ss_text_corrupt("case", 3, 0, 0, "ab-12 CD", 8, &l);
    CHECK(o && l == 8 && o[2] == '-' && o[3] == '1' && o[5] == ' ');
    free(o);
    CHECK(ss_text_corrupt("blur", 1, 0, 0, "x", 1, &l) == NULL);
    CHECK(strstr(ss_errmsg(), "blur") != NULL);
    CHECK(ss_text_corrupt("typo", 4, 0, 0, "x", 1, &l) == NULL);
    o = ss_text_corrupt("typo", 2, 0, 0, "", 0, &l);
    CHECK(o && l == 0 && o[0] == '\0');
    free(o);
    free(txt);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ss_test_textdata_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_tables();
    test_folders();
    test_split_subset();
    test_pattern();
    test_rt_polarity();
    test_mlm();
    test_corruptions();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    TEST_MAIN_END();
}
