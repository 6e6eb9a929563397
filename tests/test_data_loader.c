/* Batch loader: coverage, values, determinism across worker counts, seek,
 * subsets, views, and shutdown while workers are busy. */
#include "selfsup/data.h"
#include "testutil.h"

#include <time.h>

/* 3x2x2 images; pixel k of image i = (3*i + k) % 256; label i % 7. */
static void make_set(ss_dataset *d, int64_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->c = 3;
    d->h = d->w = 2;
    d->pixels = malloc((size_t)n * 12);
    d->labels = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < 12; k++) d->pixels[i * 12 + k] = (uint8_t)((3 * i + k) % 256);
        d->labels[i] = (int32_t)(i % 7);
    }
    snprintf(d->source, sizeof d->source, "synthetic");
}

/* Adds uniform noise scaled by ctx (a float). */
static void noise(void *ctx, float *img, int c, int h, int w, ss_rng *r)
{
    float s = *(const float *)ctx;
    for (int i = 0; i < c * h * w; i++) img[i] += s * ss_rng_uniform(r);
}

static void slow(void *ctx, float *img, int c, int h, int w, ss_rng *r)
{
    (void)ctx;
    (void)c;
    (void)h;
    (void)w;
    struct timespec ts = {0, 200000}; /* 0.2 ms */
    nanosleep(&ts, NULL);
    img[0] += ss_rng_uniform(r);
}

static float s1 = 0.1f, s2 = 0.5f;

static ss_loader_opts opts(int workers, int prefetch)
{
    ss_loader_opts o = {0};
    o.batch = 10;
    o.shuffle = 1;
    o.seed = 42;
    o.workers = workers;
    o.prefetch = prefetch;
    o.views = 2;
    o.transform[0] = noise;
    o.transform_ctx[0] = &s1;
    o.transform[1] = noise;
    o.transform_ctx[1] = &s2;
    return o;
}

/* A copy of one batch for comparisons. */
typedef struct rec {
    int64_t n, epoch, bi;
    float x0[120], x1[120];
    int32_t idx[10], y[10];
} rec;

static void save(rec *r, const ss_batch *b)
{
    r->n = b->n;
    r->epoch = b->epoch;
    r->bi = b->index_in_epoch;
    memcpy(r->x0, b->x[0], (size_t)b->n * 12 * sizeof(float));
    memcpy(r->x1, b->x[1], (size_t)b->n * 12 * sizeof(float));
    memcpy(r->idx, b->idx, (size_t)b->n * 4);
    memcpy(r->y, b->y, (size_t)b->n * 4);
}

static int same(const rec *a, const rec *b)
{
    return a->n == b->n && a->epoch == b->epoch && a->bi == b->bi &&
           !memcmp(a->x0, b->x0, (size_t)a->n * 12 * sizeof(float)) &&
           !memcmp(a->x1, b->x1, (size_t)a->n * 12 * sizeof(float)) && !memcmp(a->idx, b->idx, (size_t)a->n * 4) &&
           !memcmp(a->y, b->y, (size_t)a->n * 4);
}

#define NB 33 /* 3 epochs of 11 batches (103 images, batch 10) */

static void run(const ss_dataset *d, int workers, int prefetch, rec *out)
{
    ss_loader *L;
    ss_loader_opts o = opts(workers, prefetch);
    CHECK_OK(ss_loader_new(d, &o, &L));
    if (!L) return;
    for (int i = 0; i < NB; i++) {
        ss_batch b;
        CHECK_OK(ss_loader_next(L, &b));
        save(&out[i], &b);
    }
    CHECK(ss_loader_wait_seconds(L) >= 0);
    ss_loader_free(L);
}

static rec A[NB], B[NB];

static void test_coverage_and_values(const ss_dataset *d)
{
    run(d, 1, 2, A);
    CHECK(ss_loader_batches_per_epoch(NULL) == 0);
    for (int e = 0; e < 3; e++) {
        char seen[103] = {0};
        int ok = 1;
        for (int b = 0; b < 11; b++) {
            const rec *r = &A[e * 11 + b];
            ok &= r->epoch == e && r->bi == b && r->n == (b < 10 ? 10 : 3);
            for (int64_t i = 0; i < r->n; i++) {
                seen[r->idx[i]]++;
                ok &= r->y[i] == r->idx[i] % 7;
                /* view 0 = pixel/255 + 0.1*u, view 1 = pixel/255 + 0.5*u */
                for (int k = 0; k < 12; k++) {
                    float base = (float)((3 * r->idx[i] + k) % 256) / 255.0f;
                    float d0 = r->x0[i * 12 + k] - base, d1 = r->x1[i * 12 + k] - base;
                    ok &= d0 >= 0 && d0 < 0.1f + 1e-6f && d1 >= 0 && d1 < 0.5f + 1e-6f;
                }
            }
        }
        for (int i = 0; i < 103; i++) ok &= seen[i] == 1;
        CHECK_MSG(ok, "epoch %d coverage/values", e);
    }
    /* Shuffled, and differently per epoch. */
    CHECK(memcmp(A[0].idx, A[11].idx, 40) != 0);
    int ascending = 1;
    for (int i = 1; i < 10; i++) ascending &= A[0].idx[i] > A[0].idx[i - 1];
    CHECK(!ascending);
    /* Views differ. */
    CHECK(memcmp(A[0].x0, A[0].x1, 480) != 0);
}

static void test_determinism(const ss_dataset *d)
{
    run(d, 3, 4, B);
    int ok = 1;
    for (int i = 0; i < NB; i++) ok &= same(&A[i], &B[i]);
    CHECK_MSG(ok, "1 worker vs 3 workers");
    run(d, 2, 1, B);
    ok = 1;
    for (int i = 0; i < NB; i++) ok &= same(&A[i], &B[i]);
    CHECK_MSG(ok, "1 worker vs 2 workers, prefetch 1");

    /* seek(1, 3) on a fresh loader gives the 4th batch of epoch 1 and then continues. */
    ss_loader *L;
    ss_loader_opts o = opts(3, 2);
    CHECK_OK(ss_loader_new(d, &o, &L));
    ss_batch b;
    rec r;
    CHECK_OK(ss_loader_seek(L, 1, 3));
    for (int i = 0; i < 12; i++) {
        CHECK_OK(ss_loader_next(L, &b));
        save(&r, &b);
        CHECK_MSG(same(&r, &A[14 + i]), "after seek, batch %d", i);
    }
    /* Seek back mid-run, with workers busy. */
    CHECK_OK(ss_loader_seek(L, 0, 0));
    CHECK_OK(ss_loader_next(L, &b));
    save(&r, &b);
    CHECK(same(&r, &A[0]));
    CHECK(ss_loader_seek(L, 0, 11) == SS_ERR_RANGE);
    CHECK(ss_loader_seek(L, -1, 0) == SS_ERR_RANGE);
    ss_loader_free(L);
}

static void test_options(const ss_dataset *d)
{
    ss_loader *L;
    ss_batch b;
    /* drop_last, no shuffle, subset, normalisation, one view. */
    int32_t sub[25];
    for (int i = 0; i < 25; i++) sub[i] = 4 * i;
    ss_loader_opts o = {.batch = 8, .drop_last = 1, .indices = sub, .nindices = 25, .views = 1,
                        .mean = {0.5f, 0.25f, 0.0f}, .std = {0.5f, 0.25f, 2.0f}};
    CHECK_OK(ss_loader_new(d, &o, &L));
    CHECK(ss_loader_batches_per_epoch(L) == 3);
    for (int k = 0; k < 4; k++) {
        CHECK_OK(ss_loader_next(L, &b));
        CHECK(b.n == 8 && b.views == 1 && b.x[1] == NULL && b.epoch == k / 3 && b.index_in_epoch == k % 3);
        CHECK(b.idx[0] == 32 * (k % 3)); /* unshuffled: 0, 32, 64 */
        int i = b.idx[1];
        /* channel 1, pixel 2: ((3i + 6) % 256 / 255 - 0.25) / 0.25 */
        float want = ((float)((3 * i + 6) % 256) / 255.0f - 0.25f) * (1.0f / 0.25f);
        CHECK_NEAR(b.x[0][12 + 6], want, 1e-6);
        CHECK(b.c == 3 && b.h == 2 && b.w == 2);
    }
    ss_loader_free(L);

    /* Errors. */
    o = (ss_loader_opts){.batch = 0};
    CHECK(ss_loader_new(d, &o, &L) == SS_ERR_INVALID && L == NULL);
    o = (ss_loader_opts){.batch = 4, .views = 5};
    CHECK(ss_loader_new(d, &o, &L) == SS_ERR_INVALID);
    sub[7] = 103;
    o = (ss_loader_opts){.batch = 4, .indices = sub, .nindices = 25};
    CHECK(ss_loader_new(d, &o, &L) == SS_ERR_RANGE);
    CHECK(strstr(ss_errmsg(), "index 103 at position 7") != NULL);
    o = (ss_loader_opts){.batch = 200, .drop_last = 1};
    CHECK(ss_loader_new(d, &o, &L) == SS_ERR_INVALID);
    ss_loader_free(NULL);
}

/* An index list that repeats images (--semi oversamples the labelled set):
 * the epoch holds every position once, in the same order as a list of
 * distinct values would be shuffled; each repeat of an image gets its own
 * augmentation; the first occurrence keeps the stream an image without
 * repeats gets; and 1 and 3 workers (three batches) give the same bits. */
static void test_repeats(const ss_dataset *d)
{
    int32_t list[30];
    static int pos[3][20];
    static float px[3][20][12], all5[10][12];
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < 20; i++) list[i] = 50 + i;                             /* 50..69 once */
        for (int i = 20; i < 30; i++) list[i] = pass < 2 ? 5 : (i == 20 ? 5 : 50 + i); /* 5 ten times, or once + 71..79 */
        ss_loader_opts o = {.batch = 10, .shuffle = 1, .seed = 7, .views = 1, .indices = list, .nindices = 30,
                            .workers = pass == 1 ? 3 : 1, .prefetch = 3, .transform = {noise}, .transform_ctx = {&s2}};
        ss_loader *L;
        ss_batch b;
        CHECK_OK(ss_loader_new(d, &o, &L));
        float x5[10][12];
        int n5 = 0;
        for (int bi = 0; bi < 3; bi++) { /* one epoch, three batches (filled by different workers in pass 1) */
            CHECK_OK(ss_loader_next(L, &b));
            CHECK(b.n == 10);
            for (int i = 0; i < 10; i++) {
                int at = bi * 10 + i;
                if (b.idx[i] == 5 && n5 < 10) memcpy(x5[n5++], b.x[0] + i * 12, sizeof x5[0]);
                if (b.idx[i] >= 50 && b.idx[i] < 70) {
                    pos[pass][b.idx[i] - 50] = at;
                    memcpy(px[pass][b.idx[i] - 50], b.x[0] + i * 12, sizeof px[0][0]);
                }
            }
        }
        if (pass < 2) {
            CHECK(n5 == 10);
            int distinct = 1;
            for (int a = 0; a < n5; a++)
                for (int c = a + 1; c < n5; c++) distinct &= memcmp(x5[a], x5[c], sizeof x5[0]) != 0;
            CHECK_MSG(distinct, "repeats of one image share an augmentation");
            if (pass == 0) memcpy(all5, x5, sizeof all5);
        } else { /* no repeats: image 5 draws what its first occurrence drew with repeats */
            CHECK(n5 == 1);
            int found = 0;
            for (int k = 0; k < 10; k++) found |= !memcmp(all5[k], x5[0], sizeof x5[0]);
            CHECK_MSG(found, "the first occurrence of a repeated image changed its stream");
        }
        if (pass > 0) { /* same order and bits for 50..69: 3 workers, and a list without repeats */
            CHECK(!memcmp(pos[pass], pos[0], sizeof pos[0]));
            CHECK(!memcmp(px[pass], px[0], sizeof px[0]));
        }
        ss_loader_free(L);
    }
}

static void test_shutdown(const ss_dataset *d)
{
    /* Free while workers are mid-batch (slow transform), several times. */
    for (int rep = 0; rep < 5; rep++) {
        ss_loader *L;
        ss_loader_opts o = {.batch = 50, .shuffle = 1, .workers = 3, .prefetch = 3, .views = 1, .transform = {slow}};
        CHECK_OK(ss_loader_new(d, &o, &L));
        if (rep % 2) {
            ss_batch b;
            CHECK_OK(ss_loader_next(L, &b));
            CHECK(b.n == 50);
        }
        ss_loader_free(L);
    }
}

int main(void)
{
    ss_dataset d;
    make_set(&d, 103);
    test_coverage_and_values(&d);
    test_determinism(&d);
    test_options(&d);
    test_repeats(&d);
    test_shutdown(&d);
    ss_dataset_free(&d);
    TEST_MAIN_END();
}
