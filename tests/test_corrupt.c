/* Robustness corruptions: known outputs on hand-made inputs, severity
 * ordering and range on real Fashion-MNIST test images, determinism, the
 * background mask, and the PNG contact sheet. */
#include "selfsup/corrupt.h"
#include "selfsup/robust.h"
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FM_PATH "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
enum { NIMG = 20, S = 28, P = S * S };

static float fm[NIMG][P];

/* Minimal IDX reader: 16-byte header (magic 0x803, n, rows, cols). */
static int load_fmnist(void)
{
    gzFile f = gzopen(FM_PATH, "rb");
    if (!f) return 0;
    unsigned char hdr[16], px[P];
    int ok = gzread(f, hdr, 16) == 16 && hdr[2] == 8 && hdr[3] == 3 && hdr[11] == S && hdr[15] == S;
    for (int i = 0; ok && i < NIMG; i++) {
        ok = gzread(f, px, P) == P;
        for (int j = 0; ok && j < P; j++) fm[i][j] = (float)px[j] / 255.0f;
    }
    gzclose(f);
    return ok;
}

/* A 3-channel test image: an object over a smooth coloured scene. */
static void make_rgb(const float *g, float *rgb)
{
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int i = y * S + x;
            rgb[i] = 0.15f + 0.7f * g[i];
            rgb[P + i] = 0.25f + 0.5f * (float)x / S;
            rgb[2 * P + i] = 0.5f + 0.3f * sinf((float)y / 3.0f) * (1 - g[i]);
        }
}

static double mad(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return s / n;
}

static void test_table_and_errors(void)
{
    int n = ss_corruption_count();
    CHECK(n == 14);
    const char *fams[] = {"lighting", "background", "noise", "blur", "digital"};
    for (int i = 0; i < n; i++) {
        const ss_corruption *c = ss_corruption_get(i);
        int fam_ok = 0;
        for (int k = 0; k < 5; k++) fam_ok |= strcmp(c->family, fams[k]) == 0;
        CHECK_MSG(fam_ok && c->apply, "%s", c->name);
        CHECK(ss_corruption_find(c->name) == c);
    }
    CHECK(ss_corruption_get(-1) == NULL && ss_corruption_get(n) == NULL);
    CHECK(ss_corruption_find("fog") == NULL);
    float img[4] = {0};
    CHECK(ss_corrupt_image("fog", 1, 0, 0, img, 1, 2, 2) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "'fog'") && strstr(ss_errmsg(), "jpeg"));
    CHECK(ss_corrupt_image("jpeg", 0, 0, 0, img, 1, 2, 2) == SS_ERR_RANGE);
    CHECK(ss_corrupt_image("jpeg", 6, 0, 0, img, 1, 2, 2) == SS_ERR_RANGE);
    CHECK(ss_corrupt_image("jpeg", 1, 0, 0, img, 2, 1, 2) == SS_ERR_SHAPE);
    CHECK(ss_corrupt_image("jpeg", 1, 0, 0, NULL, 1, 2, 2) == SS_ERR_INVALID);
}

static void test_known_outputs(void)
{
    float g[3] = {0.0f, 0.5f, 0.95f};
    CHECK_OK(ss_corrupt_image("brightness_up", 2, 0, 0, g, 1, 1, 3));
    CHECK_NEAR(g[0], 0.1, 1e-7);
    CHECK_NEAR(g[1], 0.6, 1e-7);
    CHECK(g[2] == 1.0f);
    /* RGB: V += 0.3 keeping hue/saturation: (0.5,0.25,0) -> (0.8,0.4,0); black -> grey 0.3 */
    float rgb[6] = {0.5f, 0.0f, 0.25f, 0.0f, 0.0f, 0.0f};
    CHECK_OK(ss_corrupt_image("brightness_up", 5, 0, 0, rgb, 3, 1, 2));
    CHECK_NEAR(rgb[0], 0.8, 1e-6);
    CHECK_NEAR(rgb[2], 0.4, 1e-6);
    CHECK_NEAR(rgb[4], 0.0, 1e-7);
    CHECK_NEAR(rgb[1], 0.3, 1e-7);
    CHECK_NEAR(rgb[3], 0.3, 1e-7);
    CHECK_NEAR(rgb[5], 0.3, 1e-7);
    float d[2] = {0.0f, 0.5f};
    CHECK_OK(ss_corrupt_image("brightness_down", 1, 0, 0, d, 1, 1, 2));
    CHECK(d[0] == 0.0f);
    CHECK_NEAR(d[1], 0.45, 1e-7);

    float c4[4] = {0.0f, 0.2f, 0.4f, 0.6f}; /* mean 0.3, factor 0.5 */
    CHECK_OK(ss_corrupt_image("contrast", 2, 0, 0, c4, 1, 2, 2));
    CHECK_NEAR(c4[0], 0.15, 1e-7);
    CHECK_NEAR(c4[1], 0.25, 1e-7);
    CHECK_NEAR(c4[2], 0.35, 1e-7);
    CHECK_NEAR(c4[3], 0.45, 1e-7);
    float c2[6] = {0, 1, 0.5f, 0.5f, 1, 1}; /* per-channel means 0.5, 0.5, 1 */
    CHECK_OK(ss_corrupt_image("contrast", 5, 0, 0, c2, 3, 1, 2));
    CHECK_NEAR(c2[0], 0.425, 1e-6);
    CHECK_NEAR(c2[1], 0.575, 1e-6);
    CHECK(c2[2] == 0.5f && c2[3] == 0.5f && c2[4] == 1.0f && c2[5] == 1.0f);

    float gm[3] = {0.5f, 0.3f, 1.0f};
    CHECK_OK(ss_corrupt_image("gamma", 2, 0, 0, gm, 1, 1, 3));
    CHECK_NEAR(gm[0], 0.25, 1e-7);
    CHECK_NEAR(gm[1], 0.09, 1e-7);
    CHECK(gm[2] == 1.0f);

    /* pixelate severity 5 on 4x4: int(4*0.45) = 1 -> the image mean */
    float px[16], want5[16];
    for (int i = 0; i < 16; i++) px[i] = (float)i / 16;
    for (int i = 0; i < 16; i++) want5[i] = 7.5f / 16;
    CHECK_OK(ss_corrupt_image("pixelate", 5, 0, 0, px, 1, 4, 4));
    for (int i = 0; i < 16; i++) CHECK_NEAR(px[i], want5[i], 1e-7);
    /* severity 2: int(4*0.9) = 3: 4 -> 3 -> 4 with PIL BOX maps rows and
     * columns to [p0, (p1+p2)/2, (p1+p2)/2, p3] */
    float q[16];
    for (int i = 0; i < 16; i++) q[i] = (float)(i * i % 7) / 7;
    float want1[16];
    int map[4][2] = {{0, 0}, {1, 2}, {1, 2}, {3, 3}};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            float s = 0;
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) s += q[map[y][a] * 4 + map[x][b]];
            want1[y * 4 + x] = s / 4;
        }
    CHECK_OK(ss_corrupt_image("pixelate", 2, 0, 0, q, 1, 4, 4));
    for (int i = 0; i < 16; i++) CHECK_NEAR(q[i], want1[i], 1e-6);

    /* a flat image is a fixed point of every blur */
    float flat[400];
    for (const char *const *nm = (const char *const[]){"gaussian_blur", "defocus_blur", "motion_blur", NULL};
         *nm; nm++) {
        for (int i = 0; i < 400; i++) flat[i] = 0.375f;
        CHECK_OK(ss_corrupt_image(*nm, 5, 1, 2, flat, 1, 20, 20));
        for (int i = 0; i < 400; i++) CHECK_NEAR(flat[i], 0.375, 1e-6);
    }
    /* gaussian_blur severity 5 (sigma 1) of a delta far from the border:
     * separable normalised gaussian with radius int(4*1+0.5) = 4 */
    float del[121] = {0};
    del[60] = 1;
    CHECK_OK(ss_corrupt_image("gaussian_blur", 5, 0, 0, del, 1, 11, 11));
    double k[9], ks = 0;
    for (int t = 0; t < 9; t++) ks += k[t] = exp(-0.5 * (t - 4) * (t - 4));
    for (int y = 1; y < 10; y++)
        for (int x = 1; x < 10; x++) CHECK_NEAR(del[y * 11 + x], k[y - 1] * k[x - 1] / (ks * ks), 1e-7);
    /* defocus severity 5 (radius 1.5 -> 3x3 disk, alias sigma 0.1): a delta
     * becomes ~a 3x3 box of 1/9 */
    float dd[49] = {0};
    dd[24] = 1;
    CHECK_OK(ss_corrupt_image("defocus_blur", 5, 0, 0, dd, 1, 7, 7));
    CHECK_NEAR(dd[24], 1.0 / 9, 1e-4);
    CHECK_NEAR(dd[16], 1.0 / 9, 1e-4);
    CHECK_NEAR(dd[12], 0.0, 1e-6);
}

static void test_on_fashion_mnist(void)
{
    static float work[3 * P], work2[3 * P], rgb[NIMG][3 * P];
    for (int i = 0; i < NIMG; i++) make_rgb(fm[i], rgb[i]);
    int n = ss_corruption_count();
    for (int ci = 0; ci < n; ci++) {
        const char *name = ss_corruption_get(ci)->name;
        for (int c = 1; c <= 3; c += 2) {
            double mean_d[6] = {0}, first_d[6] = {0};
            int in_range = 1, determ = 1;
            for (int im = 0; im < NIMG; im++) {
                const float *src = c == 1 ? fm[im] : rgb[im];
                for (int s = 1; s <= 5; s++) {
                    memcpy(work, src, sizeof(float) * c * P);
                    memcpy(work2, src, sizeof(float) * c * P);
                    CHECK_OK(ss_corrupt_image(name, s, 2024, im, work, c, S, S));
                    CHECK_OK(ss_corrupt_image(name, s, 2024, im, work2, c, S, S));
                    determ &= memcmp(work, work2, sizeof(float) * c * P) == 0;
                    for (int j = 0; j < c * P; j++) in_range &= work[j] >= 0 && work[j] <= 1;
                    double dd = mad(work, src, c * P);
                    mean_d[s] += dd / NIMG;
                    if (im == 0) first_d[s] = dd;
                }
            }
            CHECK_MSG(in_range, "%s c=%d: values outside [0,1]", name, c);
            CHECK_MSG(determ, "%s c=%d: not deterministic", name, c);
            int mono = mean_d[1] > 0, mono0 = first_d[1] > 0;
            for (int s = 2; s <= 5; s++) {
                mono &= mean_d[s] > mean_d[s - 1];
                mono0 &= first_d[s] > first_d[s - 1];
            }
            CHECK_MSG(mono, "%s c=%d: mean |diff| over %d images not increasing: %.4f %.4f %.4f %.4f %.4f",
                      name, c, NIMG, mean_d[1], mean_d[2], mean_d[3], mean_d[4], mean_d[5]);
            if (c == 1)
                CHECK_MSG(mono0, "%s: |diff| on test image 0 not increasing: %.4f %.4f %.4f %.4f %.4f",
                          name, first_d[1], first_d[2], first_d[3], first_d[4], first_d[5]);
            if (getenv("SS_VERBOSE"))
                printf("%-20s c=%d  %.4f %.4f %.4f %.4f %.4f\n", name, c, mean_d[1], mean_d[2], mean_d[3],
                       mean_d[4], mean_d[5]);
        }
    }
    /* a different index gives a different draw for random corruptions */
    memcpy(work, fm[0], sizeof(float) * P);
    memcpy(work2, fm[0], sizeof(float) * P);
    ss_corrupt_image("gaussian_noise", 3, 7, 0, work, 1, S, S);
    ss_corrupt_image("gaussian_noise", 3, 7, 1, work2, 1, S, S);
    CHECK(memcmp(work, work2, sizeof(float) * P) != 0);
}

static void test_background_mask(void)
{
    static float work[3 * P];
    for (int im = 0; im < NIMG; im++)
        for (int s = 1; s <= 5; s++) {
            memcpy(work, fm[im], sizeof(float) * P);
            CHECK_OK(ss_corrupt_image("background", s, 5, im, work, 1, S, S));
            int kept = 1, changed = 0;
            for (int j = 0; j < P; j++) {
                if (fm[im][j] > 0.04f) kept &= work[j] == fm[im][j];
                changed += work[j] != fm[im][j];
            }
            CHECK_MSG(kept, "background changed object pixels of image %d severity %d", im, s);
            CHECK(changed > P / 10);
        }
    /* RGB: the centre is kept, the border is blended */
    float rgb[3 * P];
    make_rgb(fm[0], rgb);
    memcpy(work, rgb, sizeof rgb);
    CHECK_OK(ss_corrupt_image("background", 5, 5, 0, work, 3, S, S));
    int c0 = 14 * S + 14;
    CHECK(work[c0] == rgb[c0] && work[P + c0] == rgb[P + c0] && work[2 * P + c0] == rgb[2 * P + c0]);
    CHECK(mad(work, rgb, P) > 0.02);
}

static void test_grid_png(void)
{
    char dir[] = "/tmp/ss_corrupt_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/grid.png", dir);
    CHECK_OK(ss_corrupt_grid_png(path, fm[0], 1, S, S, 2024));
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 1000 && st.st_size < 200000);
    FILE *f = fopen(path, "rb");
    unsigned char sig[8] = {0};
    if (f) {
        CHECK(fread(sig, 1, 8, f) == 8);
        fclose(f);
    }
    CHECK(sig[0] == 0x89 && sig[1] == 'P' && sig[2] == 'N' && sig[3] == 'G');
    const char *keep = getenv("SS_CORRUPT_GRID_DIR"); /* to look at the sheets */
    if (keep) {
        char p2[512];
        snprintf(p2, sizeof p2, "%s/corruptions-fmnist.png", keep);
        CHECK_OK(ss_corrupt_grid_png(p2, fm[0], 1, S, S, 2024));
        float rgb[3 * P];
        make_rgb(fm[1], rgb);
        snprintf(p2, sizeof p2, "%s/corruptions-rgb.png", keep);
        CHECK_OK(ss_corrupt_grid_png(p2, rgb, 3, S, S, 2024));
    }
    unlink(path);
    rmdir(dir);
    CHECK(ss_corrupt_grid_png("/nonexistent-dir/x.png", fm[0], 1, S, S, 1) == SS_ERR_IO);
}

/* ss_robustness_eval: --only picks families and names, an unknown word is an
 * error that lists the choices, and an encoder without a head is refused. */
static void test_robustness_eval(void)
{
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    ss_model m, enc;
    memset(&m, 0, sizeof m);
    memset(&enc, 0, sizeof enc);
    CHECK_OK(ss_model_create(&m, &ec, 3));
    CHECK_OK(ss_model_finalize(&m, 1));
    CHECK_OK(ss_model_create(&enc, &ec, 0));
    CHECK_OK(ss_model_finalize(&enc, 1));
    m.mean[0] = enc.mean[0] = 0.5f;
    m.std[0] = enc.std[0] = 0.25f;
    uint8_t px[4 * 28 * 28];
    for (int i = 0; i < 4 * 28 * 28; i++) px[i] = (uint8_t)((i * 37) % 256);
    int32_t y[4] = {0, 1, 2, 1};
    ss_dataset d = {.n = 4, .c = 1, .h = 28, .w = 28, .pixels = px, .labels = y, .nclasses = 3};
    snprintf(d.source, sizeof d.source, "synthetic");
    ss_robust_result r;
    CHECK_OK(ss_robustness_eval(&m, &d, 0, 0, "lighting,gaussian_noise", &r));
    CHECK(r.n == 6 && r.images == 4);
    int lighting = 0;
    for (int i = 0; i < r.n; i++) lighting += !strcmp(r.family[i], "lighting");
    CHECK(lighting == 5 && !strcmp(r.name[r.n - 1], "gaussian_noise"));
    for (int i = 0; i < r.n; i++)
        for (int s = 0; s < SS_CORRUPT_SEVERITIES; s++) CHECK(r.acc[i][s] >= 0 && r.acc[i][s] <= 1);
    ss_robust_result r2; /* spaces around the words are allowed */
    CHECK_OK(ss_robustness_eval(&m, &d, 0, 0, " lighting , gaussian_noise", &r2));
    CHECK(r2.n == 6 && r2.clean == r.clean && r2.acc[5][4] == r.acc[5][4]);
    CHECK(ss_robustness_eval(&m, &d, 0, 0, "lighting,lightning", &r) == SS_ERR_INVALID);
    CHECK_MSG(strstr(ss_errmsg(), "'lightning'") && strstr(ss_errmsg(), "lighting, background, noise, blur, digital") &&
                  strstr(ss_errmsg(), "motion_blur"),
              "%s", ss_errmsg());
    CHECK(ss_robustness_eval(&enc, &d, 0, 0, NULL, &r) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "no classifier head") != NULL);
    ss_model_free(&m);
    ss_model_free(&enc);
}

int main(void)
{
    test_robustness_eval();
    test_table_and_errors();
    test_known_outputs();
    if (!load_fmnist()) {
        printf("cannot read %s; skipping the Fashion-MNIST checks\n", FM_PATH);
        CHECK(0);
    } else {
        test_on_fashion_mnist();
        test_background_mask();
        test_grid_png();
    }
    TEST_MAIN_END();
}
