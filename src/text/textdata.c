/* Text datasets: unlabelled corpora, labelled sets (tables and folders),
 * seeded class-balanced splits and subsets, Debian defaults. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selfsup/text.h"
#include "text/text_internal.h"

/* Largest single file read (after decompression). */
#define TXT_MAX_FILE ((size_t)1 << 30)
/* Deepest folder recursion. */
#define TXT_MAX_DEPTH 32
/* Most distinct labels in a table. */
#define TXT_MAX_CLASSES 65536

/* ------------------------------------------------------------ set building */

typedef struct builder {
    ss_textset *s;
    int64_t cap;
} builder;

static int is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static size_t rtrim_len(const char *t, size_t n)
{
    while (n > 0 && is_ws((unsigned char)t[n - 1])) n--;
    return n;
}

/* Append a copy of text (trailing whitespace removed). */
static ss_status push(builder *b, const char *text, size_t len, int32_t label)
{
    ss_textset *s = b->s;
    len = rtrim_len(text, len);
    if (s->n >= INT32_MAX)
        return ss_seterr(SS_ERR_NOMEM, "%s: more than %d samples", s->source, INT32_MAX);
    if (s->n == b->cap) {
        int64_t nc = b->cap ? b->cap * 2 : 1024;
        char **nt = realloc(s->texts, (size_t)nc * sizeof *nt);
        if (!nt) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", s->source);
        s->texts = nt;
        size_t *nl = realloc(s->lens, (size_t)nc * sizeof *nl);
        if (!nl) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", s->source);
        s->lens = nl;
        int32_t *nlab = realloc(s->labels, (size_t)nc * sizeof *nlab);
        if (!nlab) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", s->source);
        s->labels = nlab;
        b->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", s->source);
    memcpy(c, text, len);
    c[len] = '\0';
    s->texts[s->n] = c;
    s->lens[s->n] = len;
    s->labels[s->n] = label;
    s->n++;
    return SS_OK;
}

/* Append every non-blank line of text. */
static ss_status push_lines(builder *b, const char *text, size_t len, int32_t label)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        if (rtrim_len(text + i, e - i) > 0) {
            ss_status st = push(b, text + i, e - i, label);
            if (st != SS_OK) return st;
        }
        i = e + 1;
    }
    return SS_OK;
}

void ss_textset_free(ss_textset *s)
{
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) free(s->texts[i]);
    free(s->texts);
    free(s->lens);
    free(s->labels);
    for (int c = 0; c < s->nclasses; c++) free(s->class_names[c]);
    free(s->class_names);
    memset(s, 0, sizeof *s);
}

static char *dupn(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* ------------------------------------------------------------- file names */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Whether the name ends with suf (case-insensitive). */
static int ends_with(const char *name, size_t n, const char *suf)
{
    size_t l = strlen(suf);
    return n >= l && strncasecmp(name + n - l, suf, l) == 0;
}

/* Length of name without a trailing ".gz". */
static size_t strip_gz(const char *name)
{
    size_t n = strlen(name);
    return ends_with(name, n, ".gz") ? n - 3 : n;
}

/* Documentation and checksum files, skipped in folders. */
static int is_doc_name(const char *name)
{
    static const char *const pre[] = {"README", "PROVENANCE", "LICENSE", "LICENCE", "COPYING"};
    for (size_t k = 0; k < sizeof pre / sizeof pre[0]; k++)
        if (strncasecmp(name, pre[k], strlen(pre[k])) == 0) return 1;
    size_t n = strlen(name);
    return ends_with(name, n, "SUMS") || ends_with(name, n, ".md") || ends_with(name, n, ".md.gz");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct strlist {
    char **v;
    int64_t n, cap;
} strlist;

static void strlist_free(strlist *l)
{
    for (int64_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int strlist_add(strlist *l, char *s)
{
    if (!s) return -1;
    if (l->n == l->cap) {
        int64_t nc = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            free(s);
            return -1;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 0;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k == 0 || p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* Sorted entries of dir (not hidden, not documentation), split into files
 * and folders (full paths). */
static ss_status list_dir(const char *dir, strlist *files, strlist *dirs)
{
    DIR *d = opendir(dir);
    if (!d) return ss_seterr(SS_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    strlist names = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (strlist_add(&names, dupn(e->d_name, strlen(e->d_name)))) {
            closedir(d);
            strlist_free(&names);
            return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", dir);
        }
    }
    closedir(d);
    if (names.n) qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    ss_status st = SS_OK;
    for (int64_t i = 0; i < names.n && st == SS_OK; i++) {
        char *p = join_path(dir, names.v[i]);
        struct stat sb;
        if (!p) {
            st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", dir);
        } else if (stat(p, &sb) != 0) {
            free(p); /* dangling link: skip */
        } else if (S_ISDIR(sb.st_mode)) {
            if (dirs && strlist_add(dirs, p)) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", dir);
            else if (!dirs) free(p);
        } else if (S_ISREG(sb.st_mode) && !is_doc_name(names.v[i])) {
            if (strlist_add(files, p)) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", dir);
        } else {
            free(p);
        }
    }
    strlist_free(&names);
    return st;
}

/* All files under dir, recursively, sorted by name at each level. */
static ss_status walk(const char *dir, int depth, strlist *out)
{
    if (depth > TXT_MAX_DEPTH)
        return ss_seterr(SS_ERR_FORMAT, "%s: folders nested deeper than %d", dir, TXT_MAX_DEPTH);
    strlist files = {0}, dirs = {0};
    ss_status st = list_dir(dir, &files, &dirs);
    /* Files of this level first, then each subfolder. */
    for (int64_t i = 0; st == SS_OK && i < files.n; i++) {
        if (strlist_add(out, files.v[i])) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", dir);
        files.v[i] = NULL;
    }
    for (int64_t i = 0; st == SS_OK && i < dirs.n; i++) st = walk(dirs.v[i], depth + 1, out);
    strlist_free(&files);
    strlist_free(&dirs);
    return st;
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ------------------------------------------------------------------ tables */

typedef struct trow {
    size_t off[2], len[2];
    int line;
} trow;

typedef struct table {
    trow *rows;
    int64_t n, cap;
} table;

static int is_table_name(const char *path)
{
    const char *b = base_name(path);
    size_t n = strip_gz(b);
    return ends_with(b, n, ".csv") || ends_with(b, n, ".tsv");
}

/* Parse buf (modified in place: quoted fields are unescaped) into rows of
 * exactly two fields. */
static ss_status parse_table(const char *path, char *buf, size_t len, table *t)
{
    const char *b = base_name(path);
    size_t bn = strip_gz(b);
    size_t pos = 0;
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        pos = 3;
    char delim;
    int quoting;
    if (ends_with(b, bn, ".tsv")) {
        delim = '\t';
        quoting = 0;
    } else if (ends_with(b, bn, ".csv")) {
        delim = ',';
        quoting = 1;
    } else {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t e = nl ? (size_t)(nl - buf) : len;
        int tab = memchr(buf + pos, '\t', e - pos) != NULL;
        delim = tab ? '\t' : ',';
        quoting = !tab;
    }
    int line = 1;
    while (pos < len) {
        if (buf[pos] == '\n' || (buf[pos] == '\r' && (pos + 1 == len || buf[pos + 1] == '\n'))) {
            pos += buf[pos] == '\r' ? 2 : 1; /* blank line */
            line++;
            continue;
        }
        int row_line = line, nf = 0;
        trow r = {{0, 0}, {0, 0}, row_line};
        for (;;) {
            size_t start, flen;
            if (quoting && buf[pos] == '"') {
                pos++;
                start = pos;
                size_t w = pos;
                for (;;) {
                    if (pos >= len)
                        return ss_seterr(SS_ERR_FORMAT,
                                         "%s:%d: unterminated quoted field (no closing '\"')", path,
                                         row_line);
                    char c = buf[pos];
                    if (c == '"') {
                        if (pos + 1 < len && buf[pos + 1] == '"') {
                            buf[w++] = '"';
                            pos += 2;
                            continue;
                        }
                        pos++;
                        break;
                    }
                    if (c == '\n') line++;
                    buf[w++] = c;
                    pos++;
                }
                flen = w - start;
                if (pos < len && buf[pos] != delim && buf[pos] != '\r' && buf[pos] != '\n')
                    return ss_seterr(SS_ERR_FORMAT,
                                     "%s:%d: unexpected character '%c' after a closing quote", path,
                                     line, buf[pos]);
            } else {
                start = pos;
                while (pos < len && buf[pos] != delim && buf[pos] != '\n') pos++;
                flen = pos - start;
                if (flen && buf[start + flen - 1] == '\r' && (pos == len || buf[pos] == '\n')) flen--;
            }
            if (nf < 2) {
                r.off[nf] = start;
                r.len[nf] = flen;
            }
            nf++;
            if (pos < len && buf[pos] == delim) {
                pos++;
                continue;
            }
            if (pos < len && buf[pos] == '\r') pos++;
            if (pos < len && buf[pos] == '\n') {
                pos++;
                line++;
            }
            break;
        }
        if (nf != 2)
            return ss_seterr(SS_ERR_FORMAT, "%s:%d: expected 2 fields (text%slabel), found %d", path,
                             row_line, delim == '\t' ? "<TAB>" : ",", nf);
        if (t->n == t->cap) {
            int64_t nc = t->cap ? t->cap * 2 : 1024;
            trow *nr = realloc(t->rows, (size_t)nc * sizeof *nr);
            if (!nr) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
            t->rows = nr;
            t->cap = nc;
        }
        t->rows[t->n++] = r;
    }
    return SS_OK;
}

/* Field text with surrounding whitespace removed. */
static void field_trim(const char *buf, const trow *r, int k, const char **s, size_t *n)
{
    const char *p = buf + r->off[k];
    size_t l = r->len[k];
    while (l && is_ws((unsigned char)*p)) {
        p++;
        l--;
    }
    l = rtrim_len(p, l);
    *s = p;
    *n = l;
}

static int parse_int(const char *s, size_t n, long long *v)
{
    if (n == 0 || n > 18) return 0;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i = 1;
        if (n == 1) return 0;
    }
    long long x = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (s[i] - '0');
    }
    *v = neg ? -x : x;
    return 1;
}

static int name_in(const char *s, size_t n, const char *const *names)
{
    for (int k = 0; names[k]; k++)
        if (strlen(names[k]) == n && strncasecmp(s, names[k], n) == 0) return 1;
    return 0;
}

static const char *const text_names[] = {"text", "sentence", "review", "document", "content",
                                         "snippet", NULL};
static const char *const label_names[] = {"label", "labels", "class", "polarity", "sentiment",
                                          "target", "y", "category", NULL};

typedef struct label_ent {
    const char *s;
    size_t n;
    long long v;
} label_ent;

static int cmp_label_int(const void *a, const void *b)
{
    long long x = ((const label_ent *)a)->v, y = ((const label_ent *)b)->v;
    return (x > y) - (x < y);
}

static int cmp_label_str(const void *a, const void *b)
{
    const label_ent *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* Load a table into out: labelled (keep_labels) or as corpus texts. */
static ss_status load_table(const char *path, int keep_labels, int by_line, ss_textset *out)
{
    char *buf;
    size_t len;
    ss_status st = ss_txt_read_file(path, TXT_MAX_FILE, &buf, &len);
    if (st != SS_OK) return st;
    if ((st = ss_txt_check_text(path, buf, len)) != SS_OK) {
        free(buf);
        return st;
    }
    table t = {0};
    st = parse_table(path, buf, len, &t);
    int64_t first = 0;
    int tcol = 0;
    if (st == SS_OK && t.n > 0) {
        const char *a, *b;
        size_t an, bn;
        field_trim(buf, &t.rows[0], 0, &a, &an);
        field_trim(buf, &t.rows[0], 1, &b, &bn);
        if (name_in(a, an, text_names) && name_in(b, bn, label_names)) {
            first = 1;
        } else if (name_in(a, an, label_names) && name_in(b, bn, text_names)) {
            first = 1;
            tcol = 1;
        } else {
            int all0 = 1, all1 = 1;
            long long v;
            for (int64_t i = 0; i < t.n && (all0 || all1); i++) {
                const char *s;
                size_t n;
                field_trim(buf, &t.rows[i], 0, &s, &n);
                all0 = all0 && parse_int(s, n, &v);
                field_trim(buf, &t.rows[i], 1, &s, &n);
                all1 = all1 && parse_int(s, n, &v);
            }
            tcol = (all0 && !all1) ? 1 : 0;
        }
    }
    int lcol = 1 - tcol;
    /* Rows: check, and collect labels. */
    label_ent *labs = NULL;
    int64_t nrows = t.n - first;
    if (st == SS_OK && nrows <= 0)
        st = ss_seterr(SS_ERR_FORMAT, "%s: no data rows", path);
    if (st == SS_OK) {
        labs = malloc((size_t)nrows * sizeof *labs);
        if (!labs) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
    }
    int all_int = 1;
    for (int64_t i = 0; st == SS_OK && i < nrows; i++) {
        const trow *r = &t.rows[first + i];
        const char *s;
        size_t n;
        field_trim(buf, r, tcol, &s, &n);
        if (n == 0) {
            st = ss_seterr(SS_ERR_FORMAT, "%s:%d: empty text", path, r->line);
            break;
        }
        field_trim(buf, r, lcol, &s, &n);
        if (n == 0) {
            st = ss_seterr(SS_ERR_FORMAT, "%s:%d: empty label", path, r->line);
            break;
        }
        labs[i].s = s;
        labs[i].n = n;
        if (!parse_int(s, n, &labs[i].v)) all_int = 0;
    }
    /* Class table. */
    label_ent *cls = NULL;
    int64_t ncls = 0;
    int direct = 0;
    if (st == SS_OK && keep_labels) {
        cls = malloc((size_t)nrows * sizeof *cls);
        if (!cls) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
    }
    if (st == SS_OK && keep_labels) {
        memcpy(cls, labs, (size_t)nrows * sizeof *cls);
        qsort(cls, (size_t)nrows, sizeof *cls, all_int ? cmp_label_int : cmp_label_str);
        for (int64_t i = 0; i < nrows; i++) {
            int same = ncls && (all_int ? cls[ncls - 1].v == cls[i].v
                                        : cmp_label_str(&cls[ncls - 1], &cls[i]) == 0);
            if (!same) cls[ncls++] = cls[i];
        }
        if (ncls > TXT_MAX_CLASSES)
            st = ss_seterr(SS_ERR_FORMAT, "%s: %lld distinct labels, more than the limit of %d", path,
                           (long long)ncls, TXT_MAX_CLASSES);
        direct = all_int && cls[0].v == 0 && cls[ncls - 1].v == ncls - 1;
    }
    if (st == SS_OK && keep_labels) {
        out->class_names = calloc((size_t)ncls, sizeof *out->class_names);
        if (!out->class_names) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
        else out->nclasses = (int)ncls;
        for (int64_t c = 0; st == SS_OK && c < ncls; c++) {
            out->class_names[c] = dupn(cls[c].s, cls[c].n);
            if (!out->class_names[c]) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
        }
    }
    builder bd = {out, 0};
    for (int64_t i = 0; st == SS_OK && i < nrows; i++) {
        const trow *r = &t.rows[first + i];
        int32_t label = -1;
        if (keep_labels) {
            if (direct) {
                label = (int32_t)labs[i].v;
            } else {
                label_ent *f = bsearch(&labs[i], cls, (size_t)ncls, sizeof *cls,
                                       all_int ? cmp_label_int : cmp_label_str);
                label = (int32_t)(f - cls);
            }
        }
        const char *txt = buf + r->off[tcol];
        size_t tl = r->len[tcol];
        st = by_line ? push_lines(&bd, txt, tl, label) : push(&bd, txt, tl, label);
    }
    free(labs);
    free(cls);
    free(t.rows);
    free(buf);
    return st;
}

/* ----------------------------------------------------------------- loaders */

static ss_status set_source(ss_textset *out, const char *path)
{
    memset(out, 0, sizeof *out);
    if (!path) return ss_seterr(SS_ERR_INVALID, "text set: path is NULL");
    snprintf(out->source, sizeof out->source, "%s", path);
    return SS_OK;
}

static ss_status read_into(builder *bd, const char *file, int by_line, int32_t label)
{
    char *buf;
    size_t len;
    ss_status st = ss_txt_read_file(file, TXT_MAX_FILE, &buf, &len);
    if (st != SS_OK) return st;
    if ((st = ss_txt_check_text(file, buf, len)) != SS_OK) {
        free(buf);
        return st;
    }
    if (by_line) st = push_lines(bd, buf, len, label);
    else if (rtrim_len(buf, len) > 0) st = push(bd, buf, len, label);
    free(buf);
    return st;
}

ss_status ss_textset_load_corpus(const char *path, int by_line, ss_textset *out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_textset_load_corpus: out is NULL");
    ss_status st = set_source(out, path);
    if (st != SS_OK) return st;
    builder bd = {out, 0};
    if (is_dir(path)) {
        strlist files = {0};
        st = walk(path, 0, &files);
        if (st == SS_OK && files.n == 0)
            st = ss_seterr(SS_ERR_FORMAT, "%s: folder holds no data files", path);
        for (int64_t i = 0; st == SS_OK && i < files.n; i++)
            st = read_into(&bd, files.v[i], by_line, -1);
        strlist_free(&files);
    } else if (is_table_name(path)) {
        st = load_table(path, 0, by_line, out);
    } else {
        st = read_into(&bd, path, 1, -1);
    }
    if (st == SS_OK && out->n == 0) st = ss_seterr(SS_ERR_FORMAT, "%s: no text found", path);
    if (st != SS_OK) ss_textset_free(out);
    return st;
}

/* Folder of one file per class. */
static ss_status load_file_per_class(const char *path, strlist *files, ss_textset *out)
{
    int64_t n = files->n;
    /* Stem and extension of each file (after dropping .gz). */
    int common = n >= 2;
    const char *b0 = base_name(files->v[0]);
    const char *d0 = NULL;
    {
        size_t l0 = strip_gz(b0);
        for (size_t k = l0; k > 0; k--)
            if (b0[k - 1] == '.') {
                d0 = b0 + k - 1;
                break;
            }
    }
    for (int64_t i = 0; common && i < n; i++) {
        const char *b = base_name(files->v[i]);
        size_t l = strip_gz(b);
        const char *dot = NULL;
        for (size_t k = l; k > 0; k--)
            if (b[k - 1] == '.') {
                dot = b + k - 1;
                break;
            }
        if (!dot || !d0 || dot == b || (size_t)(dot - b) != (size_t)(d0 - b0) ||
            memcmp(b, b0, (size_t)(dot - b)) != 0 || dot + 1 == b + l)
            common = 0;
    }
    typedef struct fc {
        char *name;
        const char *file;
    } fc;
    fc *v = calloc((size_t)n, sizeof *v);
    if (!v) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
    ss_status st = SS_OK;
    for (int64_t i = 0; i < n && st == SS_OK; i++) {
        const char *b = base_name(files->v[i]);
        size_t l = strip_gz(b);
        const char *dot = NULL;
        for (size_t k = l; k > 0; k--)
            if (b[k - 1] == '.') {
                dot = b + k - 1;
                break;
            }
        if (common) v[i].name = dupn(dot + 1, (size_t)(b + l - dot - 1));
        else v[i].name = dupn(b, dot && dot != b ? (size_t)(dot - b) : l);
        v[i].file = files->v[i];
        if (!v[i].name) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
    }
    /* Sort by class name (files are already sorted by full name). */
    for (int64_t i = 1; st == SS_OK && i < n; i++)
        for (int64_t j = i; j > 0 && strcmp(v[j - 1].name, v[j].name) > 0; j--) {
            fc tmp = v[j];
            v[j] = v[j - 1];
            v[j - 1] = tmp;
        }
    for (int64_t i = 1; st == SS_OK && i < n; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0)
            st = ss_seterr(SS_ERR_FORMAT, "%s: files %s and %s give the same class name \"%s\"",
                           path, v[i - 1].file, v[i].file, v[i].name);
    if (st == SS_OK) {
        out->class_names = calloc((size_t)n, sizeof *out->class_names);
        if (!out->class_names) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
    }
    builder bd = {out, 0};
    for (int64_t i = 0; st == SS_OK && i < n; i++) {
        out->class_names[i] = v[i].name;
        v[i].name = NULL;
        out->nclasses = (int)(i + 1);
        st = read_into(&bd, v[i].file, 1, (int32_t)i);
    }
    for (int64_t i = 0; i < n; i++) free(v[i].name);
    free(v);
    return st;
}

ss_status ss_textset_load_labelled(const char *path, ss_textset *out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_textset_load_labelled: out is NULL");
    ss_status st = set_source(out, path);
    if (st != SS_OK) return st;
    if (!is_dir(path)) {
        struct stat sb;
        if (stat(path, &sb) != 0) return ss_seterr(SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        st = load_table(path, 1, 0, out);
        if (st != SS_OK) ss_textset_free(out);
        return st;
    }
    strlist files = {0}, dirs = {0};
    st = list_dir(path, &files, &dirs);
    if (st == SS_OK && dirs.n > 0) {
        if (dirs.n > TXT_MAX_CLASSES)
            st = ss_seterr(SS_ERR_FORMAT, "%s: %lld class folders, more than %d", path,
                           (long long)dirs.n, TXT_MAX_CLASSES);
        if (st == SS_OK) {
            out->class_names = calloc((size_t)dirs.n, sizeof *out->class_names);
            if (!out->class_names) st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
        }
        builder bd = {out, 0};
        for (int64_t c = 0; st == SS_OK && c < dirs.n; c++) {
            const char *nm = base_name(dirs.v[c]);
            out->class_names[c] = dupn(nm, strlen(nm));
            if (!out->class_names[c]) {
                st = ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate", path);
                break;
            }
            out->nclasses = (int)(c + 1);
            strlist cf = {0};
            st = walk(dirs.v[c], 1, &cf);
            if (st == SS_OK && cf.n == 0)
                st = ss_seterr(SS_ERR_FORMAT, "%s: class folder %s holds no files", path, nm);
            for (int64_t i = 0; st == SS_OK && i < cf.n; i++)
                st = read_into(&bd, cf.v[i], 0, (int32_t)c);
            strlist_free(&cf);
        }
    } else if (st == SS_OK && files.n > 0) {
        st = load_file_per_class(path, &files, out);
    } else if (st == SS_OK) {
        st = ss_seterr(SS_ERR_FORMAT, "%s: folder holds no class files or class folders", path);
    }
    strlist_free(&files);
    strlist_free(&dirs);
    if (st == SS_OK && out->n == 0) st = ss_seterr(SS_ERR_FORMAT, "%s: no samples found", path);
    if (st != SS_OK) ss_textset_free(out);
    return st;
}

/* ------------------------------------------------------------- split/subset */

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* Group of a label: 0 for unlabelled, label + 1 otherwise; -1 if invalid. */
static int64_t group_of(const ss_textset *s, int32_t label)
{
    if (label < -1 || label >= s->nclasses) return -1;
    return (int64_t)label + 1;
}

/* Order the members of each group: idx sorted, grouped by label, each group
 * shuffled with its own stream. Returns group starts (ngroups + 1). */
static ss_status grouped_shuffle(const ss_textset *s, const int32_t *idx, int64_t n, uint64_t seed,
                                 int32_t **order_out, int64_t **start_out)
{
    int64_t ng = (int64_t)s->nclasses + 1;
    int32_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int64_t *start = calloc((size_t)ng + 1, sizeof *start);
    int64_t *fill = calloc((size_t)ng, sizeof *fill);
    int32_t *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!order || !start || !fill || !sorted) {
        free(order);
        free(start);
        free(fill);
        free(sorted);
        return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the split", s->source);
    }
    if (n) memcpy(sorted, idx, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_i32);
    for (int64_t i = 0; i < n; i++) {
        if (sorted[i] < 0 || sorted[i] >= s->n || (i && sorted[i] == sorted[i - 1])) {
            int32_t bad = sorted[i];
            free(order);
            free(start);
            free(fill);
            free(sorted);
            return ss_seterr(SS_ERR_RANGE, "%s: index %d is out of range [0, %lld) or repeated",
                             s->source, bad, (long long)s->n);
        }
        int64_t g = group_of(s, s->labels[sorted[i]]);
        if (g < 0) {
            int32_t lab = s->labels[sorted[i]], which = sorted[i];
            free(order);
            free(start);
            free(fill);
            free(sorted);
            return ss_seterr(SS_ERR_RANGE, "%s: sample %d has label %d, expected -1 .. %d",
                             s->source, (int)which, lab, s->nclasses - 1);
        }
        start[g + 1]++;
    }
    for (int64_t g = 0; g < ng; g++) start[g + 1] += start[g];
    for (int64_t i = 0; i < n; i++) {
        int64_t g = group_of(s, s->labels[sorted[i]]);
        order[start[g] + fill[g]++] = sorted[i];
    }
    for (int64_t g = 0; g < ng; g++) {
        ss_rng r;
        ss_rng_seed(&r, seed, (uint64_t)g);
        ss_rng_shuffle_i32(&r, order + start[g], start[g + 1] - start[g]);
    }
    free(fill);
    free(sorted);
    *order_out = order;
    *start_out = start;
    return SS_OK;
}

ss_status ss_textset_split(const ss_textset *s, double test_frac, uint64_t seed, int32_t **train,
                           int64_t *ntrain, int32_t **test, int64_t *ntest)
{
    if (!s || !train || !ntrain || !test || !ntest)
        return ss_seterr(SS_ERR_INVALID, "ss_textset_split: NULL argument");
    *train = *test = NULL;
    *ntrain = *ntest = 0;
    if (!(test_frac >= 0.0 && test_frac <= 1.0))
        return ss_seterr(SS_ERR_INVALID, "%s: test fraction %g is not in [0, 1]", s->source, test_frac);
    int32_t *all = malloc((size_t)(s->n ? s->n : 1) * sizeof *all);
    if (!all) return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the split", s->source);
    for (int64_t i = 0; i < s->n; i++) all[i] = (int32_t)i;
    int32_t *order;
    int64_t *start;
    ss_status st = grouped_shuffle(s, all, s->n, seed, &order, &start);
    free(all);
    if (st != SS_OK) return st;
    int32_t *tr = malloc((size_t)(s->n ? s->n : 1) * sizeof *tr);
    int32_t *te = malloc((size_t)(s->n ? s->n : 1) * sizeof *te);
    if (!tr || !te) {
        free(tr);
        free(te);
        free(order);
        free(start);
        return ss_seterr(SS_ERR_NOMEM, "%s: cannot allocate the split", s->source);
    }
    int64_t ntr = 0, nte = 0;
    for (int64_t g = 0; g < (int64_t)s->nclasses + 1; g++) {
        int64_t cnt = start[g + 1] - start[g];
        int64_t k = (int64_t)floor(test_frac * (double)cnt + 0.5);
        if (k > cnt) k = cnt;
        for (int64_t i = 0; i < cnt; i++) {
            if (i < k) te[nte++] = order[start[g] + i];
            else tr[ntr++] = order[start[g] + i];
        }
    }
    free(order);
    free(start);
    qsort(tr, (size_t)ntr, sizeof *tr, cmp_i32);
    qsort(te, (size_t)nte, sizeof *te, cmp_i32);
    *train = tr;
    *ntrain = ntr;
    *test = te;
    *ntest = nte;
    return SS_OK;
}

ss_status ss_textset_subset(const ss_textset *s, const int32_t *idx, int64_t n, const char *spec,
                            uint64_t seed, int32_t **out, int64_t *nout)
{
    if (!s || (!idx && n > 0) || !spec || !out || !nout || n < 0)
        return ss_seterr(SS_ERR_INVALID, "ss_textset_subset: bad argument");
    *out = NULL;
    *nout = 0;
    double pct = -1;
    long long per = -1;
    char *end;
    size_t sl = strlen(spec);
    if (strcmp(spec, "all") == 0) {
        pct = 100;
    } else if (sl > 1 && spec[sl - 1] == '%') {
        pct = strtod(spec, &end);
        if (end != spec + sl - 1 || !(pct > 0 && pct <= 100)) pct = -1;
        if (pct < 0)
            return ss_seterr(SS_ERR_INVALID, "subset \"%s\": the percentage must be in (0, 100]", spec);
    } else if (sl > 6 && strcmp(spec + sl - 6, "/class") == 0) {
        per = strtoll(spec, &end, 10);
        if (end != spec + sl - 6 || per < 1)
            return ss_seterr(SS_ERR_INVALID, "subset \"%s\": expected N/class with N >= 1", spec);
    } else {
        return ss_seterr(SS_ERR_INVALID,
                         "subset \"%s\": expected \"P%%\" (e.g. 1%%, 10%%), \"N/class\" or \"all\"",
                         spec);
    }
    int32_t *order;
    int64_t *start;
    /* A different stream family from the split, so subsets are independent of it. */
    ss_status st = grouped_shuffle(s, idx, n, ss_mix64(seed ^ 0x5375627365745ULL), &order, &start);
    if (st != SS_OK) return st;
    int64_t m = 0;
    for (int64_t g = 0; g < (int64_t)s->nclasses + 1; g++) {
        int64_t cnt = start[g + 1] - start[g];
        int64_t k;
        if (per > 0) k = per < cnt ? per : cnt;
        else {
            k = (int64_t)floor(pct / 100.0 * (double)cnt + 0.5);
            if (k < 1 && cnt > 0) k = 1;
            if (k > cnt) k = cnt;
        }
        memmove(order + m, order + start[g], (size_t)k * sizeof *order);
        m += k;
    }
    free(start);
    qsort(order, (size_t)m, sizeof *order, cmp_i32);
    *out = order;
    *nout = m;
    return SS_OK;
}

/* ---------------------------------------------------------------- defaults */

#define PATTERN_DIR "/usr/share/doc/python3-pattern/test/corpora/"

static const char *existing(const char *plain, const char *gz)
{
    if (access(plain, R_OK) == 0) return plain;
    if (access(gz, R_OK) == 0) return gz;
    return plain;
}

const char *ss_text_default_labelled(void)
{
    /* Note: pattern's README swaps the two pang&lee files; lee2 holds the
     * 4,000 rt-polarity sentences. */
    return existing(PATTERN_DIR "polarity-en-pang&lee2.csv", PATTERN_DIR "polarity-en-pang&lee2.csv.gz");
}

const char *ss_text_default_corpus(void)
{
    return existing(PATTERN_DIR "polarity-en-pang&lee1.csv", PATTERN_DIR "polarity-en-pang&lee1.csv.gz");
}
