/* Step arena: a bump allocator over a list of chunks. It grows on demand;
 * on reset, if the last step needed more than one chunk, the chunks are
 * replaced by a single chunk as large as the peak use, so from the second
 * step on a step makes no malloc at all. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/tensor.h"

#define SS_ALIGN 64

typedef struct ss_chunk {
    struct ss_chunk *next;
    size_t cap, used;
    unsigned char *mem;
} ss_chunk;

struct ss_arena {
    ss_chunk *head; /* current chunk (most recent) */
    size_t used;    /* bytes handed out since reset (all chunks) */
    size_t peak;
    size_t total_cap;
};

static ss_chunk *chunk_new(size_t cap)
{
    ss_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    void *m = NULL;
    if (posix_memalign(&m, SS_ALIGN, cap ? cap : SS_ALIGN) != 0) {
        free(c);
        return NULL;
    }
    c->mem = m;
    c->cap = cap;
    c->used = 0;
    c->next = NULL;
    return c;
}

ss_arena *ss_arena_new(size_t initial)
{
    ss_arena *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    if (initial < (1u << 20)) initial = 1u << 20;
    a->head = chunk_new(initial);
    if (!a->head) {
        free(a);
        return NULL;
    }
    a->total_cap = initial;
    return a;
}

void ss_arena_free(ss_arena *a)
{
    if (!a) return;
    ss_chunk *c = a->head;
    while (c) {
        ss_chunk *n = c->next;
        free(c->mem);
        free(c);
        c = n;
    }
    free(a);
}

void *ss_arena_alloc(ss_arena *a, size_t bytes)
{
    size_t need = (bytes + SS_ALIGN - 1) & ~(size_t)(SS_ALIGN - 1);
    if (need < bytes) return NULL; /* overflow */
    ss_chunk *c = a->head;
    if (c->cap - c->used < need) {
        size_t cap = c->cap * 2;
        if (cap < need) cap = need;
        ss_chunk *n = chunk_new(cap);
        if (!n) return NULL;
        n->next = c;
        a->head = n;
        a->total_cap += cap;
        c = n;
    }
    void *p = c->mem + c->used;
    c->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *ss_arena_calloc(ss_arena *a, size_t bytes)
{
    void *p = ss_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ss_arena_reset(ss_arena *a)
{
    if (a->head->next) {
        /* Consolidate into one chunk sized by the measured peak. */
        size_t cap = a->peak + a->peak / 8;
        ss_chunk *n = chunk_new(cap);
        if (n) {
            ss_chunk *c = a->head;
            while (c) {
                ss_chunk *nx = c->next;
                free(c->mem);
                free(c);
                c = nx;
            }
            a->head = n;
            a->total_cap = cap;
        } else {
            for (ss_chunk *c = a->head; c; c = c->next) c->used = 0;
        }
    }
    a->head->used = 0;
    a->used = 0;
}

size_t ss_arena_used(const ss_arena *a) { return a->used; }
size_t ss_arena_peak(const ss_arena *a) { return a->peak; }
size_t ss_arena_capacity(const ss_arena *a) { return a->total_cap; }
