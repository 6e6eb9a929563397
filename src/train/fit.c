/* The one training loop: supervised training, fine-tuning and every pretext
 * task run through here (see ss_fit_hooks). It owns the optimiser, the
 * schedule, the NaN guard, the progress bar, metrics.jsonl, the loss curve
 * and atomic checkpoints (last, best, periodic) with exact resume. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "selfsup/dist.h"
#include "selfsup/fileio.h"
#include "selfsup/plot.h"
#include "selfsup/train.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(double s, char *buf, size_t n)
{
    if (s < 0 || !isfinite(s)) s = 0;
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%dh%02dm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%dm%02ds", t / 60, t % 60);
    else snprintf(buf, n, "%ds", t);
}

static void progress(const ss_fit_config *c, int64_t epoch, int64_t b, int64_t spe, double loss, double acc,
                     double ips, double eta, int final)
{
    if (c->quiet) return;
    int tty = isatty(2);
    if (!tty && !final) return;
    char bar[31], et[16];
    int fill = spe ? (int)(30 * (b + (final ? 0 : 0)) / spe) : 30;
    if (final) fill = 30;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = '\0';
    fmt_time(eta, et, sizeof et);
    fprintf(stderr, "%s%-10s epoch %lld/%d [%s] %lld/%lld loss %.4f", tty ? "\r" : "", c->what ? c->what : "train",
            (long long)epoch + 1, c->epochs, bar, (long long)(final ? spe : b), (long long)spe, loss);
    if (acc >= 0) fprintf(stderr, " acc %5.1f%%", 100 * acc);
    fprintf(stderr, " %6.0f img/s ETA %-7s", ips, et);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static ss_status save_ckpt(const ss_fit_config *c, ss_model *m, ss_optimizer *opt, const ss_train_state *st,
                           const char *name)
{
    char path[1100];
    if (ss_dist_rank() != 0) return SS_OK; /* data parallel: rank 0 writes */
    snprintf(path, sizeof path, "%s/%s", c->run_dir, name);
    return ss_checkpoint_save(path, m, opt, st, c->config_json);
}

/* Where a non-finite value came from, for the error message: a weight that
 * is already bad, else the first op of this step's forward pass that makes
 * one (the step is re-run with check_finite; same seed, same batch), else
 * the first parameter whose gradient is bad. */
static void diagnose_nan(const ss_fit_config *c, ss_model *m, ss_graph *g, const ss_fit_hooks *h,
                         const ss_batch *batch, int64_t step, int grad_only, char *why, size_t n)
{
    why[0] = '\0';
    for (int i = 0; i < ss_params_count(m->p) && !why[0]; i++) {
        ss_tensor *t = ss_params_at(m->p, i);
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k])) {
                snprintf(why, n, "weight '%s' is already %s; ", t->name, isnan(t->data[k]) ? "NaN" : "Inf");
                break;
            }
    }
    size_t l = strlen(why);
    if (grad_only) { /* name the parameter before the re-run overwrites the gradients' context */
        for (int i = 0; i < ss_params_count(m->p) && l == strlen(why); i++) {
            ss_tensor *t = ss_params_at(m->p, i);
            for (int64_t k = 0; t->grad && k < t->numel; k++)
                if (!isfinite(t->grad[k])) {
                    snprintf(why + l, n - l, "the loss is finite but the gradient of '%s' is %s; ", t->name,
                             isnan(t->grad[k]) ? "NaN" : "Inf");
                    break;
                }
        }
        l = strlen(why);
    }
    double cc = 0, cn = 0;
    ss_graph_reset(g);
    ss_graph_set_training(g, 1);
    ss_graph_set_seed(g, c->seed, (uint64_t)step);
    ss_graph_set_check_finite(g, 1);
    ss_tensor *loss = h->loss(h->ctx, g, batch, &cc, &cn);
    if (ss_graph_status(g) == SS_ERR_NAN) snprintf(why + l, n - l, "%s", ss_graph_errmsg(g));
    else if (!loss || !isfinite(loss->data[0])) snprintf(why + l, n - l, "the loss is non-finite");
    else snprintf(why + l, n - l, "%s", grad_only ? "every forward op is finite (it arose in the backward pass)"
                                                  : "the forward pass is finite when re-run");
    ss_graph_set_check_finite(g, c->check_finite);
}

static int grads_finite(const ss_params *p)
{
    int64_t n = 0;
    const float *gr = ss_params_grads(p, &n);
    float acc = 0.0f;
    for (int64_t i = 0; gr && i < n; i++) acc += gr[i] * 0.0f; /* NaN/Inf propagate; 0 otherwise */
    return acc == 0.0f;
}

void ss_fit_result_free(ss_fit_result *r)
{
    free(r->hist_loss);
    free(r->hist_metric);
    free(r->hist_time);
    memset(r, 0, sizeof *r);
}

/* The image loader as a batch source. */
static int64_t ldr_spe(void *L) { return ss_loader_batches_per_epoch(L); }
static ss_status ldr_next(void *L, ss_batch *b) { return ss_loader_next(L, b); }
static ss_status ldr_seek(void *L, int64_t epoch, int64_t batch) { return ss_loader_seek(L, epoch, batch); }
static double ldr_wait(void *L) { return ss_loader_wait_seconds(L); }

ss_status ss_fit(ss_model *m, ss_loader *L, const ss_fit_config *c, const ss_fit_hooks *h, ss_fit_result *res)
{
    ss_batch_source src = {L, ldr_spe, ldr_next, ldr_seek, ldr_wait};
    return ss_fit_source(m, &src, c, h, res);
}

ss_status ss_fit_source(ss_model *m, const ss_batch_source *L, const ss_fit_config *c, const ss_fit_hooks *h,
                        ss_fit_result *res)
{
    memset(res, 0, sizeof *res);
    res->best_metric = NAN;
    res->last_metric = NAN;
    /* Data parallel (selfsup/dist.h): every rank runs this loop on its shard;
     * gradients are averaged after backward; rank 0 alone prints and writes. */
    const int rank = ss_dist_rank(), world = ss_dist_world();
    ss_fit_config c_rank;
    if (rank != 0) {
        c_rank = *c;
        c_rank.quiet = 1;
        c = &c_rank;
    }
    int64_t spe = L->batches_per_epoch(L->ctx);
    if (spe <= 0) return ss_seterr(SS_ERR_INVALID, "%s: no full batch of data (fewer images than --batch?)", c->what);
    int64_t total = (int64_t)c->epochs * spe;
    int64_t warmup = (int64_t)(c->warmup_epochs * (double)spe);
    ss_optimizer *opt = NULL;
    ss_status s = ss_opt_new(m->p, &c->opt, &opt);
    if (s) return s;
    ss_train_state st;
    memset(&st, 0, sizeof st);
    st.best_metric = -1;
    st.lr_scale = 1.0;
    if (c->run_dir && (s = ss_mkdir_p(c->run_dir))) goto out;
    if (c->run_dir && rank == 0) { /* temporary files of a killed run */
        const char *names[] = {"last.safetensors", "best.safetensors", "config.json", "result.json"};
        for (int i = 0; i < 4; i++) {
            char path[1100];
            snprintf(path, sizeof path, "%s/%s", c->run_dir, names[i]);
            ss_atomic_cleanup(path);
        }
    }
    if (c->on_nan == SS_ON_NAN_ROLLBACK && !c->run_dir) {
        s = ss_seterr(SS_ERR_INVALID, "%s: --on-nan rollback needs a run folder (--out) for its checkpoints", c->what);
        goto out;
    }
    if (c->resume) {
        char path[1100];
        snprintf(path, sizeof path, "%s/last.safetensors", c->run_dir);
        if ((s = ss_checkpoint_load_into(path, m, NULL, 0, opt, &st))) goto out;
        if ((s = L->seek(L->ctx, st.epoch, st.batch))) goto out;
        if (!c->quiet)
            fprintf(stderr, "%s: resumed from %s at epoch %lld, batch %lld (step %lld)\n", c->what, path,
                    (long long)st.epoch + 1, (long long)st.batch, (long long)st.step);
    }
    if ((s = ss_dist_sync_params(m->p))) goto out; /* same start on every rank */
    ss_jsonl *log = NULL;
    if (c->run_dir && rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->run_dir);
        if ((s = ss_jsonl_open(path, &log))) goto out;
        if (c->config_json) {
            snprintf(path, sizeof path, "%s/config.json", c->run_dir);
            if ((s = ss_write_file_atomic(path, c->config_json, strlen(c->config_json)))) goto out_log;
        }
    }
    res->hist_loss = calloc((size_t)c->epochs + 1, sizeof(double));
    res->hist_metric = calloc((size_t)c->epochs + 1, sizeof(double));
    res->hist_time = calloc((size_t)c->epochs + 1, sizeof(double));
    double *cx = NULL, *cy = NULL; /* the loss curve: see `every` below */
    ss_graph *g = ss_graph_new();
    if (!g || !res->hist_loss || !res->hist_metric || !res->hist_time) {
        s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", c->what);
        goto out_g;
    }
    ss_graph_set_check_finite(g, c->check_finite);
    if (c->sync_bn && world > 1) ss_graph_set_batch_reduce(g, ss_dist_batch_reduce);
    double t_start = now_s(), t_last_ckpt = t_start, wait0 = L->wait_seconds(L->ctx);
    int64_t step = st.step, start_step = st.step;
    double eval_seconds = 0;
    int injected = 0;
    /* The loss curve (loss.png): the mean loss of every `every` steps, about
     * 25 points per epoch, at fractional epochs, so that a short run (a few
     * epochs, or --max-steps inside the first one) still shows its curve. */
    const int64_t every = spe / 25 > 1 ? spe / 25 : 1;
    double wsum = 0;
    int64_t cn = 0, ccap = 0, wn = 0;
    if (c->on_nan == SS_ON_NAN_ROLLBACK && !c->resume && (s = save_ckpt(c, m, opt, &st, "last.safetensors")))
        goto out_g; /* something to roll back to */
restart:
    for (int64_t epoch = st.epoch; epoch < c->epochs; epoch++) {
        double sum_loss = 0, correct = 0, count = 0, t_epoch = now_s(), t_print = 0;
        int64_t nb = 0, images = 0;
        for (int64_t b = (epoch == st.epoch ? st.batch : 0); b < spe; b++) {
            if (c->max_steps && step - start_step >= c->max_steps) {
                /* --resume continues from here (at an epoch boundary the epoch end has just saved it) */
                if (c->run_dir && step > start_step && st.batch != 0) {
                    if ((s = ss_dist_average_buffers(m->p))) goto out_g;
                    if ((s = save_ckpt(c, m, opt, &st, "last.safetensors"))) goto out_g;
                }
                if (nb) res->final_loss = sum_loss / nb; /* the steps of this epoch so far */
                if (h->stopped_mid_epoch && rank == 0 && step > start_step && st.batch != 0) {
                    double t_hook = now_s(); /* not training time, like epoch_end's */
                    if ((s = h->stopped_mid_epoch(h->ctx, epoch))) goto out_g;
                    eval_seconds += now_s() - t_hook;
                }
                goto done;
            }
            ss_batch batch;
            if ((s = L->next(L->ctx, &batch))) goto out_g;
            ss_graph_reset(g);
            ss_graph_set_training(g, 1);
            ss_graph_set_seed(g, c->seed, (uint64_t)step);
            ss_params_zero_grad(m->p);
            if (c->debug_nan_at_step > 0 && step == c->debug_nan_at_step && !injected) {
                injected = 1; /* tests: a weight turns NaN (once) */
                for (int i = 0; i < ss_params_count(m->p); i++)
                    if (ss_params_at(m->p, i)->flags & SS_T_PARAM) {
                        ss_params_at(m->p, i)->data[0] = NAN;
                        break;
                    }
            }
            if (h->before_step) h->before_step(h->ctx, step);
            ss_tensor *loss = h->loss(h->ctx, g, &batch, &correct, &count);
            if (!loss && ss_graph_status(g) != SS_ERR_NAN) {
                s = ss_seterr(ss_graph_status(g) ? ss_graph_status(g) : SS_ERR_INVALID, "%s: step %lld: %s", c->what,
                              (long long)step, ss_graph_errmsg(g)[0] ? ss_graph_errmsg(g) : ss_errmsg());
                goto out_g;
            }
            float lv = loss ? loss->data[0] : NAN;
            if (world > 1 && (s = ss_dist_allreduce_mean(&lv, 1))) goto out_g; /* every rank stops together */
            int bad = !isfinite(lv);
            if (!bad) {
                if ((s = ss_backward(g, loss))) goto out_g;
                if ((s = ss_dist_average_grads(m->p))) goto out_g;
                bad = !grads_finite(m->p) ? 2 : 0;
            }
            if (bad) { /* NaN/Inf guard: stop, or roll back with half the learning rate */
                char why[700];
                diagnose_nan(c, m, g, h, &batch, step, bad == 2, why, sizeof why);
                int64_t done = st.rollbacks;
                if (c->on_nan == SS_ON_NAN_ROLLBACK && done < c->max_rollbacks) {
                    char path[1100];
                    double scale = st.lr_scale * 0.5;
                    snprintf(path, sizeof path, "%s/last.safetensors", c->run_dir);
                    if ((s = ss_checkpoint_load_into(path, m, NULL, 0, opt, &st))) goto out_g;
                    st.lr_scale = scale;
                    st.rollbacks = done + 1;
                    if ((s = L->seek(L->ctx, st.epoch, st.batch))) goto out_g;
                    if ((s = ss_dist_sync_params(m->p))) goto out_g;
                    if (rank == 0)
                        fprintf(stderr, "%s%s: step %lld (epoch %lld, batch %lld): non-finite value: %s; rolled back "
                                "to %s (step %lld) with learning rate x%g (rollback %lld of %d)\n",
                                !c->quiet && isatty(2) ? "\n" : "", c->what,
                                (long long)step, (long long)epoch + 1, (long long)b, why, path, (long long)st.step,
                                scale, (long long)st.rollbacks, c->max_rollbacks);
                    step = st.step;
                    goto restart;
                }
                s = ss_seterr(SS_ERR_NAN, "%s: step %lld (epoch %lld, batch %lld): non-finite value: %s; stopped%s "
                              "without overwriting the last good checkpoint (lower --lr, or --on-nan rollback)",
                              c->what, (long long)step, (long long)epoch + 1, (long long)b, why,
                              c->on_nan == SS_ON_NAN_ROLLBACK ? " after the last allowed rollback," : "");
                goto out_g;
            }
            if (c->clip_norm > 0) ss_clip_grad_norm(m->p, c->clip_norm);
            float lr = ss_lr_cosine(step, total, warmup, c->lr, c->final_lr) * (float)st.lr_scale;
            ss_opt_step(opt, lr);
            step++;
            if (h->after_step) h->after_step(h->ctx, step, (double)step / (double)total);
            sum_loss += lv;
            nb++;
            wsum += lv;
            if (++wn == every || b == spe - 1 || (c->max_steps && step - start_step >= c->max_steps)) {
                if (cn == ccap) {
                    int64_t nc = ccap ? 2 * ccap : 64;
                    double *nx = realloc(cx, sizeof(double) * (size_t)nc), *ny = nx ? realloc(cy, sizeof(double) * (size_t)nc) : NULL;
                    if (nx) cx = nx;
                    if (ny) cy = ny;
                    if (!nx || !ny) {
                        s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", c->what);
                        goto out_g;
                    }
                    ccap = nc;
                }
                cx[cn] = (double)epoch + (double)(b + 1) / (double)spe;
                cy[cn++] = wsum / (double)wn;
                wsum = 0;
                wn = 0;
            }
            images += batch.n * world;
            double t = now_s();
            if (t - t_print > 0.25 || b == spe - 1) {
                double ips = images / (t - t_epoch + 1e-9);
                double per_step = (t - t_start) / (double)(step - start_step);
                progress(c, epoch, b + 1, spe, sum_loss / nb, count > 0 ? correct / count : -1, ips,
                         per_step * (double)(total - step), 0);
                t_print = t;
            }
            st.epoch = epoch;
            st.batch = b + 1;
            st.step = step;
            int want_ckpt = c->run_dir && ((c->ckpt_every_steps && step % c->ckpt_every_steps == 0) ||
                                           (c->ckpt_every_minutes > 0 && t - t_last_ckpt > 60 * c->ckpt_every_minutes));
            if (world > 1 && c->run_dir && c->ckpt_every_minutes > 0) { /* rank 0's clock decides */
                float w = (float)want_ckpt;
                if ((s = ss_dist_broadcast(&w, 1, 0))) goto out_g;
                want_ckpt = w != 0.0f;
            }
            if (want_ckpt) {
                if ((s = ss_dist_average_buffers(m->p))) goto out_g;
                ss_train_state ps = st;
                if (ps.batch == spe) {
                    ps.epoch++;
                    ps.batch = 0;
                }
                if ((s = save_ckpt(c, m, opt, &ps, "last.safetensors"))) goto out_g;
                t_last_ckpt = t;
            }
        }
        double metric = NAN, t_eval = now_s();
        if (world > 1) { /* BN running statistics and accuracy over all ranks */
            double cc[2] = {correct, count};
            if ((s = ss_dist_average_buffers(m->p)) || (s = ss_dist_allreduce_sum_f64(cc, 2))) goto out_g;
            correct = cc[0];
            count = cc[1];
        }
        if (h->epoch_collective && (s = h->epoch_collective(h->ctx))) goto out_g;
        if (h->epoch_end && rank == 0 && (s = h->epoch_end(h->ctx, epoch, &metric))) goto out_g;
        eval_seconds += now_s() - t_eval;
        double ips = images / (t_eval - t_epoch + 1e-9);
        progress(c, epoch, spe, spe, nb ? sum_loss / nb : 0, count > 0 ? correct / count : -1, ips, 0, 1);
        if (!c->quiet && isfinite(metric)) fprintf(stderr, "%-10s epoch %lld: eval %.2f%%\n", c->what ? c->what : "", (long long)epoch + 1, 100 * metric);
        double elapsed = now_s() - t_start - eval_seconds; /* training time, evaluation excluded */
        res->hist_loss[res->nhist] = nb ? sum_loss / nb : 0;
        res->hist_metric[res->nhist] = metric;
        res->hist_time[res->nhist] = elapsed;
        res->nhist++;
        res->last_metric = metric;
        res->final_loss = nb ? sum_loss / nb : 0;
        st.epoch = epoch + 1;
        st.batch = 0;
        st.step = step;
        int is_best = isfinite(metric) && metric > st.best_metric;
        if (is_best) {
            st.best_metric = metric;
            st.best_epoch = epoch + 1;
        }
        if (log) {
            char line[512];
            snprintf(line, sizeof line,
                     "{\"epoch\":%lld,\"step\":%lld,\"loss\":%.6g,\"train_acc\":%.6g,\"eval\":%.6g,\"lr\":%.6g,"
                     "\"images_per_s\":%.1f,\"train_s\":%.2f,\"data_wait_s\":%.2f}",
                     (long long)epoch + 1, (long long)step, nb ? sum_loss / nb : 0.0,
                     count > 0 ? correct / count : -1.0, isfinite(metric) ? metric : -1.0,
                     (double)ss_lr_cosine(step, total, warmup, c->lr, c->final_lr) * st.lr_scale, ips, elapsed,
                     L->wait_seconds(L->ctx) - wait0);
            ss_jsonl_write(log, line);
        }
        if (c->run_dir) {
            if ((s = save_ckpt(c, m, opt, &st, "last.safetensors"))) goto out_g;
            if (is_best && (s = save_ckpt(c, m, NULL, NULL, "best.safetensors"))) goto out_g;
            t_last_ckpt = now_s();
        }
    }
done:
    res->best_metric = st.best_metric;
    res->best_epoch = st.best_epoch;
    res->steps = step - start_step;
    res->seconds = now_s() - t_start - eval_seconds;
    res->data_wait_seconds = L->wait_seconds(L->ctx) - wait0;
    if (c->run_dir && cn > 0 && rank == 0) {
        char path[1100], name[64];
        snprintf(name, sizeof name, every > 1 ? "train loss (mean of %lld steps)" : "train loss", (long long)every);
        ss_series sr = {name, cx, cy, (int)cn};
        snprintf(path, sizeof path, "%s/loss.png", c->run_dir);
        ss_plot_line_png(path, c->what ? c->what : "training loss", "epoch", "loss", &sr, 1, 640, 400);
    }
out_g:
    free(cx);
    free(cy);
    ss_graph_free(g);
out_log:
    ss_jsonl_close(log);
out:
    ss_opt_free(opt);
    if (s) ss_fit_result_free(res); /* callers free a result only on success */
    return s;
}
