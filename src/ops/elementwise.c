/* Element-wise ops: broadcasting add/sub/mul/div, scale, add_scalar, ReLU,
 * GELU (erf form), sigmoid, tanh, dropout. Loops are written so the compiler
 * vectorises them; large ones run in parallel with OpenMP (static schedule:
 * every element is computed by the same formula whatever the thread count,
 * so results do not depend on it). */
#include <math.h>
#include <string.h>

#include "core/graph_internal.h"
#include "ops/fastmath.h"

#define PAR_MIN 32768 /* below this, threads cost more than they save */

/* ---- broadcasting ----------------------------------------------------------- */
typedef struct bcast {
    int nd;
    int64_t shape[SS_MAX_DIMS];
    int64_t sa[SS_MAX_DIMS], sb[SS_MAX_DIMS]; /* strides into a, b (0 = broadcast) */
} bcast;

static int make_bcast(const ss_tensor *a, const ss_tensor *b, bcast *bc)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bc->nd = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) return 0;
        bc->shape[i] = da > db ? da : db;
        if (da == 0 || db == 0) bc->shape[i] = 0;
        bc->sa[i] = (ia >= 0 && da != 1) ? a->stride[ia] : 0;
        bc->sb[i] = (ib >= 0 && db != 1) ? b->stride[ib] : 0;
    }
    return 1;
}

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

static inline float apply_bin(int op, float x, float y)
{
    switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    default: return x / y;
    }
}

/* Walk out-index space; calls body with element offsets into a and b. The
 * innermost dim is a tight loop. */
#define BCAST_LOOP(bc, BODY)                                                        \
    do {                                                                            \
        int _nd = (bc)->nd;                                                         \
        int64_t _inner = _nd ? (bc)->shape[_nd - 1] : 1;                            \
        int64_t _isa = _nd ? (bc)->sa[_nd - 1] : 0, _isb = _nd ? (bc)->sb[_nd - 1] : 0; \
        int64_t _total = 1;                                                         \
        for (int _d = 0; _d < _nd; _d++) _total *= (bc)->shape[_d];                 \
        int64_t _rows = _inner ? _total / _inner : 0;                               \
        int64_t _idx[SS_MAX_DIMS] = {0};                                            \
        for (int64_t _r = 0; _r < _rows; _r++) {                                    \
            int64_t _oa = 0, _ob = 0;                                               \
            for (int _d = 0; _d < _nd - 1; _d++) {                                  \
                _oa += _idx[_d] * (bc)->sa[_d];                                     \
                _ob += _idx[_d] * (bc)->sb[_d];                                     \
            }                                                                       \
            int64_t _oo = _r * _inner;                                              \
            for (int64_t _j = 0; _j < _inner; _j++) {                               \
                int64_t ia = _oa + _j * _isa, ib = _ob + _j * _isb, io = _oo + _j;  \
                BODY;                                                               \
            }                                                                       \
            for (int _d = _nd - 2; _d >= 0; _d--) {                                 \
                if (++_idx[_d] < (bc)->shape[_d]) break;                            \
                _idx[_d] = 0;                                                       \
            }                                                                       \
        }                                                                           \
    } while (0)

static void binary_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    int op = (int)n->i[0];
    const float *go = out->grad;
    bcast bc;
    make_bcast(a, b, &bc);
    float *ga = ss_req(a) ? ss_grad(g, a) : NULL;
    float *gb = ss_req(b) ? ss_grad(g, b) : NULL;
    if ((ss_req(a) && !ga) || (ss_req(b) && !gb)) return;
    const float *ad = a->data, *bd = b->data;
    int same = ss_shape_equal(a, b) && ss_shape_equal(a, out);
    if (same) {
        int64_t N = out->numel;
        switch (op) {
        case OP_ADD:
        case OP_SUB:
            if (ga) for (int64_t i = 0; i < N; i++) ga[i] += go[i];
            if (gb) {
                float s = op == OP_ADD ? 1.0f : -1.0f;
                for (int64_t i = 0; i < N; i++) gb[i] += s * go[i];
            }
            break;
        case OP_MUL:
            if (ga) for (int64_t i = 0; i < N; i++) ga[i] += go[i] * bd[i];
            if (gb) for (int64_t i = 0; i < N; i++) gb[i] += go[i] * ad[i];
            break;
        default:
            if (ga) for (int64_t i = 0; i < N; i++) ga[i] += go[i] / bd[i];
            if (gb) for (int64_t i = 0; i < N; i++) gb[i] -= go[i] * ad[i] / (bd[i] * bd[i]);
        }
        return;
    }
    switch (op) {
    case OP_ADD:
        BCAST_LOOP(&bc, { if (ga) ga[ia] += go[io]; if (gb) gb[ib] += go[io]; });
        break;
    case OP_SUB:
        BCAST_LOOP(&bc, { if (ga) ga[ia] += go[io]; if (gb) gb[ib] -= go[io]; });
        break;
    case OP_MUL:
        BCAST_LOOP(&bc, { if (ga) ga[ia] += go[io] * bd[ib]; if (gb) gb[ib] += go[io] * ad[ia]; });
        break;
    default:
        BCAST_LOOP(&bc, {
            if (ga) ga[ia] += go[io] / bd[ib];
            if (gb) gb[ib] -= go[io] * ad[ia] / (bd[ib] * bd[ib]);
        });
    }
}

static const char *bin_name[] = {"add", "sub", "mul", "div"};

static ss_tensor *binary(ss_graph *g, ss_tensor *a, ss_tensor *b, int op)
{
    SS_CHECK_IN2(g, a, b);
    a = ss_contiguous(g, a);
    b = ss_contiguous(g, b);
    if (!a || !b) return NULL;
    bcast bc;
    if (!make_bcast(a, b, &bc)) {
        char s1[64], s2[64];
        return ss_op_error(g, bin_name[op], "shapes %s and %s do not broadcast",
                           ss_shape_str(a, s1, sizeof s1), ss_shape_str(b, s2, sizeof s2));
    }
    ss_tensor *out = ss_new(g, bc.nd, bc.shape);
    if (!out) return NULL;
    float *o = out->data;
    const float *ad = a->data, *bd = b->data;
    int64_t N = out->numel;
    if (ss_shape_equal(a, b)) {
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) o[i] = apply_bin(op, ad[i], bd[i]);
    } else if (b->numel == 1 && a->numel == N) {
        float y = bd[0];
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) o[i] = apply_bin(op, ad[i], y);
    } else {
        BCAST_LOOP(&bc, { o[io] = apply_bin(op, ad[ia], bd[ib]); });
    }
    ss_tensor *in[2] = {a, b};
    ss_node *n = ss_record(g, bin_name[op], binary_backward, out, 2, in);
    if (n) n->i[0] = op;
    return out;
}

ss_tensor *ss_add(ss_graph *g, ss_tensor *a, ss_tensor *b) { return binary(g, a, b, OP_ADD); }
ss_tensor *ss_sub(ss_graph *g, ss_tensor *a, ss_tensor *b) { return binary(g, a, b, OP_SUB); }
ss_tensor *ss_mul(ss_graph *g, ss_tensor *a, ss_tensor *b) { return binary(g, a, b, OP_MUL); }
ss_tensor *ss_div(ss_graph *g, ss_tensor *a, ss_tensor *b) { return binary(g, a, b, OP_DIV); }

/* ---- unary ops -------------------------------------------------------------
 * Each: x [any] -> same shape. The backward uses the saved input or output. */
enum { U_SCALE, U_ADDS, U_RELU, U_GELU, U_SIGMOID, U_TANH, U_SQRT };

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT2PI 0.39894228040143267794f

static void unary_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *out = n->out;
    int fresh;
    const float *go = out->grad, *xd = x->data, *yd = out->data;
    float *gx = ss_grad_take(g, x, out, &fresh);
    if (!gx) return;
    int64_t N = x->numel;
    float s = n->f[0];
    if (fresh) {
        /* First writer of dx: store instead of zero-fill + accumulate. */
        switch ((int)n->i[0]) {
        case U_SCALE:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
            for (int64_t i = 0; i < N; i++) gx[i] = s * go[i];
            return;
        case U_ADDS:
            if (gx != go) memcpy(gx, go, (size_t)N * sizeof(float));
            return;
        case U_RELU:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
            for (int64_t i = 0; i < N; i++) gx[i] = xd[i] > 0.0f ? go[i] : 0.0f;
            return;
        case U_GELU:
#pragma omp parallel for simd schedule(static) if (parallel : N > PAR_MIN / 8)
            for (int64_t i = 0; i < N; i++) {
                float v = xd[i];
                float cdf = 0.5f * (1.0f + ss_erf_fast(v * INV_SQRT2));
                float pdf = INV_SQRT2PI * ss_exp_nonpos(-0.5f * v * v);
                gx[i] = go[i] * (cdf + v * pdf);
            }
            return;
        case U_SIGMOID:
            for (int64_t i = 0; i < N; i++) gx[i] = go[i] * yd[i] * (1.0f - yd[i]);
            return;
        case U_TANH:
            for (int64_t i = 0; i < N; i++) gx[i] = go[i] * (1.0f - yd[i] * yd[i]);
            return;
        case U_SQRT:
            for (int64_t i = 0; i < N; i++) gx[i] = yd[i] > 0.0f ? go[i] * 0.5f / yd[i] : 0.0f;
            return;
        }
    }
    switch ((int)n->i[0]) {
    case U_SCALE:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) gx[i] += s * go[i];
        break;
    case U_ADDS:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) gx[i] += go[i];
        break;
    case U_RELU:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) gx[i] += xd[i] > 0.0f ? go[i] : 0.0f;
        break;
    case U_GELU:
        /* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
#pragma omp parallel for simd schedule(static) if (parallel : N > PAR_MIN / 8)
        for (int64_t i = 0; i < N; i++) {
            float v = xd[i];
            float cdf = 0.5f * (1.0f + ss_erf_fast(v * INV_SQRT2));
            float pdf = INV_SQRT2PI * ss_exp_nonpos(-0.5f * v * v);
            gx[i] += go[i] * (cdf + v * pdf);
        }
        break;
    case U_SIGMOID:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) gx[i] += go[i] * yd[i] * (1.0f - yd[i]);
        break;
    case U_TANH:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) gx[i] += go[i] * (1.0f - yd[i] * yd[i]);
        break;
    case U_SQRT:
        for (int64_t i = 0; i < N; i++) gx[i] += yd[i] > 0.0f ? go[i] * 0.5f / yd[i] : 0.0f;
        break;
    }
}

static const char *un_name[] = {"scale", "add_scalar", "relu", "gelu", "sigmoid", "tanh", "sqrt"};

static ss_tensor *unary(ss_graph *g, ss_tensor *x, int op, float s)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    ss_tensor *out = ss_new_like(g, x);
    if (!out) return NULL;
    float *o = out->data;
    const float *xd = x->data;
    int64_t N = x->numel;
    switch (op) {
    case U_SCALE:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) o[i] = s * xd[i];
        break;
    case U_ADDS:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) o[i] = xd[i] + s;
        break;
    case U_RELU:
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
        for (int64_t i = 0; i < N; i++) o[i] = xd[i] > 0.0f ? xd[i] : 0.0f;
        break;
    case U_GELU:
#pragma omp parallel for simd schedule(static) if (parallel : N > PAR_MIN / 8)
        for (int64_t i = 0; i < N; i++) o[i] = 0.5f * xd[i] * (1.0f + ss_erf_fast(xd[i] * INV_SQRT2));
        break;
    case U_SIGMOID:
#pragma omp parallel for schedule(static) if (N > PAR_MIN / 8)
        for (int64_t i = 0; i < N; i++) {
            float v = xd[i];
            o[i] = v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
        }
        break;
    case U_TANH:
#pragma omp parallel for schedule(static) if (N > PAR_MIN / 8)
        for (int64_t i = 0; i < N; i++) o[i] = tanhf(xd[i]);
        break;
    case U_SQRT:
        for (int64_t i = 0; i < N; i++) o[i] = xd[i] > 0.0f ? sqrtf(xd[i]) : 0.0f;
        break;
    }
    ss_node *n = ss_record(g, un_name[op], unary_backward, out, 1, &x);
    if (n) {
        n->i[0] = op;
        n->f[0] = s;
    }
    return out;
}

ss_tensor *ss_scale(ss_graph *g, ss_tensor *x, float s) { return unary(g, x, U_SCALE, s); }
ss_tensor *ss_add_scalar(ss_graph *g, ss_tensor *x, float s) { return unary(g, x, U_ADDS, s); }
ss_tensor *ss_relu(ss_graph *g, ss_tensor *x) { return unary(g, x, U_RELU, 0); }
ss_tensor *ss_gelu(ss_graph *g, ss_tensor *x) { return unary(g, x, U_GELU, 0); }
ss_tensor *ss_sigmoid(ss_graph *g, ss_tensor *x) { return unary(g, x, U_SIGMOID, 0); }
ss_tensor *ss_tanh(ss_graph *g, ss_tensor *x) { return unary(g, x, U_TANH, 0); }
ss_tensor *ss_sqrt(ss_graph *g, ss_tensor *x) { return unary(g, x, U_SQRT, 0); }

/* ---- dropout -------------------------------------------------------------------
 * Inverted dropout: keep with prob 1-p, scale kept values by 1/(1-p). The mask
 * comes from the graph's counter-based stream: element i of this op uses
 * Philox block (key, base + i/4), so it does not depend on thread count. */
#include "selfsup/rng.h"

static void dropout_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    float *gx = ss_grad(g, x);
    if (!gx) return;
    const float *m = n->saved, *go = n->out->grad;
    for (int64_t i = 0; i < x->numel; i++) gx[i] += go[i] * m[i];
}

ss_tensor *ss_dropout(ss_graph *g, ss_tensor *x, float p)
{
    SS_CHECK_IN1(g, x);
    if (p < 0.0f || p >= 1.0f) return ss_op_error(g, "dropout", "p=%g outside [0,1)", (double)p);
    if (p == 0.0f || !ss_graph_training(g)) return x;
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    ss_tensor *out = ss_new_like(g, x);
    float *mask = ss_scratch(g, x->numel);
    if (!out || !mask) return NULL;
    uint64_t key = ss_graph_next_random(g);
    float scale = 1.0f / (1.0f - p);
    uint32_t thresh = (uint32_t)((double)p * 4294967296.0);
    int64_t N = x->numel;
#pragma omp parallel for schedule(static) if (N > PAR_MIN)
    for (int64_t b = 0; b < (N + 3) / 4; b++) {
        uint32_t r[4];
        ss_philox4x32(key, (uint64_t)b, r);
        for (int k = 0; k < 4 && b * 4 + k < N; k++) {
            int64_t i = b * 4 + k;
            mask[i] = r[k] >= thresh ? scale : 0.0f;
            out->data[i] = x->data[i] * mask[i];
        }
    }
    ss_node *n = ss_record(g, "dropout", dropout_backward, out, 1, &x);
    if (n) n->saved = mask;
    return out;
}
