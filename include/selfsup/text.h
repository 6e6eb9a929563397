/* selfsup — the text side's data layer: a byte-level BPE tokenizer, text
 * datasets (labelled and unlabelled), BERT-style MLM masking and text
 * corruptions for robustness tests.
 *
 * Tokenizer
 * ---------
 * Byte-level BPE in the style of GPT-2 / Hugging Face `tokenizers`:
 *
 *   - Normalisation: optional lowercasing of ASCII letters A-Z (default on).
 *     Other bytes are left alone, so the tokenizer never needs valid UTF-8.
 *   - Pre-tokenisation: the GPT-2 rule, evaluated on bytes with ASCII
 *     classes. At each position the first alternative that matches wins:
 *         's 't 're 've 'm 'll 'd            (contractions)
 *         ␠?L+   ␠?N+   ␠?P+                 (optional one space 0x20, then a run)
 *         W+ not followed by a non-space    (trailing whitespace run)
 *         W+
 *     where L = ASCII letters and every byte >= 0x80 (so UTF-8 multibyte
 *     characters and cp1252 bytes stay inside words), N = ASCII digits,
 *     W = ASCII whitespace (\t \n \v \f \r and space), P = everything else
 *     (punctuation, C0 control bytes). For ASCII text this equals the
 *     ByteLevel pre-tokenizer of `tokenizers` (use_regex, no prefix space);
 *     for non-ASCII text it differs only in how non-ASCII punctuation and
 *     digits are classed (here: as letters).
 *   - Vocabulary: fixed special tokens [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
 *     [MASK]=4, then the 256 byte tokens (byte b has id 5 + b), then one
 *     token per merge, in merge order. Every byte sequence therefore encodes
 *     and decodes back exactly (modulo lowercasing); [UNK] is never produced.
 *     Special tokens are not recognised inside text: "[MASK]" in the input is
 *     encoded as ordinary bytes.
 *   - Files: the Hugging Face `tokenizers` JSON format (model type "BPE",
 *     ByteLevel pre-tokenizer and decoder, vocab map, merges list,
 *     added_tokens for the five specials).
 *
 * Training is deterministic: word frequencies are counted once, then merges
 * proceed with incremental pair-count updates; among pairs of equal count
 * the one with the lowest (left id, right id) is merged first. A merge is
 * made only while its pair occurs at least min_frequency times.
 *
 * A tokenizer is safe to use from several threads at once for encoding and
 * decoding (its word cache is protected by a mutex).
 */
#ifndef SELFSUP_TEXT_H
#define SELFSUP_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "selfsup/rng.h"
#include "selfsup/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- tokenizer */

enum { SS_TOK_PAD = 0, SS_TOK_UNK = 1, SS_TOK_CLS = 2, SS_TOK_SEP = 3, SS_TOK_MASK = 4 };
/* Number of special tokens, and the id of byte 0. */
#define SS_TOK_NSPECIAL 5
/* Smallest possible vocabulary: the specials and the 256 bytes. */
#define SS_TOK_MIN_VOCAB (SS_TOK_NSPECIAL + 256)

typedef struct ss_tokenizer ss_tokenizer;

typedef struct ss_tokenizer_opts {
    int vocab_size;    /* target vocabulary size incl. specials; default 8192 */
    int lowercase;     /* lowercase ASCII letters before everything; default 1 */
    int min_frequency; /* a pair must occur this often to be merged; default 2 */
} ss_tokenizer_opts;

/* The defaults above (vocab_size 8192, lowercase 1, min_frequency 2). */
ss_tokenizer_opts ss_tokenizer_opts_default(void);

/* Train a tokenizer on ntexts texts (each NUL-terminated). o may be NULL for
 * the defaults. vocab_size must be in [SS_TOK_MIN_VOCAB, 1<<22]; training
 * stops earlier when no pair occurs min_frequency times. */
ss_status ss_tokenizer_train(const char *const *texts, int64_t ntexts,
                             const ss_tokenizer_opts *o, ss_tokenizer **out);

/* As ss_tokenizer_train, with explicit lengths (texts may hold NUL bytes). */
ss_status ss_tokenizer_train_n(const char *const *texts, const size_t *lens, int64_t ntexts,
                               const ss_tokenizer_opts *o, ss_tokenizer **out);

/* Save as Hugging Face `tokenizers` JSON, atomically (temp file in the same
 * folder, fsync, rename). Saving is deterministic: same tokenizer, same bytes. */
ss_status ss_tokenizer_save(const ss_tokenizer *t, const char *path);

/* The JSON text ss_tokenizer_save writes (malloc'd, NUL-terminated). */
ss_status ss_tokenizer_to_json(const ss_tokenizer *t, char **json, size_t *len);

/* Load a tokenizer JSON file. Strict: bad JSON, missing or unsupported
 * fields, vocab ids out of range or duplicated, tokens outside the byte-level
 * alphabet, merges naming unknown tokens, missing byte tokens, or specials
 * not at their fixed ids give SS_ERR_FORMAT (SS_ERR_UNSUPPORTED for valid
 * `tokenizers` options this implementation lacks) with a message naming the
 * file and the field. Accepts merges as "a b" strings or ["a", "b"] pairs. */
ss_status ss_tokenizer_load(const char *path, ss_tokenizer **out);

/* As ss_tokenizer_load, from memory; label names the source in messages. */
ss_status ss_tokenizer_load_memory(const void *data, size_t len, const char *label,
                                   ss_tokenizer **out);

void ss_tokenizer_free(ss_tokenizer *t);

/* Number of tokens (ids are 0 .. size-1). */
int ss_tokenizer_vocab_size(const ss_tokenizer *t);
/* Number of merges. */
int ss_tokenizer_merge_count(const ss_tokenizer *t);
/* Whether the tokenizer lowercases its input. */
int ss_tokenizer_lowercase(const ss_tokenizer *t);

/* The raw bytes of token id (specials: their name, e.g. "[MASK]"); sets
 * *len. NULL when id is out of range. Not NUL-terminated. */
const char *ss_tokenizer_token_bytes(const ss_tokenizer *t, int32_t id, size_t *len);

/* Encode len bytes of text: writes up to max ids and returns the number of
 * ids the whole text needs (may exceed max; ids may be NULL when max is 0).
 * No special tokens are added. Never fails on any input bytes; only when
 * memory runs out it returns 0 and sets the error message. */
int64_t ss_tokenizer_encode(const ss_tokenizer *t, const char *text, size_t len,
                            int32_t *ids, int64_t max);

/* Encode for a classifier / MLM input: [CLS] tokens... [SEP], the tokens
 * truncated to seq_len - 2, then [PAD] up to seq_len. Returns the unpadded
 * length (<= seq_len). seq_len < 2 gives just as much of "[CLS][SEP]" as
 * fits; seq_len <= 0 writes nothing and returns 0. */
int ss_tokenizer_encode_seq(const ss_tokenizer *t, const char *text, size_t len,
                            int32_t *ids, int seq_len);

/* Decode ids to bytes, skipping special tokens and ids out of range. Writes
 * at most n bytes (no terminating NUL) and returns the length the whole
 * decoding needs. */
size_t ss_tokenizer_decode(const ss_tokenizer *t, const int32_t *ids, int64_t nids,
                           char *out, size_t n);

/* Split text into pre-tokens (the rule above, without lowercasing): stores
 * up to max (start, length) pairs in starts/lens and returns the number of
 * pre-tokens. Exposed for tests and tools. */
int64_t ss_tokenizer_pretokenize(const char *text, size_t len, size_t *starts, size_t *lens,
                                 int64_t max);

/* ----------------------------------------------------------------- datasets */

typedef struct ss_textset {
    int64_t n;          /* number of samples */
    char **texts;       /* n malloc'd NUL-terminated texts */
    size_t *lens;       /* their lengths in bytes */
    int32_t *labels;    /* n labels, -1 for unlabelled samples */
    int nclasses;       /* 0 for an unlabelled corpus */
    char **class_names; /* nclasses names */
    char source[512];   /* the path it was loaded from */
} ss_textset;

/* Load an unlabelled corpus. path may be
 *   - a text file (optionally .gz): one sample per non-empty line;
 *   - a .csv / .tsv table (optionally .gz) as ss_textset_load_labelled
 *     reads it: its text column, one sample per row (labels dropped);
 *   - a folder, read recursively (at each level its files sorted by name,
 *     then its subfolders sorted by name), skipping hidden
 *     files and documentation (README*, PROVENANCE*, LICENSE*, COPYING*,
 *     *SUMS, *.md): each file is one sample.
 * With by_line != 0 every sample is further split into its non-empty lines
 * (e.g. one sentence per line in movie-review-polarity-v2). Trailing
 * whitespace is removed from each sample. Labels are all -1, nclasses 0. */
ss_status ss_textset_load_corpus(const char *path, int by_line, ss_textset *out);

/* Load a labelled set. path may be
 *   - a table file, .tsv (tab-separated, no quoting), .csv (comma-separated,
 *     RFC 4180 quoting, multi-line quoted fields) or other (tab-separated when
 *     the first line holds a tab, else CSV), optionally .gz, with a UTF-8 BOM
 *     and CRLF line ends allowed. Each row has exactly two fields, text then
 *     label; the order is swapped when every first field is an integer and
 *     some second field is not (e.g. python3-pattern's "label","text"). A
 *     first row whose fields are names like text/sentence/review and
 *     label/class/polarity/sentiment is a header. Labels that are all
 *     integers 0..K-1 are used as class indices (names "0".."K-1"); other
 *     integer labels (e.g. -1/1) and names are mapped to indices in sorted
 *     order (numeric for integers, byte order for names). Bad rows (wrong
 *     field count, empty text or label, unterminated quote) give
 *     SS_ERR_FORMAT naming the file and line.
 *   - a folder with one subfolder per class: each file under a subfolder is
 *     one sample; classes are the subfolder names, sorted.
 *   - a folder of one file per class, each line one sample: when all files
 *     share a stem (rt-polarity.neg, rt-polarity.pos) the class names are
 *     the extensions ("neg", "pos"), else the names without extension;
 *     sorted. Documentation files are skipped as for corpora.
 * Samples come in class order, then file order, then line order; trailing
 * whitespace is removed from each sample. */
ss_status ss_textset_load_labelled(const char *path, ss_textset *out);

/* Free a set's memory and zero it (safe on a zeroed set). */
void ss_textset_free(ss_textset *s);

/* Seeded class-balanced split: for every class (unlabelled samples form one
 * group) round(test_frac * count) samples go to the test set. Both index
 * arrays are sorted ascending and malloc'd. test_frac in [0, 1]. */
ss_status ss_textset_split(const ss_textset *s, double test_frac, uint64_t seed,
                           int32_t **train, int64_t *ntrain, int32_t **test, int64_t *ntest);

/* Class-balanced subset of the indices idx[0..n): spec "P%" (P in (0,100],
 * decimals allowed; round(P/100 * count) per class, at least 1), "N/class"
 * (min(N, count) per class) or "all". The choice is a prefix of a seeded
 * per-class shuffle, so with the same seed "1%" is inside "10%" is inside
 * "100%". The result is sorted ascending and malloc'd. */
ss_status ss_textset_subset(const ss_textset *s, const int32_t *idx, int64_t n, const char *spec,
                            uint64_t seed, int32_t **out, int64_t *nout);

/* Default data on a Debian machine (python3-pattern's test corpora):
 * labelled — a 4,000-sentence sample of rt-polarity (polarity-en-pang&lee2.csv,
 * labels -1/1 -> classes "-1","1"); corpus — 1,500 reviews of the movie-review
 * polarity v2 set (polarity-en-pang&lee1.csv; load with by_line = 1 for
 * sentences). Returns the path of the file (or its .gz form) that exists,
 * else the plain path. */
const char *ss_text_default_labelled(void);
const char *ss_text_default_corpus(void);

/* ------------------------------------------------------------- MLM masking */

/* BERT masking of one sequence of seq_len ids. Positions holding a special
 * token (id < SS_TOK_NSPECIAL: [PAD], [UNK], [CLS], [SEP], [MASK]) are never
 * chosen. Of the k eligible positions, max(1, round(p * k)) are chosen
 * (0 when k == 0 or p <= 0), uniformly without replacement; each chosen one
 * becomes [MASK] with probability 0.8, a uniformly random non-special token
 * (id in [SS_TOK_NSPECIAL, vocab)) with probability 0.1, or stays as it is.
 * inputs gets the corrupted sequence, targets the original id at chosen
 * positions and -1 elsewhere. Draws from r, so each call masks afresh. */
void ss_mlm_mask(const int32_t *ids, int seq_len, int vocab, float p, ss_rng *r,
                 int32_t *inputs, int32_t *targets);

/* ------------------------------------------------------------- corruptions */

/* Number of text corruptions, and the name of corruption i (NULL when out
 * of range): "typo", "case", "word-dropout". */
int ss_text_corruption_count(void);
const char *ss_text_corruption_name(int i);

/* Corrupt len bytes of text with the named corruption at severity 1..3
 * (0 returns a copy). Deterministic in (name, severity, seed, index).
 *   typo          each ASCII letter/digit, with probability 0.03/0.07/0.15,
 *                 is swapped with the next letter/digit or dropped (even odds);
 *   case          each ASCII letter's case is toggled with probability
 *                 0.1/0.25/0.5;
 *   word-dropout  each whitespace-separated word (with its following
 *                 whitespace) is dropped with probability 0.1/0.2/0.35,
 *                 keeping at least one word.
 * Bytes >= 0x80 are never changed or split. Returns a malloc'd NUL-terminated
 * string and sets *out_len (out_len may be NULL); NULL with an error message
 * for an unknown name or bad severity. */
char *ss_text_corrupt(const char *name, int severity, uint64_t seed, int64_t index,
                      const char *text, size_t len, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
