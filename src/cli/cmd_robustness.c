/* selfsup robustness --model M [--data TEST]: accuracy under every corruption
 * at 5 severities, mean corruption accuracy, drop from clean; a table on the
 * terminal, JSON, a chart and a grid image of the corruptions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "selfsup/fileio.h"
#include "selfsup/plot.h"
#include "selfsup/robust.h"

static const char *families[] = {"lighting", "background", "noise", "blur", "digital"};

cJSON *robust_to_json(const ss_robust_result *r, const char *model)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddNumberToObject(o, "images", (double)r->images);
    cJSON_AddNumberToObject(o, "clean_acc", r->clean);
    cJSON_AddNumberToObject(o, "mean_corruption_acc", ss_robust_mca(r));
    cJSON *c = cJSON_AddArrayToObject(o, "corruptions");
    for (int i = 0; i < r->n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", r->name[i]);
        cJSON_AddStringToObject(e, "family", r->family[i]);
        cJSON *a = cJSON_AddArrayToObject(e, "acc");
        for (int k = 0; k < SS_CORRUPT_SEVERITIES; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber(r->acc[i][k]));
        cJSON_AddNumberToObject(e, "mean_acc", ss_robust_mean(r, i));
        cJSON_AddNumberToObject(e, "drop", r->clean - ss_robust_mean(r, i));
        cJSON_AddItemToArray(c, e);
    }
    cJSON *f = cJSON_AddObjectToObject(o, "family_drop");
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
        double d = ss_robust_family_drop(r, families[k]);
        if (isfinite(d)) cJSON_AddNumberToObject(f, families[k], d);
    }
    return o;
}

void robust_print_table(const ss_robust_result *r)
{
    printf("%-20s %-11s %7s %7s %7s %7s %7s %7s %7s\n", "corruption", "family", "s1", "s2", "s3", "s4", "s5", "mean",
           "drop");
    printf("%-20s %-11s %7.2f\n", "clean", "-", 100 * r->clean);
    for (int i = 0; i < r->n; i++) {
        printf("%-20s %-11s", r->name[i], r->family[i]);
        for (int k = 0; k < SS_CORRUPT_SEVERITIES; k++) printf(" %7.2f", 100 * r->acc[i][k]);
        printf(" %7.2f %+7.2f\n", 100 * ss_robust_mean(r, i), -100 * (r->clean - ss_robust_mean(r, i)));
    }
    printf("mean corruption accuracy %.2f%% (clean %.2f%%)\n", 100 * ss_robust_mca(r), 100 * r->clean);
}

int cmd_robustness(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "robustness", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup robustness --model CHECKPOINT [--data PATH (test split)]\n"
               "  [--only LIST (comma-separated families: lighting, background, noise, blur, digital; or corruption names)]\n"
               "  [--max-images N] [--seed 0] [--threads 2] [--precision fp32|bf16] [--out DIR (robustness.json, robustness.png,\n"
               "  corruptions.png)] [--json]\n");
        return 0;
    }
    int ok = 1;
    const char *model = args_str(&a, "model", NULL);
    const char *data = args_str(&a, "data", "/usr/share/datasets/fashion-mnist");
    const char *only = args_str(&a, "only", NULL);
    const char *out = args_str(&a, "out", NULL);
    long max_images = args_int(&a, "max-images", 0, 0, 1L << 40, &ok);
    uint64_t seed = (uint64_t)args_int(&a, "seed", 0, 0, 1L << 40, &ok);
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    int json = args_flag(&a, "json");
    ss_precision prec;
    if (!cli_read_precision(&a, "fp32", &prec)) ok = 0;
    if (ok && ss_robust_check_only(only)) ok = 0; /* before anything loads */
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!model) {
        fprintf(stderr, "selfsup robustness: --model CHECKPOINT is required\n");
        return 2;
    }
    ss_set_threads(threads);
    ss_model m;
    memset(&m, 0, sizeof m);
    if (ss_checkpoint_load_model(model, &m, NULL, NULL)) return cli_fail();
    if (m.nclasses <= 0) {
        ss_model_free(&m);
        fprintf(stderr, "selfsup robustness: %s has no classifier head (a pretrained encoder: fine-tune it first, "
                        "or use probe or knn)\n", model);
        return 1;
    }
    ss_dataset d;
    ss_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.split = "test";
    lo.target_h = lo.target_w = m.ecfg.img_size;
    lo.channels = m.ecfg.in_chans;
    if (ss_dataset_load(data, &lo, &d)) {
        ss_model_free(&m);
        return cli_fail();
    }
    ss_robust_result r;
    ss_status s = ss_robustness_eval(&m, &d, max_images, seed, only, &r);
    if (s) {
        ss_dataset_free(&d);
        ss_model_free(&m);
        return cli_fail();
    }
    cJSON *o = robust_to_json(&r, model);
    if (json) {
        char *str = cJSON_PrintUnformatted(o);
        printf("%s\n", str);
        free(str);
    } else {
        robust_print_table(&r);
    }
    if (out) {
        char p[1100];
        ss_mkdir_p(out);
        char *str = cJSON_Print(o);
        snprintf(p, sizeof p, "%s/robustness.json", out);
        if (!s) s = ss_write_file_atomic(p, str, strlen(str));
        free(str);
        const char *cats[SS_ROBUST_MAX];
        double vals[SS_ROBUST_MAX];
        for (int i = 0; i < r.n; i++) {
            cats[i] = r.name[i];
            vals[i] = 100 * ss_robust_mean(&r, i);
        }
        const char *sn[1] = {"accuracy %"};
        snprintf(p, sizeof p, "%s/robustness.png", out);
        if (!s) s = ss_plot_bars_png(p, "mean accuracy over severities 1-5", "accuracy %", cats, r.n, sn, vals, 1, 1000, 500);
        /* Grid of every corruption at every severity on the first test image. */
        float *img = malloc(sizeof(float) * (size_t)(d.c * d.h * d.w));
        for (int64_t i = 0; i < (int64_t)d.c * d.h * d.w; i++) img[i] = d.pixels[i] / 255.0f;
        snprintf(p, sizeof p, "%s/corruptions.png", out);
        if (!s) s = ss_corrupt_grid_png(p, img, d.c, d.h, d.w, seed);
        free(img);
        if (!s && !json) printf("wrote %s/robustness.json, robustness.png, corruptions.png\n", out);
    }
    cJSON_Delete(o);
    ss_dataset_free(&d);
    ss_model_free(&m);
    return s ? cli_fail() : 0;
}
