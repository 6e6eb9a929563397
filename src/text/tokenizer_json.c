/* Tokenizer save/load in the Hugging Face `tokenizers` JSON format. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

/* Largest tokenizer file accepted. */
#define SS_TOK_MAX_FILE ((size_t)1 << 30)

/* ------------------------------------------------------------------ save */

/* Byte-level string of raw bytes (each byte -> one code point, as UTF-8). */
static char *bytes_to_bl(const uint8_t *b, size_t n)
{
    char *s = malloc(n * 2 + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = ss_txt_byte_to_cp[b[i]];
        if (cp < 0x80) {
            s[k++] = (char)cp;
        } else {
            s[k++] = (char)(0xC0 | (cp >> 6));
            s[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    s[k] = '\0';
    return s;
}

static char *token_bl(const ss_tokenizer *t, int32_t id)
{
    if (id < SS_TOK_NSPECIAL) {
        size_t l = strlen(ss_tok_special_names[id]);
        char *s = malloc(l + 1);
        if (s) memcpy(s, ss_tok_special_names[id], l + 1);
        return s;
    }
    return bytes_to_bl(t->tok_bytes + t->tok_off[id], t->tok_off[id + 1] - t->tok_off[id]);
}

static cJSON *byte_level_obj(void)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddFalseToObject(o, "add_prefix_space");
    cJSON_AddTrueToObject(o, "trim_offsets");
    cJSON_AddTrueToObject(o, "use_regex");
    return o;
}

ss_status ss_tokenizer_to_json(const ss_tokenizer *t, char **json, size_t *len)
{
    *json = NULL;
    if (len) *len = 0;
    if (!t) return ss_seterr(SS_ERR_INVALID, "ss_tokenizer_to_json: tokenizer is NULL");
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok) {
        cJSON_AddStringToObject(root, "version", "1.0");
        cJSON_AddNullToObject(root, "truncation");
        cJSON_AddNullToObject(root, "padding");
        cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
        ok = added != NULL;
        for (int id = 0; ok && id < SS_TOK_NSPECIAL; id++) {
            cJSON *a = cJSON_CreateObject();
            ok = a && cJSON_AddItemToArray(added, a);
            if (!ok) {
                cJSON_Delete(a);
                break;
            }
            cJSON_AddNumberToObject(a, "id", id);
            cJSON_AddStringToObject(a, "content", ss_tok_special_names[id]);
            cJSON_AddFalseToObject(a, "single_word");
            cJSON_AddFalseToObject(a, "lstrip");
            cJSON_AddFalseToObject(a, "rstrip");
            cJSON_AddFalseToObject(a, "normalized");
            cJSON_AddTrueToObject(a, "special");
        }
    }
    if (ok) {
        if (t->lowercase) {
            cJSON *n = cJSON_AddObjectToObject(root, "normalizer");
            ok = n && cJSON_AddStringToObject(n, "type", "Lowercase");
        } else {
            cJSON_AddNullToObject(root, "normalizer");
        }
    }
    if (ok) {
        cJSON *p = byte_level_obj();
        ok = p && cJSON_AddItemToObject(root, "pre_tokenizer", p);
        cJSON_AddNullToObject(root, "post_processor");
        cJSON *d = byte_level_obj();
        ok = ok && d && cJSON_AddItemToObject(root, "decoder", d);
    }
    cJSON *model = ok ? cJSON_AddObjectToObject(root, "model") : NULL;
    ok = model != NULL;
    if (ok) {
        cJSON_AddStringToObject(model, "type", "BPE");
        cJSON_AddNullToObject(model, "dropout");
        cJSON_AddNullToObject(model, "unk_token");
        cJSON_AddNullToObject(model, "continuing_subword_prefix");
        cJSON_AddNullToObject(model, "end_of_word_suffix");
        cJSON_AddFalseToObject(model, "fuse_unk");
        cJSON_AddFalseToObject(model, "byte_fallback");
        cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
        ok = vocab != NULL;
        for (int32_t id = 0; ok && id < t->ntok; id++) {
            char *s = token_bl(t, id);
            ok = s && cJSON_AddNumberToObject(vocab, s, id);
            free(s);
        }
        cJSON *merges = ok ? cJSON_AddArrayToObject(model, "merges") : NULL;
        ok = merges != NULL;
        for (int32_t r = 0; ok && r < t->nmerges; r++) {
            char *a = token_bl(t, t->merge_a[r]);
            char *b = token_bl(t, t->merge_b[r]);
            char *m = NULL;
            if (a && b) {
                size_t la = strlen(a), lb = strlen(b);
                m = malloc(la + lb + 2);
                if (m) {
                    memcpy(m, a, la);
                    m[la] = ' ';
                    memcpy(m + la + 1, b, lb + 1);
                }
            }
            cJSON *item = m ? cJSON_CreateString(m) : NULL;
            ok = item && cJSON_AddItemToArray(merges, item);
            if (!ok) cJSON_Delete(item);
            free(a);
            free(b);
            free(m);
        }
    }
    char *txt = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!txt) return ss_seterr(SS_ERR_NOMEM, "tokenizer: cannot build the JSON text");
    size_t l = strlen(txt);
    char *outp = malloc(l + 2);
    if (!outp) {
        cJSON_free(txt);
        return ss_seterr(SS_ERR_NOMEM, "tokenizer: cannot build the JSON text");
    }
    memcpy(outp, txt, l);
    outp[l] = '\n';
    outp[l + 1] = '\0';
    cJSON_free(txt);
    *json = outp;
    if (len) *len = l + 1;
    return SS_OK;
}

ss_status ss_tokenizer_save(const ss_tokenizer *t, const char *path)
{
    if (!path) return ss_seterr(SS_ERR_INVALID, "ss_tokenizer_save: path is NULL");
    char *json;
    size_t len;
    ss_status st = ss_tokenizer_to_json(t, &json, &len);
    if (st != SS_OK) return st;
    st = ss_txt_write_atomic(path, json, len);
    free(json);
    return st;
}

/* ------------------------------------------------------------------ load */

/* Decode a byte-level string (UTF-8 of alphabet code points) into raw bytes.
 * Returns the number of bytes, or -1 when it is not valid. */
static int64_t bl_to_bytes(const char *s, uint8_t *out)
{
    const uint8_t *p = (const uint8_t *)s;
    int64_t n = 0;
    while (*p) {
        uint32_t cp;
        if (p[0] < 0x80) {
            cp = p[0];
            p++;
        } else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
            p += 2;
        } else {
            return -1; /* the alphabet only needs 1- and 2-byte UTF-8 */
        }
        int b = ss_txt_cp_to_byte(cp);
        if (b < 0) return -1;
        out[n++] = (uint8_t)b;
    }
    return n;
}

typedef struct loader {
    const char *label;
    int32_t ntok;
    uint8_t *tb;
    size_t *to;
    ss_txt_strset raw;  /* raw bytes of non-special tokens; entry -> raw_id */
    int32_t *raw_id;
    ss_txt_strset bl;   /* vocab keys as written; entry -> bl_id */
    int32_t *bl_id;
    int32_t *ma, *mb, *mr;
} loader;

static void loader_free(loader *L)
{
    free(L->tb);
    free(L->to);
    ss_txt_strset_free(&L->raw);
    free(L->raw_id);
    ss_txt_strset_free(&L->bl);
    free(L->bl_id);
    free(L->ma);
    free(L->mb);
    free(L->mr);
}

static ss_status fmt_err(const loader *L, const char *field, const char *what)
{
    return ss_seterr(SS_ERR_FORMAT, "%s: %s: %s", L->label, field, what);
}

static int is_null_or_absent(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return !v || cJSON_IsNull(v);
}

/* Line number of position p in data (1-based). */
static int line_of(const char *data, size_t len, const char *p)
{
    int line = 1;
    if (!p || p < data) return 0;
    for (const char *q = data; q < p && q < data + len; q++)
        if (*q == '\n') line++;
    return line;
}

static ss_status check_settings(loader *L, const cJSON *root, int *lowercase)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    *lowercase = 0;
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(norm, "type");
        if (!cJSON_IsObject(norm) || !cJSON_IsString(ty))
            return fmt_err(L, "normalizer", "expected null or an object with a \"type\"");
        if (strcmp(ty->valuestring, "Lowercase") != 0)
            return ss_seterr(SS_ERR_UNSUPPORTED,
                             "%s: normalizer.type \"%.40s\" is not supported (expected null or "
                             "Lowercase)", L->label, ty->valuestring);
        *lowercase = 1;
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!pre) return fmt_err(L, "pre_tokenizer", "missing (expected a ByteLevel pre-tokenizer)");
    const cJSON *pty = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsObject(pre) || !cJSON_IsString(pty))
        return fmt_err(L, "pre_tokenizer", "expected an object with a \"type\"");
    if (strcmp(pty->valuestring, "ByteLevel") != 0)
        return ss_seterr(SS_ERR_UNSUPPORTED,
                         "%s: pre_tokenizer.type \"%.40s\" is not supported (expected ByteLevel)",
                         L->label, pty->valuestring);
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space");
    if (!cJSON_IsFalse(aps))
        return ss_seterr(SS_ERR_UNSUPPORTED,
                         "%s: pre_tokenizer.add_prefix_space must be false (missing means true)",
                         L->label);
    const cJSON *ure = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
    if (ure && !cJSON_IsTrue(ure))
        return ss_seterr(SS_ERR_UNSUPPORTED, "%s: pre_tokenizer.use_regex must be true", L->label);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec)) {
        const cJSON *dty = cJSON_GetObjectItemCaseSensitive(dec, "type");
        if (!cJSON_IsString(dty) || strcmp(dty->valuestring, "ByteLevel") != 0)
            return fmt_err(L, "decoder.type", "expected \"ByteLevel\" (or a null decoder)");
    }
    return SS_OK;
}

static ss_status check_model_settings(loader *L, const cJSON *model)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(ty)) return fmt_err(L, "model.type", "missing (expected \"BPE\")");
    if (strcmp(ty->valuestring, "BPE") != 0)
        return ss_seterr(SS_ERR_UNSUPPORTED, "%s: model.type \"%.40s\" is not supported (expected BPE)",
                         L->label, ty->valuestring);
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dr && !cJSON_IsNull(dr) && !(cJSON_IsNumber(dr) && dr->valuedouble == 0.0))
        return ss_seterr(SS_ERR_UNSUPPORTED, "%s: model.dropout must be null", L->label);
    static const char *const nulls[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, nulls[k]);
        if (!is_null_or_absent(model, nulls[k]) &&
            !(cJSON_IsString(v) && v->valuestring[0] == '\0'))
            return ss_seterr(SS_ERR_UNSUPPORTED, "%s: model.%s must be null", L->label, nulls[k]);
    }
    return SS_OK;
}

static ss_status load_vocab(loader *L, const cJSON *vocab)
{
    if (!cJSON_IsObject(vocab)) return fmt_err(L, "model.vocab", "missing or not an object");
    int64_t n = 0;
    size_t keybytes = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (++n > SS_TOK_MAX_VOCAB)
            return ss_seterr(SS_ERR_FORMAT, "%s: model.vocab: more than %d tokens", L->label,
                             SS_TOK_MAX_VOCAB);
        keybytes += strlen(e->string);
    }
    if (n < SS_TOK_MIN_VOCAB)
        return ss_seterr(SS_ERR_FORMAT,
                         "%s: model.vocab: %lld tokens, expected at least %d (5 specials + 256 bytes)",
                         L->label, (long long)n, SS_TOK_MIN_VOCAB);
    L->ntok = (int32_t)n;
    uint8_t **kb = calloc((size_t)n, sizeof *kb); /* per id: the JSON key */
    int64_t *klen = calloc((size_t)n, sizeof *klen);
    L->raw_id = malloc((size_t)n * sizeof *L->raw_id);
    L->bl_id = malloc((size_t)n * sizeof *L->bl_id);
    uint8_t *tmp = malloc(keybytes + 1);
    ss_status st = SS_OK;
    if (!kb || !klen || !L->raw_id || !L->bl_id || !tmp) {
        st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the vocabulary", L->label);
        goto done;
    }
    for (const cJSON *e = vocab->child; e; e = e->next) {
        const char *key = e->string;
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0) || e->valuedouble >= (double)n ||
            e->valuedouble != floor(e->valuedouble)) {
            st = ss_seterr(SS_ERR_FORMAT,
                           "%s: model.vocab: id of token \"%.40s\" is %s%g, expected an integer in "
                           "[0, %lld)", L->label, key, cJSON_IsNumber(e) ? "" : "not a number: ",
                           cJSON_IsNumber(e) ? e->valuedouble : 0.0, (long long)n);
            goto done;
        }
        int32_t id = (int32_t)e->valuedouble;
        if (kb[id]) {
            st = ss_seterr(SS_ERR_FORMAT,
                           "%s: model.vocab: id %d is given to both \"%.40s\" and \"%.40s\"",
                           L->label, id, (const char *)kb[id], key);
            goto done;
        }
        kb[id] = (uint8_t *)key;
        int added;
        int64_t be = ss_txt_strset_add(&L->bl, key, strlen(key), &added);
        if (be < 0) {
            st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the vocabulary", L->label);
            goto done;
        }
        if (!added) {
            st = ss_seterr(SS_ERR_FORMAT, "%s: model.vocab: token \"%.40s\" appears twice",
                           L->label, key);
            goto done;
        }
        L->bl_id[be] = id;
        if (id < SS_TOK_NSPECIAL) {
            if (strcmp(key, ss_tok_special_names[id]) != 0) {
                st = ss_seterr(SS_ERR_FORMAT,
                               "%s: model.vocab: id %d must be the special token %s, found \"%.40s\"",
                               L->label, id, ss_tok_special_names[id], key);
                goto done;
            }
            klen[id] = (int64_t)strlen(key);
            continue;
        }
        int64_t rl = bl_to_bytes(key, tmp);
        if (rl <= 0) {
            st = ss_seterr(SS_ERR_FORMAT,
                           "%s: model.vocab: token \"%.40s\" (id %d) is %s", L->label, key, id,
                           rl == 0 ? "empty" : "not made of byte-level characters");
            goto done;
        }
        klen[id] = rl;
        int64_t re = ss_txt_strset_add(&L->raw, tmp, (size_t)rl, &added);
        if (re < 0) {
            st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the vocabulary", L->label);
            goto done;
        }
        if (!added) {
            st = ss_seterr(SS_ERR_FORMAT,
                           "%s: model.vocab: token \"%.40s\" (id %d) decodes to the same bytes as id %d",
                           L->label, key, id, L->raw_id[re]);
            goto done;
        }
        L->raw_id[re] = id;
    }
    /* n entries with distinct ids in [0, n): every id is present. Lay out bytes. */
    size_t total = 0;
    for (int64_t id = 0; id < n; id++) total += (size_t)klen[id];
    L->tb = malloc(total + 1);
    L->to = malloc(((size_t)n + 1) * sizeof *L->to);
    if (!L->tb || !L->to) {
        st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the vocabulary", L->label);
        goto done;
    }
    size_t pos = 0;
    for (int64_t id = 0; id < n; id++) {
        L->to[id] = pos;
        if (id < SS_TOK_NSPECIAL) {
            memcpy(L->tb + pos, kb[id], (size_t)klen[id]);
        } else {
            int64_t rl = bl_to_bytes((const char *)kb[id], L->tb + pos);
            (void)rl;
        }
        pos += (size_t)klen[id];
    }
    L->to[n] = pos;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        if (ss_txt_strset_find(&L->raw, &c, 1) < 0) {
            st = ss_seterr(SS_ERR_FORMAT, "%s: model.vocab: no token for byte 0x%02x", L->label, b);
            goto done;
        }
    }
done:
    free(kb);
    free(klen);
    free(tmp);
    return st;
}

/* Id of a vocab key (as written in JSON), or -1. */
static int32_t bl_lookup(const loader *L, const char *s, size_t n)
{
    int64_t e = ss_txt_strset_find(&L->bl, s, n);
    return e < 0 ? -1 : L->bl_id[e];
}

static ss_status load_merges(loader *L, const cJSON *merges, int32_t *nmerges)
{
    if (!cJSON_IsArray(merges)) return fmt_err(L, "model.merges", "missing or not an array");
    int64_t n = cJSON_GetArraySize(merges);
    if (n > SS_TOK_MAX_MERGES)
        return ss_seterr(SS_ERR_FORMAT, "%s: model.merges: more than %d merges", L->label,
                         SS_TOK_MAX_MERGES);
    size_t cnt = n ? (size_t)n : 1;
    L->ma = malloc(cnt * sizeof *L->ma);
    L->mb = malloc(cnt * sizeof *L->mb);
    L->mr = malloc(cnt * sizeof *L->mr);
    ss_txt_pairmap seen = {0};
    uint8_t *buf = NULL;
    size_t bufcap = 0;
    ss_status st = SS_OK;
    if (!L->ma || !L->mb || !L->mr) {
        st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the merges", L->label);
        goto done;
    }
    int32_t r = 0;
    for (const cJSON *e = merges->child; e; e = e->next, r++) {
        const char *sa, *sb;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring;
            const char *sp = strchr(s, ' ');
            if (!sp || sp == s || sp[1] == '\0' || strchr(sp + 1, ' ')) {
                st = ss_seterr(SS_ERR_FORMAT,
                               "%s: model.merges[%d]: \"%.40s\" is not two tokens separated by one space",
                               L->label, r, s);
                goto done;
            }
            sa = s;
            la = (size_t)(sp - s);
            sb = sp + 1;
            lb = strlen(sb);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            sa = e->child->valuestring;
            la = strlen(sa);
            sb = e->child->next->valuestring;
            lb = strlen(sb);
        } else {
            st = fmt_err(L, "model.merges", "an entry is neither \"a b\" nor [\"a\", \"b\"]");
            goto done;
        }
        int32_t a = bl_lookup(L, sa, la), b = bl_lookup(L, sb, lb);
        if (a < SS_TOK_NSPECIAL || b < SS_TOK_NSPECIAL) {
            /* Report an unknown token first, then a special one. */
            int left = a < 0 || (b >= 0 && a < SS_TOK_NSPECIAL);
            const char *bad = left ? sa : sb;
            int bl = (int)(left ? la : lb);
            if (bl > 40) bl = 40;
            st = ss_seterr(SS_ERR_FORMAT, "%s: model.merges[%d]: token \"%.*s\" is %s", L->label,
                           r, bl, bad, (left ? a : b) < 0 ? "not in model.vocab" : "a special token");
            goto done;
        }
        if (ss_txt_pairmap_get(&seen, a, b) >= 0) {
            st = ss_seterr(SS_ERR_FORMAT, "%s: model.merges[%d]: repeats merges[%d]", L->label, r,
                           ss_txt_pairmap_get(&seen, a, b));
            goto done;
        }
        if (ss_txt_pairmap_put(&seen, a, b, r)) {
            st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the merges", L->label);
            goto done;
        }
        size_t ra = L->to[a + 1] - L->to[a], rb = L->to[b + 1] - L->to[b];
        if (ra + rb > bufcap) {
            bufcap = (ra + rb) * 2;
            uint8_t *nb = realloc(buf, bufcap);
            if (!nb) {
                st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the merges", L->label);
                goto done;
            }
            buf = nb;
        }
        memcpy(buf, L->tb + L->to[a], ra);
        memcpy(buf + ra, L->tb + L->to[b], rb);
        int64_t re = ss_txt_strset_find(&L->raw, buf, ra + rb);
        if (re < 0) {
            int ila = la > 40 ? 40 : (int)la, ilb = lb > 40 ? 40 : (int)lb;
            st = ss_seterr(SS_ERR_FORMAT,
                           "%s: model.merges[%d]: \"%.*s %.*s\" makes a token that is not in model.vocab",
                           L->label, r, ila, sa, ilb, sb);
            goto done;
        }
        L->ma[r] = a;
        L->mb[r] = b;
        L->mr[r] = L->raw_id[re];
    }
    *nmerges = r;
done:
    free(buf);
    ss_txt_pairmap_free(&seen);
    return st;
}

static ss_status check_added(loader *L, const cJSON *added)
{
    if (!cJSON_IsArray(added))
        return fmt_err(L, "added_tokens", "missing or not an array (expected the five specials)");
    int have[SS_TOK_NSPECIAL] = {0};
    int i = 0;
    for (const cJSON *e = added->child; e; e = e->next, i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return ss_seterr(SS_ERR_FORMAT, "%s: added_tokens[%d]: expected \"id\" and \"content\"",
                             L->label, i);
        double v = id->valuedouble;
        if (!(v >= 0 && v < SS_TOK_NSPECIAL) || v != floor(v) ||
            strcmp(content->valuestring, ss_tok_special_names[(int)v]) != 0)
            return ss_seterr(SS_ERR_UNSUPPORTED,
                             "%s: added_tokens[%d]: \"%.40s\" with id %g is not one of the specials "
                             "[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4",
                             L->label, i, content->valuestring, v);
        have[(int)v] = 1;
    }
    for (int k = 0; k < SS_TOK_NSPECIAL; k++)
        if (!have[k])
            return ss_seterr(SS_ERR_FORMAT, "%s: added_tokens: special token %s (id %d) is missing",
                             L->label, ss_tok_special_names[k], k);
    return SS_OK;
}

ss_status ss_tokenizer_load_memory(const void *data, size_t len, const char *label,
                                   ss_tokenizer **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_tokenizer_load_memory: out is NULL");
    *out = NULL;
    if (!label) label = "tokenizer";
    if (!data && len) return ss_seterr(SS_ERR_INVALID, "%s: no data", label);
    if (len > SS_TOK_MAX_FILE)
        return ss_seterr(SS_ERR_NOMEM, "%s: %zu bytes is more than the limit of %zu", label, len,
                         SS_TOK_MAX_FILE);
    loader L;
    memset(&L, 0, sizeof L);
    L.label = label;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data ? data : "", len, &end, 0);
    if (!root) {
        return ss_seterr(SS_ERR_FORMAT, "%s: not valid JSON (error near line %d, byte %lld)", label,
                         line_of(data, len, end), end && data ? (long long)(end - (const char *)data) : -1LL);
    }
    ss_status st = SS_OK;
    int lowercase = 0;
    int32_t nmerges = 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(root)) st = fmt_err(&L, "(root)", "expected a JSON object");
    else if (!cJSON_IsObject(model)) st = fmt_err(&L, "model", "missing or not an object");
    if (st == SS_OK) st = check_settings(&L, root, &lowercase);
    if (st == SS_OK) st = check_model_settings(&L, model);
    if (st == SS_OK) st = check_added(&L, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (st == SS_OK) st = load_vocab(&L, cJSON_GetObjectItemCaseSensitive(model, "vocab"));
    if (st == SS_OK) st = load_merges(&L, cJSON_GetObjectItemCaseSensitive(model, "merges"), &nmerges);
    cJSON_Delete(root);
    if (st != SS_OK) {
        loader_free(&L);
        return st;
    }
    st = ss_tok_build(lowercase, L.ntok, L.tb, L.to, nmerges, L.ma, L.mb, L.mr, out);
    L.tb = NULL;
    L.to = NULL;
    L.ma = L.mb = L.mr = NULL;
    loader_free(&L);
    if (st != SS_OK) {
        /* ss_tok_build's message lacks the file name. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ss_errmsg());
        return ss_seterr(st, "%s: %s", label, msg);
    }
    return SS_OK;
}

ss_status ss_tokenizer_load(const char *path, ss_tokenizer **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_tokenizer_load: out is NULL");
    *out = NULL;
    if (!path) return ss_seterr(SS_ERR_INVALID, "ss_tokenizer_load: path is NULL");
    char *buf;
    size_t len;
    ss_status st = ss_txt_read_file(path, SS_TOK_MAX_FILE, &buf, &len);
    if (st != SS_OK) return st;
    st = ss_tokenizer_load_memory(buf, len, path, out);
    free(buf);
    return st;
}
