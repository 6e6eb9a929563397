/* Data-parallel building blocks in one process: the single-process
 * fallbacks of selfsup/dist.h, the loader's rank shards (W ranks with batch
 * B see exactly one process' batches of W*B) and synchronised batch norm
 * (a reducer that doubles every sum stands in for a second rank holding the
 * same data, which must equal plain batch norm over [x; x]). The multi-
 * process runs are in test_dist_mpi.c. */
#include "selfsup/data.h"
#include "selfsup/dist.h"
#include "selfsup/ops.h"
#include "testutil.h"

/* 1x3x3 images; pixel k of image i = (5*i + k) % 256; label i % 10. */
static void make_set(ss_dataset *d, int64_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->c = 1;
    d->h = d->w = 3;
    d->pixels = malloc((size_t)n * 9);
    d->labels = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < 9; k++) d->pixels[i * 9 + k] = (uint8_t)((5 * i + k) % 256);
        d->labels[i] = (int32_t)(i % 10);
    }
    snprintf(d->source, sizeof d->source, "synthetic");
}

static void noise(void *ctx, float *img, int c, int h, int w, ss_rng *r)
{
    (void)ctx;
    for (int i = 0; i < c * h * w; i++) img[i] += 0.25f * ss_rng_uniform(r);
}

static ss_loader_opts lopts(int batch, int rank, int world)
{
    ss_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch = batch;
    o.shuffle = 1;
    o.seed = 7;
    o.workers = 2;
    o.views = 2;
    o.transform[0] = o.transform[1] = noise;
    o.rank = rank;
    o.world = world;
    return o;
}

static void test_fallbacks(void)
{
    CHECK_OK(ss_dist_init(NULL, NULL)); /* not started by mpirun: single process */
    CHECK(ss_dist_rank() == 0);
    CHECK(ss_dist_world() == 1);
    float v[3] = {1.5f, -2.0f, 4.0f};
    CHECK_OK(ss_dist_allreduce_mean(v, 3));
    CHECK_OK(ss_dist_allreduce_sum(v, 3));
    CHECK_OK(ss_dist_broadcast(v, 3, 0));
    CHECK(v[0] == 1.5f && v[1] == -2.0f && v[2] == 4.0f);
    double d[2] = {3.0, 5.0};
    ss_dist_batch_reduce(d, 2);
    CHECK(d[0] == 3.0 && d[1] == 5.0);
    CHECK(ss_dist_bytes_reduced() == 0);
    ss_graph *g = ss_graph_new();
    ss_tensor *x = ss_new2(g, 2, 3);
    for (int i = 0; i < 6; i++) x->data[i] = (float)i;
    CHECK(ss_dist_allgather_rows(g, x) == x);
    CHECK(ss_dist_allgather_rows(g, NULL) == NULL);
    ss_graph_free(g);
    ss_dist_finalize();
    CHECK(ss_dist_world() == 1);
}

static void test_loader_shards(void)
{
    ss_dataset d;
    make_set(&d, 103);
    ss_loader *one = NULL, *r0 = NULL, *r1 = NULL;
    ss_loader_opts o1 = lopts(10, 0, 0), a = lopts(5, 0, 2), b = lopts(5, 1, 2);
    o1.drop_last = 1;
    CHECK_OK(ss_loader_new(&d, &o1, &one));
    CHECK_OK(ss_loader_new(&d, &a, &r0));
    CHECK_OK(ss_loader_new(&d, &b, &r1));
    CHECK(ss_loader_batches_per_epoch(one) == 10);
    CHECK(ss_loader_batches_per_epoch(r0) == 10); /* 103 / (2*5), partial dropped */
    CHECK(ss_loader_batches_per_epoch(r1) == 10);
    int same = 1, offs = 1;
    for (int step = 0; step < 25; step++) { /* crosses two epoch boundaries */
        ss_batch B, P, Q;
        CHECK_OK(ss_loader_next(one, &B));
        size_t per = 9;
        float *xb0 = malloc(sizeof(float) * 10 * per), *xb1 = malloc(sizeof(float) * 10 * per);
        int32_t idx[10];
        memcpy(xb0, B.x[0], sizeof(float) * 10 * per);
        memcpy(xb1, B.x[1], sizeof(float) * 10 * per);
        memcpy(idx, B.idx, sizeof idx);
        CHECK_OK(ss_loader_next(r0, &P));
        CHECK_OK(ss_loader_next(r1, &Q));
        offs &= P.offset == 0 && Q.offset == 5 && B.offset == 0 && P.n == 5 && Q.n == 5;
        offs &= P.epoch == B.epoch && Q.index_in_epoch == B.index_in_epoch;
        for (int i = 0; i < 5; i++) {
            same &= P.idx[i] == idx[i] && Q.idx[i] == idx[5 + i];
            same &= P.y[i] == d.labels[idx[i]];
        }
        same &= !memcmp(P.x[0], xb0, sizeof(float) * 5 * per) && !memcmp(Q.x[0], xb0 + 5 * per, sizeof(float) * 5 * per);
        same &= !memcmp(P.x[1], xb1, sizeof(float) * 5 * per) && !memcmp(Q.x[1], xb1 + 5 * per, sizeof(float) * 5 * per);
        free(xb0);
        free(xb1);
    }
    CHECK(same);
    CHECK(offs);
    /* Seek (resume) lands on the same shard. */
    ss_batch P;
    CHECK_OK(ss_loader_seek(r1, 1, 3));
    CHECK_OK(ss_loader_seek(one, 1, 3));
    ss_batch B;
    CHECK_OK(ss_loader_next(one, &B));
    int32_t first = B.idx[5];
    CHECK_OK(ss_loader_next(r1, &P));
    CHECK(P.idx[0] == first && P.epoch == 1 && P.index_in_epoch == 3);
    ss_loader_free(one);
    ss_loader_free(r0);
    ss_loader_free(r1);
    /* Three ranks: floor(103 / 15) = 6 batches; rank 2 holds items 10..14. */
    ss_loader_opts c = lopts(5, 2, 3);
    ss_loader *r2 = NULL;
    CHECK_OK(ss_loader_new(&d, &c, &r2));
    CHECK(ss_loader_batches_per_epoch(r2) == 6);
    ss_loader_free(r2);
    /* Bad shards are refused with a message. */
    ss_loader_opts bad = lopts(5, 2, 2);
    ss_loader *L = NULL;
    CHECK(ss_loader_new(&d, &bad, &L) == SS_ERR_INVALID && L == NULL);
    CHECK(strstr(ss_errmsg(), "rank 2 of world 2") != NULL);
    bad = lopts(60, 0, 2); /* 103 images < one global batch of 120 */
    CHECK(ss_loader_new(&d, &bad, &L) == SS_ERR_INVALID);
    ss_dataset_free(&d);
}

/* Two identical "ranks" through a reducer that doubles every sum. */
static void double_sums(double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] *= 2.0;
}

static ss_tensor *leaf(ss_graph *g, int ndim, const int64_t *shape, const float *v)
{
    ss_tensor *t = ss_new(g, ndim, shape);
    memcpy(t->data, v, sizeof(float) * (size_t)t->numel);
    t->flags |= SS_T_REQUIRES_GRAD;
    return t;
}

static void test_sync_bn(int spatial)
{
    enum { N = 4, C = 3 };
    const int S = spatial ? 4 : 1;
    const int64_t per = (int64_t)C * S;
    float x[2 * N * C * 4], w[2 * N * C * 4], gam[C] = {1.5f, 0.5f, -1.0f}, bet[C] = {0.1f, -0.2f, 0.3f};
    ss_rng r;
    ss_rng_seed(&r, 3, 1);
    for (int64_t i = 0; i < N * per; i++) {
        x[i] = x[N * per + i] = 3.0f + 2.0f * ss_rng_normal(&r); /* |mean| > std */
        w[i] = w[N * per + i] = ss_rng_normal(&r);
    }
    int64_t sh1[4] = {N, C, 2, 2}, sh2[4] = {2 * N, C, 2, 2}, shc[1] = {C};
    if (!spatial) sh1[2] = sh1[3] = sh2[2] = sh2[3] = 1;
    float rm1[C] = {0}, rv1[C] = {1, 1, 1}, rm2[C] = {0}, rv2[C] = {1, 1, 1};
    /* A: synchronised over two identical halves. */
    ss_graph *ga = ss_graph_new(), *gb = ss_graph_new();
    ss_graph_set_batch_reduce(ga, double_sums);
    CHECK(ss_graph_batch_reduce(ga) == double_sums);
    ss_tensor *xa = leaf(ga, 4, sh1, x), *gaa = leaf(ga, 1, shc, gam), *baa = leaf(ga, 1, shc, bet);
    ss_tensor *ya = ss_batch_norm(ga, xa, gaa, baa, ss_wrap(ga, rm1, 1, shc), ss_wrap(ga, rv1, 1, shc), 0.1f, 1e-5f);
    ss_tensor *la = ss_sum_all(ga, ss_mul(ga, ya, ss_wrap(ga, w, 4, sh1)));
    CHECK_OK(ss_backward(ga, la));
    /* B: plain batch norm over [x; x]. */
    ss_tensor *xb = leaf(gb, 4, sh2, x), *gbb = leaf(gb, 1, shc, gam), *bbb = leaf(gb, 1, shc, bet);
    ss_tensor *yb = ss_batch_norm(gb, xb, gbb, bbb, ss_wrap(gb, rm2, 1, shc), ss_wrap(gb, rv2, 1, shc), 0.1f, 1e-5f);
    ss_tensor *lb = ss_sum_all(gb, ss_mul(gb, yb, ss_wrap(gb, w, 4, sh2)));
    CHECK_OK(ss_backward(gb, lb));
    double ey = 0, ex = 0, eg = 0, er = 0;
    for (int64_t i = 0; i < N * per; i++) {
        ey = fmax(ey, fabs(ya->data[i] - yb->data[i]));
        ex = fmax(ex, fabs(xa->grad[i] - xb->grad[i]));
    }
    for (int c = 0; c < C; c++) {
        /* Each rank keeps its local gamma/beta sums; the two ranks together
         * (the step's gradient sum) make B's. */
        eg = fmax(eg, fabs(2 * gaa->grad[c] - gbb->grad[c]));
        eg = fmax(eg, fabs(2 * baa->grad[c] - bbb->grad[c]));
        er = fmax(er, fabs(rm1[c] - rm2[c]) + fabs(rv1[c] - rv2[c]));
    }
    CHECK_MSG(ey < 1e-5, "sync BN forward differs by %g (spatial %d)", ey, spatial);
    CHECK_MSG(ex < 1e-5, "sync BN dx differs by %g (spatial %d)", ex, spatial);
    CHECK_MSG(eg < 1e-4, "sync BN dgamma/dbeta differ by %g (spatial %d)", eg, spatial);
    CHECK_MSG(er < 1e-6, "sync BN running stats differ by %g (spatial %d)", er, spatial);
    /* Known value: running mean moved 10% of the way to the batch mean. */
    double mean0 = 0;
    for (int n = 0; n < N; n++)
        for (int s = 0; s < S; s++) mean0 += x[(n * C + 0) * S + s];
    mean0 /= N * S;
    CHECK_NEAR(rm1[0], 0.1 * mean0, 1e-5);
    ss_graph_free(ga);
    ss_graph_free(gb);
}

int main(void)
{
    test_fallbacks();
    test_loader_shards();
    test_sync_bn(1);
    test_sync_bn(0);
    TEST_MAIN_END();
}
