/* Data parallel over MPI, end to end: `mpirun -np 2 selfsup ... --batch B`
 * must train the same weights as one process with --batch 2B (the same
 * global batches, averaged gradients, global SimCLR negatives, synchronised
 * batch norm, MAE masks by global position), print once, and resume
 * exactly. Starts mpirun itself over shared memory on this machine; skips
 * with a printed reason when MPI, mpirun, the CLI or Fashion-MNIST is absent.
 *
 * Tolerance: max |w1 - w2| / max |w1| over every trainable tensor and BN
 * buffer < 1e-4 after 1 step (supervised) and 20 steps (MAE); for 20 steps
 * of BN training (supervised, SimCLR) see below. Not bit-exact: the two runs add the same
 * numbers in a different order (per-rank partial sums of the gradient,
 * all-reduce, BN statistics summed per rank), which differs in the last
 * bits. SGD keeps that at rounding level (measured 1e-7). Adam does not:
 * g / (sqrt(v) + eps) turns rounding noise in near-zero gradient entries
 * into differences of order lr (1e-3 relative after 20 steps); and
 * SimCLR on convnet-s is itself chaotic at this batch size: one process
 * whose learning rate is changed in the 7th digit moves by as much over 20
 * steps. For SimCLR the test therefore checks 2 steps to 1e-5 and 20 steps
 * against that single-process sensitivity (<= 5x the difference the lr
 * nudge makes), so a wrong gather or gradient scale (a 1e-1 effect at step
 * 1) fails while rounding noise passes. */
#include <sys/stat.h>
#include <unistd.h>

#include "selfsup/dist.h"
#include "selfsup/safetensors.h"
#include "testutil.h"

static const char *bin, *mpiexec, *data = "/usr/share/datasets/fashion-mnist";
static char tmp[256];

static int run(const char *cmd)
{
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "command failed (%d): %s", rc, cmd);
    return rc;
}

/* max |a-b| / max |a| over trainable tensors and buffers (not optimiser
 * state); -1 when a file cannot be read or the tensors do not match. */
static double weight_diff(const char *pa, const char *pb)
{
    ss_safetensors *a = NULL, *b = NULL;
    if (ss_st_open(pa, &a) || ss_st_open(pb, &b)) {
        fprintf(stderr, "%s\n", ss_errmsg());
        ss_st_close(a);
        return -1;
    }
    double num = 0, den = 0;
    int ok = ss_st_count(a) == ss_st_count(b) && ss_st_count(a) > 0;
    for (int i = 0; ok && i < ss_st_count(a); i++) {
        const ss_st_entry *ea = ss_st_entry_at(a, i);
        if (!strncmp(ea->name, "optim.", 6)) continue;
        const ss_st_entry *eb = ss_st_find(b, ea->name);
        if (!eb || eb->dtype != SS_DT_F32 || ea->dtype != SS_DT_F32 || eb->nbytes != ea->nbytes) {
            ok = 0;
            break;
        }
        const float *x = ss_st_data(a, ea), *y = ss_st_data(b, eb);
        for (size_t k = 0; k < ea->nbytes / 4; k++) {
            num = fmax(num, fabs((double)x[k] - y[k]));
            den = fmax(den, fabs((double)x[k]));
        }
    }
    ss_st_close(a);
    ss_st_close(b);
    return ok && den > 0 ? num / den : -1;
}

/* Count lines of a file that start with prefix. */
static int count_lines(const char *path, const char *prefix)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, prefix, strlen(prefix))) n++;
    fclose(f);
    return n;
}

/* One process with batch 2b vs two with batch b; returns the difference. */
static double pair(const char *tag, const char *cmd, int b, int nimg, const char *extra, const char *extra2)
{
    char c[2048], d1[400], d2[400], out[400], p1[500], p2[500];
    snprintf(d1, sizeof d1, "%s/%s_np1", tmp, tag);
    snprintf(d2, sizeof d2, "%s/%s_np2", tmp, tag);
    snprintf(out, sizeof out, "%s/%s_np2.out", tmp, tag);
    snprintf(c, sizeof c, "%s %s --data %s --max-images %d --threads 1 --quiet %s %s --batch %d --out %s > /dev/null",
             bin, cmd, data, nimg, extra, extra2, 2 * b, d1);
    if (run(c)) return -1;
    snprintf(c, sizeof c, "%s -np 2 %s %s --data %s --max-images %d --threads 1 --quiet %s %s --batch %d --out %s > %s",
             mpiexec, bin, cmd, data, nimg, extra, extra2, b, d2, out);
    if (run(c)) return -1;
    /* Only rank 0 reports: one result line. */
    char first[32];
    snprintf(first, sizeof first, "%.*s:", (int)strcspn(cmd, " "), cmd);
    CHECK_MSG(count_lines(out, first) == 1, "%s: %d result lines from 2 ranks (want 1)", tag, count_lines(out, first));
    snprintf(p1, sizeof p1, "%s/last.safetensors", d1);
    snprintf(p2, sizeof p2, "%s/last.safetensors", d2);
    double r = weight_diff(p1, p2);
    printf("%-22s np=1 batch %d vs np=2 batch %d: max rel weight difference %.3g\n", tag, 2 * b, b, r);
    CHECK_MSG(r >= 0, "%s: checkpoints unreadable or different", tag);
    return r;
}

/* One process's own sensitivity: the run of pair(tag, ...)'s np=1 side
 * again with the learning rate nudged by a relative 1e-6 up and down
 * (extra2 must not set --lr; lr is the unnudged rate); returns the larger of
 * the two weight differences from that run. Chaotic small-batch training
 * amplifies a single nudge by anything from nothing to 1e3 over 5 steps
 * (SimCLR on a Zen 3: 2e-7 and 1e-4 from two builds), so both are taken. */
static double sensitivity(const char *tag, const char *cmd, int b, int nimg, const char *extra, const char *extra2,
                          double lr)
{
    char c[2048], ref[500], p2[500];
    double worst = -1;
    snprintf(ref, sizeof ref, "%s/%s_np1/last.safetensors", tmp, tag);
    for (int k = 0; k < 2; k++) {
        snprintf(c, sizeof c,
                 "%s %s --data %s --max-images %d --threads 1 --quiet %s %s --lr %.9g --batch %d "
                 "--out %s/%s_nudged%d > /dev/null",
                 bin, cmd, data, nimg, extra, extra2, lr * (k ? 1 - 1e-6 : 1 + 1e-6), 2 * b, tmp, tag, k);
        if (run(c)) return -1;
        snprintf(p2, sizeof p2, "%s/%s_nudged%d/last.safetensors", tmp, tag, k);
        double d = weight_diff(ref, p2);
        if (d < 0) return -1;
        worst = fmax(worst, d);
    }
    printf("%-22s one process, lr x (1 +- 1e-6): max rel weight difference %.3g\n", tag, worst);
    return worst;
}

int main(void)
{
    bin = getenv("SS_BIN");
    mpiexec = getenv("SS_MPIEXEC");
    const char *why = NULL;
    struct stat st;
    if (!ss_dist_built_with_mpi()) why = "selfsup was built without MPI (SS_MPI off or no MPI found)";
    else if (!mpiexec || !*mpiexec || access(mpiexec, X_OK) != 0) why = "no mpirun (SS_MPIEXEC unset)";
    else if (!bin || access(bin, X_OK) != 0) why = "no selfsup binary (SS_BIN unset)";
    else if (stat(data, &st) != 0) why = "Fashion-MNIST not installed";
    if (why) {
        printf("SKIP: %s\n", why);
        return 0;
    }
    /* The sanitizer build (-O0, no -march=native) sums in another order on 1
     * and 2 ranks, and SimCLR's small batches amplify it (on a Zen 3: 1e-4
     * after 2 steps, 0.27 after 20); there the multi-step SimCLR and
     * 20-step figures are printed, and the optimised build checks them. */
    const int san = getenv("SS_SANITIZED") != NULL;
    /* Two local ranks over shared memory; root is fine in a container. */
    setenv("OMPI_MCA_btl", "self,vader", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1); /* cores are shared: do not spin */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1); /* MPI's own allocations */
    snprintf(tmp, sizeof tmp, "/tmp/ss_dist_mpi_XXXXXX");
    if (!mkdtemp(tmp)) {
        CHECK_MSG(0, "mkdtemp failed");
        TEST_MAIN_END();
    }

    /* Supervised convnet-s with synchronised BN: 320 images, global batch 16,
     * the first 5 steps. Longer runs are compared only loosely: a rounding-
     * level difference sometimes flips a max-pool winner between two
     * near-equal inputs, which moves that step's gradient by about 1e-3
     * (on a Zen 3: 1e-6 after 5 steps, 2e-3 after 6, 1e-3 after 20; on a
     * Zen 4 no flip in 20 steps). */
    const char *sup = "--labels 100% --epochs 1 --sync-bn --optimizer sgd";
    double r = pair("train_1step", "train", 8, 16, sup, "--lr 0.01");
    CHECK_MSG(r >= 0 && r < 1e-4, "supervised 1 step: %g", r);
    double r20s = pair("train_convnet-s", "train", 8, 320, sup, "--lr 0.01 --max-steps 5 --checkpoint-every 5");
    char c[2048], p1[500], p2[500];
    snprintf(c, sizeof c, "%s train --data %s --max-images 320 --threads 1 --quiet %s --lr 0.01000001 --batch 16 "
             "--max-steps 5 --checkpoint-every 5 --out %s/train_nudged > /dev/null", bin, data, sup, tmp);
    run(c);
    snprintf(p1, sizeof p1, "%s/train_convnet-s_np1/last.safetensors", tmp);
    snprintf(p2, sizeof p2, "%s/train_nudged/last.safetensors", tmp);
    double sref = weight_diff(p1, p2);
    printf("%-22s one process, lr x (1 + 1e-6): max rel weight difference %.3g\n", "supervised sensitivity", sref);
    /* Optimised builds add in nearly the same order on 1 and 2 ranks
     * (measured 1e-7 to 3e-6); an -O0 sanitizer build does not, and
     * small-batch BN training amplifies rounding as much as the lr nudge
     * does. */
    CHECK_MSG(r20s >= 0 && sref >= 0 && r20s <= fmax(1e-4, 5 * sref), "supervised 5 steps: %g vs single-process %g",
              r20s, sref);
    /* the whole epoch (20 steps): the same up to max-pool flips; a wrong
     * gradient average (sum, or one rank's) is off by tens of percent */
    r = pair("train_20steps", "train", 8, 320, sup, "--lr 0.01");
    CHECK_MSG(r >= 0 && (san || r < 0.02), "supervised 20 steps: %g", r);

    /* MAE on vit-t (no BN; masks keyed on the global position). */
    r = pair("pretrain_mae", "pretrain", 8, 320, "--method mae --epochs 1 --optimizer sgd --lr 0.05", "");
    CHECK_MSG(r >= 0 && r < 1e-4, "mae: %g", r);

    /* SimCLR with negatives from both ranks and synchronised BN. */
    const char *sim = "--method simclr --epochs 1 --knn-every 0 --sync-bn --optimizer sgd";
    r = pair("simclr_2steps", "pretrain", 4, 160, sim, "--lr 0.01 --max-steps 2 --checkpoint-every 2");
    CHECK_MSG(r >= 0 && r < (san ? 1e-3 : 1e-5), "simclr 2 steps: %g", r);
    const char *five = "--max-steps 5 --checkpoint-every 5";
    double r20 = pair("simclr_5steps", "pretrain", 4, 160, sim, "--lr 0.01 --max-steps 5 --checkpoint-every 5");
    double ref = sensitivity("simclr_5steps", "pretrain", 4, 160, sim, five, 0.01);
    CHECK_MSG(r20 >= 0 && ref >= 0 && (san || r20 <= fmax(1e-4, 5 * ref)), "simclr 5 steps: %g vs single-process %g", r20,
              ref);
    /* 20 steps: the same bound against one process's own 20-step
     * sensitivity, at least 0.05. Rounding alone moved this figure from
     * 0.03 to 0.08 when dW of the 3x3 convs went to Winograd (2026-12-08;
     * 0.27 in the -O0 sanitizer build), so a fixed bound was luck. Wrong
     * gradient averaging shows at 2 steps above (1e-2 and more against
     * 1e-7). */
    r = pair("simclr_20steps", "pretrain", 4, 160, sim, "--lr 0.01");
    double ref20 = san ? 0 : sensitivity("simclr_20steps", "pretrain", 4, 160, sim, "", 0.01);
    CHECK_MSG(r >= 0 && ref20 >= 0 && (san || r <= fmax(0.05, 5 * ref20)), "simclr 20 steps: %g vs single-process %g",
              r, ref20);

    /* --semi fixmatch: the pseudo-label counts in the log and result.json
     * cover every rank's share of the epoch (all-reduced), not rank 0's. */
    {
        r = pair("semi", "train", 8, 320,
                 "--semi fixmatch --labels 10/class --epochs 1 --semi-threshold 0 --optimizer sgd", "--lr 0.01");
        CHECK_MSG(r >= 0, "semi: %g", r);
        double nu[2] = {-1, -1};
        for (int k = 0; k < 2; k++) {
            snprintf(p1, sizeof p1, "%s/semi_np%d/result.json", tmp, k + 1);
            FILE *f = fopen(p1, "r");
            char buf[4096] = "";
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            buf[n] = 0;
            if (f) fclose(f);
            const char *q = strstr(buf, "\"semi_unlabelled_images\":");
            if (q) nu[k] = atof(q + strlen("\"semi_unlabelled_images\":"));
        }
        printf("%-22s unlabelled images counted in the epoch: np=1 %.0f, np=2 %.0f\n", "semi counts", nu[0], nu[1]);
        CHECK_MSG(nu[0] > 200 && nu[1] == nu[0], "semi_unlabelled_images np=1 %g vs np=2 %g", nu[0], nu[1]);
    }

    /* Resume with the same number of ranks is exact: stop after 6 steps
     * (checkpoint), resume, == the run straight through (MAE, 2 epochs of
     * 160 images, 10 steps per epoch). */
    const char *mae = "--method mae --optimizer sgd --lr 0.05 --max-images 160 --batch 8";
    snprintf(c, sizeof c, "%s -np 2 %s pretrain --data %s --threads 1 --quiet %s --epochs 2 --out %s/res_straight > /dev/null",
             mpiexec, bin, data, mae, tmp);
    run(c);
    snprintf(c, sizeof c, "%s -np 2 %s pretrain --data %s --threads 1 --quiet %s --epochs 2 --max-steps 6 --checkpoint-every 6 "
             "--out %s/res_split > /dev/null && "
             "%s -np 2 %s pretrain --data %s --threads 1 --quiet %s --epochs 2 --resume --out %s/res_split > /dev/null",
             mpiexec, bin, data, mae, tmp, mpiexec, bin, data, mae, tmp);
    run(c);
    snprintf(p1, sizeof p1, "%s/res_straight/last.safetensors", tmp);
    snprintf(p2, sizeof p2, "%s/res_split/last.safetensors", tmp);
    r = weight_diff(p1, p2);
    printf("%-22s np=2 2 epochs vs 1 + resumed 1: max rel weight difference %.3g\n", "resume", r);
    CHECK_MSG(r == 0.0, "resume with 2 ranks: %g (want bit-identical)", r);

    snprintf(c, sizeof c, "rm -rf '%s'", tmp);
    if (!tu_fail) run(c);
    TEST_MAIN_END();
}
