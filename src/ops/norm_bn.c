/* Batch normalisation over [N,C] or [N,C,S...] (statistics per channel C),
 * forward and backward.
 *
 * Layout: x[n, c, j] with j < S (S = product of the dims after C, 1 for 2-D
 * input); M = N*S values per channel.
 *
 * Forward (training, or no running statistics): one pass for the statistics
 * (sums of x - k and (x - k)^2 with the shift k = the channel's first value;
 * float partial sums over each contiguous run of S values, double across
 * runs), one pass writing y = ((x - k) - (mean - k))*scale + beta. Keeping
 * the shift k (a value of the data) and mean - k separately keeps the result
 * accurate when |mean| >> std. Eval: running statistics (k = running mean).
 * Backward: one pass for sum(dy) and sum(dy*(x-mean)), one pass writing
 * dx += A*dy + B*x + C per channel (the full gradient through the batch
 * statistics in training; A*dy alone in eval).
 *
 * Fused ReLU (ss_batch_norm_relu): the forward writes max(y, 0) and the
 * backward takes dy where that output is > 0 (0 elsewhere) in both passes,
 * so conv -> BN -> ReLU saves one activation tensor and its gradient, and
 * two passes over them; the bits equal ss_relu(ss_batch_norm(...)).
 *
 * Parallel: over channels for S > 1 (one channel per task, so each
 * channel's sums are made by one thread in a fixed order), over blocks of
 * channels for S == 1. Results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "core/graph_internal.h"

#define PAR_MIN 32768
#define CBLK 64 /* channels per task in the S == 1 layout */

typedef struct bn_saved {
    float *shift, *dmean, *invstd; /* [C]: mean = shift + dmean; 1/sqrt(var + eps) */
    ss_batch_reduce_fn reduce;     /* synchronised BN: sums over all processes */
    double mglobal;                /* values per channel over all processes */
} bn_saved;

/* Per-channel shifted sums over x[n, c, :], n < N. */
static void chan_sums(const float *x, int64_t N, int64_t C, int64_t S, int64_t c, double *s1, double *s2, float k)
{
    double a1 = 0.0, a2 = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *xp = x + (n * C + c) * S;
        float b1 = 0.0f, b2 = 0.0f;
#pragma omp simd reduction(+ : b1, b2)
        for (int64_t j = 0; j < S; j++) {
            float d = xp[j] - k;
            b1 += d;
            b2 += d * d;
        }
        a1 += b1;
        a2 += b2;
    }
    *s1 = a1;
    *s2 = a2;
}

/* Batch statistics: mean[c] = shift[c] + dmean[c], biased var[c]. */
static void batch_stats(const float *x, int64_t N, int64_t C, int64_t S, float *shift, double *dmean, double *var)
{
    const double M = (double)(N * S);
    if (S > 1) {
#pragma omp parallel for schedule(static) if (N * C * S > PAR_MIN)
        for (int64_t c = 0; c < C; c++) {
            float k = x[c * S];
            double s1, s2;
            chan_sums(x, N, C, S, c, &s1, &s2, k);
            double m1 = s1 / M;
            shift[c] = k;
            dmean[c] = m1;
            double v = s2 / M - m1 * m1;
            var[c] = v > 0.0 ? v : 0.0;
        }
    } else {
        const int64_t nblk = (C + CBLK - 1) / CBLK;
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
        for (int64_t bk = 0; bk < nblk; bk++) {
            int64_t c0 = bk * CBLK, cn = C - c0 < CBLK ? C - c0 : CBLK;
            double a1[CBLK], a2[CBLK];
            float k[CBLK];
            for (int64_t c = 0; c < cn; c++) a1[c] = a2[c] = 0.0, k[c] = x[c0 + c];
            for (int64_t n = 0; n < N; n++) {
                const float *xp = x + n * C + c0;
#pragma omp simd
                for (int64_t c = 0; c < cn; c++) {
                    double d = (double)(xp[c] - k[c]);
                    a1[c] += d;
                    a2[c] += d * d;
                }
            }
            for (int64_t c = 0; c < cn; c++) {
                double m1 = a1[c] / M;
                shift[c0 + c] = k[c];
                dmean[c0 + c] = m1;
                double v = a2[c] / M - m1 * m1;
                var[c0 + c] = v > 0.0 ? v : 0.0;
            }
        }
    }
}

/* Synchronised batch statistics: the sums of all processes through
 * `reduce` (two rounds: the global mean, then the sum of squared deviations
 * from it, which keeps the variance accurate). shift = the global mean
 * rounded to float, dmean = the remainder. Returns the global count. */
static double batch_stats_sync(ss_graph *g, ss_batch_reduce_fn reduce, const float *x, int64_t N, int64_t C,
                               int64_t S, float *shift, double *dmean, double *var)
{
    double *buf = (double *)ss_scratch_bytes(g, (size_t)(C + 1) * sizeof(double));
    if (!buf) return 0.0;
    buf[0] = (double)(N * S);
    for (int pass = 0; pass < 2; pass++) {
        double *acc = buf + 1 - pass; /* pass 0: buf[1..C]; pass 1: buf[0..C-1] */
        if (S > 1) {
#pragma omp parallel for schedule(static) if (N * C * S > PAR_MIN)
            for (int64_t c = 0; c < C; c++) {
                double s1, s2;
                chan_sums(x, N, C, S, c, &s1, &s2, pass ? shift[c] : 0.0f);
                acc[c] = pass ? s2 : s1;
            }
        } else {
            for (int64_t c = 0; c < C; c++) acc[c] = 0.0;
            for (int64_t n = 0; n < N; n++) {
                const float *xp = x + n * C;
                for (int64_t c = 0; c < C; c++) {
                    double d = pass ? (double)(xp[c] - shift[c]) : (double)xp[c];
                    acc[c] += pass ? d * d : d;
                }
            }
        }
        reduce(buf, pass ? C : C + 1);
        if (!pass) {
            double M = buf[0];
            for (int64_t c = 0; c < C; c++) {
                double m = M > 0 ? buf[1 + c] / M : 0.0;
                shift[c] = (float)m;
                dmean[c] = m - (double)shift[c];
            }
            buf[C] = M; /* keep the count past pass 1's buf[0..C-1] */
        }
    }
    double M = buf[C];
    for (int64_t c = 0; c < C; c++) {
        double v = M > 0 ? buf[c] / M - dmean[c] * dmean[c] : 0.0;
        var[c] = v > 0.0 ? v : 0.0;
    }
    return M;
}

/* y[n,c,:] = ((x[n,c,:] - k[c]) - d[c])*sc[c] + sh[c] */
static void bn_apply(const float *x, float *y, int64_t N, int64_t C, int64_t S, const float *k, const float *d,
                     const float *sc, const float *sh, int relu)
{
    const float lo = relu ? 0.0f : -INFINITY;
    if (S > 1) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * S > PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) {
                const float *xp = x + (n * C + c) * S;
                float *yp = y + (n * C + c) * S;
                float kc = k[c], dc = d[c], a = sc[c], b = sh[c];
#pragma omp simd
                for (int64_t j = 0; j < S; j++) {
                    float v = ((xp[j] - kc) - dc) * a + b;
                    yp[j] = v > lo ? v : (relu ? 0.0f : v);
                }
            }
    } else {
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            const float *xp = x + n * C;
            float *yp = y + n * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                float v = ((xp[c] - k[c]) - d[c]) * sc[c] + sh[c];
                yp[c] = v > lo ? v : (relu ? 0.0f : v);
            }
        }
    }
}

/* n->in: x, gamma, beta (gamma/beta may be NULL); n->i[0]: 1 when batch
 * statistics were used; saved: bn_saved. */
static void bn_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    const bn_saved *sv = n->saved;
    const int batch = (int)n->i[0];
    const int64_t N = x->shape[0], C = x->shape[1], S = N * C > 0 ? x->numel / (N * C) : 0;
    const int sync = batch && sv->reduce;
    const double M = sync ? sv->mglobal : (double)(N * S);
    const float *xd = x->data, *dy = n->out->grad;
    const int relu = (int)n->i[1];
    float *dyw = n->out->grad; /* writable: see below */
    const float *yd = n->out->data;
    int64_t S0 = N * C > 0 ? x->numel / (N * C) : 0;
    int mask_in_sums = 0; /* the S > 1 sums pass applies the ReLU mask itself */
    if (relu && !(S0 > 1 && (ss_req(gamma) || ss_req(beta) || (ss_req(x) && n->i[0])))) {
        /* dy through the fused ReLU: dy where the output is > 0, else 0.
         * Done in place: every consumer of the output has run its backward
         * already (reverse order), so its gradient has no other reader. */
        const int64_t T = n->out->numel;
#pragma omp parallel for simd schedule(static) if (T > PAR_MIN)
        for (int64_t i = 0; i < T; i++) {
            float v = dyw[i];
            dyw[i] = yd[i] > 0.0f ? v : 0.0f;
        }
    } else if (relu) {
        mask_in_sums = 1;
    }
    int fresh = 0;
    float *gx = ss_req(x) ? ss_grad_take(g, x, n->out, &fresh) : NULL; /* dx may overwrite dy in place */
    float *gg = ss_req(gamma) ? ss_grad(g, gamma) : NULL;
    float *gbeta = ss_req(beta) ? ss_grad(g, beta) : NULL;
    if ((ss_req(x) && !gx) || (ss_req(gamma) && !gg) || (ss_req(beta) && !gbeta)) return;
    /* Per-channel sums: sdy = sum(dy), sdx = sum(dy * (x - mean)). */
    double *sdy = (double *)ss_scratch_bytes(g, (size_t)(C > 0 ? C : 1) * sizeof(double));
    double *sdx = (double *)ss_scratch_bytes(g, (size_t)(C > 0 ? C : 1) * sizeof(double));
    float *A = ss_scratch(g, C > 0 ? C : 1), *B = ss_scratch(g, C > 0 ? C : 1), *K = ss_scratch(g, C > 0 ? C : 1);
    if (!sdy || !sdx || !A || !B || !K) return;
    const float *shift = sv->shift, *dmean = sv->dmean, *invstd = sv->invstd;
    int need_sums = gg || gbeta || (gx && batch);
    if (need_sums) {
        if (S > 1) {
#pragma omp parallel for schedule(static) if (N * C * S > PAR_MIN)
            for (int64_t c = 0; c < C; c++) {
                double a1 = 0.0, a2 = 0.0;
                float k = shift[c], d = dmean[c];
                for (int64_t nn = 0; nn < N; nn++) {
                    const float *xp = xd + (nn * C + c) * S, *dp = dy + (nn * C + c) * S;
                    float b1 = 0.0f, b2 = 0.0f;
                    if (mask_in_sums) {
                        /* dy through the fused ReLU, stored back for the dx pass */
                        float *dm = dyw + (nn * C + c) * S;
                        const float *yp = yd + (nn * C + c) * S;
#pragma omp simd reduction(+ : b1, b2)
                        for (int64_t j = 0; j < S; j++) {
                            float v = dm[j];
                            v = yp[j] > 0.0f ? v : 0.0f;
                            dm[j] = v;
                            b1 += v;
                            b2 += v * ((xp[j] - k) - d);
                        }
                    } else {
#pragma omp simd reduction(+ : b1, b2)
                        for (int64_t j = 0; j < S; j++) {
                            b1 += dp[j];
                            b2 += dp[j] * ((xp[j] - k) - d);
                        }
                    }
                    a1 += b1;
                    a2 += b2;
                }
                sdy[c] = a1;
                sdx[c] = a2;
            }
        } else {
            const int64_t nblk = (C + CBLK - 1) / CBLK;
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
            for (int64_t bk = 0; bk < nblk; bk++) {
                int64_t c0 = bk * CBLK, cn = C - c0 < CBLK ? C - c0 : CBLK;
                double a1[CBLK], a2[CBLK];
                for (int64_t c = 0; c < cn; c++) a1[c] = a2[c] = 0.0;
                for (int64_t nn = 0; nn < N; nn++) {
                    const float *xp = xd + nn * C + c0, *dp = dy + nn * C + c0;
#pragma omp simd
                    for (int64_t c = 0; c < cn; c++) {
                        a1[c] += dp[c];
                        a2[c] += (double)dp[c] * (double)((xp[c] - shift[c0 + c]) - dmean[c0 + c]);
                    }
                }
                for (int64_t c = 0; c < cn; c++) sdy[c0 + c] = a1[c], sdx[c0 + c] = a2[c];
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        if (gbeta) gbeta[c] += (float)sdy[c];
        if (gg) gg[c] += (float)(sdx[c] * invstd[c]);
    }
    if (!gx) return;
    if (sync) {
        /* gamma/beta above took the local sums (the step's gradient
         * averaging combines them); dx needs the sums over every process. */
        double *buf = (double *)ss_scratch_bytes(g, (size_t)(2 * C > 0 ? 2 * C : 1) * sizeof(double));
        if (!buf) return;
        memcpy(buf, sdy, (size_t)C * sizeof(double));
        memcpy(buf + C, sdx, (size_t)C * sizeof(double));
        sv->reduce(buf, 2 * C);
        sdy = buf;
        sdx = buf + C;
    }
    /* dx = A*dy + B*(x - mean) + K with A = gamma*invstd and, in training,
     *   dx = A*(dy - sdy/M - (x-mean)*invstd^2*sdx/M). */
    for (int64_t c = 0; c < C; c++) {
        double a = (gamma ? (double)gamma->data[c] : 1.0) * invstd[c];
        A[c] = (float)a;
        if (batch && M > 0) {
            double is2 = (double)invstd[c] * invstd[c];
            double bcoef = -a * is2 * sdx[c] / M;
            B[c] = (float)bcoef;
            K[c] = (float)(-a * sdy[c] / M);
        } else {
            B[c] = 0.0f;
            K[c] = 0.0f;
        }
    }
    if (S > 1) {
#pragma omp parallel for collapse(2) schedule(static) if (N * C * S > PAR_MIN)
        for (int64_t nn = 0; nn < N; nn++)
            for (int64_t c = 0; c < C; c++) {
                const int64_t off = (nn * C + c) * S;
                const float *xp = xd + off, *dp = dy + off;
                float *gp = gx + off;
                float a = A[c], b = B[c], k = K[c], sf = shift[c], d = dmean[c];
                if (fresh) {
#pragma omp simd
                    for (int64_t j = 0; j < S; j++) gp[j] = a * dp[j] + b * ((xp[j] - sf) - d) + k;
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < S; j++) gp[j] += a * dp[j] + b * ((xp[j] - sf) - d) + k;
                }
            }
    } else {
#pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
        for (int64_t nn = 0; nn < N; nn++) {
            const float *xp = xd + nn * C, *dp = dy + nn * C;
            float *gp = gx + nn * C;
            if (fresh) {
#pragma omp simd
                for (int64_t c = 0; c < C; c++)
                    gp[c] = A[c] * dp[c] + B[c] * ((xp[c] - shift[c]) - dmean[c]) + K[c];
            } else {
#pragma omp simd
                for (int64_t c = 0; c < C; c++)
                    gp[c] += A[c] * dp[c] + B[c] * ((xp[c] - shift[c]) - dmean[c]) + K[c];
            }
        }
    }
}

static ss_tensor *bn_forward(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta, ss_tensor *running_mean,
                             ss_tensor *running_var, float momentum, float eps, int relu)
{
    SS_CHECK_IN1(g, x);
    ss_tensor *gi = gamma, *bi = beta;
    x = ss_contiguous(g, x);
    if (gamma) gamma = ss_contiguous(g, gamma);
    if (beta) beta = ss_contiguous(g, beta);
    if (!x || (gi && !gamma) || (bi && !beta)) return NULL;
    char s1[64];
    if (x->ndim < 2)
        return ss_op_error(g, "batch_norm", "input %s has no channel dimension (expected [N,C] or [N,C,H,W])",
                           ss_shape_str(x, s1, sizeof s1));
    const int64_t N = x->shape[0], C = x->shape[1];
    const int64_t S = N * C > 0 ? x->numel / (N * C) : 0;
    const int64_t M = N * S;
    if ((gamma && gamma->numel != C) || (beta && beta->numel != C))
        return ss_op_error(g, "batch_norm", "gamma/beta have %lld/%lld elements, expected %lld (channels of %s)",
                           (long long)(gamma ? gamma->numel : C), (long long)(beta ? beta->numel : C), (long long)C,
                           ss_shape_str(x, s1, sizeof s1));
    if ((running_mean && (running_mean->numel != C || !ss_tensor_is_contiguous(running_mean))) ||
        (running_var && (running_var->numel != C || !ss_tensor_is_contiguous(running_var))))
        return ss_op_error(g, "batch_norm", "running_mean/running_var must be contiguous with %lld elements",
                           (long long)C);
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return ss_op_error(g, "batch_norm", "eps %g and momentum %g (expected eps > 0, 0 <= momentum <= 1)",
                           (double)eps, (double)momentum);
    const int training = ss_graph_training(g);
    const int have_running = running_mean && running_var;
    const int batch = training || !have_running;
    if (training && M < 2 && !ss_graph_batch_reduce(g))
        return ss_op_error(g, "batch_norm", "expected more than 1 value per channel when training, got input %s",
                           ss_shape_str(x, s1, sizeof s1));
    ss_tensor *out = ss_new_like(g, x);
    float *shift = ss_scratch(g, C > 0 ? C : 1), *dmean = ss_scratch(g, C > 0 ? C : 1);
    float *invstd = ss_scratch(g, C > 0 ? C : 1);
    float *sc = ss_scratch(g, C > 0 ? C : 1), *sh = ss_scratch(g, C > 0 ? C : 1);
    double *dm = (double *)ss_scratch_bytes(g, (size_t)(C > 0 ? C : 1) * sizeof(double));
    double *dv = (double *)ss_scratch_bytes(g, (size_t)(C > 0 ? C : 1) * sizeof(double));
    if (!out || !shift || !dmean || !invstd || !sc || !sh || !dm || !dv) return NULL;
    /* dm: mean - shift (double), dv: variance */
    ss_batch_reduce_fn reduce = training ? ss_graph_batch_reduce(g) : NULL;
    double mglobal = (double)M;
    if (reduce) {
        mglobal = batch_stats_sync(g, reduce, x->data, N, C, S, shift, dm, dv);
        if (!(mglobal >= 2.0))
            return ss_op_error(g, "batch_norm", "synchronised statistics over %g values per channel (need > 1)",
                               mglobal);
    } else if (batch) {
        if (M > 0) {
            batch_stats(x->data, N, C, S, shift, dm, dv);
        } else {
            for (int64_t c = 0; c < C; c++) shift[c] = 0.0f, dm[c] = dv[c] = 0.0;
        }
    } else {
        for (int64_t c = 0; c < C; c++)
            shift[c] = running_mean->data[c], dm[c] = 0.0, dv[c] = running_var->data[c];
    }
    for (int64_t c = 0; c < C; c++) {
        double is = 1.0 / sqrt(dv[c] + (double)eps);
        double gmul = gamma ? gamma->data[c] : 1.0, badd = beta ? beta->data[c] : 0.0;
        dmean[c] = (float)dm[c];
        invstd[c] = (float)is;
        sc[c] = (float)(gmul * is);
        sh[c] = (float)badd;
    }
    if (training && have_running) {
        /* PyTorch's rule, unbiased variance for the running estimate. */
        double unb = mglobal / (mglobal - 1.0), mo = momentum;
        for (int64_t c = 0; c < C; c++) {
            running_mean->data[c] = (float)((1.0 - mo) * running_mean->data[c] + mo * (shift[c] + dm[c]));
            running_var->data[c] = (float)((1.0 - mo) * running_var->data[c] + mo * dv[c] * unb);
        }
    }
    bn_apply(x->data, out->data, N, C, S, shift, dmean, sc, sh, relu);
    ss_tensor *in[3] = {x, gamma, beta};
    ss_node *n = ss_record(g, relu ? "batch_norm_relu" : "batch_norm", bn_backward, out, 3, in);
    if (n) {
        bn_saved *sv = ss_scratch_bytes(g, sizeof *sv);
        if (!sv) return NULL;
        sv->shift = shift;
        sv->dmean = dmean;
        sv->invstd = invstd;
        sv->reduce = reduce;
        sv->mglobal = mglobal;
        n->saved = sv;
        n->i[0] = batch;
        n->i[1] = relu;
    }
    return out;
}

ss_tensor *ss_batch_norm(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta, ss_tensor *running_mean,
                         ss_tensor *running_var, float momentum, float eps)
{
    return bn_forward(g, x, gamma, beta, running_mean, running_var, momentum, eps, 0);
}

ss_tensor *ss_batch_norm_relu(ss_graph *g, ss_tensor *x, ss_tensor *gamma, ss_tensor *beta,
                              ss_tensor *running_mean, ss_tensor *running_var, float momentum, float eps)
{
    return bn_forward(g, x, gamma, beta, running_mean, running_var, momentum, eps, 1);
}
