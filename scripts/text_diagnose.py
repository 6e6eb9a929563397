#!/usr/bin/python3
"""Diagnostics for selfsup's text side (docs/TEXT_RESULTS.md, "Diagnosis").

  text_diagnose.py probe  SELFSUP TOKENIZER [CHECKPOINT] [--bow] [--labels N [--seeds K]]
      rt-polarity (../shared/data/rt-polarity, the fixed split of
      docs/rt-polarity-split.txt) tokenized by `selfsup tokenizer encode
      --file`; the text-s encoder of CHECKPOINT (random init without one)
      run over [CLS] ids [SEP]; a logistic regression (weight decay chosen on
      a 20% validation part) on every layer's mean-pooled and [CLS]
      features, trained on all 9,596 train sentences, scored on the 1,066
      test sentences (--labels N: on N of them, a seeded random subset, the
      mean over --seeds K subsets). --bow adds the same probe on binary
      bag-of-tokens.
  text_diagnose.py mlm-torch SELFSUP TOKENIZER [--steps 1000] [--lr 2e-3]
      The MLM recipe of `selfsup pretrain --method mlm --seq-len 64 --batch 64`
      in PyTorch (text-s of scripts/ref_models.py, selfsup's init rules,
      BERT head tied to the token table, 15% chosen 80/10/10, AdamW wd 0.01
      on matrices, warm-up 10 steps then cosine to 1%, clip 1): the loss
      every 100 steps, to set beside selfsup's on the same corpus.
Needs Debian's python3-torch; run with /usr/bin/python3.
"""
import argparse, glob, math, os, subprocess, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_models as R  # noqa: E402

SHARED = os.environ.get("SS_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
HERE = os.path.dirname(os.path.abspath(__file__))
T = 64


def encode(selfsup, tok, lines):
    path = "/tmp/text_diagnose_%d.txt" % os.getpid()
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    out = subprocess.run([selfsup, "tokenizer", "encode", "--tokenizer", tok, "--file", path],
                         capture_output=True, check=True).stdout.decode().split("\n")[:-1]
    os.unlink(path)
    assert len(out) == len(lines), (len(out), len(lines))
    return [[int(x) for x in r.split()] for r in out]


def rt_polarity(selfsup, tok):
    lines, labels = [], []
    for lab, f in ((0, "neg"), (1, "pos")):
        with open(os.path.join(SHARED, "data/rt-polarity/rt-polarity." + f), "rb") as fh:
            for l in fh.read().split(b"\n"):
                l = l.rstrip(b"\r")
                if l.strip():
                    lines.append(l)
                    labels.append(lab)
    with open(os.path.join(HERE, "..", "docs", "rt-polarity-split.txt")) as fh:
        test = sorted(int(x) for x in fh if x.strip() and not x.startswith("#"))
    return encode(selfsup, tok, lines), np.array(labels), np.array(test)


def selfsup_init(*modules):
    """selfsup's init rules: xavier-uniform linear weights, zero biases,
    N(0, 0.02) token and position tables truncated at 2 std."""
    mods = [mod for top in modules for mod in top.modules()]
    for mod in mods:  # linears first, then the tables (the draw order behind docs/TEXT_RESULTS.md)
        if isinstance(mod, nn.Linear):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    for mod in mods:
        if isinstance(mod, R.TextS):
            nn.init.trunc_normal_(mod.tok_embed.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.trunc_normal_(mod.pos_embed.weight, std=0.02, a=-0.04, b=0.04)


def vocab_of(tok):
    import json
    with open(tok) as f:
        return len(json.load(f)["model"]["vocab"])


def logreg(ftr, ytr, fte, yte):
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    n = len(ytr)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    va, tr = perm[: n // 5], perm[n // 5:]

    def fit(x, y, wd, iters):
        w = torch.zeros(x.shape[1], 2, requires_grad=True)
        b = torch.zeros(2, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(x @ w + b, y) + wd * (w ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        return w.detach(), b.detach()

    best = None
    for wd in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        w, b = fit(ftr[tr], ytr[tr], wd, 200)
        acc = ((ftr[va] @ w + b).argmax(1) == ytr[va]).float().mean().item()
        if best is None or acc > best[0]:
            best = (acc, wd)
    w, b = fit(ftr, ytr, best[1], 300)
    return ((fte @ w + b).argmax(1) == yte).float().mean().item(), best[1]


def cmd_probe(a):
    if a.labels < 0 or a.seeds < 1:
        sys.exit("text_diagnose.py probe: --labels N needs N >= 0 and --seeds K needs K >= 1")
    ids, labels, test = rt_polarity(a.selfsup, a.tokenizer)
    V, N = vocab_of(a.tokenizer), len(ids)
    x = torch.zeros(N, T, dtype=torch.long)
    for i, r in enumerate(ids):
        r = [2] + r[: T - 2] + [3]
        x[i, : len(r)] = torch.tensor(r)
    y = torch.tensor(labels)
    is_test = np.zeros(N, bool)
    is_test[test] = True
    tr, te = np.where(~is_test)[0], np.where(is_test)[0]
    m = R.TextS(vocab=V, seq=T)
    torch.manual_seed(0)
    if a.checkpoint:
        st, _ = R.load_safetensors(a.checkpoint)
        m.load_state_dict({k[8:]: torch.tensor(v) for k, v in st.items() if k.startswith("encoder.")}, strict=True)
    else:
        selfsup_init(m)
    feats = {}
    with torch.no_grad():
        mask = x != 0
        w = mask.float() / mask.sum(1, keepdim=True)

        def pool(h, name):
            feats[name + " mean"] = (h * w[..., None]).sum(1)
            feats[name + " [CLS]"] = h[:, 0]
        h = m.tok_embed(x) + m.pos_embed(torch.arange(T))[None]
        pool(h, "embeddings")
        for i, b in enumerate(m.blocks):
            h = b(h, mask)
            pool(h, "block %d" % (i + 1))
        pool(m.norm(h), "final norm")
    subsets = [tr]
    if a.labels > len(tr):
        sys.exit("text_diagnose.py probe: --labels %d, but the train split has %d sentences" % (a.labels, len(tr)))
    if a.labels:
        subsets = [np.sort(np.random.RandomState(s).choice(tr, a.labels, replace=False)) for s in range(a.seeds)]
    what = "%d labels, mean of %d subsets" % (a.labels, a.seeds) if a.labels else "100% labels"
    print("| features | probe accuracy (%s) | weight decay |\n| --- | --- | --- |" % what)

    def probe(name, f):
        r = [logreg(f[s], y[s], f[te], y[te]) for s in subsets]
        print("| %s | %.1f%% | %s |" % (name, 100 * np.mean([acc for acc, _ in r]), " ".join("%g" % wd for _, wd in r)),
              flush=True)
    for k, f in feats.items():
        probe(k, f)
    if a.bow:
        bow = torch.zeros(N, V)
        for i, r in enumerate(ids):
            bow[i, r] = 1
        probe("binary bag of tokens (%d)" % V, bow)


def cmd_mlm_torch(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    V = vocab_of(a.tokenizer)
    docs = []
    for f in sorted(glob.glob(os.path.join(SHARED, "data/movie-review-polarity-v2/txt_sentoken/*/*.txt"))):
        with open(f, "rb") as fh:
            docs.append(fh.read().replace(b"\r", b" ").replace(b"\n", b" "))
    ids, _, test = rt_polarity(a.selfsup, a.tokenizer)
    tset = set(test.tolist())
    stream = []
    for r in encode(a.selfsup, a.tokenizer, docs) + [r for i, r in enumerate(ids) if i not in tset]:
        stream += r + [3]
    W = T - 2
    nseq = len(stream) // W
    seqs = np.zeros((nseq, T), np.int64)
    seqs[:, 0] = 2
    seqs[:, 1:T - 1] = np.array(stream[: nseq * W]).reshape(nseq, W)
    seqs[:, T - 1] = 3
    print("corpus: %d tokens, %d sequences of %d" % (len(stream), nseq, T), flush=True)
    m = R.TextS(vocab=V, seq=T)
    head = R.MLMHead(128, V)
    selfsup_init(m, head)
    params = list(m.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=a.lr)
    g = torch.Generator().manual_seed(0)
    t0, run, wu = time.time(), 0.0, 10
    for step in range(a.steps):
        lr = a.lr * (step + 1) / wu if step < wu else \
            a.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - wu) / max(1, a.steps - wu))))
        for gr in opt.param_groups:
            gr["lr"] = lr
        x = torch.from_numpy(seqs[torch.randint(0, nseq, (64,), generator=g).numpy()])
        chosen = (torch.rand(x.shape, generator=g) < 0.15) & (x >= 5)
        r = torch.rand(x.shape, generator=g)
        inp = x.clone()
        inp[chosen & (r < 0.8)] = 4
        rnd = chosen & (r >= 0.8) & (r < 0.9)
        inp[rnd] = torch.randint(5, V, (int(rnd.sum()),), generator=g)
        loss = F.cross_entropy(head(m.hidden(inp)[chosen], m.tok_embed.weight), x[chosen])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        run += loss.item()
        if (step + 1) % 100 == 0:
            print("step %d loss %.3f lr %.2e %.0f s" % (step + 1, run / 100, lr, time.time() - t0), flush=True)
            run = 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("probe")
    q.add_argument("selfsup")
    q.add_argument("tokenizer")
    q.add_argument("checkpoint", nargs="?")
    q.add_argument("--bow", action="store_true")
    q.add_argument("--labels", type=int, default=0,
                   help="train each probe on N train sentences (a seeded random subset; 0 = all 9,596)")
    q.add_argument("--seeds", type=int, default=1, help="with --labels: mean over this many subsets")
    q = sub.add_parser("mlm-torch")
    q.add_argument("selfsup")
    q.add_argument("tokenizer")
    q.add_argument("--steps", type=int, default=1000)
    q.add_argument("--lr", type=float, default=2e-3)
    q.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(getattr(a, "threads", 1))
    (cmd_probe if a.cmd == "probe" else cmd_mlm_torch)(a)


if __name__ == "__main__":
    main()
