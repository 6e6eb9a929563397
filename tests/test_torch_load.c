/* A selfsup checkpoint loads into the PyTorch reference module and gives the
 * same logits (scripts/check_checkpoint.py). Runs when /usr/bin/python3 has
 * torch; says why it skips when not. Covers a trained-like convnet-s (BN
 * running statistics changed by a training forward) and vit-t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selfsup/safetensors.h"
#include "selfsup/train.h"
#include "testutil.h"

static int have_torch(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) return 0;
    return system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
}

static void one(const char *kind, const char *dir)
{
    ss_encoder_config ec = {.kind = kind, .in_chans = 1, .img_size = 28};
    ss_model m;
    CHECK_OK(ss_model_create(&m, &ec, 10));
    CHECK_OK(ss_model_finalize(&m, 7));
    ss_graph *g = ss_graph_new();
    ss_rng r;
    ss_rng_seed(&r, 11, 0);
    float x[6 * 784];
    for (int i = 0; i < 6 * 784; i++) x[i] = ss_rng_normal(&r);
    /* One training-mode forward so BN running statistics are not the defaults. */
    ss_graph_set_grad_enabled(g, 0);
    CHECK(ss_model_logits(g, &m, ss_wrap(g, x, 4, (int64_t[]){6, 1, 28, 28})) != NULL);
    ss_graph_reset(g);
    ss_graph_set_training(g, 0);
    ss_tensor *lo = ss_model_logits(g, &m, ss_wrap(g, x, 4, (int64_t[]){6, 1, 28, 28}));
    CHECK(lo != NULL);
    char ck[512], in[512], cmd[2048];
    snprintf(ck, sizeof ck, "%s/%s.safetensors", dir, kind);
    snprintf(in, sizeof in, "%s/%s_input.safetensors", dir, kind);
    CHECK_OK(ss_checkpoint_save(ck, &m, NULL, NULL, NULL));
    ss_st_writer *w = ss_st_writer_new();
    CHECK_OK(ss_st_writer_add(w, "input", SS_DT_F32, 4, (int64_t[]){6, 1, 28, 28}, x));
    CHECK_OK(ss_st_writer_add(w, "logits", SS_DT_F32, 2, (int64_t[]){6, 10}, lo->data));
    CHECK_OK(ss_st_writer_save(w, in));
    ss_st_writer_free(w);
    const char *src = getenv("SS_SOURCE_DIR") ? getenv("SS_SOURCE_DIR") : ".";
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/check_checkpoint.py %s %s 1e-4", src, ck, in);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s: PyTorch did not reproduce the logits (exit %d)", kind, rc);
    ss_graph_free(g);
    ss_model_free(&m);
}

int main(void)
{
    if (!have_torch()) {
        printf("skipped: /usr/bin/python3 with torch (Debian python3-torch) is not installed\n");
        TEST_MAIN_END();
    }
    char dir[] = "/tmp/ss_torchload_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        TEST_MAIN_END();
    }
    one("convnet-s", dir);
    one("vit-t", dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
