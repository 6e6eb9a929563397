/* Hostile inputs: every reader, given a bad file it makes itself, returns
 * an error (never crashes, never allocates what the file only claims) with
 * one line naming the file and the cause. Each case prints
 *   | reader | input | message |
 * which is the table in docs/RELIABILITY.md. Crashes found by fuzzing
 * (scripts/fuzz.sh) are added here as regression cases.
 * CLI cases need SS_BIN. */
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "selfsup/augment.h"
#include "selfsup/data.h"
#include "selfsup/fileio.h"
#include "selfsup/optim.h"
#include "selfsup/safetensors.h"
#include "selfsup/text.h"
#include "selfsup/train.h"
#include "stb_image_write.h"
#include "testutil.h"

static char dir[64];
static int table = 1; /* print the markdown table rows */

static const char *at(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static const char *put(const char *name, const void *data, size_t n)
{
    const char *p = at(name);
    FILE *f = fopen(p, "wb");
    if (f) {
        if (n) fwrite(data, 1, n, f);
        fclose(f);
    }
    return p;
}

static const char *puts_(const char *name, const char *text) { return put(name, text, strlen(text)); }

/* The call failed with one line naming `file` and containing `cause`. */
static void expect(const char *reader, const char *input, ss_status s, const char *file, const char *cause)
{
    const char *m = ss_errmsg();
    CHECK_MSG(s != SS_OK, "%s: %s was accepted", reader, input);
    if (s == SS_OK) return;
    CHECK_MSG(!strchr(m, '\n'), "%s: %s: message has a newline: %s", reader, input, m);
    CHECK_MSG(!file || strstr(m, file), "%s: %s: message does not name %s: %s", reader, input, file, m);
    CHECK_MSG(!cause || strstr(m, cause), "%s: %s: message lacks '%s': %s", reader, input, cause, m);
    if (table) printf("| %s | %s | `%s` |\n", reader, input, m + (file && strstr(m, dir) == m ? strlen(dir) + 1 : 0));
}

/* ---- safetensors ---------------------------------------------------------------------- */
static const char *st_file(const char *name, const char *header, size_t data_bytes)
{
    static unsigned char buf[4096];
    uint64_t hl = strlen(header);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, 0, data_bytes);
    return put(name, buf, 8 + hl + data_bytes);
}

static void test_safetensors(void)
{
    ss_safetensors *st = NULL;
    const char *p = put("empty.safetensors", "", 0);
    expect("safetensors", "empty file", ss_st_open(p, &st), "empty.safetensors", NULL);
    unsigned char huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x10, '{', '}'};
    p = put("hlen.safetensors", huge, sizeof huge);
    expect("safetensors", "header length 2^60", ss_st_open(p, &st), "hlen.safetensors", "header");
    p = st_file("notjson.safetensors", "{\"a\":", 0);
    expect("safetensors", "header not JSON", ss_st_open(p, &st), "notjson.safetensors", NULL);
    p = st_file("dtype.safetensors", "{\"w\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect("safetensors", "unknown dtype", ss_st_open(p, &st), "dtype.safetensors", "dtype");
    p = st_file("overflow.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4);
    expect("safetensors", "shape product overflows", ss_st_open(p, &st), "overflow.safetensors", NULL);
    p = st_file("beyond.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}", 8);
    expect("safetensors", "offsets beyond the file", ss_st_open(p, &st), "beyond.safetensors", NULL);
    p = st_file("overlap.safetensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12);
    expect("safetensors", "overlapping tensors", ss_st_open(p, &st), "overlap.safetensors", NULL);
    p = st_file("mismatch.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect("safetensors", "shape disagrees with offsets", ss_st_open(p, &st), "mismatch.safetensors", NULL);
    p = st_file("dup.safetensors",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8);
    expect("safetensors", "duplicate tensor name", ss_st_open(p, &st), "dup.safetensors", NULL);
    p = st_file("meta.safetensors", "{\"__metadata__\":{\"k\":5}}", 0);
    expect("safetensors", "metadata value not a string", ss_st_open(p, &st), "meta.safetensors", NULL);
}

/* ---- checkpoints ----------------------------------------------------------------------- */
static void test_checkpoint(void)
{
    ss_model m;
    const char *p = st_file("noenc.safetensors", "{\"__metadata__\":{\"format\":\"x\"}}", 0);
    expect("checkpoint", "no encoder in metadata", ss_checkpoint_load_model(p, &m, NULL, NULL), "noenc.safetensors",
           "encoder");
    p = st_file("alexnet.safetensors", "{\"__metadata__\":{\"encoder\":\"alexnet\"}}", 0);
    expect("checkpoint", "unknown encoder", ss_checkpoint_load_model(p, &m, NULL, NULL), NULL, "alexnet");
    p = st_file("img.safetensors", "{\"__metadata__\":{\"encoder\":\"convnet-s\",\"img_size\":\"99999\"}}", 0);
    expect("checkpoint", "img_size 99999", ss_checkpoint_load_model(p, &m, NULL, NULL), "img.safetensors",
           "out of range");
    p = st_file("chans.safetensors", "{\"__metadata__\":{\"encoder\":\"convnet-s\",\"in_chans\":\"abc\"}}", 0);
    expect("checkpoint", "in_chans not a number", ss_checkpoint_load_model(p, &m, NULL, NULL), "chans.safetensors",
           "out of range");
    /* A 4096-pixel ViT would need ~800 MB; refused before anything is allocated. */
    p = st_file("vit.safetensors",
                "{\"__metadata__\":{\"encoder\":\"vit-t\",\"in_chans\":\"3\",\"img_size\":\"4096\"},"
                "\"encoder.cls_token\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4);
    expect("checkpoint", "vit-t at 4096 px (fuzzing: 20 s building a 537 MB position table)",
           ss_checkpoint_load_model(p, &m, NULL, NULL), "vit.safetensors", "at most 512");
    p = st_file("vit2.safetensors",
                "{\"__metadata__\":{\"encoder\":\"vit-t\",\"in_chans\":\"3\",\"img_size\":\"512\"},"
                "\"encoder.cls_token\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4);
    expect("checkpoint", "vit-t at 512 px, tensors absent", ss_checkpoint_load_model(p, &m, NULL, NULL),
           "vit2.safetensors", "no tensor");

    /* Resume state: a real checkpoint of a small model with a bad 'state'. */
    ss_encoder_config ec = {.kind = "convnet-s", .in_chans = 1, .img_size = 28};
    CHECK_OK(ss_model_create(&m, &ec, 2));
    CHECK_OK(ss_model_finalize(&m, 1));
    ss_opt_config oc = ss_opt_defaults(SS_OPT_ADAMW);
    ss_optimizer *opt = NULL;
    CHECK_OK(ss_opt_new(m.p, &oc, &opt));
    ss_train_state ts = {.epoch = 1, .batch = 2, .step = 9, .lr_scale = 1};
    const char *good = at("good.safetensors");
    CHECK_OK(ss_checkpoint_save(good, &m, opt, &ts, NULL));
    ss_train_state back;
    CHECK_OK(ss_checkpoint_load_into(good, &m, NULL, 0, opt, &back));
    CHECK(back.step == 9 && back.batch == 2 && back.epoch == 1 && back.lr_scale == 1);
    ss_train_state bad = ts;
    bad.lr_scale = 4; /* written as is, refused on read */
    const char *p2 = at("lr.safetensors");
    CHECK_OK(ss_checkpoint_save(p2, &m, opt, &bad, NULL));
    expect("checkpoint", "state lr_scale 4", ss_checkpoint_load_into(p2, &m, NULL, 0, opt, &back), "lr.safetensors",
           "lr_scale");
    CHECK_OK(ss_checkpoint_save(p2, &m, NULL, NULL, NULL)); /* no moments, no state */
    expect("checkpoint", "resume from a weights-only file", ss_checkpoint_load_into(p2, &m, NULL, 0, opt, &back),
           "lr.safetensors", "optim");
    ss_opt_free(opt);
    ss_model_free(&m);

    /* Resuming into a model with a head less, or a head more, than the run
     * that wrote the checkpoint: refused, naming the head's tensor. */
    ss_model m2;
    ss_linear_layer extra_head;
    CHECK_OK(ss_model_create(&m2, &ec, 2));
    CHECK_OK(ss_linear_init(&extra_head, m2.p, "aux_head", 4, 3, 1));
    CHECK_OK(ss_model_finalize(&m2, 1));
    ss_optimizer *opt2 = NULL;
    CHECK_OK(ss_opt_new(m2.p, &oc, &opt2));
    const char *p3 = at("head.safetensors");
    CHECK_OK(ss_checkpoint_save(p3, &m2, opt2, &ts, NULL));
    CHECK_OK(ss_checkpoint_load_into(p3, &m2, NULL, 0, opt2, &back)); /* the same model: fine */
    CHECK_OK(ss_model_create(&m, &ec, 2));
    CHECK_OK(ss_model_finalize(&m, 1));
    CHECK_OK(ss_opt_new(m.p, &oc, &opt));
    expect("checkpoint", "resume without a head the run had", ss_checkpoint_load_into(p3, &m, NULL, 0, opt, &back),
           "head.safetensors", "aux_head");
    CHECK_OK(ss_checkpoint_load_into(p3, &m, "encoder.", 0, NULL, NULL)); /* a fine-tune start takes the encoder */
    expect("checkpoint", "resume with a head the run did not have",
           ss_checkpoint_load_into(good, &m2, NULL, 0, opt2, &back), "good.safetensors", "aux_head");
    ss_opt_free(opt);
    ss_opt_free(opt2);
    ss_model_free(&m);
    ss_model_free(&m2);
}

/* ---- datasets: IDX, CIFAR, image folders, CSV lists ------------------------------------- */
static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static ss_status load(const char *path)
{
    ss_dataset d;
    ss_load_opts o = {.max_bytes = (size_t)1 << 30};
    ss_status s = ss_dataset_load(path, &o, &d);
    if (s == SS_OK) ss_dataset_free(&d);
    return s;
}

static void fresh_dir(const char *name)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", at(name), at(name));
    if (system(cmd) != 0) fprintf(stderr, "cannot make %s\n", at(name));
}

static void idx_pair(const char *sub, uint32_t magic, uint32_t n, uint32_t h, size_t have, uint32_t nlab)
{
    fresh_dir(sub);
    unsigned char img[16 + 64] = {0}, lab[8 + 4] = {0};
    be32(img, magic);
    be32(img + 4, n);
    be32(img + 8, h);
    be32(img + 12, h);
    be32(lab, 0x801);
    be32(lab + 4, nlab);
    char name[300];
    snprintf(name, sizeof name, "%s/train-images-idx3-ubyte", sub);
    put(name, img, 16 + have);
    snprintf(name, sizeof name, "%s/train-labels-idx1-ubyte", sub);
    put(name, lab, 8 + (nlab < 4 ? nlab : 4));
}

typedef struct membuf {
    unsigned char *p;
    size_t n, cap;
} membuf;

static void to_mem(void *ctx, void *data, int n)
{
    membuf *m = ctx;
    if (m->n + (size_t)n <= m->cap) memcpy(m->p + m->n, data, (size_t)n);
    m->n += (size_t)n;
}

static size_t png_mem(unsigned char *out, size_t cap, int w, int h, int c)
{
    unsigned char px[64 * 64 * 4];
    for (int i = 0; i < w * h * c; i++) px[i] = (unsigned char)(i * 31);
    membuf m = {out, 0, cap};
    if (!stbi_write_png_to_func(to_mem, &m, w, h, c, px, w * c) || m.n > cap) return 0;
    return m.n;
}

/* A PNG whose header declares w x h (no real pixel data follows). */
static size_t png_header_only(unsigned char *out, uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    be32(out + 8, 13);
    memcpy(out + 12, "IHDR", 4);
    be32(out + 16, w);
    be32(out + 20, h);
    out[24] = 8; /* bit depth */
    out[25] = 2; /* RGB */
    out[26] = out[27] = out[28] = 0;
    be32(out + 29, (uint32_t)crc32(0, out + 12, 17));
    be32(out + 33, 0);
    memcpy(out + 37, "IEND", 4);
    be32(out + 41, (uint32_t)crc32(0, out + 37, 4));
    return 45;
}

static void test_datasets(void)
{
    idx_pair("idx_magic", 0x0000080a, 2, 4, 32, 2);
    expect("IDX", "bad magic number", load(at("idx_magic")), "train-images-idx3-ubyte", NULL);
    idx_pair("idx_huge", 0x803, 1000000000u, 28, 64, 2);
    expect("IDX", "declares 10^9 images, holds 64 bytes", load(at("idx_huge")), "train-images-idx3-ubyte", NULL);
    idx_pair("idx_lab", 0x803, 4, 4, 64, 3);
    expect("IDX", "3 labels for 4 images", load(at("idx_lab")), "idx_lab", NULL);
    fresh_dir("idx_gz");
    unsigned char gz[64];
    memcpy(gz, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x01\x02", 12);
    put("idx_gz/train-images-idx3-ubyte.gz", gz, 12);
    put("idx_gz/train-labels-idx1-ubyte.gz", gz, 12);
    expect("IDX", "truncated .gz", load(at("idx_gz")), "idx_gz", NULL);

    unsigned char rec[3073 * 2];
    memset(rec, 7, sizeof rec);
    const char *p = put("odd.bin", rec, 3073 + 100);
    expect("CIFAR", "size not a multiple of 3073", load(p), "odd.bin", NULL);
    rec[0] = 250;
    p = put("label.bin", rec, 3073);
    expect("CIFAR", "label byte 250", load(p), "label.bin", NULL);

    unsigned char buf[8192];
    size_t n = png_header_only(buf, 100000, 100000);
    fresh_dir("png_huge");
    put("png_huge/a.png", buf, n);
    expect("image", "PNG declaring 100000x100000", load(at("png_huge")), "a.png", "over the limit");
    n = png_header_only(buf, 16000, 16000);
    fresh_dir("png_px");
    put("png_px/a.png", buf, n);
    expect("image", "PNG declaring 16000x16000 (256 Mpx)", load(at("png_px")), "a.png", "over the limit");
    static const unsigned char jpg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00,
                                        0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xDC, 0xFF, 0xDC, 0x03, 0x01,
                                        0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9};
    fresh_dir("jpg_huge");
    put("jpg_huge/a.jpg", jpg, sizeof jpg);
    expect("image", "JPEG declaring 65500x65500", load(at("jpg_huge")), "a.jpg", "over the limit");
    n = png_mem(buf, sizeof buf, 32, 32, 3);
    fresh_dir("png_trunc");
    put("png_trunc/a.png", buf, n / 2);
    expect("image", "truncated PNG", load(at("png_trunc")), "a.png", "cannot decode");
    fresh_dir("png_later");
    put("png_later/a.png", buf, n);
    put("png_later/b.png", buf, n - 20);
    expect("image", "second PNG truncated", load(at("png_later")), "b.png", "cannot decode");
    /* fuzz_image finding: an IDAT length past the end of the file made
     * stb_image allocate 1.4 GB before reading it. */
    n = png_mem(buf, sizeof buf, 5, 4, 1);
    for (size_t i = 8; i + 8 < n; i++)
        if (!memcmp(buf + i + 4, "IDAT", 4)) {
            be32(buf + i, 0x57000000u);
            break;
        }
    fresh_dir("png_chunk");
    put("png_chunk/a.png", buf, n);
    expect("image", "PNG chunk length 1.4 GB (fuzzing: 1.4 GB allocation)", load(at("png_chunk")), "a.png",
           "past the end of the file");
    /* fuzz_image finding: a JPEG Huffman table of more than 256 codes made
     * stb_image 2.27 write past its tables (ASan/UBSan abort). */
    static const unsigned char dht[] = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 200, 200, 0xFF, 0xD9};
    fresh_dir("jpg_dht");
    put("jpg_dht/a.jpg", dht, sizeof dht);
    expect("image", "JPEG Huffman table of 400 codes (fuzzing: write past stb's table)", load(at("jpg_dht")), "a.jpg",
           "Huffman");
    /* ... and the same with the table cut off by the end of the file (the
     * counts stb_image reads past the end are 0). */
    fresh_dir("jpg_dht2");
    static const unsigned char dht_cut[] = {0xFF, 0xD8, 0xFF, 0xC4, 0x01, 0x00, 0x00, 200, 200};
    put("jpg_dht2/a.jpg", dht_cut, sizeof dht_cut);
    expect("image", "JPEG Huffman table cut by the end of the file (fuzzing)", load(at("jpg_dht2")), "a.jpg",
           "Huffman");
    /* fuzz_image findings: a 16-bit PNM read past its buffer on conversion;
     * fill bytes before a JPEG's SOI hid the JPEG from the checks. */
    fresh_dir("pnm16");
    puts_("pnm16/a.pgm", "P5\n2 2\n510\n\x01\x01\x02\x02\x19\x06\x07\x08");
    expect("image", "16-bit PGM (fuzzing: read past the buffer)", load(at("pnm16")), "a.pgm", "16-bit");
    fresh_dir("pnm_big");
    puts_("pnm_big/a.ppm", "P6 # comment\n5555888888888 2\n255\n");
    expect("image", "PPM width of 13 digits (fuzzing: int overflow in stb)", load(at("pnm_big")), "a.ppm", "9 digits");
    unsigned char ffjpg[sizeof dht + 3] = {0xFF, 0xFF, 0xFF};
    memcpy(ffjpg + 3, dht, sizeof dht);
    fresh_dir("jpg_ff");
    put("jpg_ff/a.jpg", ffjpg, sizeof ffjpg);
    expect("image", "fill bytes, then a JPEG with a bad Huffman table (fuzzing)", load(at("jpg_ff")), "a.jpg",
           "Huffman");
    /* fuzz_image finding: a JPEG whose Huffman codes give a symbol index out
     * of the table; stb 2.27 reads there (UBSan: index -16776815). The
     * library builds against a copy of stb_image.h with 2.28's check. */
    static const unsigned char huff[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x11, 0x13, 0x14, 0x15, 0x15, 0x15, 0x0c,
    0x0f, 0x17, 0x18, 0x16, 0x94, 0x18, 0x12, 0x14, 0x15, 0x14, 0x01, 0x03, 0x04, 0x04, 0x05, 0x04, 0x05, 0x09,
    0x05, 0x05, 0x09, 0x14, 0x0d, 0x0b, 0x0d, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x04, 0x00, 0x00, 0x05, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11,
    0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x01, 0xa2, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x06, 0x05, 0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x32, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
    0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
    0x82, 0x09, 0x0a, 0x16, 0x00, 0x00, 0x63, 0x58, 0xaa, 0x9c, 0x00, 0x00, 0x00, 0x1d, 0x41, 0x44, 0x04, 0x54,
    0x49, 0x08, 0x00, 0x00, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0xc8, 0x0a, 0x00, 0x1d, 0x49, 0x44, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x9a, 0xa2, 0xa3,
    0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    0x01, 0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x13, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x11, 0x00, 0x02, 0x01, 0x02, 0x04, 0x04,
    0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77, 0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21,
    0x35, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1,
    0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17,
    0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46,
    0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0x43, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 0x01, 0x08, 0x00, 0x20, 0x04, 0xdc, 0x76, 0x04, 0x5b,
    0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0x4f, 0xe8, 0xe9,
    0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x02, 0x02,
    0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0x8f, 0xc6, 0x50, 0x5c, 0xf8, 0x57, 0xc3, 0xda, 0x7c, 0xbe, 0x1c, 0xd4,
    0xf5, 0x0f, 0x0d, 0x19, 0x32, 0x2b, 0xcb, 0x09, 0x57, 0x4a, 0xb8, 0x31, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x14, 0x14, 0x14, 0x14, 0xec, 0xeb, 0xeb, 0xe5, 0x58, 0x14, 0x14,
    0x14, 0x14, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x03, 0x05, 0x00, 0x04, 0x01, 0x29, 0x2a, 0x34
    };
    fresh_dir("jpg_huff");
    put("jpg_huff/a.jpg", huff, sizeof huff);
    ss_dataset dh;
    ss_status sh = ss_dataset_load(at("jpg_huff"), NULL, &dh);
    if (sh == SS_OK) ss_dataset_free(&dh);
    else expect("image", "JPEG Huffman symbol index out of range (fuzzing: read out of bounds)", sh, "a.jpg", NULL);
    /* fuzz_image finding: a JPEG on which stb 2.27's Huffman decode loop
     * runs past maxcode[17] (no sentinel there); the patched copy stops. */
    static const unsigned char huff2[] = {
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x11, 0x13, 0x14, 0x15, 0x15, 0x15, 0x0c,
        0x0f, 0x17, 0x18, 0x16, 0x94, 0x18, 0x12, 0x14, 0x15, 0x14, 0x01, 0x03, 0x04, 0x04, 0x05, 0x04, 0x05, 0x09,
        0x05, 0x05, 0x09, 0x14, 0x0d, 0x0b, 0x0d, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
        0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
        0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
        0x14, 0x14, 0x14, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x04, 0x00, 0x00, 0x05, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11,
        0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x01, 0xa2, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x06, 0x05, 0x00, 0x01, 0x02, 0x03, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d,
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x32, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
        0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
        0x82, 0x09, 0x0a, 0x16, 0x00, 0x00, 0x63, 0x58, 0xaa, 0x9c, 0x00, 0x00, 0x00, 0x1d, 0x41, 0x44, 0x04, 0x54,
        0x49, 0x08, 0x00, 0x00, 0x89, 0x50, 0x4e, 0xc2, 0x0d, 0x0a, 0xc8, 0x0a, 0x00, 0x1d, 0x49, 0x44, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x9a, 0xa2, 0xa3,
        0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
        0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
        0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
        0x01, 0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x13, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x11, 0x00, 0x02, 0x01, 0x02, 0x04, 0x04,
        0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77, 0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21,
        0x35, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1,
        0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17,
        0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x38, 0x37, 0x37, 0x32, 0x33, 0x3a, 0x43, 0x44, 0x45, 0x46,
        0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
        0x69, 0x6a, 0x73, 0x77, 0x7a, 0x76, 0x78, 0x74, 0x75, 0x82, 0x79, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
        0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0x43, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 0x01, 0x08, 0x00, 0x20, 0x04, 0xdc, 0x76, 0x04, 0x5b,
        0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0x4f, 0xe8, 0xe9,
        0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x02, 0x02,
        0x11, 0x03, 0x11, 0x00, 0x3f, 0x00, 0x8f, 0xc6, 0x50, 0x5c, 0xf8, 0x57, 0xc3, 0xda, 0x7c, 0xbe, 0x1c, 0xd4,
        0xf5, 0x0f, 0x0d, 0x19, 0x32, 0x2b, 0xcb, 0x09, 0x57, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
        0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x04, 0x00, 0x00,
        0x05, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x01, 0xa2, 0x00, 0x00, 0x01,
        0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x06, 0x05, 0x00,
        0x01, 0x02, 0x03, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05,
        0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01, 0x02, 0x03, 0xaa, 0x9c, 0x00, 0x00, 0x00, 0x1d, 0x41, 0x44,
        0x04, 0x54, 0x49, 0x08, 0x00, 0x4a, 0xb8, 0x31, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x14, 0x14, 0x14, 0x14, 0x14, 0xec, 0xeb, 0xeb, 0xe5, 0x58, 0x14, 0x14, 0x14, 0x14, 0xff, 0xc0,
        0x00, 0x11, 0x08, 0x00, 0x03, 0x01, 0x00, 0x04, 0x01, 0x29, 0x2a, 0x34
    };
    fresh_dir("jpg_huff2");
    put("jpg_huff2/a.jpg", huff2, sizeof huff2);
    sh = ss_dataset_load(at("jpg_huff2"), NULL, &dh);
    if (sh == SS_OK) ss_dataset_free(&dh);
    else expect("image", "JPEG Huffman decode past the code lengths (fuzzing: read out of bounds)", sh, "a.jpg", NULL);
    fresh_dir("garbage");
    put("garbage/a.jpg", "this is not a picture at all", 28);
    expect("image", "text named .jpg", load(at("garbage")), "a.jpg", "cannot decode");
    fresh_dir("zero");
    put("zero/a.png", "", 0);
    expect("image", "zero-byte .png", load(at("zero")), "a.png", NULL);
    /* Wrong channels are converted, not refused: grey+alpha, RGBA and grey
     * after an RGB first image all load as the first image's channels. */
    fresh_dir("chans");
    n = png_mem(buf, sizeof buf, 8, 8, 3);
    put("chans/a.png", buf, n);
    n = png_mem(buf, sizeof buf, 8, 8, 2);
    put("chans/b.png", buf, n);
    n = png_mem(buf, sizeof buf, 8, 8, 4);
    put("chans/c.png", buf, n);
    ss_dataset d;
    CHECK_OK(ss_dataset_load(at("chans"), NULL, &d));
    CHECK(d.n == 3 && d.c == 3 && d.h == 8);
    ss_dataset_free(&d);

    fresh_dir("csv");
    n = png_mem(buf, sizeof buf, 8, 8, 1);
    put("csv/a.png", buf, n);
    p = puts_("csv/extra.csv", "a.png,1\na.png,2,3\n");
    expect("image CSV", "row with 3 fields", load(p), "extra.csv", NULL);
    p = puts_("csv/missing.csv", "a.png,1\nnope.png,2\n");
    expect("image CSV", "row naming a missing file", load(p), "nope.png", NULL);
    p = puts_("csv/empty.csv", "a.png,1\n,2\n");
    expect("image CSV", "row with an empty path", load(p), "empty.csv", NULL);
}

/* ---- text: tokenizer JSON, non-UTF-8 corpora, labelled tables ---------------------------- */
static void test_text(void)
{
    ss_tokenizer *t = NULL;
    const char *p = puts_("tok1.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": ");
    expect("tokenizer JSON", "truncated JSON", ss_tokenizer_load(p, &t), "tok1.json", NULL);
    p = puts_("tok2.json", "[1, 2, 3]");
    expect("tokenizer JSON", "a JSON array", ss_tokenizer_load(p, &t), "tok2.json", NULL);
    /* Edits of a valid tokenizer file (the fuzzing seed). */
    const char *src = getenv("SS_SOURCE_DIR");
    char tpl_path[600];
    snprintf(tpl_path, sizeof tpl_path, "%s/fuzz/corpus/tokenizer_json/small-lower.json", src ? src : ".");
    char *tpl = NULL;
    size_t tn = 0;
    if (ss_read_file(tpl_path, 1 << 20, (void **)&tpl, &tn) == SS_OK) {
        CHECK_OK(ss_tokenizer_load(tpl_path, &t));
        ss_tokenizer_free(t);
        t = NULL;
        static const struct {
            const char *from, *to, *input;
        } edits[] = {
            {"\"id\":\t0,", "\"id\":\t99999999999,", "special token id 99999999999"},
            {"\"id\":\t1,", "\"id\":\t0,", "two specials with id 0"},
            {"\"BPE\"", "\"WordPiece\"", "WordPiece model"},
            {"\"merges\":\t[", "\"merges\":\t[\"zzq qqz\", ", "merge of unknown tokens"},
            {"\"vocab\":\t{", "\"vocab\":\t{\"\\u0000x\": 7,", "vocab token with a NUL"},
        };
        for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
            const char *hit = strstr(tpl, edits[i].from);
            CHECK_MSG(hit != NULL, "template lacks %s", edits[i].from);
            if (!hit) continue;
            char *e = malloc(tn + 64);
            size_t k = (size_t)(hit - tpl);
            memcpy(e, tpl, k);
            strcpy(e + k, edits[i].to);
            strcat(e + k, hit + strlen(edits[i].from));
            char name[32];
            snprintf(name, sizeof name, "tok_edit%zu.json", i);
            p = puts_(name, e);
            expect("tokenizer JSON", edits[i].input, ss_tokenizer_load(p, &t), name, NULL);
            free(e);
        }
        free(tpl);
    }
    ss_textset s;
    memset(&s, 0, sizeof s);
    /* Text is bytes (the tokenizer is byte-level; rt-polarity is Latin-1):
     * Latin-1, broken UTF-8 and control bytes load unchanged; files with
     * NUL bytes (binary) are refused. */
    p = put("latin1.txt", "caf\xe9 au lait\nline two \xc0\x80\n", 24);
    CHECK_OK(ss_textset_load_corpus(p, 1, &s));
    CHECK(s.n == 2 && s.lens[0] == 12 && (unsigned char)s.texts[0][3] == 0xe9);
    ss_textset_free(&s);
    p = put("nul.txt", "bin\0ary", 7);
    expect("text", "NUL byte", ss_textset_load_corpus(p, 0, &s), "nul.txt:1:4", "NUL");
    p = put("ctrl.txt", "ok\nab\x05" "cd", 7); /* as in polarity-en-pang&lee1.csv */
    CHECK_OK(ss_textset_load_corpus(p, 1, &s));
    ss_textset_free(&s);
    unsigned char png[512];
    size_t pn = png_mem(png, sizeof png, 4, 4, 1);
    p = put("image.txt", png, pn);
    expect("text", "a PNG named .txt", ss_textset_load_corpus(p, 0, &s), "image.txt:", "not a text file");
    p = put("bad.csv", "good text,1\nbad\0,0\n", 17);
    expect("text table", "NUL in a CSV row", ss_textset_load_labelled(p, &s), "bad.csv:2:4", "not a text file");
    p = puts_("utf8.txt", "\xef\xbb\xbf" "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\n");
    CHECK_OK(ss_textset_load_corpus(p, 1, &s)); /* BOM, 2-, 3- and 4-byte forms */
    ss_textset_free(&s);
    p = puts_("fields.csv", "text,label\ngood,1\na,b,c\n");
    expect("text table", "row with 3 fields", ss_textset_load_labelled(p, &s), "fields.csv:3", NULL);
    p = puts_("nolabel.csv", "text,label\ngood,1\nbad,\n");
    expect("text table", "empty label", ss_textset_load_labelled(p, &s), "nolabel.csv:3", "empty label");
    p = puts_("quote.csv", "text,label\n\"never closed,1\n");
    expect("text table", "unterminated quote", ss_textset_load_labelled(p, &s), "quote.csv", NULL);
}

/* ---- augmentation specs ------------------------------------------------------------------- */
static void test_augment(void)
{
    ss_augment *a = NULL;
    expect("augment spec", "gamma after norm (fuzzing: NaN)", ss_augment_parse("norm:1/1,gamma:0.5-0.5", &a), NULL,
           "after 'norm'");
    expect("augment spec", "norm after norm (fuzzing: Inf)", ss_augment_parse("norm:0/1e-6,norm:0/1e-6", &a), NULL,
           "after 'norm'");
    expect("augment spec", "norm std 0", ss_augment_parse("norm:0.5/0", &a), NULL, "'norm'");
    expect("augment spec", "unknown op", ss_augment_parse("rrc:0.2-1,mixup", &a), NULL, "mixup");
}

/* ---- the command line ---------------------------------------------------------------------- */
static void test_cli(void)
{
    const char *bin = getenv("SS_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("CLI cases skipped: no SS_BIN\n");
        return;
    }
    static const struct {
        const char *args, *input, *want;
    } cases[] = {
        {"train --batch 0", "--batch 0", "--batch"},
        {"train --lr nan", "--lr nan", "--lr"},
        {"train --epochs -1", "--epochs -1", "--epochs"},
        {"train --seed 12abc", "--seed 12abc", "--seed"},
        {"pretrain --method mae --mask-ratio 2", "--mask-ratio 2", "--mask-ratio"},
        {"train --bacth 64", "misspelt flag --bacth", "bacth"},
        {"pretrain --method jigsaw", "unknown method", "jigsaw"},
        {"train --optimizer adam", "unknown optimiser", "adam"},
        {"train --precision fp16", "unknown precision", "--precision 'fp16': expected fp32 or bf16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1200], out[2048];
        snprintf(cmd, sizeof cmd, "'%s' %s --out '%s/cli' --max-images 64 --epochs 1 2>&1", bin, cases[i].args, dir);
        if (strstr(cases[i].args, "--epochs")) /* the case sets it */
            snprintf(cmd, sizeof cmd, "'%s' %s --out '%s/cli' --max-images 64 2>&1", bin, cases[i].args, dir);
        FILE *f = popen(cmd, "r");
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        out[n] = '\0';
        int st = f ? pclose(f) : -1;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        CHECK_MSG(code != 0 && code < 128, "%s: exit %d", cases[i].args, code);
        CHECK_MSG(strstr(out, cases[i].want) != NULL, "%s: %s", cases[i].args, out);
        char *nl = strchr(out, '\n');
        if (nl) *nl = '\0';
        if (table) printf("| CLI | %s | `%s` |\n", cases[i].input, out);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ss_hostile_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    printf("| reader | input | error |\n|---|---|---|\n");
    test_safetensors();
    test_checkpoint();
    test_datasets();
    test_text();
    test_augment();
    test_cli();
    if (tu_fail == 0) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    TEST_MAIN_END();
}
