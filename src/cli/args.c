#include "cli/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

ss_status ss_args_parse(ss_args *a, const char *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->help_args = "";
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--") && !a->dashdash) { /* end of options: the rest is positional */
            a->dashdash = 1;
            continue;
        }
        if (!a->dashdash && !strcmp(s, "-h")) s = "--help";
        if (!a->dashdash && strncmp(s, "--", 2) == 0 && s[2]) {
            if (a->n == ARGS_MAX) return ss_seterr(SS_ERR_INVALID, "too many flags");
            const char *eq = strchr(s, '=');
            if (eq) {
                /* "--key=value": the key is copied into a's own storage */
                size_t kl = (size_t)(eq - s - 2);
                if (kl >= sizeof a->kbuf[0])
                    return ss_seterr(SS_ERR_INVALID, "'%.60s': no flag has so long a name", s);
                char *k = a->kbuf[a->n];
                memcpy(k, s + 2, kl);
                k[kl] = '\0';
                a->key[a->n] = k;
                a->val[a->n] = eq[1] ? eq + 1 : NULL; /* "--out=": no value */
            } else {
                a->key[a->n] = s + 2;
                if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 && strcmp(argv[i + 1], "-h") != 0)
                    a->val[a->n] = argv[++i];
                else a->val[a->n] = NULL;
            }
            a->n++;
        } else {
            if (a->npos == ARGS_MAX) return ss_seterr(SS_ERR_INVALID, "too many arguments");
            a->pos[a->npos++] = s;
        }
    }
    return SS_OK;
}

static int find(ss_args *a, const char *key)
{
    for (int i = a->n - 1; i >= 0; i--)
        if (strcmp(a->key[i], key) == 0) {
            for (int j = 0; j < a->n; j++)
                if (strcmp(a->key[j], key) == 0) a->used[j] = 1;
            return i;
        }
    return -1;
}

const char *args_str(ss_args *a, const char *key, const char *def)
{
    int i = find(a, key);
    if (i < 0) return def;
    if (!a->val[i] && !a->novalue) a->novalue = a->key[i];
    return a->val[i] ? a->val[i] : def;
}

int args_positional(ss_args *a)
{
    a->pos_read = 1;
    return a->npos;
}

static int is_bool_word(const char *v)
{
    return !strcmp(v, "0") || !strcmp(v, "1") || !strcmp(v, "false") || !strcmp(v, "true") || !strcmp(v, "no") ||
           !strcmp(v, "yes");
}

int args_flag(ss_args *a, const char *key)
{
    int i = find(a, key);
    if (i < 0) return 0;
    /* "--json step-mae": the word after a switch is a positional argument
     * (for every copy of the switch, so that none is lost). */
    for (int j = 0; j < a->n; j++)
        if (!strcmp(a->key[j], key) && a->val[j] && !is_bool_word(a->val[j]) && a->npos < ARGS_MAX) {
            a->pos[a->npos++] = a->val[j];
            a->val[j] = NULL;
        }
    if (!a->val[i]) return 1;
    return strcmp(a->val[i], "0") != 0 && strcmp(a->val[i], "false") != 0 && strcmp(a->val[i], "no") != 0;
}

long args_int(ss_args *a, const char *key, long def, long lo, long hi, int *ok)
{
    int i = find(a, key);
    if (i < 0) return def;
    const char *v = a->val[i];
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || x < lo || x > hi) {
        ss_seterr(SS_ERR_INVALID, "--%s '%s': expected an integer in [%ld, %ld]", key, v ? v : "", lo, hi);
        *ok = 0;
        return def;
    }
    return x;
}

double args_float(ss_args *a, const char *key, double def, double lo, double hi, int *ok)
{
    int i = find(a, key);
    if (i < 0) return def;
    const char *v = a->val[i];
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || *end || !(x >= lo && x <= hi)) {
        ss_seterr(SS_ERR_INVALID, "--%s '%s': expected a number in [%g, %g]", key, v ? v : "", lo, hi);
        *ok = 0;
        return def;
    }
    return x;
}

int args_has(const ss_args *a, const char *key)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->key[i], key)) return 1;
    return 0;
}

ss_status args_needs(ss_args *a, const char *key, const char *with)
{
    if (!args_has(a, key)) return SS_OK;
    return ss_seterr(SS_ERR_INVALID, "--%s goes with --%s (see 'selfsup %s%s --help')", key, with, a->cmd,
                     a->help_args);
}

ss_status ss_args_finish(ss_args *a)
{
    if (a->novalue)
        return ss_seterr(SS_ERR_INVALID, "--%s needs a value (see 'selfsup %s%s --help')", a->novalue, a->cmd,
                         a->help_args);
    if (a->npos && !a->pos_read)
        return ss_seterr(SS_ERR_INVALID, "'%s' takes no argument '%s' (flags start with --; see 'selfsup %s%s --help')",
                         a->cmd, a->pos[0], a->cmd, a->help_args);
    for (int i = 0; i < a->n; i++)
        if (!a->used[i])
            return ss_seterr(SS_ERR_INVALID, "'%s' does not take --%s (see 'selfsup %s%s --help')", a->cmd, a->key[i],
                             a->cmd, a->help_args);
    return SS_OK;
}
