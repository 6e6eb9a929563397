/* BERT-style masked-language-model masking (see text.h). */
#include <math.h>
#include <stdlib.h>

#include "selfsup/text.h"

void ss_mlm_mask(const int32_t *ids, int seq_len, int vocab, float p, ss_rng *r, int32_t *inputs,
                 int32_t *targets)
{
    if (!ids || !inputs || !targets || !r || seq_len <= 0) return;
    int32_t stackpos[512];
    int32_t *pos = seq_len <= 512 ? stackpos : malloc((size_t)seq_len * sizeof *pos);
    int k = 0;
    for (int i = 0; i < seq_len; i++) {
        inputs[i] = ids[i];
        targets[i] = -1;
        if (ids[i] >= SS_TOK_NSPECIAL && pos) pos[k++] = i;
    }
    int m = 0;
    if (k > 0 && p > 0) {
        double want = p >= 1 ? (double)k : floor((double)p * k + 0.5);
        m = want < 1 ? 1 : (int)want;
        if (m > k) m = k;
    }
    int nrand = vocab - SS_TOK_NSPECIAL;
    for (int j = 0; j < m; j++) {
        /* Partial Fisher-Yates: pos[j] is a uniform pick among the rest. */
        int c = j + (int)ss_rng_below(r, (uint32_t)(k - j));
        int32_t at = pos[c];
        pos[c] = pos[j];
        pos[j] = at;
        targets[at] = ids[at];
        float u = ss_rng_uniform(r);
        if (u < 0.8f) inputs[at] = SS_TOK_MASK;
        else if (u < 0.9f && nrand > 0)
            inputs[at] = SS_TOK_NSPECIAL + (int32_t)ss_rng_below(r, (uint32_t)nrand);
    }
    if (pos != stackpos) free(pos);
}
