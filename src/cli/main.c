/* selfsup — command-line tool. Each command lives in cmd_<name>.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/text_cli.h"
#include "selfsup/dist.h"
#include "selfsup/runtime.h"

int cli_fail(void)
{
    fprintf(stderr, "selfsup: %s\n", ss_errmsg()[0] ? ss_errmsg() : "failed");
    return 1;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"train", cmd_train, "supervised training from scratch on a labelled subset"},
    {"finetune", cmd_finetune, "fine-tune a pretrained encoder + linear head on a labelled subset"},
    {"demo", cmd_demo, "the three claims of self-supervised learning in one run, with a report (--quick: about 3 min)"},
    {"pretrain", cmd_pretrain, "self-supervised pretraining: rotation, simclr, mae, byol, vicreg"},
    {"probe", cmd_probe, "linear probe on frozen features of a labelled subset"},
    {"knn", cmd_knn, "weighted k-NN (k=20, 200) on frozen features"},
    {"robustness", cmd_robustness, "accuracy under lighting, background, noise, blur and digital corruptions"},
    {"eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix of a checkpoint"},
    {"tokenizer", cmd_tokenizer, "byte-level BPE tokenizer: train on a text corpus (Hugging Face JSON), encode"},
    {"scenes", cmd_scenes, "detection scenes (PNG + COCO JSON) composed from a labelled image dataset"},
    {"detect", cmd_detect, "object detection: train (scratch or --model), eval (COCO mAP), predict (boxes on PNGs)"},
    {"bench", cmd_bench, "step benchmarks: gemm, step-convnet-sup, step-rotation, step-simclr, step-mae, step-mlm"},
};

static void usage(FILE *f)
{
    fprintf(f, "selfsup %s — self-supervised learning in C\n\nusage: selfsup COMMAND [options]\n\ncommands:\n",
            SELFSUP_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'selfsup COMMAND --help' lists a command's options.\n");
}

int main(int argc, char **argv)
{
    ss_runtime_omp_defaults(argv); /* GOMP_SPINCOUNT for shared CPUs (re-execs once) */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("selfsup %s\n", SELFSUP_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            /* Under mpirun: data-parallel training (selfsup/dist.h). */
            if (ss_dist_init(&argc, &argv)) return cli_fail();
            /* --text: the text side of the same command (cmd_text.c). */
            int rc = text_flag_given(argc - 2, argv + 2) ? cmd_text(argv[1], argc - 2, argv + 2)
                                                         : commands[i].fn(argc - 2, argv + 2);
            if (rc && ss_dist_world() > 1) ss_dist_abort(rc); /* do not leave the other ranks waiting */
            ss_dist_finalize();
            return rc;
        }
    fprintf(stderr, "selfsup: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
