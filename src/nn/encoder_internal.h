#ifndef SS_ENCODER_INTERNAL_H
#define SS_ENCODER_INTERNAL_H
#include "nn/params_internal.h"

/* Each encoder file provides one constructor; encoder.c lists them. */
typedef ss_status (*ss_encoder_ctor)(ss_encoder *e, ss_params *p, const char *prefix);
ss_status ss_convnet_s_new(ss_encoder *e, ss_params *p, const char *prefix);
ss_status ss_vit_new(ss_encoder *e, ss_params *p, const char *prefix);
ss_status ss_resnet18_new(ss_encoder *e, ss_params *p, const char *prefix);
ss_status ss_text_s_new(ss_encoder *e, ss_params *p, const char *prefix);
#endif
