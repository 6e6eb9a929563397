/* Augmentation ops: parsing, canonical strings, and each op on a known
 * input with a known output (replaying the documented rng draws). */
#include "selfsup/augment.h"
#include "testutil.h"

#include <time.h>

static ss_augment *parse_ok(const char *spec)
{
    ss_augment *a = NULL;
    ss_status s = ss_augment_parse(spec, &a);
    CHECK_MSG(s == SS_OK && a, "parse \"%s\": %s", spec, ss_errmsg());
    return a;
}

static void check_parse_error(const char *spec, const char *must_name)
{
    ss_augment *a = (ss_augment *)1;
    ss_status s = ss_augment_parse(spec, &a);
    CHECK_MSG(s == SS_ERR_INVALID && a == NULL, "\"%s\" should fail", spec);
    CHECK_MSG(strstr(ss_errmsg(), must_name) != NULL, "\"%s\": message \"%s\" lacks \"%s\"", spec,
              ss_errmsg(), must_name);
}

static void test_parse(void)
{
    check_parse_error("foo", "'foo'");
    check_parse_error("hflip,wobble:3", "'wobble'");
    check_parse_error("rrc:0.5", "rrc:SMIN-SMAX");
    check_parse_error("rrc:0.5-2", "'rrc'");
    check_parse_error("rrc:0.2-1:2-1", "'rrc'");
    check_parse_error("crop", "'crop'");
    check_parse_error("crop:1.5", "'crop'");
    check_parse_error("hflip:2", "'hflip'");
    check_parse_error("rot90:1", "'rot90'");
    check_parse_error("jitter", "'jitter'");
    check_parse_error("jitter:0.4:0.4:0.4:0.1:", "'jitter'");
    check_parse_error("jitter:0.4:0.4:0.4:0.6", "'jitter'");
    check_parse_error("jitter:0.4@1.5", "'jitter'");
    check_parse_error("gamma:0-1", "'gamma'");
    check_parse_error("blur:0.1-30", "'blur'");
    check_parse_error("blur:1", "'blur'");
    check_parse_error("noise:-1", "'noise'");
    check_parse_error("noise:abc", "'noise'");
    check_parse_error("solarize:0.5@x", "'solarize'");
    check_parse_error("erase:1.1", "'erase'");
    check_parse_error("norm:0.5", "'norm'");
    check_parse_error("norm:1;2/3", "'norm'");
    check_parse_error("norm:0.5/0", "'norm'");
    check_parse_error("hflip,,vflip", "empty op");
    check_parse_error("noise:nan", "'noise'");
    check_parse_error("bg", "'bg'");
    check_parse_error("bg:0", "'bg'");
    check_parse_error("bg:1.5", "'bg'");
    check_parse_error("bg:0.5@2", "'bg'");

    ss_augment *a = parse_ok(" rrc:0.3-1 , hflip,jitter:0.4:0.4,noise:0.05");
    const char *want = "rrc:0.3-1:0.75-1.3333333333333333,hflip:0.5,jitter:0.4:0.4:0:0@1,noise:0.05";
    CHECK_MSG(strcmp(ss_augment_describe(a), want) == 0, "describe: %s", ss_augment_describe(a));
    CHECK(ss_augment_count(a) == 4);
    ss_augment *b = parse_ok(ss_augment_describe(a));
    CHECK(strcmp(ss_augment_describe(a), ss_augment_describe(b)) == 0);
    ss_augment_free(a);
    ss_augment_free(b);

    a = parse_ok("crop:2,vflip,rot90,gray,gamma:0.5-2,blur:0.1-2@0.5,solarize:0.5,erase,"
                 "norm:0.49;0.48;0.45/0.25;0.24;0.26");
    want = "crop:2,vflip:0.5,rot90,gray:0.1,gamma:0.5-2,blur:0.1-2@0.5,solarize:0.5@0.5,erase:0.5,"
           "norm:0.49;0.48;0.45/0.25;0.24;0.26";
    CHECK_MSG(strcmp(ss_augment_describe(a), want) == 0, "describe: %s", ss_augment_describe(a));
    CHECK_OK(ss_augment_check(a, 3, 32, 32));
    CHECK(ss_augment_check(a, 1, 28, 28) == SS_ERR_SHAPE);
    CHECK(ss_augment_check(a, 4, 28, 28) == SS_ERR_SHAPE);
    b = parse_ok(ss_augment_describe(a));
    CHECK(strcmp(ss_augment_describe(a), ss_augment_describe(b)) == 0);
    ss_augment_free(a);
    ss_augment_free(b);

    a = parse_ok("bg:0.8,bg:0.3@1");
    CHECK_MSG(strcmp(ss_augment_describe(a), "bg:0.8@0.5,bg:0.3@1") == 0, "describe: %s", ss_augment_describe(a));
    ss_augment_free(a);

    a = parse_ok("");
    CHECK(strcmp(ss_augment_describe(a), "none") == 0 && ss_augment_count(a) == 0);
    ss_augment_free(a);
    a = parse_ok("none");
    CHECK(ss_augment_count(a) == 0);
    ss_augment_free(a);
}

static void test_flips(void)
{
    float img[9], want_h[9] = {2, 1, 0, 5, 4, 3, 8, 7, 6}, want_v[9] = {6, 7, 8, 3, 4, 5, 0, 1, 2};
    for (int i = 0; i < 9; i++) img[i] = (float)i;
    ss_rng r;
    ss_rng_seed(&r, 1, 0);
    ss_augment *a = parse_ok("hflip:1");
    ss_augment_apply(a, img, 1, 3, 3, &r);
    CHECK(memcmp(img, want_h, sizeof img) == 0);
    ss_augment_free(a);
    for (int i = 0; i < 9; i++) img[i] = (float)i;
    a = parse_ok("vflip:1");
    ss_augment_apply(a, img, 1, 3, 3, &r);
    CHECK(memcmp(img, want_v, sizeof img) == 0);
    ss_augment_free(a);
    /* p = 0: never flips */
    for (int i = 0; i < 9; i++) img[i] = (float)i;
    a = parse_ok("hflip:0,vflip:0");
    ss_augment_apply(a, img, 1, 3, 3, &r);
    for (int i = 0; i < 9; i++) CHECK(img[i] == (float)i);
    ss_augment_free(a);
    /* default p = 0.5: about half of 2000 flips */
    a = parse_ok("hflip");
    int flipped = 0;
    for (int t = 0; t < 2000; t++) {
        float v[2] = {0, 1};
        ss_augment_apply(a, v, 1, 1, 2, &r);
        flipped += v[0] == 1;
    }
    CHECK_MSG(flipped > 900 && flipped < 1100, "flipped %d of 2000", flipped);
    ss_augment_free(a);
}

static void test_rot90(void)
{
    /* 2x3 input [[0,1,2],[3,4,5]], numpy/torch rot90 results. */
    float in[6] = {0, 1, 2, 3, 4, 5}, out[6];
    float k1[6] = {2, 5, 1, 4, 0, 3}, k2[6] = {5, 4, 3, 2, 1, 0}, k3[6] = {3, 0, 4, 1, 5, 2};
    ss_rotate90(in, out, 1, 2, 3, 1);
    CHECK(memcmp(out, k1, sizeof out) == 0);
    ss_rotate90(in, out, 1, 2, 3, 2);
    CHECK(memcmp(out, k2, sizeof out) == 0);
    ss_rotate90(in, out, 1, 2, 3, 3);
    CHECK(memcmp(out, k3, sizeof out) == 0);
    ss_rotate90(in, out, 1, 2, 3, -1);
    CHECK(memcmp(out, k3, sizeof out) == 0);
    ss_rotate90(in, out, 1, 2, 3, 4);
    CHECK(memcmp(out, in, sizeof out) == 0);
    /* 3x3, two channels: [[0..2],[3..5],[6..8]] rotated once ccw */
    float sq[18], o[18];
    float sq1[9] = {2, 5, 8, 1, 4, 7, 0, 3, 6};
    for (int i = 0; i < 18; i++) sq[i] = (float)i;
    ss_rotate90(sq, o, 2, 3, 3, 1);
    for (int i = 0; i < 9; i++) CHECK(o[i] == sq1[i] && o[9 + i] == sq1[i] + 9);
    /* the rot90 op: the result is one of the 4 rotations, each seen */
    ss_augment *a = parse_ok("rot90");
    ss_rng r;
    ss_rng_seed(&r, 7, 0);
    int seen[4] = {0};
    for (int t = 0; t < 200; t++) {
        float img[9];
        memcpy(img, sq, sizeof img);
        ss_augment_apply(a, img, 1, 3, 3, &r);
        int which = -1;
        for (int k = 0; k < 4; k++) {
            float ref[9];
            ss_rotate90(sq, ref, 1, 3, 3, k);
            if (memcmp(ref, img, sizeof ref) == 0) which = k;
        }
        CHECK(which >= 0);
        if (which >= 0) seen[which]++;
    }
    CHECK(seen[0] && seen[1] && seen[2] && seen[3]);
    ss_augment_free(a);
}

static void fill_pattern(float *img, int n, uint64_t seed)
{
    ss_rng r;
    ss_rng_seed(&r, seed, 99);
    for (int i = 0; i < n; i++) img[i] = ss_rng_uniform(&r);
}

static void test_jitter_brightness_contrast(void)
{
    enum { N = 3 * 8 * 8 };
    float img[N], ref[N];
    fill_pattern(ref, N, 1);
    memcpy(img, ref, sizeof img);
    ss_augment *a = parse_ok("jitter:0.5");
    ss_rng r, rr;
    ss_rng_seed(&r, 42, 3);
    rr = r;
    ss_augment_apply(a, img, 3, 8, 8, &r);
    /* replay: probability draw, order shuffle, brightness factor */
    (void)ss_rng_uniform(&rr);
    int32_t order[4] = {0, 1, 2, 3};
    ss_rng_shuffle_i32(&rr, order, 4);
    float f = 0.5f + (1.5f - 0.5f) * ss_rng_uniform(&rr);
    int exact = 1;
    for (int i = 0; i < N; i++) {
        float e = f * ref[i];
        e = e > 1 ? 1 : e;
        exact &= img[i] == e;
    }
    CHECK_MSG(exact, "brightness factor %g not applied exactly", f);
    CHECK(memcmp(&r, &rr, sizeof r) == 0); /* same number of draws */
    ss_augment_free(a);

    /* contrast on a grey image: blend with the image mean */
    float g[16], g0[16];
    fill_pattern(g0, 16, 2);
    memcpy(g, g0, sizeof g);
    a = parse_ok("jitter:0:0.8");
    ss_rng_seed(&r, 5, 5);
    rr = r;
    ss_augment_apply(a, g, 1, 4, 4, &r);
    (void)ss_rng_uniform(&rr);
    ss_rng_shuffle_i32(&rr, order, 4);
    f = 0.2f + (1.8f - 0.2f) * ss_rng_uniform(&rr);
    double mean = 0;
    for (int i = 0; i < 16; i++) mean += g0[i];
    mean /= 16;
    for (int i = 0; i < 16; i++) {
        double e = f * g0[i] + (1 - f) * mean;
        e = e < 0 ? 0 : (e > 1 ? 1 : e);
        CHECK_NEAR(g[i], e, 1e-6);
    }
    ss_augment_free(a);

    /* saturation and hue leave grey images unchanged */
    memcpy(g, g0, sizeof g);
    a = parse_ok("jitter:0:0:0.9:0.4");
    ss_augment_apply(a, g, 1, 4, 4, &r);
    CHECK(memcmp(g, g0, sizeof g) == 0);
    ss_augment_free(a);
}

/* Independent textbook HSV -> RGB for the hue test. */
static void hsv2rgb_ref(double h, double s, double v, double out[3])
{
    double c = v * s, hp = h * 6.0, x = c * (1 - fabs(fmod(hp, 2.0) - 1));
    double r = 0, g = 0, b = 0;
    if (hp < 1) { r = c; g = x; }
    else if (hp < 2) { r = x; g = c; }
    else if (hp < 3) { g = c; b = x; }
    else if (hp < 4) { g = x; b = c; }
    else if (hp < 5) { r = x; b = c; }
    else { r = c; b = x; }
    out[0] = r + v - c;
    out[1] = g + v - c;
    out[2] = b + v - c;
}

static void test_jitter_hue_saturation(void)
{
    /* 1x2 RGB image: pure red and mid grey. */
    ss_augment *a = parse_ok("jitter:0:0:0:0.5");
    ss_rng r;
    ss_rng_seed(&r, 11, 0);
    for (int t = 0; t < 20; t++) {
        float img[6] = {1, 0.5f, 0, 0.5f, 0, 0.5f};
        ss_rng rr = r;
        ss_augment_apply(a, img, 3, 1, 2, &r);
        (void)ss_rng_uniform(&rr);
        int32_t order[4] = {0, 1, 2, 3};
        ss_rng_shuffle_i32(&rr, order, 4);
        float f = -0.5f + (0.5f - -0.5f) * ss_rng_uniform(&rr);
        double h = f - floor(f), e[3];
        hsv2rgb_ref(h, 1, 1, e);
        CHECK_NEAR(img[0], e[0], 1e-5);
        CHECK_NEAR(img[2], e[1], 1e-5);
        CHECK_NEAR(img[4], e[2], 1e-5);
        CHECK(img[1] == 0.5f && img[3] == 0.5f && img[5] == 0.5f);
    }
    ss_augment_free(a);

    /* saturation: blend with the luminance */
    a = parse_ok("jitter:0:0:1");
    float img[3] = {0.9f, 0.2f, 0.4f};
    ss_rng rr = r;
    ss_augment_apply(a, img, 3, 1, 1, &r);
    (void)ss_rng_uniform(&rr);
    int32_t order[4] = {0, 1, 2, 3};
    ss_rng_shuffle_i32(&rr, order, 4);
    float f = 0.0f + 2.0f * ss_rng_uniform(&rr);
    double l = 0.2989 * 0.9 + 0.587 * 0.2 + 0.114 * 0.4;
    double in[3] = {0.9, 0.2, 0.4};
    for (int k = 0; k < 3; k++) {
        double e = f * in[k] + (1 - f) * l;
        e = e < 0 ? 0 : (e > 1 ? 1 : e);
        CHECK_NEAR(img[k], e, 1e-6);
    }
    ss_augment_free(a);
}

static void test_gray_gamma_solarize_noise_norm(void)
{
    ss_rng r;
    ss_rng_seed(&r, 3, 3);
    ss_augment *a = parse_ok("gray:1");
    float px[6] = {1, 0.5f, 0, 0.5f, 0, 0.5f}; /* red, grey */
    ss_augment_apply(a, px, 3, 1, 2, &r);
    CHECK_NEAR(px[0], 0.2989, 1e-7);
    CHECK_NEAR(px[2], 0.2989, 1e-7);
    CHECK_NEAR(px[4], 0.2989, 1e-7);
    CHECK_NEAR(px[1], 0.5 * 0.9999, 1e-6); /* torchvision weights sum to 0.9999 */
    CHECK_NEAR(px[5], 0.5 * 0.9999, 1e-6);
    ss_augment_free(a);

    a = parse_ok("gamma:2-2");
    float g[4] = {0, 0.5f, 0.25f, 1};
    ss_augment_apply(a, g, 1, 2, 2, &r);
    CHECK_NEAR(g[1], 0.25, 1e-7);
    CHECK_NEAR(g[2], 0.0625, 1e-7);
    CHECK(g[0] == 0 && g[3] == 1);
    ss_augment_free(a);

    a = parse_ok("solarize:0.5@1");
    float s[4] = {0.2f, 0.5f, 0.8f, 1.0f};
    ss_augment_apply(a, s, 1, 2, 2, &r);
    CHECK(s[0] == 0.2f && s[1] == 0.5f && s[3] == 0.0f);
    CHECK_NEAR(s[2], 0.2, 1e-7);
    ss_augment_free(a);

    a = parse_ok("noise:0.1");
    float n[16], n0[16];
    fill_pattern(n0, 16, 3);
    memcpy(n, n0, sizeof n);
    ss_rng rr = r;
    ss_augment_apply(a, n, 1, 4, 4, &r);
    for (int i = 0; i < 16; i++) {
        float e = n0[i] + 0.1f * ss_rng_normal(&rr);
        e = e < 0 ? 0 : (e > 1 ? 1 : e);
        CHECK(n[i] == e);
    }
    ss_augment_free(a);

    a = parse_ok("norm:0.5/0.25");
    float m[2] = {0.75f, 0.0f};
    ss_augment_apply(a, m, 1, 1, 2, &r);
    CHECK(m[0] == 1.0f && m[1] == -2.0f);
    ss_augment_free(a);
    a = parse_ok("norm:0.1;0.2;0.3/0.5;0.25;2");
    float m3[3] = {0.6f, 0.7f, 0.3f};
    ss_augment_apply(a, m3, 3, 1, 1, &r);
    CHECK_NEAR(m3[0], 1.0, 1e-6);
    CHECK_NEAR(m3[1], 2.0, 1e-6);
    CHECK_NEAR(m3[2], 0.0, 1e-6);
    ss_augment_free(a);
}

/* bg: a bright 2x2 object on a dark 6x6 grey background; the background
 * (connected to the border, <= 0.04) becomes l + a * (the image turned 180
 * degrees and shifted by (dy, dx)), replaying the documented draws; the
 * object and a dark hole inside it stay; RGB photos without a dark border
 * and images whose dark part is under 10% are left as they are (the draws
 * made all the same); odd sizes stay in bounds. */
static void test_bg(void)
{
    enum { H = 6, W = 6 };
    float img[H * W], out[H * W];
    for (int i = 0; i < H * W; i++) img[i] = 0.02f;
    img[2 * W + 2] = 0.9f;
    img[2 * W + 3] = 0.8f;
    img[3 * W + 2] = 0.7f;
    img[3 * W + 3] = 0.6f;
    ss_augment *a = parse_ok("bg:0.8@1");
    for (int t = 0; t < 20; t++) {
        ss_rng r, rr;
        ss_rng_seed(&r, 9, (uint64_t)t);
        rr = r;
        memcpy(out, img, sizeof out);
        ss_augment_apply(a, out, 1, H, W, &r);
        CHECK(ss_rng_uniform(&rr) < 1.0);
        float am = 0.8f * (float)ss_rng_uniform(&rr), l = 0.4f * (float)ss_rng_uniform(&rr);
        int dy = (int)ss_rng_below(&rr, H), dx = (int)ss_rng_below(&rr, W);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = y * W + x;
                if (img[i] > 0.04f) {
                    CHECK(out[i] == img[i]);
                    continue;
                }
                int sy = H - 1 - (y + dy) % H, sx = W - 1 - (x + dx) % W;
                float e = l + am * img[sy * W + sx];
                e = e > 1 ? 1 : e;
                CHECK_NEAR(out[i], e, 1e-6);
            }
    }
    /* a ring object: the dark hole inside is not background */
    float ring[H * W];
    for (int i = 0; i < H * W; i++) ring[i] = 0;
    for (int y = 1; y <= 4; y++)
        for (int x = 1; x <= 4; x++) ring[y * W + x] = (y == 1 || y == 4 || x == 1 || x == 4) ? 1.0f : 0.0f;
    ss_augment *a1 = parse_ok("bg:1@1");
    int hole_kept = 1, border_moved = 0;
    for (int t = 0; t < 10; t++) {
        ss_rng r;
        ss_rng_seed(&r, 10, (uint64_t)t);
        memcpy(out, ring, sizeof out);
        ss_augment_apply(a1, out, 1, H, W, &r);
        hole_kept &= out[2 * W + 2] == 0 && out[3 * W + 3] == 0;
        border_moved += out[0] != 0;
    }
    CHECK(hole_kept);
    CHECK(border_moved > 0);
    /* no dark surround (RGB photo-like) -> unchanged */
    float rgb[3 * H * W], rgb0[3 * H * W];
    fill_pattern(rgb0, 3 * H * W, 5);
    for (int i = 0; i < 3 * H * W; i++) rgb0[i] = 0.2f + 0.5f * rgb0[i];
    memcpy(rgb, rgb0, sizeof rgb);
    ss_rng r;
    ss_rng_seed(&r, 11, 0);
    ss_augment_apply(a1, rgb, 3, H, W, &r);
    CHECK(memcmp(rgb, rgb0, sizeof rgb) == 0);
    /* ... and its draws were made all the same: p, a, l, dy, dx */
    ss_rng rr;
    ss_rng_seed(&rr, 11, 0);
    (void)ss_rng_uniform(&rr);
    (void)ss_rng_uniform(&rr);
    (void)ss_rng_uniform(&rr);
    (void)ss_rng_below(&rr, H);
    (void)ss_rng_below(&rr, W);
    CHECK(ss_rng_u64(&r) == ss_rng_u64(&rr));
    /* a dark border under 10% of the image is not a background: a 10x10
     * image bright everywhere but 9 border pixels stays as it is */
    float few[100], few0[100];
    for (int i = 0; i < 100; i++) few0[i] = 0.5f;
    for (int i = 0; i < 9; i++) few0[i] = 0.0f;
    memcpy(few, few0, sizeof few);
    ss_rng_seed(&r, 12, 0);
    ss_augment_apply(a1, few, 1, 10, 10, &r);
    CHECK(memcmp(few, few0, sizeof few) == 0);
    /* odd sizes (the op's scratch block is carved in one allocation;
     * ASan checks its bounds here): 5x7 and 27x27 with a dark surround,
     * grey and RGB */
    static const int sz[2][2] = {{5, 7}, {27, 27}};
    for (int t = 0; t < 2; t++)
        for (int c = 1; c <= 3; c += 2) {
            int hh = sz[t][0], ww = sz[t][1];
            float odd[3 * 27 * 27];
            for (int i = 0; i < c * hh * ww; i++) odd[i] = 0;
            for (int k = 0; k < c; k++) odd[k * hh * ww + (hh / 2) * ww + ww / 2] = 0.9f;
            ss_rng_seed(&r, 13, (uint64_t)(t * 4 + c));
            ss_augment_apply(a1, odd, c, hh, ww, &r);
            int centre = 1, in_range = 1;
            for (int k = 0; k < c; k++) centre &= odd[k * hh * ww + (hh / 2) * ww + ww / 2] == 0.9f;
            for (int i = 0; i < c * hh * ww; i++) in_range &= odd[i] >= 0 && odd[i] <= 1;
            CHECK(centre && in_range);
        }
    ss_augment_free(a);
    ss_augment_free(a1);
}

static void test_blur_delta(void)
{
    enum { S = 15 };
    float img[S * S] = {0};
    img[7 * S + 7] = 1;
    ss_rng r;
    ss_rng_seed(&r, 1, 1);
    ss_augment *a = parse_ok("blur:1-1");
    ss_augment_apply(a, img, 1, S, S, &r);
    double k[7], sum = 0;
    for (int t = 0; t < 7; t++) sum += k[t] = exp(-0.5 * (t - 3) * (t - 3));
    double tot = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double e = (abs(y - 7) <= 3 && abs(x - 7) <= 3) ? k[y - 4] * k[x - 4] / (sum * sum) : 0;
            CHECK_NEAR(img[y * S + x], e, 1e-7);
            tot += img[y * S + x];
        }
    CHECK_NEAR(tot, 1.0, 1e-5);
    /* reflect padding: delta at (1,1) of a 4x4 image, sigma 1. Output
     * index 0 sees index 1 twice (offset +1, and -1 reflected to 1); index 1
     * sees itself at offset 0 and at offset -2 (index -1 reflects to 1). */
    float c4[16] = {0};
    c4[5] = 1;
    ss_augment_apply(a, c4, 1, 4, 4, &r);
    double k0 = k[3] / sum, k1 = k[2] / sum, k2 = k[1] / sum;
    CHECK_NEAR(c4[5], (k0 + k2) * (k0 + k2), 1e-7);
    CHECK_NEAR(c4[4], (k0 + k2) * k1 * 2, 1e-7);
    CHECK_NEAR(c4[0], 4 * k1 * k1, 1e-7);
    ss_augment_free(a);
}

static void test_rrc_crop_erase(void)
{
    enum { S = 8 };
    float img[3 * S * S], ref[3 * S * S];
    fill_pattern(ref, 3 * S * S, 5);
    memcpy(img, ref, sizeof img);
    ss_rng r;
    ss_rng_seed(&r, 9, 9);
    ss_augment *a = parse_ok("rrc:1-1:1-1");
    ss_augment_apply(a, img, 3, S, S, &r);
    CHECK(memcmp(img, ref, sizeof img) == 0);
    ss_augment_free(a);

    /* quarter-area square crop, upscaled x2, of a horizontal ramp x/8 */
    a = parse_ok("rrc:0.25-0.25:1-1");
    for (int t = 0; t < 10; t++) {
        float ramp[S * S];
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) ramp[y * S + x] = (float)x / 8;
        ss_rng rr = r;
        ss_augment_apply(a, ramp, 1, S, S, &r);
        (void)ss_rng_uniform(&rr);
        (void)ss_rng_uniform(&rr);
        (void)ss_rng_below(&rr, 5);
        int left = (int)ss_rng_below(&rr, 5);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double s = 0.5 * (x + 0.5) - 0.5;
                s = s < 0 ? 0 : (s > 3 ? 3 : s);
                CHECK_NEAR(ramp[y * S + x], (left + s) / 8, 1e-6);
            }
    }
    ss_augment_free(a);

    /* crop:2 shifts by (dy,dx) in [-2,2] with zero fill */
    a = parse_ok("crop:2");
    for (int t = 0; t < 10; t++) {
        float im[S * S];
        for (int i = 0; i < S * S; i++) im[i] = (float)(i + 1);
        ss_rng rr = r;
        ss_augment_apply(a, im, 1, S, S, &r);
        int dy = (int)ss_rng_below(&rr, 5) - 2, dx = (int)ss_rng_below(&rr, 5) - 2;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int sy = y + dy, sx = x + dx;
                float e = (sy >= 0 && sy < S && sx >= 0 && sx < S) ? (float)(sy * S + sx + 1) : 0;
                CHECK(im[y * S + x] == e);
            }
    }
    ss_augment_free(a);

    /* erase:1 zeroes one rectangle of 2%..33% of the area (rounding) */
    a = parse_ok("erase:1");
    int erased_any = 0;
    for (int t = 0; t < 20; t++) {
        enum { E = 32 };
        static float im[E * E];
        for (int i = 0; i < E * E; i++) im[i] = 1;
        ss_augment_apply(a, im, 1, E, E, &r);
        int y0 = E, y1 = -1, x0 = E, x1 = -1, zeros = 0;
        for (int y = 0; y < E; y++)
            for (int x = 0; x < E; x++)
                if (im[y * E + x] == 0) {
                    zeros++;
                    y0 = y < y0 ? y : y0; y1 = y > y1 ? y : y1;
                    x0 = x < x0 ? x : x0; x1 = x > x1 ? x : x1;
                }
        if (zeros) {
            erased_any++;
            CHECK(zeros == (y1 - y0 + 1) * (x1 - x0 + 1));
            CHECK(zeros >= 10 && zeros <= 400);
        }
    }
    CHECK(erased_any >= 15);
    ss_augment_free(a);
}

static void test_pipeline(void)
{
    enum { C = 3, H = 32, W = 32, N = C * H * W };
    static float base[N], x1[N], x2[N];
    fill_pattern(base, N, 77);
    ss_augment *a = parse_ok("rrc:0.3-1,hflip,jitter:0.4:0.4,noise:0.05");
    ss_augment *full = parse_ok("rrc:0.08-1,crop:4,hflip,vflip,rot90,jitter:0.4:0.4:0.4:0.1@0.8,"
                                "gray:0.2,gamma:0.7-1.4,blur:0.1-2@0.5,solarize:0.5@0.2,erase:0.5,"
                                "bg:0.8,noise:0.02");
    int ok_range = 1, same = 1, differs = 0;
    for (int t = 0; t < 50; t++) {
        const ss_augment *p = t % 2 ? a : full;
        int c = t % 4 < 2 ? 3 : 1;
        ss_rng r1, r2;
        ss_rng_seed(&r1, 1234, (uint64_t)t);
        ss_rng_seed(&r2, 1234, (uint64_t)t);
        memcpy(x1, base, sizeof x1);
        memcpy(x2, base, sizeof x2);
        ss_augment_apply(p, x1, c, H, W, &r1);
        ss_augment_transform((void *)p, x2, c, H, W, &r2);
        same &= memcmp(x1, x2, (size_t)c * H * W * sizeof(float)) == 0;
        differs += memcmp(x1, base, (size_t)c * H * W * sizeof(float)) != 0;
        for (int i = 0; i < c * H * W; i++) ok_range &= isfinite(x1[i]) && x1[i] >= 0 && x1[i] <= 1;
    }
    CHECK(ok_range);
    CHECK(same);
    CHECK(differs == 50);

    /* throughput of the SimCLR-style pipeline on 28x28 grey (informative) */
    float img[28 * 28];
    ss_rng r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int t = 0; t < 20000; t++) {
        ss_rng_seed(&r, 1, (uint64_t)t);
        memcpy(img, base, sizeof img);
        ss_augment_apply(a, img, 1, 28, 28, &r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("SimCLR pipeline, 28x28 grey: %.1f us/image (one thread)\n", 1e6 * sec / 20000);
    ss_augment_free(a);
    ss_augment_free(full);
}

/* Splicing an op into a parsed pipeline (the demo adds bg after the crops
 * and flips): position, canonical result, and the parser's checks. */
static void test_insert(void)
{
    ss_augment *a = parse_ok("crop:2, hflip ,rot90,noise:0.1,crop:1");
    CHECK(ss_augment_geometric_prefix(a) == 3);
    CHECK(ss_augment_has_op(a, "noise") && ss_augment_has_op(a, "crop") && !ss_augment_has_op(a, "bg"));
    CHECK(!ss_augment_has_op(a, "wobble") && !ss_augment_has_op(a, NULL) && !ss_augment_has_op(NULL, "crop"));
    ss_augment *b = NULL;
    CHECK(ss_augment_insert(a, ss_augment_geometric_prefix(a), "bg:0.8@0.5", &b) == SS_OK && b);
    CHECK_MSG(strcmp(ss_augment_describe(b), "crop:2,hflip:0.5,rot90,bg:0.8@0.5,noise:0.1,crop:1") == 0, "insert: %s",
              ss_augment_describe(b));
    CHECK(ss_augment_count(b) == 6 && ss_augment_has_op(b, "bg"));
    ss_augment_free(b);
    CHECK(ss_augment_insert(a, 99, "gray:1,erase", &b) == SS_OK); /* past the end: appended */
    CHECK_MSG(strcmp(ss_augment_describe(b), "crop:2,hflip:0.5,rot90,noise:0.1,crop:1,gray:1,erase:0.5") == 0,
              "insert at end: %s", ss_augment_describe(b));
    ss_augment_free(b);
    CHECK(ss_augment_insert(a, -1, "gray", &b) == SS_OK); /* before the start: first */
    CHECK_MSG(strcmp(ss_augment_describe(b), "gray:0.1,crop:2,hflip:0.5,rot90,noise:0.1,crop:1") == 0, "insert at -1: %s",
              ss_augment_describe(b));
    ss_augment_free(b);
    static const char *blank[] = {"", "  ", "none", " none\t"}; /* nothing to insert: the same pipeline */
    for (int i = 0; i < 4; i++) {
        CHECK(ss_augment_insert(a, 1, blank[i], &b) == SS_OK);
        CHECK_MSG(b && strcmp(ss_augment_describe(a), ss_augment_describe(b)) == 0, "insert '%s'", blank[i]);
        ss_augment_free(b);
    }
    CHECK(ss_augment_insert(a, 1, "hflip", NULL) == SS_ERR_INVALID);
    b = (ss_augment *)1;
    CHECK(ss_augment_insert(a, 0, "bg:2", &b) == SS_ERR_INVALID && b == NULL && strstr(ss_errmsg(), "bg"));
    ss_augment_free(a);
    a = parse_ok("norm:0.5/0.5");
    CHECK(ss_augment_geometric_prefix(a) == 0);
    CHECK(ss_augment_insert(a, 0, "bg:0.8@0.5", &b) == SS_OK); /* before norm: fine */
    ss_augment_free(b);
    b = (ss_augment *)1;
    CHECK(ss_augment_insert(a, 1, "hflip", &b) == SS_ERR_INVALID && b == NULL && strstr(ss_errmsg(), "norm"));
    ss_augment_free(a);
    a = parse_ok("none");
    CHECK(ss_augment_geometric_prefix(a) == 0 && ss_augment_insert(a, 0, "hflip", &b) == SS_OK);
    CHECK(strcmp(ss_augment_describe(b), "hflip:0.5") == 0);
    ss_augment_free(b);
    CHECK(ss_augment_insert(a, 0, "", &b) == SS_OK && ss_augment_count(b) == 0);
    ss_augment_free(b);
    ss_augment_free(a);
}

int main(void)
{
    test_parse();
    test_insert();
    test_flips();
    test_rot90();
    test_jitter_brightness_contrast();
    test_jitter_hue_saturation();
    test_gray_gamma_solarize_noise_norm();
    test_bg();
    test_blur_delta();
    test_rrc_crop_erase();
    test_pipeline();
    TEST_MAIN_END();
}
