/* Labelled subsets, validation splits and index files. */
#include "selfsup/data.h"
#include "testutil.h"
#include "data_fixtures.h"

/* A 1x1x1 data set of n images with label i % nc. */
static void make_set(ss_dataset *d, int64_t n, int nc)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->c = d->h = d->w = 1;
    d->pixels = calloc((size_t)n, 1);
    d->labels = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) d->labels[i] = (int32_t)(i % nc);
    d->nclasses = nc;
    d->class_names = calloc((size_t)nc, sizeof(char *));
    for (int k = 0; k < nc; k++) {
        d->class_names[k] = malloc(16);
        snprintf(d->class_names[k], 16, "c%d", k);
    }
    snprintf(d->source, sizeof d->source, "synthetic");
}

static int sorted_unique(const int32_t *v, int64_t n)
{
    for (int64_t i = 1; i < n; i++)
        if (v[i] <= v[i - 1]) return 0;
    return 1;
}

static void per_class(const ss_dataset *d, const int32_t *v, int64_t n, int64_t *cnt)
{
    for (int k = 0; k < d->nclasses; k++) cnt[k] = 0;
    for (int64_t i = 0; i < n; i++) cnt[d->labels[v[i]]]++;
}

/* Is every element of a (sorted) in b (sorted)? */
static int subset_of(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    int64_t j = 0;
    for (int64_t i = 0; i < na; i++) {
        while (j < nb && b[j] < a[i]) j++;
        if (j == nb || b[j] != a[i]) return 0;
    }
    return 1;
}

static void test_subset(void)
{
    ss_dataset d;
    make_set(&d, 60000, 10);
    int32_t *a = NULL, *b = NULL, *c = NULL;
    int64_t na, nb, nc, cnt[10];

    CHECK_OK(ss_subset_parse_draw(&d, "1%", 7, &a, &na));
    CHECK(na == 600 && sorted_unique(a, na));
    per_class(&d, a, na, cnt);
    for (int k = 0; k < 10; k++) CHECK(cnt[k] == 60);

    /* Same seed, same draw; "60/class" is the same draw as "1%" here. */
    CHECK_OK(ss_subset_parse_draw(&d, "60/class", 7, &b, &nb));
    CHECK(nb == na && memcmp(a, b, (size_t)na * 4) == 0);
    free(b);
    CHECK_OK(ss_subset_parse_draw(&d, "1%", 8, &b, &nb));
    CHECK(nb == na && memcmp(a, b, (size_t)na * 4) != 0);
    free(b);

    /* Nested: 1% within 10% for one seed. */
    CHECK_OK(ss_subset_parse_draw(&d, "10%", 7, &b, &nb));
    CHECK(nb == 6000 && subset_of(a, na, b, nb));
    per_class(&d, b, nb, cnt);
    for (int k = 0; k < 10; k++) CHECK(cnt[k] == 600);
    free(b);

    CHECK_OK(ss_subset_parse_draw(&d, "100%", 7, &b, &nb));
    CHECK(nb == 60000 && b[0] == 0 && b[59999] == 59999);
    free(b);
    CHECK_OK(ss_subset_parse_draw(&d, " all ", 7, &b, &nb));
    CHECK(nb == 60000);
    free(b);

    CHECK(ss_subset_parse_draw(&d, "6001/class", 7, &b, &nb) == SS_ERR_RANGE);
    CHECK(fx_msg_has("6001/class") && fx_msg_has("c0") && fx_msg_has("6000"));
    CHECK(b == NULL && nb == 0);
    const char *bad[] = {"abc", "0%", "101%", "-5%", "%", "0/class", "x/class", "5", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(ss_subset_parse_draw(&d, bad[i], 7, &b, &nb) == SS_ERR_INVALID, "spec \"%s\"", bad[i]);

    /* Drawing from a pool: percentages of the pool, never outside it. */
    int32_t *tr, *va;
    int64_t ntr, nva;
    CHECK_OK(ss_split_train_val(&d, NULL, 0, 0.1, 3, &tr, &ntr, &va, &nva));
    CHECK_OK(ss_subset_parse_draw_from(&d, tr, ntr, "1%", 7, &c, &nc));
    CHECK(nc == 540 && subset_of(c, nc, tr, ntr)); /* 1% of 54000 */
    free(c);
    free(tr);
    free(va);
    free(a);

    /* Imbalanced: class 0 has 5 images; a percentage caps at what it has. */
    for (int64_t i = 0; i < d.n; i++)
        if (d.labels[i] == 0 && i >= 50) d.labels[i] = 1;
    CHECK_OK(ss_subset_parse_draw(&d, "10%", 1, &a, &na));
    per_class(&d, a, na, cnt);
    CHECK(cnt[0] == 5 && cnt[1] == 600 && na == 5 + 9 * 600);
    free(a);
    CHECK(ss_subset_parse_draw(&d, "6/class", 1, &a, &na) == SS_ERR_RANGE);
    /* Unlabelled images are never drawn. */
    for (int64_t i = 0; i < 100; i++) d.labels[i] = -1;
    CHECK_OK(ss_subset_parse_draw(&d, "100%", 1, &a, &na));
    CHECK(na == 59900 && a[0] == 100);
    free(a);
    int32_t *keep = d.labels;
    d.labels = NULL;
    CHECK(ss_subset_parse_draw(&d, "1%", 1, &a, &na) == SS_ERR_INVALID);
    CHECK(fx_msg_has("no labels"));
    d.labels = keep;
    ss_dataset_free(&d);
}

static void test_split(void)
{
    ss_dataset d;
    make_set(&d, 1000, 4);
    int32_t *tr, *va, *tr2, *va2;
    int64_t ntr, nva, ntr2, nva2, cnt[4];
    CHECK_OK(ss_split_train_val(&d, NULL, 0, 0.1, 5, &tr, &ntr, &va, &nva));
    CHECK(ntr == 900 && nva == 100 && sorted_unique(tr, ntr) && sorted_unique(va, nva));
    per_class(&d, va, nva, cnt);
    for (int k = 0; k < 4; k++) CHECK(cnt[k] == 25);
    /* Disjoint and covering. */
    char *seen = calloc(1000, 1);
    for (int64_t i = 0; i < ntr; i++) seen[tr[i]]++;
    for (int64_t i = 0; i < nva; i++) seen[va[i]]++;
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= seen[i] == 1;
    CHECK(ok);
    free(seen);
    CHECK_OK(ss_split_train_val(&d, NULL, 0, 0.1, 5, &tr2, &ntr2, &va2, &nva2));
    CHECK(nva2 == nva && memcmp(va, va2, (size_t)nva * 4) == 0);
    free(tr2);
    free(va2);
    CHECK_OK(ss_split_train_val(&d, NULL, 0, 0.1, 6, &tr2, &ntr2, &va2, &nva2));
    CHECK(memcmp(va, va2, (size_t)nva * 4) != 0);
    free(tr2);
    free(va2);

    /* Splitting a given index list (the even images). */
    int32_t even[500];
    for (int i = 0; i < 500; i++) even[i] = 2 * i;
    CHECK_OK(ss_split_train_val(&d, even, 500, 0.2, 5, &tr2, &ntr2, &va2, &nva2));
    CHECK(ntr2 == 400 && nva2 == 100);
    ok = 1;
    for (int64_t i = 0; i < nva2; i++) ok &= va2[i] % 2 == 0;
    CHECK(ok);
    per_class(&d, va2, nva2, cnt);
    CHECK(cnt[0] == 50 && cnt[2] == 50 && cnt[1] == 0);
    free(tr2);
    free(va2);

    CHECK(ss_split_train_val(&d, NULL, 0, 1.0, 5, &tr2, &ntr2, &va2, &nva2) == SS_ERR_INVALID);
    even[3] = 1000;
    CHECK(ss_split_train_val(&d, even, 500, 0.2, 5, &tr2, &ntr2, &va2, &nva2) == SS_ERR_RANGE);
    CHECK(fx_msg_has("index 1000 at position 3"));

    /* Index files round-trip. */
    CHECK_OK(ss_indices_write(fx_path("val.txt"), va, nva));
    int32_t *back;
    int64_t nback;
    CHECK_OK(ss_indices_read(fx_path("val.txt"), 1000, &back, &nback));
    CHECK(nback == nva && memcmp(back, va, (size_t)nva * 4) == 0);
    free(back);
    CHECK(ss_indices_read(fx_path("val.txt"), 10, &back, &nback) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("val.txt:"));
    fx_text("bad.txt", "1\n2\nthree\n");
    CHECK(ss_indices_read(fx_path("bad.txt"), 0, &back, &nback) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("bad.txt:3:"));
    CHECK(ss_indices_write(fx_path("no/such/dir/x.txt"), va, nva) == SS_ERR_IO);
    CHECK(fx_msg_has("x.txt"));
    free(tr);
    free(va);
    ss_dataset_free(&d);
}

/* ss_indices_spread: a class-ordered set of 10 x 1,000 images monitored on
 * 2,000 gets exactly 200 per class (the first 2,000 would be two classes). */
static void test_spread(void)
{
    int32_t *v = ss_indices_spread(10000, 2000);
    CHECK(v != NULL);
    if (v) {
        CHECK(sorted_unique(v, 2000));
        CHECK(v[0] == 0 && v[1] == 5 && v[1999] == 9995);
        int per[10] = {0};
        for (int i = 0; i < 2000; i++) per[v[i] / 1000]++;
        for (int k = 0; k < 10; k++) CHECK_MSG(per[k] == 200, "class %d: %d", k, per[k]);
        free(v);
    }
    v = ss_indices_spread(7, 7); /* all of them */
    CHECK(v != NULL);
    for (int i = 0; v && i < 7; i++) CHECK(v[i] == i);
    free(v);
    v = ss_indices_spread(10, 3);
    CHECK(v && v[0] == 0 && v[1] == 3 && v[2] == 6);
    free(v);
    CHECK(ss_indices_spread(5, 6) == NULL);
    CHECK(ss_indices_spread(5, 0) == NULL);
}

int main(void)
{
    fx_mkroot("subset");
    test_subset();
    test_split();
    test_spread();
    fx_rmroot();
    TEST_MAIN_END();
}
