/* End to end through the selfsup binary (SS_BIN) on tiny generated text:
 * tokenizer train, MLM pretraining (tokenizer kept in the checkpoint),
 * finetune / train / probe / eval / robustness --text, and the errors for
 * bad input. Budgets are a few steps; SS_SANITIZED=1 shrinks them more. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfsup/safetensors.h"
#include "selfsup/text.h"
#include "testutil.h"

static const char *bin;
static char dir[256];

/* Run "SS_BIN args" in dir; stdout into *out (malloc'd, may be NULL),
 * stderr into dir/err.txt. Returns the exit code. */
static int run(char **out, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    /* One thread: small steps on a shared, busy machine run fastest so. */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s%s 2>err.txt", dir, bin, args,
             strncmp(args, "tokenizer", 9) ? " --threads 1" : "");
    if (getenv("SS_TEST_VERBOSE")) fprintf(stderr, "+ selfsup %s\n", args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - 1 - n, p)) > 0) {
        n += k;
        if (n + 1 >= cap) break;
    }
    if (buf) buf[n] = '\0';
    int st = pclose(p);
    if (getenv("SS_TEST_VERBOSE")) {
        char e[300];
        snprintf(e, sizeof e, "cat '%s/err.txt' >&2", dir);
        if (system(e) != 0) fprintf(stderr, "(no err.txt)\n");
    }
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_text(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    if (b) fread(b, 1, (1 << 16) - 1, f);
    fclose(f);
    return b;
}

static int err_has(const char *needle)
{
    char *e = read_text("err.txt");
    int r = e && strstr(e, needle) != NULL;
    if (!r) fprintf(stderr, "stderr was: %s\n", e ? e : "(none)");
    free(e);
    return r;
}

static double json_num(const char *s, const char *key)
{
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    cJSON *x = j ? cJSON_GetObjectItem(j, key) : NULL;
    double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
    cJSON_Delete(j);
    return v;
}

/* Two classes of short "reviews" that differ by their sentiment words. */
static void write_data(void)
{
    static const char *pos[] = {"great", "wonderful", "moving", "brilliant", "funny", "superb"};
    static const char *neg[] = {"dull", "awful", "boring", "tedious", "clumsy", "weak"};
    static const char *filler[] = {"the film", "this movie", "the story", "its cast", "the plot", "the director"};
    char p[512];
    snprintf(p, sizeof p, "%s/lab.tsv", dir);
    FILE *f = fopen(p, "w");
    snprintf(p, sizeof p, "%s/corpus.txt", dir);
    FILE *c = fopen(p, "w");
    uint32_t r = 12345;
    for (int i = 0; i < 240; i++) {
        r = r * 1103515245u + 12345u;
        int y = i % 2, a = (int)((r >> 8) % 6), b = (int)((r >> 16) % 6), d = (int)((r >> 20) % 6);
        const char **w = y ? pos : neg;
        fprintf(f, "%s is %s and %s , really %s\t%s\n", filler[d], w[a], w[b], w[(a + 1) % 6], y ? "pos" : "neg");
        fprintf(c, "%s was %s . %s felt %s but %s .\n", filler[a], pos[b], filler[d], neg[a], w[b]);
    }
    fclose(f);
    fclose(c);
    snprintf(p, sizeof p, "%s/bad.tsv", dir);
    f = fopen(p, "w");
    fprintf(f, "fine text\tpos\nno label field here\n");
    fclose(f);
}

int main(void)
{
    bin = getenv("SS_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("skipped: no selfsup binary (SS_BIN unset)\n");
        return 0;
    }
    int asan = getenv("SS_SANITIZED") != NULL;
    snprintf(dir, sizeof dir, "/tmp/ss_text_cli_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    write_data();
    char *o = NULL;

    /* 0. argument errors that must stop a command before it loads or trains
     * anything: a word without "--", a valued flag without its value,
     * --resume without a run folder; "-h" and the subcommands' --help. */
    CHECK(run(&o, "train -h") == 0 && o && strstr(o, "usage: selfsup train") != NULL);
    free(o);
    CHECK(run(NULL, "pretrain simclr --data missing_dir") == 1 && err_has("'pretrain' takes no argument 'simclr'"));
    CHECK(run(NULL, "train --json simclr --data missing_dir") == 1 && err_has("takes no argument 'simclr'"));
    CHECK(run(NULL, "train --data --labels 1%%") == 1 && err_has("--data needs a value"));
    CHECK(run(NULL, "finetune --model --labels 1%%") == 1 && err_has("--model needs a value"));
    CHECK(run(NULL, "train --labels 1%% --resume") == 1 && err_has("--resume needs --out"));
    /* flags the shared reader takes that this command does not take */
    CHECK(run(NULL, "probe --model missing.safetensors --lr 5") == 1 && err_has("'probe' does not take --lr"));
    CHECK(run(NULL, "knn --model missing.safetensors --epochs 3") == 1 && err_has("'knn' does not take --epochs"));
    CHECK(run(NULL, "probe --model missing.safetensors --temperature 0.1") == 1 && err_has("--temperature"));
    CHECK(run(NULL, "pretrain --model missing.safetensors") == 1 && err_has("'pretrain' does not take --model"));
    CHECK(run(NULL, "pretrain --labels 1%% --data missing_dir") == 1 && err_has("--knn-labels picks"));
    CHECK(run(NULL, "train --distill-temp 2 --data missing_dir") == 1 && err_has("--distill-temp goes with --distill"));
    CHECK(run(NULL, "train --layer-decay 0.5 --data missing_dir") == 1 && err_has("--layer-decay goes with --model"));
    CHECK(run(NULL, "train --semi-ratio 3 --data missing_dir") == 1 && err_has("--semi-ratio goes with --semi"));
    CHECK(run(NULL, "finetune --model missing.safetensors --distill-temp 2") == 1 &&
          err_has("'finetune' does not take --distill-temp"));
    /* --labels, --augment and a text method named to an image command:
     * the flag is named, and nothing has loaded yet (missing_dir) */
    CHECK(run(NULL, "train --data missing_dir --labels 150%%") == 1 && err_has("--labels: subset \"150%\""));
    CHECK(run(NULL, "train --data missing_dir --augment crop:2,hfilp") == 1 && err_has("--augment: augment spec: unknown op 'hfilp'"));
    CHECK(run(NULL, "pretrain --method mlm --data missing_dir") == 2 && err_has("--method mlm is a text method"));
    CHECK(run(NULL, "train --text lab.tsv --no-such-flag 1") == 1 && err_has("see 'selfsup train --text x --help'"));
    CHECK(run(&o, "train --json -h") == 0 && o && strstr(o, "usage: selfsup train") != NULL); /* -h is no value */
    free(o);
    CHECK(run(NULL, "train --json a --json --data missing_dir") == 1 && err_has("takes no argument 'a'"));
    CHECK(run(NULL, "demo --text --no-such-flag 1") == 1 && err_has("see 'selfsup demo --text --help'"));
    CHECK(run(NULL, "pretrain --knn-labels 150%% --data missing_dir") == 1 && err_has("--knn-labels: subset"));
    CHECK(run(NULL, "probe --model missing.safetensors --val 0.1") == 1 && err_has("'probe' does not take --val"));
    CHECK(run(NULL, "robustness --model missing.safetensors --only 'lighting, nois'") == 1 &&
          err_has("--only 'nois': expected a family (lighting, background, noise, blur, digital)"));
    CHECK(run(NULL, "train --data missing_dir --out= --labels 1%%") == 1 && err_has("--out needs a value"));
    CHECK(run(NULL, "train --data missing_dir --encoder text-s") == 1 && err_has("text-s is the text encoder"));
    CHECK(run(&o, "bench --help") == 0 && o && strstr(o, "usage: selfsup bench") != NULL);
    free(o);
    CHECK(run(NULL, "bench step-nope") == 2 && err_has("unknown benchmark 'step-nope'"));
    CHECK(run(&o, "tokenizer train --help") == 0 && o && strstr(o, "usage: selfsup tokenizer train") != NULL);
    free(o);

    /* 1. tokenizer */
    CHECK(run(&o, "tokenizer train --text corpus.txt --vocab 300 --out tok.json --json") == 0);
    CHECK(json_num(o, "vocab") > SS_TOK_MIN_VOCAB && json_num(o, "vocab") <= 300);
    free(o);
    ss_tokenizer *tok = NULL;
    char p[512];
    snprintf(p, sizeof p, "%s/tok.json", dir);
    CHECK_OK(ss_tokenizer_load(p, &tok));
    ss_tokenizer_free(tok);

    /* 1b. tokenizer encode: one line of ids per argument or per line of --file
     * (CRLF and a missing final newline handled); "--" ends the options. */
    {
        char lp[512];
        snprintf(lp, sizeof lp, "%s/lines.txt", dir);
        FILE *f = fopen(lp, "wb");
        CHECK(f != NULL);
        if (f) {
            fputs("the film is great\r\n-- dull plot\n\nboring", f);
            fclose(f);
        }
        char *a1 = NULL, *a2 = NULL;
        CHECK(run(&a1, "tokenizer encode --tokenizer tok.json --file lines.txt") == 0);
        CHECK(run(&a2, "tokenizer encode --tokenizer tok.json -- 'the film is great' '-- dull plot' '' boring") == 0);
        CHECK(a1 && a2 && !strcmp(a1, a2));
        int lines = 0;
        for (const char *c = a1; c && *c; c++) lines += *c == '\n';
        CHECK(lines == 4);
        CHECK(a1 && strstr(a1, "\n\n") != NULL); /* the empty line encodes to no ids */
        free(a1);
        free(a2);
        CHECK(run(NULL, "tokenizer encode --tokenizer tok.json '-- dull'") == 1); /* an unknown flag without -- */
        CHECK(run(NULL, "tokenizer encode --tokenizer tok.json --file missing.txt") == 1);
        CHECK(err_has("missing.txt"));
    }

    /* 2. MLM pretraining: the checkpoint carries the tokenizer */
    CHECK(run(&o, "pretrain --method mlm --text corpus.txt --tokenizer tok.json --seq-len 32 --batch 16 "
                  "--epochs 1 %s --out mlm --json", asan ? "--max-steps 2" : "") == 0);
    double loss0 = json_num(o, "final_loss");
    CHECK(json_num(o, "steps") >= 2);
    CHECK(asan || (loss0 > 0 && loss0 < 10));
    free(o);
    ss_safetensors *st = NULL;
    snprintf(p, sizeof p, "%s/mlm/last.safetensors", dir);
    CHECK_OK(ss_st_open(p, &st));
    if (st) {
        const char *tj = ss_st_meta(st, "tokenizer");
        CHECK(tj != NULL);
        if (tj) {
            CHECK_OK(ss_tokenizer_load_memory(tj, strlen(tj), "meta", &tok));
            CHECK(tok && ss_tokenizer_vocab_size(tok) <= 300);
            ss_tokenizer_free(tok);
        }
        CHECK(ss_st_find(st, "mlm_head.bias") != NULL);
        CHECK(ss_st_meta(st, "seq_len") && !strcmp(ss_st_meta(st, "seq_len"), "32"));
        /* resumable, also when --max-steps cut the run short: optimiser moments and state */
        int moments = 0;
        for (int i = 0; i < ss_st_count(st); i++) moments += !strncmp(ss_st_entry_at(st, i)->name, "optim.m1.", 9);
        CHECK_MSG(moments > 0 && ss_st_meta(st, "state") != NULL, "no optimiser state in mlm/last.safetensors");
        ss_st_close(st);
    }

    /* 3. finetune from --model alone (tokenizer from the checkpoint) */
    int ep = asan ? 1 : 6;
    CHECK(run(&o, "finetune --text lab.tsv --model mlm/last.safetensors --labels 100%% --epochs %d --batch 16 "
                  "--lr 2e-3 --out ft --json", ep) == 0);
    double ft_acc = json_num(o, "test_acc");
    CHECK(json_num(o, "labelled") == 216);      /* 90% of 240 */
    CHECK(json_num(o, "test_samples") == 24);   /* the fixed 10% split */
    CHECK_MSG(asan || ft_acc >= 0.75, "finetune accuracy %.3f on separable data", ft_acc);
    free(o);

    /* 4. eval of the fine-tuned checkpoint reproduces its test accuracy */
    CHECK(run(&o, "eval --text lab.tsv --model ft/last.safetensors --json") == 0);
    CHECK_NEAR(json_num(o, "test_acc"), ft_acc, 1e-9);
    free(o);

    /* 5. probe on frozen features, 10% labels = 11 per class */
    CHECK(run(&o, "probe --text lab.tsv --model mlm/last.safetensors --labels 10%% --epochs 20 --json") == 0);
    CHECK(json_num(o, "labelled") == 22);
    CHECK(json_num(o, "probe_acc") >= 0 && json_num(o, "probe_acc") <= 1);
    free(o);

    /* 6. robustness: 3 corruptions x 3 severities */
    CHECK(run(&o, "robustness --text lab.tsv --model ft/last.safetensors --out rob --json") == 0);
    cJSON *j = o ? cJSON_Parse(o) : NULL;
    cJSON *arr = j ? cJSON_GetObjectItem(j, "corruptions") : NULL;
    CHECK(cJSON_GetArraySize(arr) == 3);
    CHECK(arr && cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "acc")) == 3);
    CHECK_NEAR(json_num(o, "clean_acc"), ft_acc, 1e-9);
    cJSON_Delete(j);
    free(o);
    char *rj = read_text("rob/robustness.json");
    CHECK(rj != NULL);
    free(rj);

    /* 7. scratch training is deterministic for a seed */
    double a1, a2;
    CHECK(run(&o, "train --text lab.tsv --tokenizer tok.json --seq-len 32 --labels 10%% --epochs 2 --batch 8 "
                  "--seed 3 --json") == 0);
    a1 = json_num(o, "test_acc");
    free(o);
    CHECK(run(&o, "train --text lab.tsv --tokenizer mlm/last.safetensors --seq-len 32 --labels 10%% --epochs 2 "
                  "--batch 8 --seed 3 --json") == 0);
    a2 = json_num(o, "test_acc");
    free(o);
    CHECK(a1 >= 0 && a1 == a2);

    /* 8. errors: named files, clear messages, no crash */
    CHECK(run(NULL, "train --text missing.tsv --tokenizer tok.json") == 1);
    CHECK(err_has("missing.tsv"));
    CHECK(run(NULL, "train --text bad.tsv --tokenizer tok.json") == 1);
    CHECK(err_has("bad.tsv"));
    CHECK(run(NULL, "finetune --text lab.tsv") == 2);
    CHECK(run(NULL, "eval --text lab.tsv --model mlm/last.safetensors") == 1);
    CHECK(err_has("no classifier head"));
    CHECK(run(NULL, "pretrain --method simclr --text corpus.txt") == 2);
    CHECK(run(NULL, "finetune --text lab.tsv --model tok.json") == 1);
    CHECK(run(NULL, "train --text lab.tsv --tokenizer corpus.txt") == 1);
    CHECK(err_has("corpus.txt"));
    CHECK(run(NULL, "tokenizer train --text corpus.txt") == 2);
    CHECK(run(NULL, "probe --text lab.tsv --model mlm/last.safetensors --pool max") == 1);
    CHECK(err_has("--pool"));

    /* 9. docbow: a folder of documents; --add-text feeds the tokenizer only;
     * the encoder fine-tunes like the MLM one */
    {
        static const char *w[2][3] = {{"dull", "awful", "boring"}, {"great", "superb", "funny"}};
        char dp[600];
        snprintf(dp, sizeof dp, "%s/docs", dir);
        CHECK(mkdir(dp, 0755) == 0);
        for (int d = 0; d < 40; d++) {
            snprintf(dp, sizeof dp, "%s/docs/review%02d.txt", dir, d);
            FILE *f = fopen(dp, "w");
            CHECK(f != NULL);
            if (!f) break;
            for (int k = 0; k < 4; k++) fprintf(f, "the film was %s and the plot %s .\n", w[d % 2][(d + k) % 3], w[d % 2][k % 3]);
            fclose(f);
        }
        snprintf(dp, sizeof dp, "%s/one/only.txt", dir);
        char mk[1400];
        snprintf(mk, sizeof mk, "mkdir -p '%s/one' && echo 'a single sentence .' > '%s'", dir, dp);
        CHECK(system(mk) == 0);
        CHECK(run(&o, "pretrain --method docbow --text docs --add-text lab.tsv --vocab 300 --seq-len 32 --batch 8 "
                      "--epochs 2 --emb-weight 0.5 --out db --json") == 0);
        free(o);
        char *r = read_text("db/result.json");
        CHECK(r && strstr(r, "\"docbow\"") != NULL);
        CHECK(json_num(r, "corpus_samples") == 40); /* the documents, not the --add-text sentences */
        CHECK(json_num(r, "steps") == 40);          /* 160 sentences / 8 = 20 batches, 2 epochs */
        free(r);
        snprintf(p, sizeof p, "%s/db/last.safetensors", dir);
        ss_safetensors *st = NULL;
        CHECK_OK(ss_st_open(p, &st));
        if (st) {
            CHECK(ss_st_find(st, "docbow_head.weight") != NULL);
            CHECK(ss_st_find(st, "docbow_emb_head.weight") != NULL); /* the second head (--emb-weight) */
            CHECK(ss_st_meta(st, "tokenizer") != NULL);
            ss_st_close(st);
        }
        CHECK(run(&o, "finetune --text lab.tsv --model db/last.safetensors --labels 100%% --epochs %d --batch 16 "
                      "--lr 2e-3 --out dbft --json", ep) == 0);
        double db_acc = json_num(o, "test_acc");
        CHECK_MSG(asan || db_acc >= 0.75, "docbow finetune accuracy %.3f on separable data", db_acc);
        free(o);
        CHECK(run(NULL, "pretrain --method docbow --text docs --by-line --vocab 300") == 2);
        CHECK(err_has("--by-line"));
        CHECK(run(NULL, "pretrain --method docbow --text docs --add-text lab.tsv --tokenizer tok.json") == 2);
        CHECK(err_has("--add-text"));
        CHECK(run(NULL, "pretrain --method docbow --text one --tokenizer tok.json --out db1") == 1);
        CHECK(err_has("two or more sentences"));
        char *cfg = read_text("db/config.json");
        CHECK(cfg && json_num(cfg, "emb_weight") == 0.5);
        free(cfg);
        CHECK(run(NULL, "pretrain --method mlm --text docs --emb-weight 0.5 --vocab 300") == 2);
        CHECK(err_has("--emb-weight"));
        /* a run keeps its heads: resuming the --emb-weight run without it is refused */
        CHECK(run(NULL, "pretrain --method docbow --text docs --vocab 300 --seq-len 32 --batch 8 --epochs 3 "
                        "--out db --resume") == 1);
        CHECK(err_has("docbow_emb_head"));
        /* the text demo pretrains with docbow by default */
        if (!asan) {
            CHECK(run(&o, "demo --text --quick --corpus docs --labelled lab.tsv --out demo") == 0);
            free(o);
            char *md = read_text("demo/report.md");
            ss_tokenizer *dt = NULL;
            snprintf(p, sizeof p, "%s/demo/tokenizer.json", dir);
            CHECK_OK(ss_tokenizer_load(p, &dt));
            char want[64];
            snprintf(want, sizeof want, "%d-token BPE", dt ? ss_tokenizer_vocab_size(dt) : -1);
            ss_tokenizer_free(dt);
            CHECK_MSG(md && strstr(md, "docbow + fine-tune") != NULL && strstr(md, want) != NULL, "no '%s'", want);
            free(md);
        }
        CHECK(run(NULL, "demo --text --method bert --corpus docs --labelled lab.tsv --out demo") == 2);
    }

    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
