/* The encoder registry: adding an encoder is one file plus one line here. */
#include <stdlib.h>
#include <string.h>

#include "nn/encoder_internal.h"

static const struct {
    const char *name;
    ss_encoder_ctor ctor;
} encoders[] = {
    {"convnet-s", ss_convnet_s_new},
    {"vit-t", ss_vit_new},
    {"resnet18", ss_resnet18_new},
    {"text-s", ss_text_s_new},
};

const char *ss_encoder_names(void) { return "convnet-s, vit-t, resnet18, text-s"; }

ss_status ss_encoder_new(const ss_encoder_config *cfg, ss_params *p, const char *prefix, ss_encoder **out)
{
    *out = NULL;
    if (!cfg || !cfg->kind) return ss_seterr(SS_ERR_INVALID, "encoder: no kind given (one of %s)", ss_encoder_names());
    for (size_t i = 0; i < sizeof encoders / sizeof encoders[0]; i++) {
        if (strcmp(cfg->kind, encoders[i].name) != 0) continue;
        ss_encoder *e = calloc(1, sizeof *e);
        if (!e) return ss_seterr(SS_ERR_NOMEM, "encoder: out of memory");
        e->cfg = *cfg;
        e->cfg.kind = encoders[i].name;
        ss_status s = encoders[i].ctor(e, p, prefix ? prefix : "");
        if (s != SS_OK) {
            ss_encoder_free(e);
            return s;
        }
        *out = e;
        return SS_OK;
    }
    return ss_seterr(SS_ERR_INVALID, "encoder: unknown kind '%s' (expected one of %s)", cfg->kind, ss_encoder_names());
}

void ss_encoder_free(ss_encoder *e)
{
    if (!e) return;
    if (e->free_impl) e->free_impl(e->impl);
    else free(e->impl);
    free(e);
}

ss_tensor *ss_encoder_feature_map(ss_graph *g, const ss_encoder *e, ss_tensor *x)
{
    if (!e->forward_map)
        return ss_op_error(g, "feature_map", "encoder %s has no spatial feature map (use convnet-s or resnet18)",
                           e->cfg.kind);
    return e->forward_map(g, e, x);
}
