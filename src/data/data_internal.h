/* Internal helpers shared by the dataset readers (src/data/). */
#ifndef SS_DATA_INTERNAL_H
#define SS_DATA_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "selfsup/data.h"

#define SS_DATA_DEFAULT_CAP ((size_t)8 << 30)

/* Limits on one image file, checked from its header before decoding. */
#define SS_IMG_MAX_SIDE 16384
#define SS_IMG_MAX_PIXELS ((int64_t)1 << 26) /* 67 Mpx */
#define SS_IMG_MAX_FILE ((size_t)256 << 20)

/* Decode a PNG/JPEG/BMP/GIF/TGA/PNM image (req_comp channels, 0 = native)
 * after checking its declared size against the limits above; NULL with a
 * one-line message naming label in err otherwise. Free with ss__image_free. */
unsigned char *ss__image_decode_memory(const unsigned char *buf, size_t n, const char *label, int req_comp, int *w,
                                       int *h, int *comp, char *err, size_t errn);
/* The checks alone (headers walked, size read; nothing decoded): 1 with
 * w, h, comp set, or 0 with the message in err. */
int ss__image_info_memory(const unsigned char *buf, size_t n, const char *label, int *w, int *h, int *comp,
                          char *err, size_t errn);
unsigned char *ss__image_load(const char *path, int req_comp, int *w, int *h, int *comp, char *err, size_t errn);
void ss__image_free(unsigned char *img);

/* Background of an image with a dark surround: bg[i] = 1 for pixels whose
 * brightest channel is <= thresh and that are 4-connected to the border
 * through such pixels. bg holds h*w bytes, stack h*w ints (scratch).
 * Returns the number of background pixels. Shared by the bg augmentation
 * and the background corruption. */
long ss__background_mask(const float *img, int c, int h, int w, float thresh, unsigned char *bg, int *stack);

/* Resolved load options (defaults filled in). */
typedef struct ss_load_cfg {
    const char *split; /* "train" or "test" */
    int test;          /* 1 when split is "test" */
    int th, tw;        /* target size, 0 = native */
    int channels;      /* 0, 1 or 3 */
    int64_t max_images;
    size_t cap;
} ss_load_cfg;

/* Readers: each fills `out` (zeroed on entry) or returns an error. */
ss_status ss__load_idx_file(const char *images_path, const char *labels_path,
                            int fashion, const ss_load_cfg *cfg, ss_dataset *out);
ss_status ss__load_cifar_dir(const char *dir, const ss_load_cfg *cfg, ss_dataset *out);
ss_status ss__load_cifar_file(const char *path, const ss_load_cfg *cfg, ss_dataset *out);
ss_status ss__load_image_folder(const char *dir, const ss_load_cfg *cfg, ss_dataset *out);
ss_status ss__load_csv(const char *path, const ss_load_cfg *cfg, ss_dataset *out);

/* Does `dir` hold IDX files for the split (train-images-idx3-ubyte[.gz])?
 * Writes the images/labels paths when it does (labels "" when absent). */
int ss__idx_find(const char *dir, int test, char *images, char *labels, size_t n);

/* Convert one image to CHW uint8 with dc channels and size dh x dw.
 * src is CHW (hwc = 0) or HWC (hwc = 1) with sc channels of sh x sw.
 * Grey from colour uses stb_image's weights (77 R + 150 G + 29 B) >> 8;
 * colour from grey replicates; resizing is bilinear with half-pixel
 * centres (like PyTorch's align_corners=False), rounded to nearest. */
void ss__img_to_chw(const uint8_t *src, int sc, int sh, int sw, int hwc, uint8_t *dst,
                    int dc, int dh, int dw);

/* Final shape from native shape and options; checks n*c*h*w against the
 * cap. `what` names the source in messages. */
ss_status ss__out_shape(const ss_load_cfg *cfg, const char *what, int64_t n, int nc, int nh,
                        int nw, int *c, int *h, int *w, size_t *bytes);

/* Set d->nclasses and copy names (NULL names -> "0", "1", ...). */
ss_status ss__set_classes(ss_dataset *d, int n, const char *const *names);

/* Path helpers. */
int ss__is_dir(const char *p);
int ss__is_file(const char *p);
int ss__file_size(const char *p, uint64_t *size);
ss_status ss__join(char *buf, size_t n, const char *a, const char *b);
const char *ss__basename(const char *p);
int ss__has_image_ext(const char *name);
void ss__set_source(ss_dataset *d, const char *p);

#endif
