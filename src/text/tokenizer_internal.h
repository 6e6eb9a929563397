/* The tokenizer's internal representation, shared by tokenizer.c (training,
 * encoding) and tokenizer_json.c (save/load). */
#ifndef SS_TOKENIZER_INTERNAL_H
#define SS_TOKENIZER_INTERNAL_H

#include <pthread.h>

#include "selfsup/text.h"
#include "text/text_internal.h"

/* Caps on what a tokenizer may hold (training and loading). */
#define SS_TOK_MAX_VOCAB (1 << 22)
#define SS_TOK_MAX_MERGES (1 << 22)

struct ss_tokenizer {
    int lowercase;
    int32_t ntok;
    uint8_t *tok_bytes; /* raw bytes of all tokens, back to back */
    size_t *tok_off;    /* ntok + 1 offsets into tok_bytes */
    int32_t byte_id[256];
    int32_t nmerges;
    int32_t *merge_a, *merge_b, *merge_res; /* merge r: (a, b) -> res */
    ss_txt_pairmap ranks;                   /* (a, b) -> r */

    /* Word cache: word bytes -> ids; guarded by lock. */
    pthread_mutex_t lock;
    ss_txt_strset cache;
    int64_t *cache_start;
    int32_t *cache_n;
    int64_t cache_ecap;
    int32_t *cache_ids;
    int64_t cache_nids, cache_idcap;
};

/* The names of the five specials, by id. */
extern const char *const ss_tok_special_names[SS_TOK_NSPECIAL];

/* Build a tokenizer from token bytes (tok_off has ntok + 1 entries; ids below
 * SS_TOK_NSPECIAL are the specials) and merges. Takes ownership of tok_bytes,
 * tok_off and the merge arrays (freed on failure too). The caller has
 * checked that every byte has a single-byte token and merges name valid ids. */
ss_status ss_tok_build(int lowercase, int32_t ntok, uint8_t *tok_bytes, size_t *tok_off,
                       int32_t nmerges, int32_t *ma, int32_t *mb, int32_t *mres,
                       ss_tokenizer **out);

#endif
