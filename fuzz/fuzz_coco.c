/* libFuzzer target for the COCO annotation reader: the input becomes
 * annotations.json beside one valid 8x8 PNG (a.png). ss_coco_load must
 * return a status with a message, never crash; a loaded set is consistent
 * (offsets monotone, classes in range, boxes finite). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selfsup/detect.h"
#include "selfsup/fileio.h"
#include "selfsup/plot.h"

static char root[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/ss_fuzz_coco_%d", (int)getpid());
        mkdir(root, 0755);
        unsigned char rgb[8 * 8 * 3];
        for (int i = 0; i < 8 * 8 * 3; i++) rgb[i] = (unsigned char)(i * 7);
        snprintf(path, sizeof path, "%s/a.png", root);
        if (ss_png_write_rgb(path, rgb, 8, 8) != SS_OK) abort();
    }
    if (size > 1 << 16) return 0;
    snprintf(path, sizeof path, "%s/annotations.json", root);
    if (ss_write_file_atomic(path, data, size) != SS_OK) return 0;
    ss_det_dataset d;
    ss_coco_opts o = {0, (size & 1) ? 16 : 0, 0};
    if (ss_coco_load(path, NULL, &o, &d) == SS_OK) {
        if (d.start[0] != 0 || d.start[d.images.n] != d.nobjs) abort();
        for (int64_t i = 0; i < d.images.n; i++)
            if (d.start[i + 1] < d.start[i]) abort();
        for (int64_t j = 0; j < d.nobjs; j++) {
            const ss_det_object *b = &d.objs[j];
            if (b->cls < 0 || b->cls >= d.images.nclasses) abort();
            if (!isfinite(b->box.x0) || !isfinite(b->box.y1) || b->box.x1 < b->box.x0 || b->box.y1 < b->box.y0) abort();
        }
    } else if (ss_errmsg()[0] == '\0') {
        abort();
    }
    ss_det_dataset_free(&d);
    return 0;
}
