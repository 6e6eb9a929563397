/* Image augmentation pipelines: parser, canonical description and the ops.
 * Each op is a plain function over the whole image; ss_augment_apply walks
 * the parsed list with a switch (no per-pixel indirection) and allocates
 * one scratch block per call for the ops that need one (bg included). */
#include "selfsup/augment.h"

#include "data/data_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum aug_kind {
    AUG_RRC, AUG_CROP, AUG_HFLIP, AUG_VFLIP, AUG_ROT90, AUG_JITTER, AUG_GRAY,
    AUG_GAMMA, AUG_BLUR, AUG_NOISE, AUG_SOLARIZE, AUG_ERASE, AUG_BG, AUG_NORM
};

#define AUG_MAX_ARGS 8
#define AUG_BLUR_MAX_SIGMA 20.0
#define AUG_BLUR_MAX_RADIUS 60 /* ceil(3 * 20) */
#define AUG_CROP_MAX_PAD 1024

/* Parameters, by kind:
 *   RRC: v = smin, smax, rmin, rmax        CROP: v[0] = pad
 *   HFLIP/VFLIP/GRAY/ERASE: v[0] = p       ROT90: none
 *   JITTER: v = b, c, s, h, p              GAMMA: v = lo, hi
 *   BLUR: v = lo, hi, p                    NOISE: v[0] = std
 *   SOLARIZE: v = thresh, p                NORM: v = m0..m2, s0..s2; n
 *   BG: v = amax, p */
typedef struct aug_op {
    enum aug_kind kind;
    int n; /* NORM: number of channel values (1 or 3) */
    double v[AUG_MAX_ARGS];
} aug_op;

struct ss_augment {
    int nops;
    int needs_scratch;
    int has_bg; /* the scratch block also holds bg's flood-fill stack and mask */
    aug_op *ops;
    char *desc;
};

typedef struct aug_info {
    const char *name;
    enum aug_kind kind;
    const char *syntax;
} aug_info;

static const aug_info aug_table[] = {
    {"rrc", AUG_RRC, "rrc:SMIN-SMAX[:RMIN-RMAX] with 0<SMIN<=SMAX<=1 and 0<RMIN<=RMAX"},
    {"crop", AUG_CROP, "crop:PAD with an integer PAD in 0..1024"},
    {"hflip", AUG_HFLIP, "hflip or hflip:P with P in [0,1]"},
    {"vflip", AUG_VFLIP, "vflip or vflip:P with P in [0,1]"},
    {"rot90", AUG_ROT90, "rot90 (no arguments)"},
    {"jitter", AUG_JITTER, "jitter:B[:C[:S[:H]]][@P] with B,C,S >= 0, H in [0,0.5], P in [0,1]"},
    {"gray", AUG_GRAY, "gray or gray:P with P in [0,1]"},
    {"gamma", AUG_GAMMA, "gamma:LO-HI with 0<LO<=HI"},
    {"blur", AUG_BLUR, "blur:SLO-SHI[@P] with 0<SLO<=SHI<=20, P in [0,1]"},
    {"noise", AUG_NOISE, "noise:STD with STD >= 0"},
    {"solarize", AUG_SOLARIZE, "solarize:T[@P] with T and P in [0,1]"},
    {"erase", AUG_ERASE, "erase or erase:P with P in [0,1]"},
    {"bg", AUG_BG, "bg:AMAX[@P] with AMAX in (0,1], P in [0,1]"},
    {"norm", AUG_NORM, "norm:M/S or norm:M1;M2;M3/S1;S2;S3 with S >= 1e-6"},
};
#define AUG_NTABLE ((int)(sizeof aug_table / sizeof aug_table[0]))

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static int parse_num(const char **p, double *out)
{
    char *end;
    if (**p == '\0' || **p == ' ' || **p == '\t') return 0;
    double x = strtod(*p, &end);
    if (end == *p || !isfinite(x) || fabs(x) > 1e6) return 0; /* no op needs more */
    *p = end;
    *out = x;
    return 1;
}

static int expect_ch(const char **p, char c)
{
    if (**p != c) return 0;
    (*p)++;
    return 1;
}

static int parse_range(const char **p, double *lo, double *hi)
{
    return parse_num(p, lo) && expect_ch(p, '-') && parse_num(p, hi);
}

static int is_prob(double p) { return p >= 0.0 && p <= 1.0; }

/* Parse a ';'-separated list of up to 3 numbers ending at `stop`. */
static int parse_list(const char **p, char stop, double *v, int *n)
{
    *n = 0;
    for (;;) {
        if (*n == 3 || !parse_num(p, &v[*n])) return 0;
        (*n)++;
        if (**p == ';') { (*p)++; continue; }
        return **p == stop;
    }
}

/* Parse the arguments of one op (args may be NULL: no ':' given). Returns 1
 * on success. */
static int parse_args(enum aug_kind kind, const char *args, aug_op *op)
{
    const char *p = args;
    double *v = op->v;
    switch (kind) {
    case AUG_RRC:
        if (!p || !parse_range(&p, &v[0], &v[1])) return 0;
        v[2] = 3.0 / 4.0;
        v[3] = 4.0 / 3.0;
        if (*p == ':') {
            p++;
            if (!parse_range(&p, &v[2], &v[3])) return 0;
        }
        return *p == '\0' && v[0] > 0 && v[0] <= v[1] && v[1] <= 1 && v[2] > 0 && v[2] <= v[3];
    case AUG_CROP:
        if (!p || !parse_num(&p, &v[0])) return 0;
        return *p == '\0' && v[0] >= 0 && v[0] <= AUG_CROP_MAX_PAD && v[0] == floor(v[0]);
    case AUG_HFLIP:
    case AUG_VFLIP:
    case AUG_GRAY:
    case AUG_ERASE:
        v[0] = kind == AUG_GRAY ? 0.1 : 0.5;
        if (!p) return 1;
        return parse_num(&p, &v[0]) && *p == '\0' && is_prob(v[0]);
    case AUG_ROT90:
        return p == NULL;
    case AUG_JITTER: {
        if (!p) return 0;
        v[0] = v[1] = v[2] = v[3] = 0.0;
        v[4] = 1.0;
        for (int i = 0; i < 4; i++) {
            if (!parse_num(&p, &v[i])) return 0;
            if (*p != ':') break;
            if (i == 3) return 0;
            p++;
        }
        if (*p == '@') {
            p++;
            if (!parse_num(&p, &v[4])) return 0;
        }
        return *p == '\0' && v[0] >= 0 && v[1] >= 0 && v[2] >= 0 && v[3] >= 0 && v[3] <= 0.5 &&
               is_prob(v[4]);
    }
    case AUG_GAMMA:
        if (!p || !parse_range(&p, &v[0], &v[1])) return 0;
        return *p == '\0' && v[0] > 0 && v[0] <= v[1];
    case AUG_BLUR:
        if (!p || !parse_range(&p, &v[0], &v[1])) return 0;
        v[2] = 1.0;
        if (*p == '@') {
            p++;
            if (!parse_num(&p, &v[2])) return 0;
        }
        return *p == '\0' && v[0] > 0 && v[0] <= v[1] && v[1] <= AUG_BLUR_MAX_SIGMA && is_prob(v[2]);
    case AUG_NOISE:
        if (!p || !parse_num(&p, &v[0])) return 0;
        return *p == '\0' && v[0] >= 0;
    case AUG_BG:
    case AUG_SOLARIZE: /* X[@P], P default 0.5 */
        if (!p || !parse_num(&p, &v[0])) return 0;
        v[1] = 0.5;
        if (*p == '@') {
            p++;
            if (!parse_num(&p, &v[1])) return 0;
        }
        if (*p != '\0' || !is_prob(v[1])) return 0;
        return kind == AUG_BG ? v[0] > 0 && v[0] <= 1 : is_prob(v[0]);
    case AUG_NORM: {
        int nm, ns;
        if (!p || !parse_list(&p, '/', v, &nm)) return 0;
        p++;
        if (!parse_list(&p, '\0', v + 3, &ns) || nm != ns || nm == 2) return 0;
        for (int i = 0; i < ns; i++)
            if (!(v[3 + i] >= 1e-6)) return 0;
        op->n = nm;
        return 1;
    }
    }
    return 0;
}

/* Shortest decimal that reads back as the same double. */
static void fmt_num(char *buf, size_t cap, double x)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* Append to a growing string; returns 0 on allocation failure. */
typedef struct sbuf { char *s; size_t len, cap; } sbuf;

static int sb_add(sbuf *b, const char *t)
{
    size_t n = strlen(t);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > cap) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) return 0;
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, t, n + 1);
    b->len += n;
    return 1;
}

static int sb_num(sbuf *b, double x)
{
    char t[40];
    fmt_num(t, sizeof t, x);
    return sb_add(b, t);
}

static int describe_op(sbuf *b, const aug_op *op)
{
    const double *v = op->v;
    int ok = 1;
    for (int i = 0; i < AUG_NTABLE; i++)
        if (aug_table[i].kind == op->kind) ok = ok && sb_add(b, aug_table[i].name);
    switch (op->kind) {
    case AUG_RRC:
        ok = ok && sb_add(b, ":") && sb_num(b, v[0]) && sb_add(b, "-") && sb_num(b, v[1]) &&
             sb_add(b, ":") && sb_num(b, v[2]) && sb_add(b, "-") && sb_num(b, v[3]);
        break;
    case AUG_CROP:
    case AUG_HFLIP:
    case AUG_VFLIP:
    case AUG_GRAY:
    case AUG_ERASE:
    case AUG_NOISE:
        ok = ok && sb_add(b, ":") && sb_num(b, v[0]);
        break;
    case AUG_ROT90:
        break;
    case AUG_JITTER:
        ok = ok && sb_add(b, ":") && sb_num(b, v[0]) && sb_add(b, ":") && sb_num(b, v[1]) &&
             sb_add(b, ":") && sb_num(b, v[2]) && sb_add(b, ":") && sb_num(b, v[3]) &&
             sb_add(b, "@") && sb_num(b, v[4]);
        break;
    case AUG_GAMMA:
        ok = ok && sb_add(b, ":") && sb_num(b, v[0]) && sb_add(b, "-") && sb_num(b, v[1]);
        break;
    case AUG_BLUR:
        ok = ok && sb_add(b, ":") && sb_num(b, v[0]) && sb_add(b, "-") && sb_num(b, v[1]) &&
             sb_add(b, "@") && sb_num(b, v[2]);
        break;
    case AUG_SOLARIZE:
    case AUG_BG:
        ok = ok && sb_add(b, ":") && sb_num(b, v[0]) && sb_add(b, "@") && sb_num(b, v[1]);
        break;
    case AUG_NORM:
        ok = ok && sb_add(b, ":");
        for (int i = 0; i < op->n; i++) ok = ok && (i == 0 || sb_add(b, ";")) && sb_num(b, v[i]);
        ok = ok && sb_add(b, "/");
        for (int i = 0; i < op->n; i++) ok = ok && (i == 0 || sb_add(b, ";")) && sb_num(b, v[3 + i]);
        break;
    }
    return ok;
}

void ss_augment_free(ss_augment *a)
{
    if (!a) return;
    free(a->ops);
    free(a->desc);
    free(a);
}

ss_status ss_augment_parse(const char *spec, ss_augment **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_augment_parse: out is NULL");
    *out = NULL;
    if (!spec) return ss_seterr(SS_ERR_INVALID, "ss_augment_parse: spec is NULL");
    ss_augment *a = calloc(1, sizeof *a);
    char *work = malloc(strlen(spec) + 1);
    size_t maxops = 1;
    for (const char *q = spec; *q; q++) maxops += *q == ',';
    if (a) a->ops = calloc(maxops, sizeof *a->ops);
    if (!a || !work || !a->ops) {
        free(work);
        ss_augment_free(a);
        return ss_seterr(SS_ERR_NOMEM, "augment spec: out of memory");
    }
    strcpy(work, spec);
    ss_status st = SS_OK;
    char *tok = work;
    for (;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t len = strlen(tok);
        while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) tok[--len] = '\0';
        if (len == 0 || strcmp(tok, "none") == 0) {
            if (comma || a->nops) {
                st = ss_seterr(SS_ERR_INVALID,
                               "augment spec \"%s\": empty op or 'none' inside a list "
                               "(expected ops separated by ',')", spec);
                break;
            }
        } else {
            char *args = strchr(tok, ':');
            if (args) *args++ = '\0';
            int found = -1;
            for (int i = 0; i < AUG_NTABLE; i++)
                if (strcmp(tok, aug_table[i].name) == 0) found = i;
            if (found < 0) {
                st = ss_seterr(SS_ERR_INVALID,
                               "augment spec: unknown op '%s' (expected one of rrc, crop, hflip, "
                               "vflip, rot90, jitter, gray, gamma, blur, noise, solarize, erase, bg, norm)",
                               tok);
                break;
            }
            if (a->nops > 0 && a->ops[a->nops - 1].kind == AUG_NORM) {
                /* The other ops expect pixels in [0,1] (found by fuzzing:
                 * norm:1/1,gamma:0.5-0.5 made NaN; norm after norm Inf). */
                st = ss_seterr(SS_ERR_INVALID, "augment spec: '%s' after 'norm' (norm must be the last op: "
                               "it moves pixels out of [0,1], where the other ops work)", tok);
                break;
            }
            aug_op *op = &a->ops[a->nops];
            op->kind = aug_table[found].kind;
            if (!parse_args(op->kind, args, op)) {
                st = ss_seterr(SS_ERR_INVALID, "augment op '%s': expected %s, got '%s%s%s'", tok,
                               aug_table[found].syntax, tok, args ? ":" : "", args ? args : "");
                break;
            }
            if (op->kind == AUG_RRC || op->kind == AUG_CROP || op->kind == AUG_ROT90 ||
                op->kind == AUG_BLUR || op->kind == AUG_BG)
                a->needs_scratch = 1;
            if (op->kind == AUG_BG) a->has_bg = 1;
            a->nops++;
        }
        if (!comma) break;
        tok = comma + 1;
    }
    free(work);
    if (st != SS_OK) {
        ss_augment_free(a);
        return st;
    }
    sbuf b = {0};
    int ok = 1;
    if (a->nops == 0) ok = sb_add(&b, "none");
    for (int i = 0; i < a->nops && ok; i++) ok = (i == 0 || sb_add(&b, ",")) && describe_op(&b, &a->ops[i]);
    if (!ok) {
        free(b.s);
        ss_augment_free(a);
        return ss_seterr(SS_ERR_NOMEM, "augment spec: out of memory");
    }
    a->desc = b.s;
    *out = a;
    return SS_OK;
}

const char *ss_augment_describe(const ss_augment *a) { return a ? a->desc : "none"; }

int ss_augment_count(const ss_augment *a) { return a ? a->nops : 0; }

int ss_augment_geometric_prefix(const ss_augment *a)
{
    int n = 0;
    while (a && n < a->nops) {
        enum aug_kind k = a->ops[n].kind;
        if (k != AUG_RRC && k != AUG_CROP && k != AUG_HFLIP && k != AUG_VFLIP && k != AUG_ROT90) break;
        n++;
    }
    return n;
}

int ss_augment_has_op(const ss_augment *a, const char *name)
{
    for (int t = 0; a && name && t < AUG_NTABLE; t++)
        if (strcmp(aug_table[t].name, name) == 0)
            for (int i = 0; i < a->nops; i++)
                if (a->ops[i].kind == aug_table[t].kind) return 1;
    return 0;
}

ss_status ss_augment_insert(const ss_augment *a, int pos, const char *spec, ss_augment **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_augment_insert: out is NULL");
    *out = NULL;
    if (!a || !spec) return ss_seterr(SS_ERR_INVALID, "ss_augment_insert: pipeline or spec is NULL");
    pos = pos < 0 ? 0 : (pos > a->nops ? a->nops : pos);
    /* a blank spec or "none" (spaces and tabs around it, as the parser trims) adds nothing */
    size_t lead = strspn(spec, " \t"), len = strlen(spec + lead);
    while (len && (spec[lead + len - 1] == ' ' || spec[lead + len - 1] == '\t')) len--;
    int add = len > 0 && !(len == 4 && strncmp(spec + lead, "none", 4) == 0);
    /* the canonical ops around spec, parsed again: one grammar, one set of checks */
    sbuf b = {0};
    int ok = 1, any = 0;
    for (int i = 0; i <= a->nops && ok; i++) {
        if (i == pos && add) {
            ok = (!any || sb_add(&b, ",")) && sb_add(&b, spec);
            any = 1;
        }
        if (i < a->nops && ok) {
            ok = (!any || sb_add(&b, ",")) && describe_op(&b, &a->ops[i]);
            any = 1;
        }
    }
    if (ok && !any) ok = sb_add(&b, "none");
    if (!ok) {
        free(b.s);
        return ss_seterr(SS_ERR_NOMEM, "augment: out of memory");
    }
    ss_status s = ss_augment_parse(b.s, out);
    free(b.s);
    return s;
}

ss_status ss_augment_check(const ss_augment *a, int c, int h, int w)
{
    if (!a) return ss_seterr(SS_ERR_INVALID, "ss_augment_check: pipeline is NULL");
    if (c != 1 && c != 3)
        return ss_seterr(SS_ERR_SHAPE, "augment \"%s\": images must have 1 or 3 channels, got %d",
                         a->desc, c);
    if (h < 1 || w < 1 || h > 32767 || w > 32767)
        return ss_seterr(SS_ERR_SHAPE, "augment \"%s\": image size %dx%d outside 1..32767", a->desc,
                         h, w);
    for (int i = 0; i < a->nops; i++)
        if (a->ops[i].kind == AUG_NORM && a->ops[i].n != 1 && a->ops[i].n != c)
            return ss_seterr(SS_ERR_SHAPE,
                             "augment op 'norm': %d mean/std values given for %d-channel images "
                             "(expected 1 or %d)", a->ops[i].n, c, c);
    return SS_OK;
}

/* ------------------------------------------------------------------ */
/* Ops                                                                 */
/* ------------------------------------------------------------------ */

static inline float clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

static inline float unif(ss_rng *r, double lo, double hi)
{
    return (float)lo + ((float)hi - (float)lo) * ss_rng_uniform(r);
}

void ss_rotate90(const float *src, float *dst, int c, int h, int w, int k)
{
    k = ((k % 4) + 4) % 4;
    size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + ch * plane;
        float *d = dst + ch * plane;
        switch (k) {
        case 0:
            memcpy(d, s, plane * sizeof *d);
            break;
        case 1: /* out (w x h): out[i][j] = in[j][w-1-i] */
            for (int i = 0; i < w; i++)
                for (int j = 0; j < h; j++) d[(size_t)i * h + j] = s[(size_t)j * w + (w - 1 - i)];
            break;
        case 2: /* out[i][j] = in[h-1-i][w-1-j] */
            for (size_t i = 0; i < plane; i++) d[i] = s[plane - 1 - i];
            break;
        default: /* 3, out (w x h): out[i][j] = in[h-1-j][i] */
            for (int i = 0; i < w; i++)
                for (int j = 0; j < h; j++) d[(size_t)i * h + j] = s[(size_t)(h - 1 - j) * w + i];
            break;
        }
    }
}

/* Bilinear resize of the crop (top,left,ch,cw) of img into out (c x h x w),
 * PyTorch upsample_bilinear2d with align_corners=False. */
static void resize_crop(const float *img, float *out, int c, int h, int w, int top, int left,
                        int ch, int cw, int *ix, float *lx)
{
    int *iy = ix + 2 * w;
    float *ly = lx + w;
    float sx = (float)cw / (float)w, sy = (float)ch / (float)h;
    for (int x = 0; x < w; x++) {
        float s = sx * ((float)x + 0.5f) - 0.5f;
        if (s < 0) s = 0;
        int x0 = (int)s;
        ix[2 * x] = left + x0;
        ix[2 * x + 1] = left + x0 + (x0 < cw - 1 ? 1 : 0);
        lx[x] = s - (float)x0;
    }
    for (int y = 0; y < h; y++) {
        float s = sy * ((float)y + 0.5f) - 0.5f;
        if (s < 0) s = 0;
        int y0 = (int)s;
        iy[2 * y] = top + y0;
        iy[2 * y + 1] = top + y0 + (y0 < ch - 1 ? 1 : 0);
        ly[y] = s - (float)y0;
    }
    size_t plane = (size_t)h * w;
    for (int k = 0; k < c; k++) {
        const float *src = img + k * plane;
        float *dst = out + k * plane;
        for (int y = 0; y < h; y++) {
            const float *r0 = src + (size_t)iy[2 * y] * w, *r1 = src + (size_t)iy[2 * y + 1] * w;
            float b1 = ly[y], b0 = 1.0f - b1;
            for (int x = 0; x < w; x++) {
                float a1 = lx[x], a0 = 1.0f - a1;
                int x0 = ix[2 * x], x1 = ix[2 * x + 1];
                dst[(size_t)y * w + x] = b0 * (a0 * r0[x0] + a1 * r0[x1]) + b1 * (a0 * r1[x0] + a1 * r1[x1]);
            }
        }
    }
}

static void op_rrc(const aug_op *op, float *img, int c, int h, int w, ss_rng *r, float *tmp,
                   int *ibuf, float *fbuf)
{
    double area = (double)h * w;
    double lr0 = log(op->v[2]), lr1 = log(op->v[3]);
    int top = -1, left = 0, ch = h, cw = w;
    for (int t = 0; t < 10; t++) {
        double target = area * unif(r, op->v[0], op->v[1]);
        double ar = exp(unif(r, lr0, lr1));
        /* Python's round(): half to even (nearbyint in the default mode) */
        long cwl = (long)nearbyint(sqrt(target * ar)), chl = (long)nearbyint(sqrt(target / ar));
        if (cwl > 0 && cwl <= w && chl > 0 && chl <= h) {
            cw = (int)cwl;
            ch = (int)chl;
            top = (int)ss_rng_below(r, (uint32_t)(h - ch + 1));
            left = (int)ss_rng_below(r, (uint32_t)(w - cw + 1));
            break;
        }
    }
    if (top < 0) { /* torchvision's fallback: centre crop at the closest ratio */
        double in_ratio = (double)w / h;
        if (in_ratio < op->v[2]) {
            cw = w;
            ch = (int)nearbyint(cw / op->v[2]);
        } else if (in_ratio > op->v[3]) {
            ch = h;
            cw = (int)nearbyint(ch * op->v[3]);
        } else {
            cw = w;
            ch = h;
        }
        if (ch < 1) ch = 1;
        if (cw < 1) cw = 1;
        top = (h - ch) / 2;
        left = (w - cw) / 2;
    }
    if (top == 0 && left == 0 && ch == h && cw == w) return; /* identity */
    resize_crop(img, tmp, c, h, w, top, left, ch, cw, ibuf, fbuf);
    memcpy(img, tmp, (size_t)c * h * w * sizeof *img);
}

static void op_crop(const aug_op *op, float *img, int c, int h, int w, ss_rng *r, float *tmp)
{
    int pad = (int)op->v[0];
    int dy = (int)ss_rng_below(r, (uint32_t)(2 * pad + 1)) - pad;
    int dx = (int)ss_rng_below(r, (uint32_t)(2 * pad + 1)) - pad;
    if (dx == 0 && dy == 0) return;
    size_t plane = (size_t)h * w;
    memset(tmp, 0, (size_t)c * plane * sizeof *tmp);
    /* out[y][x] = in[y+dy][x+dx] where inside */
    int x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? w - dx : w;
    int y0 = dy < 0 ? -dy : 0, y1 = dy > 0 ? h - dy : h;
    for (int k = 0; k < c; k++)
        for (int y = y0; y < y1; y++)
            if (x1 > x0)
                memcpy(tmp + k * plane + (size_t)y * w + x0,
                       img + k * plane + (size_t)(y + dy) * w + x0 + dx,
                       (size_t)(x1 - x0) * sizeof *img);
    memcpy(img, tmp, (size_t)c * plane * sizeof *img);
}

static void hflip(float *img, int c, int h, int w)
{
    for (int k = 0; k < c * h; k++) {
        float *row = img + (size_t)k * w;
        for (int i = 0, j = w - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

static void vflip(float *img, int c, int h, int w)
{
    for (int k = 0; k < c; k++) {
        float *p = img + (size_t)k * h * w;
        for (int i = 0, j = h - 1; i < j; i++, j--)
            for (int x = 0; x < w; x++) {
                float t = p[(size_t)i * w + x];
                p[(size_t)i * w + x] = p[(size_t)j * w + x];
                p[(size_t)j * w + x] = t;
            }
    }
}

#define GREY_R 0.2989f
#define GREY_G 0.587f
#define GREY_B 0.114f

static void to_gray(float *img, int c, int h, int w)
{
    if (c != 3) return;
    size_t plane = (size_t)h * w;
    float *R = img, *G = img + plane, *B = img + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
        float l = GREY_R * R[i] + GREY_G * G[i] + GREY_B * B[i];
        R[i] = G[i] = B[i] = l;
    }
}

static void adj_brightness(float *img, size_t n, float f)
{
    for (size_t i = 0; i < n; i++) img[i] = clamp01(f * img[i]);
}

static void adj_contrast(float *img, int c, size_t plane, float f)
{
    double sum = 0;
    if (c == 3) {
        for (size_t i = 0; i < plane; i++)
            sum += GREY_R * img[i] + GREY_G * img[plane + i] + GREY_B * img[2 * plane + i];
        sum /= (double)plane;
    } else {
        for (size_t i = 0; i < (size_t)c * plane; i++) sum += img[i];
        sum /= (double)((size_t)c * plane);
    }
    float m = (float)sum, g = (1.0f - f) * m;
    for (size_t i = 0; i < (size_t)c * plane; i++) img[i] = clamp01(f * img[i] + g);
}

static void adj_saturation(float *img, int c, size_t plane, float f)
{
    if (c != 3) return;
    float *R = img, *G = img + plane, *B = img + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
        float l = (1.0f - f) * (GREY_R * R[i] + GREY_G * G[i] + GREY_B * B[i]);
        R[i] = clamp01(f * R[i] + l);
        G[i] = clamp01(f * G[i] + l);
        B[i] = clamp01(f * B[i] + l);
    }
}

/* torchvision _rgb2hsv / _hsv2rgb, shift hue by f (mod 1). */
static void adj_hue(float *img, int c, size_t plane, float f)
{
    if (c != 3) return;
    float *R = img, *G = img + plane, *B = img + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
        float r = R[i], g = G[i], b = B[i];
        float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
        int eqc = maxc == minc;
        float cr = maxc - minc;
        float s = cr / (eqc ? 1.0f : maxc);
        float crd = eqc ? 1.0f : cr;
        float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
        float hh;
        if (maxc == r) hh = bc - gc;
        else if (maxc == g) hh = 2.0f + rc - bc;
        else hh = 4.0f + gc - rc;
        hh = fmodf(hh / 6.0f + 1.0f, 1.0f);
        hh += f;
        hh -= floorf(hh);
        float v = maxc;
        float fi = floorf(hh * 6.0f);
        float fr = hh * 6.0f - fi;
        int sector = ((int)fi % 6 + 6) % 6;
        float p = clamp01(v * (1.0f - s)), q = clamp01(v * (1.0f - s * fr)),
              t = clamp01(v * (1.0f - s * (1.0f - fr)));
        switch (sector) {
        case 0: r = v; g = t; b = p; break;
        case 1: r = q; g = v; b = p; break;
        case 2: r = p; g = v; b = t; break;
        case 3: r = p; g = q; b = v; break;
        case 4: r = t; g = p; b = v; break;
        default: r = v; g = p; b = q; break;
        }
        R[i] = r;
        G[i] = g;
        B[i] = b;
    }
}

static void op_jitter(const aug_op *op, float *img, int c, int h, int w, ss_rng *r)
{
    int32_t order[4] = {0, 1, 2, 3};
    float fac[4] = {1, 1, 1, 0};
    ss_rng_shuffle_i32(r, order, 4);
    for (int i = 0; i < 3; i++)
        if (op->v[i] > 0) fac[i] = unif(r, fmax(0.0, 1.0 - op->v[i]), 1.0 + op->v[i]);
    if (op->v[3] > 0) fac[3] = unif(r, -op->v[3], op->v[3]);
    size_t plane = (size_t)h * w;
    for (int i = 0; i < 4; i++) {
        int k = order[i];
        if (op->v[k] <= 0) continue;
        switch (k) {
        case 0: adj_brightness(img, (size_t)c * plane, fac[0]); break;
        case 1: adj_contrast(img, c, plane, fac[1]); break;
        case 2: adj_saturation(img, c, plane, fac[2]); break;
        default: adj_hue(img, c, plane, fac[3]); break;
        }
    }
}

/* Reflect index i into [0,n) without repeating the edge (torch "reflect"),
 * for any offset. */
static inline int reflect_idx(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    int m = i % period;
    if (m < 0) m += period;
    return m < n ? m : period - m;
}

static void op_blur(float sigma, float *img, int c, int h, int w, float *tmp, int *ibuf)
{
    int rad = (int)ceilf(3.0f * sigma);
    if (rad > AUG_BLUR_MAX_RADIUS) rad = AUG_BLUR_MAX_RADIUS;
    if (rad < 1) return;
    float kern[2 * AUG_BLUR_MAX_RADIUS + 1];
    int ks = 2 * rad + 1;
    float sum = 0;
    for (int t = 0; t < ks; t++) {
        float x = (float)(t - rad) / sigma;
        kern[t] = expf(-0.5f * x * x);
        sum += kern[t];
    }
    for (int t = 0; t < ks; t++) kern[t] /= sum;
    int *rx = ibuf, *ry = ibuf + w + 2 * rad;
    for (int i = 0; i < w + 2 * rad; i++) rx[i] = reflect_idx(i - rad, w);
    for (int i = 0; i < h + 2 * rad; i++) ry[i] = reflect_idx(i - rad, h);
    size_t plane = (size_t)h * w;
    for (int k = 0; k < c; k++) {
        float *src = img + k * plane, *mid = tmp + k * plane;
        for (int y = 0; y < h; y++) { /* horizontal: src -> mid */
            const float *row = src + (size_t)y * w;
            float *o = mid + (size_t)y * w;
            for (int x = 0; x < w; x++) {
                float acc = 0;
                const int *idx = rx + x;
                for (int t = 0; t < ks; t++) acc += kern[t] * row[idx[t]];
                o[x] = acc;
            }
        }
        for (int y = 0; y < h; y++) { /* vertical: mid -> src */
            float *o = src + (size_t)y * w;
            for (int x = 0; x < w; x++) o[x] = 0;
            for (int t = 0; t < ks; t++) {
                const float *row = mid + (size_t)ry[y + t] * w;
                float kt = kern[t];
                for (int x = 0; x < w; x++) o[x] += kt * row[x];
            }
        }
    }
}

static void op_erase(float *img, int c, int h, int w, ss_rng *r)
{
    double area = (double)h * w;
    double lr0 = log(0.3), lr1 = log(3.3);
    for (int t = 0; t < 10; t++) {
        double ea = area * unif(r, 0.02, 0.33);
        double ar = exp(unif(r, lr0, lr1));
        long eh = (long)nearbyint(sqrt(ea * ar)), ew = (long)nearbyint(sqrt(ea / ar));
        if (!(eh < h && ew < w)) continue;
        int top = (int)ss_rng_below(r, (uint32_t)(h - eh + 1));
        int left = (int)ss_rng_below(r, (uint32_t)(w - ew + 1));
        for (int k = 0; k < c; k++)
            for (int y = top; y < top + eh; y++)
                memset(img + (size_t)k * h * w + (size_t)y * w + left, 0, (size_t)ew * sizeof *img);
        return;
    }
}

/* Brightest channel at pixel i. */
static inline float bright(const float *img, int c, size_t plane, size_t i)
{
    float v = img[i];
    for (int k = 1; k < c; k++) v = fmaxf(v, img[(size_t)k * plane + i]);
    return v;
}

long ss__background_mask(const float *img, int c, int h, int w, float thresh, unsigned char *bg, int *stack)
{
    size_t plane = (size_t)h * w;
    size_t top = 0;
    long count = 0;
    memset(bg, 0, plane);
#define SS_BG_DARK(i) (bright(img, c, plane, (size_t)(i)) <= thresh)
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (y != 0 && y != h - 1 && x != 0 && x != w - 1) continue;
            size_t i = (size_t)y * w + x;
            if (!bg[i] && SS_BG_DARK(i)) {
                bg[i] = 1;
                stack[top++] = (int)i;
            }
        }
    while (top) {
        int i = stack[--top];
        count++;
        int y = i / w, x = i % w;
        int nb[4] = {x > 0 ? i - 1 : -1, x < w - 1 ? i + 1 : -1, y > 0 ? i - w : -1, y < h - 1 ? i + w : -1};
        for (int k = 0; k < 4; k++) {
            int j = nb[k];
            if (j >= 0 && !bg[j] && SS_BG_DARK(j)) {
                bg[j] = 1;
                stack[top++] = j;
            }
        }
    }
#undef SS_BG_DARK
    return count;
}

/* Background swap (after Ryali et al. 2021, "Characterizing and improving
 * the robustness of self-supervised learning through background
 * augmentations", BG_Random): on an image with a dark background (pixels
 * <= 0.04 connected to the border, at least 10% of the image), the
 * background becomes clamp(l + a * s) with s the image itself turned by 180
 * degrees and shifted cyclically by a random (dy, dx): a clutter of the
 * object's own parts. a uniform in [0, AMAX], the level l uniform in
 * [0, AMAX/2]. Draws: a, l, dy, dx. Images without such a surround (most
 * RGB photos) are left as they are; the draws are made either way. */
static void op_bg(double amax, float *img, int c, int h, int w, ss_rng *r, float *src, int *stack,
                  unsigned char *bg)
{
    float a = unif(r, 0.0, amax), l = unif(r, 0.0, 0.5 * amax);
    int dy = (int)ss_rng_below(r, (uint32_t)h), dx = (int)ss_rng_below(r, (uint32_t)w);
    size_t plane = (size_t)h * w, n = (size_t)c * plane;
    /* src: the scratch image (c*h*w floats); stack: h*w ints; bg: h*w bytes */
    if (!src || plane > (size_t)INT_MAX) return; /* the mask's stack holds int indices */
    long nbg = ss__background_mask(img, c, h, w, 0.04f, bg, stack);
    if ((size_t)nbg * 10 >= plane) {
        memcpy(src, img, n * sizeof *img);
        for (int k = 0; k < c; k++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    size_t i = (size_t)y * w + x;
                    if (!bg[i]) continue;
                    int sy = h - 1 - (y + dy) % h, sx = w - 1 - (x + dx) % w;
                    img[k * plane + i] = clamp01(l + a * src[k * plane + (size_t)sy * w + sx]);
                }
    }
}

void ss_augment_apply(const ss_augment *a, float *img, int c, int h, int w, ss_rng *r)
{
    if (!a || !img || c < 1 || h < 1 || w < 1) return;
    size_t n = (size_t)c * h * w;
    float *tmp = NULL, *fbuf = NULL;
    int *ibuf = NULL;
    unsigned char *bbuf = NULL; /* bg's mask */
    void *block = NULL;
    if (a->needs_scratch) { /* floats, then ints, then bytes: each part aligned for its type */
        size_t plane = (size_t)h * w;
        size_t nf = n + (size_t)h + w;
        size_t ni = 2 * ((size_t)h + w) + 4 * AUG_BLUR_MAX_RADIUS + 8;
        if (a->has_bg && ni < plane) ni = plane;
        block = malloc(nf * sizeof(float) + ni * sizeof(int) + (a->has_bg ? plane : 0));
        if (block) {
            tmp = block;
            fbuf = tmp + n;
            ibuf = (int *)(void *)(fbuf + h + w);
            bbuf = (unsigned char *)(ibuf + ni);
        }
    }
    for (int i = 0; i < a->nops; i++) {
        const aug_op *op = &a->ops[i];
        const double *v = op->v;
        switch (op->kind) {
        case AUG_RRC:
            if (tmp) op_rrc(op, img, c, h, w, r, tmp, ibuf, fbuf);
            break;
        case AUG_CROP:
            if (tmp) op_crop(op, img, c, h, w, r, tmp);
            break;
        case AUG_HFLIP:
            if (ss_rng_uniform(r) < v[0]) hflip(img, c, h, w);
            break;
        case AUG_VFLIP:
            if (ss_rng_uniform(r) < v[0]) vflip(img, c, h, w);
            break;
        case AUG_ROT90: {
            int k = h == w ? (int)ss_rng_below(r, 4) : 2 * (int)ss_rng_below(r, 2);
            if (k == 0 || !tmp) break;
            ss_rotate90(img, tmp, c, h, w, k);
            memcpy(img, tmp, n * sizeof *img);
            break;
        }
        case AUG_JITTER:
            if (ss_rng_uniform(r) < v[4]) op_jitter(op, img, c, h, w, r);
            break;
        case AUG_GRAY:
            if (ss_rng_uniform(r) < v[0]) to_gray(img, c, h, w);
            break;
        case AUG_GAMMA: {
            float g = unif(r, v[0], v[1]);
            for (size_t j = 0; j < n; j++) img[j] = clamp01(powf(img[j], g));
            break;
        }
        case AUG_BLUR:
            if (ss_rng_uniform(r) < v[2]) {
                float s = unif(r, v[0], v[1]);
                if (tmp) op_blur(s, img, c, h, w, tmp, ibuf);
            }
            break;
        case AUG_NOISE: {
            float sd = (float)v[0];
            for (size_t j = 0; j < n; j++) img[j] = clamp01(img[j] + sd * ss_rng_normal(r));
            break;
        }
        case AUG_SOLARIZE:
            if (ss_rng_uniform(r) < v[1]) {
                float t = (float)v[0];
                for (size_t j = 0; j < n; j++)
                    if (img[j] >= t) img[j] = 1.0f - img[j];
            }
            break;
        case AUG_ERASE:
            if (ss_rng_uniform(r) < v[0]) op_erase(img, c, h, w, r);
            break;
        case AUG_BG:
            if (ss_rng_uniform(r) < v[1]) op_bg(v[0], img, c, h, w, r, tmp, ibuf, bbuf);
            break;
        case AUG_NORM: {
            size_t plane = (size_t)h * w;
            for (int k = 0; k < c; k++) {
                int q = k < op->n ? k : op->n - 1;
                float m = (float)v[q], sd = (float)v[3 + q];
                float *p = img + k * plane;
                for (size_t j = 0; j < plane; j++) p[j] = (p[j] - m) / sd;
            }
            break;
        }
        }
    }
    free(block);
}

void ss_augment_transform(void *ctx, float *img, int c, int h, int w, ss_rng *r)
{
    ss_augment_apply((const ss_augment *)ctx, img, c, h, w, r);
}
