#ifndef SS_CLI_H
#define SS_CLI_H
#include "cli/args.h"
#include "selfsup/selfsup.h"

/* Print "selfsup: <last error>" to stderr and return exit code 1. */
int cli_fail(void);
double ss_now(void);
double ss_median(double *v, int n);
/* --precision fp32|bf16 (default def): sets ss_set_precision and stores
 * the precision in effect in *out. bf16 on a CPU without AVX-512 BF16 runs
 * in fp32 with a one-line notice on stderr; another name is an error (0). */
int cli_read_precision(ss_args *a, const char *def, ss_precision *out);

int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_knn(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_robustness(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_scenes(int argc, char **argv);
int cmd_detect(int argc, char **argv);
#endif
