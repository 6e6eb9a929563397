#ifndef SS_PARAMS_INTERNAL_H
#define SS_PARAMS_INTERNAL_H
#include "selfsup/nn.h"

/* Initialisation rule of one registered tensor (used by SS_INIT_TORCH_DEFAULT). */
enum {
    SS_RULE_ZEROS = 0,
    SS_RULE_ONES,
    SS_RULE_UNIFORM,  /* U(-arg, arg) */
    SS_RULE_NORMAL,   /* N(0, arg^2), truncated at 2 std as timm's trunc_normal_ */
    SS_RULE_FIXED     /* left as the layer set it after finalize */
};
void ss_params_set_rule(ss_params *p, const ss_tensor *t, int rule, float arg);
#endif
