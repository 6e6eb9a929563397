/* NaN/Inf guard: a checkpoint with a non-finite value is refused (the good
 * one stays); `selfsup` stops at the step a NaN appears naming the op, or
 * with --on-nan rollback reloads the last checkpoint, halves the learning
 * rate and finishes; it gives up after --max-rollbacks. The NaN is injected
 * with the hidden --debug-nan-at-step N. CLI parts skip without SS_BIN or
 * Fashion-MNIST. */
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfsup/fileio.h"
#include "selfsup/train.h"
#include "testutil.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char out_buf[16384];

/* Run a shell command; stdout+stderr into out_buf; exit status. */
static int run(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double state_num(const char *ckpt, const char *key)
{
    char *js = ss_checkpoint_meta(ckpt, "state");
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    cJSON *x = cJSON_GetObjectItem(j, key);
    double v = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    cJSON_Delete(j);
    free(js);
    return v;
}

static void test_save_refuses_nan(const char *dir)
{
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    ss_model m;
    CHECK_OK(ss_model_create(&m, &ec, 10));
    CHECK_OK(ss_model_finalize(&m, 1));
    char path[600];
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    CHECK_OK(ss_checkpoint_save(path, &m, NULL, NULL, NULL));
    void *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    CHECK_OK(ss_read_file(path, (size_t)1 << 30, &before, &nb));
    ss_tensor *t = ss_params_at(m.p, ss_params_count(m.p) - 1);
    t->data[t->numel - 1] = INFINITY;
    ss_status s = ss_checkpoint_save(path, &m, NULL, NULL, NULL);
    CHECK(s == SS_ERR_NAN);
    CHECK_MSG(strstr(ss_errmsg(), t->name) && strstr(ss_errmsg(), "good.safetensors"), "%s", ss_errmsg());
    CHECK_OK(ss_read_file(path, (size_t)1 << 30, &after, &na));
    CHECK(na == nb && before && after && memcmp(before, after, nb) == 0); /* the good one stays */
    free(before);
    free(after);
    ss_model_free(&m);
}

int main(void)
{
    char dir[] = "/tmp/ss_nan_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_save_refuses_nan(dir);

    const char *bin = getenv("SS_BIN");
    if (!bin || access(bin, X_OK) != 0 || access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        printf("CLI part skipped: needs SS_BIN and %s\n", FMNIST);
    } else {
        /* 128 images, batch 32: 4 steps per epoch. */
        char base[1024], cmd[2048], ck[700];
        snprintf(base, sizeof base,
                 "'%s' pretrain --method simclr --data " FMNIST " --max-images 128 --batch 32 --knn-every 0 "
                 "--threads 1 --quiet --checkpoint-every 1",
                 bin);

        /* stop (default): names the step and the op, keeps the good checkpoint */
        snprintf(cmd, sizeof cmd, "%s --epochs 1 --out %s/stop --debug-nan-at-step 2", base, dir);
        CHECK(run(cmd) == 1);
        CHECK_MSG(strstr(out_buf, "step 2 ") && strstr(out_buf, "op 'conv2d'") && strstr(out_buf, "is already NaN"),
                  "%s", out_buf);
        snprintf(ck, sizeof ck, "%s/stop/last.safetensors", dir);
        CHECK(state_num(ck, "step") == 2);
        ss_model m;
        CHECK_OK(ss_checkpoint_load_model(ck, &m, NULL, NULL));
        int finite = 1;
        for (int i = 0; i < ss_params_count(m.p); i++)
            for (int64_t k = 0; k < ss_params_at(m.p, i)->numel; k++) finite &= isfinite(ss_params_at(m.p, i)->data[k]);
        CHECK(finite);
        ss_model_free(&m);

        /* rollback: reload, halve the learning rate, finish */
        snprintf(cmd, sizeof cmd, "%s --epochs 2 --out %s/rb --debug-nan-at-step 5 --on-nan rollback", base, dir);
        CHECK_MSG(run(cmd) == 0, "%s", out_buf);
        CHECK_MSG(strstr(out_buf, "step 5 ") && strstr(out_buf, "rolled back") && strstr(out_buf, "x0.5"), "%s", out_buf);
        snprintf(ck, sizeof ck, "%s/rb/last.safetensors", dir);
        CHECK(state_num(ck, "step") == 8);
        CHECK(state_num(ck, "rollbacks") == 1);
        CHECK(state_num(ck, "lr_scale") == 0.5);

        /* rollback with no checkpoint yet (one is written at the start) */
        snprintf(cmd, sizeof cmd,
                 "%s --epochs 1 --checkpoint-every 0 --out %s/rb0 --debug-nan-at-step 1 --on-nan rollback", base, dir);
        CHECK_MSG(run(cmd) == 0 && strstr(out_buf, "(step 0)"), "%s", out_buf);

        /* gives up after --max-rollbacks */
        snprintf(cmd, sizeof cmd, "%s --epochs 1 --out %s/rb1 --debug-nan-at-step 2 --on-nan rollback --max-rollbacks 0",
                 base, dir);
        CHECK(run(cmd) == 1);
        CHECK_MSG(strstr(out_buf, "after the last allowed rollback"), "%s", out_buf);

        /* supervised training, --check-finite (the graph stops at the op) */
        snprintf(cmd, sizeof cmd,
                 "'%s' train --data " FMNIST " --max-images 128 --labels 100%% --batch 32 --epochs 1 --threads 1 "
                 "--quiet --eval-images 64 --check-finite --out %s/tr --debug-nan-at-step 3 --on-nan rollback",
                 bin, dir);
        CHECK_MSG(run(cmd) == 0 && strstr(out_buf, "rolled back"), "%s", out_buf);

        /* a bad policy name is refused, naming the flag */
        snprintf(cmd, sizeof cmd, "%s --epochs 1 --out %s/bad --on-nan ignore", base, dir);
        CHECK(run(cmd) != 0);
        CHECK_MSG(strstr(out_buf, "--on-nan 'ignore'"), "%s", out_buf);
    }
    if (tu_fail == 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    TEST_MAIN_END();
}
