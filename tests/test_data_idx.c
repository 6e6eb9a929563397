/* IDX reader: real Fashion-MNIST, synthetic fixtures, resizing, and every
 * kind of hostile file. */
#include "selfsup/data.h"
#include "testutil.h"
#include "data_fixtures.h"

#define FASHION "/usr/share/datasets/fashion-mnist"

static int64_t image_sum(const ss_dataset *d, int64_t i)
{
    size_t per = (size_t)d->c * d->h * d->w;
    int64_t s = 0;
    for (size_t k = 0; k < per; k++) s += d->pixels[(size_t)i * per + k];
    return s;
}

static void test_fashion(void)
{
    struct stat st;
    if (stat(FASHION, &st) != 0) {
        printf("skip: %s not installed (Debian package dataset-fashion-mnist)\n", FASHION);
        return;
    }
    ss_dataset d;
    ss_load_opts o = {0};
    CHECK_OK(ss_dataset_load(FASHION, &o, &d));
    CHECK(d.n == 60000 && d.c == 1 && d.h == 28 && d.w == 28);
    static const int32_t first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++) CHECK(d.labels[i] == first[i]);
    CHECK(d.nclasses == 10);
    CHECK(strcmp(d.class_names[9], "Ankle boot") == 0);
    CHECK(strcmp(d.class_names[0], "T-shirt/top") == 0);
    CHECK(image_sum(&d, 0) == 76247);     /* values from Python's gzip module */
    CHECK(image_sum(&d, 59999) == 16684);
    int64_t count[10] = {0}, total = 0;
    for (int64_t i = 0; i < d.n; i++) count[d.labels[i]]++;
    for (int k = 0; k < 10; k++) CHECK(count[k] == 6000);
    for (size_t k = 0; k < (size_t)d.n * 784; k++) total += d.pixels[k];
    CHECK(total == 3431114169LL);
    CHECK(strstr(d.source, "train-images-idx3-ubyte") != NULL);
    ss_dataset_free(&d);
    CHECK(d.pixels == NULL && d.n == 0);

    char tp[1024];
    const char *split = NULL;
    CHECK_OK(ss_dataset_default_test_path(FASHION, tp, sizeof tp, &split));
    CHECK(strcmp(tp, FASHION) == 0 && split && strcmp(split, "test") == 0);
    o.split = split;
    CHECK_OK(ss_dataset_load(tp, &o, &d));
    CHECK(d.n == 10000 && d.h == 28);
    CHECK(d.labels[0] == 9 && d.labels[1] == 2 && d.labels[4] == 6);
    CHECK(image_sum(&d, 0) == 33456);
    CHECK(image_sum(&d, 9999) == 24390);
    ss_dataset_free(&d);

    /* First N, forced RGB and resized. */
    ss_load_opts q = {.max_images = 100, .channels = 3, .target_h = 56, .target_w = 56};
    CHECK_OK(ss_dataset_load(FASHION, &q, &d));
    CHECK(d.n == 100 && d.c == 3 && d.h == 56 && d.w == 56 && d.labels[0] == 9);
    size_t plane = 56 * 56;
    CHECK(memcmp(d.pixels, d.pixels + plane, plane) == 0 && memcmp(d.pixels, d.pixels + 2 * plane, plane) == 0);
    /* 2x bilinear upscale keeps the mean close: 3 * 4 * 76247 within rounding. */
    CHECK_NEAR((double)image_sum(&d, 0), 3.0 * 4.0 * 76247.0, 3.0 * 4.0 * 76247.0 * 0.01);
    ss_dataset_free(&d);

    /* The images file itself as the path; its labels are found by name. */
    q = (ss_load_opts){.max_images = 3};
    CHECK_OK(ss_dataset_load(FASHION "/t10k-images-idx3-ubyte.gz", &q, &d));
    CHECK(d.n == 3 && d.labels[0] == 9 && d.labels[1] == 2 && d.nclasses == 10);
    CHECK(strcmp(d.class_names[9], "Ankle boot") == 0);
    ss_dataset_free(&d);
    CHECK_OK(ss_dataset_default_test_path(FASHION "/train-images-idx3-ubyte.gz", tp, sizeof tp, &split));
    CHECK(strcmp(tp, FASHION "/t10k-images-idx3-ubyte.gz") == 0);
}

/* 5 images of 2x3, pixel k of image i = 10*i + k; labels 4,3,2,1,0. */
static uint8_t body[30], lab5[5] = {4, 3, 2, 1, 0};

static void write_good(const char *dir, int gz)
{
    size_t li, ll;
    uint8_t *im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    uint8_t *lb = fx_idx_labels(5, lab5, sizeof lab5, &ll);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte%s", dir, gz ? ".gz" : "");
    if (gz) {
        fx_write_gz(a, im, li, "wb");
        fx_write_gz(b, lb, ll, "wb");
    } else {
        fx_write(a, im, li);
        fx_write(b, lb, ll);
    }
    free(im);
    free(lb);
}

static void test_synthetic(void)
{
    for (int k = 0; k < 30; k++) body[k] = (uint8_t)(10 * (k / 6) + k % 6);
    fx_mkdir("plain");
    fx_mkdir("gz");
    write_good("plain", 0);
    write_good("gz", 1);
    for (int gz = 0; gz < 2; gz++) {
        ss_dataset d;
        CHECK_OK(ss_dataset_load(fx_path(gz ? "gz" : "plain"), NULL, &d));
        CHECK(d.n == 5 && d.c == 1 && d.h == 2 && d.w == 3);
        CHECK(memcmp(d.pixels, body, 30) == 0);
        for (int i = 0; i < 5; i++) CHECK(d.labels[i] == lab5[i]);
        CHECK(d.nclasses == 10 && strcmp(d.class_names[3], "3") == 0);
        ss_dataset_free(&d);
    }
    /* No test split in this folder. */
    char tp[512];
    CHECK(ss_dataset_default_test_path(fx_path("plain"), tp, sizeof tp, NULL) == SS_ERR_IO);
    CHECK(fx_msg_has(fx_path("plain")) && fx_msg_has("no test split"));
    ss_dataset d;
    ss_load_opts o = {.split = "test"};
    CHECK(ss_dataset_load(fx_path("plain"), &o, &d) != SS_OK);

    /* Concatenated gzip members: the trailer covers only the last member,
     * so the reader must measure the real size. */
    fx_mkdir("multi");
    size_t li, ll;
    uint8_t *im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    uint8_t *lb = fx_idx_labels(5, lab5, sizeof lab5, &ll);
    fx_write_gz("multi/train-images-idx3-ubyte.gz", im, 20, "wb");
    fx_write_gz("multi/train-images-idx3-ubyte.gz", im + 20, li - 20, "ab");
    fx_write("multi/train-labels-idx1-ubyte", lb, ll);
    CHECK_OK(ss_dataset_load(fx_path("multi"), NULL, &d));
    CHECK(d.n == 5 && memcmp(d.pixels, body, 30) == 0);
    ss_dataset_free(&d);
    free(im);
    free(lb);

    /* Without a labels file: unlabelled. */
    fx_mkdir("nolab");
    im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    fx_write("nolab/train-images-idx3-ubyte", im, li);
    free(im);
    CHECK_OK(ss_dataset_load(fx_path("nolab"), NULL, &d));
    CHECK(d.n == 5 && d.labels && d.labels[0] == -1 && d.nclasses == 0);
    ss_dataset_free(&d);
}

static void test_resize(void)
{
    /* One 2x2 image [0 100; 200 255] upscaled to 4x4 (half-pixel centres):
     * row/column weights 0, .25, .75, 1. */
    uint8_t px[4] = {0, 100, 200, 255};
    size_t li;
    uint8_t *im = fx_idx_images(0x803, 1, 2, 2, px, 4, &li);
    fx_mkdir("rs");
    fx_write("rs/train-images-idx3-ubyte", im, li);
    free(im);
    ss_dataset d;
    ss_load_opts o = {.target_h = 4, .target_w = 4};
    CHECK_OK(ss_dataset_load(fx_path("rs"), &o, &d));
    CHECK(d.h == 4 && d.w == 4 && d.c == 1);
    CHECK(d.pixels[0] == 0 && d.pixels[3] == 100 && d.pixels[12] == 200 && d.pixels[15] == 255);
    CHECK(d.pixels[5] == 72);  /* (0*.75+100*.25)*.75 + (200*.75+255*.25)*.25 = 72.19 */
    CHECK(d.pixels[1] == 25);  /* 100 * .25 */
    ss_dataset_free(&d);
    /* Downscale 2x2 -> 1x1: the mean of the four, rounded: 138.75 -> 139. */
    o = (ss_load_opts){.target_h = 1, .target_w = 1};
    CHECK_OK(ss_dataset_load(fx_path("rs"), &o, &d));
    CHECK(d.pixels[0] == 139);
    ss_dataset_free(&d);
    /* Bad options. */
    o = (ss_load_opts){.target_h = 4};
    CHECK(ss_dataset_load(fx_path("rs"), &o, &d) == SS_ERR_INVALID);
    o = (ss_load_opts){.channels = 2};
    CHECK(ss_dataset_load(fx_path("rs"), &o, &d) == SS_ERR_INVALID);
    o = (ss_load_opts){.split = "validation"};
    CHECK(ss_dataset_load(fx_path("rs"), &o, &d) == SS_ERR_INVALID);
    /* Allocation cap. */
    o = (ss_load_opts){.target_h = 1000, .target_w = 1000, .max_bytes = 100000};
    CHECK(ss_dataset_load(fx_path("rs"), &o, &d) == SS_ERR_NOMEM);
    CHECK(fx_msg_has("cap"));
}

/* Write one hostile case into folder `dir` (images + labels) and expect
 * status `want` with the message naming `file` and containing `cause`. */
static void expect_bad(const char *dir, ss_status want, const char *file, const char *cause)
{
    ss_dataset d;
    ss_status s = ss_dataset_load(fx_path(dir), NULL, &d);
    CHECK_MSG(s == want, "%s: got %d (%s), want %d", dir, (int)s, ss_errmsg(), (int)want);
    CHECK(fx_msg_has(file));
    CHECK(fx_msg_has(cause));
    CHECK(d.pixels == NULL && d.labels == NULL && d.n == 0);
}

static void test_hostile(void)
{
    size_t li, ll;
    uint8_t *im, *lb = fx_idx_labels(5, lab5, sizeof lab5, &ll);

    /* Truncated image data. */
    fx_mkdir("trunc");
    im = fx_idx_images(0x803, 5, 2, 3, body, 20, &li);
    fx_write("trunc/train-images-idx3-ubyte", im, li);
    fx_write("trunc/train-labels-idx1-ubyte", lb, ll);
    free(im);
    expect_bad("trunc", SS_ERR_FORMAT, "trunc/train-images-idx3-ubyte", "holds 36 bytes");

    /* Truncated gzip stream (cut in the middle). */
    fx_mkdir("truncgz");
    im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    fx_write_gz("truncgz/train-images-idx3-ubyte.gz", im, li, "wb");
    free(im);
    {
        FILE *f = fopen(fx_path("truncgz/train-images-idx3-ubyte.gz"), "rb");
        uint8_t buf[256];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fx_write("truncgz/train-images-idx3-ubyte.gz", buf, n / 2);
    }
    fx_write("truncgz/train-labels-idx1-ubyte", lb, ll);
    expect_bad("truncgz", SS_ERR_FORMAT, "truncgz/train-images-idx3-ubyte.gz", "gzip");

    /* Header shorter than 16 bytes. */
    fx_mkdir("short");
    im = fx_idx_images(0x803, 5, 2, 3, NULL, 0, &li);
    fx_write("short/train-images-idx3-ubyte", im, 10);
    free(im);
    expect_bad("short", SS_ERR_FORMAT, "short/train-images-idx3-ubyte", "truncated IDX header");

    /* Wrong magic (a labels file where images are expected). */
    fx_mkdir("magic");
    im = fx_idx_images(0x801, 5, 2, 3, body, sizeof body, &li);
    fx_write("magic/train-images-idx3-ubyte", im, li);
    free(im);
    expect_bad("magic", SS_ERR_FORMAT, "magic/train-images-idx3-ubyte", "magic 0x00000801");

    /* Dims whose product is far beyond the file (must fail before allocating). */
    fx_mkdir("huge");
    im = fx_idx_images(0x803, 0x7fffffffu, 65536, 65536, body, sizeof body, &li);
    fx_write("huge/train-images-idx3-ubyte", im, li);
    free(im);
    expect_bad("huge", SS_ERR_FORMAT, "huge/train-images-idx3-ubyte", "2147483647 images of 65536x65536");

    /* Dims whose product overflows 64 bits would need > 2^31 images or > 65536 sides: both rejected. */
    fx_mkdir("ovf");
    im = fx_idx_images(0x803, 0xffffffffu, 0xffffffffu, 0xffffffffu, body, sizeof body, &li);
    fx_write("ovf/train-images-idx3-ubyte", im, li);
    free(im);
    expect_bad("ovf", SS_ERR_FORMAT, "ovf/train-images-idx3-ubyte", "out of range");

    /* Zero-size images. */
    fx_mkdir("zero");
    im = fx_idx_images(0x803, 5, 0, 3, body, 0, &li);
    fx_write("zero/train-images-idx3-ubyte", im, li);
    free(im);
    expect_bad("zero", SS_ERR_FORMAT, "zero/train-images-idx3-ubyte", "0x3");

    /* Label count differs from image count. */
    fx_mkdir("count");
    im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    fx_write("count/train-images-idx3-ubyte", im, li);
    free(im);
    uint8_t *lb4 = fx_idx_labels(4, lab5, 4, &ll);
    fx_write("count/train-labels-idx1-ubyte", lb4, ll);
    free(lb4);
    expect_bad("count", SS_ERR_FORMAT, "count/train-labels-idx1-ubyte", "4 labels but");

    /* Labels file truncated. */
    fx_mkdir("ltrunc");
    im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    fx_write("ltrunc/train-images-idx3-ubyte", im, li);
    free(im);
    lb4 = fx_idx_labels(5, lab5, 3, &ll);
    fx_write("ltrunc/train-labels-idx1-ubyte", lb4, ll);
    free(lb4);
    expect_bad("ltrunc", SS_ERR_FORMAT, "ltrunc/train-labels-idx1-ubyte", "holds 11 bytes");

    /* Label >= class count: a folder named fashion-mnist has 10 classes. */
    fx_mkdir("fashion-mnist");
    im = fx_idx_images(0x803, 5, 2, 3, body, sizeof body, &li);
    fx_write("fashion-mnist/train-images-idx3-ubyte", im, li);
    free(im);
    uint8_t bad[5] = {1, 2, 10, 3, 4};
    lb4 = fx_idx_labels(5, bad, 5, &ll);
    fx_write("fashion-mnist/train-labels-idx1-ubyte", lb4, ll);
    free(lb4);
    ss_dataset d;
    CHECK(ss_dataset_load(fx_path("fashion-mnist"), NULL, &d) == SS_ERR_RANGE);
    CHECK(fx_msg_has("fashion-mnist/train-labels-idx1-ubyte") && fx_msg_has("label 10 of image 2"));
    CHECK(d.pixels == NULL);

    /* Missing path. */
    CHECK(ss_dataset_load(fx_path("does-not-exist"), NULL, &d) == SS_ERR_IO);
    CHECK(fx_msg_has("does-not-exist") && fx_msg_has("No such file"));
    CHECK(ss_dataset_default_test_path(fx_path("does-not-exist"), (char[64]){0}, 64, NULL) == SS_ERR_IO);
    free(lb);
}

int main(void)
{
    fx_mkroot("idx");
    test_fashion();
    test_synthetic();
    test_resize();
    test_hostile();
    fx_rmroot();
    TEST_MAIN_END();
}
