/* libFuzzer target: ss_st_open_memory on arbitrary bytes, then every reader
 * call on whatever it accepts. Build with
 *   CC=clang cmake -S . -B build-fuzz -DSS_FUZZ=ON -DSS_SANITIZE=ON -DSS_NATIVE=OFF
 *   cmake --build build-fuzz --target fuzz_safetensors
 * and run on a scratch copy of fuzz/corpus/safetensors. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "selfsup/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ss_safetensors *st = NULL;
    if (ss_st_open_memory(data, size, "fuzz", &st) != SS_OK) return 0;
    int n = ss_st_count(st);
    for (int i = 0; i < n; i++) {
        const ss_st_entry *e = ss_st_entry_at(st, i);
        if (ss_st_find(st, e->name) != e) abort(); /* names are unique */
        size_t numel = e->nbytes / ss_dtype_size(e->dtype);
        float *f = malloc((numel ? numel : 1) * sizeof *f);
        int32_t *k = malloc((numel ? numel : 1) * sizeof *k);
        if (f && ss_st_read_f32(st, e->name, f, e->ndim, e->shape) != SS_OK) abort();
        if (k) (void)ss_st_read_i32(st, e->name, k, (int64_t)numel);
        /* A wrong shape must be refused, never read. */
        int64_t wrong[1] = {(int64_t)numel + 1};
        if (f && ss_st_read_f32(st, e->name, f, 1, wrong) != SS_ERR_SHAPE) abort();
        free(f);
        free(k);
    }
    for (int i = 0; i < ss_st_meta_count(st); i++)
        if (!ss_st_meta(st, ss_st_meta_key_at(st, i))) abort();
    ss_st_close(st);
    return 0;
}
