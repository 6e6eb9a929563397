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
    /* Images of 1 to 67 Mpx are legal and take tens of seconds to decode
     * under ASan + UBSan + coverage (a 60-byte RLE TGA of 1792x4116 did):
     * slow, not wrong, so only the checks run on them (larger ones are
     * refused by the checks). */
    if (!ss__image_info_memory(data + 1, size - 1, "fuzz", &w, &h, &c, err, sizeof err)) return 0;
    if ((int64_t)w * h > (1 << 20)) return 0;
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
