/* libFuzzer target for checkpoints. First byte even: the rest becomes a
 * .safetensors file; ss_checkpoint_load_model must build the model its
 * metadata describes or fail with a message, never crash or allocate
 * beyond what the file holds, and a model it builds then takes a resume
 * (optimiser moments + 'state') from the same file or refuses it. First
 * byte odd: the rest is the 'state' JSON of an otherwise valid checkpoint
 * that is resumed (ss_checkpoint_load_into with an optimiser). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selfsup/optim.h"
#include "selfsup/safetensors.h"
#include "selfsup/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];
static ss_model tmpl;           /* convnet-s with a 1-class head */
static ss_optimizer *tmpl_opt;

static void init(void)
{
    struct stat sb;
    const char *dir = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/ss_fuzz_ckpt_%d.safetensors", dir, (int)getpid());
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    if (ss_model_create(&tmpl, &ec, 1) || ss_model_finalize(&tmpl, 1) || ss_opt_new(tmpl.p, &oc, &tmpl_opt)) abort();
}

/* The head's tensors and moments plus the fuzzed state: resume the head. */
static void fuzz_state(const uint8_t *data, size_t size)
{
    char *js = malloc(size + 1);
    if (!js) return;
    memcpy(js, data, size);
    js[size] = '\0';
    ss_st_writer *w = ss_st_writer_new();
    ss_tensor *hw = ss_params_find(tmpl.p, "head.weight"), *hb = ss_params_find(tmpl.p, "head.bias");
    float *m1 = ss_opt_moment1(tmpl_opt, NULL), *m2 = ss_opt_moment2(tmpl_opt, NULL);
    float *v0 = ss_params_values(tmpl.p, NULL);
    ss_st_writer_add(w, "head.weight", SS_DT_F32, hw->ndim, hw->shape, hw->data);
    ss_st_writer_add(w, "head.bias", SS_DT_F32, hb->ndim, hb->shape, hb->data);
    ss_st_writer_add(w, "optim.m1.head.weight", SS_DT_F32, hw->ndim, hw->shape, m1 + (hw->data - v0));
    ss_st_writer_add(w, "optim.m2.head.weight", SS_DT_F32, hw->ndim, hw->shape, m2 + (hw->data - v0));
    ss_st_writer_add(w, "optim.m1.head.bias", SS_DT_F32, hb->ndim, hb->shape, m1 + (hb->data - v0));
    ss_st_writer_add(w, "optim.m2.head.bias", SS_DT_F32, hb->ndim, hb->shape, m2 + (hb->data - v0));
    ss_st_writer_meta(w, "state", js);
    if (ss_st_writer_save(w, path) == SS_OK) {
        ss_train_state ts;
        if (ss_checkpoint_load_into(path, &tmpl, "head.", 0, tmpl_opt, &ts) == SS_OK &&
            (ts.epoch < 0 || ts.batch < 0 || ts.step < 0 || !(ts.lr_scale > 0 && ts.lr_scale <= 1)))
            abort(); /* accepted state must be in range */
    }
    ss_st_writer_free(w);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) init();
    if (size < 1) return 0;
    if (data[0] & 1) {
        fuzz_state(data + 1, size - 1);
        return 0;
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size > 1) fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    ss_model m;
    if (ss_checkpoint_load_model(path, &m, NULL, NULL) == SS_OK) {
        ss_optimizer *opt = NULL;
        ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
        if (ss_opt_new(m.p, &oc, &opt) == SS_OK) {
            ss_train_state ts;
            (void)ss_checkpoint_load_into(path, &m, NULL, 0, opt, &ts);
            ss_opt_free(opt);
        }
        ss_model_free(&m);
    }
    return 0;
}
