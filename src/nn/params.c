/* The parameter store: one block of trainable values, one of gradients, one
 * of buffers, and a table of tensors pointing into them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nn/params_internal.h"

typedef struct entry {
    ss_tensor t;
    char *name;
    int rule;
    float arg;
    float lr_scale;
} entry;

struct ss_params {
    entry *e;
    int n, cap;
    int finalized;
    float *values, *grads, *buffers;
    int64_t nvalues, nbuffers;
};

ss_params *ss_params_new(void) { return calloc(1, sizeof(ss_params)); }

void ss_params_free(ss_params *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->e[i].name);
    free(p->e);
    free(p->values);
    free(p->grads);
    free(p->buffers);
    free(p);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

ss_tensor *ss_params_add(ss_params *p, const char *name, int ndim, const int64_t *shape, int flags)
{
    if (p->finalized) {
        ss_seterr(SS_ERR_INVALID, "params: '%s' registered after finalize", name);
        return NULL;
    }
    if (ndim < 0 || ndim > SS_MAX_DIMS) {
        ss_seterr(SS_ERR_INVALID, "params: '%s' has %d dims", name, ndim);
        return NULL;
    }
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i].name, name) == 0) {
            ss_seterr(SS_ERR_INVALID, "params: duplicate name '%s'", name);
            return NULL;
        }
    /* Entries hold the tensor structs by value: callers keep pointers, so
     * the table must not move: grow by allocating a fixed large table once. */
    if (p->n == p->cap) {
        if (p->cap) {
            ss_seterr(SS_ERR_NOMEM, "params: more than %d tensors", p->cap);
            return NULL;
        }
        p->cap = 4096;
        p->e = calloc((size_t)p->cap, sizeof *p->e);
        if (!p->e) {
            p->cap = 0;
            ss_seterr(SS_ERR_NOMEM, "params: out of memory");
            return NULL;
        }
    }
    entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return NULL;
    ss_tensor_set_shape(&e->t, ndim, shape);
    e->t.name = e->name;
    e->t.flags = flags & (SS_T_PARAM | SS_T_BUFFER | SS_T_NO_DECAY);
    if (e->t.flags & SS_T_PARAM) {
        e->t.flags |= SS_T_REQUIRES_GRAD;
        if (ndim <= 1 || ends_with(name, "cls_token") || ends_with(name, "pos_embed") ||
            ends_with(name, "mask_token"))
            e->t.flags |= SS_T_NO_DECAY;
    }
    e->lr_scale = 1.0f;
    e->rule = SS_RULE_ZEROS;
    p->n++;
    return &e->t;
}

ss_status ss_params_finalize(ss_params *p)
{
    if (p->finalized) return SS_OK;
    int64_t nv = 0, nb = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->e[i].t.flags & SS_T_PARAM) nv += p->e[i].t.numel;
        else nb += p->e[i].t.numel;
    }
    /* Pad to keep every tensor 16-float (64-byte) aligned. */
    nv += 16 * (int64_t)p->n;
    nb += 16 * (int64_t)p->n;
    /* aligned_alloc needs a size that is a multiple of the alignment. */
    nv = (nv + 15) / 16 * 16;
    nb = (nb + 15) / 16 * 16;
    p->values = aligned_alloc(64, (size_t)nv * sizeof(float));
    p->grads = aligned_alloc(64, (size_t)nv * sizeof(float));
    p->buffers = aligned_alloc(64, (size_t)(nb ? nb : 16) * sizeof(float));
    if (!p->values || !p->grads || !p->buffers)
        return ss_seterr(SS_ERR_NOMEM, "params: cannot allocate %lld floats", (long long)nv);
    memset(p->values, 0, (size_t)nv * sizeof(float));
    memset(p->grads, 0, (size_t)nv * sizeof(float));
    memset(p->buffers, 0, (size_t)(nb ? nb : 16) * sizeof(float));
    int64_t ov = 0, ob = 0;
    for (int i = 0; i < p->n; i++) {
        ss_tensor *t = &p->e[i].t;
        if (t->flags & SS_T_PARAM) {
            t->data = p->values + ov;
            t->grad = p->grads + ov;
            ov += (t->numel + 15) / 16 * 16;
        } else {
            t->data = p->buffers + ob;
            ob += (t->numel + 15) / 16 * 16;
        }
    }
    p->nvalues = ov;
    p->nbuffers = ob;
    p->finalized = 1;
    return SS_OK;
}

int ss_params_count(const ss_params *p) { return p->n; }
ss_tensor *ss_params_at(const ss_params *p, int i) { return (i >= 0 && i < p->n) ? &p->e[i].t : NULL; }

ss_tensor *ss_params_find(const ss_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i].name, name) == 0) return &p->e[i].t;
    return NULL;
}

float *ss_params_values(const ss_params *p, int64_t *n)
{
    if (n) *n = p->nvalues;
    return p->values;
}

float *ss_params_grads(const ss_params *p, int64_t *n)
{
    if (n) *n = p->nvalues;
    return p->grads;
}

float *ss_params_buffers(const ss_params *p, int64_t *n)
{
    if (n) *n = p->nbuffers;
    return p->buffers;
}

int64_t ss_params_num_trainable(const ss_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (p->e[i].t.flags & SS_T_PARAM) n += p->e[i].t.numel;
    return n;
}

void ss_params_zero_grad(ss_params *p)
{
    if (p->grads) memset(p->grads, 0, (size_t)p->nvalues * sizeof(float));
}

void ss_params_set_lr_scale(ss_params *p, const char *prefix, float scale)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < p->n; i++)
        if (strncmp(p->e[i].name, prefix, n) == 0) p->e[i].lr_scale = scale;
}

float ss_params_lr_scale(const ss_params *p, int i) { return p->e[i].lr_scale; }
void ss_params_set_lr_scale_at(ss_params *p, int i, float scale) { p->e[i].lr_scale = scale; }
const char *ss_params_name(const ss_params *p, int i) { return p->e[i].name; }

void ss_params_set_trainable(ss_params *p, const char *prefix, int trainable)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < p->n; i++) {
        ss_tensor *t = &p->e[i].t;
        if (!(t->flags & SS_T_PARAM) || strncmp(p->e[i].name, prefix, n) != 0) continue;
        if (trainable) t->flags |= SS_T_REQUIRES_GRAD;
        else t->flags &= ~SS_T_REQUIRES_GRAD;
    }
}

int ss_params_copy_matching(ss_params *dst, const char *dst_prefix, const ss_params *src, const char *src_prefix)
{
    int copied = 0;
    size_t sp = strlen(src_prefix), dp = strlen(dst_prefix);
    for (int i = 0; i < src->n; i++) {
        const char *name = src->e[i].name;
        if (strncmp(name, src_prefix, sp) != 0) continue;
        const char *rest = name + sp;
        for (int j = 0; j < dst->n; j++) {
            const char *dn = dst->e[j].name;
            if (strncmp(dn, dst_prefix, dp) != 0 || strcmp(dn + dp, rest) != 0) continue;
            if (!ss_shape_equal(&dst->e[j].t, &src->e[i].t)) continue;
            memcpy(dst->e[j].t.data, src->e[i].t.data, (size_t)src->e[i].t.numel * sizeof(float));
            copied++;
            break;
        }
    }
    return copied;
}

void ss_params_set_rule(ss_params *p, const ss_tensor *t, int rule, float arg)
{
    for (int i = 0; i < p->n; i++)
        if (&p->e[i].t == t) {
            p->e[i].rule = rule;
            p->e[i].arg = arg;
            return;
        }
}

/* ---- initialisation ----------------------------------------------------------- */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t name_crc(const char *name)
{
    return (uint64_t)crc32(0L, (const Bytef *)name, (uInt)strlen(name));
}

float ss_hash_uniform(const char *name, int64_t i)
{
    uint64_t h = splitmix64((uint64_t)i + (name_crc(name) << 32));
    return (float)((double)(h >> 40) / 16777216.0 * 2.0 - 1.0);
}

static void hash_init_tensor(ss_tensor *t, const char *name);

void ss_params_init(ss_params *p, ss_init_kind kind, uint64_t seed)
{
    for (int i = 0; i < p->n; i++) {
        entry *e = &p->e[i];
        ss_tensor *t = &e->t;
        if (kind == SS_INIT_HASH) {
            if (e->rule != SS_RULE_FIXED) hash_init_tensor(t, e->name);
            continue;
        }
        ss_rng r;
        ss_rng_seed(&r, seed, name_crc(e->name));
        switch (e->rule) {
        case SS_RULE_ZEROS:
            memset(t->data, 0, (size_t)t->numel * sizeof(float));
            break;
        case SS_RULE_ONES:
            for (int64_t k = 0; k < t->numel; k++) t->data[k] = 1.0f;
            break;
        case SS_RULE_UNIFORM:
            for (int64_t k = 0; k < t->numel; k++) t->data[k] = e->arg * (2.0f * ss_rng_uniform(&r) - 1.0f);
            break;
        case SS_RULE_NORMAL:
            for (int64_t k = 0; k < t->numel; k++) {
                float v;
                do v = ss_rng_normal(&r);
                while (fabsf(v) > 2.0f);
                t->data[k] = e->arg * v;
            }
            break;
        case SS_RULE_FIXED:
            break;
        }
    }
}

/* Hash init (docs/REFERENCE_VECTORS.md): values computed in double and
 * rounded once; the first matching rule wins. */
static void hash_init_tensor(ss_tensor *t, const char *name)
{
    if (t->flags & SS_T_BUFFER) {
        float v = ends_with(name, "running_var") ? 1.0f : 0.0f;
        for (int64_t k = 0; k < t->numel; k++) t->data[k] = v;
        return;
    }
    int rule = 4;
    if (ends_with(name, "cls_token") || ends_with(name, "mask_token") || ends_with(name, "embed.weight")) rule = 1;
    else if (t->ndim >= 2) rule = 2;
    else if (t->ndim == 1 && ends_with(name, ".weight")) rule = 3;
    double scale = rule == 2 ? sqrt(3.0 / (double)(t->numel / t->shape[0])) : 0.0;
    for (int64_t k = 0; k < t->numel; k++) {
        double u = (double)ss_hash_uniform(name, k);
        double v;
        switch (rule) {
        case 1: v = 0.02 * u; break;
        case 2: v = u * scale; break;
        case 3: v = 1.0 + 0.1 * u; break;
        default: v = 0.1 * u; break;
        }
        t->data[k] = (float)v;
    }
}
