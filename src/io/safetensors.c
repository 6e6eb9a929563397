/* safetensors reader (strict, for untrusted files) and atomic writer. */
#include "selfsup/safetensors.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/fileio.h"

/* Largest integer a JSON number (a double in cJSON) holds exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */
/* A valid header nests root object -> tensor object -> array. */
#define ST_MAX_DEPTH 3
/* Arrays longer than this are rejected before JSON parsing (valid ones hold
 * at most SS_ST_MAX_DIMS; the slack lets the entry check name the tensor). */
#define ST_MAX_ARRAY 64

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [SS_DT_F64] = {"F64", 8}, [SS_DT_F32] = {"F32", 4}, [SS_DT_F16] = {"F16", 2},
    [SS_DT_BF16] = {"BF16", 2}, [SS_DT_I64] = {"I64", 8}, [SS_DT_I32] = {"I32", 4},
    [SS_DT_I16] = {"I16", 2}, [SS_DT_I8] = {"I8", 1}, [SS_DT_U8] = {"U8", 1},
    [SS_DT_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

size_t ss_dtype_size(ss_dtype dt)
{
    return ((int)dt >= 0 && (int)dt < N_DTYPES) ? dtype_info[dt].size : 0;
}

const char *ss_dtype_name(ss_dtype dt)
{
    return ((int)dt >= 0 && (int)dt < N_DTYPES) ? dtype_info[dt].name : "?";
}

static int dtype_from_name(const char *s, ss_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (ss_dtype)i;
            return 1;
        }
    return 0;
}

struct ss_safetensors {
    char *label;
    unsigned char *file; /* whole file, owned */
    size_t file_size;
    const unsigned char *data; /* byte buffer after the header */
    size_t data_size;
    int n;
    ss_st_entry *entries; /* file order */
    int *by_name;         /* indices sorted by name */
    int nmeta;
    char **meta_keys, **meta_vals;
};

/* ---- messages ---- */

/* Printable, bounded copy of a string from the file for error messages. */
static const char *quote(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p >= 0x20 && *p < 0x7f && *p != '\'' && *p != '\\')
            buf[o++] = (char)*p;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
    }
    buf[o] = '\0';
    return buf;
}

/* "label: tensor 'name': <msg>" as SS_ERR_FORMAT. */
static ss_status tensor_err(const ss_safetensors *st, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static ss_status tensor_err(const ss_safetensors *st, const char *name, const char *fmt, ...)
{
    char msg[640], qn[100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ss_seterr(SS_ERR_FORMAT, "%s: tensor '%s': %s", st->label, quote(name, qn, sizeof qn),
                     msg);
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* ---- header pre-scan ---- */

/* One pass over the raw header before cJSON sees it: valid UTF-8, nesting at
 * most ST_MAX_DEPTH, arrays of at most ST_MAX_ARRAY elements. This bounds
 * the number of JSON nodes (memory) by a small multiple of the header size. */
static ss_status prescan(const ss_safetensors *st, const unsigned char *h, size_t n)
{
    int depth = 0, in_str = 0, esc = 0;
    char kind[ST_MAX_DEPTH + 1];
    size_t commas[ST_MAX_DEPTH + 1];
    for (size_t i = 0; i < n; i++) {
        unsigned c = h[i];
        if (c >= 0x80) { /* UTF-8 multibyte sequence */
            size_t len;
            unsigned min;
            if ((c & 0xe0) == 0xc0) len = 2, min = 0x80;
            else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800;
            else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000;
            else return ss_seterr(SS_ERR_FORMAT, "%s: header is not valid UTF-8 at byte %zu",
                                  st->label, i + 8);
            if (len > n - i)
                return ss_seterr(SS_ERR_FORMAT, "%s: header is not valid UTF-8 at byte %zu",
                                 st->label, i + 8);
            unsigned cp = c & (0x7fu >> len);
            for (size_t k = 1; k < len; k++) {
                if ((h[i + k] & 0xc0) != 0x80)
                    return ss_seterr(SS_ERR_FORMAT, "%s: header is not valid UTF-8 at byte %zu",
                                     st->label, i + 8);
                cp = (cp << 6) | (h[i + k] & 0x3f);
            }
            if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return ss_seterr(SS_ERR_FORMAT, "%s: header is not valid UTF-8 at byte %zu",
                                 st->label, i + 8);
            i += len - 1;
            esc = 0;
            continue;
        }
        if (in_str) {
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (depth == ST_MAX_DEPTH)
                return ss_seterr(SS_ERR_FORMAT,
                                 "%s: header JSON nests deeper than %d levels at byte %zu",
                                 st->label, ST_MAX_DEPTH, i + 8);
            depth++;
            kind[depth] = (char)c;
            commas[depth] = 0;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--; /* mismatches are left to the JSON parser */
        } else if (c == ',' && depth > 0 && kind[depth] == '[') {
            if (++commas[depth] >= ST_MAX_ARRAY)
                return ss_seterr(SS_ERR_FORMAT,
                                 "%s: header holds an array of more than %d elements at byte %zu",
                                 st->label, ST_MAX_ARRAY, i + 8);
        }
    }
    return SS_OK;
}

/* ---- parsing ---- */

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static ss_status parse_metadata(ss_safetensors *st, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return ss_seterr(SS_ERR_FORMAT, "%s: __metadata__ is not a JSON object", st->label);
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return SS_OK;
    st->meta_keys = calloc((size_t)n, sizeof *st->meta_keys);
    st->meta_vals = calloc((size_t)n, sizeof *st->meta_vals);
    if (!st->meta_keys || !st->meta_vals)
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %d metadata entries", st->label, n);
    char qk[100];
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m) || !m->valuestring)
            return ss_seterr(SS_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                             st->label, quote(m->string, qk, sizeof qk));
        st->meta_keys[st->nmeta] = strdup(m->string);
        st->meta_vals[st->nmeta] = strdup(m->valuestring);
        if (!st->meta_keys[st->nmeta] || !st->meta_vals[st->nmeta]) {
            st->nmeta++;
            return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", st->label);
        }
        st->nmeta++;
    }
    /* Duplicate keys: sort a copy of the key pointers (O(n log n), since a
     * hostile header may hold millions of keys). */
    char **keys = malloc((size_t)st->nmeta * sizeof *keys);
    if (!keys) return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", st->label);
    memcpy(keys, st->meta_keys, (size_t)st->nmeta * sizeof *keys);
    qsort(keys, (size_t)st->nmeta, sizeof *keys, cmp_cstr);
    ss_status s = SS_OK;
    for (int k = 1; k < st->nmeta && s == SS_OK; k++)
        if (strcmp(keys[k - 1], keys[k]) == 0)
            s = ss_seterr(SS_ERR_FORMAT, "%s: __metadata__ has duplicate key '%s'", st->label,
                          quote(keys[k], qk, sizeof qk));
    free(keys);
    return s;
}

static ss_status parse_entry(ss_safetensors *st, const cJSON *t, ss_st_entry *e)
{
    const char *name = t->string;
    if (!cJSON_IsObject(t)) return tensor_err(st, name, "entry is not a JSON object");
    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    char qf[100];
    for (const cJSON *f = t->child; f; f = f->next) {
        const cJSON **slot = strcmp(f->string, "dtype") == 0          ? &jd
                             : strcmp(f->string, "shape") == 0        ? &js
                             : strcmp(f->string, "data_offsets") == 0 ? &jo
                                                                      : NULL;
        if (!slot)
            return tensor_err(st, name,
                              "unknown field '%s' (expected dtype, shape, data_offsets)",
                              quote(f->string, qf, sizeof qf));
        if (*slot) return tensor_err(st, name, "duplicate field '%s'", f->string);
        *slot = f;
    }
    if (!jd) return tensor_err(st, name, "missing field 'dtype'");
    if (!js) return tensor_err(st, name, "missing field 'shape'");
    if (!jo) return tensor_err(st, name, "missing field 'data_offsets'");

    if (!cJSON_IsString(jd) || !jd->valuestring)
        return tensor_err(st, name, "dtype is not a string");
    if (!dtype_from_name(jd->valuestring, &e->dtype))
        return tensor_err(st, name,
                          "dtype '%s' is not supported (expected one of F64, F32, F16, BF16, "
                          "I64, I32, I16, I8, U8, BOOL)",
                          quote(jd->valuestring, qf, sizeof qf));

    if (!cJSON_IsArray(js)) return tensor_err(st, name, "shape is not an array");
    int nd = cJSON_GetArraySize(js);
    if (nd > SS_ST_MAX_DIMS)
        return tensor_err(st, name, "shape has %d dimensions, at most %d are supported", nd,
                          SS_ST_MAX_DIMS);
    e->ndim = nd;
    size_t numel = 1;
    int overflow = 0, d = 0;
    for (const cJSON *v = js->child; v; v = v->next, d++) {
        uint64_t u;
        if (!json_uint(v, &u))
            return tensor_err(st, name, "shape[%d] is not a non-negative integer", d);
        e->shape[d] = (int64_t)u;
        if (u > SIZE_MAX || ss_mul_overflow(numel, (size_t)u, &numel)) overflow = 1;
    }
    char shp[200];
    fmt_shape(shp, sizeof shp, e->ndim, e->shape);
    size_t need = 0;
    if (overflow || ss_mul_overflow(numel, ss_dtype_size(e->dtype), &need))
        return tensor_err(st, name, "shape %s of %s overflows the size range", shp,
                          ss_dtype_name(e->dtype));

    uint64_t b, en;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
        !json_uint(jo->child->next, &en))
        return tensor_err(st, name, "data_offsets is not an array of two non-negative integers");
    if (b > en)
        return tensor_err(st, name, "data_offsets [%llu,%llu] end before they begin",
                          (unsigned long long)b, (unsigned long long)en);
    if (en > st->data_size)
        return tensor_err(st, name, "data_offsets [%llu,%llu] extend past the %zu-byte buffer",
                          (unsigned long long)b, (unsigned long long)en, st->data_size);
    e->offset = (size_t)b;
    e->nbytes = (size_t)(en - b);
    if (e->nbytes != need)
        return tensor_err(st, name, "data_offsets [%llu,%llu] hold %zu bytes but shape %s of %s "
                          "needs %zu",
                          (unsigned long long)b, (unsigned long long)en, e->nbytes, shp,
                          ss_dtype_name(e->dtype), need);
    return SS_OK;
}

/* Stable bottom-up merge sort of entry indices (qsort has no context
 * argument, and a file-scope context would not be thread-safe). */
static void sort_idx(int *idx, int n, const ss_safetensors *st,
                     int (*cmp)(const ss_safetensors *, int, int), int *tmp)
{
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = cmp(st, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

static int cmp_name_i(const ss_safetensors *st, int a, int b)
{
    return strcmp(st->entries[a].name, st->entries[b].name);
}

static int cmp_offset_i(const ss_safetensors *st, int a, int b)
{
    const ss_st_entry *x = &st->entries[a], *y = &st->entries[b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

static ss_status parse(ss_safetensors *st)
{
    const unsigned char *f = st->file;
    size_t size = st->file_size;
    if (size < 8)
        return ss_seterr(SS_ERR_FORMAT,
                         "%s: file holds %zu bytes, too few for the 8-byte header length",
                         st->label, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f[i];
    if (hlen > SS_ST_MAX_HEADER)
        return ss_seterr(SS_ERR_FORMAT, "%s: header length %llu exceeds the limit of %zu bytes",
                         st->label, (unsigned long long)hlen, SS_ST_MAX_HEADER);
    if (hlen > size - 8)
        return ss_seterr(SS_ERR_FORMAT,
                         "%s: header length %llu exceeds the %zu bytes after the length field",
                         st->label, (unsigned long long)hlen, size - 8);
    const char *h = (const char *)f + 8;
    if (hlen < 2 || h[0] != '{')
        return ss_seterr(SS_ERR_FORMAT, "%s: header does not start with '{'", st->label);
    st->data = f + 8 + hlen;
    st->data_size = size - 8 - (size_t)hlen;

    ss_status s = prescan(st, (const unsigned char *)h, (size_t)hlen);
    if (s != SS_OK) return s;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= h && end <= h + hlen ? (size_t)(end - h) + 8 : 8;
        return ss_seterr(SS_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu)",
                         st->label, at);
    }
    for (const char *p = end; p < h + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return ss_seterr(SS_ERR_FORMAT,
                             "%s: header has trailing bytes after the JSON object at byte %zu",
                             st->label, (size_t)(p - h) + 8);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ss_seterr(SS_ERR_FORMAT, "%s: header is not a JSON object", st->label);
    }

    int nchild = cJSON_GetArraySize(root);
    st->entries = calloc(nchild > 0 ? (size_t)nchild : 1, sizeof *st->entries);
    st->by_name = calloc(nchild > 0 ? (size_t)nchild : 1, sizeof *st->by_name);
    int *tmp = calloc(nchild > 0 ? (size_t)nchild : 1, sizeof *tmp);
    if (!st->entries || !st->by_name || !tmp) {
        free(tmp);
        cJSON_Delete(root);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %d tensors", st->label, nchild);
    }
    int seen_meta = 0;
    for (const cJSON *t = root->child; t && s == SS_OK; t = t->next) {
        if (strcmp(t->string, "__metadata__") == 0) {
            if (seen_meta)
                s = ss_seterr(SS_ERR_FORMAT, "%s: header has two __metadata__ entries",
                              st->label);
            else
                s = parse_metadata(st, t);
            seen_meta = 1;
            continue;
        }
        ss_st_entry *e = &st->entries[st->n];
        s = parse_entry(st, t, e);
        if (s != SS_OK) break;
        e->name = strdup(t->string);
        if (!e->name) {
            s = ss_seterr(SS_ERR_NOMEM, "%s: out of memory", st->label);
            break;
        }
        st->n++;
    }
    cJSON_Delete(root);
    if (s != SS_OK) {
        free(tmp);
        return s;
    }

    /* Unique names. */
    for (int i = 0; i < st->n; i++) st->by_name[i] = i;
    sort_idx(st->by_name, st->n, st, cmp_name_i, tmp);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->entries[st->by_name[i]].name, st->entries[st->by_name[i - 1]].name) == 0) {
            char qn[100];
            free(tmp);
            return ss_seterr(SS_ERR_FORMAT, "%s: duplicate tensor name '%s'", st->label,
                             quote(st->entries[st->by_name[i]].name, qn, sizeof qn));
        }

    /* The byte ranges must tile the buffer exactly. */
    int *by_off = malloc((st->n > 0 ? (size_t)st->n : 1) * sizeof *by_off);
    if (!by_off) {
        free(tmp);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", st->label);
    }
    for (int i = 0; i < st->n; i++) by_off[i] = i;
    sort_idx(by_off, st->n, st, cmp_offset_i, tmp);
    free(tmp);
    size_t cursor = 0;
    const ss_st_entry *prev = NULL;
    for (int i = 0; i < st->n && s == SS_OK; i++) {
        const ss_st_entry *e = &st->entries[by_off[i]];
        char qp[100];
        if (e->offset < cursor)
            s = tensor_err(st, e->name, "data_offsets [%zu,%zu] overlap tensor '%s' at [%zu,%zu]",
                           e->offset, e->offset + e->nbytes, quote(prev->name, qp, sizeof qp),
                           prev->offset, prev->offset + prev->nbytes);
        else if (e->offset > cursor)
            s = tensor_err(st, e->name,
                           "data_offsets [%zu,%zu] leave a gap: bytes [%zu,%zu) of the buffer "
                           "belong to no tensor",
                           e->offset, e->offset + e->nbytes, cursor, e->offset);
        cursor = e->offset + e->nbytes;
        prev = e;
    }
    free(by_off);
    if (s == SS_OK && cursor != st->data_size)
        s = ss_seterr(SS_ERR_FORMAT,
                      "%s: the tensors cover %zu bytes but the buffer after the header holds %zu",
                      st->label, cursor, st->data_size);
    return s;
}

ss_status ss_st_open_memory(const void *buf, size_t n, const char *label, ss_safetensors **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_st_open_memory: out is NULL");
    *out = NULL;
    if (!label) label = "<memory>";
    if (!buf && n > 0) return ss_seterr(SS_ERR_INVALID, "%s: buffer is NULL", label);
    ss_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->label = strdup(label)) || !(st->file = malloc(n ? n : 1))) {
        ss_st_close(st);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory for %zu bytes", label, n);
    }
    if (n) memcpy(st->file, buf, n);
    st->file_size = n;
    ss_status s = parse(st);
    if (s != SS_OK) {
        ss_st_close(st);
        return s;
    }
    *out = st;
    return SS_OK;
}

ss_status ss_st_open(const char *path, ss_safetensors **out)
{
    if (!out || !path) return ss_seterr(SS_ERR_INVALID, "ss_st_open: NULL argument");
    *out = NULL;
    void *data;
    size_t n;
    ss_status s = ss_read_file(path, SIZE_MAX - 1, &data, &n);
    if (s != SS_OK) return s;
    ss_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->label = strdup(path))) {
        free(data);
        free(st);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    }
    st->file = data;
    st->file_size = n;
    s = parse(st);
    if (s != SS_OK) {
        ss_st_close(st);
        return s;
    }
    *out = st;
    return SS_OK;
}

void ss_st_close(ss_safetensors *st)
{
    if (!st) return;
    if (st->entries)
        for (int i = 0; i < st->n; i++) free((char *)st->entries[i].name);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->entries);
    free(st->by_name);
    free(st->file);
    free(st->label);
    free(st);
}

int ss_st_count(const ss_safetensors *st) { return st ? st->n : 0; }

const ss_st_entry *ss_st_entry_at(const ss_safetensors *st, int i)
{
    return (st && i >= 0 && i < st->n) ? &st->entries[i] : NULL;
}

const ss_st_entry *ss_st_find(const ss_safetensors *st, const char *name)
{
    if (!st || !name) return NULL;
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const ss_st_entry *e = &st->entries[st->by_name[mid]];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const void *ss_st_data(const ss_safetensors *st, const ss_st_entry *e)
{
    if (!st || !e) return NULL;
    return st->data + e->offset;
}

const char *ss_st_meta(const ss_safetensors *st, const char *key)
{
    if (!st || !key) return NULL;
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

int ss_st_meta_count(const ss_safetensors *st) { return st ? st->nmeta : 0; }

const char *ss_st_meta_key_at(const ss_safetensors *st, int i)
{
    return (st && i >= 0 && i < st->nmeta) ? st->meta_keys[i] : NULL;
}

const char *ss_st_meta_value_at(const ss_safetensors *st, int i)
{
    return (st && i >= 0 && i < st->nmeta) ? st->meta_vals[i] : NULL;
}

/* ---- conversion ---- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static double elem_as_double(const unsigned char *p, ss_dtype dt)
{
    switch (dt) {
    case SS_DT_F64: { double v; memcpy(&v, p, 8); return v; }
    case SS_DT_F32: { float v; memcpy(&v, p, 4); return v; }
    case SS_DT_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_float(v); }
    case SS_DT_BF16: {
        uint16_t v;
        memcpy(&v, p, 2);
        uint32_t bits = (uint32_t)v << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    case SS_DT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case SS_DT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SS_DT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case SS_DT_I8: return (int8_t)p[0];
    case SS_DT_U8: return p[0];
    case SS_DT_BOOL: return p[0] != 0;
    }
    return 0.0;
}

static ss_status find_or_err(const ss_safetensors *st, const char *name, const ss_st_entry **e)
{
    if (!st || !name) return ss_seterr(SS_ERR_INVALID, "ss_st_read: NULL argument");
    *e = ss_st_find(st, name);
    if (!*e) {
        char qn[100];
        return ss_seterr(SS_ERR_FORMAT, "%s: no tensor named '%s'", st->label,
                         quote(name, qn, sizeof qn));
    }
    return SS_OK;
}

ss_status ss_st_read_f32(const ss_safetensors *st, const char *name, float *dst, int ndim,
                         const int64_t *shape)
{
    const ss_st_entry *e;
    ss_status s = find_or_err(st, name, &e);
    if (s != SS_OK) return s;
    int same = ndim == e->ndim && (ndim == 0 || shape);
    for (int i = 0; same && i < ndim; i++) same = shape[i] == e->shape[i];
    if (!same) {
        char want[200], got[200], qn[100];
        if (ndim < 0 || ndim > SS_ST_MAX_DIMS || (ndim > 0 && !shape))
            snprintf(want, sizeof want, "(%d dims)", ndim);
        else
            fmt_shape(want, sizeof want, ndim, shape);
        fmt_shape(got, sizeof got, e->ndim, e->shape);
        return ss_seterr(SS_ERR_SHAPE, "%s: tensor '%s': expected shape %s but the file holds %s",
                         st->label, quote(name, qn, sizeof qn), want, got);
    }
    size_t es = ss_dtype_size(e->dtype), numel = e->nbytes / es;
    if (numel > 0 && !dst) return ss_seterr(SS_ERR_INVALID, "ss_st_read_f32: dst is NULL");
    const unsigned char *p = st->data + e->offset;
    if (e->dtype == SS_DT_F32) {
        if (numel) memcpy(dst, p, e->nbytes);
    } else {
        for (size_t i = 0; i < numel; i++) dst[i] = (float)elem_as_double(p + i * es, e->dtype);
    }
    return SS_OK;
}

ss_status ss_st_read_i32(const ss_safetensors *st, const char *name, int32_t *dst, int64_t n)
{
    const ss_st_entry *e;
    ss_status s = find_or_err(st, name, &e);
    if (s != SS_OK) return s;
    char qn[100];
    quote(name, qn, sizeof qn);
    switch (e->dtype) {
    case SS_DT_F64: case SS_DT_F32: case SS_DT_F16: case SS_DT_BF16:
        return ss_seterr(SS_ERR_FORMAT, "%s: tensor '%s': dtype %s, expected an integer type "
                         "(I32 or I64)", st->label, qn, ss_dtype_name(e->dtype));
    default: break;
    }
    size_t es = ss_dtype_size(e->dtype), numel = e->nbytes / es;
    if (n < 0 || (uint64_t)n != (uint64_t)numel) {
        char got[200];
        fmt_shape(got, sizeof got, e->ndim, e->shape);
        return ss_seterr(SS_ERR_SHAPE, "%s: tensor '%s': expected %lld elements but shape %s "
                         "holds %zu", st->label, qn, (long long)n, got, numel);
    }
    if (numel > 0 && !dst) return ss_seterr(SS_ERR_INVALID, "ss_st_read_i32: dst is NULL");
    const unsigned char *p = st->data + e->offset;
    for (size_t i = 0; i < numel; i++) {
        if (e->dtype == SS_DT_I64) {
            int64_t v;
            memcpy(&v, p + i * 8, 8);
            if (v < INT32_MIN || v > INT32_MAX)
                return ss_seterr(SS_ERR_RANGE, "%s: tensor '%s': element %zu = %lld does not fit "
                                 "in int32", st->label, qn, i, (long long)v);
            dst[i] = (int32_t)v;
        } else {
            dst[i] = (int32_t)elem_as_double(p + i * es, e->dtype);
        }
    }
    return SS_OK;
}

/* ---- writer ---- */

typedef struct wentry {
    char *name;
    ss_dtype dt;
    int ndim;
    int64_t shape[SS_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} wentry;

struct ss_st_writer {
    wentry *t;
    int n, cap;
    char **mk, **mv;
    int nm, mcap;
};

ss_st_writer *ss_st_writer_new(void)
{
    ss_st_writer *w = calloc(1, sizeof *w);
    if (!w) ss_seterr(SS_ERR_NOMEM, "ss_st_writer_new: out of memory");
    return w;
}

void ss_st_writer_free(ss_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, len, min;
        if (c < 0x80) { p++; continue; }
        if ((c & 0xe0) == 0xc0) len = 2, min = 0x80;
        else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800;
        else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000;
        else return 0;
        unsigned cp = c & (0x7fu >> len);
        for (unsigned k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        p += len;
    }
    return 1;
}

ss_status ss_st_writer_add(ss_st_writer *w, const char *name, ss_dtype dt, int ndim,
                           const int64_t *shape, const void *data)
{
    if (!w || !name) return ss_seterr(SS_ERR_INVALID, "ss_st_writer_add: NULL argument");
    char qn[100];
    quote(name, qn, sizeof qn);
    if (!*name || strcmp(name, "__metadata__") == 0 || !valid_utf8(name))
        return ss_seterr(SS_ERR_INVALID, "safetensors writer: invalid tensor name '%s' (empty, "
                         "reserved or not UTF-8)", qn);
    if (ss_dtype_size(dt) == 0)
        return ss_seterr(SS_ERR_INVALID, "safetensors writer: tensor '%s': invalid dtype %d", qn,
                         (int)dt);
    if (ndim < 0 || ndim > SS_ST_MAX_DIMS || (ndim > 0 && !shape))
        return ss_seterr(SS_ERR_INVALID, "safetensors writer: tensor '%s': ndim %d outside "
                         "0..%d", qn, ndim, SS_ST_MAX_DIMS);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ss_seterr(SS_ERR_INVALID, "safetensors writer: tensor '%s': shape[%d] = %lld "
                             "is negative", qn, i, (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX || ss_mul_overflow(numel, (size_t)shape[i], &numel))
            return ss_seterr(SS_ERR_RANGE, "safetensors writer: tensor '%s': size overflows", qn);
    }
    size_t nbytes;
    if (ss_mul_overflow(numel, ss_dtype_size(dt), &nbytes))
        return ss_seterr(SS_ERR_RANGE, "safetensors writer: tensor '%s': size overflows", qn);
    if (nbytes > 0 && !data)
        return ss_seterr(SS_ERR_INVALID, "safetensors writer: tensor '%s': data is NULL", qn);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return ss_seterr(SS_ERR_INVALID, "safetensors writer: duplicate tensor name '%s'", qn);
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        wentry *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return ss_seterr(SS_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wentry *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return ss_seterr(SS_ERR_NOMEM, "safetensors writer: out of memory");
    e->dt = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    e->data = data;
    w->n++;
    return SS_OK;
}

ss_status ss_st_writer_meta(ss_st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value) return ss_seterr(SS_ERR_INVALID, "ss_st_writer_meta: NULL argument");
    if (!valid_utf8(key) || !valid_utf8(value))
        return ss_seterr(SS_ERR_INVALID, "safetensors writer: metadata key or value is not UTF-8");
    char *v = strdup(value);
    if (!v) return ss_seterr(SS_ERR_NOMEM, "safetensors writer: out of memory");
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) {
            free(w->mv[i]);
            w->mv[i] = v;
            return SS_OK;
        }
    if (w->nm == w->mcap) {
        int nc = w->mcap ? 2 * w->mcap : 8;
        char **a = realloc(w->mk, (size_t)nc * sizeof *a);
        if (a) w->mk = a;
        char **b = a ? realloc(w->mv, (size_t)nc * sizeof *b) : NULL;
        if (b) w->mv = b;
        if (!a || !b) {
            free(v);
            return ss_seterr(SS_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->mcap = nc;
    }
    if (!(w->mk[w->nm] = strdup(key))) {
        free(v);
        return ss_seterr(SS_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->mv[w->nm++] = v;
    return SS_OK;
}

/* Growable string. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string literal, escaped as serde_json does. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_str(b, esc);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

ss_status ss_st_writer_save(ss_st_writer *w, const char *path)
{
    if (!w || !path) return ss_seterr(SS_ERR_INVALID, "ss_st_writer_save: NULL argument");
    /* Sort tensors by name and metadata by key (pointers to the name field
     * sort with one comparator). */
    char ***tsort = malloc((size_t)(w->n ? w->n : 1) * sizeof *tsort);
    char ***msort = malloc((size_t)(w->nm ? w->nm : 1) * sizeof *msort);
    if (!tsort || !msort) {
        free(tsort);
        free(msort);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < w->n; i++) tsort[i] = &w->t[i].name;
    for (int i = 0; i < w->nm; i++) msort[i] = &w->mk[i];
    qsort(tsort, (size_t)w->n, sizeof *tsort, cmp_str_ptr);
    qsort(msort, (size_t)w->nm, sizeof *msort, cmp_str_ptr);

    sbuf b = {0};
    sb_str(&b, "{");
    int first = 1;
    if (w->nm > 0) {
        sb_str(&b, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            int k = (int)(msort[i] - w->mk);
            if (i) sb_str(&b, ",");
            sb_json_string(&b, w->mk[k]);
            sb_str(&b, ":");
            sb_json_string(&b, w->mv[k]);
        }
        sb_str(&b, "}");
        first = 0;
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wentry *e = (const wentry *)((const char *)tsort[i] - offsetof(wentry, name));
        char num[64];
        if (!first) sb_str(&b, ",");
        first = 0;
        sb_json_string(&b, e->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, ss_dtype_name(e->dt));
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            sb_str(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + e->nbytes);
        sb_str(&b, num);
        off += e->nbytes;
    }
    sb_str(&b, "}");
    while (!b.oom && b.len % 8 != 0) sb_str(&b, " ");
    if (b.oom) {
        free(b.p);
        free(tsort);
        free(msort);
        return ss_seterr(SS_ERR_NOMEM, "%s: out of memory for the header", path);
    }

    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    ss_atomic_file *f;
    ss_status s = ss_atomic_open(path, &f);
    if (s == SS_OK) s = ss_atomic_write(f, len8, 8);
    if (s == SS_OK) s = ss_atomic_write(f, b.p, b.len);
    for (int i = 0; i < w->n && s == SS_OK; i++) {
        const wentry *e = (const wentry *)((const char *)tsort[i] - offsetof(wentry, name));
        s = ss_atomic_write(f, e->data, e->nbytes);
    }
    if (s == SS_OK) s = ss_atomic_commit(f);
    free(b.p);
    free(tsort);
    free(msort);
    return s;
}
