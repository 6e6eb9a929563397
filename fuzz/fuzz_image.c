/* libFuzzer target for image decoding (PNG, JPEG, BMP, GIF, TGA, PNM via
 * stb_image behind selfsup's size checks): any bytes decode to an image
 * within the limits or fail with a message; never crash, never allocate
 * for a huge declared size. */
#include <stdint.h>
#include <stdlib.h>

#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int req = data[0] % 5; /* 0 = native channels, else 1..4 */
    char err[512];
    int w, h, c;
    unsigned char *img = ss__image_decode_memory(data + 1, size - 1, "fuzz", req, &w, &h, &c, err, sizeof err);
    if (img) {
        if (w < 1 || h < 1 || w > SS_IMG_MAX_SIDE || h > SS_IMG_MAX_SIDE || (int64_t)w * h > SS_IMG_MAX_PIXELS) abort();
        int ch = req ? req : c;
        volatile unsigned sum = 0; /* touch every byte: ASan checks the size */
        for (int64_t i = 0; i < (int64_t)w * h * ch; i++) sum += img[i];
        ss__image_free(img);
    }
    return 0;
}
