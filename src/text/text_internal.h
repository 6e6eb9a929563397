/* Internal helpers of the text module: byte-string sets, integer-pair maps,
 * whole-file reading (gzip-aware) and atomic writes. */
#ifndef SS_TEXT_INTERNAL_H
#define SS_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "selfsup/status.h"

/* 64-bit hash of a byte string (FNV-1a folded through a mixer). */
uint64_t ss_txt_hash(const void *p, size_t n);

/* A set of byte strings; entry i (insertion order) keeps its key bytes. */
typedef struct ss_txt_strset {
    uint8_t *kbuf;    /* key bytes of all entries */
    size_t klen, kcap;
    size_t *koff;     /* per entry: offset into kbuf */
    size_t *ksize;    /* per entry: key length */
    uint64_t *khash;  /* per entry: hash */
    int64_t n, ncap;
    int64_t *table;   /* open addressing: entry index or -1 */
    size_t tcap;      /* power of two */
} ss_txt_strset;

void ss_txt_strset_free(ss_txt_strset *s);
/* Entry index of key, or -1. */
int64_t ss_txt_strset_find(const ss_txt_strset *s, const void *key, size_t len);
/* Entry index of key, adding it when absent (*added = 1); -1 when out of memory. */
int64_t ss_txt_strset_add(ss_txt_strset *s, const void *key, size_t len, int *added);
static inline const uint8_t *ss_txt_strset_key(const ss_txt_strset *s, int64_t i, size_t *len)
{
    *len = s->ksize[i];
    return s->kbuf + s->koff[i];
}

/* A map from (int32, int32) pairs to int32 values. */
typedef struct ss_txt_pairmap {
    uint64_t *keys;   /* (a << 32 | b) + 1; 0 = empty */
    int32_t *vals;
    size_t cap, n;    /* cap a power of two */
} ss_txt_pairmap;

void ss_txt_pairmap_free(ss_txt_pairmap *m);
/* The value of (a, b), or -1. */
int32_t ss_txt_pairmap_get(const ss_txt_pairmap *m, int32_t a, int32_t b);
/* Set (a, b) -> v; returns 0, or -1 when out of memory. */
int ss_txt_pairmap_put(ss_txt_pairmap *m, int32_t a, int32_t b, int32_t v);

/* Read a whole file into a malloc'd NUL-terminated buffer, gunzipping when
 * it starts with the gzip magic. More than max_bytes (after decompression)
 * is an SS_ERR_NOMEM error naming the file. */
ss_status ss_txt_read_file(const char *path, size_t max_bytes, char **buf, size_t *len);
/* SS_OK when buf[0..len) has no NUL byte (a binary file: it would also cut
 * C strings short). Nothing else is refused: the tokenizer is byte-level
 * and real corpora are not clean UTF-8 (rt-polarity is Latin-1; a control
 * byte 0x05 sits in polarity-en-pang&lee1.csv). Otherwise SS_ERR_FORMAT
 * naming path, line and column. */
ss_status ss_txt_check_text(const char *path, const char *buf, size_t len);

/* Write data to path atomically: temp file in the same folder, fsync, rename. */
ss_status ss_txt_write_atomic(const char *path, const void *data, size_t len);

/* GPT-2 byte <-> unicode code point tables. */
extern const uint16_t ss_txt_byte_to_cp[256];
/* Code point -> byte, or -1 when cp is not in the byte-level alphabet. */
int ss_txt_cp_to_byte(uint32_t cp);

#endif
