/* libFuzzer target: any string either parses or fails with a message; a
 * parsed pipeline describes itself canonically (describe -> parse ->
 * describe is a fixed point) and applies to a small image keeping values
 * finite. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/augment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    ss_augment *a = NULL;
    if (ss_augment_parse(s, &a) == SS_OK) {
        ss_augment *b = NULL;
        if (ss_augment_parse(ss_augment_describe(a), &b) != SS_OK) abort();
        if (strcmp(ss_augment_describe(a), ss_augment_describe(b)) != 0) abort();
        int c = (size & 1) ? 3 : 1;
        float img[3 * 12 * 10];
        for (int i = 0; i < 3 * 12 * 10; i++) img[i] = (float)(i % 17) / 16.0f;
        ss_rng r;
        ss_rng_seed(&r, size, 1);
        if (ss_augment_check(a, c, 12, 10) == SS_OK) {
            ss_augment_apply(a, img, c, 12, 10, &r);
            for (int i = 0; i < c * 120; i++)
                if (!isfinite(img[i])) abort();
        }
        ss_augment_free(b);
    } else if (a != NULL || ss_errmsg()[0] == '\0') {
        abort();
    }
    ss_augment_free(a);
    free(s);
    return 0;
}
