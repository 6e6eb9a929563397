/* JPEG encode + decode of an 8-bit image in memory, for the jpeg
 * corruption. Encoding uses stb_image_write (defined once in
 * src/io/stb_write_impl.c); decoding uses a private, static, JPEG-only copy
 * of stb_image so it never clashes with another stb_image definition
 * elsewhere in the library. */
#include "robust/jpeg_internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_NO_FAILURE_STRINGS
#include "stb_image.h"
#include "stb_image_write.h"
/* No "pragma pop": gcc reports unused static stb functions at the end of
 * the file, so the suppression has to stay on to the end. */

typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
    int failed;
} membuf;

static void mem_write(void *ctx, void *data, int size)
{
    membuf *m = ctx;
    if (m->failed || size <= 0) return;
    if (m->len + (size_t)size > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (m->len + (size_t)size > cap) cap *= 2;
        unsigned char *q = realloc(m->p, cap);
        if (!q) {
            m->failed = 1;
            return;
        }
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, (size_t)size);
    m->len += (size_t)size;
}

int ss_jpeg_roundtrip_u8(unsigned char *hwc, int w, int h, int comp, int quality)
{
    membuf m = {0};
    if (!stbi_write_jpg_to_func(mem_write, &m, w, h, comp, hwc, quality) || m.failed ||
        m.len > 0x7fffffff) {
        free(m.p);
        return 0;
    }
    int w2, h2, c2;
    unsigned char *dec = stbi_load_from_memory(m.p, (int)m.len, &w2, &h2, &c2, comp);
    free(m.p);
    if (!dec) return 0;
    int ok = w2 == w && h2 == h;
    if (ok) memcpy(hwc, dec, (size_t)w * h * comp);
    stbi_image_free(dec);
    return ok;
}
