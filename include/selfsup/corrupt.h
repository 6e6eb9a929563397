/* selfsup — image corruptions for robustness evaluation.
 *
 * Each corruption maps a clean float32 CHW image in [0,1] (C = 1 or 3) to a
 * corrupted one of the same size, in place, at severity 1 (mild) .. 5
 * (strong). Parameters follow CIFAR-10-C (Hendrycks & Dietterich, ICLR
 * 2019, make_cifar_c.py) where it defines the corruption; the others are
 * documented in src/robust/corrupt.c next to their tables.
 *
 *   lighting:   brightness_up, brightness_down, contrast, gamma,
 *               uneven_illumination
 *   background: background (procedural texture behind the object)
 *   noise:      gaussian_noise, shot_noise, impulse_noise
 *   blur:       gaussian_blur, defocus_blur, motion_blur
 *   digital:    pixelate, jpeg
 *
 * background: for grey images whose border is dark (Fashion-MNIST, MNIST)
 * the background is the set of pixels <= 0.04 that connect to the image
 * border through such pixels; only those are replaced by amplitude * T,
 * where T in [0,1] is a seeded texture (value noise blended with stripes),
 * so every object pixel stays unchanged. Other images (RGB, light grey) get
 * the texture blended in with a soft border mask: weight 0 inside a
 * centred ellipse covering the middle, rising smoothly to `amplitude` at
 * the border.
 *
 * Reproducibility: ss_corrupt_image seeds its generator from (seed, name,
 * index), so a corrupted test set is the same bits every run. The severity
 * is deliberately not part of the stream ("common random numbers"): one
 * image gets the same noise pattern, blur angle, texture or light direction
 * at every severity, and only the strength changes, so its distortion grows
 * monotonically with severity.
 */
#ifndef SELFSUP_CORRUPT_H
#define SELFSUP_CORRUPT_H

#include <stdint.h>

#include "selfsup/rng.h"
#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_corruption {
    const char *name;
    const char *family; /* "lighting", "background", "noise", "blur", "digital" */
    /* In place; severity in 1..5 (clamped); c >= 1, h, w >= 1. */
    void (*apply)(float *img, int c, int h, int w, int severity, ss_rng *r);
} ss_corruption;

#define SS_CORRUPT_SEVERITIES 5

/* Number of corruptions in the table, and the i-th (NULL when out of
 * range). The order is fixed: families in the order listed above. */
int ss_corruption_count(void);
const ss_corruption *ss_corruption_get(int i);

/* Corruption by name, NULL when unknown. */
const ss_corruption *ss_corruption_find(const char *name);

/* Apply corruption `name` at `severity` (1..5) to image `index` of a set,
 * with the generator seeded from (seed, name, index). Errors:
 * SS_ERR_INVALID unknown name (the message lists the known ones) or NULL
 * image, SS_ERR_RANGE severity outside 1..5, SS_ERR_SHAPE c not 1 or 3 or
 * a size outside 1..4096. */
ss_status ss_corrupt_image(const char *name, int severity, uint64_t seed, int64_t index, float *img,
                           int c, int h, int w);

/* Write a PNG contact sheet: one row per corruption (its name on the left),
 * columns clean + severities 1..5, each tile upscaled x2 nearest. The image
 * is corrupted as index 0 of a set with `seed`. SS_ERR_IO when the file
 * cannot be written. */
ss_status ss_corrupt_grid_png(const char *path, const float *img, int c, int h, int w, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
