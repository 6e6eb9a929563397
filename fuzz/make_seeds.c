/* Writes the committed seed corpus for the fuzz targets that had none
 * (image, data_load, checkpoint, augment_parse). Not part of the build:
 *   cc -O1 -o /tmp/make_seeds fuzz/make_seeds.c -I/usr/include/stb -lm && /tmp/make_seeds fuzz/corpus
 * Each seed is small (< 4 KB); the fuzzers grow their own corpora from them. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "stb_image_write.h"

static const char *root;

static void put(const char *dir, const char *name, const void *a, size_t na, const void *b, size_t nb)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (na) fwrite(a, 1, na, f);
    if (nb) fwrite(b, 1, nb, f);
    fclose(f);
}

/* stb_image_write to memory */
static unsigned char mem[1 << 16];
static size_t mem_n;
static void to_mem(void *ctx, void *data, int n)
{
    (void)ctx;
    if (mem_n + (size_t)n <= sizeof mem) memcpy(mem + mem_n, data, (size_t)n);
    mem_n += (size_t)n;
}

static size_t make_image(int fmt, int w, int h, int c)
{
    unsigned char px[16 * 16 * 4];
    for (int i = 0; i < w * h * c; i++) px[i] = (unsigned char)(i * 37 + 11);
    mem_n = 0;
    switch (fmt) {
    case 0: stbi_write_png_to_func(to_mem, NULL, w, h, c, px, w * c); break;
    case 1: stbi_write_jpg_to_func(to_mem, NULL, w, h, c, px, 90); break;
    case 2: stbi_write_bmp_to_func(to_mem, NULL, w, h, c, px); break;
    default: stbi_write_tga_to_func(to_mem, NULL, w, h, c, px); break;
    }
    return mem_n;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* safetensors: 8-byte little-endian header length, JSON header, data */
static size_t safetensors(unsigned char *out, const char *header, const void *data, size_t nd)
{
    uint64_t hl = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(hl >> (8 * i));
    memcpy(out + 8, header, hl);
    memcpy(out + 8 + hl, data, nd);
    return 8 + hl + nd;
}

int main(int argc, char **argv)
{
    root = argc > 1 ? argv[1] : "fuzz/corpus";
    /* image: first byte = requested channels (0 = native) */
    const char *ext[] = {"png", "jpg", "bmp", "tga"};
    for (int f = 0; f < 4; f++)
        for (int c = 1; c <= 4; c += (f == 1 ? 2 : 1)) {
            char name[64];
            unsigned char req = (unsigned char)(c == 3 ? 0 : 3);
            size_t n = make_image(f, 5, 4, c);
            snprintf(name, sizeof name, "%dch.%s", c, ext[f]);
            put("image", name, &req, 1, mem, n);
        }
    static const unsigned char gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0,
                                        ',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 'D', 1, 0, ';'};
    put("image", "1x1.gif", "\0", 1, gif, sizeof gif);
    const char pgm[] = "P5\n3 2\n255\n\x01\x02\x03\x04\x05\x06";
    put("image", "grey.pgm", "\0", 1, pgm, sizeof pgm - 1);

    /* data_load: byte 0 = kind (0 IDX, 1 CIFAR, 2 CSV + PNG, 3 image folder),
     * byte 1 = where the data splits into the two files */
    unsigned char idx[16 + 2 * 3 * 3], lab[8 + 2];
    be32(idx, 0x00000803);
    be32(idx + 4, 2);
    be32(idx + 8, 3);
    be32(idx + 12, 3);
    for (int i = 0; i < 18; i++) idx[16 + i] = (unsigned char)(i * 13);
    be32(lab, 0x00000801);
    be32(lab + 4, 2);
    lab[8] = 1;
    lab[9] = 7;
    unsigned char hdr[2] = {0, (unsigned char)(256 * sizeof idx / (sizeof idx + sizeof lab))};
    unsigned char buf[8192];
    memcpy(buf, hdr, 2);
    memcpy(buf + 2, idx, sizeof idx);
    memcpy(buf + 2 + sizeof idx, lab, sizeof lab);
    put("data_load", "idx", buf, 2 + sizeof idx + sizeof lab, NULL, 0);
    unsigned char cifar[2 + 2 * 3073];
    cifar[0] = 1;
    cifar[1] = 0;
    for (int i = 0; i < 2 * 3073; i++) cifar[2 + i] = (unsigned char)(i % 3073 == 0 ? i / 3073 : i * 7);
    put("data_load", "cifar", cifar, sizeof cifar, NULL, 0);
    const char csv[] = "path,label\na.png,3\n";
    size_t n = make_image(0, 4, 4, 1);
    hdr[0] = 2;
    hdr[1] = (unsigned char)(256 * (sizeof csv - 1) / (sizeof csv - 1 + n));
    memcpy(buf, hdr, 2);
    memcpy(buf + 2, csv, sizeof csv - 1);
    memcpy(buf + 2 + sizeof csv - 1, mem, n);
    put("data_load", "csv", buf, 2 + sizeof csv - 1 + n, NULL, 0);
    size_t n1 = make_image(0, 4, 4, 3);
    memcpy(buf + 2, mem, n1);
    size_t n2 = make_image(1, 4, 4, 3);
    memcpy(buf + 2 + n1, mem, n2);
    hdr[0] = 3;
    hdr[1] = (unsigned char)(256 * n1 / (n1 + n2));
    memcpy(buf, hdr, 2);
    put("data_load", "folder", buf, 2 + n1 + n2, NULL, 0);

    /* checkpoint: byte 0 even = a whole file, odd = the 'state' JSON */
    float w[4] = {0.5f, -1, 2, 0};
    const char *heads[] = {
        "{\"__metadata__\":{\"format\":\"selfsup-checkpoint-v1\",\"encoder\":\"convnet-s\",\"in_chans\":\"1\","
        "\"img_size\":\"28\",\"num_classes\":\"2\",\"mean\":\"[0.5,0.5,0.5]\",\"std\":\"[1,1,1]\","
        "\"class_names\":\"[\\\"a\\\",\\\"b\\\"]\",\"state\":\"{\\\"epoch\\\":1,\\\"batch\\\":0,\\\"step\\\":3}\"},"
        "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"head.weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[8,16]}}",
        "{\"__metadata__\":{\"encoder\":\"vit-t\",\"in_chans\":\"3\",\"img_size\":\"4096\",\"num_classes\":\"0\"},"
        "\"encoder.cls_token\":{\"dtype\":\"F16\",\"shape\":[1,1,8],\"data_offsets\":[0,16]}}",
        "{\"__metadata__\":{\"encoder\":\"resnet18\",\"in_chans\":\"3\",\"img_size\":\"32\",\"num_classes\":\"10\","
        "\"vocab_size\":\"0\"},\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
        "{\"__metadata__\":{\"encoder\":\"text-s\",\"in_chans\":\"1\",\"img_size\":\"28\",\"vocab_size\":\"300\","
        "\"seq_len\":\"64\",\"num_classes\":\"2\"}}",
    };
    for (int i = 0; i < 4; i++) {
        char name[32];
        buf[0] = 0;
        size_t len = safetensors(buf + 1, heads[i], w, sizeof w);
        snprintf(name, sizeof name, "file%d", i);
        put("checkpoint", name, buf, 1 + len, NULL, 0);
    }
    const char *states[] = {
        "{\"epoch\":2,\"batch\":5,\"step\":21,\"opt_steps\":21,\"best_metric\":0.5,\"best_epoch\":2,"
        "\"lr_scale\":0.5,\"rollbacks\":1}",
        "{\"epoch\":0,\"batch\":0,\"step\":0}",
        "{\"epoch\":1e300,\"batch\":-1,\"step\":\"3\",\"lr_scale\":2}",
    };
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "state%d", i);
        put("checkpoint", name, "\x01", 1, states[i], strlen(states[i]));
    }

    /* augment_parse: the defaults of every method and some edges */
    const char *specs[] = {
        "rrc:0.2-1,hflip,jitter:0.4:0.4:0.2:0.1@0.8,gray:0.2,blur:0.1-2@0.5",
        "rrc:0.3-1,hflip,jitter:0.4:0.4,noise:0.05",
        "crop:4,hflip",
        "rrc:0.08-1:0.75-1.33,vflip,rot90,gamma:0.8-1.2,solarize:0.5@0.2,erase:0.25,norm",
        "none",
    };
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "spec%d", i);
        put("augment_parse", name, specs[i], strlen(specs[i]), NULL, 0);
    }
    return 0;
}
