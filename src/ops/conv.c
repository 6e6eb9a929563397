/* 2-D convolution (NCHW), forward and backward, by im2col + CBLAS sgemm.
 *
 * The batch is processed in chunks of B images whose column matrix fits a
 * fixed budget (16 MB by default). For one chunk:
 *
 *   col [CK, B*P]   CK = C*kh*kw rows (c, ky, kx), P = Ho*Wo; column (b, oy, ox)
 *                   holds x[b, c, oy*s - pad + ky, ox*s - pad + kx] (0 outside)
 *   Y   [O, B*P]  = W [O, CK] · col            (one GEMM for the chunk)
 *   out [b, o, :] = Y[o, b*P : (b+1)*P] + bias[o]   (block copy)
 *
 * Backward, per chunk, with dYt [O, B*P] the chunk's dy in the same layout:
 *   db  += row sums of dYt
 *   dW  += dYt · col^T                   (col recomputed, not saved)
 *   dcol = W^T · dYt, then col2im adds dcol into dx.
 *
 * Determinism: every parallel loop writes disjoint outputs (im2col rows,
 * dx planes, bias entries) and sums in a fixed order; GEMM accumulates dW
 * chunk after chunk. Same thread count => same bits.
 *
 * A naive direct-loop reference (ss_conv2d_reference_*) is kept at the end of
 * this file; tests/test_grad_conv.c compares the fast path with it. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "core/graph_internal.h"
#include "selfsup/runtime.h"
#include "ops/conv_ref.h"

#define CONV_CHUNK_DEFAULT ((int64_t)4 << 20) /* floats in the column buffer (16 MB) */
#define PAR_MIN 32768                         /* elements below which threads do not pay */

static int64_t conv_chunk_floats = CONV_CHUNK_DEFAULT;

void ss_conv2d_set_chunk_floats(int64_t n) { conv_chunk_floats = n > 0 ? n : CONV_CHUNK_DEFAULT; }

typedef struct conv_geom {
    int64_t N, C, H, W;  /* input */
    int64_t O, kh, kw;   /* weight */
    int64_t s, p;        /* stride, zero padding */
    int64_t Ho, Wo, P;   /* output plane, P = Ho*Wo */
    int64_t CK;          /* C*kh*kw */
    int64_t B;           /* images per chunk */
} conv_geom;

/* First and one-past-last output coordinate whose input coordinate
 * o*s - p + k lies inside [0, n). */
static inline void valid_range(int64_t n, int64_t k, int64_t s, int64_t p, int64_t nout, int64_t *lo,
                               int64_t *hi)
{
    int64_t a = p - k; /* need o*s >= a */
    int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t b = n - 1 + p - k; /* need o*s <= b */
    int64_t h = b < 0 ? 0 : b / s + 1;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col[r, bi, P] for the B images starting at x (chunk start). */
static void im2col(const conv_geom *G, const float *x, int64_t B, float *col)
{
    const int64_t C = G->C, H = G->H, W = G->W, kh = G->kh, kw = G->kw, s = G->s, p = G->p;
    const int64_t Ho = G->Ho, Wo = G->Wo, P = G->P, CK = G->CK;
#pragma omp parallel for collapse(2) schedule(static) if (CK * B * P > PAR_MIN)
    for (int64_t r = 0; r < CK; r++)
        for (int64_t bi = 0; bi < B; bi++) {
            int64_t c = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
            const float *xp = x + (bi * C + c) * H * W;
            float *dst = col + (r * B + bi) * P;
            int64_t ylo, yhi, xlo, xhi;
            valid_range(H, ky, s, p, Ho, &ylo, &yhi);
            valid_range(W, kx, s, p, Wo, &xlo, &xhi);
            if (ylo > 0) memset(dst, 0, (size_t)(ylo * Wo) * sizeof(float));
            for (int64_t oy = ylo; oy < yhi; oy++) {
                const float *src = xp + (oy * s - p + ky) * W + kx - p;
                float *d = dst + oy * Wo;
                for (int64_t ox = 0; ox < xlo; ox++) d[ox] = 0.0f;
                if (s == 1) {
                    memcpy(d + xlo, src + xlo, (size_t)(xhi - xlo) * sizeof(float));
                } else {
                    for (int64_t ox = xlo; ox < xhi; ox++) d[ox] = src[ox * s];
                }
                for (int64_t ox = xhi; ox < Wo; ox++) d[ox] = 0.0f;
            }
            if (yhi < Ho) memset(dst + yhi * Wo, 0, (size_t)((Ho - yhi) * Wo) * sizeof(float));
        }
}

/* dx[bi, c] += the entries of dcol that came from it (one plane per task). */
static void col2im_add(const conv_geom *G, const float *dcol, int64_t B, float *dx)
{
    const int64_t C = G->C, H = G->H, W = G->W, kh = G->kh, kw = G->kw, s = G->s, p = G->p;
    const int64_t Ho = G->Ho, Wo = G->Wo, P = G->P;
#pragma omp parallel for collapse(2) schedule(static) if (G->CK * B * P > PAR_MIN)
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t c = 0; c < C; c++) {
            float *xp = dx + (bi * C + c) * H * W;
            for (int64_t ky = 0; ky < kh; ky++)
                for (int64_t kx = 0; kx < kw; kx++) {
                    int64_t r = (c * kh + ky) * kw + kx;
                    const float *src = dcol + (r * B + bi) * P;
                    int64_t ylo, yhi, xlo, xhi;
                    valid_range(H, ky, s, p, Ho, &ylo, &yhi);
                    valid_range(W, kx, s, p, Wo, &xlo, &xhi);
                    for (int64_t oy = ylo; oy < yhi; oy++) {
                        float *d = xp + (oy * s - p + ky) * W + kx - p;
                        const float *sr = src + oy * Wo;
                        if (s == 1) {
                            for (int64_t ox = xlo; ox < xhi; ox++) d[ox] += sr[ox];
                        } else {
                            for (int64_t ox = xlo; ox < xhi; ox++) d[ox * s] += sr[ox];
                        }
                    }
                }
        }
}

/* Fill geometry; returns 0 and records an error on bad arguments. */
static int conv_geometry(ss_graph *g, const ss_tensor *x, const ss_tensor *w, const ss_tensor *b, int stride,
                         int pad, conv_geom *G)
{
    char s1[64], s2[64];
    if (x->ndim != 4 || w->ndim != 4 || x->shape[1] != w->shape[1]) {
        ss_op_error(g, "conv2d", "input %s does not fit weight %s (expected x [N,C,H,W], w [O,C,kh,kw])",
                    ss_shape_str(x, s1, sizeof s1), ss_shape_str(w, s2, sizeof s2));
        return 0;
    }
    if (stride < 1 || pad < 0) {
        ss_op_error(g, "conv2d", "stride %d and padding %d (expected stride >= 1, padding >= 0)", stride, pad);
        return 0;
    }
    G->N = x->shape[0], G->C = x->shape[1], G->H = x->shape[2], G->W = x->shape[3];
    G->O = w->shape[0], G->kh = w->shape[2], G->kw = w->shape[3];
    G->s = stride, G->p = pad;
    if (G->kh < 1 || G->kw < 1 || G->H + 2 * G->p < G->kh || G->W + 2 * G->p < G->kw) {
        ss_op_error(g, "conv2d", "kernel %lldx%lld does not fit input %s with padding %d", (long long)G->kh,
                    (long long)G->kw, ss_shape_str(x, s1, sizeof s1), pad);
        return 0;
    }
    if (b && b->numel != G->O) {
        ss_op_error(g, "conv2d", "bias has %lld elements, expected %lld", (long long)b->numel, (long long)G->O);
        return 0;
    }
    G->Ho = (G->H + 2 * G->p - G->kh) / G->s + 1;
    G->Wo = (G->W + 2 * G->p - G->kw) / G->s + 1;
    G->P = G->Ho * G->Wo;
    G->CK = G->C * G->kh * G->kw;
    if (G->CK > INT_MAX || G->P > INT_MAX || G->O > INT_MAX || G->CK * G->P > ((int64_t)1 << 40)) {
        ss_op_error(g, "conv2d", "sizes too large (C*kh*kw = %lld, output plane %lld)", (long long)G->CK,
                    (long long)G->P);
        return 0;
    }
    int64_t per = G->CK * G->P;
    if (G->O * G->P > per) per = G->O * G->P; /* the Y buffer shares the budget's chunking */
    int64_t B = per ? conv_chunk_floats / per : G->N;
    if (B < 1) B = 1;
    if (B > G->N) B = G->N;
    while (B > 1 && B * G->P > INT_MAX) B /= 2;
    G->B = B;
    return 1;
}

static void conv_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
    conv_geom G;
    if (!conv_geometry(g, x, w, b, (int)n->i[0], (int)n->i[1], &G)) return;
    float *gx = ss_req(x) ? ss_grad(g, x) : NULL;
    float *gw = ss_req(w) ? ss_grad(g, w) : NULL;
    float *gb = (b && ss_req(b)) ? ss_grad(g, b) : NULL;
    if ((ss_req(x) && !gx) || (ss_req(w) && !gw) || (b && ss_req(b) && !gb)) return;
    const int64_t O = G.O, P = G.P, CK = G.CK, Bmax = G.B;
    float *dyt = ss_scratch(g, O * Bmax * P);
    float *col = (gw || gx) ? ss_scratch(g, CK * Bmax * P) : NULL;
    if (!dyt || ((gw || gx) && !col)) return;
    const float *gy = n->out->grad;
    ss_flops_add(2.0 * (double)G.N * (double)P * (double)O * (double)CK * ((gw != NULL) + (gx != NULL)));
    for (int64_t b0 = 0; b0 < G.N; b0 += Bmax) {
        int64_t B = G.N - b0 < Bmax ? G.N - b0 : Bmax;
        int64_t BP = B * P;
        /* dYt[o, bi, :] = dy[b0 + bi, o, :] */
#pragma omp parallel for collapse(2) schedule(static) if (O * BP > PAR_MIN)
        for (int64_t o = 0; o < O; o++)
            for (int64_t bi = 0; bi < B; bi++)
                memcpy(dyt + (o * B + bi) * P, gy + ((b0 + bi) * O + o) * P, (size_t)P * sizeof(float));
        if (gb) {
#pragma omp parallel for schedule(static) if (O * BP > PAR_MIN)
            for (int64_t o = 0; o < O; o++) {
                const float *r = dyt + o * BP;
                double acc = 0.0;
#pragma omp simd reduction(+ : acc)
                for (int64_t j = 0; j < BP; j++) acc += r[j];
                gb[o] += (float)acc;
            }
        }
        if (gw) {
            im2col(&G, x->data + b0 * G.C * G.H * G.W, B, col);
            /* dW[O, CK] += dYt[O, BP] · col[CK, BP]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)O, (int)CK, (int)BP, 1.0f, dyt, (int)BP,
                        col, (int)BP, 1.0f, gw, (int)CK);
        }
        if (gx) {
            /* dcol[CK, BP] = W[O, CK]^T · dYt[O, BP] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)CK, (int)BP, (int)O, 1.0f, w->data, (int)CK,
                        dyt, (int)BP, 0.0f, col, (int)BP);
            col2im_add(&G, col, B, gx + b0 * G.C * G.H * G.W);
        }
    }
}

ss_tensor *ss_conv2d(ss_graph *g, ss_tensor *x, ss_tensor *w, ss_tensor *b, int stride, int pad)
{
    SS_CHECK_IN2(g, x, w);
    x = ss_contiguous(g, x);
    w = ss_contiguous(g, w);
    ss_tensor *b_in = b;
    if (b) b = ss_contiguous(g, b);
    if (!x || !w || (b_in && !b)) return NULL;
    conv_geom G;
    if (!conv_geometry(g, x, w, b, stride, pad, &G)) return NULL;
    const int64_t O = G.O, P = G.P, CK = G.CK, Bmax = G.B;
    ss_tensor *out = ss_new4(g, G.N, O, G.Ho, G.Wo);
    if (!out) return NULL;
    if (G.N > 0) {
        float *col = ss_scratch(g, CK * Bmax * P);
        float *y = ss_scratch(g, O * Bmax * P);
        if (!col || !y) return NULL;
        const float *bias = b ? b->data : NULL;
        for (int64_t b0 = 0; b0 < G.N; b0 += Bmax) {
            int64_t B = G.N - b0 < Bmax ? G.N - b0 : Bmax;
            int64_t BP = B * P;
            im2col(&G, x->data + b0 * G.C * G.H * G.W, B, col);
            /* Y[O, BP] = W[O, CK] · col[CK, BP] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)O, (int)BP, (int)CK, 1.0f, w->data,
                        (int)CK, col, (int)BP, 0.0f, y, (int)BP);
            float *od = out->data + b0 * O * P;
#pragma omp parallel for collapse(2) schedule(static) if (O * BP > PAR_MIN)
            for (int64_t bi = 0; bi < B; bi++)
                for (int64_t o = 0; o < O; o++) {
                    const float *src = y + (o * B + bi) * P;
                    float *dst = od + (bi * O + o) * P;
                    float bv = bias ? bias[o] : 0.0f;
                    for (int64_t j = 0; j < P; j++) dst[j] = src[j] + bv;
                }
        }
    }
    ss_flops_add(2.0 * (double)G.N * (double)P * (double)O * (double)CK);
    ss_tensor *in[3] = {x, w, b};
    ss_node *n = ss_record(g, "conv2d", conv_backward, out, b ? 3 : 2, in);
    if (n) {
        n->i[0] = stride;
        n->i[1] = pad;
    }
    return out;
}

/* ---- reference (naive direct loops; used by tests) ------------------------- */
void ss_conv2d_reference_forward(const float *x, const float *w, const float *b, int64_t N, int64_t C,
                                 int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int stride,
                                 int pad, float *out)
{
    int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)x[((n * C + c) * H + iy) * W + ix] *
                                       w[((o * C + c) * kh + ky) * kw + kx];
                            }
                    out[((n * O + o) * Ho + oy) * Wo + ox] = (float)acc;
                }
}

void ss_conv2d_reference_backward(const float *x, const float *w, const float *dy, int64_t N, int64_t C,
                                  int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int stride,
                                  int pad, float *gx, float *gw, float *gb)
{
    int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    float d = dy[((n * O + o) * Ho + oy) * Wo + ox];
                    if (gb) gb[o] += d;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                int64_t xi = ((n * C + c) * H + iy) * W + ix, wi = ((o * C + c) * kh + ky) * kw + kx;
                                if (gx) gx[xi] += d * w[wi];
                                if (gw) gw[wi] += d * x[xi];
                            }
                }
}
