/* The pretext-task table and the building blocks the methods share. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "selfsup/dist.h"
#include "ssl/ssl_internal.h"

static const ss_method *const methods[] = {
    &ss_method_rotation, &ss_method_simclr, &ss_method_mae, &ss_method_byol, &ss_method_vicreg,
};

const char *ss_method_names(void) { return "rotation, simclr, mae, byol, vicreg"; }

const ss_method *ss_method_find(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i]->name, name)) return methods[i];
    ss_seterr(SS_ERR_INVALID, "--method '%s': expected one of %s", name, ss_method_names());
    return NULL;
}

/* ---- MLP head -------------------------------------------------------------- */
ss_status ss_mlp_init(ss_mlp *m, ss_params *p, const char *name, int in, int hidden, int out)
{
    char n[256];
    ss_status s;
    snprintf(n, sizeof n, "%s.fc1", name);
    if ((s = ss_linear_init(&m->fc1, p, n, in, hidden, 1))) return s;
    snprintf(n, sizeof n, "%s.fc2", name);
    if ((s = ss_linear_init(&m->fc2, p, n, hidden, out, 1))) return s;
    int64_t sh[1] = {hidden};
    snprintf(n, sizeof n, "%s.bn1.weight", name);
    m->g = ss_params_add(p, n, 1, sh, SS_T_PARAM);
    snprintf(n, sizeof n, "%s.bn1.bias", name);
    m->b = ss_params_add(p, n, 1, sh, SS_T_PARAM);
    snprintf(n, sizeof n, "%s.bn1.running_mean", name);
    m->rm = ss_params_add(p, n, 1, sh, SS_T_BUFFER);
    snprintf(n, sizeof n, "%s.bn1.running_var", name);
    m->rv = ss_params_add(p, n, 1, sh, SS_T_BUFFER);
    if (!m->g || !m->b || !m->rm || !m->rv) return SS_ERR_INVALID;
    ss_params_set_rule(p, m->g, SS_RULE_ONES, 0);
    ss_params_set_rule(p, m->rv, SS_RULE_ONES, 0);
    return SS_OK;
}

/* x [n,in] -> [n,out] */
ss_tensor *ss_mlp_forward(ss_graph *g, const ss_mlp *m, ss_tensor *x)
{
    ss_tensor *h = ss_linear_forward(g, &m->fc1, x);
    h = ss_relu(g, ss_batch_norm(g, h, m->g, m->b, m->rm, m->rv, 0.1f, 1e-5f));
    return ss_linear_forward(g, &m->fc2, h);
}

/* ---- data parallel: global two-view embeddings ---------------------------------- */
ss_tensor *ss_ssl_gather_views(ss_graph *g, ss_tensor *z, int64_t n)
{
    int W = ss_dist_world();
    if (!z || W <= 1) return z;
    ss_tensor *all = ss_dist_allgather_rows(g, z); /* [W*2n, D]: rank r's view 0 rows, then its view 1 rows */
    if (!all) return NULL;
    if (all->shape[0] != 2 * n * W)
        return ss_op_error(g, "gather_views", "gathered %lld rows, expected %d ranks x 2 views x %lld",
                           (long long)all->shape[0], W, (long long)n);
    int32_t *rows = ss_scratch_bytes(g, (size_t)(2 * n * W) * sizeof(int32_t));
    if (!rows) return NULL;
    int64_t k = 0;
    for (int v = 0; v < 2; v++)
        for (int r = 0; r < W; r++)
            for (int64_t i = 0; i < n; i++) rows[k++] = (int32_t)(r * 2 * n + v * n + i);
    return ss_index_select(g, all, 0, rows, k);
}

/* ---- NT-Xent ------------------------------------------------------------------
 * z [2n,D]; positives (i, i+n). L = mean_i -log softmax_j!=i(sim_ij / T)[pos(i)]
 * with sim the cosine similarity (Chen et al. 2020). */
ss_tensor *ss_ntxent(ss_graph *g, ss_tensor *z, float temperature)
{
    if (!z) return NULL;
    int64_t N2 = z->shape[0];
    if (N2 % 2) return ss_op_error(g, "ntxent", "needs an even number of embeddings, got %lld", (long long)N2);
    int64_t n = N2 / 2;
    ss_tensor *sim = ss_scale(g, ss_cosine_sim(g, z, z, 1e-8f), 1.0f / temperature);
    float *mask = ss_scratch_zero(g, N2 * N2);
    int32_t *tgt = ss_scratch_bytes(g, (size_t)N2 * sizeof(int32_t));
    if (!mask || !tgt) return NULL;
    for (int64_t i = 0; i < N2; i++) {
        mask[i * N2 + i] = -1e9f; /* a sample is not its own negative */
        tgt[i] = (int32_t)(i < n ? i + n : i - n);
    }
    ss_tensor *logits = ss_add(g, sim, ss_wrap(g, mask, 2, (int64_t[]){N2, N2}));
    return ss_cross_entropy(g, logits, tgt, 0.0f);
}

/* ---- VICReg (Bardes et al. 2022) ------------------------------------------------
 * inv = mse(z1,z2); var = mean_d relu(1 - sqrt(var_d + 1e-4)) summed over both
 * branches (averaged per branch as the reference code: (v1+v2)/2);
 * cov = sum_{i!=j} C_ij^2 / D per branch, summed over both branches. */
static ss_tensor *vic_var_cov(ss_graph *g, ss_tensor *z, ss_tensor **var_out)
{
    int64_t n = z->shape[0], D = z->shape[1];
    ss_tensor *zc = ss_sub(g, z, ss_mean(g, z, 0, 1));
    ss_tensor *var = ss_scale(g, ss_sum(g, ss_mul(g, zc, zc), 0, 0), 1.0f / (float)(n - 1));
    ss_tensor *std = ss_sqrt(g, ss_add_scalar(g, var, 1e-4f));
    *var_out = ss_mean_all(g, ss_relu(g, ss_add_scalar(g, ss_scale(g, std, -1.0f), 1.0f)));
    ss_tensor *cov = ss_scale(g, ss_matmul(g, zc, zc, 1, 0), 1.0f / (float)(n - 1)); /* [D,D] */
    float *off = ss_scratch(g, D * D);
    if (!off) return NULL;
    for (int64_t i = 0; i < D * D; i++) off[i] = (i / D == i % D) ? 0.0f : 1.0f;
    ss_tensor *c2 = ss_mul(g, ss_mul(g, cov, cov), ss_wrap(g, off, 2, (int64_t[]){D, D}));
    return ss_scale(g, ss_sum_all(g, c2), 1.0f / (float)D);
}

ss_tensor *ss_vicreg_loss(ss_graph *g, ss_tensor *z1, ss_tensor *z2, float terms[3])
{
    if (!z1 || !z2) return NULL;
    if (z1->shape[0] < 2) return ss_op_error(g, "vicreg", "needs at least 2 samples per batch");
    ss_tensor *inv = ss_mse(g, z1, z2);
    ss_tensor *v1, *v2;
    ss_tensor *c1 = vic_var_cov(g, z1, &v1), *c2 = vic_var_cov(g, z2, &v2);
    ss_tensor *var = ss_scale(g, ss_add(g, v1, v2), 0.5f);
    ss_tensor *cov = ss_add(g, c1, c2);
    if (!inv || !var || !cov) return NULL;
    if (terms) {
        terms[0] = inv->data[0];
        terms[1] = var->data[0];
        terms[2] = cov->data[0];
    }
    return ss_add(g, ss_add(g, ss_scale(g, inv, 25.0f), ss_scale(g, var, 25.0f)), cov);
}

/* ---- MAE masking and patches ------------------------------------------------------- */
int ss_mae_random_mask(int64_t n, int L, float ratio, uint64_t seed, uint64_t stream, int32_t *keep_idx, float *mask)
{
    return ss_mae_random_mask_at(n, 0, L, ratio, seed, stream, keep_idx, mask);
}

int ss_mae_random_mask_at(int64_t n, int64_t i0, int L, float ratio, uint64_t seed, uint64_t stream,
                          int32_t *keep_idx, float *mask)
{
    int keep = (int)((float)L * (1.0f - ratio));
    if (keep < 1) keep = 1;
    int32_t perm[4096];
    if (L > 4096) return -1;
    for (int64_t i = 0; i < n; i++) {
        ss_rng r;
        ss_rng_seed(&r, seed, stream * 1000003u + (uint64_t)(i0 + i));
        for (int j = 0; j < L; j++) perm[j] = j;
        ss_rng_shuffle_i32(&r, perm, L);
        /* keep the first `keep` of the permutation, sorted */
        for (int j = 0; j < L; j++) mask[i * L + j] = 1.0f;
        for (int j = 0; j < keep; j++) mask[i * L + perm[j]] = 0.0f;
        int k = 0;
        for (int j = 0; j < L; j++)
            if (mask[i * L + j] == 0.0f) keep_idx[i * keep + k++] = j;
    }
    return keep;
}

void ss_patchify(const float *img, int64_t n, int c, int h, int w, int p, float *out)
{
    int gh = h / p, gw = w / p, pd = p * p * c;
    for (int64_t i = 0; i < n; i++)
        for (int a = 0; a < gh; a++)
            for (int b = 0; b < gw; b++) {
                float *dst = out + ((i * gh + a) * gw + b) * pd;
                for (int y = 0; y < p; y++)
                    for (int x = 0; x < p; x++)
                        for (int ch = 0; ch < c; ch++)
                            dst[(y * p + x) * c + ch] = img[((i * c + ch) * h + a * p + y) * w + b * p + x];
            }
}
