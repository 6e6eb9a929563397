/* plot: PNG charts decode to the requested size and show the data where it
 * belongs; SVG output is well-formed; image grids place pixels exactly. */
#include <unistd.h>

#include "selfsup/plot.h"
#include "testutil.h"

/* Decoder kept private to this test (static functions), so it cannot clash
 * with an stb_image implementation compiled into the library. Unused-static
 * warnings are reported at the end of the file, so they stay off to the end. */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb_image.h>

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static unsigned char *load(const char *path, int *w, int *h)
{
    int c = 0;
    unsigned char *px = stbi_load(path, w, h, &c, 3);
    CHECK_MSG(px != NULL, "cannot decode %s", path);
    return px;
}

static int is_rgb(const unsigned char *p, unsigned rgb)
{
    return p[0] == (rgb >> 16 & 0xff) && p[1] == (rgb >> 8 & 0xff) && p[2] == (rgb & 0xff);
}

#define BLUE 0x1f77b4u
#define ORANGE 0xff7f0eu

static void test_line_png(void)
{
    /* Series 0 rises (0,0)->(10,10), series 1 falls (0,10)->(10,0). */
    double x[11], up[11], down[11];
    for (int i = 0; i <= 10; i++) x[i] = i, up[i] = i, down[i] = 10 - i;
    ss_series s[2] = {{"rising", x, up, 11}, {"falling", x, down, 11}};
    CHECK_OK(ss_plot_line_png(tpath("line.png"), "Two lines", "x", "y", s, 2, 640, 480));
    int w = 0, h = 0;
    unsigned char *px = load(tpath("line.png"), &w, &h);
    if (!px) return;
    CHECK(w == 640 && h == 480);
    long nonwhite = 0, blue = 0, orange = 0;
    /* Mean row of blue pixels in the left and right quarters of the image. */
    double bl_row = 0, br_row = 0, ol_row = 0, or_row = 0;
    long bl = 0, br = 0, ol = 0, orr = 0;
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            const unsigned char *p = px + ((size_t)y * w + xx) * 3;
            if (!is_rgb(p, 0xffffff)) nonwhite++;
            if (is_rgb(p, BLUE)) {
                blue++;
                if (xx < w / 4) bl_row += y, bl++;
                if (xx > w / 2 && xx < 3 * w / 4) br_row += y, br++;
            }
            if (is_rgb(p, ORANGE)) {
                orange++;
                if (xx < w / 4) ol_row += y, ol++;
                if (xx > w / 2 && xx < 3 * w / 4) or_row += y, orr++;
            }
        }
    CHECK(nonwhite > 5000);
    CHECK(blue > 300 && orange > 300);
    /* The rising line is lower on the left (larger row) than in the middle;
     * the falling one the opposite way. Both legend swatches sit at the
     * right, outside these bands. */
    CHECK(bl > 0 && br > 0 && bl_row / bl > br_row / br + 50);
    CHECK(ol > 0 && orr > 0 && ol_row / ol + 50 < or_row / orr);
    stbi_image_free(px);

    /* NaNs break the line, a single point, an empty series, no labels. */
    double yn[5] = {1, NAN, 3, INFINITY, 2}, xn[5] = {0, 1, 2, 3, 4};
    ss_series s2[3] = {{"gappy", xn, yn, 5}, {NULL, xn, yn, 1}, {"empty", NULL, NULL, 0}};
    CHECK_OK(ss_plot_line_png(tpath("nan.png"), NULL, NULL, NULL, s2, 3, 200, 120));
    px = load(tpath("nan.png"), &w, &h);
    CHECK(w == 200 && h == 120);
    stbi_image_free(px);
    /* No series at all still draws axes. */
    CHECK_OK(ss_plot_line_png(tpath("none.png"), "empty", NULL, NULL, NULL, 0, 100, 100));

    /* Errors. */
    CHECK(ss_plot_line_png(tpath("x.png"), "t", NULL, NULL, s, 2, 10, 480) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "size 10x480 outside 64..8192") != NULL);
    ss_series bad = {"bad", NULL, up, 3};
    CHECK(ss_plot_line_png(tpath("x.png"), "t", NULL, NULL, &bad, 1, 300, 200) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "series 0 ('bad') has n=3 or NULL data") != NULL);
    CHECK(ss_plot_line_png(tpath("no/x.png"), "t", NULL, NULL, s, 2, 300, 200) == SS_ERR_IO);
    CHECK(access(tpath("x.png"), F_OK) != 0);
}

static void test_bars_png(void)
{
    /* One series, two categories: 0.8 and 0.4. The first bar must be twice
     * as tall as the second (within a pixel or two). */
    const char *cats[2] = {"linear probe", "kNN"};
    const char *names[2] = {"SimCLR", "MAE"};
    double v1[2] = {0.8, 0.4};
    CHECK_OK(ss_plot_bars_png(tpath("bars.png"), "Accuracy", "acc", cats, 2, names, v1, 1, 600,
                              400));
    int w, h;
    unsigned char *px = load(tpath("bars.png"), &w, &h);
    if (!px) return;
    CHECK(w == 600 && h == 400);
    /* Tallest blue column left and right of the gap between the groups (the
     * legend swatch on the right is only a few pixels tall). */
    int hl = 0, hr = 0;
    for (int xx = 0; xx < w; xx++) {
        int run = 0;
        for (int y = 0; y < h; y++) run += is_rgb(px + ((size_t)y * w + xx) * 3, BLUE);
        if (xx < w * 45 / 100) { if (run > hl) hl = run; }
        else if (run > hr) hr = run;
    }
    CHECK_MSG(hl > 100 && abs(hl - 2 * hr) <= 3, "bar heights %d and %d", hl, hr);
    stbi_image_free(px);

    /* Two series, negative values, a NaN bar. */
    double v2[4] = {0.5, -0.25, NAN, 0.75};
    CHECK_OK(ss_plot_bars_png(tpath("bars2.png"), NULL, NULL, cats, 2, names, v2, 2, 300, 200));
    px = load(tpath("bars2.png"), &w, &h);
    long orange = 0;
    for (long i = 0; px && i < (long)w * h; i++) orange += is_rgb(px + i * 3, ORANGE);
    CHECK(orange > 50);
    stbi_image_free(px);
    CHECK(ss_plot_bars_png(tpath("x.png"), "t", NULL, cats, 0, names, v1, 1, 300, 200) ==
          SS_ERR_INVALID);
}

static void test_svg(void)
{
    double x[3] = {1, 2, 3}, y[3] = {0.5, 0.25, 0.125};
    ss_series s[2] = {{"a<b & \"c\"", x, y, 3}, {"d", x, y, 3}};
    char *svg = ss_plot_line_svg("Loss <train>", "epoch", "loss", s, 2, 500, 300);
    CHECK(svg != NULL);
    if (svg) {
        size_t n = strlen(svg);
        CHECK(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"500\" height=\"300\"",
                      63) == 0);
        CHECK(n > 7 && strcmp(svg + n - 7, "</svg>\n") == 0);
        CHECK(strstr(svg, ">Loss &lt;train&gt;</text>") != NULL);
        CHECK(strstr(svg, ">a&lt;b &amp; &quot;c&quot;</text>") != NULL);
        int polylines = 0;
        for (const char *p = svg; (p = strstr(p, "<polyline")); p++) polylines++;
        CHECK(polylines == 2);
        CHECK(strchr(svg, '<') == svg);
        free(svg);
    }
    const char *cats[3] = {"a", "b", "c"};
    const char *names[1] = {"acc"};
    double v[3] = {0.9, 0.8, 0.7};
    svg = ss_plot_bars_svg("Bars", "acc", cats, 3, names, v, 1, 400, 300);
    CHECK(svg != NULL);
    if (svg) {
        CHECK(strstr(svg, ">0.9</text>") && strstr(svg, ">0.7</text>"));
        int blue_rects = 0;
        for (const char *p = svg; (p = strstr(p, "fill=\"#1f77b4\"")); p++) blue_rects++;
        CHECK(blue_rects == 4); /* three bars + legend swatch */
        free(svg);
    }
    /* A legend name wider than the legend (17 characters at 800 px) wraps at
     * spaces instead of being cut; a single word longer than three lines is
     * cut on the third with "...". */
    const char *long_names[2] = {"SSL + fine-tune + distil", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij"};
    double v2[6] = {0.8, 0.7, 0.6, 0.5, 0.4, 0.3};
    svg = ss_plot_bars_svg("Bars", "acc", cats, 3, long_names, v2, 2, 800, 450);
    CHECK(svg != NULL);
    if (svg) {
        CHECK(strstr(svg, ">SSL + fine-tune +</text>") != NULL);
        CHECK(strstr(svg, ">distil</text>") != NULL);
        CHECK(strstr(svg, ">abcdefghijklmnopq</text>") != NULL);
        CHECK(strstr(svg, ">rstuvwxyzabcdefgh</text>") != NULL);
        CHECK(strstr(svg, ">ijklmnopqrstuv...</text>") != NULL);
        free(svg);
    }
    /* A name cut short by the plot's bottom (a 100-pixel chart has room for
     * five legend lines) ends with "..." on its last line that fits. */
    const char *tall[3] = {"first series with a long name here and more", "second series with a long name here and more",
                           "third series with a long name that goes on and on"};
    double v3[9] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
    svg = ss_plot_bars_svg("T", "acc", cats, 3, tall, v3, 3, 800, 100);
    CHECK(svg != NULL);
    if (svg) {
        CHECK(strstr(svg, ">second series with a long name here</text>") != NULL);
        CHECK_MSG(strstr(svg, ">third series with a long name that...</text>") != NULL, "%s", svg);
        CHECK(strstr(svg, "goes on") == NULL);
        free(svg);
    }
    /* More names than the legend has lines: the last line counts the names
     * left out instead of dropping them silently ("+4": the legend is four
     * characters wide), and every name is either drawn or counted. */
    const char *many[8] = {"run0", "run1", "run2", "run3", "run4", "run5", "run6", "run7"};
    double v4[24];
    for (int i = 0; i < 24; i++) v4[i] = 0.1 + 0.03 * i;
    svg = ss_plot_bars_svg("T", "acc", cats, 3, many, v4, 8, 800, 100);
    CHECK(svg != NULL);
    if (svg) {
        int drawn = 0, more = -1;
        char want[32];
        for (int i = 0; i < 8; i++) {
            snprintf(want, sizeof want, ">run%d</text>", i);
            drawn += strstr(svg, want) != NULL;
        }
        const char *m = strstr(svg, ">+"); /* "+N more", or "+N" in this 4-character legend */
        if (m) more = atoi(m + 2);
        CHECK_MSG(drawn >= 2 && drawn < 8 && more == 8 - drawn, "drawn %d, more %d: %s", drawn, more, svg);
        free(svg);
    }
    /* A legend wide enough says "more". */
    const char *many2[8] = {"series 0", "series 1", "series 2", "series 3", "series 4", "series 5", "series 6", "series 7"};
    svg = ss_plot_bars_svg("T", "acc", cats, 3, many2, v4, 8, 800, 100);
    CHECK(svg != NULL);
    if (svg) {
        CHECK_MSG(strstr(svg, ">+4 more</text>") != NULL && strstr(svg, ">series 3</text>") != NULL &&
                      strstr(svg, ">series 4</text>") == NULL,
                  "%s", svg);
        free(svg);
    }
    /* All eight fit in a taller chart: no count. */
    svg = ss_plot_bars_svg("T", "acc", cats, 3, many, v4, 8, 800, 400);
    CHECK(svg != NULL);
    if (svg) {
        CHECK(strstr(svg, ">run7</text>") != NULL && strstr(svg, ">+") == NULL);
        free(svg);
    }
    CHECK(ss_plot_line_svg("t", NULL, NULL, s, 2, 50, 50) == NULL);
    CHECK(strstr(ss_errmsg(), "outside 64..8192") != NULL);
}

static void test_grid(void)
{
    /* Two 2x2 grey images, 2 columns, scale 3, 2-pixel gaps:
     * width 2*2*3 + 3*2 = 18, height 2*3 + 2*2 = 10. */
    float img[8] = {0.0f, 0.5f, 1.0f, 2.0f, /* image 0 (2.0 clamps to 1) */
                    NAN, 0.25f, -1.0f, 1.0f};
    CHECK_OK(ss_png_write_grid(tpath("grid.png"), img, 2, 1, 2, 2, 2, 3));
    int w, h;
    unsigned char *px = load(tpath("grid.png"), &w, &h);
    if (!px) return;
    CHECK(w == 18 && h == 10);
#define PX(x, y) (px + ((size_t)(y) * w + (x)) * 3)
    CHECK(PX(0, 0)[0] == 128 && PX(9, 5)[1] == 128); /* gaps */
    CHECK(PX(2, 2)[0] == 0 && PX(4, 4)[2] == 0);     /* img0 (0,0) = 0, block 3x3 */
    CHECK(PX(5, 2)[0] == 128 && PX(7, 4)[0] == 128); /* img0 (0,1) = 0.5 -> 128 */
    CHECK(PX(2, 5)[0] == 255 && PX(7, 7)[0] == 255); /* (1,0) = 1, (1,1) clamped */
    CHECK(PX(10, 2)[0] == 0);                        /* img1 NaN -> 0 */
    CHECK(PX(13, 2)[0] == 64);                       /* 0.25 -> 64 */
    CHECK(PX(10, 5)[0] == 0 && PX(15, 7)[0] == 255);
    stbi_image_free(px);

    /* RGB: one 1x1 image with channels (1, 0, 0.5). */
    float rgb[3] = {1.0f, 0.0f, 0.5f};
    CHECK_OK(ss_png_write_grid(tpath("rgb.png"), rgb, 1, 3, 1, 1, 4, 1));
    px = load(tpath("rgb.png"), &w, &h);
    CHECK(px && w == 5 && h == 5);
    if (px) CHECK(PX(2, 2)[0] == 255 && PX(2, 2)[1] == 0 && PX(2, 2)[2] == 128);
    stbi_image_free(px);
#undef PX
    CHECK(ss_png_write_grid(tpath("x.png"), rgb, 1, 2, 1, 1, 1, 1) == SS_ERR_INVALID);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "test_plot_tmp_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_line_png();
    test_bars_png();
    test_svg();
    test_grid();
    const char *files[] = {"line.png", "nan.png", "none.png", "bars.png", "bars2.png",
                           "grid.png", "rgb.png"};
    if (getenv("SS_KEEP_TEST_FILES")) TEST_MAIN_END(); /* to look at the charts */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tpath(files[i]));
    CHECK(rmdir(tmpdir) == 0);
    TEST_MAIN_END();
}
