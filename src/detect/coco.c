/* COCO-style detection annotations: reader (JSON + image folder) and writer
 * (PNG images + annotations.json). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "selfsup/detect.h"
#include "selfsup/fileio.h"
#include "stb_image.h"
#include "stb_image_write.h"

#define COCO_MAX_JSON ((size_t)1 << 30)
#define COCO_MAX_CLASSES 100000

void ss_det_dataset_free(ss_det_dataset *d)
{
    if (!d) return;
    if (d->file_names)
        for (int64_t i = 0; i < d->images.n; i++) free(d->file_names[i]);
    free(d->file_names);
    free(d->start);
    free(d->objs);
    free(d->cat_ids);
    free(d->image_ids);
    ss_dataset_free(&d->images);
    memset(d, 0, sizeof *d);
}

typedef struct id_index {
    int64_t id;
    int64_t index;
} id_index;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const id_index *)a)->id, y = ((const id_index *)b)->id;
    return x < y ? -1 : x > y;
}

static int64_t find_id(const id_index *t, int64_t n, int64_t id)
{
    id_index key = {id, 0};
    const id_index *f = bsearch(&key, t, (size_t)n, sizeof *t, cmp_id);
    return f ? f->index : -1;
}

/* An integral JSON number in [lo, hi] -> *v; else 0. */
static int json_int(const cJSON *x, double lo, double hi, int64_t *v)
{
    if (!cJSON_IsNumber(x)) return 0;
    double d = x->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return 0;
    *v = (int64_t)d;
    return 1;
}

static ss_status fmt_err(const char *path, const char *arr, int64_t i, const char *field, const char *what)
{
    if (i >= 0) return ss_seterr(SS_ERR_FORMAT, "%s: %s[%lld].%s: %s", path, arr, (long long)i, field, what);
    return ss_seterr(SS_ERR_FORMAT, "%s: %s: %s", path, arr, what);
}

typedef struct obj_tmp {
    int64_t image;
    ss_det_object o;
    int64_t order;
} obj_tmp;

static int cmp_obj(const void *a, const void *b)
{
    const obj_tmp *x = a, *y = b;
    if (x->image != y->image) return x->image < y->image ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static ss_status parse_json(const char *path, cJSON *root, const ss_coco_opts *o, ss_det_dataset *d, id_index **img_ids,
                            obj_tmp **objs_out, int64_t *nobj_out)
{
    if (!cJSON_IsObject(root)) return fmt_err(path, "(top level)", -1, "", "expected a JSON object");
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "categories");
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    if (!cJSON_IsArray(cats)) return fmt_err(path, "categories", -1, "", "missing or not an array");
    if (!cJSON_IsArray(imgs)) return fmt_err(path, "images", -1, "", "missing or not an array");
    if (anns && !cJSON_IsArray(anns)) return fmt_err(path, "annotations", -1, "", "not an array");
    int nc = cJSON_GetArraySize(cats);
    if (nc < 1 || nc > COCO_MAX_CLASSES) return fmt_err(path, "categories", -1, "", "expected 1..100000 entries");
    d->cat_ids = calloc((size_t)nc, sizeof(int32_t));
    char **names = calloc((size_t)nc, sizeof(char *));
    id_index *cat_tab = calloc((size_t)nc, sizeof(id_index));
    ss_status s = SS_OK;
    if (!d->cat_ids || !names || !cat_tab) s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < nc && !s; i++) {
        const cJSON *c = cJSON_GetArrayItem(cats, i);
        int64_t id;
        if (!cJSON_IsObject(c)) s = fmt_err(path, "categories", i, "", "expected an object");
        else if (!json_int(cJSON_GetObjectItemCaseSensitive(c, "id"), 0, 2147483647.0, &id))
            s = fmt_err(path, "categories", i, "id", "expected a non-negative integer");
        else {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
            if (nm && !cJSON_IsString(nm)) s = fmt_err(path, "categories", i, "name", "expected a string");
            else {
                char buf[32];
                snprintf(buf, sizeof buf, "%lld", (long long)id);
                names[i] = strdup(nm ? nm->valuestring : buf);
                d->cat_ids[i] = (int32_t)id;
                cat_tab[i].id = id;
                cat_tab[i].index = i;
            }
        }
    }
    if (!s) {
        qsort(cat_tab, (size_t)nc, sizeof *cat_tab, cmp_id);
        for (int i = 1; i < nc && !s; i++)
            if (cat_tab[i].id == cat_tab[i - 1].id)
                s = ss_seterr(SS_ERR_FORMAT, "%s: categories: id %lld appears twice", path, (long long)cat_tab[i].id);
    }
    if (!s) s = ss__set_classes(&d->images, nc, (const char *const *)names);
    for (int i = 0; i < nc; i++) free(names[i]);
    free(names);
    if (s) {
        free(cat_tab);
        return s;
    }
    int64_t ni = cJSON_GetArraySize(imgs);
    if (o && o->max_images > 0 && ni > o->max_images) ni = o->max_images;
    if (ni < 1) {
        free(cat_tab);
        return fmt_err(path, "images", -1, "", "no images");
    }
    d->images.n = ni;
    d->image_ids = calloc((size_t)ni, sizeof(int64_t));
    d->file_names = calloc((size_t)ni, sizeof(char *));
    id_index *tab = calloc((size_t)ni, sizeof(id_index));
    *img_ids = tab;
    if (!d->image_ids || !d->file_names || !tab) s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < ni && !s; i++) {
        const cJSON *im = cJSON_GetArrayItem(imgs, (int)i);
        const cJSON *fn = cJSON_IsObject(im) ? cJSON_GetObjectItemCaseSensitive(im, "file_name") : NULL;
        int64_t id;
        if (!cJSON_IsObject(im)) s = fmt_err(path, "images", i, "", "expected an object");
        else if (!json_int(cJSON_GetObjectItemCaseSensitive(im, "id"), -9007199254740992.0, 9007199254740992.0, &id))
            s = fmt_err(path, "images", i, "id", "expected an integer");
        else if (!cJSON_IsString(fn) || !fn->valuestring[0])
            s = fmt_err(path, "images", i, "file_name", "expected a non-empty string");
        else if (strstr(fn->valuestring, ".."))
            s = fmt_err(path, "images", i, "file_name", "must not contain '..'");
        else {
            d->image_ids[i] = id;
            d->file_names[i] = strdup(fn->valuestring);
            tab[i].id = id;
            tab[i].index = i;
        }
    }
    if (!s) {
        qsort(tab, (size_t)ni, sizeof *tab, cmp_id);
        for (int64_t i = 1; i < ni && !s; i++)
            if (tab[i].id == tab[i - 1].id)
                s = ss_seterr(SS_ERR_FORMAT, "%s: images: id %lld appears twice", path, (long long)tab[i].id);
    }
    int64_t na = anns ? cJSON_GetArraySize(anns) : 0, k = 0;
    obj_tmp *ob = calloc((size_t)(na ? na : 1), sizeof(obj_tmp));
    *objs_out = ob;
    if (!ob && !s) s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < na && !s; i++) {
        const cJSON *a = cJSON_GetArrayItem(anns, (int)i);
        int64_t iid, cid, crowd = 0;
        if (!cJSON_IsObject(a)) {
            s = fmt_err(path, "annotations", i, "", "expected an object");
            break;
        }
        if (!json_int(cJSON_GetObjectItemCaseSensitive(a, "image_id"), -9007199254740992.0, 9007199254740992.0, &iid)) {
            s = fmt_err(path, "annotations", i, "image_id", "expected an integer");
            break;
        }
        if (!json_int(cJSON_GetObjectItemCaseSensitive(a, "category_id"), 0, 2147483647.0, &cid)) {
            s = fmt_err(path, "annotations", i, "category_id", "expected a non-negative integer");
            break;
        }
        const cJSON *cr = cJSON_GetObjectItemCaseSensitive(a, "iscrowd");
        if (cr && !json_int(cr, 0, 1, &crowd)) {
            s = fmt_err(path, "annotations", i, "iscrowd", "expected 0 or 1");
            break;
        }
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(a, "bbox");
        double v[4];
        int good = cJSON_IsArray(bb) && cJSON_GetArraySize(bb) == 4;
        for (int j = 0; j < 4 && good; j++) {
            const cJSON *x = cJSON_GetArrayItem(bb, j);
            good = cJSON_IsNumber(x) && isfinite(x->valuedouble) && fabs(x->valuedouble) < 1e7;
            if (good) v[j] = x->valuedouble;
        }
        if (!good) {
            s = fmt_err(path, "annotations", i, "bbox", "expected 4 finite numbers [x, y, width, height]");
            break;
        }
        if (v[2] < 0 || v[3] < 0) {
            s = fmt_err(path, "annotations", i, "bbox", "width and height must be >= 0");
            break;
        }
        int64_t cls = find_id(cat_tab, nc, cid);
        if (cls < 0) {
            s = fmt_err(path, "annotations", i, "category_id", "not listed in categories");
            break;
        }
        int64_t img = find_id(tab, ni, iid);
        if (img < 0) {
            if (o && o->max_images > 0) continue; /* belongs to an image past max_images */
            s = fmt_err(path, "annotations", i, "image_id", "not listed in images");
            break;
        }
        if (crowd || v[2] <= 0 || v[3] <= 0) continue;
        ob[k].image = img;
        ob[k].order = i;
        ob[k].o.cls = (int32_t)cls;
        ob[k].o.box = (ss_box){(float)v[0], (float)v[1], (float)(v[0] + v[2]), (float)(v[1] + v[3])};
        k++;
    }
    *nobj_out = k;
    free(cat_tab);
    return s;
}

static int has_dir(const char *p) { return ss__is_dir(p); }

ss_status ss_coco_load(const char *json_path, const char *image_dir, const ss_coco_opts *o, ss_det_dataset *out)
{
    memset(out, 0, sizeof *out);
    void *text = NULL;
    size_t len = 0;
    ss_status s = ss_read_file(json_path, COCO_MAX_JSON, &text, &len);
    if (s) return s;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long at = e && e >= (const char *)text && e <= (const char *)text + len ? (long)(e - (const char *)text) : -1;
        free(text);
        return ss_seterr(SS_ERR_FORMAT, "%s: not valid JSON (error near byte %ld)", json_path, at);
    }
    free(text);
    id_index *tab = NULL;
    obj_tmp *ob = NULL;
    int64_t nob = 0;
    s = parse_json(json_path, root, o, out, &tab, &ob, &nob);
    cJSON_Delete(root);
    free(tab);
    if (s) {
        free(ob);
        ss_det_dataset_free(out);
        return s;
    }
    /* Objects grouped by image, in file order within an image. */
    qsort(ob, (size_t)nob, sizeof *ob, cmp_obj);
    int64_t ni = out->images.n;
    out->start = calloc((size_t)ni + 1, sizeof(int64_t));
    out->objs = calloc((size_t)(nob ? nob : 1), sizeof(ss_det_object));
    if (!out->start || !out->objs) {
        free(ob);
        ss_det_dataset_free(out);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", json_path);
    }
    for (int64_t j = 0; j < nob; j++) {
        out->objs[j] = ob[j].o;
        out->start[ob[j].image + 1]++;
    }
    for (int64_t i = 0; i < ni; i++) out->start[i + 1] += out->start[i];
    out->nobjs = nob;
    free(ob);
    /* Image folder. */
    char dir[1024];
    if (image_dir) snprintf(dir, sizeof dir, "%s", image_dir);
    else {
        const char *slash = strrchr(json_path, '/');
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - json_path), json_path);
        else snprintf(dir, sizeof dir, ".");
        char cand[1024];
        if (snprintf(cand, sizeof cand, "%.1000s/images", dir) < 0) cand[0] = 0;
        if (has_dir(cand)) memcpy(dir, cand, sizeof dir);
    }
    /* Decode images. */
    int c = o ? o->channels : 0, size = o ? o->size : 0, h = 0, w = 0;
    if (c != 0 && c != 1 && c != 3) {
        ss_det_dataset_free(out);
        return ss_seterr(SS_ERR_INVALID, "coco: channels must be 0, 1 or 3 (got %d)", c);
    }
    for (int64_t i = 0; i < ni && !s; i++) {
        char p[2200];
        snprintf(p, sizeof p, "%s/%s", dir, out->file_names[i]);
        int iw, ih, comp;
        if (!stbi_info(p, &iw, &ih, &comp)) {
            s = ss_seterr(SS_ERR_IO, "%s: cannot read image of images[%lld] (%s)", p, (long long)i,
                          stbi_failure_reason());
            break;
        }
        if (i == 0) {
            if (!c) c = comp >= 3 ? 3 : 1;
            h = size ? size : ih;
            w = size ? size : iw;
            size_t bytes;
            if (ss_mul_overflow((size_t)ni, (size_t)c * (size_t)h * (size_t)w, &bytes) || bytes > SS_DATA_DEFAULT_CAP) {
                s = ss_seterr(SS_ERR_NOMEM, "%s: %lld images of %dx%dx%d exceed the memory cap", json_path,
                              (long long)ni, c, h, w);
                break;
            }
            out->images.pixels = malloc(bytes ? bytes : 1);
            out->images.c = c;
            out->images.h = h;
            out->images.w = w;
            if (!out->images.pixels) {
                s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", json_path);
                break;
            }
        }
        int got;
        unsigned char *img = stbi_load(p, &iw, &ih, &got, c);
        if (!img) {
            s = ss_seterr(SS_ERR_FORMAT, "%s: cannot decode image (%s)", p, stbi_failure_reason());
            break;
        }
        ss__img_to_chw(img, c, ih, iw, 1, out->images.pixels + (size_t)i * c * h * w, c, h, w);
        stbi_image_free(img);
        float sx = (float)w / (float)iw, sy = (float)h / (float)ih;
        for (int64_t j = out->start[i]; j < out->start[i + 1]; j++) {
            ss_box *b = &out->objs[j].box;
            b->x0 *= sx;
            b->x1 *= sx;
            b->y0 *= sy;
            b->y1 *= sy;
        }
    }
    if (s) {
        ss_det_dataset_free(out);
        return s;
    }
    ss__set_source(&out->images, json_path);
    return SS_OK;
}

/* ---- writer ------------------------------------------------------------------ */
typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} membuf;

static void mem_sink(void *ctx, void *data, int n)
{
    membuf *b = ctx;
    if (b->oom || n <= 0) return;
    if (b->len + (size_t)n > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, (size_t)n);
    b->len += (size_t)n;
}

/* CHW uint8 -> PNG file (grey or RGB), atomically. */
static ss_status write_png_chw(const char *path, const uint8_t *chw, int c, int h, int w)
{
    unsigned char *hwc = malloc((size_t)c * h * w);
    if (!hwc) return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < h * w; i++) hwc[(size_t)i * c + ch] = chw[(size_t)ch * h * w + i];
    membuf b = {0};
    int ok = stbi_write_png_to_func(mem_sink, &b, w, h, c, hwc, w * c);
    free(hwc);
    if (!ok || b.oom) {
        free(b.p);
        return ss_seterr(SS_ERR_NOMEM, "%s: PNG encoding failed", path);
    }
    ss_status s = ss_write_file_atomic(path, b.p, b.len);
    free(b.p);
    return s;
}

ss_status ss_det_dataset_write(const ss_det_dataset *d, const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/images", dir);
    ss_status s = ss_mkdir_p(p);
    if (s) return s;
    const ss_dataset *im = &d->images;
    cJSON *root = cJSON_CreateObject(), *imgs = cJSON_CreateArray(), *anns = cJSON_CreateArray(),
          *cats = cJSON_CreateArray();
    cJSON_AddItemToObject(root, "images", imgs);
    cJSON_AddItemToObject(root, "annotations", anns);
    cJSON_AddItemToObject(root, "categories", cats);
    int64_t aid = 1;
    for (int64_t i = 0; i < im->n && !s; i++) {
        snprintf(p, sizeof p, "%s/images/%s", dir, d->file_names[i]);
        s = write_png_chw(p, im->pixels + (size_t)i * im->c * im->h * im->w, im->c, im->h, im->w);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)d->image_ids[i]);
        cJSON_AddStringToObject(o, "file_name", d->file_names[i]);
        cJSON_AddNumberToObject(o, "width", im->w);
        cJSON_AddNumberToObject(o, "height", im->h);
        cJSON_AddItemToArray(imgs, o);
        for (int64_t j = d->start[i]; j < d->start[i + 1]; j++) {
            const ss_det_object *ob = &d->objs[j];
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)aid++);
            cJSON_AddNumberToObject(a, "image_id", (double)d->image_ids[i]);
            cJSON_AddNumberToObject(a, "category_id", d->cat_ids[ob->cls]);
            double bw = ob->box.x1 - ob->box.x0, bh = ob->box.y1 - ob->box.y0;
            cJSON *bb = cJSON_CreateArray();
            cJSON_AddItemToArray(bb, cJSON_CreateNumber(ob->box.x0));
            cJSON_AddItemToArray(bb, cJSON_CreateNumber(ob->box.y0));
            cJSON_AddItemToArray(bb, cJSON_CreateNumber(bw));
            cJSON_AddItemToArray(bb, cJSON_CreateNumber(bh));
            cJSON_AddItemToObject(a, "bbox", bb);
            cJSON_AddNumberToObject(a, "area", bw * bh);
            cJSON_AddNumberToObject(a, "iscrowd", 0);
            cJSON_AddItemToArray(anns, a);
        }
    }
    for (int k = 0; k < im->nclasses; k++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "id", d->cat_ids[k]);
        cJSON_AddStringToObject(c, "name", im->class_names ? im->class_names[k] : "?");
        cJSON_AddItemToArray(cats, c);
    }
    if (!s) {
        char *js = cJSON_PrintUnformatted(root);
        snprintf(p, sizeof p, "%s/annotations.json", dir);
        s = js ? ss_write_file_atomic(p, js, strlen(js)) : ss_seterr(SS_ERR_NOMEM, "%s: out of memory", p);
        free(js);
    }
    cJSON_Delete(root);
    return s;
}
