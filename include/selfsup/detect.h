/* selfsup — object detection: scenes, COCO annotations, a CenterNet-style
 * detector on an encoder's feature map, decoding, NMS and COCO-style mAP.
 *
 *     ss_det_dataset d;
 *     if (ss_coco_load("scenes/annotations.json", NULL, NULL, &d) != SS_OK)
 *         fprintf(stderr, "selfsup: %s\n", ss_errmsg());
 *
 * Boxes are corners in pixels of the image as stored: (x0, y0) top-left,
 * (x1, y1) bottom-right, x1 >= x0; a pixel column j covers [j, j+1), so an
 * object occupying columns 3..7 has x0 = 3, x1 = 8 (as COCO's [x, y, w, h]
 * with w = 5). IoU uses areas (x1-x0)*(y1-y0) as pycocotools does.
 *
 * Classes are 0..nclasses-1 in memory; COCO category ids (any positive
 * integers) are mapped to them in the order of the "categories" list and
 * back on writing.
 */
#ifndef SELFSUP_DETECT_H
#define SELFSUP_DETECT_H

#include "selfsup/data.h"
#include "selfsup/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_box {
    float x0, y0, x1, y1;
} ss_box;

typedef struct ss_det_object {
    ss_box box;
    int32_t cls;
} ss_det_object;

typedef struct ss_detection {
    ss_box box;
    int32_t cls;
    float score;
} ss_detection;

/* Images (in `images`: pixels, n, c, h, w, nclasses, class_names; labels
 * NULL) with their objects: image i owns objs[start[i] .. start[i+1]). */
typedef struct ss_det_dataset {
    ss_dataset images;
    int64_t *start;     /* n + 1 offsets */
    ss_det_object *objs;
    int64_t nobjs;
    int32_t *cat_ids;   /* COCO category id of each class (nclasses) */
    int64_t *image_ids; /* COCO image id of each image (n) */
    char **file_names;  /* file name of each image (n), relative to the image folder */
} ss_det_dataset;

void ss_det_dataset_free(ss_det_dataset *d);

/* ---- COCO JSON ---------------------------------------------------------------- */
typedef struct ss_coco_opts {
    int channels;          /* 0 = from the first image, 1 grey, 3 RGB */
    int size;              /* 0 = the first image's size; else every image is
                              resized to size x size and its boxes scaled */
    int64_t max_images;    /* 0 = all; else the first N of "images" */
} ss_coco_opts;

/* Read COCO-style annotations (json_path: "images" [{id, file_name, width,
 * height}], "annotations" [{image_id, category_id, bbox [x,y,w,h]}],
 * "categories" [{id, name}]) and decode the images from image_dir (NULL =
 * the JSON file's folder + "/images" when that exists, else the JSON's
 * folder). Images of another size than the target are resized (bilinear)
 * and their boxes scaled. Annotations with iscrowd = 1 are skipped. A
 * malformed file is an SS_ERR_FORMAT error naming the file, the entry and
 * the field ("x.json: annotations[3].bbox: expected 4 numbers"). */
ss_status ss_coco_load(const char *json_path, const char *image_dir, const ss_coco_opts *o, ss_det_dataset *out);

/* Write d as images DIR/images/<file_name> (PNG) and DIR/annotations.json. */
ss_status ss_det_dataset_write(const ss_det_dataset *d, const char *dir);

/* ---- scene generator --------------------------------------------------------- */
typedef struct ss_scene_opts {
    int64_t n;             /* scenes */
    int size;              /* canvas size (square), >= 16 */
    int min_objects, max_objects;
    float min_scale, max_scale; /* object side as a fraction of the canvas */
    int texture;           /* 1 = smooth random texture background, 0 = black */
    float max_overlap;     /* largest IoU allowed between two objects of a scene */
    uint64_t seed;
} ss_scene_opts;

/* Defaults: 64x64, 1-4 objects, scale 0.22-0.6, texture, overlap 0.2. */
ss_scene_opts ss_scene_defaults(void);

/* Compose scenes from the labelled images of src (Fashion-MNIST items, or
 * CIFAR crops): each object is a random item of src, resized to a random
 * scale and pasted where its pixels are non-zero (grey) or whole (colour);
 * its box is the tight box of its non-zero mask. Class names come from src.
 * Deterministic in opts->seed. */
ss_status ss_scenes_generate(const ss_dataset *src, const ss_scene_opts *o, ss_det_dataset *out);

/* ---- boxes ------------------------------------------------------------------- */
float ss_box_iou(ss_box a, ss_box b);
/* Sort dets by score (descending, stable) and keep, per class, those whose
 * IoU with every higher-scored kept box of the same class is <= iou_thresh.
 * Returns the number kept (the first ones of dets, still in score order). */
int64_t ss_nms(ss_detection *dets, int64_t n, float iou_thresh);

/* CenterNet targets for one image on an output grid of oh x ow cells of
 * `stride` pixels: heat [nclasses*oh*ow] (gaussian peaks, max over objects,
 * radius from CenterNet's formula with min overlap 0.7), and per object
 * (up to n) the cell index cy*ow+cx, the size target (w/stride, h/stride)
 * and the sub-cell offset of its centre: reg[k*4 + 0..3] = w, h, dx, dy.
 * Returns the number of objects encoded (objects whose centre falls outside
 * the grid are skipped). */
int64_t ss_centernet_encode(const ss_det_object *objs, int64_t n, int nclasses, int oh, int ow, int stride,
                            float *heat, int32_t *cell, float *reg);

/* Decode one image's outputs: heat [C,oh,ow] (probabilities, after the
 * sigmoid), reg [4,oh,ow] (w, h, dx, dy in cell units): the peaks of heat
 * (values equal to the max of their 3x3 neighbourhood), the top k of them
 * with score >= thresh, boxes centred at (cx + dx, cy + dy) * stride, then
 * class-wise NMS at nms_iou (> 1 = off). Writes up to k detections into out
 * (score order) and returns their count. */
int64_t ss_centernet_decode(const float *heat, const float *reg, int nclasses, int oh, int ow, int stride, int k,
                            float thresh, float nms_iou, ss_detection *out);

/* ---- evaluation -------------------------------------------------------------- */
typedef struct ss_det_metrics {
    double map50, map75, map;   /* mAP@0.5, @0.75, @[.5:.95] (means over classes with ground truth) */
    double *ap50, *ap;          /* per class (nclasses, malloc'd; NAN for classes without ground truth) */
    int nclasses;
} ss_det_metrics;

/* COCO-style evaluation (pycocotools' bbox protocol, area "all", at most
 * max_dets detections per image by score): per class and IoU threshold
 * t in .50:.05:.95, detections of all images in descending score order are
 * greedily matched to the unmatched ground truth of their image with the
 * highest IoU >= t; precision is made monotone and read at the 101 recall
 * points 0:.01:1 (0 past the highest recall); AP is their mean. gt: image i
 * owns gt[gt_start[i] .. gt_start[i+1]), likewise dets. */
ss_status ss_det_evaluate(const ss_det_object *gt, const int64_t *gt_start, const ss_detection *dets,
                          const int64_t *det_start, int64_t nimages, int nclasses, int max_dets,
                          ss_det_metrics *out);
void ss_det_metrics_free(ss_det_metrics *m);

/* ---- losses (ops) ------------------------------------------------------------ */
/* CenterNet's penalty-reduced focal loss on logits [N,C,H,W] against target
 * heat (same numel; 1 at object centres): p = clamp(sigmoid(x), 1e-4, 1-1e-4),
 *   pos (t == 1): -(1-p)^2 log p;  neg: -(1-t)^4 p^2 log(1-p),
 * summed and divided by max(1, number of t == 1) -> [1]. heat is copied. */
ss_tensor *ss_focal_heatmap_loss(ss_graph *g, ss_tensor *logits, const float *heat);
/* Sparse weighted L1: pred [N,K,H,W]; for m objects, obj_cell[j] =
 * n*H*W + y*W + x picks pred[n, :, y, x]; loss = sum_j sum_k w[k] *
 * |pred - target[j*K + k]| / max(1, m) -> [1]. Arrays are copied. */
ss_tensor *ss_sparse_l1_loss(ss_graph *g, ss_tensor *pred, const int64_t *obj_cell, const float *target,
                             int64_t m, const float *w);

/* ---- the detector ------------------------------------------------------------ */
/* Head on the encoder's feature map: conv3x3 (feat -> 64) + ReLU, then
 * conv1x1 to nclasses heat logits and conv1x1 to 4 regression maps
 * (w, h, dx, dy). Names "det_head.conv.weight/bias", "det_head.heat.*",
 * "det_head.reg.*". */
typedef struct ss_detector {
    ss_tensor *conv_w, *conv_b, *heat_w, *heat_b, *reg_w, *reg_b;
    int nclasses, hidden;
} ss_detector;

/* Register the head in m->p (before ss_model_finalize); after finalize call
 * ss_detector_init_bias. */
ss_status ss_detector_register(ss_detector *d, ss_model *m, int nclasses);
void ss_detector_init_bias(ss_detector *d); /* heat bias -2.19 (prior 0.1) */
/* x [N,C,H,W] -> *heat [N,nclasses,H/s,W/s] logits, *reg [N,4,H/s,W/s]. */
ss_status ss_detector_forward(ss_graph *g, const ss_model *m, const ss_detector *d, ss_tensor *x, ss_tensor **heat,
                              ss_tensor **reg);
/* Loss of a batch: images x [N,...]; objects of item i at objs[start[i]..start[i+1]). */
ss_tensor *ss_detector_loss(ss_graph *g, const ss_model *m, const ss_detector *d, ss_tensor *x,
                            const ss_det_object *const *objs, const int64_t *counts, float size_weight);
/* Detections of images idx[0..n) of ds (NULL = all), eval mode: out gets k
 * slots per image, start[i]..start[i+1] the kept ones (out: n*k entries,
 * start: n+1, both caller-allocated). */
ss_status ss_detector_predict(const ss_model *m, const ss_detector *d, const ss_dataset *ds, const int32_t *idx,
                              int64_t n, int batch, int k, float thresh, float nms_iou, ss_detection *out,
                              int64_t *start);

#ifdef __cplusplus
}
#endif
#endif
