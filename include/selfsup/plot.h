/* selfsup — charts as PNG (rasterised here, written with stb_image_write) and
 * as inline SVG strings for HTML reports. No external plotting library; text
 * uses a built-in 5x7 ASCII bitmap font (characters outside 0x20..0x7e are
 * drawn as '?').
 *
 *     double ep[3] = {1, 2, 3}, loss[3] = {2.3, 1.1, 0.7};
 *     ss_series s = {"simclr", ep, loss, 3};
 *     ss_plot_line_png("out/loss.png", "Pretext loss", "epoch", "loss", &s, 1, 800, 500);
 *
 * Layout: title on top, y label rotated on the left, x label below, legend
 * on the right (series names longer than about a third of the width are
 * shortened with "..."). Axis ranges cover all finite points, rounded out to
 * "nice" tick steps (1, 2 or 5 times a power of ten). Non-finite points are
 * skipped and break the line. PNG files are written atomically
 * (ss_write_file_atomic). width and height must lie in 64..8192.
 */
#ifndef SELFSUP_PLOT_H
#define SELFSUP_PLOT_H

#include <stdint.h>

#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One named line: n points (x[i], y[i]). name may be NULL (no legend row). */
typedef struct ss_series {
    const char *name;
    const double *x, *y;
    int n;
} ss_series;

/* Line chart of ns series (0..64). title/xlabel/ylabel may be NULL.
 * Errors: SS_ERR_INVALID (bad size or series), SS_ERR_IO, SS_ERR_NOMEM. */
ss_status ss_plot_line_png(const char *path, const char *title, const char *xlabel,
                           const char *ylabel, const ss_series *s, int ns, int width,
                           int height);

/* Grouped bar chart: ncat groups along x (labels categories[0..ncat-1]),
 * each with ns bars (series_names[0..ns-1], shown in the legend);
 * values[i * ncat + j] is the bar of series i in category j. The y axis
 * always includes 0; each bar is labelled with its value (3 significant
 * digits) where the bar is wide enough. Non-finite values are not drawn. */
ss_status ss_plot_bars_png(const char *path, const char *title, const char *ylabel,
                           const char **categories, int ncat, const char **series_names,
                           const double *values, int ns, int width, int height);

/* The same charts as a standalone <svg> element (malloc'd, NUL-terminated;
 * the caller frees), suitable for inlining into HTML. NULL on error with
 * ss_errmsg() set. */
char *ss_plot_line_svg(const char *title, const char *xlabel, const char *ylabel,
                       const ss_series *s, int ns, int width, int height);
char *ss_plot_bars_svg(const char *title, const char *ylabel, const char **categories,
                       int ncat, const char **series_names, const double *values, int ns,
                       int width, int height);

/* Image grid: n images in float CHW layout (c = 1 grey or 3 RGB, values in
 * [0,1], clamped; NaN drawn black), image k at images + k*c*h*w, tiled in
 * rows of `cols` with a 2-pixel grey gap, each pixel enlarged to a
 * scale x scale block (scale 1..16). For MAE reconstructions: put originals,
 * masked inputs and reconstructions in consecutive rows. */
ss_status ss_png_write_grid(const char *path, const float *images, int n, int c, int h, int w,
                            int cols, int scale);

/* Write an 8-bit RGB buffer (width*height*3 bytes, rows top to bottom) as a
 * PNG file, atomically. */
ss_status ss_png_write_rgb(const char *path, const unsigned char *rgb, int width, int height);

/* Draw text with the built-in 5x7 font into an RGB buffer (glyph cells of
 * 6*scale x 8*scale pixels, (x, y) the top-left corner; clipped at the
 * edges). color is 0xRRGGBB. */
void ss_draw_text_rgb(unsigned char *rgb, int width, int height, int x, int y, const char *s, int scale,
                      uint32_t color);

#ifdef __cplusplus
}
#endif
#endif
