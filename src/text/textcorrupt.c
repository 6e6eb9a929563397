/* Text corruptions for robustness tests (see text.h). Adding one is one
 * function plus one line in the table. */
#include <stdlib.h>
#include <string.h>

#include "selfsup/text.h"
#include "text/text_internal.h"

typedef size_t (*corrupt_fn)(const char *in, size_t n, char *out, int severity, ss_rng *r);

static int is_alnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static int is_alpha_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Adjacent swaps and drops of ASCII letters/digits. */
static size_t c_typo(const char *in, size_t n, char *out, int severity, ss_rng *r)
{
    static const float rate[4] = {0.0f, 0.03f, 0.07f, 0.15f};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!is_alnum_ascii(c) || ss_rng_uniform(r) >= rate[severity]) {
            out[k++] = (char)c;
            continue;
        }
        if (ss_rng_uniform(r) < 0.5f) {
            /* Swap with the next character when it is a letter/digit too. */
            if (i + 1 < n && is_alnum_ascii((unsigned char)in[i + 1])) {
                out[k++] = in[i + 1];
                out[k++] = (char)c;
                i++;
            } else {
                out[k++] = (char)c;
            }
        }
        /* else: dropped */
    }
    return k;
}

/* Random case toggles of ASCII letters. */
static size_t c_case(const char *in, size_t n, char *out, int severity, ss_rng *r)
{
    static const float rate[4] = {0.0f, 0.1f, 0.25f, 0.5f};
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_alpha_ascii(c) && ss_rng_uniform(r) < rate[severity]) c ^= 0x20;
        out[i] = (char)c;
    }
    return n;
}

/* Dropping whole words (a word and the whitespace after it). */
static size_t c_word_dropout(const char *in, size_t n, char *out, int severity, ss_rng *r)
{
    static const float rate[4] = {0.0f, 0.1f, 0.2f, 0.35f};
    size_t k = 0, i = 0;
    /* Leading whitespace is kept. */
    while (i < n && is_space((unsigned char)in[i])) out[k++] = in[i++];
    size_t lead = k;
    size_t first_s = 0, first_e = 0;
    int kept = 0, seen = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && !is_space((unsigned char)in[i])) i++;
        while (i < n && is_space((unsigned char)in[i])) i++;
        if (!seen) {
            first_s = s;
            first_e = i;
            seen = 1;
        }
        if (ss_rng_uniform(r) >= rate[severity]) {
            memcpy(out + k, in + s, i - s);
            k += i - s;
            kept = 1;
        }
    }
    if (seen && !kept) { /* keep at least one word: the first */
        memcpy(out + lead, in + first_s, first_e - first_s);
        k = lead + (first_e - first_s);
    }
    return k;
}

static const struct {
    const char *name;
    corrupt_fn fn;
} g_corruptions[] = {
    {"typo", c_typo},
    {"case", c_case},
    {"word-dropout", c_word_dropout},
};

int ss_text_corruption_count(void) { return (int)(sizeof g_corruptions / sizeof g_corruptions[0]); }

const char *ss_text_corruption_name(int i)
{
    if (i < 0 || i >= ss_text_corruption_count()) return NULL;
    return g_corruptions[i].name;
}

char *ss_text_corrupt(const char *name, int severity, uint64_t seed, int64_t index,
                      const char *text, size_t len, size_t *out_len)
{
    if (out_len) *out_len = 0;
    if (!name || (!text && len)) {
        ss_seterr(SS_ERR_INVALID, "ss_text_corrupt: NULL argument");
        return NULL;
    }
    int which = -1;
    for (int i = 0; i < ss_text_corruption_count(); i++)
        if (strcmp(name, g_corruptions[i].name) == 0) which = i;
    if (which < 0) {
        ss_seterr(SS_ERR_INVALID, "text corruption \"%.40s\" is unknown (expected typo, case or "
                  "word-dropout)", name);
        return NULL;
    }
    if (severity < 0 || severity > 3) {
        ss_seterr(SS_ERR_INVALID, "text corruption %s: severity %d is not in 0..3", name, severity);
        return NULL;
    }
    char *out = malloc(len + 1);
    if (!out) {
        ss_seterr(SS_ERR_NOMEM, "text corruption %s: cannot allocate %zu bytes", name, len + 1);
        return NULL;
    }
    size_t k;
    if (severity == 0) {
        if (len) memcpy(out, text, len);
        k = len;
    } else {
        ss_rng r;
        uint64_t key = ss_mix64(seed ^ ss_txt_hash(name, strlen(name)) ^
                                ((uint64_t)severity * 0x9E3779B97F4A7C15ULL));
        ss_rng_seed(&r, key, (uint64_t)index);
        k = g_corruptions[which].fn(text, len, out, severity, &r);
    }
    out[k] = '\0';
    if (out_len) *out_len = k;
    return out;
}
