/* libFuzzer target for the dataset readers: the first byte picks the
 * format (IDX folder, CIFAR-10 .bin, CSV list, image folder) and the rest
 * becomes the file(s). ss_dataset_load must return a status, never crash,
 * and never allocate beyond the cap. */
#include "selfsup/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void put(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static void clean(void)
{
    static const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "x.bin", "list.csv",
                                  "a.png", "img/a.png", "img/b.jpg"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        unlink(path);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/ss_fuzz_data_%d", (int)getpid());
        mkdir(root, 0755);
        char img[300];
        snprintf(img, sizeof img, "%s/img", root);
        mkdir(img, 0755);
    }
    if (size < 2) return 0;
    clean();
    int kind = data[0] % 4;
    size_t split = 2 + (size_t)data[1] * (size - 2) / 256;
    const uint8_t *a = data + 2, *b = data + split;
    size_t na = split - 2, nb = size - split;
    char path[512];
    ss_load_opts o = {.max_bytes = (size_t)64 << 20};
    if (kind == 1) o.target_h = o.target_w = 8;
    switch (kind) {
    case 0:
        put("train-images-idx3-ubyte", a, na);
        put("train-labels-idx1-ubyte", b, nb);
        snprintf(path, sizeof path, "%s", root);
        break;
    case 1:
        put("x.bin", data + 2, size - 2);
        snprintf(path, sizeof path, "%s/x.bin", root);
        break;
    case 2:
        put("list.csv", a, na);
        put("a.png", b, nb);
        snprintf(path, sizeof path, "%s/list.csv", root);
        break;
    default:
        put("img/a.png", a, na);
        put("img/b.jpg", b, nb);
        snprintf(path, sizeof path, "%s/img", root);
        break;
    }
    ss_dataset d;
    if (ss_dataset_load(path, &o, &d) == SS_OK) ss_dataset_free(&d);
    return 0;
}
