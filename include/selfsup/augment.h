/* selfsup — image augmentation pipelines for training.
 *
 * An image is float32 CHW with values in [0,1], C = 1 (grey) or 3 (RGB).
 * Every op works in place and keeps the size h x w. All randomness comes
 * from the ss_rng passed in, so a seeded stream per image gives the same
 * views every run and at any thread count.
 *
 * Pipeline syntax: ops separated by ',', each "name" or "name:args";
 * spaces around ops are ignored; "" or "none" is the empty pipeline.
 * Ranges are written LO-HI (both numbers required); every number must be
 * finite with magnitude <= 1e6. Defaults follow
 * torchvision.transforms where an equivalent exists.
 *
 *   rrc:SMIN-SMAX[:RMIN-RMAX]  RandomResizedCrop: area fraction in
 *                              [SMIN,SMAX] (0<SMIN<=SMAX<=1), aspect ratio
 *                              w/h log-uniform in [RMIN,RMAX] (default
 *                              0.75-1.3333333333333333); 10 tries then a
 *                              centre crop, as torchvision; bilinear resize
 *                              back to h x w (align_corners=False).
 *   crop:PAD                   zero-pad PAD pixels (0..1024) on each side and
 *                              take a random h x w crop (RandomCrop padding).
 *   hflip[:P] / vflip[:P]      flip with probability P (default 0.5).
 *   rot90                      rotate by k*90 degrees, k uniform in 0..3
 *                              (non-square images: k in {0,2}).
 *   jitter:B[:C[:S[:H]]][@P]   ColorJitter brightness/contrast/saturation
 *                              (factor uniform in [max(0,1-x),1+x]) and hue
 *                              (shift uniform in [-H,H], 0<=H<=0.5), the four
 *                              in a random order; S and H leave grey images
 *                              unchanged; whole op applied with prob. P
 *                              (default 1).
 *   gray[:P]                   RandomGrayscale (default P 0.1), keeps C:
 *                              L = 0.2989 R + 0.587 G + 0.114 B copied to
 *                              all three channels; no-op on grey images.
 *   gamma:LO-HI                x^g with g uniform in [LO,HI] (0<LO<=HI).
 *   blur:SLO-SHI[@P]           gaussian blur, sigma uniform in [SLO,SHI]
 *                              (0<SLO<=SHI<=20), kernel 2*ceil(3 sigma)+1,
 *                              reflect padding; probability P (default 1).
 *   noise:STD                  add N(0,STD^2) per element, clamp to [0,1].
 *   solarize:T[@P]             x >= T becomes 1-x (T in [0,1]); probability
 *                              P (default 0.5, as RandomSolarize).
 *   erase[:P]                  RandomErasing, P default 0.5; scale
 *                              0.02-0.33, ratio 0.3-3.3, value 0 (black).
 *   bg:AMAX[@P]                background swap (Ryali et al. 2021): on an
 *                              image with a dark surround (pixels <= 0.04,
 *                              brightest channel, 4-connected to the border,
 *                              >= 10% of the image) the surround becomes
 *                              clamp(l + a * s), s = the image turned 180
 *                              degrees and shifted cyclically by (dy, dx),
 *                              a uniform in [0,AMAX], l in [0,AMAX/2]
 *                              (0 < AMAX <= 1); probability P (default 0.5).
 *                              Other images (most RGB photos) stay as is.
 *   norm:M/S                   (x-M)/S on every channel (S >= 1e-6), or per channel
 *   norm:M1;M2;M3/S1;S2;S3     (';' between channels). Must come last: the
 *                              result is no longer in [0,1]. A 3-value norm
 *                              on a grey image uses the first value.
 *
 * Random draws, in order (for tests that replay them): each op with a
 * probability draws u = ss_rng_uniform() first and is applied when u < P;
 * a "uniform in [a,b]" is a + (b-a)*ss_rng_uniform(); an integer in [0,n)
 * is ss_rng_below(n). jitter then shuffles order[4] = {0,1,2,3}
 * (brightness, contrast, saturation, hue) with ss_rng_shuffle_i32 and draws
 * the factors of the non-zero components in the order b, c, s, h. rrc
 * draws per try: scale, log-ratio, then (on success) top, left. crop: top
 * then left offset in [0, 2*PAD]. blur/gamma: the parameter. noise: one
 * ss_rng_normal per element in CHW order. erase: like rrc, then nothing.
 * bg: a, l, then dy = ss_rng_below(h), dx = ss_rng_below(w), whether or
 * not the image has a dark surround.
 */
#ifndef SELFSUP_AUGMENT_H
#define SELFSUP_AUGMENT_H

#include "selfsup/rng.h"
#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_augment ss_augment; /* a parsed pipeline (immutable) */

/* Parse a pipeline string. Unknown op or bad args -> SS_ERR_INVALID with a
 * message naming the op and the expected syntax; *out is NULL then. */
ss_status ss_augment_parse(const char *spec, ss_augment **out);

/* Free a pipeline (NULL is fine). */
void ss_augment_free(ss_augment *a);

/* Canonical string with every parameter spelled out, e.g.
 * "rrc:0.3-1:0.75-1.3333333333333333,hflip:0.5"; "none" when empty.
 * parse(describe(a)) gives the same pipeline. Owned by `a`. */
const char *ss_augment_describe(const ss_augment *a);

/* Number of ops in the pipeline. */
int ss_augment_count(const ss_augment *a);

/* Number of leading geometric ops (rrc, crop, hflip, vflip, rot90): the
 * place for an op that should see the final framing but the original
 * pixel values. */
int ss_augment_geometric_prefix(const ss_augment *a);

/* 1 when the pipeline has an op called name (e.g. "bg"), else 0. */
int ss_augment_has_op(const ss_augment *a, const char *name);

/* A new pipeline: a's ops with spec's ops inserted before a's op number pos
 * (0..count; clamped). A blank spec or "none" gives a copy of a. Errors as
 * ss_augment_parse (e.g. an op after norm); *out is NULL then. */
ss_status ss_augment_insert(const ss_augment *a, int pos, const char *spec, ss_augment **out);

/* Check that the pipeline suits images of c x h x w: c is 1 or 3, sizes in
 * 1..32767, a norm op gives 1 or c values. SS_ERR_SHAPE with a message
 * otherwise. Apply itself never fails (on bad shapes it does what it can;
 * if its scratch allocation fails the geometric ops rrc/crop/rot90/blur
 * and bg are skipped); call this once before a training
 * run. */
ss_status ss_augment_check(const ss_augment *a, int c, int h, int w);

/* Apply to one image in place. Thread-safe: the pipeline is read only and
 * scratch memory is per call. */
void ss_augment_apply(const ss_augment *a, float *img, int c, int h, int w, ss_rng *r);

/* The loader's callback type; ctx is the ss_augment*. */
void ss_augment_transform(void *ctx, float *img, int c, int h, int w, ss_rng *r);

/* Rotate src (c x h x w) counter-clockwise by k*90 degrees into dst, as
 * torch.rot90(x, k, dims=(1,2)): dst is c x w x h for odd k, c x h x w
 * for even k; k may be any integer (taken mod 4). src and dst must not
 * overlap. */
void ss_rotate90(const float *src, float *dst, int c, int h, int w, int k);

#ifdef __cplusplus
}
#endif
#endif
