/* selfsup — safetensors reader and writer.
 *
 * Format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * u64 header length N, N bytes of UTF-8 JSON
 *
 *     {"__metadata__": {"k": "v"},
 *      "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
 *
 * then the byte buffer; data_offsets are relative to the start of the buffer.
 *
 * The reader treats every file as hostile and validates all of it before
 * returning: the header length is bounded by the file size and by
 * SS_ST_MAX_HEADER; the header is a JSON object; each tensor entry has exactly
 * the fields dtype (one of ss_dtype), shape (at most SS_ST_MAX_DIMS
 * non-negative integers, overflow-checked product) and data_offsets [begin,
 * end] with end - begin == numel * dtype size; the tensors' byte ranges tile
 * the buffer exactly (contiguous, non-overlapping, no gap, nothing after);
 * names are unique; __metadata__, if present, maps strings to strings. Any
 * violation gives SS_ERR_FORMAT with a one-line message naming the file, the
 * tensor and the field, e.g.
 *
 *     ckpt.safetensors: tensor 'blocks.0.conv.weight': data_offsets [0,100]
 *     hold 100 bytes but shape [32,1,3,3] of F32 needs 1152
 *
 * Reading:
 *
 *     ss_safetensors *st;
 *     if (ss_st_open("ckpt.safetensors", &st) != SS_OK) { report ss_errmsg(); }
 *     int64_t shp[2] = {10, 64};
 *     ss_st_read_f32(st, "head.weight", w, 2, shp);
 *     ss_st_close(st);
 *
 * Writing (the writer keeps the data pointers; see ss_st_writer_add):
 *
 *     ss_st_writer *w = ss_st_writer_new();
 *     ss_st_writer_add(w, "head.weight", SS_DT_F32, 2, shp, w_data);
 *     ss_st_writer_meta(w, "format", "pt");
 *     ss_st_writer_save(w, "ckpt.safetensors");   // atomic replace
 *     ss_st_writer_free(w);
 *
 * Written files follow the Rust safetensors crate's layout: compact JSON,
 * "__metadata__" first (keys sorted), then tensors sorted by name (byte
 * order) with data offsets assigned in that order, each entry's fields in the
 * order dtype, shape, data_offsets, and the header padded with spaces to a
 * multiple of 8 bytes so the buffer starts 8-aligned.
 */
#ifndef SELFSUP_SAFETENSORS_H
#define SELFSUP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types. Names in the file: "F64", "F32", "F16", "BF16", "I64",
 * "I32", "I16", "I8", "U8", "BOOL". Other safetensors dtypes (F8_*, U16, ...)
 * are rejected as unsupported format. */
typedef enum ss_dtype {
    SS_DT_F64,
    SS_DT_F32,
    SS_DT_F16,
    SS_DT_BF16,
    SS_DT_I64,
    SS_DT_I32,
    SS_DT_I16,
    SS_DT_I8,
    SS_DT_U8,
    SS_DT_BOOL
} ss_dtype;

/* Maximum number of dimensions of one tensor. */
#define SS_ST_MAX_DIMS 8
/* Default and hard limit on the JSON header length, in bytes (100 MB). */
#define SS_ST_MAX_HEADER ((size_t)100 * 1000 * 1000)

/* Size in bytes of one element (0 for an invalid value). */
size_t ss_dtype_size(ss_dtype dt);
/* The file name of a dtype ("F32", ...; "?" for an invalid value). */
const char *ss_dtype_name(ss_dtype dt);

/* One tensor of an open file. offset is relative to the data buffer (see
 * ss_st_data); nbytes = numel * ss_dtype_size(dtype). */
typedef struct ss_st_entry {
    const char *name;
    ss_dtype dtype;
    int ndim;
    int64_t shape[SS_ST_MAX_DIMS];
    size_t offset, nbytes;
} ss_st_entry;

typedef struct ss_safetensors ss_safetensors;

/* Read and validate the whole file (see the rules above). On success *out
 * owns a copy of the file; close it with ss_st_close. Errors: SS_ERR_IO
 * (cannot read), SS_ERR_FORMAT (any validation failure), SS_ERR_NOMEM. */
ss_status ss_st_open(const char *path, ss_safetensors **out);

/* Same for an in-memory image of a file (used by the fuzzer). The bytes are
 * copied, so buf may be freed after the call. label names the source in
 * error messages (NULL -> "<memory>"). */
ss_status ss_st_open_memory(const void *buf, size_t n, const char *label,
                            ss_safetensors **out);

/* Free an open file (NULL is fine). Entries and data pointers die with it. */
void ss_st_close(ss_safetensors *st);

/* Number of tensors (the "__metadata__" entry is not a tensor). */
int ss_st_count(const ss_safetensors *st);

/* The i-th tensor in header (file) order, or NULL if i is out of range. */
const ss_st_entry *ss_st_entry_at(const ss_safetensors *st, int i);

/* The tensor named name, or NULL. O(log n). */
const ss_st_entry *ss_st_find(const ss_safetensors *st, const char *name);

/* Pointer to the raw little-endian bytes of e (e->nbytes of them). The
 * pointer is only as aligned as the file makes it (files written by
 * ss_st_writer_save and by the Rust/Python library put the buffer at an
 * 8-aligned position, but tensor offsets need not be multiples of the element
 * size): copy with memcpy, or use ss_st_read_f32 / ss_st_read_i32. */
const void *ss_st_data(const ss_safetensors *st, const ss_st_entry *e);

/* Value of metadata key, or NULL when absent. */
const char *ss_st_meta(const ss_safetensors *st, const char *key);

/* Number of metadata entries, and the i-th key/value in file order (NULL
 * when i is out of range). */
int ss_st_meta_count(const ss_safetensors *st);
const char *ss_st_meta_key_at(const ss_safetensors *st, int i);
const char *ss_st_meta_value_at(const ss_safetensors *st, int i);

/* Copy tensor name into dst (numel floats) as float32, converting from any
 * dtype (F64 rounds to nearest; I64 etc. convert as (float)value; BOOL gives
 * 0/1). The file's shape must equal (ndim, shape) exactly, else SS_ERR_SHAPE
 * naming the tensor, the expected and the found shape. Missing tensor:
 * SS_ERR_FORMAT "no tensor named ...". */
ss_status ss_st_read_f32(const ss_safetensors *st, const char *name, float *dst, int ndim,
                         const int64_t *shape);

/* Copy tensor name into dst as int32. The tensor must be I32 or I64 (or a
 * narrower integer type / BOOL) with exactly n elements (else SS_ERR_SHAPE);
 * I64 values outside the int32 range give SS_ERR_RANGE; float dtypes give
 * SS_ERR_FORMAT. */
ss_status ss_st_read_i32(const ss_safetensors *st, const char *name, int32_t *dst, int64_t n);

/* ---- writer ---- */
typedef struct ss_st_writer ss_st_writer;

/* A new empty writer (NULL on out-of-memory). */
ss_st_writer *ss_st_writer_new(void);

/* Add a tensor. The name and shape are copied; the data pointer is KEPT, not
 * copied: the caller must keep those numel * ss_dtype_size(dt) bytes alive
 * and unchanged until ss_st_writer_save returns. data may be NULL only when
 * the tensor has no elements. Data is written in host byte order, which must
 * be little-endian (all supported targets are). Errors: SS_ERR_INVALID (empty
 * or reserved "__metadata__" name, duplicate name, bad dtype, ndim outside
 * 0..SS_ST_MAX_DIMS, negative dimension), SS_ERR_RANGE (size overflow),
 * SS_ERR_NOMEM. */
ss_status ss_st_writer_add(ss_st_writer *w, const char *name, ss_dtype dt, int ndim,
                           const int64_t *shape, const void *data);

/* Set a metadata string (key and value are copied; setting a key again
 * replaces its value). */
ss_status ss_st_writer_meta(ss_st_writer *w, const char *key, const char *value);

/* Write the file atomically (temporary file in the same folder, fsync,
 * rename, fsync folder; see fileio.h). The writer stays usable afterwards.
 * Errors: SS_ERR_IO, SS_ERR_NOMEM. */
ss_status ss_st_writer_save(ss_st_writer *w, const char *path);

/* Free the writer (NULL is fine); the tensors' data is not touched. */
void ss_st_writer_free(ss_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
