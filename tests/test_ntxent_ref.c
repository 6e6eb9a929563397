/* NT-Xent (SimCLR loss, temperature 0.2) for a batch of 2 images x 2 views,
 * composed from the ops exactly as a pretext task would build it:
 *   sim = cosine_sim(z, z) / T; sim[i,i] -= 1e9 (ss_add with a constant);
 *   loss = cross_entropy(sim, positive index)
 * and checked against the same loss written out in double-precision loops,
 * against PyTorch's value for the same z, and by finite differences. */
#include "gradcheck.h"

#define NB 4
#define DIM 5
static const float TEMP = 0.2f;
/* rows: image 0 view 0, image 1 view 0, image 0 view 1, image 1 view 1 */
static const float Z[NB * DIM] = {0.5f,  -1.0f, 2.0f, 0.25f, 1.5f, -0.75f, 0.3f, 1.2f, -2.0f, 0.6f,
                                  0.4f,  -0.8f, 1.7f, 0.5f,  1.1f, -1.1f,  0.2f, 0.9f, -1.6f, 0.1f};
static const int32_t POS[NB] = {2, 3, 0, 1};

static ss_tensor *ntxent(ss_graph *g, ss_tensor **x, void *ctx)
{
    (void)ctx;
    static float diag[NB * NB];
    for (int i = 0; i < NB * NB; i++) diag[i] = (i / NB == i % NB) ? -1e9f : 0.0f;
    int64_t s[2] = {NB, NB};
    ss_tensor *sim = ss_scale(g, ss_cosine_sim(g, x[0], x[0], 1e-8f), 1.0f / TEMP);
    return ss_cross_entropy(g, ss_add(g, sim, ss_wrap(g, diag, 2, s)), POS, 0.0f);
}

/* The loss by hand: l_i = -s_{i,p(i)} + log sum_{j != i} exp(s_ij). */
static double ntxent_ref(const float *z)
{
    double zn[NB][DIM], loss = 0;
    for (int i = 0; i < NB; i++) {
        double n = 0;
        for (int d = 0; d < DIM; d++) n += (double)z[i * DIM + d] * z[i * DIM + d];
        n = sqrt(n);
        for (int d = 0; d < DIM; d++) zn[i][d] = z[i * DIM + d] / n;
    }
    for (int i = 0; i < NB; i++) {
        double s[NB], denom = 0;
        for (int j = 0; j < NB; j++) {
            s[j] = 0;
            for (int d = 0; d < DIM; d++) s[j] += zn[i][d] * zn[j][d];
            s[j] /= TEMP;
            if (j != i) denom += exp(s[j]);
        }
        loss += -s[POS[i]] + log(denom);
    }
    return loss / NB;
}

int main(void)
{
    ss_graph *g = ss_graph_new();
    int64_t sz[2] = {NB, DIM};
    ss_tensor *z = ss_new(g, 2, sz);
    memcpy(z->data, Z, sizeof Z);
    z->flags |= SS_T_REQUIRES_GRAD;
    ss_tensor *loss = ntxent(g, &z, NULL);
    CHECK(loss && loss->numel == 1);
    double ref = ntxent_ref(Z);
    CHECK_NEAR(loss->data[0], ref, 1e-6);
    CHECK_NEAR(loss->data[0], 0.0400025901992466, 1e-6); /* PyTorch, float64 */
    CHECK_OK(ss_backward(g, loss));
    /* PyTorch's gradient for two elements */
    CHECK_NEAR(z->grad[0], -0.01776515, 1e-6);
    CHECK_NEAR(z->grad[8], 0.01811615, 1e-6);
    ss_graph_free(g);

    /* A harder batch (views less alike): by hand vs ops, and finite differences. */
    float z2[NB * DIM];
    gc_fill(z2, NB * DIM, -1, 1, 77);
    g = ss_graph_new();
    ss_tensor *t2 = ss_wrap(g, z2, 2, sz);
    CHECK_NEAR(ntxent(g, &t2, NULL)->data[0], ntxent_ref(z2), 1e-5);
    ss_graph_free(g);
    gc_input in[1] = {{2, {NB, DIM}, z2, 1}};
    gradcheck("nt-xent", ntxent, NULL, 1, in, gc_default());
    TEST_MAIN_END();
}
