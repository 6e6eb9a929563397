/* Pooling over NCHW planes: max pool (argmax saved for backward), average
 * pool (count_include_pad = True), global average pool. Every loop runs in
 * parallel over the N*C planes (static schedule, one plane per task), so the
 * result does not depend on the thread count. */
#include <math.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <string.h>

#include "core/graph_internal.h"

#define PAR_MIN 32768 /* elements below which threads do not pay */

typedef struct pool_geom {
    int64_t planes, H, W, Ho, Wo, k, s, p;
} pool_geom;

static int pool_geometry(ss_graph *g, const char *op, const ss_tensor *x, int k, int s, int p, pool_geom *G)
{
    char s1[64];
    if (x->ndim != 4)
        return ss_op_error(g, op, "input %s is not [N,C,H,W]", ss_shape_str(x, s1, sizeof s1)), 0;
    if (k < 1 || s < 1 || p < 0 || p > k / 2 || k > 255)
        return ss_op_error(g, op, "kernel %d, stride %d, padding %d (expected 1 <= kernel <= 255, stride >= 1, "
                                  "0 <= padding <= kernel/2)", k, s, p), 0;
    G->planes = x->shape[0] * x->shape[1];
    G->H = x->shape[2], G->W = x->shape[3];
    G->k = k, G->s = s, G->p = p;
    if (G->H + 2 * p < k || G->W + 2 * p < k)
        return ss_op_error(g, op, "kernel %d does not fit input %s with padding %d", k,
                           ss_shape_str(x, s1, sizeof s1), p), 0;
    G->Ho = (G->H + 2 * p - k) / s + 1;
    G->Wo = (G->W + 2 * p - k) / s + 1;
    return 1;
}

/* ---- max pool ----------------------------------------------------------------
 * x [N,C,H,W] -> [N,C,Ho,Wo]; saved: uint16 window-local argmax (ky*k + kx)
 * per output. Padding acts as -inf; the first maximum in row-major window
 * order wins; a NaN wins over numbers (as PyTorch). */
static void maxpool_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    pool_geom G;
    if (!pool_geometry(g, "max_pool2d", x, (int)n->i[0], (int)n->i[1], (int)n->i[2], &G)) return;
    int fresh = 0;
    float *gx = ss_grad_fresh(g, x, &fresh); /* fresh: stored plane by plane below, no zero fill first */
    if (!gx) return;
    const float *gy = n->out->grad;
    const uint16_t *am = n->saved;
    const int64_t H = G.H, W = G.W, Ho = G.Ho, Wo = G.Wo, k = G.k, s = G.s, p = G.p;
    const int64_t HW = H * W, PO = Ho * Wo;
    /* 2x2 stride 2 windows that tile the plane: every dx entry is written once. */
    const int tiles = k == 2 && s == 2 && p == 0 && H == 2 * Ho && W == 2 * Wo;
#pragma omp parallel for schedule(static) if (G.planes * PO > PAR_MIN)
    for (int64_t pl = 0; pl < G.planes; pl++) {
        float *dx = gx + pl * HW;
        const float *dy = gy + pl * PO;
        const uint16_t *a = am + pl * PO;
        if (fresh && tiles) {
            for (int64_t oy = 0; oy < Ho; oy++) {
                float *r0 = dx + 2 * oy * W, *r1 = r0 + W;
                for (int64_t ox = 0; ox < Wo; ox++) {
                    int64_t j = oy * Wo + ox, w = a[j];
                    float d = dy[j];
                    r0[2 * ox] = w == 0 ? d : 0.0f;
                    r0[2 * ox + 1] = w == 1 ? d : 0.0f;
                    r1[2 * ox] = w == 2 ? d : 0.0f;
                    r1[2 * ox + 1] = w == 3 ? d : 0.0f;
                }
            }
            continue;
        }
        if (fresh) memset(dx, 0, (size_t)HW * sizeof(float));
        if (k == 2 && s == 2 && p == 0) {
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    int64_t j = oy * Wo + ox, w = a[j];
                    dx[(2 * oy + (w >> 1)) * W + 2 * ox + (w & 1)] += dy[j];
                }
        } else {
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    int64_t j = oy * Wo + ox, w = a[j];
                    int64_t iy = oy * s - p + w / k, ix = ox * s - p + w % k;
                    dx[iy * W + ix] += dy[j];
                }
        }
    }
}

/* 2x2 stride 2 window of rows r0, r1 (branch-free so it vectorises). The
 * window order is (0,0) (0,1) (1,0) (1,1); a later value wins only when
 * strictly greater, or NaN. */
#define MP2_BODY                                                                          \
    float v0 = r0[2 * ox], v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];  \
    float m = v0;                                                                         \
    int w = 0, t;                                                                         \
    t = (v1 > m) | (v1 != v1);                                                            \
    m = t ? v1 : m;                                                                       \
    w = t ? 1 : w;                                                                        \
    t = (v2 > m) | (v2 != v2);                                                            \
    m = t ? v2 : m;                                                                       \
    w = t ? 2 : w;                                                                        \
    t = (v3 > m) | (v3 != v3);                                                            \
    m = t ? v3 : m;                                                                       \
    w = t ? 3 : w;

static void maxpool2_row(const float *restrict r0, const float *restrict r1, float *restrict o,
                         uint16_t *restrict a, int64_t Wo)
{
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    /* 16 outputs at a time: deinterleave even/odd columns of both rows, then
     * the same compare sequence as MP2_BODY with masks (rows of 14 outputs
     * are too short for the compiler's vector loop). */
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int64_t ox = 0; ox < Wo; ox += 16) {
        int64_t nleft = Wo - ox < 16 ? Wo - ox : 16;
        __mmask16 mo = (__mmask16)((1u << nleft) - 1u);
        __mmask16 mlo = (__mmask16)(nleft >= 8 ? 0xFFFFu : (1u << (2 * nleft)) - 1u);
        __mmask16 mhi = (__mmask16)(nleft > 8 ? (1u << (2 * (nleft - 8))) - 1u : 0u);
        __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ox), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ox + 16);
        __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ox), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ox + 16);
        __m512 v0 = _mm512_permutex2var_ps(a0, ev, a1), v1 = _mm512_permutex2var_ps(a0, od, a1);
        __m512 v2 = _mm512_permutex2var_ps(b0, ev, b1), v3 = _mm512_permutex2var_ps(b0, od, b1);
        __m512 m = v0;
        __m512i w = _mm512_setzero_si512();
        __mmask16 t;
        t = _mm512_cmp_ps_mask(v1, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, t, v1);
        w = _mm512_mask_mov_epi32(w, t, _mm512_set1_epi32(1));
        t = _mm512_cmp_ps_mask(v2, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v2, v2, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, t, v2);
        w = _mm512_mask_mov_epi32(w, t, _mm512_set1_epi32(2));
        t = _mm512_cmp_ps_mask(v3, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v3, v3, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, t, v3);
        w = _mm512_mask_mov_epi32(w, t, _mm512_set1_epi32(3));
        _mm512_mask_storeu_ps(o + ox, mo, m);
        _mm256_mask_storeu_epi16(a + ox, mo, _mm512_cvtepi32_epi16(w));
    }
#else
#pragma omp simd
    for (int64_t ox = 0; ox < Wo; ox++) {
        MP2_BODY
        o[ox] = m;
        a[ox] = (uint16_t)w;
    }
#endif
}

static void maxpool2_row_noidx(const float *restrict r0, const float *restrict r1, float *restrict o, int64_t Wo)
{
#pragma omp simd
    for (int64_t ox = 0; ox < Wo; ox++) {
        MP2_BODY
        (void)w;
        o[ox] = m;
    }
}

ss_tensor *ss_max_pool2d(ss_graph *g, ss_tensor *x, int k, int s, int p)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    pool_geom G;
    if (!pool_geometry(g, "max_pool2d", x, k, s, p, &G)) return NULL;
    ss_tensor *out = ss_new4(g, x->shape[0], x->shape[1], G.Ho, G.Wo);
    if (!out) return NULL;
    const int64_t H = G.H, W = G.W, Ho = G.Ho, Wo = G.Wo, HW = H * W, PO = Ho * Wo;
    int want = ss_needs_grad(g, 1, &x);
    uint16_t *am = want ? ss_scratch_bytes(g, (size_t)(G.planes * PO) * sizeof(uint16_t) + 1) : NULL;
    if (want && !am) return NULL;
    const float *xd = x->data;
    float *od = out->data;
#pragma omp parallel for schedule(static) if (G.planes * PO > PAR_MIN)
    for (int64_t pl = 0; pl < G.planes; pl++) {
        const float *xp = xd + pl * HW;
        float *op = od + pl * PO;
        uint16_t *ap = am ? am + pl * PO : NULL;
        if (k == 2 && s == 2 && p == 0) {
            for (int64_t oy = 0; oy < Ho; oy++) {
                const float *r0 = xp + 2 * oy * W, *r1 = r0 + W;
                if (ap)
                    maxpool2_row(r0, r1, op + oy * Wo, ap + oy * Wo, Wo);
                else
                    maxpool2_row_noidx(r0, r1, op + oy * Wo, Wo);
            }
        } else {
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    float m = -INFINITY;
                    int64_t best = -1;
                    for (int64_t ky = 0; ky < k; ky++) {
                        int64_t iy = oy * s - p + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int64_t kx = 0; kx < k; kx++) {
                            int64_t ix = ox * s - p + kx;
                            if (ix < 0 || ix >= W) continue;
                            float v = xp[iy * W + ix];
                            if (best < 0 || v > m || isnan(v)) m = v, best = ky * k + kx;
                        }
                    }
                    op[oy * Wo + ox] = m;
                    if (ap) ap[oy * Wo + ox] = (uint16_t)best;
                }
        }
    }
    ss_node *n = ss_record(g, "max_pool2d", maxpool_backward, out, 1, &x);
    if (n) {
        n->i[0] = k;
        n->i[1] = s;
        n->i[2] = p;
        n->saved = am;
    }
    return out;
}

/* ---- average pool ------------------------------------------------------------
 * x [N,C,H,W] -> [N,C,Ho,Wo]; every window divides by k*k (padding counts as
 * zeros; with floor output size no window reaches past the padding). */
static void avgpool_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    pool_geom G;
    if (!pool_geometry(g, "avg_pool2d", x, (int)n->i[0], (int)n->i[1], (int)n->i[2], &G)) return;
    float *gx = ss_grad(g, x);
    if (!gx) return;
    const float *gy = n->out->grad;
    const int64_t H = G.H, W = G.W, Ho = G.Ho, Wo = G.Wo, k = G.k, s = G.s, p = G.p;
    const int64_t HW = H * W, PO = Ho * Wo;
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static) if (G.planes * PO > PAR_MIN)
    for (int64_t pl = 0; pl < G.planes; pl++) {
        float *dx = gx + pl * HW;
        const float *dy = gy + pl * PO;
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                float d = dy[oy * Wo + ox] * inv;
                for (int64_t ky = 0; ky < k; ky++) {
                    int64_t iy = oy * s - p + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int64_t kx = 0; kx < k; kx++) {
                        int64_t ix = ox * s - p + kx;
                        if (ix >= 0 && ix < W) dx[iy * W + ix] += d;
                    }
                }
            }
    }
}

ss_tensor *ss_avg_pool2d(ss_graph *g, ss_tensor *x, int k, int s, int p)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    pool_geom G;
    if (!pool_geometry(g, "avg_pool2d", x, k, s, p, &G)) return NULL;
    ss_tensor *out = ss_new4(g, x->shape[0], x->shape[1], G.Ho, G.Wo);
    if (!out) return NULL;
    const int64_t H = G.H, W = G.W, Ho = G.Ho, Wo = G.Wo, HW = H * W, PO = Ho * Wo;
    const float inv = 1.0f / (float)(k * k);
    const float *xd = x->data;
    float *od = out->data;
#pragma omp parallel for schedule(static) if (G.planes * PO > PAR_MIN)
    for (int64_t pl = 0; pl < G.planes; pl++) {
        const float *xp = xd + pl * HW;
        float *op = od + pl * PO;
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                float acc = 0.0f;
                for (int64_t ky = 0; ky < k; ky++) {
                    int64_t iy = oy * s - p + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int64_t kx = 0; kx < k; kx++) {
                        int64_t ix = ox * s - p + kx;
                        if (ix >= 0 && ix < W) acc += xp[iy * W + ix];
                    }
                }
                op[oy * Wo + ox] = acc * inv;
            }
    }
    ss_node *n = ss_record(g, "avg_pool2d", avgpool_backward, out, 1, &x);
    if (n) {
        n->i[0] = k;
        n->i[1] = s;
        n->i[2] = p;
    }
    return out;
}

/* ---- global average pool: [N,C,H,W] -> [N,C] --------------------------------- */
static void gap_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *x = n->in[0];
    int fresh = 0;
    float *gx = ss_grad_fresh(g, x, &fresh);
    if (!gx) return;
    const float *gy = n->out->grad;
    const int64_t planes = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    const float inv = HW ? 1.0f / (float)HW : 0.0f;
#pragma omp parallel for schedule(static) if (planes * HW > PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float d = gy[pl] * inv;
        float *dx = gx + pl * HW;
        if (fresh)
            for (int64_t j = 0; j < HW; j++) dx[j] = d;
        else
            for (int64_t j = 0; j < HW; j++) dx[j] += d;
    }
}

ss_tensor *ss_global_avg_pool(ss_graph *g, ss_tensor *x)
{
    SS_CHECK_IN1(g, x);
    x = ss_contiguous(g, x);
    if (!x) return NULL;
    char s1[64];
    if (x->ndim != 4 || x->shape[2] * x->shape[3] < 1)
        return ss_op_error(g, "global_avg_pool", "input %s is not [N,C,H,W] with H*W >= 1",
                           ss_shape_str(x, s1, sizeof s1));
    ss_tensor *out = ss_new2(g, x->shape[0], x->shape[1]);
    if (!out) return NULL;
    const int64_t planes = x->shape[0] * x->shape[1], HW = x->shape[2] * x->shape[3];
    const float *xd = x->data;
    float *od = out->data;
#pragma omp parallel for schedule(static) if (planes * HW > PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = xd + pl * HW;
        double acc = 0.0;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < HW; j++) acc += xp[j];
        od[pl] = (float)(acc / (double)HW);
    }
    ss_record(g, "global_avg_pool", gap_backward, out, 1, &x);
    return out;
}
