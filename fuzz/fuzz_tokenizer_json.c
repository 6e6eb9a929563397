/* libFuzzer target: load a tokenizer JSON from memory. A file that loads
 * must encode and decode a fixed sample back exactly (modulo lowercasing)
 * and survive a save -> load round trip to identical JSON.
 *
 * Build (instrumenting the library too):
 *   CC=clang CFLAGS=-fsanitize=fuzzer-no-link,address,undefined \
 *     cmake -S . -B build-fuzz -DSS_FUZZ=ON -DSS_NATIVE=OFF && cmake --build build-fuzz
 *   ./build-fuzz/fuzz_tokenizer_json fuzz/corpus/tokenizer -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "selfsup/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ss_tokenizer *t = NULL;
    if (ss_tokenizer_load_memory(data, size, "fuzz-input", &t) != SS_OK) return 0;
    static const char sample[] = "Hello, World! it's 42 caf\xc3\xa9 \xe9\x92\xff\x00\n  [MASK] end";
    const size_t n = sizeof sample - 1;
    int32_t ids[sizeof sample];
    int64_t k = ss_tokenizer_encode(t, sample, n, ids, (int64_t)n);
    if (k < 1 || k > (int64_t)n) __builtin_trap(); /* at most one token per byte */
    for (int64_t i = 0; i < k; i++)
        if (ids[i] < SS_TOK_NSPECIAL || ids[i] >= ss_tokenizer_vocab_size(t)) __builtin_trap();
    char out[sizeof sample];
    size_t m = ss_tokenizer_decode(t, ids, k, out, sizeof out);
    if (m != n) __builtin_trap();
    int lower = ss_tokenizer_lowercase(t);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)sample[i];
        if (lower && c >= 'A' && c <= 'Z') c += 32;
        if ((unsigned char)out[i] != c) __builtin_trap();
    }
    char *j1 = NULL, *j2 = NULL;
    size_t l1 = 0, l2 = 0;
    ss_tokenizer *t2 = NULL;
    if (ss_tokenizer_to_json(t, &j1, &l1) == SS_OK) {
        if (ss_tokenizer_load_memory(j1, l1, "fuzz-resave", &t2) != SS_OK) __builtin_trap();
        if (ss_tokenizer_to_json(t2, &j2, &l2) != SS_OK) __builtin_trap();
        if (l1 != l2 || memcmp(j1, j2, l1) != 0) __builtin_trap();
    }
    free(j1);
    free(j2);
    ss_tokenizer_free(t2);
    ss_tokenizer_free(t);
    return 0;
}
