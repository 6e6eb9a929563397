/* selfsup — vision data: readers, labelled subsets, splits, batch loader.
 *
 * A dataset lives in memory as uint8 pixels, CHW per image:
 *
 *     ss_dataset d;
 *     ss_load_opts lo = {.split = "train"};
 *     if (ss_dataset_load("/usr/share/datasets/fashion-mnist", &lo, &d) != SS_OK)
 *         fprintf(stderr, "selfsup: %s\n", ss_errmsg());
 *
 * Formats, detected from the path:
 *   - a directory of IDX files: {train,t10k}-{images-idx3,labels-idx1}-ubyte
 *     with or without ".gz" (gzip is detected by magic); or one
 *     "*images-idx3-ubyte[.gz]" file (its labels file is found by name);
 *   - a CIFAR-10 binary directory (data_batch_1..5.bin for "train",
 *     test_batch.bin for "test", class names from batches.meta.txt) or one
 *     CIFAR-10 ".bin" file;
 *   - an image folder with one subfolder per class (class names sorted with
 *     strcmp, files sorted by name); PNG, JPEG, BMP, GIF, TGA, PNM via
 *     stb_image; files without an image extension are skipped;
 *   - a flat folder of images (unlabelled: labels are -1, nclasses 0);
 *   - a folder holding a "train" / "test" subfolder: the subfolder named by
 *     the split is loaded (e.g. cifar10-jpg with split "test");
 *   - a CSV file of "path,label" rows (see ss_dataset_load).
 * Images of differing sizes are resized (bilinear, half-pixel centres) to
 * the target size, or to the first image's size when no target is given.
 *
 * Every reader checks sizes declared in a file against the file's actual
 * size and against the allocation cap before allocating, and reports bad
 * input through ss_errmsg() with the file name and the cause.
 *
 * The loader (ss_loader_*) turns a dataset into float batches on background
 * threads. All randomness is derived from (seed, epoch, dataset index, view),
 * so batches are bit-identical for any worker count and after a seek.
 */
#ifndef SELFSUP_DATA_H
#define SELFSUP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "selfsup/rng.h"
#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Datasets                                                             */

typedef struct ss_dataset {
    int64_t n;
    int c, h, w;
    uint8_t *pixels;   /* n*c*h*w bytes; image i at pixels + i*c*h*w, CHW */
    int32_t *labels;   /* n entries, -1 = unlabelled; may be NULL (all unlabelled) */
    int nclasses;      /* 0 for unlabelled sets */
    char **class_names; /* nclasses strings */
    char source[512];  /* the file or folder the images came from */
} ss_dataset;

typedef struct ss_load_opts {
    const char *split;      /* "train" (default when NULL) or "test" */
    int target_h, target_w; /* 0 = native size; otherwise resize on load (bilinear) */
    int channels;           /* 0 = native, 1 = force grey, 3 = force RGB */
    int64_t max_images;     /* 0 = all; else the first N images in file order */
    size_t max_bytes;       /* cap on the pixel allocation; 0 = 8 GiB */
} ss_load_opts;

/* Load a dataset (format detected from `path`, see above). `opts` may be
 * NULL (all defaults). On failure `out` is left empty (safe to free) and
 * ss_errmsg() names the file and the cause.
 *
 * IDX: class names are "0".."9" (nclasses = max(10, largest label + 1)),
 * except in a folder named "fashion-mnist", which gets the ten
 * Fashion-MNIST names and rejects labels >= 10.
 * CIFAR: names from batches.meta.txt (else the CIFAR-10 names); a label
 * >= the number of names is an error.
 * CSV: one "path,label" row per line; paths relative to the CSV's folder;
 * the label is an integer (classes "0".."max") or a class name (classes
 * are the sorted distinct names); an empty label or -1 means unlabelled.
 * The first line is a header (skipped) when its path field names no
 * existing file and has no image extension. Blank lines are skipped; a row
 * with more than two fields, an empty path or a bad label is an error that
 * names the line. */
ss_status ss_dataset_load(const char *path, const ss_load_opts *opts, ss_dataset *out);

/* Free everything a dataset holds and zero it. Safe on a zeroed struct. */
void ss_dataset_free(ss_dataset *d);

/* The test split that goes with a training path. Writes the path to load
 * into buf (size n) and the split to pass in ss_load_opts into *split:
 *   IDX or CIFAR folder  -> the same folder, split "test";
 *   ".../train" folder   -> the sibling ".../test";
 *   folder holding train/ and test/ -> the same folder, split "test";
 *   "...train-images-idx3-ubyte[.gz]" -> "...t10k-images-idx3-ubyte[.gz]";
 *   "data_batch_N.bin"   -> "test_batch.bin" beside it;
 *   "xxx_train.csv" / "train.csv" -> the same name with "test".
 * Returns SS_ERR_IO with a message naming the path when no test split
 * exists. `split` may be NULL. */
ss_status ss_dataset_default_test_path(const char *train_path, char *buf, size_t n,
                                       const char **split);

/* ------------------------------------------------------------------ */
/* Labelled subsets and validation splits                              */

/* SS_OK when spec is a valid subset spec ("P%", "K/class" or "all"), else
 * the error ss_subset_parse_draw would give, without a data set. */
ss_status ss_subset_check(const char *spec);
/* Class-balanced labelled subset of d, deterministic in `seed`. spec:
 *   "P%"      P in (0,100]: P% of the labelled images, divided equally
 *             across d->nclasses (1% of 60000 = 600 = 60 per class); a
 *             class with fewer images than its share gives all it has;
 *             "100%" is every labelled image;
 *   "K/class" exactly K per class (error if a class has fewer);
 *   "all"     same as "100%".
 * Unlabelled images (label -1) are never drawn. Within a class the images
 * are taken from one seed-derived permutation, so for one seed a smaller
 * subset is contained in a larger one. Returns sorted indices into d in a
 * malloc'd *idx (caller frees) and their count in *n. */
ss_status ss_subset_parse_draw(const ss_dataset *d, const char *spec, uint64_t seed,
                               int32_t **idx, int64_t *n);

/* As ss_subset_parse_draw, but drawing only from pool[0..npool) (e.g. the
 * train part of ss_split_train_val); percentages are of npool. pool NULL
 * means all of d. */
ss_status ss_subset_parse_draw_from(const ss_dataset *d, const int32_t *pool, int64_t npool,
                                    const char *spec, uint64_t seed, int32_t **idx,
                                    int64_t *n);

/* Split idx[0..n) (NULL = all of d) into train and validation parts:
 * round(val_frac * count) of each class (unlabelled images form one more
 * group) go to validation, chosen by seed; val_frac in [0,1). Both outputs
 * are sorted and malloc'd (caller frees). */
ss_status ss_split_train_val(const ss_dataset *d, const int32_t *idx, int64_t n,
                             double val_frac, uint64_t seed, int32_t **train_idx,
                             int64_t *ntrain, int32_t **val_idx, int64_t *nval);

/* n indices spread evenly over [0, total): i * total / n, strictly
 * increasing (n <= total). For monitoring on a part of a test set: the first
 * n images of a class-ordered folder would be one or two classes. malloc'd
 * (caller frees); NULL when out of memory. */
int32_t *ss_indices_spread(int64_t total, int64_t n);

/* Write indices one per line (for the run folder). */
ss_status ss_indices_write(const char *path, const int32_t *idx, int64_t n);

/* Read a file written by ss_indices_write (malloc'd *idx, caller frees).
 * Every value must be in [0, limit) when limit > 0. */
ss_status ss_indices_read(const char *path, int64_t limit, int32_t **idx, int64_t *n);

/* ------------------------------------------------------------------ */
/* Batch loader                                                         */

/* In-place transform of one image: CHW floats in [0,1] on entry. `r` is a
 * generator seeded from (seed, epoch, dataset index, view) only. Transforms
 * run on several worker threads at once: they may read ctx but must not
 * modify shared state, and must draw all randomness from `r`. */
typedef void (*ss_transform_fn)(void *ctx, float *img, int c, int h, int w, ss_rng *r);

#define SS_LOADER_MAX_VIEWS 4

typedef struct ss_loader_opts {
    int batch;        /* images per batch (> 0) */
    int shuffle;      /* reshuffle each epoch with a permutation from (seed, epoch) */
    int drop_last;    /* drop the last partial batch of an epoch */
    uint64_t seed;
    int workers;      /* background threads; <= 0 means 1 */
    int prefetch;     /* batches in flight; <= 0 means 2 */
    const int32_t *indices; /* subset of the dataset (NULL = all); copied */
    int64_t nindices;
    int views;        /* 1..4 augmented views per image; 0 means 1 */
    ss_transform_fn transform[SS_LOADER_MAX_VIEWS]; /* per view; NULL = none */
    void *transform_ctx[SS_LOADER_MAX_VIEWS];
    float mean[3], std[3]; /* after the transform x = (x-mean[c])/std[c];
                              std[0] == 0 means no normalisation. A grey
                              dataset uses mean[0], std[0]. */
    /* Data-parallel shard (0/0 = a single process). With world W > 1 the
     * epoch is cut into global batches of W*batch items of the one
     * (seed, epoch) permutation, and batch b of rank r holds items
     * [b*W*batch + r*batch, b*W*batch + (r+1)*batch): the W ranks together
     * see exactly what one process sees with batch W*batch. The last partial
     * global batch is always dropped when W > 1 (every rank must take the
     * same number of equal steps). */
    int rank, world;
} ss_loader_opts;

typedef struct ss_batch {
    int64_t n;        /* images in this batch (the last one may be short) */
    int c, h, w;
    int views;
    float *x[SS_LOADER_MAX_VIEWS]; /* x[v] is [n,c,h,w]; NULL for v >= views */
    int32_t *y;       /* n labels (-1 = unlabelled) */
    int32_t *idx;     /* n dataset indices */
    int64_t epoch, index_in_epoch;
    int64_t offset;   /* position of item 0 in the global batch (rank*batch
                         when sharded, else 0): per-item randomness keyed on
                         offset + i matches a single process */
} ss_batch;

/* A loader is driven from one thread (next, seek and free are not to be
 * called concurrently); its workers are internal. */
typedef struct ss_loader ss_loader;

/* Start a loader over d (which must outlive it) with worker threads. */
ss_status ss_loader_new(const ss_dataset *d, const ss_loader_opts *o, ss_loader **out);

/* Block until the next batch is ready and describe it in *b. The batch's
 * memory stays valid until the next ss_loader_next / ss_loader_seek /
 * ss_loader_free. Epochs roll over automatically. */
ss_status ss_loader_next(ss_loader *L, ss_batch *b);

/* Batches per epoch (ceil(N/batch), or floor with drop_last; with world
 * W > 1: floor(N/(W*batch))). */
int64_t ss_loader_batches_per_epoch(const ss_loader *L);

/* Continue from batch `batch` of epoch `epoch`, exactly as if the loader had
 * run up to there: the next ss_loader_next returns that batch. */
ss_status ss_loader_seek(ss_loader *L, int64_t epoch, int64_t batch);

/* Total seconds ss_loader_next spent blocked waiting for workers. */
double ss_loader_wait_seconds(const ss_loader *L);

/* Stop the workers (even mid-batch) and free everything. NULL is fine. */
void ss_loader_free(ss_loader *L);

#ifdef __cplusplus
}
#endif
#endif
