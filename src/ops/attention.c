/* Scaled dot-product multi-head attention with heads packed in the last dim.
 *
 *   q [B,Tq,H*Dh], k [B,Tk,H*Dh], v [B,Tk,H*Dh], key_mask [B,Tk] or NULL
 *   out[b,t,h*Dh:(h+1)*Dh] = softmax(q_h k_h^T / sqrt(Dh), masked) v_h
 *
 * key_mask is a keep-mask: 1 keeps key j of batch item b, 0 drops it (its
 * probability is exactly 0). A query row whose keys are all dropped gets
 * probability 0 everywhere and outputs zeros (not NaN).
 *
 * Fast path: one OpenMP task per (b,h) (static schedule), each doing two
 * strided SGEMMs straight on the packed layout (lda = row stride, no
 * transposes materialised) and a softmax in place. The probabilities P are
 * saved for backward (B*H*Tq*Tk floats from the arena):
 *   dV = P^T dO;  dP = dO V^T;  dS = P o (dP - rowsum(dP o P));
 *   dQ = dS K / sqrt(Dh);  dK = dS^T Q / sqrt(Dh).
 * Each (b,h) writes a disjoint window of out/dQ/dK/dV, so the threads never
 * touch the same element and results do not depend on the thread count
 * (BLAS runs single-threaded inside the parallel region).
 *
 * Inputs that are strided views with a contiguous last dim (the q/k/v slices
 * of one fused qkv projection, or a [T,B,C] tensor permuted to [B,T,C]) are
 * used in place, and their gradients are written straight into the base's
 * gradient window. Views of the same storage that overlap without being the
 * same tensor are copied first, so no two (b,h) tasks write one gradient
 * element.
 *
 * ss_attention_ref below is the naive triple-loop version (double
 * accumulation) kept for the tests. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/graph_internal.h"
#include "ops/nn_internal.h"

/* Layout of one operand: element (b,t,c) is at data[b*sb + t*st + c]. */
typedef struct attn_lay {
    int64_t sb, st;
} attn_lay;

static const ss_tensor *root_of(const ss_tensor *t) { return t->base ? t->base : t; }
static int64_t offset_of(const ss_tensor *t) { return t->base ? t->offset : 0; }

/* Can x be used in place? Fills its layout. */
static int layout_ok(const ss_tensor *x, attn_lay *l)
{
    int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    if (B * T == 0) { /* nothing is read or written */
        l->st = C;
        l->sb = T * C;
        return 1;
    }
    if (x->stride[2] != 1 && C > 1) return 0;
    int64_t st = T > 1 ? x->stride[1] : C;
    int64_t sb = B > 1 ? x->stride[0] : T * st;
    if (st < C || sb < C) return 0;
    if (!(sb >= T * st || st >= B * sb)) return 0; /* rows of different b must not interleave */
    l->sb = sb;
    l->st = st;
    return 1;
}

/* May x and y (both usable in place) have their gradients written by
 * different (b,h) tasks without two tasks touching one element? */
static int pair_ok(const ss_tensor *x, const attn_lay *lx, const ss_tensor *y, const attn_lay *ly)
{
    if (x == y || root_of(x) != root_of(y)) return 1;
    /* Same storage: accept only column windows of the same rows (qkv split). */
    int64_t C = x->shape[2], st = lx->st;
    if (lx->st != ly->st || lx->sb != ly->sb || st <= 0 || lx->sb % st) return 0;
    int64_t ox = offset_of(x), oy = offset_of(y);
    if (ox / st != oy / st) return 0;
    int64_t cx = ox % st, cy = oy % st;
    if (cx + C > st || cy + C > st) return 0;
    return cx + C <= cy || cy + C <= cx;
}

/* n->i: 0 B, 1 Tq, 2 Tk, 3 H, 4 Dh; 5..7 unused. n->f: 0 scale.
 * saved: attn_saved. */
typedef struct attn_saved {
    float *P;            /* [B,H,Tq,Tk] */
    attn_lay lq, lk, lv; /* operand layouts */
} attn_saved;

static void attention_backward(ss_graph *g, ss_node *n)
{
    ss_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    const attn_saved *s = n->saved;
    int64_t B = n->i[0], Tq = n->i[1], Tk = n->i[2], H = n->i[3], Dh = n->i[4], HD = H * Dh;
    float scale = n->f[0];
    float *gq = ss_req(q) ? ss_grad(g, q) : NULL;
    float *gk = ss_req(k) ? ss_grad(g, k) : NULL;
    float *gv = ss_req(v) ? ss_grad(g, v) : NULL;
    if ((ss_req(q) && !gq) || (ss_req(k) && !gk) || (ss_req(v) && !gv)) return;
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
#endif
    float *scr = NULL;
    if (gq || gk) {
        scr = ss_scratch(g, (int64_t)nthr * Tq * Tk);
        if (!scr) return;
    }
    const float *go = n->out->grad;
    const float *qd = q->data, *kd = k->data, *vd = v->data;
    attn_lay lq = s->lq, lk = s->lk, lv = s->lv;
    int64_t BH = B * H;
#pragma omp parallel for schedule(static) if (BH > 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / H, h = bh % H;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const float *P = s->P + bh * Tq * Tk;
        const float *dO = go + b * Tq * HD + h * Dh;
        int64_t oq = b * lq.sb + h * Dh, ok = b * lk.sb + h * Dh, ov = b * lv.sb + h * Dh;
        if (gv) /* dV[Tk,Dh] += P^T[Tk,Tq] dO[Tq,Dh] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Tk, (int)Dh, (int)Tq, 1.0f, P, (int)Tk, dO,
                        (int)HD, 1.0f, gv + ov, (int)lv.st);
        if (!gq && !gk) continue;
        float *dS = scr + (int64_t)tid * Tq * Tk;
        /* dP[Tq,Tk] = dO[Tq,Dh] V^T[Dh,Tk] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)Dh, 1.0f, dO, (int)HD, vd + ov,
                    (int)lv.st, 0.0f, dS, (int)Tk);
        for (int64_t i = 0; i < Tq; i++) {
            const float *pr = P + i * Tk;
            float *dr = dS + i * Tk;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < Tk; j++) dot += dr[j] * pr[j];
#pragma omp simd
            for (int64_t j = 0; j < Tk; j++) dr[j] = pr[j] * (dr[j] - dot);
        }
        if (gq) /* dQ[Tq,Dh] += scale dS[Tq,Tk] K[Tk,Dh] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, (int)Dh, (int)Tk, scale, dS, (int)Tk,
                        kd + ok, (int)lk.st, 1.0f, gq + oq, (int)lq.st);
        if (gk) /* dK[Tk,Dh] += scale dS^T[Tk,Tq] Q[Tq,Dh] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Tk, (int)Dh, (int)Tq, scale, dS, (int)Tk,
                        qd + oq, (int)lq.st, 1.0f, gk + ok, (int)lk.st);
    }
}

/* Masked softmax of one row in place; keep = mask row or NULL. A row with
 * no kept key becomes all zeros. */
static inline void masked_softmax_row(float *s, const float *keep, int64_t Tk)
{
    float m = -INFINITY, sum = 0.0f;
    if (keep) {
        int kept = 0;
#pragma omp simd reduction(+ : kept)
        for (int64_t j = 0; j < Tk; j++) kept += keep[j] != 0.0f;
        m = ss_row_max_masked(s, keep, Tk);
        if (!kept) {
            memset(s, 0, (size_t)Tk * sizeof(float));
            return;
        }
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < Tk; j++) {
            float e = ss_exp_nonpos(s[j] - m);
            s[j] = keep[j] != 0.0f ? e : 0.0f;
            sum += s[j];
        }
    } else {
        m = ss_row_max(s, Tk);
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < Tk; j++) {
            s[j] = ss_exp_nonpos(s[j] - m);
            sum += s[j];
        }
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < Tk; j++) s[j] *= inv;
}

/* A copy of x that is certainly new storage (ss_contiguous returns x itself
 * when it is already contiguous). */
static ss_tensor *private_copy(ss_graph *g, ss_tensor *x)
{
    return ss_tensor_is_contiguous(x) ? ss_scale(g, x, 1.0f) : ss_contiguous(g, x);
}

ss_tensor *ss_attention(ss_graph *g, ss_tensor *q, ss_tensor *k, ss_tensor *v, int heads, const float *key_mask)
{
    {
        ss_tensor *in3[3] = {q, k, v};
        if (ss_bad_inputs(g, 3, in3)) return NULL;
    }
    char s1[64], s2[64], s3[64];
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] ||
        k->shape[1] != v->shape[1] || k->shape[2] != q->shape[2] || v->shape[2] != q->shape[2])
        return ss_op_error(g, "attention", "expected q [B,Tq,C], k and v [B,Tk,C]; got q %s, k %s, v %s",
                           ss_shape_str(q, s1, sizeof s1), ss_shape_str(k, s2, sizeof s2),
                           ss_shape_str(v, s3, sizeof s3));
    int64_t B = q->shape[0], Tq = q->shape[1], Tk = k->shape[1], HD = q->shape[2];
    if (heads < 1 || HD % heads || HD == 0)
        return ss_op_error(g, "attention", "width %lld is not a positive multiple of heads=%d", (long long)HD, heads);
    if (Tk < 1) return ss_op_error(g, "attention", "no keys (Tk=0)");
    int64_t H = heads, Dh = HD / H;
    if (key_mask)
        for (int64_t i = 0; i < B * Tk; i++)
            if (key_mask[i] != 0.0f && key_mask[i] != 1.0f)
                return ss_op_error_code(g, SS_ERR_RANGE, "attention",
                                        "key_mask[%lld,%lld] = %g; expected 1 (keep) or 0 (drop)",
                                        (long long)(i / Tk), (long long)(i % Tk), (double)key_mask[i]);
    /* Operand layouts: use strided views in place when safe, else copy. */
    attn_lay lq, lk, lv;
    if (!layout_ok(q, &lq) && !((q = ss_contiguous(g, q)) && layout_ok(q, &lq))) goto bad_layout;
    if (!layout_ok(k, &lk) && !((k = ss_contiguous(g, k)) && layout_ok(k, &lk))) goto bad_layout;
    if (!layout_ok(v, &lv) && !((v = ss_contiguous(g, v)) && layout_ok(v, &lv))) goto bad_layout;
    if (!pair_ok(q, &lq, k, &lk) && !((k = private_copy(g, k)) && layout_ok(k, &lk))) goto bad_layout;
    if ((!pair_ok(q, &lq, v, &lv) || !pair_ok(k, &lk, v, &lv)) && !((v = private_copy(g, v)) && layout_ok(v, &lv)))
        goto bad_layout;

    ss_tensor *out = ss_new3(g, B, Tq, HD);
    if (!out) return NULL;
    ss_tensor *in[3] = {q, k, v};
    int grad = ss_needs_grad(g, 3, in);
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
#endif
    /* With a tape the probabilities are kept per (b,h); without, each thread
     * reuses one Tq*Tk buffer. */
    float *Pbuf = grad ? ss_scratch(g, B * H * Tq * Tk) : ss_scratch(g, (int64_t)nthr * Tq * Tk);
    if (!Pbuf) return NULL;
    float scale = 1.0f / sqrtf((float)Dh);
    const float *qd = q->data, *kd = k->data, *vd = v->data;
    float *od = out->data;
    int64_t BH = B * H;
#pragma omp parallel for schedule(static) if (BH > 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / H, h = bh % H;
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *S = grad ? Pbuf + bh * Tq * Tk : Pbuf + (int64_t)tid * Tq * Tk;
        const float *Q = qd + b * lq.sb + h * Dh, *K = kd + b * lk.sb + h * Dh, *V = vd + b * lv.sb + h * Dh;
        if (Tq == 0) continue;
        /* S[Tq,Tk] = scale Q[Tq,Dh] K^T[Dh,Tk] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)Dh, scale, Q, (int)lq.st, K,
                    (int)lk.st, 0.0f, S, (int)Tk);
        const float *keep = key_mask ? key_mask + b * Tk : NULL;
        for (int64_t i = 0; i < Tq; i++) masked_softmax_row(S + i * Tk, keep, Tk);
        /* O[Tq,Dh] = P[Tq,Tk] V[Tk,Dh] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, (int)Dh, (int)Tk, 1.0f, S, (int)Tk, V,
                    (int)lv.st, 0.0f, od + b * Tq * HD + h * Dh, (int)HD);
    }
    ss_node *n = ss_record(g, "attention", attention_backward, out, 3, in);
    if (n) {
        attn_saved *sv = ss_scratch_bytes(g, sizeof *sv);
        if (!sv) return NULL;
        sv->P = Pbuf;
        sv->lq = lq;
        sv->lk = lk;
        sv->lv = lv;
        n->saved = sv;
        n->i[0] = B;
        n->i[1] = Tq;
        n->i[2] = Tk;
        n->i[3] = H;
        n->i[4] = Dh;
        n->f[0] = scale;
    }
    return out;
bad_layout: /* only reachable when a copy failed (its error is recorded) */
    if (ss_graph_status(g) == SS_OK) ss_op_error(g, "attention", "internal: operand layout not usable");
    return NULL;
}

/* ---- naive reference ----------------------------------------------------------
 * Contiguous q [B,Tq,H*Dh], k/v [B,Tk,H*Dh], mask [B,Tk] or NULL. Computes out;
 * when dout is given, also ACCUMULATES dq, dk, dv (each may be NULL). Triple
 * loops with double accumulation; for tests only. */
void ss_attention_ref(const float *q, const float *k, const float *v, const float *mask, int64_t B, int64_t Tq,
                      int64_t Tk, int64_t H, int64_t Dh, float *out, const float *dout, float *dq, float *dk,
                      float *dv)
{
    int64_t HD = H * Dh;
    double scale = 1.0 / sqrt((double)Dh);
    double *p = malloc((size_t)(2 * Tk + 1) * sizeof(double)), *dp = p ? p + Tk : NULL;
    if (!p) return;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const float *qi = q + (b * Tq + i) * HD + h * Dh;
                double m = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < Tk; j++) {
                    const float *kj = k + (b * Tk + j) * HD + h * Dh;
                    double s = 0.0;
                    for (int64_t d = 0; d < Dh; d++) s += (double)qi[d] * kj[d];
                    p[j] = s * scale;
                    if ((!mask || mask[b * Tk + j] != 0.0f) && p[j] > m) m = p[j];
                }
                for (int64_t j = 0; j < Tk; j++) {
                    int keep = !mask || mask[b * Tk + j] != 0.0f;
                    p[j] = keep && m > -INFINITY ? exp(p[j] - m) : 0.0;
                    sum += p[j];
                }
                for (int64_t j = 0; j < Tk; j++) p[j] = sum > 0 ? p[j] / sum : 0.0;
                float *oi = out + (b * Tq + i) * HD + h * Dh;
                for (int64_t d = 0; d < Dh; d++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < Tk; j++) acc += p[j] * v[(b * Tk + j) * HD + h * Dh + d];
                    oi[d] = (float)acc;
                }
                if (!dout) continue;
                const float *gi = dout + (b * Tq + i) * HD + h * Dh;
                double dot = 0.0;
                for (int64_t j = 0; j < Tk; j++) {
                    const float *vj = v + (b * Tk + j) * HD + h * Dh;
                    double acc = 0.0;
                    for (int64_t d = 0; d < Dh; d++) acc += (double)gi[d] * vj[d];
                    dp[j] = acc;
                    dot += acc * p[j];
                    if (dv)
                        for (int64_t d = 0; d < Dh; d++) dv[(b * Tk + j) * HD + h * Dh + d] += (float)(p[j] * gi[d]);
                }
                for (int64_t j = 0; j < Tk; j++) {
                    double ds = p[j] * (dp[j] - dot) * scale;
                    const float *kj = k + (b * Tk + j) * HD + h * Dh;
                    for (int64_t d = 0; d < Dh; d++) {
                        if (dq) dq[(b * Tq + i) * HD + h * Dh + d] += (float)(ds * kj[d]);
                        if (dk) dk[(b * Tk + j) * HD + h * Dh + d] += (float)(ds * qi[d]);
                    }
                }
            }
    free(p);
}
