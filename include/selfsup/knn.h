/* selfsup — evaluation protocols on frozen features: weighted k-NN and the
 * linear probe (solo-learn / lightly conventions). */
#ifndef SELFSUP_KNN_H
#define SELFSUP_KNN_H

#include "selfsup/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Cosine k-NN on L2-normalised features: for each query the k nearest bank
 * entries vote for their class with weight exp(sim / T) (Wu et al. 2018).
 * bank [nb, D], queries [nq, D] (normalised in place); returns accuracies
 * for k = 20 and k = 200 (k capped at nb). */
ss_status ss_knn_classify(float *bank, const int32_t *bank_y, int64_t nb, float *queries, const int32_t *q_y,
                          int64_t nq, int D, int nclasses, float T, double *acc20, double *acc200);
/* Features of (train, idx) as the bank and the first max_test test images as
 * queries; the model's encoder in eval mode. */
ss_status ss_knn_eval(const ss_model *m, const ss_dataset *train, const int32_t *idx, int64_t n,
                      const ss_dataset *test, int64_t max_test, float T, double *acc20, double *acc200);

/* Linear probe on cached features: standardise with the train statistics,
 * choose weight decay among {0, 1e-4, 1e-3, 1e-2, 1e-1} on a class-balanced
 * 20% validation split of the labelled set, retrain on all of it, score the
 * test features. chosen_wd and val_acc may be NULL. */
ss_status ss_linear_probe(const float *xtr, const int32_t *ytr, int64_t ntr, const float *xte, const int32_t *yte,
                          int64_t nte, int D, int nclasses, int epochs, uint64_t seed, double *test_acc,
                          double *chosen_wd, double *val_acc);

#ifdef __cplusplus
}
#endif
#endif
