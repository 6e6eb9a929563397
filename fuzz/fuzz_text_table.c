/* libFuzzer target for the text readers: the first byte picks the file's
 * extension (.csv, .tsv, .txt) and whether the corpus reading splits
 * samples into lines; the rest is the file. Labelled
 * tables (RFC 4180 quoting, headers, label mapping) and corpora (one sample
 * per line) must load or fail with a message; a loaded set is consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "selfsup/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const ss_textset *s)
{
    for (int64_t i = 0; i < s->n; i++) {
        if (!s->texts[i] || s->texts[i][s->lens[i]] != '\0') abort();
        if (s->labels[i] < -1 || s->labels[i] >= (s->nclasses > 0 ? s->nclasses : 1)) abort();
    }
    for (int c = 0; c < s->nclasses; c++)
        if (!s->class_names[c]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *ext[] = {"csv", "tsv", "txt"};
    if (size < 1) return 0;
    char path[256];
    snprintf(path, sizeof path, "/tmp/ss_fuzz_text_%d.%s", (int)getpid(), ext[data[0] % 3]);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size > 1) fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    ss_textset s;
    memset(&s, 0, sizeof s);
    if (ss_textset_load_labelled(path, &s) == SS_OK) check(&s);
    ss_textset_free(&s);
    if (ss_textset_load_corpus(path, data[0] & 4, &s) == SS_OK) check(&s);
    ss_textset_free(&s);
    unlink(path);
    return 0;
}
