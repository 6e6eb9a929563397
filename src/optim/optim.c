/* SGD (momentum, Nesterov), AdamW, LARS; clipping; schedules; EMA. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/optim.h"

struct ss_optimizer {
    ss_params *p;
    ss_opt_config c;
    float *m1, *m2;
    int64_t n, steps;
};

ss_opt_config ss_opt_defaults(ss_opt_kind kind)
{
    ss_opt_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.momentum = 0.9f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.lars_eta = 0.001f;
    c.weight_decay = kind == SS_OPT_ADAMW ? 0.05f : 5e-4f;
    return c;
}

ss_status ss_opt_parse(const char *name, ss_opt_kind *kind)
{
    if (!strcmp(name, "sgd")) *kind = SS_OPT_SGD;
    else if (!strcmp(name, "adamw")) *kind = SS_OPT_ADAMW;
    else if (!strcmp(name, "lars")) *kind = SS_OPT_LARS;
    else return ss_seterr(SS_ERR_INVALID, "--optimizer '%s': expected sgd, adamw or lars", name);
    return SS_OK;
}

ss_status ss_opt_new(ss_params *p, const ss_opt_config *c, ss_optimizer **out)
{
    *out = NULL;
    ss_optimizer *o = calloc(1, sizeof *o);
    if (!o) return ss_seterr(SS_ERR_NOMEM, "optimizer: out of memory");
    o->p = p;
    o->c = *c;
    ss_params_values(p, &o->n);
    o->m1 = calloc((size_t)(o->n ? o->n : 1), sizeof(float));
    if (c->kind == SS_OPT_ADAMW) o->m2 = calloc((size_t)(o->n ? o->n : 1), sizeof(float));
    if (!o->m1 || (c->kind == SS_OPT_ADAMW && !o->m2)) {
        ss_opt_free(o);
        return ss_seterr(SS_ERR_NOMEM, "optimizer: out of memory for %lld moments", (long long)o->n);
    }
    *out = o;
    return SS_OK;
}

void ss_opt_free(ss_optimizer *o)
{
    if (!o) return;
    free(o->m1);
    free(o->m2);
    free(o);
}

float *ss_opt_moment1(ss_optimizer *o, int64_t *n)
{
    if (n) *n = o->n;
    return o->m1;
}
float *ss_opt_moment2(ss_optimizer *o, int64_t *n)
{
    if (n) *n = o->m2 ? o->n : 0;
    return o->m2;
}
int64_t ss_opt_steps(const ss_optimizer *o) { return o->steps; }
void ss_opt_set_steps(ss_optimizer *o, int64_t s) { o->steps = s; }

void ss_opt_step(ss_optimizer *o, float lr)
{
    ss_params *p = o->p;
    float *values = ss_params_values(p, NULL);
    o->steps++;
    const ss_opt_config *c = &o->c;
    double bc1 = 1.0 - pow(c->beta1, (double)o->steps), bc2 = 1.0 - pow(c->beta2, (double)o->steps);
    int count = ss_params_count(p);
    for (int i = 0; i < count; i++) {
        ss_tensor *t = ss_params_at(p, i);
        if (!(t->flags & SS_T_PARAM) || !(t->flags & SS_T_REQUIRES_GRAD)) continue;
        float plr = lr * ss_params_lr_scale(p, i);
        if (plr == 0.0f) continue;
        int decay = !(t->flags & SS_T_NO_DECAY);
        float wd = decay ? c->weight_decay : 0.0f;
        int64_t off = t->data - values, n = t->numel;
        float *w = t->data, *gr = t->grad, *m1 = o->m1 + off;
        switch (c->kind) {
        case SS_OPT_ADAMW: {
            float *m2 = o->m2 + off;
            float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
            float step = (float)(plr / bc1), inv_bc2 = (float)(1.0 / sqrt(bc2));
            float shrink = 1.0f - plr * wd;
#pragma omp parallel for schedule(static) if (n > 65536)
            for (int64_t k = 0; k < n; k++) {
                float gk = gr[k];
                m1[k] = b1 * m1[k] + (1.0f - b1) * gk;
                m2[k] = b2 * m2[k] + (1.0f - b2) * gk * gk;
                w[k] = w[k] * shrink - step * m1[k] / (sqrtf(m2[k]) * inv_bc2 + eps);
            }
            break;
        }
        case SS_OPT_SGD: {
            float mu = c->momentum;
            for (int64_t k = 0; k < n; k++) {
                float gk = gr[k] + wd * w[k];
                m1[k] = mu * m1[k] + gk;
                w[k] -= plr * (c->nesterov ? gk + mu * m1[k] : m1[k]);
            }
            break;
        }
        case SS_OPT_LARS: {
            /* You et al. 2017: local lr = eta * ||w|| / (||g|| + wd ||w||);
             * tensors without decay (biases, norms) are not adapted. */
            double wn = 0, gn = 0;
            for (int64_t k = 0; k < n; k++) {
                wn += (double)w[k] * w[k];
                gn += (double)gr[k] * gr[k];
            }
            wn = sqrt(wn);
            gn = sqrt(gn);
            float trust = 1.0f;
            if (decay && wn > 0 && gn > 0) trust = (float)(c->lars_eta * wn / (gn + wd * wn));
            float mu = c->momentum;
            for (int64_t k = 0; k < n; k++) {
                float gk = (gr[k] + wd * w[k]) * trust;
                m1[k] = mu * m1[k] + gk;
                w[k] -= plr * m1[k];
            }
            break;
        }
        }
    }
}

double ss_grad_norm(const ss_params *p)
{
    double s = 0;
    int count = ss_params_count(p);
    for (int i = 0; i < count; i++) {
        ss_tensor *t = ss_params_at(p, i);
        if (!(t->flags & SS_T_PARAM)) continue;
        for (int64_t k = 0; k < t->numel; k++) s += (double)t->grad[k] * t->grad[k];
    }
    return sqrt(s);
}

double ss_clip_grad_norm(ss_params *p, double max_norm)
{
    double norm = ss_grad_norm(p);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        int count = ss_params_count(p);
        for (int i = 0; i < count; i++) {
            ss_tensor *t = ss_params_at(p, i);
            if (!(t->flags & SS_T_PARAM)) continue;
            for (int64_t k = 0; k < t->numel; k++) t->grad[k] *= s;
        }
    }
    return norm;
}

float ss_lr_cosine(int64_t step, int64_t total, int64_t warmup, float base, float final_lr)
{
    if (warmup > 0 && step < warmup) return base * (float)(step + 1) / (float)warmup;
    if (total <= warmup) return base;
    double t = (double)(step - warmup) / (double)(total - warmup);
    if (t > 1) t = 1;
    return (float)(final_lr + 0.5 * (base - final_lr) * (1.0 + cos(M_PI * t)));
}

void ss_ema_update(ss_params *target, const char *tp, const ss_params *online, const char *op, float tau)
{
    size_t lt = strlen(tp), lo = strlen(op);
    int nt = ss_params_count(target), no = ss_params_count(online);
    for (int i = 0; i < nt; i++) {
        ss_tensor *t = ss_params_at(target, i);
        if (strncmp(t->name, tp, lt) != 0) continue;
        const char *rest = t->name + lt;
        for (int j = 0; j < no; j++) {
            ss_tensor *s = ss_params_at(online, j);
            if (strncmp(s->name, op, lo) != 0 || strcmp(s->name + lo, rest) != 0) continue;
            if (s->numel != t->numel) break;
            for (int64_t k = 0; k < t->numel; k++) t->data[k] = tau * t->data[k] + (1.0f - tau) * s->data[k];
            break;
        }
    }
}
