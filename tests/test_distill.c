/* selfsup train --distill, end to end through the CLI on a small real
 * subset: a teacher trained on 10 labels per class labels the whole pool;
 * the student trained against those targets agrees with the teacher on most
 * images (the loss it minimises is the soft cross-entropy to the teacher),
 * result.json says how many images it was distilled on, and a wrong teacher
 * gets a one-line error naming the file; --semi fixmatch builds its pool,
 * pseudo-labels confident images, is deterministic and refuses --distill.
 * Skips when the CLI or
 * Fashion-MNIST is absent. */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfsup/safetensors.h"
#include "testutil.h"

static const char *bin, *data = "/usr/share/datasets/fashion-mnist";
static char tmp[256];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs cmd (a shell command line without redirection); it must exit 1
 * with stderr holding `want` and, when given, not `absent`. */
static void fails_with(const char *cmd, const char *tmp, const char *want, const char *absent)
{
    char c[2600], p[400];
    snprintf(p, sizeof p, "%s/fails_with.err", tmp);
    snprintf(c, sizeof c, "%s 2> %s", cmd, p);
    int rc = system(c);
    CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "%s: exit %d, expected 1", cmd, WEXITSTATUS(rc));
    const char *e = slurp(p);
    CHECK_MSG(e && strstr(e, want) && !(absent && strstr(e, absent)), "%s: stderr was: %s", cmd,
              e ? e : "(none)");
}

/* How many encoder weight tensors (not BN running statistics) differ
 * between two checkpoints; -1 when one cannot be read. */
static int encoder_weights_changed(const char *a, const char *b)
{
    ss_safetensors *A = NULL, *B = NULL;
    int changed = -1;
    if (ss_st_open(a, &A) || ss_st_open(b, &B)) goto out;
    changed = 0;
    for (int i = 0; i < ss_st_count(A); i++) {
        const ss_st_entry *ea = ss_st_entry_at(A, i), *eb = ss_st_find(B, ea->name);
        if (strncmp(ea->name, "encoder.", 8) || strstr(ea->name, "running_") || strstr(ea->name, "num_batches"))
            continue;
        if (!eb || ea->nbytes != eb->nbytes || memcmp(ss_st_data(A, ea), ss_st_data(B, eb), (size_t)ea->nbytes)) changed++;
    }
out:
    ss_st_close(A);
    ss_st_close(B);
    return changed;
}

static const char *pre_ck(const char *dir)
{
    static char p[400];
    snprintf(p, sizeof p, "%s/teacher/last.safetensors", dir);
    return p;
}

static double json_num(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = js ? strstr(js, k) : NULL;
    return p ? atof(p + strlen(k)) : -1;
}

int main(void)
{
    bin = getenv("SS_BIN");
    struct stat st;
    if (!bin || access(bin, X_OK) != 0 || stat(data, &st) != 0) {
        printf("SKIP: %s\n", !bin || access(bin, X_OK) ? "no selfsup binary (SS_BIN)" : "Fashion-MNIST not installed");
        return 0;
    }
    int small = getenv("SS_SANITIZED") != NULL;
    int n = small ? 256 : 1024;
    snprintf(tmp, sizeof tmp, "/tmp/ss_distill_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    char c[2048], p[400];
    snprintf(c, sizeof c,
             "%s train --data %s --max-images %d --labels 10/class --epochs %d --batch 32 --threads 2 --quiet "
             "--out %s/teacher > /dev/null",
             bin, data, n, small ? 3 : 15, tmp);
    CHECK_MSG(system(c) == 0, "%s", c);
    /* The per-epoch monitor: its settings are in config.json; a test set
     * smaller than the default 2,000 is read whole. */
    snprintf(p, sizeof p, "%s/teacher/config.json", tmp);
    {
        char *cfg = slurp(p);
        CHECK_NEAR(json_num(cfg, "eval_images"), n, 0);
        CHECK_NEAR(json_num(cfg, "eval_every"), 1, 0);
    }
    { /* a run cut short by --max-steps before any monitor epoch still scores the whole test set */
        snprintf(c, sizeof c,
                 "%s train --data %s --max-images %d --labels 10/class --epochs 3 --eval-every 100 --eval-images 0 "
                 "--max-steps 2 --batch 32 --threads 2 --quiet --out %s/cut > /dev/null",
                 bin, data, n, tmp);
        CHECK_MSG(system(c) == 0, "%s", c);
        snprintf(p, sizeof p, "%s/cut/result.json", tmp);
        double acc = json_num(slurp(p), "test_acc");
        CHECK_MSG(acc > 0 && acc < 1 && fabs(acc * n - floor(acc * n + 0.5)) < 1e-6, "test_acc %.9f is not k/%d", acc,
                  n);
        /* its loss curve is drawn from the steps it ran, though no epoch ended */
        snprintf(p, sizeof p, "%s/cut/loss.png", tmp);
        CHECK_MSG(access(p, R_OK) == 0, "no %s after 2 steps", p);
        /* a pretraining cut inside its first epoch still draws MAE's grid */
        snprintf(c, sizeof c,
                 "%s pretrain --method mae --data %s --max-images %d --epochs 2 --max-steps 2 --batch 32 "
                 "--knn-every 0 --threads 2 --quiet --out %s/maecut > /dev/null",
                 bin, data, n, tmp);
        CHECK_MSG(system(c) == 0, "%s", c);
        snprintf(p, sizeof p, "%s/maecut/mae_recon_epoch001.png", tmp);
        CHECK_MSG(access(p, R_OK) == 0, "no %s after 2 steps", p);
    }
    if (!small) { /* a larger test set: the monitor reads 2,000 of it, test_acc all 2,501 (k/2000 is
                   * never j/2501 between 0 and 1) */
        snprintf(c, sizeof c,
                 "%s train --data %s --max-images 2501 --labels 10/class --epochs 1 --batch 32 --threads 2 --quiet "
                 "--out %s/mon > /dev/null",
                 bin, data, tmp);
        CHECK_MSG(system(c) == 0, "%s", c);
        snprintf(p, sizeof p, "%s/mon/config.json", tmp);
        CHECK_NEAR(json_num(slurp(p), "eval_images"), 2000, 0);
        snprintf(p, sizeof p, "%s/mon/result.json", tmp);
        double acc = json_num(slurp(p), "test_acc");
        CHECK_MSG(acc > 0 && acc < 1 && fabs(acc * 2501 - floor(acc * 2501 + 0.5)) < 1e-6, "test_acc %.9f is not k/2501",
                  acc);
    }
    snprintf(c, sizeof c,
             "%s train --data %s --max-images %d --labels 10/class --epochs %d --batch 32 --threads 2 --quiet "
             "--distill %s/teacher/last.safetensors --out %s/student > /dev/null",
             bin, data, n, small ? 1 : 4, tmp, tmp);
    CHECK_MSG(system(c) == 0, "%s", c);
    snprintf(p, sizeof p, "%s/student/result.json", tmp);
    char *js = slurp(p);
    CHECK_MSG(js != NULL, "no %s", p);
    CHECK_NEAR(json_num(js, "distilled_on"), n, 0);
    CHECK_NEAR(json_num(js, "labelled"), 100, 0);
    /* train_acc in distillation = agreement with the targets; after a few
     * epochs on the pool the student follows its teacher. */
    snprintf(p, sizeof p, "%s/student/metrics.jsonl", tmp);
    char *m = slurp(p);
    const char *last = m ? strrchr(m, '{') : NULL;
    double agree = last ? json_num(last, "train_acc") : -1;
    printf("student agreement with the teacher's targets in the last epoch: %.3f\n", agree);
    if (!small) CHECK_MSG(agree > 0.7, "agreement %.3f", agree);
    else CHECK(agree >= 0);

    /* --semi fixmatch from the teacher (a classifier: its head is loaded
     * too): the pool is every unlabelled image plus the labelled ones
     * repeated round(n_u / (7 n_l)) times; with threshold 0.5 the teacher's
     * confident weak-view predictions become pseudo-labels, and the log says
     * how many and how often they agree with the labels training never
     * reads; two runs give the same bits; and it does not mix with --distill. */
    {
        int nu = n - 100, rep = (int)((double)nu / 700.0 + 0.5);
        if (rep < 1) rep = 1;
        for (int k = 0; k < 2; k++) {
            snprintf(c, sizeof c,
                     "%s train --data %s --max-images %d --labels 10/class --epochs 1 --batch 32 --threads 2 "
                     "--semi fixmatch --semi-threshold %s --model %s/teacher/last.safetensors --out %s/semi%d "
                     "> /dev/null 2> %s/semi%d.txt",
                     bin, data, n, small ? "0.1" : "0.5", tmp, tmp, k, tmp, k);
            CHECK_MSG(system(c) == 0, "%s", c);
        }
        snprintf(p, sizeof p, "%s/semi0/config.json", tmp);
        char *cfg = slurp(p);
        CHECK_NEAR(json_num(cfg, "semi_labelled_repeat"), rep, 0);
        CHECK_NEAR(json_num(cfg, "semi_pool"), nu + 100 * rep, 0);
        CHECK_MSG(cfg && strstr(cfg, "\"head_from_model\":true"), "%s", cfg ? cfg : "");
        snprintf(p, sizeof p, "%s/semi0.txt", tmp);
        char *log = slurp(p);
        const char *ln = log ? strstr(log, "semi: epoch 1: ") : NULL;
        double above = ln ? atof(ln + strlen("semi: epoch 1: ")) : -1;
        const char *ag = ln ? strstr(ln, "agree with the hidden labels on ") : NULL;
        double agree_pl = ag ? atof(ag + strlen("agree with the hidden labels on ")) : -1;
        printf("semi: %.1f%% of unlabelled images pseudo-labelled, %.1f%% of those right\n", above, agree_pl);
        /* Under the sanitizers the teacher trains 3 epochs on 256 images and
         * predicts almost uniformly: threshold 0.1 (every argmax of 10
         * classes passes it) still runs the whole path; no accuracy bar. */
        CHECK_MSG(above > (small ? 0 : 5) && above <= 100, "%.1f%% above the threshold", above);
        if (!small) CHECK_MSG(agree_pl > 40, "pseudo-labels right on %.1f%%", agree_pl); /* chance: 10% */
        snprintf(p, sizeof p, "%s/semi0/result.json", tmp);
        char *res = slurp(p);
        CHECK_NEAR(json_num(res, "semi_above_threshold"), above / 100.0, 0.001);
        if (agree_pl >= 0) CHECK_NEAR(json_num(res, "semi_pseudo_label_agreement"), agree_pl / 100.0, 0.001);
        char a0[400], a1[400];
        snprintf(a0, sizeof a0, "%s/semi0/last.safetensors", tmp);
        snprintf(a1, sizeof a1, "%s/semi1/last.safetensors", tmp);
        CHECK_MSG(encoder_weights_changed(a0, a1) == 0, "two --semi runs with one seed differ");
        CHECK_MSG(encoder_weights_changed(pre_ck(tmp), a0) > 0, "--semi did not train the encoder");
        /* every unlabelled image is counted once per epoch, also when a
         * NaN in epoch 2 rolls the run back to epoch 1's checkpoint (the
         * re-run batches and the diagnosis's re-run are not counted twice) */
        CHECK_NEAR(json_num(res, "semi_unlabelled_images"), nu, 0);
        const int spe = (nu + 100 * rep) / 32;
        snprintf(c, sizeof c,
                 "%s train --data %s --max-images %d --labels 10/class --epochs 2 --batch 32 --threads 2 --quiet "
                 "--semi fixmatch --model %s/teacher/last.safetensors --on-nan rollback --debug-nan-at-step %d "
                 "--out %s/semi_nan > /dev/null 2> %s/semi_nan.txt",
                 bin, data, n, tmp, spe + 2, tmp, tmp);
        CHECK_MSG(system(c) == 0, "%s", c);
        snprintf(p, sizeof p, "%s/semi_nan.txt", tmp);
        char *nlog = slurp(p); /* slurp's one static buffer: read before the next */
        CHECK_MSG(nlog && strstr(nlog, "rolled back"), "no rollback in %s", p);
        snprintf(p, sizeof p, "%s/semi_nan/result.json", tmp);
        char *nres = slurp(p);
        CHECK_NEAR(json_num(nres, "semi_unlabelled_images"), nu, 0);
        snprintf(c, sizeof c, "%s train --data %s --max-images 64 --labels 1/class --quiet --semi fixmatch "
                 "--distill %s/teacher/last.safetensors 2> /dev/null", bin, data, tmp);
        CHECK(WEXITSTATUS(system(c)) == 2);
        snprintf(c, sizeof c, "%s train --data %s --max-images 64 --labels 1/class --quiet --semi mixmatch 2> /dev/null",
                 bin, data);
        CHECK(WEXITSTATUS(system(c)) == 2);
        snprintf(c, sizeof c, "%s train --data %s --max-images 64 --labels 1/class --quiet --semi fixmatch "
                 "--label-smoothing 0.1 2> /dev/null", bin, data);
        CHECK(WEXITSTATUS(system(c)) == 2);
        /* a --semi flag without --semi: an error that names --semi */
        snprintf(c, sizeof c, "%s train --data %s --max-images 64 --labels 1/class --quiet --semi-threshold 0.5", bin,
                 data);
        fails_with(c, tmp, "--semi-threshold goes with --semi", NULL);
        /* --encoder against a checkpoint that holds another encoder: refused, not silently replaced */
        snprintf(c, sizeof c, "%s finetune --data %s --max-images 64 --labels 1/class --quiet --encoder vit-t "
                 "--model %s/teacher/last.safetensors", bin, data, tmp);
        fails_with(c, tmp, "holds a convnet-s encoder", NULL);
        /* ... and refused before any data loads: with a data folder that does
         * not exist, the encoder is still what the error names */
        snprintf(c, sizeof c, "%s finetune --data %s/no-such-data --labels 1/class --quiet --encoder vit-t "
                 "--model %s/teacher/last.safetensors", bin, tmp, tmp);
        fails_with(c, tmp, "holds a convnet-s encoder", "no-such-data");
        /* a safetensors file without selfsup's metadata (another program's):
         * the error names the file and the missing key */
        char foreign[600];
        snprintf(foreign, sizeof foreign, "%s/foreign.safetensors", tmp);
        float fw[4] = {1, 2, 3, 4};
        ss_st_writer *fwr = ss_st_writer_new();
        CHECK(fwr != NULL);
        CHECK_OK(ss_st_writer_add(fwr, "encoder.stem.weight", SS_DT_F32, 1, (int64_t[]){4}, fw));
        CHECK_OK(ss_st_writer_save(fwr, foreign));
        ss_st_writer_free(fwr);
        snprintf(c, sizeof c, "%s finetune --data %s --max-images 64 --labels 1/class --quiet --model %s", bin, data,
                 foreign);
        fails_with(c, tmp, "foreign.safetensors: no 'encoder' in its safetensors metadata", NULL);
    }

    /* finetune --lp-epochs: the encoder stays frozen for those epochs (its
     * weights equal the pretrained ones when lp-epochs = epochs), then trains. */
    char pre[400], out[400];
    snprintf(pre, sizeof pre, "%s/teacher/last.safetensors", tmp);
    for (int lp = 2; lp >= 1; lp--) {
        snprintf(c, sizeof c,
                 "%s finetune --model %s --data %s --max-images %d --labels 10/class --epochs 2 --lp-epochs %d "
                 "--batch 32 --threads 2 --quiet --out %s/lp%d > /dev/null",
                 bin, pre, data, n, lp, tmp, lp);
        CHECK_MSG(system(c) == 0, "%s", c);
        snprintf(out, sizeof out, "%s/lp%d/last.safetensors", tmp, lp);
        int changed = encoder_weights_changed(pre, out);
        printf("finetune --lp-epochs %d of 2: %d encoder weight tensors changed\n", lp, changed);
        if (lp == 2) CHECK_MSG(changed == 0, "frozen encoder changed in %d tensors", changed);
        else CHECK_MSG(changed > 0, "encoder never trained after the probe phase (%d)", changed);
    }

    /* finetune's default encoder rate is the head's (config.json records it). */
    snprintf(p, sizeof p, "%s/lp1/config.json", tmp);
    CHECK_NEAR(json_num(slurp(p), "encoder_lr_scale"), 1, 0);

    /* A teacher that is not there, and one with a different class count
     * (a pretraining checkpoint has no classifier head), fail cleanly. */
    snprintf(c, sizeof c, "%s train --data %s --max-images 64 --labels 1/class --epochs 1 --quiet --distill %s/nope.safetensors "
             "--out %s/bad 2> %s/err.txt", bin, data, tmp, tmp, tmp);
    CHECK(system(c) != 0);
    snprintf(p, sizeof p, "%s/err.txt", tmp);
    char *err = slurp(p);
    int lines = 0;
    for (const char *q = err; q && *q; q++) lines += *q == '\n';
    CHECK_MSG(err && strstr(err, "nope.safetensors") && lines == 1, "error (%d lines): %s", lines, err ? err : "");

    snprintf(c, sizeof c, "rm -rf '%s'", tmp);
    if (!tu_fail) CHECK(system(c) == 0);
    TEST_MAIN_END();
}
