/* safetensors: round trip of every dtype, exact header bytes, and every
 * validation failure with its message. */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "selfsup/fileio.h"
#include "selfsup/safetensors.h"
#include "selfsup/textrun.h"
#include "selfsup/train.h"
#include "testutil.h"

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* A file image: 8-byte length, header, then `ndata` bytes 0,1,2,... */
static unsigned char *mk(const char *hdr, size_t ndata, size_t *n)
{
    size_t hl = strlen(hdr);
    *n = 8 + hl + ndata;
    unsigned char *b = malloc(*n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < ndata; i++) b[8 + hl + i] = (unsigned char)i;
    return b;
}

/* Open a header + data image; return the status, message in ss_errmsg(). */
static ss_status try_open(const char *hdr, size_t ndata)
{
    size_t n;
    unsigned char *b = mk(hdr, ndata, &n);
    ss_safetensors *st = NULL;
    ss_status s = ss_st_open_memory(b, n, "t.safetensors", &st);
    free(b);
    if (s == SS_OK) ss_st_close(st);
    return s;
}

#define EXPECT_FAIL(hdr, ndata, code, substr) do { \
    ss_status _s = try_open(hdr, ndata); \
    CHECK_MSG(_s == (code), "status %d for %s", (int)_s, hdr); \
    CHECK_MSG(strstr(ss_errmsg(), substr) != NULL, "message '%s' lacks '%s'", ss_errmsg(), substr); \
} while (0)

static void test_roundtrip(void)
{
    double f64[3] = {1.5, -2.25, 1e300};
    float f32[6] = {0.f, 1.f, -1.f, 3.5f, 1e-3f, 65504.f};
    uint16_t f16[5] = {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF}; /* 1, -2, 0.33325, 2^-24, 65504 */
    uint16_t bf16[3] = {0x3F80, 0xC040, 0x4049};                 /* 1, -3, 3.140625 */
    int64_t i64[4] = {-5, 0, 7, 2147483647};
    int32_t i32[2] = {-100000, 42};
    int16_t i16[2] = {-300, 300};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[2] = {0, 255};
    uint8_t bl[3] = {1, 0, 1};
    float scalar = 2.5f;
    int64_t s3[1] = {3}, s23[2] = {2, 3}, s5[1] = {5}, s4[2] = {2, 2}, s2[1] = {2}, s0[2] = {4, 0};

    ss_st_writer *w = ss_st_writer_new();
    CHECK(w != NULL);
    CHECK_OK(ss_st_writer_add(w, "f64", SS_DT_F64, 1, s3, f64));
    CHECK_OK(ss_st_writer_add(w, "f32", SS_DT_F32, 2, s23, f32));
    CHECK_OK(ss_st_writer_add(w, "f16", SS_DT_F16, 1, s5, f16));
    CHECK_OK(ss_st_writer_add(w, "bf16", SS_DT_BF16, 1, s3, bf16));
    CHECK_OK(ss_st_writer_add(w, "i64", SS_DT_I64, 2, s4, i64));
    CHECK_OK(ss_st_writer_add(w, "i32", SS_DT_I32, 1, s2, i32));
    CHECK_OK(ss_st_writer_add(w, "i16", SS_DT_I16, 1, s2, i16));
    CHECK_OK(ss_st_writer_add(w, "i8", SS_DT_I8, 1, s3, i8));
    CHECK_OK(ss_st_writer_add(w, "u8", SS_DT_U8, 1, s2, u8));
    CHECK_OK(ss_st_writer_add(w, "bool", SS_DT_BOOL, 1, s3, bl));
    CHECK_OK(ss_st_writer_add(w, "scalar", SS_DT_F32, 0, NULL, &scalar));
    CHECK_OK(ss_st_writer_add(w, "empty", SS_DT_F32, 2, s0, NULL));
    CHECK_OK(ss_st_writer_meta(w, "format", "pt"));
    CHECK_OK(ss_st_writer_meta(w, "note", "quote \" backslash \\ newline \n tab \t \x01 \xc3\xa9"));
    CHECK_OK(ss_st_writer_meta(w, "format", "pt2")); /* replaces */
    /* writer argument errors */
    CHECK(ss_st_writer_add(w, "f32", SS_DT_F32, 1, s2, f32) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "duplicate tensor name 'f32'") != NULL);
    CHECK(ss_st_writer_add(w, "__metadata__", SS_DT_F32, 1, s2, f32) == SS_ERR_INVALID);
    CHECK(ss_st_writer_add(w, "", SS_DT_F32, 1, s2, f32) == SS_ERR_INVALID);
    CHECK(ss_st_writer_add(w, "bad\xff", SS_DT_F32, 1, s2, f32) == SS_ERR_INVALID);
    CHECK(ss_st_writer_add(w, "x", (ss_dtype)99, 1, s2, f32) == SS_ERR_INVALID);
    CHECK(ss_st_writer_add(w, "x", SS_DT_F32, 9, s2, f32) == SS_ERR_INVALID);
    int64_t neg[1] = {-1}, huge[3] = {INT64_MAX, INT64_MAX, 4};
    CHECK(ss_st_writer_add(w, "x", SS_DT_F32, 1, neg, f32) == SS_ERR_INVALID);
    CHECK(strstr(ss_errmsg(), "shape[0] = -1 is negative") != NULL);
    CHECK(ss_st_writer_add(w, "x", SS_DT_F32, 3, huge, f32) == SS_ERR_RANGE);
    CHECK(ss_st_writer_add(w, "x", SS_DT_F32, 1, s2, NULL) == SS_ERR_INVALID);
    CHECK_OK(ss_st_writer_save(w, tpath("all.safetensors")));
    ss_st_writer_free(w);

    ss_safetensors *st = NULL;
    CHECK_OK(ss_st_open(tpath("all.safetensors"), &st));
    if (!st) return;
    CHECK(ss_st_count(st) == 12);
    /* File order is name order. */
    const char *order[12] = {"bf16", "bool", "empty", "f16", "f32", "f64",
                             "i16",  "i32",  "i64",   "i8",  "scalar", "u8"};
    size_t off = 0;
    for (int i = 0; i < 12; i++) {
        const ss_st_entry *e = ss_st_entry_at(st, i);
        CHECK_MSG(e && strcmp(e->name, order[i]) == 0, "entry %d is %s", i, e ? e->name : "?");
        if (e) {
            CHECK(e->offset == off);
            off += e->nbytes;
        }
    }
    CHECK(ss_st_entry_at(st, 12) == NULL && ss_st_entry_at(st, -1) == NULL);
    CHECK(ss_st_find(st, "nope") == NULL);
    CHECK(strcmp(ss_st_meta(st, "format"), "pt2") == 0);
    CHECK(strcmp(ss_st_meta(st, "note"), "quote \" backslash \\ newline \n tab \t \x01 \xc3\xa9") == 0);
    CHECK(ss_st_meta(st, "missing") == NULL);
    CHECK(ss_st_meta_count(st) == 2);
    CHECK(strcmp(ss_st_meta_key_at(st, 0), "format") == 0);

    const ss_st_entry *e = ss_st_find(st, "f32");
    CHECK(e && e->dtype == SS_DT_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3 &&
          e->nbytes == 24);
    CHECK(e && memcmp(ss_st_data(st, e), f32, 24) == 0);
    e = ss_st_find(st, "i8");
    CHECK(e && e->dtype == SS_DT_I8 && memcmp(ss_st_data(st, e), i8, 3) == 0);
    e = ss_st_find(st, "bool");
    CHECK(e && e->dtype == SS_DT_BOOL && e->nbytes == 3);
    e = ss_st_find(st, "scalar");
    CHECK(e && e->ndim == 0 && e->nbytes == 4);
    e = ss_st_find(st, "empty");
    CHECK(e && e->ndim == 2 && e->shape[1] == 0 && e->nbytes == 0);

    float out[8];
    CHECK_OK(ss_st_read_f32(st, "f64", out, 1, s3));
    CHECK(out[0] == 1.5f && out[1] == -2.25f && isinf(out[2]));
    CHECK_OK(ss_st_read_f32(st, "f32", out, 2, s23));
    CHECK(memcmp(out, f32, 24) == 0);
    CHECK_OK(ss_st_read_f32(st, "f16", out, 1, s5));
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    CHECK_NEAR(out[2], 0.333251953125, 0);
    CHECK_NEAR(out[3], 5.9604644775390625e-8, 0);
    CHECK(out[4] == 65504.0f);
    CHECK_OK(ss_st_read_f32(st, "bf16", out, 1, s3));
    CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 3.140625f);
    CHECK_OK(ss_st_read_f32(st, "i64", out, 2, s4));
    CHECK(out[0] == -5.f && out[2] == 7.f && out[3] == 2147483648.f);
    CHECK_OK(ss_st_read_f32(st, "i8", out, 1, s3));
    CHECK(out[0] == -128.f && out[2] == 127.f);
    CHECK_OK(ss_st_read_f32(st, "u8", out, 1, s2));
    CHECK(out[1] == 255.f);
    CHECK_OK(ss_st_read_f32(st, "bool", out, 1, s3));
    CHECK(out[0] == 1.f && out[1] == 0.f && out[2] == 1.f);
    CHECK_OK(ss_st_read_f32(st, "i16", out, 1, s2));
    CHECK(out[0] == -300.f);
    CHECK_OK(ss_st_read_f32(st, "scalar", out, 0, NULL));
    CHECK(out[0] == 2.5f);
    CHECK_OK(ss_st_read_f32(st, "empty", NULL, 2, s0));

    /* shape mismatch and missing names */
    int64_t s32[2] = {3, 2};
    CHECK(ss_st_read_f32(st, "f32", out, 2, s32) == SS_ERR_SHAPE);
    CHECK(strcmp(ss_errmsg(), "") != 0 &&
          strstr(ss_errmsg(), "tensor 'f32': expected shape [3,2] but the file holds [2,3]"));
    CHECK(ss_st_read_f32(st, "f32", out, 1, s3) == SS_ERR_SHAPE);
    CHECK(ss_st_read_f32(st, "nope", out, 1, s3) == SS_ERR_FORMAT);
    CHECK(strstr(ss_errmsg(), "no tensor named 'nope'") != NULL);

    int32_t iout[4];
    CHECK_OK(ss_st_read_i32(st, "i32", iout, 2));
    CHECK(iout[0] == -100000 && iout[1] == 42);
    CHECK_OK(ss_st_read_i32(st, "i64", iout, 4));
    CHECK(iout[0] == -5 && iout[3] == 2147483647);
    CHECK_OK(ss_st_read_i32(st, "u8", iout, 2));
    CHECK(iout[1] == 255);
    CHECK(ss_st_read_i32(st, "i32", iout, 3) == SS_ERR_SHAPE);
    CHECK(strstr(ss_errmsg(), "expected 3 elements but shape [2] holds 2") != NULL);
    CHECK(ss_st_read_i32(st, "f32", iout, 6) == SS_ERR_FORMAT);
    ss_st_close(st);

    /* I64 values outside int32 */
    int64_t big[2] = {1, (int64_t)1 << 40};
    w = ss_st_writer_new();
    CHECK_OK(ss_st_writer_add(w, "labels", SS_DT_I64, 1, s2, big));
    CHECK_OK(ss_st_writer_save(w, tpath("big.safetensors")));
    ss_st_writer_free(w);
    CHECK_OK(ss_st_open(tpath("big.safetensors"), &st));
    CHECK(ss_st_read_i32(st, "labels", iout, 2) == SS_ERR_RANGE);
    CHECK(strstr(ss_errmsg(), "element 1 = 1099511627776 does not fit in int32") != NULL);
    ss_st_close(st);
}

/* The writer's exact bytes: compact JSON, metadata first, tensors sorted by
 * name, space padding to a multiple of 8. */
static void test_exact_bytes(void)
{
    float b[2] = {1.0f, 2.0f};
    int8_t a[3] = {1, 2, 3};
    int64_t s2[1] = {2}, s3[1] = {3};
    ss_st_writer *w = ss_st_writer_new();
    CHECK_OK(ss_st_writer_add(w, "b", SS_DT_F32, 1, s2, b));
    CHECK_OK(ss_st_writer_add(w, "a", SS_DT_I8, 1, s3, a));
    CHECK_OK(ss_st_writer_meta(w, "format", "pt"));
    CHECK_OK(ss_st_writer_save(w, tpath("exact.safetensors")));
    ss_st_writer_free(w);
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]}}";
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    void *data;
    size_t n;
    CHECK_OK(ss_read_file(tpath("exact.safetensors"), 1 << 20, &data, &n));
    const unsigned char *p = data;
    CHECK(n == 8 + padded + 11);
    CHECK(p[0] == padded && p[1] == 0 && p[7] == 0);
    CHECK(memcmp(p + 8, hdr, hl) == 0);
    for (size_t i = hl; i < padded; i++) CHECK(p[8 + i] == ' ');
    CHECK(memcmp(p + 8 + padded, a, 3) == 0 && memcmp(p + 8 + padded + 3, b, 8) == 0);
    free(data);

    /* An empty writer gives "{}" padded to 8 bytes. */
    w = ss_st_writer_new();
    CHECK_OK(ss_st_writer_save(w, tpath("empty.safetensors")));
    ss_st_writer_free(w);
    CHECK_OK(ss_read_file(tpath("empty.safetensors"), 1 << 20, &data, &n));
    CHECK(n == 16 && memcmp((char *)data + 8, "{}      ", 8) == 0);
    free(data);
    ss_safetensors *st;
    CHECK_OK(ss_st_open(tpath("empty.safetensors"), &st));
    CHECK(ss_st_count(st) == 0 && ss_st_meta(st, "format") == NULL);
    ss_st_close(st);
}

static void test_validation(void)
{
    /* The example from the docs, message checked in full. */
    CHECK(try_open("{\"blocks.0.conv.weight\":{\"dtype\":\"F32\",\"shape\":[32,1,3,3],"
                   "\"data_offsets\":[0,100]}}", 100) == SS_ERR_FORMAT);
    CHECK_MSG(strcmp(ss_errmsg(), "t.safetensors: tensor 'blocks.0.conv.weight': data_offsets "
                                  "[0,100] hold 100 bytes but shape [32,1,3,3] of F32 needs "
                                  "1152") == 0, "%s", ss_errmsg());

    /* Whole-file framing. */
    ss_safetensors *st = NULL;
    CHECK(ss_st_open_memory("abc", 3, "t.safetensors", &st) == SS_ERR_FORMAT && !st);
    CHECK(strstr(ss_errmsg(), "t.safetensors: file holds 3 bytes, too few") != NULL);
    unsigned char hl_big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK(ss_st_open_memory(hl_big, 16, "t.safetensors", &st) == SS_ERR_FORMAT);
    CHECK(strstr(ss_errmsg(), "exceeds the limit of 100000000 bytes") != NULL);
    unsigned char hl_past[16] = {9, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    CHECK(ss_st_open_memory(hl_past, 16, "t.safetensors", &st) == SS_ERR_FORMAT);
    CHECK(strstr(ss_errmsg(), "header length 9 exceeds the 8 bytes after the length field"));
    CHECK(ss_st_open(tpath("does-not-exist.safetensors"), &st) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "does-not-exist.safetensors: cannot open") != NULL);

    /* Header syntax. */
    EXPECT_FAIL("[]      ", 0, SS_ERR_FORMAT, "header does not start with '{'");
    EXPECT_FAIL("{\"a\":", 0, SS_ERR_FORMAT, "header is not valid JSON");
    EXPECT_FAIL("{}  x", 0, SS_ERR_FORMAT, "trailing bytes after the JSON object at byte 12");
    EXPECT_FAIL("{\"\xc3\x28\":{}}", 0, SS_ERR_FORMAT, "header is not valid UTF-8 at byte 10");
    EXPECT_FAIL("{\"\xed\xa0\x80\":{}}", 0, SS_ERR_FORMAT, "not valid UTF-8"); /* surrogate */
    EXPECT_FAIL("{\"\xc0\x80\":{}}", 0, SS_ERR_FORMAT, "not valid UTF-8");     /* overlong */
    EXPECT_FAIL("{\"a\":{\"b\":[[1]]}}", 0, SS_ERR_FORMAT, "nests deeper than 3 levels");
    {
        char h[512] = "{\"a\":{\"dtype\":\"U8\",\"shape\":[";
        for (int i = 0; i < 70; i++) strcat(h, i ? ",1" : "1");
        strcat(h, "],\"data_offsets\":[0,1]}}");
        EXPECT_FAIL(h, 1, SS_ERR_FORMAT, "array of more than 64 elements");
    }

    /* Entry structure. */
    EXPECT_FAIL("{\"a\":5}", 0, SS_ERR_FORMAT, "t.safetensors: tensor 'a': entry is not a JSON object");
    EXPECT_FAIL("{\"a\":{\"shape\":[],\"data_offsets\":[0,4]}}", 4, SS_ERR_FORMAT,
                "tensor 'a': missing field 'dtype'");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, SS_ERR_FORMAT,
                "tensor 'a': missing field 'shape'");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}", 4, SS_ERR_FORMAT,
                "tensor 'a': missing field 'data_offsets'");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1}}", 4,
                SS_ERR_FORMAT, "tensor 'a': unknown field 'x'");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                4, SS_ERR_FORMAT, "tensor 'a': duplicate field 'dtype'");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[],\"data_offsets\":[0,1]}}", 1,
                SS_ERR_FORMAT, "tensor 'a': dtype 'F8_E4M3' is not supported");
    EXPECT_FAIL("{\"a\":{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,4]}}", 4, SS_ERR_FORMAT,
                "tensor 'a': dtype is not a string");

    /* Shapes. */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'a': shape is not an array");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[-3],\"data_offsets\":[0,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'a': shape[0] is not a non-negative integer");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'a': shape[1] is not a non-negative integer");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"3\"],\"data_offsets\":[0,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'a': shape[0] is not a non-negative integer");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'a': shape[0] is not a non-negative integer");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                1, SS_ERR_FORMAT, "tensor 'a': shape has 9 dimensions, at most 8 are supported");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                "\"data_offsets\":[0,0]}}", 0, SS_ERR_FORMAT,
                "tensor 'a': shape [4294967296,4294967296,16] of F32 overflows the size range");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],"
                "\"data_offsets\":[0,0]}}", 0, SS_ERR_FORMAT, "overflows the size range");

    /* Offsets. */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, SS_ERR_FORMAT,
                "tensor 'a': data_offsets is not an array of two non-negative integers");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                SS_ERR_FORMAT, "data_offsets is not an array of two non-negative integers");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                SS_ERR_FORMAT, "data_offsets is not an array of two non-negative integers");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                SS_ERR_FORMAT, "tensor 'a': data_offsets [8,4] end before they begin");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                SS_ERR_FORMAT, "tensor 'a': data_offsets [0,8] extend past the 4-byte buffer");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}}",
                4, SS_ERR_FORMAT, "data_offsets is not an array of two non-negative integers");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'b': data_offsets [4,12] overlap tensor 'a' at [0,8]");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
                SS_ERR_FORMAT, "tensor 'b': data_offsets [8,12] leave a gap: bytes [4,8)");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                SS_ERR_FORMAT, "leave a gap: bytes [0,4)");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6,
                SS_ERR_FORMAT, "t.safetensors: the tensors cover 4 bytes but the buffer after "
                "the header holds 6");
    /* Zero-size tensors may sit anywhere on the boundary, also reordered. */
    CHECK_OK(try_open("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                      "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8));
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
                SS_ERR_FORMAT, "tensor 'z': data_offsets [4,4] overlap tensor 'a'");

    /* Names and metadata. */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                SS_ERR_FORMAT, "t.safetensors: duplicate tensor name 'a'");
    EXPECT_FAIL("{\"__metadata__\":{\"k\":1}}", 0, SS_ERR_FORMAT,
                "__metadata__ value of 'k' is not a string");
    EXPECT_FAIL("{\"__metadata__\":[]}", 0, SS_ERR_FORMAT, "__metadata__ is not a JSON object");
    EXPECT_FAIL("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, SS_ERR_FORMAT,
                "__metadata__ has duplicate key 'k'");
    EXPECT_FAIL("{\"__metadata__\":{},\"__metadata__\":{}}", 0, SS_ERR_FORMAT,
                "two __metadata__ entries");
    /* Names from the file are printed escaped in messages. */
    EXPECT_FAIL("{\"a\\n'b\":5}", 0, SS_ERR_FORMAT, "tensor 'a\\x0a\\x27b': entry is not");

    /* A minimal valid file with metadata and trailing header whitespace. */
    size_t n;
    unsigned char *b = mk("{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"U8\",\"shape\":[2,2],"
                          "\"data_offsets\":[0,4]}}  \n", 4, &n);
    CHECK_OK(ss_st_open_memory(b, n, NULL, &st));
    free(b);
    if (st) {
        const ss_st_entry *e = ss_st_find(st, "w");
        CHECK(e && e->nbytes == 4 && ((const unsigned char *)ss_st_data(st, e))[3] == 3);
        CHECK(strcmp(ss_st_meta(st, "k"), "v") == 0);
        ss_st_close(st);
    }
}

/* Header with n metadata keys and n one-byte tensors stored in reverse
 * order; with dup, the last key repeats the first one. */
static unsigned char *many_file(int n, int dup, size_t *size)
{
    size_t cap = (size_t)n * 80 + 64, o = 0;
    char *h = malloc(cap);
    o += (size_t)snprintf(h + o, cap - o, "{\"__metadata__\":{");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(h + o, cap - o, "%s\"k%d\":\"v\"", i ? "," : "",
                              dup && i == n - 1 ? 0 : i);
    o += (size_t)snprintf(h + o, cap - o, "}");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(h + o, cap - o,
                              ",\"t%d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                              i, n - 1 - i, n - i);
    snprintf(h + o, cap - o, "}");
    unsigned char *b = mk(h, (size_t)n, size);
    free(h);
    return b;
}

/* Many tensors and metadata keys: validation stays O(n log n) (a quadratic
 * duplicate check would take minutes here), and duplicates are still found. */
static void test_many(void)
{
    enum { N = 60000 };
    size_t n;
    unsigned char *b = many_file(N, 0, &n);
    ss_safetensors *st = NULL;
    CHECK_OK(ss_st_open_memory(b, n, "many", &st));
    free(b);
    CHECK(ss_st_count(st) == N && ss_st_meta_count(st) == N);
    const ss_st_entry *e = ss_st_find(st, "t12345");
    CHECK(e && e->offset == N - 1 - 12345 && e->nbytes == 1);
    CHECK(ss_st_meta(st, "k59999") && strcmp(ss_st_meta(st, "k59999"), "v") == 0);
    ss_st_close(st);
    b = many_file(N, 1, &n);
    CHECK(ss_st_open_memory(b, n, "many", &st) == SS_ERR_FORMAT);
    CHECK(strstr(ss_errmsg(), "many: __metadata__ has duplicate key 'k0'") != NULL);
    free(b);
}

/* Saving into a folder that does not exist fails and leaves nothing. */
static void test_save_errors(void)
{
    float v[1] = {1};
    int64_t s1[1] = {1};
    ss_st_writer *w = ss_st_writer_new();
    CHECK_OK(ss_st_writer_add(w, "v", SS_DT_F32, 1, s1, v));
    CHECK(ss_st_writer_save(w, tpath("missing/x.safetensors")) == SS_ERR_IO);
    CHECK(strstr(ss_errmsg(), "cannot create temporary file") != NULL);
    ss_st_writer_free(w);
}

/* ss_checkpoint_meta: a value, or NULL with the message and the code of
 * what went wrong (a file another program wrote has no selfsup metadata). */
static void test_checkpoint_meta(void)
{
    float w[2] = {1, 2};
    ss_st_writer *wr = ss_st_writer_new();
    CHECK_OK(ss_st_writer_add(wr, "x", SS_DT_F32, 1, (int64_t[]){2}, w));
    CHECK_OK(ss_st_writer_meta(wr, "encoder", "convnet-s"));
    CHECK_OK(ss_st_writer_save(wr, tpath("meta.safetensors")));
    ss_st_writer_free(wr);
    wr = ss_st_writer_new();
    CHECK_OK(ss_st_writer_add(wr, "x", SS_DT_F32, 1, (int64_t[]){2}, w));
    CHECK_OK(ss_st_writer_save(wr, tpath("nometa.safetensors")));
    ss_st_writer_free(wr);

    ss_clearerr();
    CHECK(ss_errcode() == SS_OK && ss_errmsg()[0] == '\0');
    char *v = ss_checkpoint_meta(tpath("meta.safetensors"), "encoder");
    CHECK(v && !strcmp(v, "convnet-s"));
    free(v);
    CHECK(ss_errcode() == SS_OK);

    CHECK(ss_checkpoint_meta(tpath("nometa.safetensors"), "encoder") == NULL);
    CHECK(ss_errcode() == SS_ERR_FORMAT);
    CHECK_MSG(strstr(ss_errmsg(), "nometa.safetensors: no 'encoder' in its safetensors metadata") != NULL, "%s",
              ss_errmsg());
    /* the text side's reader passes the code on, not a guess */
    ss_tokenizer *tok = NULL;
    CHECK(ss_text_checkpoint_tokenizer(tpath("nometa.safetensors"), &tok, NULL) == SS_ERR_FORMAT);
    CHECK(tok == NULL);

    ss_clearerr();
    CHECK(ss_checkpoint_meta(tpath("absent.safetensors"), "encoder") == NULL);
    CHECK(ss_errcode() != SS_OK && ss_errcode() != SS_ERR_FORMAT);
    CHECK(ss_text_checkpoint_tokenizer(tpath("absent.safetensors"), &tok, NULL) == ss_errcode());
    CHECK_MSG(strstr(ss_errmsg(), "absent.safetensors") != NULL, "%s", ss_errmsg());
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "test_safetensors_tmp_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_exact_bytes();
    test_validation();
    test_many();
    test_save_errors();
    test_checkpoint_meta();
    /* Clean up the scratch folder. */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    int leftovers = 0;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (strstr(de->d_name, ".tmp.")) leftovers++;
        unlink(tpath(de->d_name));
    }
    if (d) closedir(d);
    rmdir(tmpdir);
    CHECK(leftovers == 0);
    TEST_MAIN_END();
}
