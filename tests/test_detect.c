/* Detection: IoU, NMS, CenterNet encode/decode round trip, COCO-style mAP on
 * hand-worked cases, COCO reader (round trip and errors), loss gradients,
 * and the detector's loss falling on a few real scenes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gradcheck.h"
#include "selfsup/detect.h"
#include "selfsup/fileio.h"
#include "selfsup/runtime.h"
#include "testutil.h"

static const char *FMNIST = "/usr/share/datasets/fashion-mnist";

static ss_box B(float x0, float y0, float x1, float y1) { return (ss_box){x0, y0, x1, y1}; }

static void test_iou(void)
{
    CHECK_NEAR(ss_box_iou(B(0, 0, 2, 2), B(0, 0, 2, 2)), 1.0, 1e-7);
    CHECK_NEAR(ss_box_iou(B(0, 0, 2, 2), B(2, 0, 4, 2)), 0.0, 0); /* touching */
    CHECK_NEAR(ss_box_iou(B(0, 0, 2, 2), B(1, 0, 3, 2)), 1.0 / 3.0, 1e-7);
    CHECK_NEAR(ss_box_iou(B(0, 0, 10, 10), B(1, 1, 11, 11)), 81.0 / 119.0, 1e-6);
    CHECK_NEAR(ss_box_iou(B(0, 0, 4, 4), B(1, 1, 3, 3)), 0.25, 1e-7); /* contained */
    CHECK_NEAR(ss_box_iou(B(0, 0, 0, 0), B(0, 0, 0, 0)), 0.0, 0);     /* empty */
}

static void test_nms(void)
{
    ss_detection d[5] = {
        {B(1, 1, 11, 11), 0, 0.8f},   /* overlaps A at 0.68: suppressed */
        {B(20, 20, 30, 30), 0, 0.7f}, /* apart: kept */
        {B(0, 0, 10, 10), 0, 0.9f},   /* A */
        {B(0, 0, 10, 10), 1, 0.85f},  /* same box, other class: kept */
        {B(0, 0, 10, 9), 0, 0.1f},    /* overlaps A at 0.9: suppressed */
    };
    int64_t k = ss_nms(d, 5, 0.5f);
    CHECK(k == 3);
    CHECK(d[0].score == 0.9f && d[0].cls == 0);
    CHECK(d[1].score == 0.85f && d[1].cls == 1);
    CHECK(d[2].score == 0.7f && d[2].box.x0 == 20);
    /* Threshold above the overlap keeps B. */
    ss_detection e[2] = {{B(0, 0, 10, 10), 0, 0.9f}, {B(1, 1, 11, 11), 0, 0.8f}};
    CHECK(ss_nms(e, 2, 0.7f) == 2);
}

static void test_encode_decode(void)
{
    const int S = 64, stride = 4, oh = S / stride, ow = S / stride, C = 3;
    ss_det_object objs[4] = {
        {B(3, 5, 21, 30), 0},
        {B(30.5f, 2, 60, 17.25f), 2},
        {B(40, 40, 63, 63), 0},
        {B(10, 44, 26, 60), 1},
    };
    float heat[3 * 16 * 16], reg[16], regmap[4 * 16 * 16];
    int32_t cell[4];
    int64_t k = ss_centernet_encode(objs, 4, C, oh, ow, stride, heat, cell, reg);
    CHECK(k == 4);
    /* Peaks of 1 at the centre cells, values in [0,1] elsewhere. */
    for (int j = 0; j < 4; j++) CHECK_NEAR(heat[(size_t)objs[j].cls * oh * ow + cell[j]], 1.0, 0);
    int ones = 0, bad = 0;
    for (int i = 0; i < C * oh * ow; i++) {
        ones += heat[i] == 1.0f;
        bad += heat[i] < 0 || heat[i] > 1;
    }
    CHECK(ones == 4 && bad == 0);
    CHECK_NEAR(reg[0], 18.0 / 4, 1e-6); /* w in cells */
    CHECK_NEAR(reg[1], 25.0 / 4, 1e-6);
    CHECK_NEAR(reg[2], 12.0 / 4 - 3, 1e-6); /* centre x 12 px = 3.0 cells: offset 0 */
    CHECK_NEAR(reg[3], 17.5 / 4 - 4, 1e-6);
    memset(regmap, 0, sizeof regmap);
    for (int j = 0; j < 4; j++)
        for (int q = 0; q < 4; q++) regmap[q * oh * ow + cell[j]] = reg[j * 4 + q];
    ss_detection out[10];
    int64_t n = ss_centernet_decode(heat, regmap, C, oh, ow, stride, 10, 0.99f, 0.5f, out);
    CHECK(n == 4);
    int found = 0;
    for (int j = 0; j < 4; j++)
        for (int64_t i = 0; i < n; i++)
            if (out[i].cls == objs[j].cls && fabsf(out[i].box.x0 - objs[j].box.x0) < 1e-4f &&
                fabsf(out[i].box.y0 - objs[j].box.y0) < 1e-4f && fabsf(out[i].box.x1 - objs[j].box.x1) < 1e-4f &&
                fabsf(out[i].box.y1 - objs[j].box.y1) < 1e-4f && out[i].score == 1.0f) {
                found++;
                break;
            }
    CHECK(found == 4);
    /* Top-k caps the count; a low threshold finds no extra peaks (gaussians are unimodal). */
    CHECK(ss_centernet_decode(heat, regmap, C, oh, ow, stride, 2, 0.99f, 2.0f, out) == 2);
    CHECK(ss_centernet_decode(heat, regmap, C, oh, ow, stride, 10, 0.01f, 0.5f, out) == 4);
}

/* One image, one class, 2 (or 3) ground-truth boxes; detections whose
 * IoU is 1 (tp) or 0 (fp) in the given score order. */
static double ap_of(const int *tp, int nd, int ngt)
{
    ss_det_object gt[3];
    ss_detection d[8];
    for (int j = 0; j < ngt; j++) gt[j] = (ss_det_object){B(10.0f * j * 2, 0, 10.0f * j * 2 + 10, 10), 0};
    int next = 0;
    for (int i = 0; i < nd; i++) {
        ss_box b = tp[i] ? gt[next++].box : B(100, 100, 110, 110);
        d[i] = (ss_detection){b, 0, 0.9f - 0.1f * i};
    }
    int64_t gs[2] = {0, ngt}, ds[2] = {0, nd};
    ss_det_metrics m;
    if (ss_det_evaluate(gt, gs, d, ds, 1, 1, 100, &m)) return -1;
    double r = m.map50;
    CHECK_NEAR(m.map, m.map50, 1e-12); /* IoU 1 or 0: the same at every threshold */
    ss_det_metrics_free(&m);
    return r;
}

static void test_map(void)
{
    /* Values from pycocotools' accumulate() logic (101-point interpolation). */
    CHECK_NEAR(ap_of((int[]){1, 1}, 2, 2), 1.0, 1e-12);
    CHECK_NEAR(ap_of((int[]){0, 1, 1}, 3, 2), 0.6666666666666669, 1e-12); /* FP ranked first: 2/3 */
    CHECK_NEAR(ap_of((int[]){1, 0, 1}, 3, 2), 0.834983498349835, 1e-12);  /* (51 + 50*2/3) / 101 */
    CHECK_NEAR(ap_of((int[]){1, 0, 1, 0}, 4, 3), 0.5544554455445545, 1e-12);
    CHECK_NEAR(ap_of((int[]){0}, 1, 2), 0.0, 0);
    CHECK_NEAR(ap_of((int[]){0}, 0, 2), 0.0, 0); /* no detections */

    /* Two images, two classes, perfect detections (plus a class without
     * ground truth that is excluded from the mean). */
    ss_det_object gt[3] = {{B(0, 0, 10, 10), 0}, {B(20, 20, 40, 30), 1}, {B(5, 5, 15, 25), 0}};
    ss_detection d[4] = {{B(0, 0, 10, 10), 0, 0.9f}, {B(20, 20, 40, 30), 1, 0.8f}, {B(5, 5, 15, 25), 0, 0.7f},
                         {B(50, 50, 60, 60), 2, 0.95f}};
    int64_t gs[3] = {0, 2, 3}, ds[3] = {0, 2, 4};
    ss_det_metrics m;
    CHECK_OK(ss_det_evaluate(gt, gs, d, ds, 2, 3, 100, &m));
    CHECK_NEAR(m.map50, 1.0, 1e-12);
    CHECK_NEAR(m.map, 1.0, 1e-12);
    CHECK(isnan(m.ap[2]));
    ss_det_metrics_free(&m);

    /* Localisation: IoU 0.64 with the only ground truth matches at
     * t = .50 .. .60 (3 of 10 thresholds): mAP@0.5 1, mAP@[.5:.95] 0.3. A
     * detection in the other image cannot match it. */
    ss_det_object g1[1] = {{B(0, 0, 10, 10), 0}};
    ss_detection d1[2] = {{B(0, 0, 10, 6.4f), 0, 0.9f}, {B(0, 0, 10, 10), 0, 0.95f}};
    int64_t gs1[3] = {0, 1, 1}, ds1[3] = {0, 1, 2};
    CHECK_OK(ss_det_evaluate(g1, gs1, d1, ds1, 2, 1, 100, &m));
    /* The higher-scored detection is in image 2 (no ground truth): an FP first. */
    CHECK_NEAR(m.map50, 0.5, 1e-12);
    ss_det_metrics_free(&m);
    int64_t ds2[3] = {0, 1, 1};
    CHECK_OK(ss_det_evaluate(g1, gs1, d1, ds2, 2, 1, 100, &m));
    CHECK_NEAR(m.map50, 1.0, 1e-12);
    CHECK_NEAR(m.map75, 0.0, 1e-12);
    CHECK_NEAR(m.map, 0.3, 1e-12);
    ss_det_metrics_free(&m);
    /* A duplicate detection of a matched box is a false positive. */
    ss_detection d3[2] = {{B(0, 0, 10, 10), 0, 0.9f}, {B(0, 0, 10, 10), 0, 0.8f}};
    int64_t gs3[2] = {0, 1}, ds3[2] = {0, 2};
    CHECK_OK(ss_det_evaluate(g1, gs3, d3, ds3, 1, 1, 100, &m));
    CHECK_NEAR(m.map, 1.0, 1e-12); /* precision at recall 1 is 1 (the FP comes after) */
    ss_det_metrics_free(&m);
    /* max_dets = 1 per image and class: only the best-scored one counts. */
    ss_detection d4[2] = {{B(50, 50, 60, 60), 0, 0.9f}, {B(0, 0, 10, 10), 0, 0.8f}};
    CHECK_OK(ss_det_evaluate(g1, gs3, d4, ds3, 1, 1, 1, &m));
    CHECK_NEAR(m.map, 0.0, 1e-12);
    ss_det_metrics_free(&m);
}

/* ---- COCO files ------------------------------------------------------------------ */
static char tmpdir[256];

static void write_text(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    ss_write_file_atomic(p, text, strlen(text));
}

static ss_status load_json(const char *name, ss_det_dataset *d)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return ss_coco_load(p, NULL, NULL, d);
}

static void expect_error(const char *name, const char *json, const char *needle)
{
    write_text(name, json);
    ss_det_dataset d;
    ss_status s = load_json(name, &d);
    CHECK_MSG(s != SS_OK && strstr(ss_errmsg(), needle) && strstr(ss_errmsg(), name), "%s: got '%s', want '%s'", name,
              ss_errmsg(), needle);
    ss_det_dataset_free(&d);
}

static void test_coco(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ss_test_detect_%d", (int)getpid());
    /* Scenes from real items: write, read back, compare. */
    ss_dataset src;
    ss_load_opts lo = {.split = "test", .max_images = 300};
    CHECK_OK(ss_dataset_load(FMNIST, &lo, &src));
    ss_scene_opts so = ss_scene_defaults();
    so.n = 6;
    so.size = 48;
    so.seed = 3;
    ss_det_dataset sc, back;
    CHECK_OK(ss_scenes_generate(&src, &so, &sc));
    CHECK(sc.nobjs >= 6 && sc.nobjs <= 24);
    int inside = 1;
    for (int64_t j = 0; j < sc.nobjs; j++) {
        ss_box b = sc.objs[j].box;
        inside &= b.x0 >= 0 && b.y0 >= 0 && b.x1 <= 48 && b.y1 <= 48 && b.x1 > b.x0 && b.y1 > b.y0;
        inside &= sc.objs[j].cls >= 0 && sc.objs[j].cls < 10;
    }
    CHECK(inside);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/scenes", tmpdir);
    CHECK_OK(ss_det_dataset_write(&sc, dir));
    char js[400];
    snprintf(js, sizeof js, "%s/annotations.json", dir);
    CHECK_OK(ss_coco_load(js, NULL, NULL, &back));
    CHECK(back.images.n == 6 && back.images.c == 1 && back.images.h == 48 && back.nobjs == sc.nobjs);
    CHECK(back.images.nclasses == 10 && !strcmp(back.images.class_names[0], "T-shirt/top"));
    CHECK(back.images.pixels && !memcmp(back.images.pixels, sc.images.pixels, 6 * 48 * 48));
    int same = back.nobjs == sc.nobjs;
    for (int64_t j = 0; same && j < sc.nobjs; j++)
        same = sc.objs[j].cls == back.objs[j].cls && !memcmp(&sc.objs[j].box, &back.objs[j].box, sizeof(ss_box));
    CHECK(same);
    for (int64_t i = 0; i <= 6; i++) CHECK(back.start[i] == sc.start[i]);
    ss_det_dataset_free(&back);
    /* Resized on load: boxes scale with the image. */
    ss_coco_opts co = {0, 96, 2};
    CHECK_OK(ss_coco_load(js, NULL, &co, &back));
    CHECK(back.images.n == 2 && back.images.h == 96 && back.nobjs == sc.start[2]);
    if (back.nobjs > 0) CHECK_NEAR(back.objs[0].box.x1, 2 * sc.objs[0].box.x1, 1e-4);
    ss_det_dataset_free(&back);
    ss_det_dataset_free(&sc);
    ss_dataset_free(&src);

    /* A hand-written file with the scene images: category ids mapped in
     * list order, crowd and zero-area boxes skipped. */
    char hand[1024];
    snprintf(hand, sizeof hand,
             "{\"images\":[{\"id\":7,\"file_name\":\"000001.png\"},{\"id\":3,\"file_name\":\"000000.png\"}],"
             "\"categories\":[{\"id\":12,\"name\":\"cat\"},{\"id\":5,\"name\":\"dog\"}],"
             "\"annotations\":[{\"image_id\":3,\"category_id\":5,\"bbox\":[1,2,10,20]},"
             "{\"image_id\":7,\"category_id\":12,\"bbox\":[4,4,8,8]},"
             "{\"image_id\":3,\"category_id\":12,\"bbox\":[0,0,5,5],\"iscrowd\":1},"
             "{\"image_id\":3,\"category_id\":12,\"bbox\":[0,0,0,5]}]}");
    write_text("scenes/hand.json", hand);
    ss_det_dataset d;
    CHECK_OK(load_json("scenes/hand.json", &d));
    CHECK(d.images.n == 2 && d.nobjs == 2 && d.images.nclasses == 2);
    /* images[0] has id 7 (a cat at [4,4,8,8]); images[1] id 3 (a dog at [1,2,10,20]). */
    CHECK(d.start[1] == 1 && d.objs[0].cls == 0 && d.objs[0].box.x1 == 12 && d.objs[0].box.y1 == 12);
    CHECK(d.objs[1].cls == 1 && d.objs[1].box.x1 == 11 && d.objs[1].box.y1 == 22);
    CHECK(d.image_ids[0] == 7 && d.cat_ids[0] == 12 && !strcmp(d.images.class_names[1], "dog"));
    ss_det_dataset_free(&d);

    /* Errors name the file and the field. */
    const char *imgs = "\"images\":[{\"id\":1,\"file_name\":\"000000.png\"}]";
    const char *cats = "\"categories\":[{\"id\":1,\"name\":\"a\"}]";
    char buf[1024];
    expect_error("scenes/e1.json", "{\"images\": [", "not valid JSON");
    snprintf(buf, sizeof buf, "{%s}", imgs);
    expect_error("scenes/e2.json", buf, "categories");
    snprintf(buf, sizeof buf, "{%s,%s,\"annotations\":[{\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,3,4]},"
                              "{\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,3]}]}", imgs, cats);
    expect_error("scenes/e3.json", buf, "annotations[1].bbox");
    snprintf(buf, sizeof buf, "{%s,%s,\"annotations\":[{\"image_id\":1,\"category_id\":9,\"bbox\":[1,2,3,4]}]}", imgs,
             cats);
    expect_error("scenes/e4.json", buf, "annotations[0].category_id");
    snprintf(buf, sizeof buf, "{%s,%s,\"annotations\":[{\"image_id\":2,\"category_id\":1,\"bbox\":[1,2,3,4]}]}", imgs,
             cats);
    expect_error("scenes/e5.json", buf, "annotations[0].image_id");
    snprintf(buf, sizeof buf, "{%s,%s,\"annotations\":[{\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,-3,4]}]}",
             imgs, cats);
    expect_error("scenes/e6.json", buf, "annotations[0].bbox");
    snprintf(buf, sizeof buf, "{\"images\":[{\"id\":1}],%s}", cats);
    expect_error("scenes/e7.json", buf, "images[0].file_name");
    snprintf(buf, sizeof buf, "{\"images\":[{\"id\":1,\"file_name\":\"../x.png\"}],%s}", cats);
    expect_error("scenes/e8.json", buf, "images[0].file_name");
    snprintf(buf, sizeof buf, "{%s,\"categories\":[{\"id\":1},{\"id\":1}]}", imgs);
    expect_error("scenes/e9.json", buf, "twice");
    snprintf(buf, sizeof buf, "{\"images\":[{\"id\":1,\"file_name\":\"missing.png\"}],%s}", cats);
    write_text("scenes/e10.json", buf);
    CHECK(load_json("scenes/e10.json", &d) == SS_ERR_IO && strstr(ss_errmsg(), "missing.png"));
    ss_det_dataset_free(&d);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
}

/* ---- loss gradients -------------------------------------------------------------- */
static float g_heat[2 * 3 * 4 * 4];

static ss_tensor *f_focal(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    return ss_focal_heatmap_loss(g, x[0], g_heat);
}

static ss_tensor *f_l1(ss_graph *g, ss_tensor **x, void *c)
{
    (void)c;
    int64_t cells[3] = {5, 16 + 2, 16 + 15};
    float t[12] = {1, 2, 0.5f, 0.25f, -1, 3, 0.1f, 0.9f, 2, 2, 0.4f, 0.6f}, w[4] = {0.1f, 0.1f, 1, 1};
    return ss_sparse_l1_loss(g, x[0], cells, t, 3, w);
}

static void test_loss_grads(void)
{
    ss_rng r;
    ss_rng_seed(&r, 5, 0);
    for (int i = 0; i < 2 * 3 * 16; i++) g_heat[i] = ss_rng_uniform(&r) * 0.9f;
    g_heat[3] = g_heat[40] = g_heat[77] = 1.0f;
    gc_input in = {4, {2, 3, 4, 4}, NULL, 1};
    in.data = malloc(sizeof(float) * 96);
    gc_fill(in.data, 96, -3, 3, 11);
    gc_opts o = gc_default();
    gradcheck("focal_heatmap_loss", f_focal, NULL, 1, &in, o);
    /* The value: one positive at logit 0 (p = 1/2) alone. */
    ss_graph *g = ss_graph_new();
    float z[1] = {0}, t1[1] = {1};
    ss_tensor *l = ss_focal_heatmap_loss(g, ss_wrap(g, z, 4, (int64_t[]){1, 1, 1, 1}), t1);
    CHECK(l && fabs(l->data[0] - 0.25 * log(2.0)) < 1e-6);
    ss_graph_free(g);
    free(in.data);
    gc_input in2 = {4, {2, 4, 4, 4}, NULL, 1};
    in2.data = malloc(sizeof(float) * 128);
    gc_fill(in2.data, 128, -3, 3, 12);
    gradcheck("sparse_l1_loss", f_l1, NULL, 1, &in2, o);
    free(in2.data);
}

/* ---- the loss falls on real scenes ---------------------------------------------- */
static void test_loss_falls(void)
{
    int sanitized = getenv("SS_SANITIZED") != NULL;
    ss_dataset src;
    ss_load_opts lo = {.split = "train", .max_images = 500};
    CHECK_OK(ss_dataset_load(FMNIST, &lo, &src));
    ss_scene_opts so = ss_scene_defaults();
    so.n = 8;
    so.size = 32;
    so.min_scale = 0.3f;
    so.max_scale = 0.7f;
    so.seed = 1;
    ss_det_dataset sc;
    CHECK_OK(ss_scenes_generate(&src, &so, &sc));
    ss_dataset_free(&src);
    ss_model m;
    ss_detector det;
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 32};
    CHECK_OK(ss_model_create(&m, &ec, 0));
    CHECK_OK(ss_detector_register(&det, &m, 10));
    CHECK_OK(ss_model_finalize(&m, 1));
    ss_detector_init_bias(&det);
    ss_optimizer *opt = NULL;
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    CHECK_OK(ss_opt_new(m.p, &oc, &opt));
    float *x = malloc(sizeof(float) * 8 * 32 * 32);
    m.mean[0] = 0.2f;
    m.std[0] = 0.3f;
    ss_images_to_float(&sc.images, NULL, 0, 8, m.mean, m.std, x);
    const ss_det_object *objs[8];
    int64_t counts[8];
    for (int i = 0; i < 8; i++) {
        objs[i] = sc.objs + sc.start[i];
        counts[i] = sc.start[i + 1] - sc.start[i];
    }
    ss_graph *g = ss_graph_new();
    int steps = sanitized ? 6 : 15;
    float first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        ss_graph_reset(g);
        ss_graph_set_training(g, 1);
        ss_params_zero_grad(m.p);
        ss_tensor *l = ss_detector_loss(g, &m, &det, ss_wrap(g, x, 4, (int64_t[]){8, 1, 32, 32}), objs, counts, 0.1f);
        if (!l) {
            CHECK_MSG(0, "detector loss failed: %s", ss_graph_errmsg(g));
            break;
        }
        if (s == 0) first = l->data[0];
        last = l->data[0];
        CHECK_OK(ss_backward(g, l));
        ss_opt_step(opt, 2e-3f);
    }
    printf("detector loss: %.4f -> %.4f in %d steps\n", first, last, steps);
    CHECK(isfinite(first) && first > 1.0f);
    CHECK(last < (sanitized ? 0.9f : 0.6f) * first);
    /* Prediction runs and returns at most k boxes per image. */
    ss_detection out[8 * 5];
    int64_t start[9];
    CHECK_OK(ss_detector_predict(&m, &det, &sc.images, NULL, 8, 4, 5, 0.0f, 0.5f, out, start));
    CHECK(start[0] == 0 && start[8] <= 40 && start[8] > 0);
    /* An encoder without a feature map is refused. */
    ss_model mv;
    ss_encoder_config ev = {.kind = "vit-t", .in_chans = 1, .img_size = 32};
    CHECK_OK(ss_model_create(&mv, &ev, 0));
    CHECK(ss_detector_register(&det, &mv, 10) == SS_ERR_UNSUPPORTED);
    ss_model_free(&mv);
    ss_graph_free(g);
    ss_opt_free(opt);
    free(x);
    ss_model_free(&m);
    ss_det_dataset_free(&sc);
}

int main(void)
{
    ss_set_threads(2);
    test_iou();
    test_nms();
    test_encode_decode();
    test_map();
    test_coco();
    test_loss_grads();
    test_loss_falls();
    TEST_MAIN_END();
}
