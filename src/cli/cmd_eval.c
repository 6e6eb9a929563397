/* selfsup eval --model CKPT [--data TEST]: accuracy, per-class accuracy,
 * confusion matrix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"

int cmd_eval(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "eval", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup eval --model CHECKPOINT [--data PATH (default: the test split of "
               "fashion-mnist)] [--split test|train] [--threads 2] [--precision fp32|bf16] [--json]\n");
        return 0;
    }
    int ok = 1;
    const char *model = args_str(&a, "model", NULL);
    const char *data = args_str(&a, "data", "/usr/share/datasets/fashion-mnist");
    const char *split = args_str(&a, "split", "test");
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    int json = args_flag(&a, "json");
    long max_images = args_int(&a, "max-images", 0, 0, 1L << 40, &ok);
    ss_precision prec;
    if (!cli_read_precision(&a, "fp32", &prec)) ok = 0;
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!model) {
        fprintf(stderr, "selfsup eval: --model CHECKPOINT is required\n");
        return 2;
    }
    ss_set_threads(threads);
    ss_model m;
    memset(&m, 0, sizeof m);
    if (ss_checkpoint_load_model(model, &m, NULL, NULL)) return cli_fail();
    if (m.nclasses <= 0) {
        ss_model_free(&m);
        fprintf(stderr, "selfsup eval: %s has no classifier head (a pretrained encoder: use probe, knn or "
                        "finetune)\n", model);
        return 1;
    }
    ss_dataset d;
    ss_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.split = split;
    lo.target_h = m.ecfg.img_size;
    lo.target_w = m.ecfg.img_size;
    lo.channels = m.ecfg.in_chans;
    lo.max_images = max_images;
    if (ss_dataset_load(data, &lo, &d)) {
        ss_model_free(&m);
        return cli_fail();
    }
    int C = m.nclasses;
    for (int64_t i = 0; i < d.n; i++)
        if (d.labels && d.labels[i] >= C) {
            ss_seterr(SS_ERR_RANGE, "%s: image %lld has label %d but the model knows %d classes", d.source,
                      (long long)i, d.labels[i], C);
            ss_dataset_free(&d);
            ss_model_free(&m);
            return cli_fail();
        }
    double acc, *pc = calloc((size_t)C, sizeof(double));
    int64_t *conf = calloc((size_t)C * C, sizeof(int64_t));
    ss_status s = ss_evaluate(&m, &d, NULL, d.n, 256, &acc, pc, conf);
    if (s) {
        free(pc);
        free(conf);
        ss_dataset_free(&d);
        ss_model_free(&m);
        return cli_fail();
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "data", data);
        cJSON_AddNumberToObject(o, "images", (double)d.n);
        cJSON_AddNumberToObject(o, "accuracy", acc);
        cJSON *p = cJSON_AddArrayToObject(o, "per_class");
        cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
        for (int i = 0; i < C; i++) {
            cJSON_AddItemToArray(p, cJSON_CreateNumber(pc[i]));
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < C; j++) cJSON_AddItemToArray(row, cJSON_CreateNumber((double)conf[i * C + j]));
            cJSON_AddItemToArray(cm, row);
        }
        char *str = cJSON_PrintUnformatted(o);
        printf("%s\n", str);
        free(str);
        cJSON_Delete(o);
    } else {
        printf("%s on %s (%lld images): accuracy %.2f%%\n\nper class:\n", model, d.source, (long long)d.n, 100 * acc);
        for (int i = 0; i < C; i++)
            printf("  %-14s %6.2f%%\n", m.class_names ? m.class_names[i] : (char[12]){0}, 100 * pc[i]);
        printf("\nconfusion (rows: true, columns: predicted):\n");
        for (int i = 0; i < C; i++) {
            printf("  ");
            for (int j = 0; j < C; j++) printf("%5lld", (long long)conf[i * C + j]);
            printf("\n");
        }
    }
    free(pc);
    free(conf);
    ss_dataset_free(&d);
    ss_model_free(&m);
    return 0;
}
