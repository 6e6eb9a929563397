/* selfsup demo: the three claims of self-supervised learning in one run on
 * Fashion-MNIST (Debian's dataset-fashion-mnist), with a report.
 *   1. pretrain an encoder on the 60,000 training images without labels;
 *   2. fine-tune it on 1% and 10% of the labels, and train the same encoder
 *      from scratch on the same labels (same recipe, same seed);
 *   3. evaluate both 1% models under lighting, background, noise, blur and
 *      digital corruptions;
 *   4. write report.html (self-contained, inline SVG charts) and report.md
 *      (PNG charts) with every figure from this run.
 * Each stage is one of the normal commands (pretrain, finetune, train,
 * robustness) run in-process with its own run folder. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "selfsup/fileio.h"
#include "selfsup/plot.h"
#include "selfsup/ssl.h"

typedef struct curve {
    double t[512], acc[512];
    int n;
} curve;

typedef struct arm {
    double acc, seconds;
    curve c;
    double fam_drop[5], clean, mca;
    int have_robust;
} arm;

static const char *FAMS[5] = {"lighting", "background", "noise", "blur", "digital"};

static int run_cmd(int (*fn)(int, char **), const char *stage, char **argv, int argc)
{
    fprintf(stderr, "\n== %s\n   selfsup", stage);
    for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    /* Stages run in this process and the precision is process-wide: each
     * stage starts from the library default, as it would on its own, and
     * sets its own with --precision. */
    ss_set_precision(SS_PRECISION_FP32);
    int rc = fn(argc - 1, argv + 1);
    if (rc) fprintf(stderr, "selfsup demo: stage '%s' failed\n", stage);
    return rc;
}

static cJSON *read_json(const char *path)
{
    void *buf = NULL;
    size_t n = 0;
    if (ss_read_file(path, 64u << 20, &buf, &n) != SS_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j) ss_seterr(SS_ERR_FORMAT, "%s: not valid JSON", path);
    return j;
}

static double jnum(cJSON *o, const char *k, double def)
{
    cJSON *x = o ? cJSON_GetObjectItem(o, k) : NULL;
    return cJSON_IsNumber(x) ? x->valuedouble : def;
}

/* Curve of eval accuracy against training seconds from metrics.jsonl. */
static void read_curve(const char *dir, curve *c)
{
    char p[1100];
    snprintf(p, sizeof p, "%.900s/metrics.jsonl", dir);
    FILE *f = fopen(p, "r");
    c->n = 0;
    if (!f) return;
    char line[2048];
    while (fgets(line, sizeof line, f) && c->n < 512) {
        cJSON *j = cJSON_Parse(line);
        double e = jnum(j, "eval", -1), t = jnum(j, "train_s", -1);
        if (e >= 0 && t >= 0) {
            c->t[c->n] = t;
            c->acc[c->n] = 100 * e;
            c->n++;
        }
        cJSON_Delete(j);
    }
    fclose(f);
}

static int read_result(const char *dir, arm *a)
{
    char p[1100];
    snprintf(p, sizeof p, "%.900s/result.json", dir);
    cJSON *j = read_json(p);
    if (!j) return 1;
    a->acc = 100 * jnum(j, "test_acc", 0);
    a->seconds = jnum(j, "train_seconds", 0);
    cJSON_Delete(j);
    read_curve(dir, &a->c);
    return 0;
}

static int read_robust(const char *dir, arm *a)
{
    char p[1100];
    snprintf(p, sizeof p, "%.900s/robustness.json", dir);
    cJSON *j = read_json(p);
    if (!j) return 1;
    a->clean = 100 * jnum(j, "clean_acc", 0);
    a->mca = 100 * jnum(j, "mean_corruption_acc", 0);
    cJSON *fd = cJSON_GetObjectItem(j, "family_drop");
    for (int k = 0; k < 5; k++) a->fam_drop[k] = 100 * jnum(fd, FAMS[k], NAN);
    a->have_robust = 1;
    cJSON_Delete(j);
    return 0;
}

/* First training time at which the curve reaches `target` (NAN if never). */
static double time_to(const curve *c, double target)
{
    for (int i = 0; i < c->n; i++)
        if (c->acc[i] >= target - 1e-9) return c->t[i];
    return NAN;
}

static double curve_best(const curve *c)
{
    double b = 0;
    for (int i = 0; i < c->n; i++) b = fmax(b, c->acc[i]);
    return b;
}

static void fmt_s(double s, char *b, size_t n)
{
    if (!isfinite(s)) snprintf(b, n, "never");
    else if (s >= 60) snprintf(b, n, "%.0f min %02.0f s", floor(s / 60), fmod(s, 60));
    else snprintf(b, n, "%.1f s", s);
}


/* The time plan. Every stage's work is counted in units: one convnet-s
 * training image (forward + backward) at the stage's batch size; a forward
 * alone (evaluation, the distillation teacher, robustness) is a third of
 * one. On the two machines measured (docs/RESULTS.md, "The demo's time
 * plan") every stage ran at one rate per unit within 10%, so the demo
 * measures that rate with a few steps of step-convnet-sup, predicts the
 * run's length, and scales the training budgets the user did not set by the
 * largest factor on a fixed ladder that fits --minutes. The factor is
 * printed and written to the report; --scale S repeats a plan exactly.
 * The pool stages (pretraining, distillation) scale by the factor, the
 * labelled stages by its square root. */
typedef struct plan {
    int pre_epochs, ep1, ep10, dep;
    long pre_images, rimg;
    double views; /* training views per pretraining image, in units */
    int eval1;    /* evaluation every this many epochs at 1% labels */
    double enc;   /* units per image of the labelled stages' encoder (the method's) */
} plan;

#define DEMO_TRAIN_N 60000.0 /* Fashion-MNIST's training images */
#define DEMO_FIXED_S 25.0    /* loading the data set 7 times, process start-up */

static double plan_units(const plan *p)
{
    const double ev = 2000.0 / 3, test = 10000.0 / 3;
    double pre_imgs = (p->pre_images ? fmin((double)p->pre_images, DEMO_TRAIN_N) : DEMO_TRAIN_N) * p->pre_epochs;
    double u = 0;
    u += 2 * (p->ep1 * 600.0 + (p->ep1 / p->eval1 + 1) * ev + test); /* scratch and fine-tune, 1% */
    u += 2 * (p->ep10 * 6000.0 + p->ep10 * ev + test);         /* and 10% */
    if (p->dep) u += p->dep * (DEMO_TRAIN_N + ev) + DEMO_TRAIN_N / 3 + test; /* student; teacher once */
    u += 2 * (double)p->rimg * 76 / 3;                           /* clean + 15 corruptions x 5 severities */
    return pre_imgs * p->views + (p->enc > 0 ? p->enc : 1) * u;
}

/* Checks and parses one of the demo's pipelines (flag names it in the
 * error): control characters are refused before the parser sees them, so
 * the plan JSON and the report can print the string as it is. */
static int demo_pipeline(const char *flag, const char *spec, ss_augment **out)
{
    for (const char *c = spec; *c; c++)
        if ((unsigned char)*c < 0x20) {
            ss_seterr(SS_ERR_INVALID, "demo: %s: a control character (code %d) in the pipeline", flag, *c);
            return 0;
        }
    if (ss_augment_parse(spec, out)) {
        char why[512];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        ss_seterr(SS_ERR_INVALID, "demo: %s: %s", flag, why);
        return 0;
    }
    return 1;
}

/* Units per image of an encoder in the labelled stages: vit-t trained on
 * 600 labels at 210-250 images/s on the 2-core Zen 3, convnet-s at about
 * 650 (docs/RESULTS.md, "MAE on vit-t"). */
static double encoder_units(const char *e)
{
    if (!strcmp(e, "vit-t")) return 2.8;
    return 1;
}

/* Units per pretraining image for each method (the views it trains on;
 * BYOL adds its target's forward, MAE's vit-t costs about 1.5 convnet-s
 * images per image in selfsup bench). */
static double method_views(const char *m)
{
    if (!strcmp(m, "rotation")) return 4;
    if (!strcmp(m, "byol")) return 2 + 2.0 / 3;
    if (!strcmp(m, "mae")) return 1.5;
    return 2; /* simclr, vicreg */
}

/* `base` scaled by f: pretraining keeps its image count per epoch up to the
 * training set and spreads the work over whole epochs; the others scale
 * their epochs (each at least its floor). Fields the user set (fixed[]) keep
 * their values. */
static plan plan_scale(plan base, double f, const int fixed[5])
{
    plan p = base;
    if (!fixed[0]) {
        double work = (base.pre_images ? (double)base.pre_images : DEMO_TRAIN_N) * base.pre_epochs * f;
        p.pre_epochs = (int)ceil(work / DEMO_TRAIN_N - 1e-9);
        if (p.pre_epochs < 1) p.pre_epochs = 1;
        long img = (long)(work / p.pre_epochs / 100 + 0.5) * 100;
        p.pre_images = img >= (long)DEMO_TRAIN_N ? 0 : img < 1000 ? 1000 : img;
    }
    /* The labelled stages are cut less (by sqrt(f)): at 0.35 x their
     * epochs the strong augmentation left both arms far from their accuracy
     * (10% labels: 78.9% after 4 epochs, 84-86% after 10), which says
     * nothing about the claims. */
    const double g = sqrt(f);
    if (!fixed[1]) p.ep1 = (int)fmax(10, floor(base.ep1 * g + 0.5));
    if (!fixed[2]) p.ep10 = (int)fmax(1, floor(base.ep10 * g + 0.5));
    /* The distillation keeps at least two epochs: it is the stage that
     * makes the final model robust (its background swaps), and started
     * from the fine-tuned model two epochs gained 0.4 points over that
     * teacher on the Zen 3, where one epoch from the pretrained encoder
     * lost 0.5-0.75 (docs/RESULTS.md, "The demo's time plan"). */
    if (!fixed[3] && base.dep) {
        p.dep = (int)floor(base.dep * f + 0.5);
        if (p.dep < 2) p.dep = 2;
    }
    if (!fixed[4]) p.rimg = (long)fmax(500, floor(base.rimg * fmin(1, f * 1.5) / 100 + 0.5) * 100);
    return p;
}

/* The largest ladder factor whose predicted length fits budget_s (*found =
 * 0 and the smallest factor when none does). */
static double plan_fit(plan base, const int fixed[5], double unit_s, double budget_s, int *found)
{
    static const double ladder[] = {1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2};
    const size_t nl = sizeof ladder / sizeof ladder[0];
    for (size_t i = 0; i < nl; i++) {
        plan q = plan_scale(base, ladder[i], fixed);
        if (DEMO_FIXED_S + unit_s * plan_units(&q) <= budget_s) {
            *found = 1;
            return ladder[i];
        }
    }
    *found = 0;
    return ladder[nl - 1];
}

int cmd_demo(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "demo", argc, argv)) return cli_fail();
    if (args_flag(&a, "help")) {
        printf("usage: selfsup demo [--quick] [--out runs/demo] [--threads 2] [--seed 0]\n"
               "  [--method simclr|rotation|mae|byol|vicreg (scratch trains the same encoder: vit-t for mae, else convnet-s)]\n"
               "  [--minutes M (fit the run to M minutes on this machine: 15, 3 with --quick; 0 = the full budgets)]\n"
               "  [--scale F (the budgets x F, without timing; not with --minutes)]\n"
               "  [--pretrain-epochs N] [--pretrain-images N] [--epochs-1 N] [--epochs-10 N] [--distill-epochs N (0 = off)]\n"
               "  [--augment SPEC (every labelled training stage, scratch included; default crop:2,hflip,jitter:0.4:0.4@0.8,erase:0.5)]\n"
               "  [--distill-augment SPEC (the student on the unlabelled pool; default: --augment's ops, spelled out, with\n"
               "   bg:0.8@0.5 after the leading crops and flips: background swaps on dark-background images; --augment\n"
               "   as given when it has bg or is empty; 'same' = --augment)]\n"
               "  [--robust-images N] [--data PATH] [--precision bf16|fp32 (default bf16 where the CPU has it)]\n"
               "  [--plan (print the plan as JSON and stop)] [--unit-ms X (plan with X ms per unit instead of timing)]\n"
               "Runs pretraining, fine-tuning vs scratch at 1%% and 10%% labels, robustness, and writes\n"
               "OUT/report.html and OUT/report.md. --quick: smaller budgets (about 3 minutes).\n"
               "Before the first stage it times a few training steps and scales the budgets you did not set by the\n"
               "largest factor (1, 0.9, ..., 0.2) that fits --minutes; --scale F uses factor F without timing.\n");
        return 0;
    }
    int ok = 1;
    int quick = args_flag(&a, "quick");
    const char *out = args_str(&a, "out", "runs/demo");
    const char *data = args_str(&a, "data", "/usr/share/datasets/fashion-mnist");
    const char *method = args_str(&a, "method", "simclr");
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    long seed = args_int(&a, "seed", 0, 0, 1L << 40, &ok);
    /* Budgets: -1 = not set (the planner may scale it). */
    /* --quick has no distillation: its floor of two epochs over the
     * whole pool (about 3 minutes on a 2-core Zen 3) would take the whole
     * quick run. */
    plan base = {quick ? 1 : 3, quick ? 15 : 100, quick ? 2 : 10, quick ? 0 : 4, quick ? 12000 : 0, quick ? 500 : 1500, 2,
                 quick ? 3 : 5, 1};
    plan given = {(int)args_int(&a, "pretrain-epochs", -1, 1, 10000, &ok), (int)args_int(&a, "epochs-1", -1, 1, 10000, &ok),
                  (int)args_int(&a, "epochs-10", -1, 1, 10000, &ok), (int)args_int(&a, "distill-epochs", -1, 0, 10000, &ok),
                  args_int(&a, "pretrain-images", -1, 0, 1L << 40, &ok), args_int(&a, "robust-images", -1, 10, 1000000, &ok), 0,
                  0, 0};
    int fixed[5] = {given.pre_epochs >= 0 || given.pre_images >= 0, given.ep1 >= 0, given.ep10 >= 0, given.dep >= 0,
                    given.rimg >= 0};
    if (given.pre_epochs >= 0) base.pre_epochs = given.pre_epochs;
    if (given.pre_images >= 0) base.pre_images = given.pre_images;
    if (given.ep1 >= 0) base.ep1 = given.ep1;
    if (given.ep10 >= 0) base.ep10 = given.ep10;
    if (given.dep >= 0) base.dep = given.dep;
    if (given.rimg >= 0) base.rimg = given.rimg;
    base.views = method_views(method);
    /* Scratch trains the encoder the method pretrains (the protocol's "same
     * encoder"): vit-t for mae, convnet-s for the others. */
    const ss_method *meth = ss_method_find(method);
    const char *encoder = meth ? meth->default_encoder : "convnet-s";
    if (!meth) {
        ss_seterr(SS_ERR_INVALID, "demo: --method '%.100s': expected rotation, simclr, mae, byol or vicreg", method);
        ok = 0;
    }
    base.enc = encoder_units(encoder);
    double minutes = args_float(&a, "minutes", -1, 0, 1e6, &ok);
    double scale = args_float(&a, "scale", 0, 0, 1, &ok);
    if (minutes >= 0 && scale > 0) {
        ss_seterr(SS_ERR_INVALID, "demo: --minutes and --scale both given: --scale fixes the plan, --minutes asks for one");
        ok = 0;
    }
    if (minutes < 0) minutes = quick ? 3 : 15;
    int plan_only = args_flag(&a, "plan");
    double unit_ms = args_float(&a, "unit-ms", 0, 0, 1e6, &ok);
    const char *daug = args_str(&a, "augment", "crop:2,hflip,jitter:0.4:0.4@0.8,erase:0.5");
    /* The distillation student learns from the unlabelled pool; its views
     * add background swaps (the bg op, Ryali et al. 2021), which no labelled
     * stage sees. With them the student's drop under the background and
     * lighting corruptions fell from 29.4 and 6.0 points to 11.3 and 3.2 (docs/RESULTS.md,
     * "Background swaps"). */
    const char *dist_aug = args_str(&a, "distill-augment", NULL);
    if (dist_aug && strcmp(dist_aug, "same") == 0) dist_aug = daug;
    /* Both pipelines are checked now, not when their stage starts: the
     * plan JSON prints them, and a typo costs no training time. After this
     * they hold only the grammar's characters and spaces (control
     * characters, tabs included, are refused): nothing to escape. Without
     * --distill-augment, the student's pipeline is --augment's (spelled out
     * in full) with bg:0.8@0.5 after its leading crops and flips, so that
     * the swap sees the original pixel values; nothing is added when
     * --augment has a bg op already or is empty. */
    ss_augment *pa_lab = NULL, *pa_dist = NULL;
    char dist_aug_buf[2048];
    ok = ok && demo_pipeline("--augment", daug, &pa_lab);
    if (ok && dist_aug) ok = demo_pipeline("--distill-augment", dist_aug, &pa_dist);
    else if (ok && (ss_augment_count(pa_lab) == 0 || ss_augment_has_op(pa_lab, "bg")))
        ok = demo_pipeline("--augment", dist_aug = daug, &pa_dist);
    else if (ok && ss_augment_insert(pa_lab, ss_augment_geometric_prefix(pa_lab), "bg:0.8@0.5", &pa_dist)) {
        char why[512];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        ss_seterr(SS_ERR_INVALID, "demo: --augment: adding bg:0.8@0.5 for the student: %s", why);
        ok = 0;
    } else if (ok) {
        const char *d = ss_augment_describe(pa_dist);
        if (strlen(d) >= sizeof dist_aug_buf) {
            ss_seterr(SS_ERR_INVALID, "demo: --augment is too long to add bg:0.8@0.5 to (%zu characters "
                      "spelled out; at most %zu)", strlen(d), sizeof dist_aug_buf - 1);
            ok = 0;
        }
        snprintf(dist_aug_buf, sizeof dist_aug_buf, "%s", d);
        dist_aug = dist_aug_buf;
    }
    /* the report explains background swaps when only the student has them */
    int student_bg = ok && ss_augment_has_op(pa_dist, "bg") && !ss_augment_has_op(pa_lab, "bg");
    ss_augment_free(pa_lab);
    ss_augment_free(pa_dist);
    ss_precision prec = SS_PRECISION_FP32;
    if (!cli_read_precision(&a, ss_cpu_has_bf16() ? "bf16" : "fp32", &prec)) ok = 0; /* the fast path where the CPU has it */
    char *pr = (char *)ss_precision_name(prec); /* passed to every training stage */
    if (!ok || ss_args_finish(&a)) return cli_fail();
    if (!plan_only && ss_mkdir_p(out)) return cli_fail();
    double t0 = ss_now();
    /* The plan: measure this machine's rate per unit, then the largest
     * ladder factor whose predicted length fits the minutes (5% margin). */
    double unit_s = 0, predicted = 0;
    const char *plan_how = "as set";
    int fits = 1;
    if (scale > 0) plan_how = "--scale";
    else if (minutes > 0) {
        ss_step_bench_result br = {.sec_per_step = unit_ms * 1e-3, .items_per_step = 1};
        ss_set_threads(threads);
        ss_set_precision(prec);
        if ((unit_ms > 0 || ss_step_bench("step-convnet-sup", 8, &br) == SS_OK) && br.sec_per_step > 0) {
            /* The stages train slower per unit than this step: they
             * augment on the same two cores, and the labelled ones run at
             * batch 64. On the Zen 3 in fp32 (2026-12-07, four full runs)
             * the training of every stage ran at 1.09-1.15x the step's time
             * per unit, and whole runs took 1.02-1.11x a prediction made at
             * 1x (one ran 15 min 22 s); on the Zen 4 in bf16 the stages ran
             * at 1.2x. Taken at 1.12x and 1.2x, with the 5% margin below. */
            unit_s = br.sec_per_step / br.items_per_step;
            if (unit_ms <= 0) unit_s *= prec == SS_PRECISION_BF16 ? 1.2 : 1.12;
            int found;
            scale = plan_fit(base, fixed, unit_s, 0.95 * 60 * minutes, &found);
            /* Without the distillation when nothing fits (its time then
             * goes to a larger factor for the rest). */
            if (!fixed[3] && base.dep && !found) {
                base.dep = 0;
                fixed[3] = 1; /* so --scale repeats it: see again[] */
                scale = plan_fit(base, fixed, unit_s, 0.95 * 60 * minutes, &found);
            }
            fits = found;
            plan_how = "--minutes";
        } else {
            fprintf(stderr, "selfsup demo: could not time this machine (%s); running the full budgets\n", ss_errmsg());
            scale = 1;
        }
    } else scale = 1;
    const plan P = plan_scale(base, scale, fixed);
    if (unit_s <= 0 && unit_ms > 0) unit_s = unit_ms * 1e-3; /* a prediction for --scale too */
    if (unit_s > 0) predicted = DEMO_FIXED_S + unit_s * plan_units(&P);
    int pre_epochs = P.pre_epochs, ep1 = P.ep1, ep10 = P.ep10, dep = P.dep;
    long rimg = P.rimg, pre_images = P.pre_images;
    /* the flags that repeat this plan without timing the machine */
    char again[96];
    snprintf(again, sizeof again, "--scale %g%s%s", scale, quick ? " --quick" : "",
             fixed[3] && given.dep < 0 ? " --distill-epochs 0" : "");
    char plan_txt[512];
    snprintf(plan_txt, sizeof plan_txt,
             "scale %g (%s): pretraining %d epoch(s) of %ld images, %d epochs at 1%%, %d at 10%%, distillation %d "
             "epoch(s), %ld robustness images",
             scale, plan_how, pre_epochs, pre_images ? pre_images : (long)DEMO_TRAIN_N, ep1, ep10, dep, rimg);
    if (plan_only) {
        printf("{\"scale\":%g,\"how\":\"%s\",\"pretrain_epochs\":%d,\"pretrain_images\":%ld,\"epochs_1\":%d,"
               "\"epochs_10\":%d,\"distill_epochs\":%d,\"robust_images\":%ld,\"units\":%.0f,\"unit_ms\":%.4f,"
               "\"predicted_s\":%.1f,\"minutes\":%g,\"fits\":%s,\"encoder\":\"%s\",\"augment\":\"%s\",\"distill_augment\":\"%s\"}\n",
               scale, plan_how, pre_epochs, pre_images ? pre_images : (long)DEMO_TRAIN_N, ep1, ep10, dep, rimg,
               plan_units(&P), unit_s * 1e3, predicted, minutes, fits ? "true" : "false", encoder, daug, dist_aug);
        return 0;
    }
    fprintf(stderr, "selfsup demo: plan %s", plan_txt);
    if (predicted > 0) fprintf(stderr, "; predicted %.1f min on this machine (budget %g min)", predicted / 60, minutes);
    if (!fits)
        fprintf(stderr, "\nselfsup demo: even the smallest plan does not fit %g minutes on this machine; running it anyway",
                minutes);
    fprintf(stderr, "\n   the same plan again: selfsup demo %s (and the other flags given)\n", again);
    char th[16], sd[16], pe[16], e1[16], e10[16], ri[16], pim[32];
    snprintf(th, sizeof th, "%d", threads);
    snprintf(sd, sizeof sd, "%ld", seed);
    snprintf(pe, sizeof pe, "%d", pre_epochs);
    snprintf(e1, sizeof e1, "%d", ep1);
    snprintf(e10, sizeof e10, "%d", ep10);
    snprintf(ri, sizeof ri, "%ld", rimg);
    snprintf(pim, sizeof pim, "%ld", pre_images);
    char d_pre[1100], ck[1100], d[5][1100];
    snprintf(d_pre, sizeof d_pre, "%.900s/pretrain", out);
    snprintf(ck, sizeof ck, "%s/pretrain/last.safetensors", out);
    const char *names[5] = {"scratch_1pct", "ssl_1pct", "scratch_10pct", "ssl_10pct", "ssl_distill_1pct"};
    for (int i = 0; i < 5; i++) snprintf(d[i], sizeof d[i], "%.900s/%s", out, names[i]);
    /* The final self-supervised 1% model: SimCLRv2's third step (distil the
     * fine-tuned model into a student on the whole unlabelled pool) when on. */
    int fin = dep > 0 ? 4 : 1;

    /* 1. pretraining */
    {
        char *av[32];
        int n = 0;
        av[n++] = "pretrain";
        av[n++] = "--method";
        av[n++] = (char *)method;
        av[n++] = "--data";
        av[n++] = (char *)data;
        av[n++] = "--epochs";
        av[n++] = pe;
        av[n++] = "--threads";
        av[n++] = th;
        av[n++] = "--seed";
        av[n++] = sd;
        av[n++] = "--out";
        av[n++] = d_pre;
        av[n++] = "--knn-every";
        av[n++] = "0";
        av[n++] = "--precision";
        av[n++] = pr;
        if (pre_images) {
            av[n++] = "--max-images";
            av[n++] = pim;
        }
        if (run_cmd(cmd_pretrain, "1/4 self-supervised pretraining (no labels)", av, n)) return 1;
    }
    double t_pre = ss_now() - t0;
    /* 2. fine-tune vs scratch at 1% and 10% */
    for (int i = 0; i < 4; i++) {
        char *av[40];
        int n = 0;
        int ssl = i % 2 == 1, ten = i >= 2;
        av[n++] = ssl ? "finetune" : "train";
        av[n++] = "--data";
        av[n++] = (char *)data;
        av[n++] = "--labels";
        av[n++] = ten ? "10%" : "1%";
        av[n++] = "--epochs";
        av[n++] = ten ? e10 : e1;
        av[n++] = "--threads";
        av[n++] = th;
        av[n++] = "--seed";
        av[n++] = sd;
        av[n++] = "--out";
        av[n++] = d[i];
        av[n++] = "--eval-every";
        av[n++] = ten ? "1" : (quick ? "3" : "5");
        av[n++] = "--eval-images";
        av[n++] = "2000";
        av[n++] = "--precision";
        av[n++] = pr;
        av[n++] = "--augment";
        av[n++] = (char *)daug;
        if (ssl) {
            av[n++] = "--model";
            av[n++] = ck;
        } else {
            av[n++] = "--encoder";
            av[n++] = (char *)encoder;
        }
        char stage[128];
        snprintf(stage, sizeof stage, "%d/4 %s on %s labels", 2, ssl ? "fine-tune the pretrained encoder" : "train from scratch",
                 ten ? "10%" : "1%");
        if (run_cmd(ssl ? cmd_finetune : cmd_train, stage, av, n)) return 1;
    }
    if (dep > 0) {
        char teacher[1200], de[16];
        snprintf(teacher, sizeof teacher, "%.900s/last.safetensors", d[1]);
        snprintf(de, sizeof de, "%d", dep);
        char *av[] = {"train", "--data", (char *)data, "--labels", "1%", "--distill", teacher, "--model", teacher,
                      "--epochs", de, "--batch", "256", "--lr", "2e-3", "--warmup", "0.5", "--threads", th, "--seed", sd,
                      "--out", d[4], "--eval-every", "1", "--eval-images", "2000", "--precision", pr,
                      "--augment", (char *)dist_aug};
        if (run_cmd(cmd_train, "2/4 distil the fine-tuned 1% model into a student on all unlabelled images", av,
                    (int)(sizeof av / sizeof av[0])))
            return 1;
    }
    /* 3. robustness of scratch and of the final self-supervised 1% model */
    for (int i = 0; i < 2; i++) {
        char model[1200], rdir[1200];
        int arm_i = i ? fin : 0;
        snprintf(model, sizeof model, "%.900s/last.safetensors", d[arm_i]);
        snprintf(rdir, sizeof rdir, "%.900s/robustness", d[arm_i]);
        char *av[] = {"robustness", "--model", model, "--data", (char *)data, "--max-images", ri, "--threads", th,
                      "--precision", pr, "--out", rdir};
        char stage[128];
        snprintf(stage, sizeof stage, "3/4 robustness of the %s model (1%% labels)", i ? "self-supervised" : "scratch");
        if (run_cmd(cmd_robustness, stage, av, (int)(sizeof av / sizeof av[0]))) return 1;
    }
    /* 4. report */
    arm A[5];
    memset(A, 0, sizeof A);
    for (int i = 0; i < (dep > 0 ? 5 : 4); i++)
        if (read_result(d[i], &A[i])) return cli_fail();
    for (int i = 0; i < 2; i++) {
        char rdir[1200];
        snprintf(rdir, sizeof rdir, "%.900s/robustness", d[i ? fin : 0]);
        if (read_robust(rdir, &A[i ? fin : 0])) return cli_fail();
    }
    const arm *F = &A[fin]; /* the final self-supervised 1% model */
    const char *fin_name = dep > 0 ? "SSL + fine-tune + distil" : "SSL + fine-tune";
    double total = ss_now() - t0;
    double scratch_best = curve_best(&A[0].c);
    double tt_scratch = time_to(&A[0].c, scratch_best), tt_ssl = time_to(&A[1].c, scratch_best);
    char b1[32], b2[32], b3[32], b4[32];
    fmt_s(tt_scratch, b1, sizeof b1);
    fmt_s(tt_ssl, b2, sizeof b2);
    fmt_s(t_pre, b3, sizeof b3);
    fmt_s(total, b4, sizeof b4);
    char bp[32];
    fmt_s(predicted, bp, sizeof bp);
    double lb_ssl = 0, lb_scr = 0;
    for (int k = 0; k < 2; k++) {
        lb_scr += A[0].fam_drop[k] / 2;
        lb_ssl += F->fam_drop[k] / 2;
    }
    /* charts */
    const char *cats[2] = {"1% labels (600)", "10% labels (6000)"};
    const char *ser[3] = {"scratch", "SSL + fine-tune", "SSL + fine-tune + distil"};
    int nser = dep > 0 ? 3 : 2;
    double acc_v[6] = {A[0].acc, A[2].acc, A[1].acc, A[3].acc, A[4].acc, NAN};
    ss_series cs[2] = {{"scratch", A[0].c.t, A[0].c.acc, A[0].c.n}, {"SSL + fine-tune", A[1].c.t, A[1].c.acc, A[1].c.n}};
    const char *rser[2] = {"scratch", fin_name};
    double drops[10];
    for (int k = 0; k < 5; k++) {
        drops[k] = A[0].fam_drop[k];
        drops[5 + k] = F->fam_drop[k];
    }
    char p[1200];
    snprintf(p, sizeof p, "%.900s/accuracy.png", out);
    ss_plot_bars_png(p, "test accuracy (%), Fashion-MNIST", "accuracy %", cats, 2, ser, acc_v, nser, 800, 450);
    snprintf(p, sizeof p, "%.900s/accuracy_vs_time.png", out);
    ss_plot_line_png(p, "test accuracy vs training time, 1% labels", "training seconds", "accuracy %", cs, 2, 800, 450);
    snprintf(p, sizeof p, "%.900s/robustness_drop.png", out);
    ss_plot_bars_png(p, "mean accuracy drop under corruption (points, lower is better)", "drop (points)", FAMS, 5, rser,
                     drops, 2, 800, 450);
    char *svg1 = ss_plot_bars_svg("test accuracy (%), Fashion-MNIST", "accuracy %", cats, 2, ser, acc_v, nser, 800, 450);
    char *svg2 = ss_plot_line_svg("test accuracy vs training time, 1% labels", "training seconds", "accuracy %", cs, 2, 800, 450);
    char *svg3 = ss_plot_bars_svg("mean accuracy drop under corruption (points, lower is better)", "drop (points)", FAMS, 5,
                                  rser, drops, 2, 800, 450);
    /* verdicts, stated plainly whichever way they go */
    char v1[512], v2[256], v3[512];
    if (dep > 0)
        snprintf(v1, sizeof v1,
                 "%s: at 1%% labels the self-supervised model (pretrain without labels, fine-tune, distil on the "
                 "unlabelled pool) gives %.2f%% vs %.2f%% from scratch (%+.2f points); fine-tuning alone gives %.2f%% "
                 "(%+.2f).",
                 F->acc > A[0].acc ? "Yes" : "No", F->acc, A[0].acc, F->acc - A[0].acc, A[1].acc, A[1].acc - A[0].acc);
    else
        snprintf(v1, sizeof v1, "%s: at 1%% labels self-supervised pretraining gives %.2f%% vs %.2f%% from scratch (%+.2f points).",
                 A[1].acc > A[0].acc ? "Yes" : "No", A[1].acc, A[0].acc, A[1].acc - A[0].acc);
    if (isfinite(tt_ssl))
        snprintf(v2, sizeof v2, "%s: fine-tuning reaches scratch's best (%.2f%%) after %s of training vs %s for scratch.",
                 tt_ssl < tt_scratch ? "Yes" : "No", scratch_best, b2, b1);
    else
        snprintf(v2, sizeof v2, "No: fine-tuning never reached scratch's best (%.2f%%) in this run.", scratch_best);
    snprintf(v3, sizeof v3,
             "%s: mean drop under lighting and background shifts is %.2f points for the self-supervised model (%s) "
             "vs %.2f for scratch.",
             lb_ssl < lb_scr ? "Yes" : "No", lb_ssl, fin_name, lb_scr);
    char fams_txt[512] = "";
    for (int k = 0; k < 5; k++) {
        if (!isfinite(A[0].fam_drop[k])) continue;
        if (F->fam_drop[k] >= A[0].fam_drop[k]) {
            size_t l = strlen(fams_txt);
            snprintf(fams_txt + l, sizeof fams_txt - l, "%s%s", l ? ", " : "", FAMS[k]);
        }
    }
    /* markdown */
    char md[1200], html[1200];
    snprintf(md, sizeof md, "%.900s/report.md", out);
    snprintf(html, sizeof html, "%.900s/report.html", out);
    FILE *f = fopen(md, "w");
    if (!f) return cli_fail();
    fprintf(f, "# selfsup demo report\n\nFashion-MNIST (60,000 unlabelled training images, 10,000 test images), encoder "
               "%s, pretext task `%s`, seed %ld, %d threads, %s matrix products. Total wall time %s; pretraining "
               "%s.\n\n",
            encoder, method, seed, threads, pr, b4, b3);
    fprintf(f, "Time plan: %s", plan_txt);
    if (predicted > 0) fprintf(f, "; predicted %s, took %s", bp, b4);
    fprintf(f, ". The same plan again: `selfsup demo %s`.\n\n", again);
    fprintf(f, "## Claims\n1. %s\n2. %s\n3. %s\n", v1, v2, v3);
    if (fams_txt[0]) fprintf(f, "\nNot more robust under: %s.\n", fams_txt);
    fprintf(f, "\n## Accuracy (test set, 10,000 images)\n\n| labels | scratch | self-supervised + fine-tune | difference |%s\n"
               "| --- | --- | --- | --- |%s\n",
            dep > 0 ? " + distil on the unlabelled pool | difference |" : "", dep > 0 ? " --- | --- |" : "");
    fprintf(f, "| 1%% (600) | %.2f%% | %.2f%% | %+.2f |", A[0].acc, A[1].acc, A[1].acc - A[0].acc);
    if (dep > 0) fprintf(f, " %.2f%% | %+.2f |", A[4].acc, A[4].acc - A[0].acc);
    fprintf(f, "\n| 10%% (6000) | %.2f%% | %.2f%% | %+.2f |%s\n\n", A[2].acc, A[3].acc, A[3].acc - A[2].acc,
            dep > 0 ? " - | - |" : "");
    if (dep > 0) {
        char bd[32];
        fmt_s(A[4].seconds, bd, sizeof bd);
        fprintf(f, "Distillation (SimCLRv2's third step): a student, started from the fine-tuned model's encoder, trained "
                   "%d epoch(s) on all unlabelled training images against the fine-tuned model's predictions on the "
                   "clean images (the 600 labelled images keep their labels), %s of training (run folder "
                   "ssl_distill_1pct/). Every labelled training stage, scratch included, sees its images through `%s`; "
                   "the student, on the unlabelled pool, through `%s`, and learns the teacher's clean-image predictions "
                   "through that noise (Noisy Student).%s\n\n",
                dep, bd, daug, dist_aug,
                student_bg
                    ? " Its background swaps (`bg`: the dark surround of an image replaced by a dimmed, shifted copy "
                      "of the image) are the one view no labelled stage gets, and what makes this model hold up under "
                      "the background and lighting shifts: a student without them drops about as much as scratch "
                      "(docs/RESULTS.md, \"Background swaps\")."
                    : "");
    }
    fprintf(f, "![accuracy](accuracy.png)\n\n");
    fprintf(f, "## Accuracy against training time (1%% labels; evaluated on 2,000 test images during training)\n\n"
               "Scratch's best: %.2f%%, reached after %s. Fine-tuning %s%s (pretraining, done once for "
               "any number of tasks, took %s).\n\n![accuracy vs time](accuracy_vs_time.png)\n\n",
            scratch_best, b1, isfinite(tt_ssl) ? "reaches it after " : "does not reach it in this run",
            isfinite(tt_ssl) ? b2 : "", b3);
    fprintf(f, "## Robustness (1%% labels, %ld test images, 5 severities)\n\n| family | scratch drop | %s drop |\n"
               "| --- | --- | --- |\n", rimg, fin_name);
    for (int k = 0; k < 5; k++)
        fprintf(f, "| %s | %.2f | %.2f |\n", FAMS[k], A[0].fam_drop[k], F->fam_drop[k]);
    fprintf(f, "\nClean accuracy on this subset: scratch %.2f%%, self-supervised %.2f%%; mean corruption accuracy "
               "%.2f%% vs %.2f%%.\n\n![robustness](robustness_drop.png)\n\nRun folders: `pretrain/`, `scratch_1pct/`, "
               "`ssl_1pct/`, `ssl_distill_1pct/`, `scratch_10pct/`, `ssl_10pct/` (checkpoints, metrics.jsonl, config.json, "
               "robustness/).\n",
            A[0].clean, F->clean, A[0].mca, F->mca);
    fclose(f);
    /* html */
    f = fopen(html, "w");
    if (!f) return cli_fail();
    fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>selfsup demo</title><style>body{font-family:"
               "sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px "
               "solid #bbb;padding:4px 10px;text-align:right}th{background:#eee}.yes{color:#070}.no{color:#a00}</style>"
               "</head><body><h1>selfsup demo report</h1><p>Fashion-MNIST (60,000 unlabelled training images, 10,000 "
               "test images), encoder %s, pretext task <code>%s</code>, seed %ld, %d threads, %s matrix products. "
               "Total wall time %s; pretraining %s.</p><h2>Claims</h2><ol>",
            encoder, method, seed, threads, pr, b4, b3);
    fprintf(f, "<p>Time plan: %s", plan_txt);
    if (predicted > 0) fprintf(f, "; predicted %s, took %s", bp, b4);
    fprintf(f, ". The same plan again: <code>selfsup demo %s</code>.</p>", again);
    const char *vs[3] = {v1, v2, v3};
    for (int k = 0; k < 3; k++) fprintf(f, "<li class=\"%s\">%s</li>", vs[k][0] == 'Y' ? "yes" : "no", vs[k]);
    fprintf(f, "</ol>");
    if (fams_txt[0]) fprintf(f, "<p>Not more robust under: %s.</p>", fams_txt);
    fprintf(f, "<h2>Accuracy</h2><table><tr><th>labels</th><th>scratch</th><th>self-supervised + fine-tune</th><th>difference</th>%s</tr>",
            dep > 0 ? "<th>+ distil on the unlabelled pool</th><th>difference</th>" : "");
    fprintf(f, "<tr><td>1%% (600)</td><td>%.2f%%</td><td>%.2f%%</td><td>%+.2f</td>", A[0].acc, A[1].acc, A[1].acc - A[0].acc);
    if (dep > 0) fprintf(f, "<td>%.2f%%</td><td>%+.2f</td>", A[4].acc, A[4].acc - A[0].acc);
    fprintf(f, "</tr><tr><td>10%% (6000)</td><td>%.2f%%</td><td>%.2f%%</td><td>%+.2f</td>%s</tr></table>%s",
            A[2].acc, A[3].acc, A[3].acc - A[2].acc, dep > 0 ? "<td>-</td><td>-</td>" : "", svg1 ? svg1 : "");
    fprintf(f, "<h2>Accuracy against training time (1%% labels)</h2><p>Scratch's best: %.2f%%, reached after %s. Fine-tuning "
               "%s%s (pretraining took %s, once).</p>%s",
            scratch_best, b1, isfinite(tt_ssl) ? "reaches it after " : "does not reach it in this run",
            isfinite(tt_ssl) ? b2 : "", b3, svg2 ? svg2 : "");
    fprintf(f, "<h2>Robustness (1%% labels, %ld test images, severities 1-5)</h2><table><tr><th>family</th><th>scratch drop</th>"
               "<th>%s drop</th></tr>", rimg, fin_name);
    for (int k = 0; k < 5; k++) fprintf(f, "<tr><td>%s</td><td>%.2f</td><td>%.2f</td></tr>", FAMS[k], A[0].fam_drop[k], F->fam_drop[k]);
    fprintf(f, "</table>%s<p>Every figure on this page comes from this run; run folders are next to this file.</p></body></html>\n",
            svg3 ? svg3 : "");
    fclose(f);
    free(svg1);
    free(svg2);
    free(svg3);
    printf("\nselfsup demo (%s total; plan %s)\n  1. %s\n  2. %s\n  3. %s\n", b4, plan_txt, v1, v2, v3);
    if (fams_txt[0]) printf("     not more robust under: %s\n", fams_txt);
    printf("report: %s and %s\n", html, md);
    return 0;
}
