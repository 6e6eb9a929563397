/* Line and bar charts, rasterised to RGB and written as PNG, or emitted as
 * SVG. Each chart is laid out once against a tiny drawing interface (dc_*)
 * with two back ends: a raster canvas and an SVG string. */
#include "selfsup/plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

#include "selfsup/fileio.h"

#define MIN_SIDE 64
#define MAX_SIDE 8192
#define MAX_SERIES 64
#define MAX_CATS 256

/* 5x7 font for ASCII 0x20..0x7e: 5 columns per glyph, bit r of a column is
 * row r (row 0 on top); row 7 holds the descenders of g, j, p, q, y. */
static const unsigned char font5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, /* space ! */
    {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7F, 0x14, 0x7F, 0x14}, /* " # */
    {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62}, /* $ % */
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, /* & ' */
    {0x00, 0x1C, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1C, 0x00}, /* ( ) */
    {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08}, /* * + */
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, /* , - */
    {0x00, 0x60, 0x60, 0x00, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02}, /* . / */
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00}, /* 0 1 */
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, /* 2 3 */
    {0x18, 0x14, 0x12, 0x7F, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39}, /* 4 5 */
    {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03}, /* 6 7 */
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, /* 8 9 */
    {0x00, 0x36, 0x36, 0x00, 0x00}, {0x00, 0x56, 0x36, 0x00, 0x00}, /* : ; */
    {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14}, /* < = */
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, /* > ? */
    {0x32, 0x49, 0x79, 0x41, 0x3E}, {0x7E, 0x11, 0x11, 0x11, 0x7E}, /* @ A */
    {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22}, /* B C */
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, /* D E */
    {0x7F, 0x09, 0x09, 0x09, 0x01}, {0x3E, 0x41, 0x49, 0x49, 0x7A}, /* F G */
    {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00}, /* H I */
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, /* J K */
    {0x7F, 0x40, 0x40, 0x40, 0x40}, {0x7F, 0x02, 0x0C, 0x02, 0x7F}, /* L M */
    {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E}, /* N O */
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, /* P Q */
    {0x7F, 0x09, 0x19, 0x29, 0x46}, {0x46, 0x49, 0x49, 0x49, 0x31}, /* R S */
    {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F}, /* T U */
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, /* V W */
    {0x63, 0x14, 0x08, 0x14, 0x63}, {0x07, 0x08, 0x70, 0x08, 0x07}, /* X Y */
    {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00}, /* Z [ */
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, /* \ ] */
    {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40}, /* ^ _ */
    {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78}, /* ` a */
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, /* b c */
    {0x38, 0x44, 0x44, 0x48, 0x7F}, {0x38, 0x54, 0x54, 0x54, 0x18}, /* d e */
    {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x98, 0xA4, 0xA4, 0xA4, 0x7C}, /* f g */
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, /* h i */
    {0x40, 0x80, 0x80, 0x7D, 0x00}, {0x7F, 0x10, 0x28, 0x44, 0x00}, /* j k */
    {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78}, /* l m */
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, /* n o */
    {0xFC, 0x24, 0x24, 0x24, 0x18}, {0x18, 0x24, 0x24, 0x24, 0xFC}, /* p q */
    {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20}, /* r s */
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, /* t u */
    {0x1C, 0x20, 0x40, 0x20, 0x1C}, {0x3C, 0x40, 0x30, 0x40, 0x3C}, /* v w */
    {0x44, 0x28, 0x10, 0x28, 0x44}, {0x9C, 0xA0, 0xA0, 0xA0, 0x7C}, /* x y */
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, /* z { */
    {0x00, 0x00, 0x7F, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00}, /* | } */
    {0x08, 0x04, 0x08, 0x10, 0x08},                                 /* ~ */
};

/* Tableau-10 palette. */
static const uint32_t palette[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
#define C_WHITE 0xffffff
#define C_TEXT 0x222222
#define C_AXIS 0x444444
#define C_GRID 0xe4e4e4

/* ---- string builder ---- */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* XML-escaped text. */
static void sb_xml(sbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': sb_put(b, "&amp;", 5); break;
        case '<': sb_put(b, "&lt;", 4); break;
        case '>': sb_put(b, "&gt;", 4); break;
        case '"': sb_put(b, "&quot;", 6); break;
        case '\'': sb_put(b, "&#39;", 5); break;
        default:
            if (*p < 0x20 || *p >= 0x7f) sb_put(b, "?", 1); /* same as the bitmap font */
            else sb_put(b, (const char *)p, 1);
        }
    }
}

/* ---- drawing context ---- */
typedef struct dc {
    int svg; /* 0: raster into px, 1: SVG into sb */
    int w, h;
    unsigned char *px;
    sbuf sb;
} dc;

enum { A_LEFT = 0, A_CENTER = 1, A_RIGHT = 2 };

static void blend(dc *d, int x, int y, uint32_t c, double a)
{
    if (x < 0 || y < 0 || x >= d->w || y >= d->h || a <= 0) return;
    if (a > 1) a = 1;
    unsigned char *p = d->px + ((size_t)y * (size_t)d->w + (size_t)x) * 3;
    double rgb[3] = {(c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff};
    for (int k = 0; k < 3; k++) p[k] = (unsigned char)lround(p[k] * (1 - a) + rgb[k] * a);
}

static void svg_color(sbuf *b, uint32_t c) { sb_printf(b, "#%06x", (unsigned)c); }

/* Filled axis-aligned rectangle. */
static void dc_rect(dc *d, double x, double y, double w, double h, uint32_t c)
{
    if (w <= 0 || h <= 0) return;
    if (d->svg) {
        sb_printf(&d->sb, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"", x,
                  y, w, h);
        svg_color(&d->sb, c);
        sb_put(&d->sb, "\"/>\n", 4);
        return;
    }
    int x0 = (int)lround(x), y0 = (int)lround(y), x1 = (int)lround(x + w), y1 = (int)lround(y + h);
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > d->w) x1 = d->w;
    if (y1 > d->h) y1 = d->h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) blend(d, xx, yy, c, 1.0);
}

/* Anti-aliased thick segment with round caps (raster only). */
static void r_segment(dc *d, double x0, double y0, double x1, double y1, uint32_t c, double wd)
{
    double hw = wd / 2;
    int bx0 = (int)floor(fmin(x0, x1) - hw - 1), bx1 = (int)ceil(fmax(x0, x1) + hw + 1);
    int by0 = (int)floor(fmin(y0, y1) - hw - 1), by1 = (int)ceil(fmax(y0, y1) + hw + 1);
    if (bx0 < 0) bx0 = 0;
    if (by0 < 0) by0 = 0;
    if (bx1 > d->w) bx1 = d->w;
    if (by1 > d->h) by1 = d->h;
    double dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy;
    for (int y = by0; y < by1; y++)
        for (int x = bx0; x < bx1; x++) {
            double px = x + 0.5, py = y + 0.5;
            double t = l2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / l2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - (x0 + t * dx), ey = py - (y0 + t * dy);
            double cov = hw + 0.5 - sqrt(ex * ex + ey * ey);
            if (cov > 0) blend(d, x, y, c, cov);
        }
}

/* Polyline through n points (no NaNs). */
static void dc_polyline(dc *d, const double *xs, const double *ys, int n, uint32_t c, double wd)
{
    if (n <= 0) return;
    if (d->svg) {
        if (n == 1) {
            sb_printf(&d->sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"", xs[0], ys[0],
                      wd);
            svg_color(&d->sb, c);
            sb_put(&d->sb, "\"/>\n", 4);
            return;
        }
        sb_printf(&d->sb, "<polyline fill=\"none\" stroke-width=\"%.1f\" stroke-linejoin=\"round\" "
                          "stroke-linecap=\"round\" stroke=\"", wd);
        svg_color(&d->sb, c);
        sb_put(&d->sb, "\" points=\"", 10);
        for (int i = 0; i < n; i++) sb_printf(&d->sb, "%s%.1f,%.1f", i ? " " : "", xs[i], ys[i]);
        sb_put(&d->sb, "\"/>\n", 4);
        return;
    }
    if (n == 1) {
        r_segment(d, xs[0], ys[0], xs[0], ys[0], c, 2 * wd);
        return;
    }
    for (int i = 0; i + 1 < n; i++) r_segment(d, xs[i], ys[i], xs[i + 1], ys[i + 1], c, wd);
}

static int text_w(const char *s, int sc) { int n = (int)strlen(s); return n ? n * 6 * sc - sc : 0; }

/* Text with glyph cells of 6*sc x 7*sc. Horizontal: y is the top of the
 * text, x the anchor point. Vertical (reading upwards): x is the left edge,
 * y the anchor point along the text. */
static void dc_text(dc *d, double x, double y, const char *s, int sc, int anchor, int vertical,
                    uint32_t c)
{
    if (!s || !*s) return;
    double tw = text_w(s, sc);
    if (d->svg) {
        const char *an = anchor == A_LEFT ? "start" : anchor == A_CENTER ? "middle" : "end";
        if (vertical)
            sb_printf(&d->sb, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\"",
                      x + 7 * sc, y);
        else
            sb_printf(&d->sb, "<text x=\"%.1f\" y=\"%.1f\"", x, y + 7 * sc);
        sb_printf(&d->sb, " font-size=\"%d\" text-anchor=\"%s\" fill=\"", 10 * sc, an);
        svg_color(&d->sb, c);
        sb_put(&d->sb, "\">", 2);
        sb_xml(&d->sb, s);
        sb_put(&d->sb, "</text>\n", 8);
        return;
    }
    double start = anchor == A_LEFT ? 0 : anchor == A_CENTER ? tw / 2 : tw;
    int ox = (int)lround(vertical ? x : x - start);
    int oy = (int)lround(vertical ? y + start : y);
    int i = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, i++) {
        unsigned ch = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
        const unsigned char *g = font5x7[ch - 0x20];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 8; row++) {
                if (!(g[col] >> row & 1)) continue;
                int bx, by;
                if (vertical) {
                    bx = ox + row * sc;
                    by = oy - (i * 6 + col + 1) * sc;
                } else {
                    bx = ox + (i * 6 + col) * sc;
                    by = oy + row * sc;
                }
                for (int yy = 0; yy < sc; yy++)
                    for (int xx = 0; xx < sc; xx++) blend(d, bx + xx, by + yy, c, 1.0);
            }
    }
}

static ss_status dc_init(dc *d, int svg, int w, int h)
{
    memset(d, 0, sizeof *d);
    d->svg = svg;
    d->w = w;
    d->h = h;
    if (svg) {
        sb_printf(&d->sb,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans Mono,Menlo,Consolas,"
                  "monospace\">\n",
                  w, h, w, h);
        dc_rect(d, 0, 0, w, h, C_WHITE);
        return d->sb.oom ? ss_seterr(SS_ERR_NOMEM, "plot: out of memory") : SS_OK;
    }
    d->px = malloc((size_t)w * (size_t)h * 3);
    if (!d->px) return ss_seterr(SS_ERR_NOMEM, "plot: cannot allocate a %dx%d image", w, h);
    memset(d->px, 0xff, (size_t)w * (size_t)h * 3);
    return SS_OK;
}

static void dc_free(dc *d)
{
    free(d->px);
    free(d->sb.p);
}

/* ---- PNG output ---- */
static void png_sink(void *ctx, void *data, int size)
{
    if (size > 0) sb_put(ctx, data, (size_t)size);
}

ss_status ss_png_write_rgb(const char *path, const unsigned char *rgb, int width, int height)
{
    if (!path || !rgb || width <= 0 || height <= 0 || width > 65535 || height > 65535)
        return ss_seterr(SS_ERR_INVALID, "%s: invalid PNG arguments (%dx%d)",
                         path ? path : "(null)", width, height);
    sbuf b = {0};
    if (!stbi_write_png_to_func(png_sink, &b, width, height, 3, rgb, width * 3) || b.oom) {
        free(b.p);
        return ss_seterr(SS_ERR_NOMEM, "%s: PNG encoding of %dx%d image failed", path, width,
                         height);
    }
    ss_status s = ss_write_file_atomic(path, b.p, b.len);
    free(b.p);
    return s;
}

/* ---- layout helpers ---- */
typedef struct axis {
    double lo, hi, step;
    int nt; /* ticks lo, lo+step, ..., hi */
    int decimals; /* -1: use %.3g */
} axis;

static double nicenum(double x, int round_)
{
    double e = floor(log10(x)), f = x / pow(10, e), nf;
    if (round_) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10, e);
}

static void axis_make(axis *a, double lo, double hi, int want)
{
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo <= 1e-12 * fmax(1.0, fmax(fabs(lo), fabs(hi)))) {
        double pad = lo != 0 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    if (want < 2) want = 2;
    double step = nicenum((hi - lo) / (want - 1), 1);
    a->lo = floor(lo / step) * step;
    a->hi = ceil(hi / step) * step;
    a->step = step;
    a->nt = (int)lround((a->hi - a->lo) / step) + 1;
    double big = fmax(fabs(a->lo), fabs(a->hi));
    if (big >= 1e6 || step < 1e-4) a->decimals = -1;
    else a->decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
}

static void axis_label(const axis *a, int i, char *buf, size_t cap)
{
    double v = a->lo + i * a->step;
    if (fabs(v) < a->step * 1e-6) v = 0; /* no "-0" */
    if (a->decimals < 0) snprintf(buf, cap, "%.3g", v);
    else snprintf(buf, cap, "%.*f", a->decimals, v);
}

static int axis_label_w(const axis *a, int sc)
{
    int m = 0;
    for (int i = 0; i < a->nt; i++) {
        char t[64];
        axis_label(a, i, t, sizeof t);
        int w = text_w(t, sc);
        if (w > m) m = w;
    }
    return m;
}

/* Copy of s cut to at most maxc characters ("..." marks a cut). */
static void fit_text(char *dst, size_t cap, const char *s, int maxc)
{
    if (!s) s = "";
    size_t n = strlen(s);
    if (maxc < 1) maxc = 1;
    if ((int)n <= maxc || maxc < 4) {
        size_t k = n < (size_t)maxc ? n : (size_t)maxc;
        if (k >= cap) k = cap - 1;
        memcpy(dst, s, k);
        dst[k] = '\0';
        return;
    }
    size_t k = (size_t)maxc - 3;
    if (k + 4 > cap) k = cap - 4;
    memcpy(dst, s, k);
    memcpy(dst + k, "...", 4);
}

/* Common frame: sizes and plot rectangle. */
typedef struct frame {
    int sc, tsc;        /* text scale, title scale */
    double pad;
    double x0, y0, x1, y1; /* plot area */
    int legend_chars;   /* 0: no legend */
    double legend_x;
} frame;

static int pick_scale(int w, int h) { return (w < h ? w : h) >= 440 ? 2 : 1; }

/* The next legend line of s: at most maxc characters, broken after the last
 * space that fits (a word longer than the line is cut); returns how many
 * characters of s it used, the space it broke at included. */
static size_t legend_line(char *dst, size_t cap, const char *s, int maxc)
{
    size_t n = strlen(s), k = n;
    if ((int)n > maxc) {
        k = (size_t)maxc;
        for (size_t j = (size_t)maxc; j > 0; j--)
            if (s[j] == ' ') {
                k = j;
                break;
            }
    }
    if (k >= cap) k = cap - 1;
    memcpy(dst, s, k);
    dst[k] = '\0';
    return k < n && s[k] == ' ' ? k + 1 : k;
}

/* One pass of the legend down to ymax: swatch + name per entry, drawn when
 * d is not NULL; returns how many entries (empty names included) it started. */
static int legend_pass(dc *d, const frame *f, const char *const *names, int n, double ymax, double *yend)
{
    int sc = f->sc, i;
    double y = f->y0 + 2 * sc;
    for (i = 0; i < n && y <= ymax; i++) {
        if (!names[i] || !*names[i]) continue;
        if (d) dc_rect(d, f->legend_x, y + 1.5 * sc, 12 * sc, 4 * sc, palette[i % 10]);
        const char *s = names[i];
        for (int line = 0; *s && y <= ymax; line++) {
            char t[256];
            if (line == 2 || y + 11 * sc > ymax) {
                fit_text(t, sizeof t, s, f->legend_chars);
                s += strlen(s);
            } else {
                s += legend_line(t, sizeof t, s, f->legend_chars);
            }
            if (d) dc_text(d, f->legend_x + 16 * sc, y, t, sc, A_LEFT, 0, C_TEXT);
            y += (*s ? 11 : 12) * sc; /* a wrapped name's lines, then the next name */
        }
    }
    *yend = y;
    return i;
}

static int count_named(const char *const *names, int from, int n)
{
    int k = 0;
    for (int i = from; i < n; i++) k += names[i] && *names[i];
    return k;
}

/* Legend to the right of the plot: swatch + name per entry; a name longer
 * than the legend is wide goes on up to three lines, the last one (the third,
 * or the last above the plot's bottom) cut with "..." if it still does not
 * fit. When some names would not start above the bottom, the last line says
 * how many are left out ("+3 more", or "+3" in a narrow legend) instead of dropping them silently. */
static void draw_legend(dc *d, const frame *f, const char *const *names, int n)
{
    if (!f->legend_chars) return;
    int sc = f->sc;
    double y;
    if (!count_named(names, legend_pass(NULL, f, names, n, f->y1, &y), n)) {
        legend_pass(d, f, names, n, f->y1, &y);
        return;
    }
    /* Again with the last line kept for the count of the names left out. */
    int left = count_named(names, legend_pass(d, f, names, n, f->y1 - 12 * sc, &y), n);
    char t[32], u[32];
    snprintf(t, sizeof t, "+%d more", left);
    if ((int)strlen(t) > f->legend_chars) snprintf(t, sizeof t, "+%d", left); /* a narrow legend */
    fit_text(u, sizeof u, t, f->legend_chars);
    dc_text(d, f->legend_x + 16 * sc, y, u, sc, A_LEFT, 0, C_TEXT);
}

/* Title, margins and legend width; y axis labels decide the left margin. */
static ss_status frame_layout(frame *f, int w, int h, const char *title, const char *xlabel,
                              const char *ylabel, const axis *ya, const char *const *names, int n)
{
    memset(f, 0, sizeof *f);
    f->sc = pick_scale(w, h);
    int sc = f->sc;
    f->pad = 6 * sc;
    f->tsc = sc + 1;
    if (title && *title)
        while (f->tsc > 1 && text_w(title, f->tsc) > w - 2 * f->pad) f->tsc--;
    double top = f->pad + (title && *title ? 7 * f->tsc + f->pad : 0);
    double left = f->pad + (ylabel && *ylabel ? 7 * sc + f->pad : 0) + axis_label_w(ya, sc) +
                  7 * sc;
    double bottom = f->pad + (xlabel && *xlabel ? 7 * sc + f->pad : 0) + 7 * sc + 7 * sc;
    double right = f->pad + 4 * sc;
    int maxc = 0;
    for (int i = 0; i < n; i++)
        if (names[i] && (int)strlen(names[i]) > maxc) maxc = (int)strlen(names[i]);
    if (maxc > 0) {
        int cap = (int)((w * 0.3 - 16 * sc) / (6 * sc));
        if (maxc > cap) maxc = cap;
        if (maxc >= 3) {
            f->legend_chars = maxc;
            right = f->pad + 16 * sc + maxc * 6 * sc + 2 * f->pad;
        }
    }
    f->x0 = floor(left);
    f->y0 = floor(top);
    f->x1 = floor(w - right);
    f->y1 = floor(h - bottom);
    f->legend_x = f->x1 + 2 * f->pad;
    if (f->x1 - f->x0 < 32 || f->y1 - f->y0 < 32)
        return ss_seterr(SS_ERR_INVALID,
                         "plot: a %dx%d chart leaves no room for the plot area (labels too long?)",
                         w, h);
    return SS_OK;
}

static void draw_titles(dc *d, const frame *f, const char *title, const char *xlabel,
                        const char *ylabel)
{
    int sc = f->sc;
    if (title && *title) dc_text(d, d->w / 2.0, f->pad, title, f->tsc, A_CENTER, 0, C_TEXT);
    if (xlabel && *xlabel)
        dc_text(d, (f->x0 + f->x1) / 2, d->h - f->pad - 7 * sc, xlabel, sc, A_CENTER, 0, C_TEXT);
    if (ylabel && *ylabel)
        dc_text(d, f->pad, (f->y0 + f->y1) / 2, ylabel, sc, A_CENTER, 1, C_TEXT);
}

/* Horizontal grid lines and y tick labels; returns nothing. */
static void draw_y_axis(dc *d, const frame *f, const axis *ya)
{
    int sc = f->sc;
    for (int i = 0; i < ya->nt; i++) {
        double v = ya->lo + i * ya->step;
        double py = f->y1 - (v - ya->lo) / (ya->hi - ya->lo) * (f->y1 - f->y0);
        py = floor(py);
        if (i > 0 && i < ya->nt - 1) dc_rect(d, f->x0, py, f->x1 - f->x0, 1, C_GRID);
        dc_rect(d, f->x0 - 4 * sc, py, 4 * sc, 1, C_AXIS);
        char t[64];
        axis_label(ya, i, t, sizeof t);
        dc_text(d, f->x0 - 6 * sc, py - 3.5 * sc, t, sc, A_RIGHT, 0, C_TEXT);
    }
}

static void draw_box(dc *d, const frame *f)
{
    dc_rect(d, f->x0, f->y0, f->x1 - f->x0, 1, C_AXIS);
    dc_rect(d, f->x0, f->y1, f->x1 - f->x0 + 1, 1, C_AXIS);
    dc_rect(d, f->x0, f->y0, 1, f->y1 - f->y0, C_AXIS);
    dc_rect(d, f->x1, f->y0, 1, f->y1 - f->y0, C_AXIS);
}

/* ---- line chart ---- */
static ss_status check_size(int w, int h)
{
    if (w < MIN_SIDE || h < MIN_SIDE || w > MAX_SIDE || h > MAX_SIDE)
        return ss_seterr(SS_ERR_INVALID, "plot: size %dx%d outside %d..%d", w, h, MIN_SIDE,
                         MAX_SIDE);
    return SS_OK;
}

static ss_status line_chart(dc *d, const char *title, const char *xlabel, const char *ylabel,
                            const ss_series *s, int ns)
{
    if (ns < 0 || ns > MAX_SERIES || (ns > 0 && !s))
        return ss_seterr(SS_ERR_INVALID, "plot: %d series (expected 0..%d)", ns, MAX_SERIES);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int maxn = 0;
    for (int i = 0; i < ns; i++) {
        if (s[i].n < 0 || (s[i].n > 0 && (!s[i].x || !s[i].y)))
            return ss_seterr(SS_ERR_INVALID, "plot: series %d ('%s') has n=%d or NULL data", i,
                             s[i].name ? s[i].name : "", s[i].n);
        if (s[i].n > maxn) maxn = s[i].n;
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k];
            if (!isfinite(x) || !isfinite(y)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    }
    if (xlo > xhi) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
    const char *names[MAX_SERIES];
    for (int i = 0; i < ns; i++) names[i] = s[i].name;
    int sc = pick_scale(d->w, d->h);
    axis ya, xa;
    axis_make(&ya, ylo, yhi, (int)((d->h * 0.7) / (36 * sc)) + 1);
    frame f;
    ss_status st = frame_layout(&f, d->w, d->h, title, xlabel, ylabel, &ya, names, ns);
    if (st != SS_OK) return st;
    /* x ticks: as many as fit with labels ~ 8 characters apart. */
    int want = (int)((f.x1 - f.x0) / (6 * sc * 9)) + 1;
    if (want > 11) want = 11;
    axis_make(&xa, xlo, xhi, want);

    draw_titles(d, &f, title, xlabel, ylabel);
    draw_y_axis(d, &f, &ya);
    for (int i = 0; i < xa.nt; i++) {
        double v = xa.lo + i * xa.step;
        double px = floor(f.x0 + (v - xa.lo) / (xa.hi - xa.lo) * (f.x1 - f.x0));
        if (i > 0 && i < xa.nt - 1) dc_rect(d, px, f.y0, 1, f.y1 - f.y0, C_GRID);
        dc_rect(d, px, f.y1, 1, 4 * sc, C_AXIS);
        char t[64];
        axis_label(&xa, i, t, sizeof t);
        dc_text(d, px, f.y1 + 7 * sc, t, sc, A_CENTER, 0, C_TEXT);
    }
    draw_box(d, &f);

    double *px = malloc((size_t)(maxn ? maxn : 1) * sizeof *px);
    double *py = malloc((size_t)(maxn ? maxn : 1) * sizeof *py);
    if (!px || !py) {
        free(px);
        free(py);
        return ss_seterr(SS_ERR_NOMEM, "plot: out of memory for %d points", maxn);
    }
    double lw = 1.5 * sc;
    for (int i = 0; i < ns; i++) {
        int m = 0;
        for (int k = 0; k <= s[i].n; k++) {
            int ok = k < s[i].n && isfinite(s[i].x[k]) && isfinite(s[i].y[k]);
            if (ok) {
                px[m] = f.x0 + (s[i].x[k] - xa.lo) / (xa.hi - xa.lo) * (f.x1 - f.x0) + 0.5;
                py[m] = f.y1 - (s[i].y[k] - ya.lo) / (ya.hi - ya.lo) * (f.y1 - f.y0) + 0.5;
                m++;
            } else {
                dc_polyline(d, px, py, m, palette[i % 10], lw);
                m = 0;
            }
        }
    }
    free(px);
    free(py);
    draw_legend(d, &f, names, ns);
    return SS_OK;
}

/* ---- bar chart ---- */
static ss_status bar_chart(dc *d, const char *title, const char *ylabel, const char **cats,
                           int ncat, const char **snames, const double *v, int ns)
{
    if (ncat < 1 || ncat > MAX_CATS || ns < 1 || ns > MAX_SERIES || !v)
        return ss_seterr(SS_ERR_INVALID,
                         "plot: bar chart needs 1..%d categories and 1..%d series and values "
                         "(got %d, %d)",
                         MAX_CATS, MAX_SERIES, ncat, ns);
    double lo = 0, hi = 0;
    for (int i = 0; i < ns * ncat; i++)
        if (isfinite(v[i])) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    if (lo == hi) hi = 1;
    int sc = pick_scale(d->w, d->h);
    axis ya; /* 6% headroom for the value labels */
    axis_make(&ya, lo < 0 ? lo - 0.06 * (hi - lo) : lo, hi > 0 ? hi + 0.06 * (hi - lo) : hi,
              (int)((d->h * 0.7) / (36 * sc)) + 1);
    const char *names[MAX_SERIES];
    for (int i = 0; i < ns; i++) names[i] = snames ? snames[i] : NULL;
    frame f;
    ss_status st = frame_layout(&f, d->w, d->h, title, NULL, ylabel, &ya, names, ns);
    if (st != SS_OK) return st;
    draw_titles(d, &f, title, NULL, ylabel);
    draw_y_axis(d, &f, &ya);

    double gw = (f.x1 - f.x0) / ncat, bw = gw * 0.8 / ns;
    double yscale = (f.y1 - f.y0) / (ya.hi - ya.lo);
    double yzero = f.y1 - (0 - ya.lo) * yscale;
    int vsc = sc; /* value label scale: shrink until it fits a bar */
    while (vsc > 1 && text_w("0.000", vsc) > bw + 2 * sc) vsc--;
    int show_vals = text_w("0.00", vsc) <= bw + 4 * sc;
    for (int j = 0; j < ncat; j++) {
        double gx = f.x0 + j * gw + gw * 0.1;
        for (int i = 0; i < ns; i++) {
            double val = v[i * ncat + j];
            if (!isfinite(val)) continue;
            double yv = f.y1 - (val - ya.lo) * yscale;
            double top = fmin(yv, yzero), hgt = fabs(yv - yzero);
            double bx = gx + i * bw;
            dc_rect(d, bx + 0.5, top, bw - 1, hgt < 1 ? 1 : hgt, palette[i % 10]);
            if (show_vals) {
                char t[32];
                snprintf(t, sizeof t, "%.3g", val);
                double ty = val >= 0 ? top - 9 * vsc : top + hgt + 2 * vsc;
                if (ty >= f.y0 - 9 * vsc) dc_text(d, bx + bw / 2, ty, t, vsc, A_CENTER, 0, C_TEXT);
            }
        }
    }
    /* Category labels: shrink the font until the longest fits its group,
     * then shorten what still does not. */
    int csc = sc;
    for (int j = 0; j < ncat; j++)
        while (csc > 1 && cats && cats[j] && text_w(cats[j], csc) > gw - 2) csc--;
    for (int j = 0; j < ncat; j++) {
        char t[256];
        fit_text(t, sizeof t, cats && cats[j] ? cats[j] : "", (int)(gw / (6 * csc)));
        dc_text(d, f.x0 + (j + 0.5) * gw, f.y1 + 6 * sc, t, csc, A_CENTER, 0, C_TEXT);
    }
    if (ya.lo < 0) dc_rect(d, f.x0, floor(yzero), f.x1 - f.x0, 1, C_AXIS);
    draw_box(d, &f);
    draw_legend(d, &f, names, ns);
    return SS_OK;
}

/* ---- public entry points ---- */
static ss_status finish_png(dc *d, ss_status st, const char *path)
{
    if (st == SS_OK) st = ss_png_write_rgb(path, d->px, d->w, d->h);
    dc_free(d);
    return st;
}

static char *finish_svg(dc *d, ss_status st)
{
    if (st == SS_OK) {
        sb_put(&d->sb, "</svg>\n", 7);
        if (d->sb.oom) st = ss_seterr(SS_ERR_NOMEM, "plot: out of memory for the SVG text");
    }
    if (st != SS_OK) {
        dc_free(d);
        return NULL;
    }
    return d->sb.p; /* px is NULL for SVG */
}

ss_status ss_plot_line_png(const char *path, const char *title, const char *xlabel,
                           const char *ylabel, const ss_series *s, int ns, int width, int height)
{
    if (!path) return ss_seterr(SS_ERR_INVALID, "ss_plot_line_png: path is NULL");
    ss_status st = check_size(width, height);
    if (st != SS_OK) return st;
    dc d;
    if ((st = dc_init(&d, 0, width, height)) != SS_OK) return st;
    return finish_png(&d, line_chart(&d, title, xlabel, ylabel, s, ns), path);
}

ss_status ss_plot_bars_png(const char *path, const char *title, const char *ylabel,
                           const char **categories, int ncat, const char **series_names,
                           const double *values, int ns, int width, int height)
{
    if (!path) return ss_seterr(SS_ERR_INVALID, "ss_plot_bars_png: path is NULL");
    ss_status st = check_size(width, height);
    if (st != SS_OK) return st;
    dc d;
    if ((st = dc_init(&d, 0, width, height)) != SS_OK) return st;
    return finish_png(&d, bar_chart(&d, title, ylabel, categories, ncat, series_names, values, ns),
                      path);
}

char *ss_plot_line_svg(const char *title, const char *xlabel, const char *ylabel,
                       const ss_series *s, int ns, int width, int height)
{
    if (check_size(width, height) != SS_OK) return NULL;
    dc d;
    if (dc_init(&d, 1, width, height) != SS_OK) {
        dc_free(&d);
        return NULL;
    }
    return finish_svg(&d, line_chart(&d, title, xlabel, ylabel, s, ns));
}

char *ss_plot_bars_svg(const char *title, const char *ylabel, const char **categories, int ncat,
                       const char **series_names, const double *values, int ns, int width,
                       int height)
{
    if (check_size(width, height) != SS_OK) return NULL;
    dc d;
    if (dc_init(&d, 1, width, height) != SS_OK) {
        dc_free(&d);
        return NULL;
    }
    return finish_svg(&d, bar_chart(&d, title, ylabel, categories, ncat, series_names, values,
                                    ns));
}

ss_status ss_png_write_grid(const char *path, const float *images, int n, int c, int h, int w,
                            int cols, int scale)
{
    if (!path || !images || n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || cols < 1 ||
        scale < 1 || scale > 16)
        return ss_seterr(SS_ERR_INVALID,
                         "%s: image grid needs n>=1 images, c 1 or 3, h,w>=1, cols>=1, scale "
                         "1..16 (got n=%d c=%d h=%d w=%d cols=%d scale=%d)",
                         path ? path : "(null)", n, c, h, w, cols, scale);
    const int gap = 2;
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    long long W = (long long)cols * w * scale + (long long)(cols + 1) * gap;
    long long H = (long long)rows * h * scale + (long long)(rows + 1) * gap;
    if (W > 65535 || H > 65535)
        return ss_seterr(SS_ERR_INVALID, "%s: image grid of %lldx%lld pixels is too large", path,
                         W, H);
    unsigned char *rgb = malloc((size_t)W * (size_t)H * 3);
    if (!rgb) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate %lldx%lld grid", path, W, H);
    memset(rgb, 0x80, (size_t)W * (size_t)H * 3);
    size_t plane = (size_t)h * (size_t)w;
    for (int k = 0; k < n; k++) {
        const float *img = images + (size_t)k * (size_t)c * plane;
        size_t ox = (size_t)gap + (size_t)(k % cols) * (size_t)(w * scale + gap);
        size_t oy = (size_t)gap + (size_t)(k / cols) * (size_t)(h * scale + gap);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++) {
                unsigned char *p = rgb + ((oy + (size_t)y) * (size_t)W + ox + (size_t)x) * 3;
                size_t at = (size_t)(y / scale) * (size_t)w + (size_t)(x / scale);
                for (int ch = 0; ch < 3; ch++) {
                    float v = img[(c == 3 ? (size_t)ch * plane : 0) + at];
                    if (!(v > 0)) v = 0; /* also NaN */
                    if (v > 1) v = 1;
                    p[ch] = (unsigned char)lroundf(v * 255.0f);
                }
            }
    }
    ss_status s = ss_png_write_rgb(path, rgb, (int)W, (int)H);
    free(rgb);
    return s;
}

void ss_draw_text_rgb(unsigned char *rgb, int width, int height, int x, int y, const char *s, int scale,
                      uint32_t color)
{
    if (!rgb || !s || scale < 1) return;
    int i = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, i++) {
        unsigned ch = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
        const unsigned char *g = font5x7[ch - 0x20];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 8; row++) {
                if (!(g[col] >> row & 1)) continue;
                for (int yy = 0; yy < scale; yy++)
                    for (int xx = 0; xx < scale; xx++) {
                        int px = x + (i * 6 + col) * scale + xx, py = y + row * scale + yy;
                        if (px < 0 || py < 0 || px >= width || py >= height) continue;
                        unsigned char *q = rgb + ((size_t)py * width + px) * 3;
                        q[0] = (unsigned char)(color >> 16);
                        q[1] = (unsigned char)(color >> 8);
                        q[2] = (unsigned char)color;
                    }
            }
    }
}
