/* Boxes: IoU, class-wise NMS, CenterNet target encoding and decoding, and
 * COCO-style mAP (pycocotools' bbox protocol). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/detect.h"

float ss_box_iou(ss_box a, ss_box b)
{
    float iw = fminf(a.x1, b.x1) - fmaxf(a.x0, b.x0), ih = fminf(a.y1, b.y1) - fmaxf(a.y0, b.y0);
    if (iw <= 0 || ih <= 0) return 0.0f;
    double inter = (double)iw * ih;
    double ua = (double)(a.x1 - a.x0) * (a.y1 - a.y0) + (double)(b.x1 - b.x0) * (b.y1 - b.y0) - inter;
    return ua > 0 ? (float)(inter / ua) : 0.0f;
}

/* Stable descending sort by score: ties keep their input order. */
typedef struct scored {
    float score;
    int64_t pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int sort_dets(ss_detection *d, int64_t n)
{
    if (n <= 1) return 0;
    scored *s = malloc((size_t)n * sizeof *s);
    ss_detection *tmp = malloc((size_t)n * sizeof *tmp);
    if (!s || !tmp) {
        free(s);
        free(tmp);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) s[i] = (scored){isnan(d[i].score) ? -INFINITY : d[i].score, i};
    qsort(s, (size_t)n, sizeof *s, cmp_scored);
    for (int64_t i = 0; i < n; i++) tmp[i] = d[s[i].pos];
    memcpy(d, tmp, (size_t)n * sizeof *d);
    free(s);
    free(tmp);
    return 0;
}

int64_t ss_nms(ss_detection *dets, int64_t n, float iou_thresh)
{
    if (n <= 0) return 0;
    if (sort_dets(dets, n)) return n; /* out of memory: keep everything */
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int keep = 1;
        for (int64_t j = 0; j < kept && keep; j++)
            if (dets[j].cls == dets[i].cls && ss_box_iou(dets[j].box, dets[i].box) > iou_thresh) keep = 0;
        if (keep) dets[kept++] = dets[i];
    }
    return kept;
}

/* CenterNet's gaussian_radius (min_overlap 0.7) for a box of h x w cells. */
static float gaussian_radius(float h, float w)
{
    const float mo = 0.7f;
    float b1 = h + w, c1 = w * h * (1 - mo) / (1 + mo);
    float r1 = (b1 + sqrtf(fmaxf(0, b1 * b1 - 4 * c1))) / 2;
    float b2 = 2 * (h + w), c2 = (1 - mo) * w * h;
    float r2 = (b2 + sqrtf(fmaxf(0, b2 * b2 - 16 * c2))) / 2;
    float a3 = 4 * mo, b3 = -2 * mo * (h + w), c3 = (mo - 1) * w * h;
    float r3 = (b3 + sqrtf(fmaxf(0, b3 * b3 - 4 * a3 * c3))) / 2;
    return fminf(r1, fminf(r2, r3));
}

int64_t ss_centernet_encode(const ss_det_object *objs, int64_t n, int nclasses, int oh, int ow, int stride,
                            float *heat, int32_t *cell, float *reg)
{
    memset(heat, 0, sizeof(float) * (size_t)nclasses * oh * ow);
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++) {
        const ss_det_object *o = &objs[j];
        if (o->cls < 0 || o->cls >= nclasses) continue;
        float w = (o->box.x1 - o->box.x0) / stride, h = (o->box.y1 - o->box.y0) / stride;
        if (!(w > 0 && h > 0)) continue;
        float cx = (o->box.x0 + o->box.x1) / 2 / stride, cy = (o->box.y0 + o->box.y1) / 2 / stride;
        int ix = (int)floorf(cx), iy = (int)floorf(cy);
        if (ix < 0 || iy < 0 || ix >= ow || iy >= oh) continue;
        int r = (int)gaussian_radius(ceilf(h), ceilf(w));
        if (r < 0) r = 0;
        float sigma = (2 * r + 1) / 6.0f;
        float *hm = heat + (size_t)o->cls * oh * ow;
        for (int y = iy - r; y <= iy + r; y++)
            for (int x = ix - r; x <= ix + r; x++) {
                if (x < 0 || y < 0 || x >= ow || y >= oh) continue;
                float dx = (float)(x - ix), dy = (float)(y - iy);
                float g = expf(-(dx * dx + dy * dy) / (2 * sigma * sigma));
                float *v = &hm[(size_t)y * ow + x];
                if (g > *v) *v = g;
            }
        cell[k] = iy * ow + ix;
        reg[k * 4 + 0] = w;
        reg[k * 4 + 1] = h;
        reg[k * 4 + 2] = cx - ix;
        reg[k * 4 + 3] = cy - iy;
        k++;
    }
    return k;
}

int64_t ss_centernet_decode(const float *heat, const float *reg, int nclasses, int oh, int ow, int stride, int k,
                            float thresh, float nms_iou, ss_detection *out)
{
    if (k <= 0) return 0;
    int64_t plane = (int64_t)oh * ow, ncand = 0, cap = (int64_t)nclasses * plane;
    ss_detection *cand = malloc((size_t)(cap ? cap : 1) * sizeof *cand);
    if (!cand) return 0;
    for (int c = 0; c < nclasses; c++) {
        const float *hm = heat + (size_t)c * plane;
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                float v = hm[(size_t)y * ow + x];
                if (!(v >= thresh)) continue;
                int peak = 1; /* 3x3 max-pool, stride 1, padding 1: v equals the window max */
                for (int yy = y - 1; yy <= y + 1 && peak; yy++)
                    for (int xx = x - 1; xx <= x + 1; xx++)
                        if (xx >= 0 && yy >= 0 && xx < ow && yy < oh && hm[(size_t)yy * ow + xx] > v) {
                            peak = 0;
                            break;
                        }
                if (!peak) continue;
                size_t at = (size_t)y * ow + x;
                float w = fmaxf(reg[at], 0) * stride, h = fmaxf(reg[plane + at], 0) * stride;
                float cx = (x + reg[2 * plane + at]) * stride, cy = (y + reg[3 * plane + at]) * stride;
                ss_detection *d = &cand[ncand++];
                d->box = (ss_box){cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
                d->cls = c;
                d->score = v;
            }
    }
    sort_dets(cand, ncand);
    if (ncand > k) ncand = k;
    if (nms_iou <= 1) ncand = ss_nms(cand, ncand, nms_iou);
    memcpy(out, cand, (size_t)ncand * sizeof *out);
    free(cand);
    return ncand;
}

/* ---- COCO-style mAP ------------------------------------------------------------ */
void ss_det_metrics_free(ss_det_metrics *m)
{
    if (!m) return;
    free(m->ap50);
    free(m->ap);
    memset(m, 0, sizeof *m);
}

typedef struct cls_det {
    float score;
    int64_t order; /* position in the concatenation (image order, then score order) */
    int tp[10];    /* matched at threshold t */
} cls_det;

static int cmp_cls_det(const void *a, const void *b)
{
    const cls_det *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

ss_status ss_det_evaluate(const ss_det_object *gt, const int64_t *gt_start, const ss_detection *dets,
                          const int64_t *det_start, int64_t nimages, int nclasses, int max_dets,
                          ss_det_metrics *out)
{
    memset(out, 0, sizeof *out);
    if (nimages < 0 || nclasses < 1 || max_dets < 1)
        return ss_seterr(SS_ERR_INVALID, "detection eval: bad arguments (images %lld, classes %d, max_dets %d)",
                         (long long)nimages, nclasses, max_dets);
    out->nclasses = nclasses;
    out->ap50 = malloc(sizeof(double) * (size_t)nclasses);
    out->ap = malloc(sizeof(double) * (size_t)nclasses);
    int64_t totd = det_start[nimages], totg = gt_start[nimages];
    cls_det *cd = malloc(sizeof(cls_det) * (size_t)(totd ? totd : 1));
    ss_detection *imd = malloc(sizeof(ss_detection) * (size_t)(totd ? totd : 1));
    int *gmatch = malloc(sizeof(int) * 10 * (size_t)(totg ? totg : 1));
    double *pr = malloc(sizeof(double) * (size_t)(totd ? totd : 1));
    double *rc = malloc(sizeof(double) * (size_t)(totd ? totd : 1));
    if (!out->ap50 || !out->ap || !cd || !imd || !gmatch || !pr || !rc) {
        free(cd);
        free(imd);
        free(gmatch);
        free(pr);
        free(rc);
        ss_det_metrics_free(out);
        return ss_seterr(SS_ERR_NOMEM, "detection eval: out of memory");
    }
    double thr[10];
    for (int t = 0; t < 10; t++) thr[t] = 0.5 + 0.05 * t; /* np.linspace(.5, .95, 10) */
    double sum50 = 0, sum75 = 0, sumall = 0;
    int ncls_gt = 0;
    for (int c = 0; c < nclasses; c++) {
        int64_t ncd = 0, npig = 0;
        for (int64_t i = 0; i < nimages; i++) {
            /* This image's detections of class c, by score, at most max_dets. */
            int64_t nd = 0;
            for (int64_t j = det_start[i]; j < det_start[i + 1]; j++)
                if (dets[j].cls == c) imd[nd++] = dets[j];
            sort_dets(imd, nd);
            if (nd > max_dets) nd = max_dets;
            int64_t g0 = gt_start[i], g1 = gt_start[i + 1];
            for (int64_t g = g0; g < g1; g++) {
                npig += gt[g].cls == c;
                for (int t = 0; t < 10; t++) gmatch[g * 10 + t] = 0;
            }
            for (int64_t j = 0; j < nd; j++) {
                cls_det *e = &cd[ncd];
                e->score = imd[j].score;
                e->order = ncd++;
                for (int t = 0; t < 10; t++) {
                    double best = fmin(thr[t], 1 - 1e-10);
                    int64_t m = -1;
                    for (int64_t g = g0; g < g1; g++) {
                        if (gt[g].cls != c || gmatch[g * 10 + t]) continue;
                        double iou = ss_box_iou(imd[j].box, gt[g].box);
                        if (iou < best) continue;
                        best = iou;
                        m = g;
                    }
                    e->tp[t] = m >= 0;
                    if (m >= 0) gmatch[m * 10 + t] = 1;
                }
            }
        }
        if (npig == 0) {
            out->ap50[c] = out->ap[c] = NAN;
            continue;
        }
        ncls_gt++;
        qsort(cd, (size_t)ncd, sizeof *cd, cmp_cls_det);
        double apsum = 0;
        for (int t = 0; t < 10; t++) {
            double tp = 0, fp = 0, ap = 0;
            for (int64_t j = 0; j < ncd; j++) {
                tp += cd[j].tp[t];
                fp += !cd[j].tp[t];
                rc[j] = tp / (double)npig;
                pr[j] = tp / (fp + tp + 2.220446049250313e-16);
            }
            for (int64_t j = ncd - 1; j > 0; j--)
                if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
            int64_t pos = 0;
            for (int r = 0; r <= 100; r++) {
                double rt = r * 0.01; /* np.linspace(0, 1, 101) */
                while (pos < ncd && rc[pos] < rt) pos++; /* np.searchsorted(rc, rt, 'left') */
                if (pos < ncd) ap += pr[pos];
            }
            ap /= 101.0;
            if (t == 0) out->ap50[c] = ap;
            if (t == 5) sum75 += ap;
            apsum += ap;
        }
        out->ap[c] = apsum / 10.0;
        sum50 += out->ap50[c];
        sumall += out->ap[c];
    }
    out->map50 = ncls_gt ? sum50 / ncls_gt : NAN;
    out->map75 = ncls_gt ? sum75 / ncls_gt : NAN;
    out->map = ncls_gt ? sumall / ncls_gt : NAN;
    free(cd);
    free(imd);
    free(gmatch);
    free(pr);
    free(rc);
    return SS_OK;
}
