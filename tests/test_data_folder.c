/* Image folders (class subfolders, flat, train/test root), CSV lists,
 * decode failures and bad rows; the shared CIFAR-10 JPEG folder when present. */
#include "selfsup/data.h"
#include "testutil.h"
#include "data_fixtures.h"

#include <time.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wsign-compare"
#pragma clang diagnostic ignored "-Wunused-parameter"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#include "stb_image_write.h"
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* An RGB image (HWC) whose pixel (y,x) channel ch = seed + 16*y + 4*x + ch. */
static void write_png(const char *rel, int w, int h, int comp, int seed)
{
    uint8_t px[64 * 64 * 4];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < comp; ch++) px[(y * w + x) * comp + ch] = (uint8_t)(seed + 16 * y + 4 * x + ch);
    if (!stbi_write_png(fx_path(rel), w, h, comp, px, w * comp)) {
        fprintf(stderr, "cannot write %s\n", rel);
        exit(2);
    }
}

static void write_solid(const char *rel, int w, int h, const uint8_t rgb[3])
{
    uint8_t px[64 * 64 * 3];
    for (int i = 0; i < w * h; i++) memcpy(px + 3 * i, rgb, 3);
    if (!stbi_write_png(fx_path(rel), w, h, 3, px, w * 3)) exit(2);
}

/* Copy a committed fixture (stb's JPEG writer trips UBSan, so the JPEG is
 * committed: tests/data/vision/blue16.jpg, 16x16 of RGB (5,60,250), q95). */
static void copy_fixture(const char *name, const char *rel)
{
    char src[1024];
    snprintf(src, sizeof src, "%s/vision/%s", tu_data_dir(), name);
    FILE *f = fopen(src, "rb");
    if (!f) {
        perror(src);
        exit(2);
    }
    uint8_t buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fx_write(rel, buf, n);
}

/* Expected CHW value for write_png's pattern. */
static int pat(int seed, int ch, int y, int x) { return (uint8_t)(seed + 16 * y + 4 * x + ch); }

static void test_class_folder(void)
{
    fx_mkdir("set");
    fx_mkdir("set/train");
    fx_mkdir("set/test");
    fx_mkdir("set/train/dog");
    fx_mkdir("set/train/cat");
    fx_mkdir("set/test/cat");
    fx_mkdir("set/test/dog");
    write_png("set/train/dog/b.png", 4, 3, 3, 1);
    write_png("set/train/dog/a.png", 4, 3, 3, 2);
    write_png("set/train/cat/z.png", 4, 3, 3, 3);
    fx_text("set/train/cat/notes.txt", "not an image");
    write_png("set/test/cat/x.png", 4, 3, 3, 9);
    write_png("set/test/dog/y.png", 4, 3, 3, 8);

    ss_dataset d;
    CHECK_OK(ss_dataset_load(fx_path("set/train"), NULL, &d));
    CHECK(d.n == 3 && d.c == 3 && d.h == 3 && d.w == 4);
    CHECK(d.nclasses == 2 && strcmp(d.class_names[0], "cat") == 0 && strcmp(d.class_names[1], "dog") == 0);
    /* Order: cat/z (seed 3), dog/a (2), dog/b (1). */
    CHECK(d.labels[0] == 0 && d.labels[1] == 1 && d.labels[2] == 1);
    int seeds[3] = {3, 2, 1}, ok = 1;
    for (int i = 0; i < 3; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++)
                    if (d.pixels[i * 36 + ch * 12 + y * 4 + x] != pat(seeds[i], ch, y, x)) ok = 0;
    CHECK(ok);
    ss_dataset_free(&d);

    /* The root holding train/ and test/ loads the split's subfolder. */
    ss_load_opts o = {.split = "test"};
    CHECK_OK(ss_dataset_load(fx_path("set"), &o, &d));
    CHECK(d.n == 2 && d.labels[0] == 0 && d.labels[1] == 1 && d.pixels[0] == 9);
    CHECK(strstr(d.source, "set/test") != NULL);
    ss_dataset_free(&d);

    char tp[1024];
    const char *split = NULL;
    CHECK_OK(ss_dataset_default_test_path(fx_path("set/train/"), tp, sizeof tp, &split));
    CHECK(strcmp(tp, fx_path("set/test")) == 0);
    CHECK_OK(ss_dataset_default_test_path(fx_path("set"), tp, sizeof tp, &split));
    CHECK(strcmp(tp, fx_path("set")) == 0 && strcmp(split, "test") == 0);

    /* Grey forced from RGB; resize to a target. */
    o = (ss_load_opts){.channels = 1, .target_h = 6, .target_w = 8};
    CHECK_OK(ss_dataset_load(fx_path("set/train"), &o, &d));
    CHECK(d.c == 1 && d.h == 6 && d.w == 8 && d.n == 3);
    {
        /* Top-left output pixel samples source (0,0) exactly (half-pixel, clamped). */
        int r = pat(3, 0, 0, 0), g = pat(3, 1, 0, 0), b = pat(3, 2, 0, 0);
        CHECK(abs((int)d.pixels[0] - ((77 * r + 150 * g + 29 * b) >> 8)) <= 1);
    }
    ss_dataset_free(&d);
}

static void test_sizes_and_flat(void)
{
    /* Differing sizes: resized to the first image's size. Solid colours stay solid. */
    fx_mkdir("mixed");
    fx_mkdir("mixed/a");
    const uint8_t red[3] = {200, 10, 30}, blue[3] = {5, 60, 250};
    write_solid("mixed/a/0.png", 4, 4, red);
    write_solid("mixed/a/1.png", 9, 7, blue);
    copy_fixture("blue16.jpg", "mixed/a/2.jpg");
    ss_dataset d;
    CHECK_OK(ss_dataset_load(fx_path("mixed"), NULL, &d));
    CHECK(d.n == 3 && d.h == 4 && d.w == 4 && d.c == 3 && d.nclasses == 1);
    int ok = 1;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 16; p++) {
            if (d.pixels[ch * 16 + p] != red[ch]) ok = 0;
            if (d.pixels[48 + ch * 16 + p] != blue[ch]) ok = 0;
            if (abs((int)d.pixels[96 + ch * 16 + p] - blue[ch]) > 4) ok = 0; /* JPEG, quality 95 */
        }
    CHECK(ok);
    ss_dataset_free(&d);

    /* Flat folder: unlabelled; grey PNGs forced to RGB replicate. */
    fx_mkdir("flat");
    write_png("flat/b.png", 5, 5, 1, 40);
    write_png("flat/a.png", 5, 5, 1, 20);
    ss_load_opts o = {.channels = 3};
    CHECK_OK(ss_dataset_load(fx_path("flat"), &o, &d));
    CHECK(d.n == 2 && d.c == 3 && d.nclasses == 0 && d.labels[0] == -1 && d.labels[1] == -1);
    CHECK(d.pixels[0] == 20 && d.pixels[25] == 20 && d.pixels[50] == 20 && d.pixels[75] == 40);
    CHECK(d.pixels[6] == pat(20, 0, 1, 1));
    ss_dataset_free(&d);
    o = (ss_load_opts){.max_images = 1};
    CHECK_OK(ss_dataset_load(fx_path("flat"), &o, &d));
    CHECK(d.n == 1 && d.c == 1 && d.pixels[0] == 20);
    ss_dataset_free(&d);

    /* Empty folder. */
    fx_mkdir("empty");
    CHECK(ss_dataset_load(fx_path("empty"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("empty") && fx_msg_has("no IDX"));
}

static void test_decode_failure(void)
{
    fx_mkdir("broken");
    fx_mkdir("broken/k");
    write_png("broken/k/0.png", 4, 4, 3, 0);
    fx_text("broken/k/1.png", "this is not a PNG file at all");
    write_png("broken/k/2.png", 4, 4, 3, 0);
    ss_dataset d;
    CHECK(ss_dataset_load(fx_path("broken"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("broken/k/1.png: cannot decode image: "));
    const char *why = strstr(ss_errmsg(), "image: ");
    CHECK(why && strlen(why) > 8); /* stb's reason follows */
    CHECK(d.pixels == NULL && d.labels == NULL);
    /* Truncated PNG. */
    {
        FILE *f = fopen(fx_path("broken/k/0.png"), "rb");
        uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fx_write("broken/k/1.png", buf, n / 2);
    }
    CHECK(ss_dataset_load(fx_path("broken"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("broken/k/1.png: cannot decode image"));
}

static void test_csv(void)
{
    fx_mkdir("csvimg");
    write_png("csvimg/p0.png", 3, 3, 3, 10);
    write_png("csvimg/p1.png", 3, 3, 3, 20);
    write_png("csvimg/p2.png", 3, 3, 3, 30);
    ss_dataset d;

    /* Header, class names (sorted: bird < zebra), an unlabelled row, CRLF. */
    fx_text("names.csv", "path,label\r\ncsvimg/p0.png,zebra\r\n\r\ncsvimg/p1.png, bird\r\ncsvimg/p2.png,\r\n");
    CHECK_OK(ss_dataset_load(fx_path("names.csv"), NULL, &d));
    CHECK(d.n == 3 && d.nclasses == 2 && strcmp(d.class_names[0], "bird") == 0 && strcmp(d.class_names[1], "zebra") == 0);
    CHECK(d.labels[0] == 1 && d.labels[1] == 0 && d.labels[2] == -1);
    CHECK(d.pixels[0] == 10 && d.pixels[27] == 20 && d.pixels[54] == 30);
    ss_dataset_free(&d);

    /* No header, integer labels. */
    fx_text("ints.csv", "csvimg/p2.png,4\ncsvimg/p0.png,0\n");
    CHECK_OK(ss_dataset_load(fx_path("ints.csv"), NULL, &d));
    CHECK(d.n == 2 && d.nclasses == 5 && d.labels[0] == 4 && d.labels[1] == 0 && d.pixels[0] == 30);
    ss_dataset_free(&d);

    /* Test split of a *train*.csv. */
    fx_text("my_train.csv", "csvimg/p0.png,1\n");
    fx_text("my_test.csv", "csvimg/p1.png,1\n");
    char tp[1024];
    CHECK_OK(ss_dataset_default_test_path(fx_path("my_train.csv"), tp, sizeof tp, NULL));
    CHECK(strcmp(tp, fx_path("my_test.csv")) == 0);

    /* Bad rows, each naming the file and line. */
    fx_text("three.csv", "path,label\ncsvimg/p0.png,1\ncsvimg/p1.png,1,extra\n");
    CHECK(ss_dataset_load(fx_path("three.csv"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("three.csv:3:") && fx_msg_has("more than two fields"));
    fx_text("missing.csv", "csvimg/p0.png,1\n\ncsvimg/nope.png,1\n");
    CHECK(ss_dataset_load(fx_path("missing.csv"), NULL, &d) == SS_ERR_IO);
    CHECK(fx_msg_has("missing.csv:3:") && fx_msg_has("nope.png") && fx_msg_has("not found"));
    fx_text("emptypath.csv", "csvimg/p0.png,1\n ,2\n");
    CHECK(ss_dataset_load(fx_path("emptypath.csv"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("emptypath.csv:2:") && fx_msg_has("empty image path"));
    fx_text("neg.csv", "csvimg/p0.png,1\ncsvimg/p1.png,-7\n");
    CHECK(ss_dataset_load(fx_path("neg.csv"), NULL, &d) == SS_ERR_RANGE);
    CHECK(fx_msg_has("neg.csv:2:") && fx_msg_has("-7"));
    fx_text("onlyheader.csv", "path,label\n");
    CHECK(ss_dataset_load(fx_path("onlyheader.csv"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("onlyheader.csv") && fx_msg_has("no image rows"));
    fx_text("firstmissing.csv", "gone.png,1\n");
    CHECK(ss_dataset_load(fx_path("firstmissing.csv"), NULL, &d) == SS_ERR_IO);
    CHECK(fx_msg_has("firstmissing.csv:1:"));
    fx_text("bad.csv", "csvimg/p0.png,1\ncsvimg/broken.png,1\n");
    fx_text("csvimg/broken.png", "garbage");
    CHECK(ss_dataset_load(fx_path("bad.csv"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("csvimg/broken.png: cannot decode image"));
    CHECK(ss_dataset_load(fx_path("nothing.csv"), NULL, &d) == SS_ERR_IO);
    CHECK(fx_msg_has("nothing.csv"));
    fx_text("unknown.dat", "x");
    CHECK(ss_dataset_load(fx_path("unknown.dat"), NULL, &d) == SS_ERR_UNSUPPORTED);
    CHECK(fx_msg_has("unknown.dat") && fx_msg_has("unknown data set format"));
}

static void test_cifar_jpg(void)
{
    const char *src = getenv("SS_SOURCE_DIR");
    char root[1024];
    snprintf(root, sizeof root, "%s/../shared/data/cifar10-jpg", src ? src : ".");
    struct stat st;
    if (stat(root, &st) != 0) {
        printf("skip: %s not present\n", root);
        return;
    }
    ss_dataset d;
    ss_load_opts o = {.split = "test"};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_OK(ss_dataset_load(root, &o, &d));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("cifar10-jpg/test: %lld images in %.2f s\n", (long long)d.n,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    CHECK(d.n == 10000 && d.c == 3 && d.h == 32 && d.w == 32 && d.nclasses == 10);
    CHECK(strcmp(d.class_names[0], "airplane") == 0 && strcmp(d.class_names[9], "truck") == 0);
    int64_t count[10] = {0};
    for (int64_t i = 0; i < d.n; i++) count[d.labels[i]]++;
    for (int k = 0; k < 10; k++) CHECK(count[k] == 1000);
    CHECK(d.labels[0] == 0 && d.labels[9999] == 9);
    ss_dataset_free(&d);
    char tp[1024];
    const char *split;
    snprintf(root + strlen(root), sizeof root - strlen(root), "/train");
    CHECK_OK(ss_dataset_default_test_path(root, tp, sizeof tp, &split));
    CHECK(strstr(tp, "cifar10-jpg/test") != NULL);
}

int main(void)
{
    fx_mkroot("folder");
    test_class_folder();
    test_sizes_and_flat();
    test_decode_failure();
    test_csv();
    test_cifar_jpg();
    fx_rmroot();
    TEST_MAIN_END();
}
