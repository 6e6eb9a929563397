/* Crash-safe exact resume, end to end: run the real `selfsup pretrain`
 * (BYOL: model, AdamW moments, EMA target network, BN buffers, loader
 * position) on a small Fashion-MNIST subset with a checkpoint every step,
 * SIGKILL it at 5 random moments (seeded: a random step, then a random
 * fraction of a step later, so kills land inside steps and inside
 * checkpoint writes), resume each time, and check that the final weights,
 * moments and target network are bit-identical to an uninterrupted run.
 * Skips when SS_BIN or Fashion-MNIST is missing. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "selfsup/fileio.h"
#include "selfsup/safetensors.h"
#include "selfsup/train.h"
#include "testutil.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static uint64_t rng_state;
static double urand(void) /* [0,1), splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static const char *g_bin;
static char g_images[32];
static const char *g_max_steps; /* part 4: --max-steps N without periodic checkpoints */

/* Start `selfsup pretrain` into dir (output to dir/log.txt). */
static pid_t spawn(const char *dir, int resume)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    char log[1100];
    snprintf(log, sizeof log, "%s.log", dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)g_bin;
    argv[n++] = "pretrain";
    argv[n++] = "--method";
    argv[n++] = "byol";
    argv[n++] = "--data";
    argv[n++] = FMNIST;
    argv[n++] = "--max-images";
    argv[n++] = g_images;
    argv[n++] = "--epochs";
    argv[n++] = "2";
    argv[n++] = "--batch";
    argv[n++] = "32";
    argv[n++] = "--knn-every";
    argv[n++] = "0";
    argv[n++] = "--threads";
    argv[n++] = "1";
    argv[n++] = "--seed";
    argv[n++] = "7";
    if (g_max_steps && !resume) {
        argv[n++] = "--max-steps";
        argv[n++] = (char *)g_max_steps;
    } else if (!g_max_steps) {
        argv[n++] = "--checkpoint-every";
        argv[n++] = "1";
    }
    argv[n++] = "--quiet";
    argv[n++] = "--out";
    argv[n++] = (char *)dir;
    if (resume) argv[n++] = "--resume";
    argv[n] = NULL;
    execv(g_bin, argv);
    _exit(127);
}

static int wait_exit(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Step recorded in dir/last.safetensors, -1 when there is none (yet). */
static long ckpt_step(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    char *js = ss_checkpoint_meta(path, "state");
    if (!js) return -1;
    cJSON *j = cJSON_Parse(js);
    cJSON *x = cJSON_GetObjectItem(j, "step");
    long s = cJSON_IsNumber(x) ? (long)x->valuedouble : -1;
    cJSON_Delete(j);
    free(js);
    return s;
}

/* Every tensor and the training state equal, byte for byte. */
static int same_checkpoint(const char *a, const char *b)
{
    ss_safetensors *A = NULL, *B = NULL;
    int same = 0;
    if (ss_st_open(a, &A) || ss_st_open(b, &B)) {
        fprintf(stderr, "cannot open: %s\n", ss_errmsg());
        goto out;
    }
    if (ss_st_count(A) != ss_st_count(B)) {
        fprintf(stderr, "tensor counts differ: %d vs %d\n", ss_st_count(A), ss_st_count(B));
        goto out;
    }
    int targets = 0, moments = 0;
    for (int i = 0; i < ss_st_count(A); i++) {
        const ss_st_entry *ea = ss_st_entry_at(A, i), *eb = ss_st_find(B, ea->name);
        if (!eb || ea->nbytes != eb->nbytes || memcmp(ss_st_data(A, ea), ss_st_data(B, eb), (size_t)ea->nbytes)) {
            fprintf(stderr, "tensor '%s' differs\n", ea->name);
            goto out;
        }
        targets += !strncmp(ea->name, "target.", 7);
        moments += !strncmp(ea->name, "optim.m1.", 9);
    }
    const char *sa = ss_st_meta(A, "state"), *sb = ss_st_meta(B, "state");
    if (!sa || !sb || strcmp(sa, sb)) {
        fprintf(stderr, "state differs: %s vs %s\n", sa ? sa : "-", sb ? sb : "-");
        goto out;
    }
    same = targets > 0 && moments > 0; /* the whole training state was compared */
    if (!same) fprintf(stderr, "checkpoint lacks target network or moments\n");
out:
    ss_st_close(A);
    ss_st_close(B);
    return same;
}

int main(void)
{
    g_bin = getenv("SS_BIN");
    if (!g_bin || access(g_bin, X_OK) != 0 || access(FMNIST "/train-images-idx3-ubyte.gz", R_OK) != 0) {
        printf("skipped: needs SS_BIN and %s\n", FMNIST);
        return 0;
    }
    int sanitized = getenv("SS_SANITIZED") != NULL;
    const int images = sanitized ? 128 : 256, steps = 2 * (images / 32), nkills = 5;
    snprintf(g_images, sizeof g_images, "%d", images);
    const char *seed_env = getenv("SS_RESUME_SEED");
    rng_state = seed_env ? strtoull(seed_env, NULL, 10) : 20261129;
    char root[] = "/tmp/ss_resume_XXXXXX";
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char ref[1100], run[1100];
    snprintf(ref, sizeof ref, "%s/ref", root);
    snprintf(run, sizeof run, "%s/run", root);

    /* 1. Uninterrupted reference run, watched to time one step (between
     * the first and the last checkpoint, start-up excluded). */
    double t0 = now_s(), t_first = 0, t_last = 0;
    pid_t rp = spawn(ref, 0);
    long seen = -1;
    int rst = 0;
    while (waitpid(rp, &rst, WNOHANG) == 0) {
        long st = ckpt_step(ref);
        if (st != seen) {
            if (st >= 1 && seen < 1) t_first = now_s();
            if (st == steps) t_last = now_s();
            seen = st;
        }
        sleep_s(0.002);
    }
    CHECK(WIFEXITED(rst) && WEXITSTATUS(rst) == 0);
    double t_ref = now_s() - t0;
    CHECK(ckpt_step(ref) == steps);
    double step_s = t_last > t_first ? (t_last - t_first) / (steps - 1) : t_ref / steps;

    /* 2. The same run, SIGKILLed at 5 random moments and resumed. */
    long targets[5];
    for (int k = 0; k < nkills; k++) { /* distinct steps in [1, steps-3], ascending */
        long t;
        int dup;
        do {
            t = 1 + (long)(urand() * (steps - 3));
            dup = 0;
            for (int j = 0; j < k; j++) dup |= targets[j] == t;
        } while (dup);
        int j = k;
        while (j > 0 && targets[j - 1] > t) {
            targets[j] = targets[j - 1];
            j--;
        }
        targets[j] = t;
    }
    int killed = 0;
    double limit = sanitized ? 600 : 120;
    for (int k = 0; k < nkills; k++) {
        pid_t pid = spawn(run, k > 0);
        double t1 = now_s();
        int exited = 0;
        while (ckpt_step(run) < targets[k] && now_s() - t1 < limit) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                exited = 1;
                break;
            }
            sleep_s(0.002);
        }
        double extra = urand() * 0.5 * step_s;
        sleep_s(extra);
        if (!exited && waitpid(pid, NULL, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            CHECK(wait_exit(pid) == 128 + SIGKILL);
            killed++;
        } else if (!exited) {
            exited = 1;
        }
        long at = ckpt_step(run);
        printf("kill %d: after step %ld + %.0f ms -> checkpoint at step %ld%s\n", k + 1, targets[k], 1e3 * extra, at,
               exited ? " (the run had already exited)" : "");
        /* Whatever the moment, the last checkpoint is whole. */
        CHECK_MSG(at >= targets[k] && at <= steps, "checkpoint step %ld after kill %d", at, k + 1);
    }
    CHECK_MSG(killed == nkills, "%d of %d kills landed while the run was going", killed, nkills);
    /* A temporary file of a dead writer goes on resume; a live one stays. */
    char dead[1200], live[1200];
    snprintf(dead, sizeof dead, "%s/last.safetensors.tmp.2147483600", run);
    snprintf(live, sizeof live, "%s/last.safetensors.tmp.%ld", run, (long)getpid());
    CHECK_OK(ss_write_file_atomic(dead, "x", 1));
    CHECK_OK(ss_write_file_atomic(live, "x", 1));
    CHECK(wait_exit(spawn(run, 1)) == 0);
    CHECK(access(dead, F_OK) != 0);
    CHECK(access(live, F_OK) == 0);
    unlink(live);
    CHECK(ckpt_step(run) == steps);

    /* 3. Bit-identical training state; no temporary file left behind. */
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/last.safetensors", ref);
    snprintf(b, sizeof b, "%s/last.safetensors", run);
    CHECK(same_checkpoint(a, b));
    CHECK(ss_atomic_cleanup(b) == 0);

    /* 4. --max-steps stops mid-epoch with a checkpoint of that step, and
     * --resume from it ends bit-identical to the uninterrupted run. */
    char cut[1100];
    snprintf(cut, sizeof cut, "%s/cut", root);
    g_max_steps = "3";
    CHECK(wait_exit(spawn(cut, 0)) == 0);
    CHECK_MSG(ckpt_step(cut) == 3, "--max-steps 3 left a checkpoint at step %ld", ckpt_step(cut));
    CHECK(wait_exit(spawn(cut, 1)) == 0);
    CHECK(ckpt_step(cut) == steps);
    snprintf(b, sizeof b, "%s/last.safetensors", cut);
    CHECK(same_checkpoint(a, b));

    if (tu_fail == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    } else {
        fprintf(stderr, "run folders kept in %s\n", root);
    }
    printf("reference run %.1f s, %d steps of %.0f ms, %d kills\n", t_ref, steps, 1e3 * step_s, killed);
    TEST_MAIN_END();
}
