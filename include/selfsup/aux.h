/* selfsup — auxiliary self-supervised losses added to supervised training
 * (Hendrycks et al. 2019, "Using self-supervised learning can improve model
 * robustness and uncertainty"): `selfsup train --aux rotation:0.5`. */
#ifndef SELFSUP_AUX_H
#define SELFSUP_AUX_H

#include "selfsup/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_aux ss_aux;
/* spec "rotation:WEIGHT"; registers the head "aux_rot_head" in m (before
 * ss_model_finalize). */
ss_status ss_aux_new(const char *spec, ss_model *m, ss_aux **out);
void ss_aux_free(ss_aux *a);
/* loss + weight * CE(rotation head(encoder(rot(x))), rotation), each image
 * rotated by a random multiple of 90 degrees. */
ss_tensor *ss_aux_add_loss(ss_aux *a, ss_graph *g, const ss_model *m, const ss_batch *b, ss_tensor *loss);

#ifdef __cplusplus
}
#endif
#endif
