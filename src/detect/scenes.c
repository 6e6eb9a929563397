/* Detection scenes composed from a labelled image dataset: Fashion-MNIST
 * items (pasted where their pixels are non-zero) or CIFAR images (pasted
 * whole) at random positions and scales on a canvas with an optional smooth
 * random texture; boxes from each object's non-zero mask. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "selfsup/detect.h"

ss_scene_opts ss_scene_defaults(void)
{
    ss_scene_opts o;
    memset(&o, 0, sizeof o);
    o.n = 1000;
    o.size = 64;
    o.min_objects = 1;
    o.max_objects = 4;
    o.min_scale = 0.22f;
    o.max_scale = 0.6f;
    o.texture = 1;
    o.max_overlap = 0.2f;
    return o;
}

/* Smooth texture in [0, 80]: three random gratings plus a little noise. */
static void texture(uint8_t *px, int c, int s, ss_rng *r)
{
    for (int ch = 0; ch < c; ch++) {
        float fx[3], fy[3], ph[3], amp[3];
        for (int k = 0; k < 3; k++) {
            fx[k] = (ss_rng_uniform(r) * 2 - 1) * 0.5f;
            fy[k] = (ss_rng_uniform(r) * 2 - 1) * 0.5f;
            ph[k] = ss_rng_uniform(r) * 6.2831853f;
            amp[k] = 0.3f + 0.7f * ss_rng_uniform(r);
        }
        float base = 15 + 25 * ss_rng_uniform(r);
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++) {
                float v = 0;
                for (int k = 0; k < 3; k++) v += amp[k] * sinf(fx[k] * x + fy[k] * y + ph[k]);
                v = base + 12 * v + 6 * (ss_rng_uniform(r) - 0.5f);
                v = v < 0 ? 0 : (v > 80 ? 80 : v);
                px[(size_t)ch * s * s + (size_t)y * s + x] = (uint8_t)(v + 0.5f);
            }
    }
}

ss_status ss_scenes_generate(const ss_dataset *src, const ss_scene_opts *o, ss_det_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (!src->labels || src->nclasses < 1 || src->n < 1)
        return ss_seterr(SS_ERR_INVALID, "scenes: %s: needs a labelled image dataset", src->source);
    if (o->n < 1 || o->n > 10000000 || o->size < 16 || o->size > 4096 || o->min_objects < 1 ||
        o->max_objects < o->min_objects || o->max_objects > 64 || !(o->min_scale > 0) ||
        !(o->max_scale >= o->min_scale) || o->max_scale > 1 || !(o->max_overlap >= 0))
        return ss_seterr(SS_ERR_INVALID,
                         "scenes: bad options (n %lld, size %d, objects %d..%d, scale %g..%g, overlap %g)",
                         (long long)o->n, o->size, o->min_objects, o->max_objects, (double)o->min_scale,
                         (double)o->max_scale, (double)o->max_overlap);
    int c = src->c, S = o->size;
    size_t img = (size_t)c * S * S, bytes;
    if (ss_mul_overflow((size_t)o->n, img, &bytes) || bytes > SS_DATA_DEFAULT_CAP)
        return ss_seterr(SS_ERR_NOMEM, "scenes: %lld scenes of %dx%d exceed the memory cap", (long long)o->n, S, S);
    ss_dataset *d = &out->images;
    d->n = o->n;
    d->c = c;
    d->h = d->w = S;
    d->pixels = calloc(bytes, 1);
    out->start = calloc((size_t)o->n + 1, sizeof(int64_t));
    out->objs = calloc((size_t)o->n * (size_t)o->max_objects, sizeof(ss_det_object));
    out->cat_ids = calloc((size_t)src->nclasses, sizeof(int32_t));
    out->image_ids = calloc((size_t)o->n, sizeof(int64_t));
    out->file_names = calloc((size_t)o->n, sizeof(char *));
    int maxside = (int)(o->max_scale * S + 0.5f);
    uint8_t *item = malloc((size_t)c * maxside * maxside + 1);
    if (!d->pixels || !out->start || !out->objs || !out->cat_ids || !out->image_ids || !out->file_names || !item) {
        free(item);
        ss_det_dataset_free(out);
        return ss_seterr(SS_ERR_NOMEM, "scenes: out of memory");
    }
    ss_status s = ss__set_classes(d, src->nclasses, (const char *const *)src->class_names);
    for (int k = 0; k < src->nclasses; k++) out->cat_ids[k] = k + 1;
    size_t sp = (size_t)src->c * src->h * src->w;
    for (int64_t i = 0; i < o->n && !s; i++) {
        ss_rng r;
        ss_rng_seed(&r, o->seed, 0x5CE4E000ull + (uint64_t)i);
        uint8_t *px = d->pixels + (size_t)i * img;
        if (o->texture) texture(px, c, S, &r);
        int want = o->min_objects + (int)ss_rng_below(&r, (uint32_t)(o->max_objects - o->min_objects + 1));
        int64_t first = out->nobjs;
        for (int placed = 0, tries = 0; placed < want && tries < 200; tries++) {
            int64_t k = (int64_t)ss_rng_below(&r, (uint32_t)(src->n > 0xffffffffLL ? 0xffffffffLL : src->n));
            int32_t y = src->labels[k];
            if (y < 0 || y >= src->nclasses) continue;
            float sc = o->min_scale + (o->max_scale - o->min_scale) * ss_rng_uniform(&r);
            int side = (int)(sc * S + 0.5f);
            if (side < 4) side = 4;
            if (side > S) side = S;
            ss__img_to_chw(src->pixels + (size_t)k * sp, src->c, src->h, src->w, 0, item, c, side, side);
            int ox = (int)ss_rng_below(&r, (uint32_t)(S - side + 1)), oy = (int)ss_rng_below(&r, (uint32_t)(S - side + 1));
            /* Tight box of the non-zero mask. */
            int bx0 = side, by0 = side, bx1 = -1, by1 = -1;
            for (int yy = 0; yy < side; yy++)
                for (int xx = 0; xx < side; xx++) {
                    int nz = 0;
                    for (int ch = 0; ch < c; ch++) nz |= item[(size_t)ch * side * side + (size_t)yy * side + xx] != 0;
                    if (!nz) continue;
                    bx0 = xx < bx0 ? xx : bx0;
                    by0 = yy < by0 ? yy : by0;
                    bx1 = xx > bx1 ? xx : bx1;
                    by1 = yy > by1 ? yy : by1;
                }
            if (bx1 < bx0 + 1 || by1 < by0 + 1) continue; /* (nearly) empty item */
            ss_box b = {(float)(ox + bx0), (float)(oy + by0), (float)(ox + bx1 + 1), (float)(oy + by1 + 1)};
            int clash = 0;
            for (int64_t j = first; j < out->nobjs && !clash; j++) clash = ss_box_iou(b, out->objs[j].box) > o->max_overlap;
            if (clash) continue;
            for (int yy = 0; yy < side; yy++)
                for (int xx = 0; xx < side; xx++) {
                    int nz = 0;
                    for (int ch = 0; ch < c; ch++) nz |= item[(size_t)ch * side * side + (size_t)yy * side + xx] != 0;
                    if (!nz && c == 1) continue; /* grey items: only their non-zero pixels */
                    for (int ch = 0; ch < c; ch++)
                        px[(size_t)ch * S * S + (size_t)(oy + yy) * S + (ox + xx)] =
                            item[(size_t)ch * side * side + (size_t)yy * side + xx];
                }
            out->objs[out->nobjs].box = b;
            out->objs[out->nobjs].cls = y;
            out->nobjs++;
            placed++;
        }
        out->start[i + 1] = out->nobjs;
        out->image_ids[i] = i + 1;
        char name[32];
        snprintf(name, sizeof name, "%06lld.png", (long long)i);
        out->file_names[i] = strdup(name);
        if (!out->file_names[i]) s = ss_seterr(SS_ERR_NOMEM, "scenes: out of memory");
    }
    free(item);
    if (s) ss_det_dataset_free(out);
    else snprintf(d->source, sizeof d->source, "scenes of %.480s", src->source);
    return s;
}
