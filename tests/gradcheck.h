/* Finite-difference gradient checker for ops and layers.
 *
 * For f: inputs -> out, the checker uses the scalar L = sum(out * R) with a
 * fixed random R (so every output element matters), computes dL/dx by the
 * tape, and compares with central differences
 *     (L(x + h e_i) - L(x - h e_i)) / 2h
 * where L is accumulated in double precision. The forward ops run in float32,
 * so h is chosen relative to |x| (h = h_rel * max(1, |x_i|)) and the test
 * passes when |analytic - numeric| <= atol + rtol * |numeric| for every
 * checked element. Non-differentiable points (ReLU at 0, max-pool ties) are
 * avoided by constructing inputs away from them; a test may also mark
 * elements to skip.
 */
#ifndef SS_GRADCHECK_H
#define SS_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "selfsup/ops.h"
#include "selfsup/rng.h"
#include "testutil.h"

#define GC_MAX_IN 6

typedef ss_tensor *(*gc_fn)(ss_graph *g, ss_tensor **in, void *ctx);

typedef struct gc_input {
    int ndim;
    int64_t shape[SS_MAX_DIMS];
    float *data;       /* values (owned by the test) */
    int requires_grad; /* check this input's gradient */
} gc_input;

typedef struct gc_opts {
    double h_rel, atol, rtol;
    int max_checks; /* per input; 0 = all elements */
    uint64_t seed;
} gc_opts;

static inline gc_opts gc_default(void)
{
    gc_opts o = {1e-2, 2e-3, 2e-2, 0, 7};
    return o;
}

static inline int64_t gc_numel(const gc_input *x)
{
    int64_t n = 1;
    for (int i = 0; i < x->ndim; i++) n *= x->shape[i];
    return n;
}

/* Forward once; returns L = sum(out*R) in double; fills R on first call. */
static double gc_eval(ss_graph *g, gc_fn f, void *ctx, int nin, gc_input *ins, float **R, int64_t *nout,
                      int with_grad, ss_tensor **leaves_out, ss_tensor **out_out)
{
    ss_graph_reset(g);
    ss_graph_set_seed(g, 1234, 0);
    ss_graph_set_grad_enabled(g, with_grad);
    ss_tensor *leaves[GC_MAX_IN];
    for (int i = 0; i < nin; i++) {
        ss_tensor *t = ss_new(g, ins[i].ndim, ins[i].shape);
        if (!t) return NAN;
        memcpy(t->data, ins[i].data, (size_t)t->numel * sizeof(float));
        if (ins[i].requires_grad) t->flags |= SS_T_REQUIRES_GRAD;
        leaves[i] = t;
        if (leaves_out) leaves_out[i] = t;
    }
    ss_tensor *out = f(g, leaves, ctx);
    if (!out) {
        fprintf(stderr, "gradcheck: forward failed: %s\n", ss_graph_errmsg(g));
        return NAN;
    }
    out = ss_contiguous(g, out);
    if (out_out) *out_out = out;
    if (!*R) {
        ss_rng r;
        ss_rng_seed(&r, 99, 0);
        *nout = out->numel;
        *R = malloc((size_t)out->numel * sizeof(float));
        for (int64_t i = 0; i < out->numel; i++) (*R)[i] = ss_rng_uniform(&r) * 2.0f - 1.0f;
    }
    double L = 0;
    for (int64_t i = 0; i < out->numel; i++) L += (double)out->data[i] * (*R)[i];
    return L;
}

/* Returns the number of mismatches (0 = pass) and records CHECKs. */
static int gradcheck(const char *name, gc_fn f, void *ctx, int nin, gc_input *ins, gc_opts o)
{
    ss_graph *g = ss_graph_new();
    float *R = NULL;
    int64_t nout = 0;
    ss_tensor *leaves[GC_MAX_IN], *out = NULL;
    double L0 = gc_eval(g, f, ctx, nin, ins, &R, &nout, 1, leaves, &out);
    int bad = 0;
    if (isnan(L0)) {
        CHECK_MSG(0, "%s: forward failed", name);
        ss_graph_free(g);
        free(R);
        return 1;
    }
    if (ss_backward_seed(g, out, R) != SS_OK) {
        CHECK_MSG(0, "%s: backward failed: %s", name, ss_errmsg());
        ss_graph_free(g);
        free(R);
        return 1;
    }
    /* Copy analytic grads out before the graph is reset. */
    float *an[GC_MAX_IN] = {0};
    for (int i = 0; i < nin; i++) {
        if (!ins[i].requires_grad) continue;
        int64_t n = gc_numel(&ins[i]);
        an[i] = calloc((size_t)n, sizeof(float));
        if (leaves[i]->grad) memcpy(an[i], leaves[i]->grad, (size_t)n * sizeof(float));
    }
    double maxerr = 0;
    ss_rng pick;
    ss_rng_seed(&pick, o.seed, 1);
    for (int i = 0; i < nin; i++) {
        if (!ins[i].requires_grad) continue;
        int64_t n = gc_numel(&ins[i]);
        int64_t checks = (o.max_checks && o.max_checks < n) ? o.max_checks : n;
        for (int64_t c = 0; c < checks; c++) {
            int64_t j = checks == n ? c : (int64_t)ss_rng_below(&pick, (uint32_t)n);
            float orig = ins[i].data[j];
            double h = o.h_rel * (fabs(orig) > 1.0 ? fabs(orig) : 1.0);
            ins[i].data[j] = (float)(orig + h);
            double hp = (double)ins[i].data[j] - orig;
            double Lp = gc_eval(g, f, ctx, nin, ins, &R, &nout, 0, NULL, NULL);
            ins[i].data[j] = (float)(orig - h);
            double hm = orig - (double)ins[i].data[j];
            double Lm = gc_eval(g, f, ctx, nin, ins, &R, &nout, 0, NULL, NULL);
            ins[i].data[j] = orig;
            double num = (Lp - Lm) / (hp + hm);
            double a = an[i][j];
            double err = fabs(a - num);
            double rel = err / (o.atol + o.rtol * fabs(num));
            if (rel > maxerr) maxerr = rel;
            if (err > o.atol + o.rtol * fabs(num)) {
                if (bad < 5)
                    fprintf(stderr, "%s: input %d elem %lld: analytic %.6g numeric %.6g\n", name, i, (long long)j, a,
                            num);
                bad++;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: %d gradient mismatches", name, bad);
    if (getenv("SS_GC_VERBOSE")) printf("gradcheck %-28s worst error/tolerance %.3f\n", name, maxerr);
    for (int i = 0; i < nin; i++) free(an[i]);
    free(R);
    ss_graph_free(g);
    return bad;
}

/* Fill with uniform values in [lo, hi). */
static inline void gc_fill(float *x, int64_t n, float lo, float hi, uint64_t seed)
{
    ss_rng r;
    ss_rng_seed(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ss_rng_uniform(&r);
}

/* Fill with values whose magnitude is at least `gap` (away from a kink at 0). */
static inline void gc_fill_away0(float *x, int64_t n, float gap, uint64_t seed)
{
    ss_rng r;
    ss_rng_seed(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) {
        float v = gap + ss_rng_uniform(&r);
        x[i] = ss_rng_uniform(&r) < 0.5f ? -v : v;
    }
}
#endif
