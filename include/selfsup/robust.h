/* selfsup — robustness evaluation: accuracy of a classifier under every
 * corruption of corrupt.h at severities 1..5. */
#ifndef SELFSUP_ROBUST_H
#define SELFSUP_ROBUST_H

#include "selfsup/corrupt.h"
#include "selfsup/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_ROBUST_MAX 64

typedef struct ss_robust_result {
    int n;                               /* corruptions evaluated */
    const char *name[SS_ROBUST_MAX];
    const char *family[SS_ROBUST_MAX];
    double acc[SS_ROBUST_MAX][SS_CORRUPT_SEVERITIES];
    double clean;                        /* accuracy on the clean images */
    int64_t images;
} ss_robust_result;

/* Evaluate on the first max_images test images (0 = all); the corrupted set
 * is the same every run for a seed. only: NULL, or a comma-separated list of
 * corruption or family names. */
ss_status ss_robustness_eval(const ss_model *m, const ss_dataset *test, int64_t max_images, uint64_t seed,
                             const char *only, ss_robust_result *r);
/* SS_OK when every comma-separated word of only (spaces around a word
 * allowed) names a corruption or a family; else an error naming the word
 * and listing the choices. NULL or empty: SS_OK (all). */
ss_status ss_robust_check_only(const char *only);
/* Mean accuracy over severities of corruption i; mean over all. */
double ss_robust_mean(const ss_robust_result *r, int i);
double ss_robust_mca(const ss_robust_result *r);
/* Mean drop from clean (in accuracy points, 0..1) over a family's
 * corruptions and severities; NAN when the family is absent. */
double ss_robust_family_drop(const ss_robust_result *r, const char *family);

#ifdef __cplusplus
}
#endif
#endif
