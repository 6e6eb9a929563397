/* selfsup demo --text: the three claims of self-supervised learning for
 * text in one run, with a report (like the image demo, cmd_demo.c):
 *   1. pretrain text-s with masked-token prediction on unlabelled reviews
 *      (default: python3-pattern's 1,500 movie reviews plus the train part
 *      of the labelled set, labels dropped);
 *   2. fine-tune it on 10% and 100% of the labels of a sentiment set
 *      (default: python3-pattern's 4,000-sentence rt-polarity sample, fixed
 *      90/10 split), against the same encoder trained from scratch with the
 *      same recipe and seed, plus a linear probe on frozen features;
 *   3. evaluate the 10% models under typos, case changes and word dropout;
 *   4. write report.md and report.html (inline SVG charts).
 * Every stage runs in-process through the library (selfsup/textrun.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "cli/text_cli.h"
#include "selfsup/fileio.h"
#include "selfsup/plot.h"
#include "selfsup/textrun.h"

typedef struct arm_result {
    double acc, seconds;
} arm_result;

static void fmt_secs(double s, char *b, size_t n)
{
    int t = (int)(s + 0.5);
    if (t >= 60) snprintf(b, n, "%dm%02ds", t / 60, t % 60);
    else snprintf(b, n, "%ds", t);
}

/* One classifier run: scratch (pretrained NULL) or fine-tune. */
static ss_status classify(const ss_tokenizer *tok, const ss_textset *set, const int32_t *lab, int64_t nlab,
                          const int32_t *test_idx, int64_t ntest, const char *pretrained, int epochs, uint64_t seed,
                          const char *run_dir, int quiet, ss_model *m, arm_result *r)
{
    ss_text_run_opts o = ss_text_run_defaults(0);
    o.epochs = epochs;
    o.seq_len = 64;
    o.seed = seed;
    o.run_dir = run_dir;
    o.quiet = quiet;
    o.what = pretrained ? "finetune" : "scratch";
    o.config_json = pretrained ? "{\"command\":\"demo finetune\",\"pool\":\"mean\"}"
                               : "{\"command\":\"demo scratch\",\"pool\":\"mean\"}";
    ss_status s = ss_text_model_create(m, tok, 64, set->nclasses);
    if (!s) s = ss_model_finalize(m, seed);
    if (!s && pretrained) s = ss_checkpoint_load_into(pretrained, m, "encoder.", 0, NULL, NULL);
    ss_fit_result res;
    memset(&res, 0, sizeof res);
    if (!s) s = ss_text_train_classifier(m, tok, set, lab, nlab, set, test_idx, ntest, &o, &r->acc, &res);
    r->seconds = res.seconds;
    ss_fit_result_free(&res);
    return s;
}

int cmd_text_demo(int argc, char **argv)
{
    ss_args a;
    if (ss_args_parse(&a, "demo", argc, argv)) return cli_fail();
    a.help_args = " --text";
    if (args_flag(&a, "help")) {
        printf("usage: selfsup demo --text [--quick] [--method docbow|mlm] [--corpus PATH] [--labelled PATH]\n"
               "  [--pretrain-epochs 2] [--seed 0] [--threads 2] [--out runs/demo-text]\n"
               "docbow (8192-token BPE) or MLM (4096) pretraining on unlabelled reviews, fine-tune vs scratch\n"
               "at 10%% and 100%% labels, linear probe,\n"
               "robustness to typos / case / word dropout; OUT/report.html and OUT/report.md. Defaults use\n"
               "python3-pattern's corpora (about 7 minutes on 2 cores; --quick: about 1 minute).\n");
        return 0;
    }
    int ok = 1;
    args_flag(&a, "text");
    int quick = args_flag(&a, "quick");
    const char *corpus_path = args_str(&a, "corpus", ss_text_default_corpus());
    const char *lab_path = args_str(&a, "labelled", ss_text_default_labelled());
    const char *out = args_str(&a, "out", "runs/demo-text");
    const char *method = args_str(&a, "method", "docbow");
    int docbow = !strcmp(method, "docbow");
    if (!docbow && strcmp(method, "mlm")) {
        fprintf(stderr, "selfsup demo --text: --method '%s': expected docbow or mlm\n", method);
        return 2;
    }
    /* docbow needs whole sentiment words as tokens (docs/TEXT_RESULTS.md) */
    const char *M = docbow ? "docbow" : "MLM";
    int vocab = docbow ? 8192 : 4096;
    char s_ft[32], s_pr[32], s_loss[48];
    snprintf(s_ft, sizeof s_ft, "%s + fine-tune", M);
    snprintf(s_pr, sizeof s_pr, "%s + linear probe", M);
    snprintf(s_loss, sizeof s_loss, "%s pretraining loss", M);
    const char *extra_use = docbow ? "its reviews are the documents; the labelled train sentences, without labels, "
                                     "train the tokenizer only"
                                   : "+ the labelled train sentences without labels";
    int pre_epochs = (int)args_int(&a, "pretrain-epochs", quick ? 1 : 2, 1, 1000, &ok);
    uint64_t seed = (uint64_t)args_int(&a, "seed", 0, 0, 1L << 40, &ok);
    int threads = (int)args_int(&a, "threads", 2, 1, 256, &ok);
    if (!ok || ss_args_finish(&a)) return cli_fail();
    ss_set_threads(threads);
    double t_all = ss_now();
    ss_textset lab, corpus;
    memset(&lab, 0, sizeof lab);
    memset(&corpus, 0, sizeof corpus);
    int32_t *tr = NULL, *te = NULL, *sub[2] = {NULL, NULL};
    int64_t ntr = 0, nte = 0, nsub[2] = {0, 0}, ndocs = 0;
    ss_tokenizer *tok = NULL;
    ss_model pre, mods[2][2];
    memset(&pre, 0, sizeof pre);
    memset(mods, 0, sizeof mods);
    arm_result R[2][2]; /* [labels 10%, 100%][scratch, finetune] */
    memset(R, 0, sizeof R);
    double probe[2] = {NAN, NAN};
    ss_text_robust_result rob[2];
    memset(rob, 0, sizeof rob);
    ss_fit_result pres;
    memset(&pres, 0, sizeof pres);
    char p[1100], pre_ck[1100];
    const char *fracs[2] = {"10%", "100%"};
    int nfrac = quick ? 1 : 2;
    int epochs_for[2] = {quick ? 8 : 15, 3};

    fprintf(stderr, "== data: labelled %s, corpus %s\n", lab_path, corpus_path);
    ss_status s = ss_textset_load_labelled(lab_path, &lab);
    if (!s) s = ss_textset_split(&lab, 0.1, 0, &tr, &ntr, &te, &nte);
    if (!s) s = ss_textset_load_corpus(corpus_path, 0, &corpus);
    if (!s && quick && corpus.n > 120) { /* --quick: the first 120 reviews */
        for (int64_t i = 120; i < corpus.n; i++) free(corpus.texts[i]);
        corpus.n = 120;
    }
    ndocs = corpus.n; /* docbow reads these as documents; the train sentences only feed the tokenizer */
    if (!s && (s = ss_mkdir_p(out)) == SS_OK) {
        /* The pretraining corpus also gets the labelled train text (no labels). */
        int64_t n = corpus.n + ntr;
        char **tx = realloc(corpus.texts, sizeof(char *) * (size_t)n);
        if (tx) corpus.texts = tx;
        size_t *ln = realloc(corpus.lens, sizeof(size_t) * (size_t)n);
        if (ln) corpus.lens = ln;
        int32_t *lb = realloc(corpus.labels, sizeof(int32_t) * (size_t)n);
        if (lb) corpus.labels = lb;
        if (!tx || !ln || !lb) s = ss_seterr(SS_ERR_NOMEM, "demo: out of memory");
        for (int64_t i = 0; !s && i < ntr; i++) {
            corpus.texts[corpus.n] = strdup(lab.texts[tr[i]]);
            corpus.lens[corpus.n] = lab.lens[tr[i]];
            corpus.labels[corpus.n] = -1;
            if (!corpus.texts[corpus.n]) s = ss_seterr(SS_ERR_NOMEM, "demo: out of memory");
            corpus.n++;
        }
    }
    if (s) goto fail;
    fprintf(stderr, "== tokenizer: byte-level BPE, %d tokens, on %lld unlabelled samples\n", vocab, (long long)corpus.n);
    {
        ss_tokenizer_opts to = ss_tokenizer_opts_default();
        to.vocab_size = vocab;
        if ((s = ss_tokenizer_train_n((const char *const *)corpus.texts, corpus.lens, corpus.n, &to, &tok))) goto fail;
        vocab = ss_tokenizer_vocab_size(tok); /* small corpora stop merging early */
        snprintf(p, sizeof p, "%.900s/tokenizer.json", out);
        if ((s = ss_tokenizer_save(tok, p))) goto fail;
    }
    fprintf(stderr, "== 1. %s pretraining, %d epoch(s), no labels\n", M, pre_epochs);
    {
        ss_text_run_opts o = ss_text_run_defaults(1);
        o.epochs = pre_epochs;
        o.seq_len = 64;
        o.lr = 2e-3f;
        o.warmup_epochs = 0.5f;
        o.seed = seed;
        snprintf(p, sizeof p, "%.900s/%s", out, method);
        o.run_dir = p;
        o.config_json = docbow ? "{\"command\":\"demo pretrain\",\"method\":\"docbow\",\"pool\":\"mean\"}"
                               : "{\"command\":\"demo pretrain\",\"method\":\"mlm\",\"pool\":\"mean\"}";
        if ((s = ss_text_model_create(&pre, tok, 64, 0))) goto fail;
        ss_textset docs = corpus;
        docs.n = ndocs;
        if ((s = docbow ? ss_text_pretrain_docbow(&pre, tok, &docs, &o, &pres)
                        : ss_text_pretrain_mlm(&pre, tok, &corpus, &o, &pres)))
            goto fail;
        snprintf(pre_ck, sizeof pre_ck, "%.900s/%s/last.safetensors", out, method);
    }
    for (int f = 0; f < nfrac; f++) {
        if ((s = ss_textset_subset(&lab, tr, ntr, fracs[f], seed, &sub[f], &nsub[f]))) goto fail;
        for (int arm = 0; arm < 2; arm++) {
            fprintf(stderr, "== 2. %s, %s labels (%lld sentences)\n", arm ? "fine-tune" : "scratch", fracs[f],
                    (long long)nsub[f]);
            snprintf(p, sizeof p, "%.900s/%s-%s", out, arm ? "finetune" : "scratch", f ? "100" : "10");
            if ((s = classify(tok, &lab, sub[f], nsub[f], te, nte, arm ? pre_ck : NULL, epochs_for[f], seed, p, 0,
                              &mods[f][arm], &R[f][arm])))
                goto fail;
        }
        fprintf(stderr, "== 2. linear probe on frozen %s features, %s labels\n", M, fracs[f]);
        if ((s = ss_text_probe(&pre, tok, &lab, sub[f], nsub[f], &lab, te, nte, SS_POOL_MEAN, 100, seed, &probe[f])))
            goto fail;
    }
    fprintf(stderr, "== 3. robustness of the 10%% models (typos, case, word dropout; severities 1-3)\n");
    for (int arm = 0; arm < 2; arm++)
        if ((s = ss_text_robustness(&mods[0][arm], tok, &lab, te, nte, SS_POOL_MEAN, seed, &rob[arm]))) goto fail;

    /* ---- report ---- */
    {
        double total = ss_now() - t_all;
        char bt[32], bp[32];
        fmt_secs(total, bt, sizeof bt);
        fmt_secs(pres.seconds, bp, sizeof bp);
        double l0 = pres.nhist ? pres.hist_loss[0] : NAN, l1 = pres.nhist ? pres.hist_loss[pres.nhist - 1] : NAN;
        double chance = log((double)ss_tokenizer_vocab_size(tok));
        double m0 = ss_text_robust_mean(&rob[0]), m1 = ss_text_robust_mean(&rob[1]);
        char v1[512], v2[512], v3[512];
        if (pres.nhist > 1)
            snprintf(v1, sizeof v1,
                     "%s: %s pretraining learned from unlabelled text: the mean loss fell from %.3f "
                     "(first epoch) to %.3f (last epoch); a uniform guess over the %d-token vocabulary scores %.3f.",
                     l1 < l0 && l1 < chance - (docbow ? 0.1 : 0.5) ? "Yes" : "No", M, l0, l1, ss_tokenizer_vocab_size(tok), chance);
        else
            snprintf(v1, sizeof v1,
                     "%s: %s pretraining learned from unlabelled text: mean loss %.3f over one epoch; "
                     "a uniform guess over the %d-token vocabulary scores %.3f.",
                     isfinite(l1) && l1 < chance - (docbow ? 0.1 : 0.5) ? "Yes" : "No", M, l1, ss_tokenizer_vocab_size(tok), chance);
        snprintf(v2, sizeof v2,
                 "%s: with 10%% of the labels (%lld sentences) the pretrained encoder, fine-tuned, reaches %.2f%% "
                 "against %.2f%% for the same encoder trained from scratch (%+.2f points); linear probe %.2f%%.",
                 R[0][1].acc > R[0][0].acc ? "Yes" : "No", (long long)nsub[0], 100 * R[0][1].acc, 100 * R[0][0].acc,
                 100 * (R[0][1].acc - R[0][0].acc), 100 * probe[0]);
        snprintf(v3, sizeof v3,
                 "%s: under typos, case changes and word dropout the pretrained model loses %.2f points from clean "
                 "(keeps %.2f%% on average) against %.2f points (keeps %.2f%%) from scratch; robust means losing "
                 "less, as on the image side.",
                 rob[1].clean - m1 < rob[0].clean - m0 ? "Yes" : "No", 100 * (rob[1].clean - m1), 100 * m1,
                 100 * (rob[0].clean - m0), 100 * m0);
        const char *cats[2] = {"10% labels", "100% labels"};
        const char *ser[3] = {"scratch", s_ft, s_pr};
        double accv[6];
        for (int k = 0; k < 2; k++) {
            accv[0 * 2 + k] = k < nfrac ? 100 * R[k][0].acc : NAN;
            accv[1 * 2 + k] = k < nfrac ? 100 * R[k][1].acc : NAN;
            accv[2 * 2 + k] = k < nfrac ? 100 * probe[k] : NAN;
        }
        const char *rcats[3];
        double rv[6];
        int nr = rob[0].n < 3 ? rob[0].n : 3;
        for (int c = 0; c < nr; c++) {
            rcats[c] = rob[0].name[c];
            for (int arm = 0; arm < 2; arm++) {
                double mm = 0;
                for (int k = 0; k < SS_TEXT_SEVERITIES; k++) mm += rob[arm].acc[c][k] / SS_TEXT_SEVERITIES;
                rv[arm * nr + c] = 100 * mm;
            }
        }
        const char *rser[2] = {"scratch", s_ft};
        double *ex = malloc(sizeof(double) * (size_t)(pres.nhist ? pres.nhist : 1));
        for (int i = 0; ex && i < pres.nhist; i++) ex[i] = i + 1;
        ss_series ls = {s_loss, ex, pres.hist_loss, pres.nhist};
        snprintf(p, sizeof p, "%.900s/accuracy.png", out);
        ss_plot_bars_png(p, "test accuracy (%), rt-polarity sample", "accuracy %", cats, nfrac, ser, accv, 3, 800, 450);
        snprintf(p, sizeof p, "%.900s/robustness.png", out);
        ss_plot_bars_png(p, "mean accuracy under corruption, 10% labels", "accuracy %", rcats, nr, rser, rv, 2, 800, 450);
        char *svg1 = ss_plot_bars_svg("test accuracy (%), rt-polarity sample", "accuracy %", cats, nfrac, ser, accv, 3,
                                      800, 450);
        char *svg2 = ss_plot_bars_svg("mean accuracy under corruption, 10% labels", "accuracy %", rcats, nr, rser, rv,
                                      2, 800, 450);
        char *svg3 = pres.nhist > 1 ? ss_plot_line_svg(s_loss, "epoch", "loss", &ls, 1, 800, 350) : NULL;
        free(ex);
        snprintf(p, sizeof p, "%.900s/report.md", out);
        FILE *f = fopen(p, "w");
        if (!f) {
            s = ss_seterr(SS_ERR_IO, "%s: cannot write", p);
            free(svg1);
            free(svg2);
            free(svg3);
            goto fail;
        }
        fprintf(f, "# selfsup demo --text\n\nLabelled: `%s` (%lld sentences, %d classes; fixed 90/10 split, seed 0: %lld "
                   "train, %lld test). Unlabelled: `%s` (%s). Encoder text-s "
                   "(sequence length 64, %d-token BPE), seed %llu, %d threads. Total wall time %s; %s pretraining "
                   "%s (%d epoch(s)).\n\n## Claims\n\n1. %s\n2. %s\n3. %s\n\n## Accuracy\n\n"
                   "| labels | scratch | %s | %s |\n| --- | --- | --- | --- |\n",
                lab_path, (long long)lab.n, lab.nclasses, (long long)ntr, (long long)nte, corpus_path, extra_use, vocab,
                (unsigned long long)seed, threads, bt, M, bp, pre_epochs, v1, v2, v3, s_ft, s_pr);
        for (int k = 0; k < nfrac; k++)
            fprintf(f, "| %s (%lld) | %.2f%% | %.2f%% | %.2f%% |\n", fracs[k], (long long)nsub[k], 100 * R[k][0].acc,
                    100 * R[k][1].acc, 100 * probe[k]);
        fprintf(f, "\n![accuracy](accuracy.png)\n\n## Robustness (10%% labels, %lld test sentences)\n\n"
                   "| corruption | scratch s1 / s2 / s3 | %s s1 / s2 / s3 |\n| --- | --- | --- |\n"
                   "| clean | %.2f%% | %.2f%% |\n",
                (long long)nte, s_ft, 100 * rob[0].clean, 100 * rob[1].clean);
        for (int c = 0; c < nr; c++)
            fprintf(f, "| %s | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f |\n", rcats[c], 100 * rob[0].acc[c][0],
                    100 * rob[0].acc[c][1], 100 * rob[0].acc[c][2], 100 * rob[1].acc[c][0], 100 * rob[1].acc[c][1],
                    100 * rob[1].acc[c][2]);
        fprintf(f, "\n![robustness](robustness.png)\n\nEvery figure comes from this run; run folders are next to this "
                   "file.\n");
        fclose(f);
        snprintf(p, sizeof p, "%.900s/report.html", out);
        f = fopen(p, "w");
        if (f) {
            fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>selfsup demo --text</title><style>"
                       "body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:"
                       "collapse}td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}th{background:#eee}"
                       ".yes{color:#070}.no{color:#a00}</style></head><body><h1>selfsup demo --text</h1><p>Labelled: "
                       "<code>%s</code> (%lld sentences; fixed 90/10 split: %lld train, %lld test). Unlabelled: "
                       "<code>%s</code> (%s). Encoder text-s (sequence length 64, "
                       "%d-token BPE), seed %llu, %d threads. Total wall time %s; %s pretraining %s.</p>"
                       "<h2>Claims</h2><ol>",
                    lab_path, (long long)lab.n, (long long)ntr, (long long)nte, corpus_path, extra_use, vocab,
                    (unsigned long long)seed, threads, bt, M, bp);
            const char *vs[3] = {v1, v2, v3};
            for (int k = 0; k < 3; k++) fprintf(f, "<li class=\"%s\">%s</li>", vs[k][0] == 'Y' ? "yes" : "no", vs[k]);
            fprintf(f, "</ol><h2>Accuracy</h2><table><tr><th>labels</th><th>scratch</th><th>%s</th><th>%s</th></tr>",
                    s_ft, s_pr);
            for (int k = 0; k < nfrac; k++)
                fprintf(f, "<tr><td>%s (%lld)</td><td>%.2f%%</td><td>%.2f%%</td><td>%.2f%%</td></tr>", fracs[k],
                        (long long)nsub[k], 100 * R[k][0].acc, 100 * R[k][1].acc, 100 * probe[k]);
            fprintf(f, "</table>%s%s<h2>Robustness (10%% labels)</h2><table><tr><th>corruption</th><th>scratch</th>"
                       "<th>%s</th></tr><tr><td>clean</td><td>%.2f%%</td><td>%.2f%%</td></tr>",
                    svg1 ? svg1 : "", svg3 ? svg3 : "", s_ft, 100 * rob[0].clean, 100 * rob[1].clean);
            for (int c = 0; c < nr; c++)
                fprintf(f, "<tr><td>%s (mean of 3 severities)</td><td>%.2f%%</td><td>%.2f%%</td></tr>", rcats[c],
                        rv[c], rv[nr + c]);
            fprintf(f, "</table>%s<p>Every figure on this page comes from this run; run folders are next to this "
                       "file.</p></body></html>\n",
                    svg2 ? svg2 : "");
            fclose(f);
        }
        free(svg1);
        free(svg2);
        free(svg3);
        printf("1. %s\n2. %s\n3. %s\nreport: %s/report.html and %s/report.md\n", v1, v2, v3, out, out);
    }
    ss_fit_result_free(&pres);
    for (int f = 0; f < 2; f++)
        for (int arm = 0; arm < 2; arm++) ss_model_free(&mods[f][arm]);
    ss_model_free(&pre);
    ss_tokenizer_free(tok);
    ss_textset_free(&lab);
    ss_textset_free(&corpus);
    free(tr);
    free(te);
    free(sub[0]);
    free(sub[1]);
    return 0;
fail:
    fprintf(stderr, "selfsup demo --text: %s\n", ss_errmsg());
    ss_fit_result_free(&pres);
    for (int f = 0; f < 2; f++)
        for (int arm = 0; arm < 2; arm++) ss_model_free(&mods[f][arm]);
    ss_model_free(&pre);
    ss_tokenizer_free(tok);
    ss_textset_free(&lab);
    ss_textset_free(&corpus);
    free(tr);
    free(te);
    free(sub[0]);
    free(sub[1]);
    return 1;
}
