/* The one definition of stb_image_write in libselfsup (PNG/JPEG writers:
 * stbi_write_png, stbi_write_jpg_to_func, ...). Include "stb_image_write.h"
 * without the implementation macro anywhere else.
 *
 * The JPEG bit writer of the Debian stb (stbiw__jpg_writeBits) left-shifts
 * a signed int into the sign bit, which UBSan rejects; the writer is
 * compiled with wrapping signed arithmetic (gcc) / without the shift check
 * (clang) so sanitizer builds run. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("shift"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("wrapv")
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "stb_image_write.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
