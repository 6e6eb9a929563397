/* Pretext tasks: invariants checked directly, hand-computed losses, and each
 * method's loss falling on a small real Fashion-MNIST subset. */
#include <math.h>
#include <string.h>

#include "selfsup/augment.h"
#include "selfsup/data.h"
#include "selfsup/knn.h"
#include "selfsup/ssl.h"
#include "testutil.h"

static void test_rotation_labels(void)
{
    float x[2 * 3 * 4 * 4], out[8 * 3 * 4 * 4];
    int32_t y[8];
    for (int i = 0; i < 96; i++) x[i] = (float)i;
    ss_rotation_batch(x, 2, 3, 4, 4, out, y);
    for (int i = 0; i < 8; i++) CHECK(y[i] == i % 4);
    /* k=0 is the image itself; k=1 is torch.rot90(x, 1, (1,2)): out[c,i,j] = x[c,j,W-1-i] */
    CHECK(memcmp(out, x, 48 * sizeof(float)) == 0);
    int ok = 1;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) ok &= out[48 + c * 16 + i * 4 + j] == x[c * 16 + j * 4 + (3 - i)];
    CHECK_MSG(ok, "rotation by 90 degrees does not match torch.rot90");
    /* k=2 twice = identity */
    float back[48];
    ss_rotate90(out + 2 * 48, back, 3, 4, 4, 2);
    CHECK(memcmp(back, x, sizeof back) == 0);
}

static void test_mae_mask(void)
{
    int32_t keep_idx[8 * 49];
    float mask[8 * 49], mask2[8 * 49];
    int keep = ss_mae_random_mask(8, 49, 0.75f, 1, 2, keep_idx, mask);
    CHECK(keep == 12); /* MAE: int(49 * 0.25) */
    for (int i = 0; i < 8; i++) {
        int m = 0;
        for (int j = 0; j < 49; j++) m += mask[i * 49 + j] != 0;
        CHECK(m == 37);
        for (int j = 1; j < keep; j++) CHECK(keep_idx[i * keep + j] > keep_idx[i * keep + j - 1]);
        for (int j = 0; j < keep; j++) CHECK(mask[i * 49 + keep_idx[i * keep + j]] == 0);
    }
    CHECK(memcmp(mask, mask + 49, 49 * sizeof(float)) != 0); /* per-image masks */
    int32_t k2[8 * 49];
    ss_mae_random_mask(8, 49, 0.75f, 1, 2, k2, mask2);
    CHECK(memcmp(mask, mask2, sizeof mask) == 0); /* deterministic */
    /* 16 patches, 75%: exactly 12 masked */
    CHECK(ss_mae_random_mask(1, 16, 0.75f, 3, 0, k2, mask2) == 4);

    /* The loss scores only masked patches. */
    ss_graph *g = ss_graph_new();
    float pred[2 * 4 * 3], tgt[2 * 4 * 3], m[8] = {1, 0, 0, 1, 0, 1, 0, 0};
    for (int i = 0; i < 24; i++) {
        pred[i] = 0.1f * i;
        tgt[i] = 1.0f;
    }
    ss_tensor *p = ss_wrap(g, pred, 3, (int64_t[]){2, 4, 3});
    ss_tensor *l1 = ss_mae_masked_loss(g, p, tgt, m);
    double ref = 0;
    for (int r = 0; r < 8; r++)
        if (m[r] != 0)
            for (int k = 0; k < 3; k++) ref += (pred[r * 3 + k] - 1.0) * (pred[r * 3 + k] - 1.0);
    CHECK_NEAR(l1->data[0], ref / 9.0, 1e-5);
    pred[1 * 3 + 0] += 5.0f; /* a visible patch: no change */
    ss_tensor *l2 = ss_mae_masked_loss(g, ss_wrap(g, pred, 3, (int64_t[]){2, 4, 3}), tgt, m);
    CHECK(l2->data[0] == l1->data[0]);
    pred[0] += 5.0f; /* a masked patch: changes */
    ss_tensor *l3 = ss_mae_masked_loss(g, ss_wrap(g, pred, 3, (int64_t[]){2, 4, 3}), tgt, m);
    CHECK(l3->data[0] != l1->data[0]);
    ss_graph_free(g);
}

static void test_ntxent(void)
{
    /* 2 images x 2 views: rows 0,1 are view 1, rows 2,3 view 2; positives (0,2), (1,3). */
    float z[4 * 3] = {1, 0, 0.5f, 0.2f, 1, 0, 0.9f, 0.1f, 0.4f, 0, 1, 0.3f};
    ss_graph *g = ss_graph_new();
    ss_tensor *l = ss_ntxent(g, ss_wrap(g, z, 2, (int64_t[]){4, 3}), 0.2f);
    double zn[4][3], tot = 0;
    for (int i = 0; i < 4; i++) {
        double n = sqrt(z[i * 3] * z[i * 3] + z[i * 3 + 1] * z[i * 3 + 1] + z[i * 3 + 2] * z[i * 3 + 2]);
        for (int k = 0; k < 3; k++) zn[i][k] = z[i * 3 + k] / n;
    }
    for (int i = 0; i < 4; i++) {
        int pos = (i + 2) % 4;
        double den = 0, num = 0;
        for (int j = 0; j < 4; j++) {
            if (j == i) continue;
            double s = (zn[i][0] * zn[j][0] + zn[i][1] * zn[j][1] + zn[i][2] * zn[j][2]) / 0.2;
            den += exp(s);
            if (j == pos) num = s;
        }
        tot += -(num - log(den));
    }
    CHECK_NEAR(l->data[0], tot / 4, 1e-5);
    ss_graph_free(g);
}

static void test_vicreg(void)
{
    float a[4 * 3] = {1, 2, 0, 0, 1, 1, 2, 0, 1, 1, 1, 0}, b[4 * 3] = {1, 1, 0, 0, 2, 1, 2, 1, 1, 0, 0, 0};
    ss_graph *g = ss_graph_new();
    float terms[3];
    ss_tensor *l = ss_vicreg_loss(g, ss_wrap(g, a, 2, (int64_t[]){4, 3}), ss_wrap(g, b, 2, (int64_t[]){4, 3}), terms);
    double inv = 0;
    for (int i = 0; i < 12; i++) inv += (a[i] - b[i]) * (a[i] - b[i]);
    inv /= 12;
    double var = 0, cov = 0;
    const float *zs[2] = {a, b};
    for (int z = 0; z < 2; z++) {
        double mu[3] = {0}, c[3][3] = {{0}};
        for (int i = 0; i < 4; i++)
            for (int d = 0; d < 3; d++) mu[d] += zs[z][i * 3 + d] / 4.0;
        for (int i = 0; i < 4; i++)
            for (int d = 0; d < 3; d++)
                for (int e = 0; e < 3; e++) c[d][e] += (zs[z][i * 3 + d] - mu[d]) * (zs[z][i * 3 + e] - mu[e]) / 3.0;
        double v = 0, cv = 0;
        for (int d = 0; d < 3; d++) {
            double sd = sqrt(c[d][d] + 1e-4);
            v += (1 - sd > 0 ? 1 - sd : 0) / 3.0;
            for (int e = 0; e < 3; e++)
                if (d != e) cv += c[d][e] * c[d][e] / 3.0;
        }
        var += v / 2;
        cov += cv;
    }
    CHECK_NEAR(terms[0], inv, 1e-5);
    CHECK_NEAR(terms[1], var, 1e-5);
    CHECK_NEAR(terms[2], cov, 1e-5);
    CHECK_NEAR(l->data[0], 25 * inv + 25 * var + cov, 1e-4);
    ss_graph_free(g);
}

/* Train a method for a few steps on real images; the loss must fall. */
static void loss_falls(const char *method, const ss_dataset *d, int steps, double *first, double *last)
{
    const ss_method *meth = ss_method_find(method);
    ss_encoder_config ec = {.kind = meth->default_encoder, .in_chans = 1, .img_size = 28};
    ss_model m;
    void *state = NULL;
    ss_method_opts mo;
    memset(&mo, 0, sizeof mo);
    CHECK_OK(ss_model_create(&m, &ec, 0));
    CHECK_OK(meth->create(&m, &mo, &state));
    CHECK_OK(ss_model_finalize(&m, 1));
    if (meth->setup) CHECK_OK(meth->setup(state, &m));
    ss_augment *aug = NULL;
    CHECK_OK(ss_augment_parse(meth->default_augment(1, 28), &aug));
    ss_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.batch = 32;
    lo.shuffle = 1;
    lo.drop_last = 1;
    lo.seed = 3;
    lo.views = meth->views;
    for (int v = 0; v < meth->views; v++) {
        lo.transform[v] = ss_augment_transform;
        lo.transform_ctx[v] = aug;
    }
    lo.mean[0] = 0.286f;
    lo.std[0] = 0.353f;
    ss_loader *L = NULL;
    CHECK_OK(ss_loader_new(d, &lo, &L));
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    oc.weight_decay = meth->default_wd;
    ss_optimizer *o = NULL;
    CHECK_OK(ss_opt_new(m.p, &oc, &o));
    ss_graph *g = ss_graph_new();
    double l0 = 0, l1 = 0;
    for (int s = 0; s < steps; s++) {
        ss_batch b;
        CHECK_OK(ss_loader_next(L, &b));
        ss_graph_reset(g);
        ss_params_zero_grad(m.p);
        double c = 0, n = 0;
        ss_tensor *loss = meth->loss(state, g, &m, &b, &c, &n);
        if (!loss) {
            CHECK_MSG(0, "%s: %s", method, ss_graph_errmsg(g));
            break;
        }
        if (s < 3) l0 += loss->data[0] / 3;
        if (s >= steps - 3) l1 += loss->data[0] / 3;
        CHECK_OK(ss_backward(g, loss));
        ss_opt_step(o, meth->default_lr);
        if (meth->after_step) meth->after_step(state, &m, (s + 1.0) / steps);
    }
    *first = l0;
    *last = l1;
    ss_graph_free(g);
    ss_opt_free(o);
    ss_loader_free(L);
    ss_augment_free(aug);
    if (meth->destroy) meth->destroy(state);
    ss_model_free(&m);
}

/* The k-NN monitor on part of a class-ordered test set scores the images
 * spread over it (ss_indices_spread), with their own labels: equal to
 * features + ss_knn_classify computed by hand on those images. */
static void test_knn_partial(const ss_dataset *d)
{
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    ss_model m;
    CHECK_OK(ss_model_create(&m, &ec, 10));
    CHECK_OK(ss_model_finalize(&m, 3));
    int64_t n = d->n, px = (int64_t)d->c * d->h * d->w, nq = n / 2;
    ss_dataset q = *d; /* the same images, sorted by class */
    q.pixels = malloc((size_t)(n * px));
    q.labels = malloc(sizeof(int32_t) * (size_t)n);
    int64_t k = 0;
    for (int c = 0; c < d->nclasses; c++)
        for (int64_t i = 0; i < n; i++)
            if (d->labels[i] == c) {
                memcpy(q.pixels + k * px, d->pixels + i * px, (size_t)px);
                q.labels[k++] = c;
            }
    q.n = k;
    nq = k / 2;
    double a20, a200, b20, b200;
    CHECK_OK(ss_knn_eval(&m, d, NULL, n, &q, nq, 0.07f, &a20, &a200));
    int D = m.enc->feat_dim;
    float *bank = malloc(sizeof(float) * (size_t)(n * D)), *qf = malloc(sizeof(float) * (size_t)(nq * D));
    int32_t *qi = ss_indices_spread(q.n, nq), *qy = malloc(sizeof(int32_t) * (size_t)nq);
    CHECK_OK(ss_extract_features(&m, d, NULL, n, 256, bank));
    CHECK_OK(ss_extract_features(&m, &q, qi, nq, 256, qf));
    int classes_seen[10] = {0}, nseen = 0;
    for (int64_t i = 0; i < nq; i++) {
        qy[i] = q.labels[qi[i]];
        if (qy[i] >= 0 && qy[i] < 10 && !classes_seen[qy[i]]++) nseen++;
    }
    CHECK_OK(ss_knn_classify(bank, d->labels, n, qf, qy, nq, D, d->nclasses, 0.07f, &b20, &b200));
    printf("knn on %lld of %lld class-ordered test images (%d classes): %.4f / %.4f\n", (long long)nq,
           (long long)q.n, nseen, a20, a200);
    CHECK(nseen == 10);
    CHECK_NEAR(a20, b20, 1e-12);
    CHECK_NEAR(a200, b200, 1e-12);
    free(bank);
    free(qf);
    free(qi);
    free(qy);
    free(q.pixels);
    free(q.labels);
    ss_model_free(&m);
}

int main(void)
{
    test_rotation_labels();
    test_mae_mask();
    test_ntxent();
    test_vicreg();
    ss_dataset d;
    ss_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.split = "train";
    lo.max_images = 640;
    if (ss_dataset_load("/usr/share/datasets/fashion-mnist", &lo, &d) != SS_OK) {
        printf("skipping loss-falls checks: %s\n", ss_errmsg());
        TEST_MAIN_END();
    }
    test_knn_partial(&d);
    int sanitized = getenv("SS_SANITIZED") != NULL;
    const char *methods[] = {"rotation", "simclr", "mae", "byol", "vicreg"};
    for (int i = 0; i < 5; i++) {
        double a, b;
        loss_falls(methods[i], &d, sanitized ? 12 : 20, &a, &b);
        printf("%-9s loss %.4f -> %.4f\n", methods[i], a, b);
        CHECK_MSG(b < a * 0.97, "%s: loss did not fall (%.4f -> %.4f)", methods[i], a, b);
    }
    /* BYOL: the target is the EMA of the online network. */
    {
        const ss_method *meth = ss_method_find("byol");
        ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
        ss_model m;
        void *st = NULL;
        ss_method_opts mo;
        memset(&mo, 0, sizeof mo);
        mo.ema_base = 0.9f;
        CHECK_OK(ss_model_create(&m, &ec, 0));
        CHECK_OK(meth->create(&m, &mo, &st));
        CHECK_OK(ss_model_finalize(&m, 1));
        CHECK_OK(meth->setup(st, &m));
        ss_params *tp = ss_byol_target(st);
        ss_tensor *on = ss_params_find(m.p, "encoder.blocks.2.conv.weight");
        ss_tensor *tg = ss_params_find(tp, "encoder.blocks.2.conv.weight");
        ss_tensor *tpred = ss_params_find(tp, "predictor.fc1.weight");
        CHECK(on && tg && tpred == NULL); /* the target has no predictor */
        CHECK(memcmp(on->data, tg->data, sizeof(float) * (size_t)on->numel) == 0);
        float old = tg->data[5];
        on->data[5] += 1.0f; /* as if the online network had been updated */
        meth->after_step(st, &m, 0.0); /* progress 0: tau = ema_base = 0.9 */
        CHECK_NEAR(tg->data[5], 0.9 * old + 0.1 * on->data[5], 1e-6);
        meth->after_step(st, &m, 1.0); /* progress 1: tau = 1, frozen */
        float t1 = tg->data[5];
        on->data[5] += 1.0f;
        meth->after_step(st, &m, 1.0);
        CHECK(tg->data[5] == t1);
        meth->destroy(st);
        ss_model_free(&m);
    }
    ss_dataset_free(&d);
    TEST_MAIN_END();
}
