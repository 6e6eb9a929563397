/* Pieces of the docbow pretext (textrun.c) that tests check directly. */
#ifndef SS_TEXTRUN_INTERNAL_H
#define SS_TEXTRUN_INTERNAL_H
#include "selfsup/textrun.h"

/* Split each document of docs into sentences: at line ends, and inside a
 * line after '.', '!' or '?' followed by a space or tab once the piece holds
 * 40 bytes; pieces are trimmed and empty ones dropped. Documents of fewer
 * than two sentences are left out. out gets one sample per sentence, its
 * label the index of its document among those kept (0..*ndocs-1, in order).
 * out is the caller's to free with ss_textset_free, also after an error. */
ss_status ss_docbow_sentences(const ss_textset *docs, ss_textset *out, int64_t *ndocs);

/* The docbow target of one sentence: its document's token counts (doc_tok /
 * doc_cnt, nnz entries) less one per non-special token of ids[0..t) (never
 * below zero), times w, normalised to sum 1, into out[V]. Returns 1, or 0
 * when nothing is left (out all zero). */
int ss_docbow_target(const int32_t *doc_tok, const float *doc_cnt, int64_t nnz, const int32_t *ids, int t,
                     const float *w, int V, float *out);
#endif
