/* selfsup demo --plan: the time plan without running it. A fixed --scale
 * gives fixed budgets (the full ones at 1; each scaled budget at its
 * rounding and floor); flags the user sets are kept; --minutes picks the
 * largest ladder factor whose predicted length fits, and the prediction is
 * the measured rate times the counted work; bad values are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static const char *bin;

/* stdout of "SS_BIN demo --plan ARGS" (one JSON line) into out; exit code. */
static int plan(char *out, size_t cap, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' demo --plan --threads 1 %s 2>/dev/null", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static double num(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? atof(p + strlen(k)) : -1;
}

/* The plan for ARGS has these budgets (-1: not checked); its units. */
static double expect(const char *args, int pre_epochs, long pre_images, int ep1, int ep10, int dep, long rimg)
{
    char js[1024];
    CHECK_MSG(plan(js, sizeof js, args) == 0, "demo --plan %s failed", args);
    const char *key[6] = {"pretrain_epochs", "pretrain_images", "epochs_1", "epochs_10", "distill_epochs", "robust_images"};
    double want[6] = {pre_epochs, (double)pre_images, ep1, ep10, dep, (double)rimg};
    for (int i = 0; i < 6; i++)
        if (want[i] >= 0) CHECK_MSG(num(js, key[i]) == want[i], "%s: %s %g, want %g", args, key[i], num(js, key[i]), want[i]);
    return num(js, "units");
}

int main(void)
{
    bin = getenv("SS_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP: no selfsup binary (SS_BIN)\n");
        return 0;
    }
    char js[1024];

    /* the student's views: --augment spelled out with bg after the leading
     * crop and flip; 'same' = --augment; bad pipelines are refused before
     * any stage */
    CHECK(plan(js, sizeof js, "--scale 1") == 0);
    CHECK_MSG(strstr(js, "\"augment\":\"crop:2,hflip,jitter:0.4:0.4@0.8,erase:0.5\"") &&
                  strstr(js, "\"distill_augment\":\"crop:2,hflip:0.5,bg:0.8@0.5,jitter:0.4:0.4:0:0@0.8,erase:0.5\""),
              "default augment: %s", js);
    static const char *cases[][2] = {
        {"--augment rrc:0.5-1,hflip", "rrc:0.5-1:0.75-1.3333333333333333,hflip:0.5,bg:0.8@0.5"},
        {"--augment noise:0.1", "bg:0.8@0.5,noise:0.1"},
        {"--augment crop:2,bg:0.3@1", "crop:2,bg:0.3@1"},
        {"--distill-augment same", "crop:2,hflip,jitter:0.4:0.4@0.8,erase:0.5"},
        {"--augment 'hflip , crop:2,noise:0.1,crop:1'", "hflip:0.5,crop:2,bg:0.8@0.5,noise:0.1,crop:1"},
        {"--augment crop:2,norm:0.5/0.5", "crop:2,bg:0.8@0.5,norm:0.5/0.5"},
        {"--augment ' none '", " none "},
        {"--augment ''", ""},
        {"--augment 'hflip,noise:0.1' --distill-augment 'crop:1,bg:0.5@1'", "crop:1,bg:0.5@1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[256], want[256];
        snprintf(args, sizeof args, "--scale 1 %s", cases[i][0]);
        snprintf(want, sizeof want, "\"distill_augment\":\"%s\"", cases[i][1]);
        CHECK_MSG(plan(js, sizeof js, args) == 0 && strstr(js, want), "%s: %s, want %s", args, js, want);
    }
    CHECK(plan(js, sizeof js, "--scale 1 --augment \"$(printf 'noise:\\n0.1')\"") != 0);
    CHECK(plan(js, sizeof js, "--scale 1 --distill-augment hflip,bg:2") != 0);
    CHECK(plan(js, sizeof js, "--scale 1 --distill-augment \"$(printf 'hflip\\tnoise:0.1')\"") != 0);
    CHECK(plan(js, sizeof js, "--scale 1 --augment wobble") != 0);

    /* scale 1: the documented full budgets; 180,000 pretraining images x 2
     * views + the counted rest */
    const double full = expect("--scale 1", 3, 60000, 100, 10, 4, 1500);
    CHECK(full > 360000 && full < 1.2e6);
    /* scale 0.5: pretraining work 90,000 images -> 2 epochs of 45,000;
     * distillation epochs halve, the labelled stages' epochs scale by
     * sqrt(0.5); robustness images by min(1, 1.5 x 0.5) */
    expect("--scale 0.5", 2, 45000, 71, 7, 2, 1100);
    /* the distillation keeps a floor of two epochs, unless set */
    expect("--scale 0.35", -1, -1, -1, -1, 2, -1);
    expect("--scale 0.2", 1, 36000, 45, 4, 2, 500);
    CHECK(expect("--scale 0.35 --distill-epochs 1", -1, -1, -1, -1, 1, -1) < 0.6 * full);
    /* floors at the bottom of the ladder (at least 10 epochs at 1% labels,
     * one at 10%, 500 robustness images); set flags are kept */
    expect("--scale 0.05 --epochs-1 7 --distill-epochs 0", 1, 9000, 7, 2, 0, 500);
    expect("--scale 0.0025", -1, -1, 10, 1, -1, -1); /* sqrt: 0.05 x 100 epochs = 5 */
    /* --quick: no distillation */
    expect("--quick --scale 1", 1, 12000, 15, 2, 0, 500);

    /* scratch trains the method's encoder: vit-t for mae, whose labelled
     * stages count 2.8 units per image and whose pretraining 1.5 per image
     * (simclr: 2 views of convnet-s, 1 unit each) */
    CHECK(plan(js, sizeof js, "--scale 0.5") == 0);
    CHECK_MSG(strstr(js, "\"encoder\":\"convnet-s\"") != NULL, "%s", js);
    double pre = num(js, "pretrain_epochs") * num(js, "pretrain_images"), rest = num(js, "units") - 2 * pre;
    CHECK(plan(js, sizeof js, "--scale 0.5 --method mae") == 0);
    CHECK_MSG(strstr(js, "\"encoder\":\"vit-t\"") != NULL, "%s", js);
    CHECK_NEAR(num(js, "units"), 1.5 * pre + 2.8 * rest, 2.0);
    CHECK(plan(js, sizeof js, "--scale 0.5 --method mlm") != 0);

    /* --minutes: the prediction is the rate times the counted work, and
     * fits the budget (95%) unless the ladder's last factor is reached. */
    CHECK(plan(js, sizeof js, "--minutes 15") == 0);
    double s15 = num(js, "scale"), pred = num(js, "predicted_s"), ums = num(js, "unit_ms");
    printf("plan for 15 minutes on this machine (1 thread): scale %.2f, %.3f ms per unit, predicted %.0f s\n", s15,
           ums, pred);
    CHECK(ums > 0);
    CHECK_NEAR(pred, 25 + ums * 1e-3 * num(js, "units"), 1.0);
    CHECK(pred <= 0.95 * 900 + 1e-6 || s15 <= 0.2 + 1e-9);
    /* with a given rate the choice is exact: at 1 ms per unit the full
     * budgets (about 1 M units) do not fit 15 minutes; the factor taken is
     * the largest on the ladder that does (the next one up does not); a
     * faster machine runs everything */
    static const double ladder[] = {1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2};
    CHECK(plan(js, sizeof js, "--minutes 15 --unit-ms 1") == 0);
    double f = num(js, "scale");
    CHECK(25 + 1e-3 * num(js, "units") <= 855);
    CHECK(strstr(js, "\"fits\":true") != NULL);
    int li = -1;
    for (int i = 0; i < 12; i++)
        if (fabs(ladder[i] - f) < 1e-9) li = i;
    CHECK_MSG(li > 0, "factor %g is not on the ladder below 1", f);
    if (li > 0) {
        char a[64];
        snprintf(a, sizeof a, "--scale %g", ladder[li - 1]);
        CHECK(plan(js, sizeof js, a) == 0);
        CHECK_MSG(25 + 1e-3 * num(js, "units") > 855, "factor %g would have fit too", ladder[li - 1]);
    }
    /* --scale with --unit-ms: the same prediction */
    CHECK(plan(js, sizeof js, "--scale 1 --unit-ms 1") == 0);
    CHECK_NEAR(num(js, "predicted_s"), 25 + 1e-3 * num(js, "units"), 1.0);
    CHECK(plan(js, sizeof js, "--minutes 15 --unit-ms 0.5") == 0);
    CHECK_NEAR(num(js, "scale"), 1, 1e-9);

    /* nothing fits: the last factor, and the distillation is dropped
     * unless it was set */
    CHECK(plan(js, sizeof js, "--minutes 0.1 --unit-ms 1") == 0);
    CHECK_NEAR(num(js, "scale"), 0.2, 1e-9);
    CHECK(strstr(js, "\"fits\":false") != NULL);
    CHECK_NEAR(num(js, "distill_epochs"), 0, 0);
    expect("--minutes 0.1 --unit-ms 1 --distill-epochs 3", -1, -1, -1, -1, 3, -1);

    /* refused */
    CHECK(plan(js, sizeof js, "--scale 2") != 0);
    CHECK(plan(js, sizeof js, "--minutes -1") != 0);
    CHECK(plan(js, sizeof js, "--minutes 15 --scale 0.5") != 0);
    TEST_MAIN_END();
}
