/* selfsup probe / selfsup knn: frozen-feature protocols on a labelled subset,
 * scored on the test split. Features are computed once per run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "selfsup/knn.h"

static int protocol_main(int argc, char **argv, const char *cmd)
{
    ss_args a;
    if (ss_args_parse(&a, cmd, argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup %s --model CHECKPOINT [--data PATH] [--test-data PATH] [--labels 1%%|10%%|100%%|N/class]\n"
               "  [--seed 0] [--threads 2] [--precision fp32|bf16] [--max-images N] [--json]%s\n",
               cmd, strcmp(cmd, "knn") ? " [--epochs 100]"
                                       : "\n  [--temperature 0.07 (the votes weigh exp(cos / T); pretrain's --temperature is its loss's)]");
        return 0;
    }
    image_run r;
    memset(&r, 0, sizeof r);
    r.wd = 0;
    int ok = 1;
    int knn = !strcmp(cmd, "knn");
    /* none of the training flags: the probe's weight decay is chosen on a
     * split of the labelled set, its features come from the checkpoint, and
     * k-NN trains nothing (no --epochs) */
    run_read_flags(&r, &a, RF_LABELS | RF_MODEL | (knn ? 0 : RF_EPOCHS), &ok);
    float T = knn ? (float)args_float(&a, "temperature", 0.07, 1e-4, 10, &ok) : 0.07f;
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!r.model) {
        fprintf(stderr, "selfsup %s: --model CHECKPOINT is required (a pretrained or trained checkpoint, or "
                        "'random:ENCODER' for a randomly initialised encoder)\n", cmd);
        return 2;
    }
    if (run_load_data(&r, 1)) {
        run_free(&r);
        return cli_fail();
    }
    ss_model m;
    ss_status s;
    if (!strncmp(r.model, "random:", 7)) {
        ss_encoder_config ec = {.kind = r.model + 7, .in_chans = r.train.c, .img_size = r.train.h};
        s = ss_model_create(&m, &ec, 0);
        if (!s) s = ss_model_finalize(&m, r.seed);
        memcpy(m.mean, r.mean, sizeof m.mean);
        memcpy(m.std, r.std, sizeof m.std);
    } else {
        char *kind = ss_checkpoint_meta(r.model, "encoder");
        if (!kind) {
            run_free(&r);
            return cli_fail();
        }
        ss_encoder_config ec = {.kind = kind, .in_chans = r.train.c, .img_size = r.train.h};
        s = ss_model_create(&m, &ec, 0);
        if (!s) s = ss_model_finalize(&m, r.seed);
        if (!s) s = ss_checkpoint_load_into(r.model, &m, "encoder.", 0, NULL, NULL);
        memcpy(m.mean, r.mean, sizeof m.mean);
        memcpy(m.std, r.std, sizeof m.std);
        free(kind);
        m.ecfg.kind = m.enc->cfg.kind;
    }
    if (s) {
        run_free(&r);
        return cli_fail();
    }
    int D = m.enc->feat_dim;
    double t0 = ss_now();
    float *ftr = malloc(sizeof(float) * (size_t)(r.nlab * D)), *fte = malloc(sizeof(float) * (size_t)(r.test.n * D));
    int32_t *ytr = malloc(sizeof(int32_t) * (size_t)r.nlab);
    if (!ftr || !fte || !ytr) s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", cmd);
    if (!s) s = ss_extract_features(&m, &r.train, r.lab_idx, r.nlab, 256, ftr);
    if (!s) s = ss_extract_features(&m, &r.test, NULL, r.test.n, 256, fte);
    double tfeat = ss_now() - t0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "protocol", cmd);
    cJSON_AddStringToObject(o, "model", r.model);
    cJSON_AddNumberToObject(o, "labelled", (double)r.nlab);
    if (!s) {
        for (int64_t i = 0; i < r.nlab; i++) ytr[i] = r.train.labels[r.lab_idx[i]];
        if (!strcmp(cmd, "knn")) {
            double a20, a200;
            s = ss_knn_classify(ftr, ytr, r.nlab, fte, r.test.labels, r.test.n, D, r.train.nclasses, T, &a20, &a200);
            cJSON_AddNumberToObject(o, "knn20_acc", a20);
            cJSON_AddNumberToObject(o, "knn200_acc", a200);
        } else {
            double acc, wd, va;
            int epochs = r.epochs ? r.epochs : 100;
            s = ss_linear_probe(ftr, ytr, r.nlab, fte, r.test.labels, r.test.n, D, r.train.nclasses, epochs, r.seed,
                                &acc, &wd, &va);
            cJSON_AddNumberToObject(o, "probe_acc", acc);
            cJSON_AddNumberToObject(o, "chosen_wd", wd);
            cJSON_AddNumberToObject(o, "val_acc", va);
        }
    }
    cJSON_AddNumberToObject(o, "feature_seconds", tfeat);
    cJSON_AddNumberToObject(o, "total_seconds", ss_now() - t0);
    if (!s) print_kv_result(r.json, cmd, o);
    cJSON_Delete(o);
    free(ftr);
    free(fte);
    free(ytr);
    ss_model_free(&m);
    run_free(&r);
    return s ? cli_fail() : 0;
}

int cmd_probe(int argc, char **argv) { return protocol_main(argc, argv, "probe"); }
int cmd_knn(int argc, char **argv) { return protocol_main(argc, argv, "knn"); }
