/* CIFAR-10 binary reader on small synthetic batches, and hostile files. */
#include "selfsup/data.h"
#include "testutil.h"
#include "data_fixtures.h"

#define REC 3073

/* Record i: label lab, pixel k = (7*i + k) & 255. */
static void make_rec(uint8_t *r, int i, int lab)
{
    r[0] = (uint8_t)lab;
    for (int k = 0; k < 3072; k++) r[1 + k] = (uint8_t)((7 * i + k) & 255);
}

static void write_batch(const char *rel, int first, int n, const int *labels)
{
    uint8_t *b = malloc((size_t)n * REC);
    for (int j = 0; j < n; j++) make_rec(b + (size_t)j * REC, first + j, labels ? labels[j] : (first + j) % 10);
    fx_write(rel, b, (size_t)n * REC);
    free(b);
}

static const char *names[10] = {"plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

static void test_good(void)
{
    fx_mkdir("c10");
    write_batch("c10/data_batch_1.bin", 0, 3, NULL);
    write_batch("c10/data_batch_2.bin", 3, 2, NULL);
    write_batch("c10/test_batch.bin", 100, 2, NULL);
    fx_text("c10/batches.meta.txt", "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");

    ss_dataset d;
    CHECK_OK(ss_dataset_load(fx_path("c10"), NULL, &d));
    CHECK(d.n == 5 && d.c == 3 && d.h == 32 && d.w == 32);
    CHECK(d.nclasses == 10);
    for (int k = 0; k < 10; k++) CHECK(strcmp(d.class_names[k], names[k]) == 0);
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        if (d.labels[i] != i % 10) ok = 0;
        for (int k = 0; k < 3072; k++)
            if (d.pixels[(size_t)i * 3072 + k] != (uint8_t)((7 * i + k) & 255)) ok = 0;
    }
    CHECK(ok);
    ss_dataset_free(&d);

    ss_load_opts o = {.split = "test"};
    CHECK_OK(ss_dataset_load(fx_path("c10"), &o, &d));
    CHECK(d.n == 2 && d.labels[0] == 0 && d.labels[1] == 1 && d.pixels[0] == (700 & 255));
    ss_dataset_free(&d);

    /* max_images spans files; grey conversion uses (77R+150G+29B)>>8. */
    o = (ss_load_opts){.max_images = 4, .channels = 1};
    CHECK_OK(ss_dataset_load(fx_path("c10"), &o, &d));
    CHECK(d.n == 4 && d.c == 1 && d.labels[3] == 3);
    {
        int i = 3, k = 5; /* pixel (0,5): R = 7i+k, G = 7i+1024+k, B = 7i+2048+k (mod 256) */
        int r = (7 * i + k) & 255, g = (7 * i + 1024 + k) & 255, b = (7 * i + 2048 + k) & 255;
        CHECK(d.pixels[(size_t)i * 1024 + k] == ((r * 77 + g * 150 + b * 29) >> 8));
    }
    ss_dataset_free(&d);

    /* A single .bin file. */
    CHECK_OK(ss_dataset_load(fx_path("c10/data_batch_2.bin"), NULL, &d));
    CHECK(d.n == 2 && d.labels[0] == 3 && strcmp(d.class_names[3], "cat") == 0);
    ss_dataset_free(&d);

    char tp[1024];
    const char *split = NULL;
    CHECK_OK(ss_dataset_default_test_path(fx_path("c10"), tp, sizeof tp, &split));
    CHECK(strcmp(tp, fx_path("c10")) == 0 && strcmp(split, "test") == 0);
    CHECK_OK(ss_dataset_default_test_path(fx_path("c10/data_batch_1.bin"), tp, sizeof tp, &split));
    CHECK(strcmp(tp, fx_path("c10/test_batch.bin")) == 0);

    /* Without batches.meta.txt: the CIFAR-10 names. */
    fx_mkdir("nometa");
    write_batch("nometa/data_batch_1.bin", 0, 1, NULL);
    CHECK_OK(ss_dataset_load(fx_path("nometa"), NULL, &d));
    CHECK(d.nclasses == 10 && strcmp(d.class_names[0], "airplane") == 0 && strcmp(d.class_names[9], "truck") == 0);
    ss_dataset_free(&d);
}

static void test_hostile(void)
{
    ss_dataset d;
    /* Size not a multiple of a record. */
    fx_mkdir("odd");
    write_batch("odd/data_batch_1.bin", 0, 2, NULL);
    {
        uint8_t *b = malloc(2 * REC);
        FILE *f = fopen(fx_path("odd/data_batch_1.bin"), "rb");
        size_t n = fread(b, 1, 2 * REC, f);
        fclose(f);
        fx_write("odd/data_batch_1.bin", b, n - 100);
        free(b);
    }
    CHECK(ss_dataset_load(fx_path("odd"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("odd/data_batch_1.bin") && fx_msg_has("6046 bytes") && fx_msg_has("3073-byte"));
    CHECK(d.pixels == NULL);

    /* Label >= class count (3 names in the meta file). */
    fx_mkdir("lab");
    int labs[3] = {0, 2, 3};
    write_batch("lab/data_batch_1.bin", 0, 3, labs);
    fx_text("lab/batches.meta.txt", "a\nb\nc\n");
    CHECK(ss_dataset_load(fx_path("lab"), NULL, &d) == SS_ERR_RANGE);
    CHECK(fx_msg_has("lab/data_batch_1.bin") && fx_msg_has("label 3 of record 2") && fx_msg_has("3 classes"));
    CHECK(d.pixels == NULL && d.labels == NULL);

    /* A gap in the batch numbers. */
    fx_mkdir("gap");
    write_batch("gap/data_batch_1.bin", 0, 1, NULL);
    write_batch("gap/data_batch_3.bin", 1, 1, NULL);
    CHECK(ss_dataset_load(fx_path("gap"), NULL, &d) == SS_ERR_IO);
    CHECK(fx_msg_has("gap") && fx_msg_has("no data_batch_2.bin"));

    /* Test split missing. */
    ss_load_opts o = {.split = "test"};
    CHECK(ss_dataset_load(fx_path("gap"), &o, &d) == SS_ERR_IO);
    CHECK(fx_msg_has("test_batch.bin"));

    /* Empty file. */
    fx_write("empty.bin", "", 0);
    CHECK(ss_dataset_load(fx_path("empty.bin"), NULL, &d) == SS_ERR_FORMAT);
    CHECK(fx_msg_has("empty.bin") && fx_msg_has("0 bytes"));
}

int main(void)
{
    fx_mkroot("cifar");
    test_good();
    test_hostile();
    fx_rmroot();
    TEST_MAIN_END();
}
