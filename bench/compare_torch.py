#!/usr/bin/python3
"""selfsup vs PyTorch on the step benchmarks of ../shared/REFERENCE_MODELS.md.

Runs `selfsup bench --json NAME` and the same configuration in PyTorch
(Debian's python3-torch, same thread count: torch.set_num_threads and
OMP_NUM_THREADS), alternating the two (each in its own process, so the peak
resident memory of each is its own), `--repeat N` times, and prints one table:
throughput of each, the ratio selfsup / PyTorch (> 1: selfsup is faster) and
the peak RSS of each process.  Figures are medians over the repeats; each
repeat is itself the median of `--steps` steps after 3 warm-up steps.

The PyTorch models are the reference modules of scripts/ref_models.py
(ConvNetS, ViTT blocks, TextS), built to match selfsup's configurations:
  gemm              1024x1024x1024 sgemm (torch.mm)
  step-convnet-sup  convnet-s + Linear(128,10), CE, AdamW(1e-3, wd 0.05), 256 x 1x28x28
  step-rotation     the 4 rotations of 256 images (1024), Linear(128,4) head, CE
  step-simclr       2 views x 256, projector 128-BN-ReLU-128-64, NT-Xent t=0.2
  step-mae          vit-t encoder on the 25% visible patches, decoder 64x2 (4 heads),
                    per-patch normalised MSE on masked patches
  step-mlm          text-s, 64 x 128 tokens, 15% chosen, dense-GELU-LN head with the
                    tied token table, CE on chosen tokens
Usage: /usr/bin/python3 bench/compare_torch.py [--bin build/selfsup] [--threads 2]
       [--steps 10] [--repeat 3] [--markdown] [NAME...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ALL = ["gemm", "step-convnet-sup", "step-rotation", "step-simclr", "step-mae", "step-mlm"]


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


# ----------------------------------------------------------------------------
# PyTorch side (runs in a worker process: --torch-worker NAME)
# ----------------------------------------------------------------------------
def torch_worker(name, threads, steps, bf16=False):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import ref_models as R

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)

    if name == "gemm":
        n = 1024
        dt = torch.bfloat16 if bf16 else torch.float32
        a = torch.randn(n, n).to(dt)
        b = torch.randn(n, n).to(dt)
        c = torch.empty(n, n, dtype=dt)
        ts = []
        for i in range(18):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            if i >= 3:
                ts.append(time.perf_counter() - t0)
        ms = statistics.median(ts)
        return {"bench": name, "ms": ms * 1e3, "gflops": 2 * n ** 3 / ms / 1e9, "peak_mib": peak_rss_mib()}

    def adamw(model):
        return torch.optim.AdamW(R.adamw_param_groups(model, 0.05), lr=1e-3)

    B = 256
    x = torch.randn(B, 1, 28, 28, generator=g)
    if name == "step-convnet-sup":
        model = R.Classifier(R.ConvNetS(1), 128, 10)
        y = torch.arange(B) % 10
        items, unit = B, "images"

        def loss_fn():
            return F.cross_entropy(model(x), y)
    elif name == "step-rotation":
        model = R.Classifier(R.ConvNetS(1), 128, 4)
        items, unit = B, "images"

        def loss_fn():
            xr = torch.stack([torch.rot90(x, k, (2, 3)) for k in range(4)], 1).reshape(4 * B, 1, 28, 28)
            yr = torch.arange(4).repeat(B)
            return F.cross_entropy(model(xr), yr)
    elif name == "step-simclr":
        enc = R.ConvNetS(1)
        proj = nn.Sequential(nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 64))
        model = nn.ModuleDict({"encoder": enc, "projector": proj})
        x2 = torch.randn(B, 1, 28, 28, generator=g)
        items, unit = B, "images"
        tau = 0.2

        def loss_fn():
            z = F.normalize(proj(enc(torch.cat([x, x2], 0))), dim=1)
            s = z @ z.t() / tau
            s.fill_diagonal_(float("-inf"))
            tgt = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
            return F.cross_entropy(s, tgt)
    elif name == "step-mae":
        model = MAE(R, nn)
        items, unit = B, "images"

        def loss_fn():
            return model(x)
    elif name == "step-mlm":
        model = MLM(R, nn)
        T, Bt = 128, 64
        ids = torch.randint(5, 8005, (Bt, T), generator=g)
        ids[:, 0] = 2
        chosen = torch.rand(Bt, T, generator=g) < 0.15
        chosen[:, 0] = False
        inp = ids.clone()
        inp[chosen] = 4
        rows = chosen.reshape(-1).nonzero().squeeze(1)
        tg = ids.reshape(-1)[rows]
        items, unit = Bt * T, "tokens"

        def loss_fn():
            return model(inp, rows, tg)
    else:
        raise SystemExit("unknown benchmark " + name)

    model.train()
    opt = adamw(model)
    ts = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if bf16:  # PyTorch's own mixed precision on the CPU (oneDNN bf16 kernels)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn()
        else:
            loss = loss_fn()
        loss.backward()
        opt.step()
        if i >= 3:
            ts.append(time.perf_counter() - t0)
    ms = statistics.median(ts)
    return {"bench": name, "ms": ms * 1e3, "items_per_s": items / ms, "unit": unit,
            "peak_mib": peak_rss_mib(), "loss": float(loss)}


def MAE(R, nn):
    """MAE on vit-t as selfsup's src/ssl/mae.c: per-image random 75% mask, the
    encoder sees [CLS] + visible patches, decoder width 64 depth 2 heads 4
    (MLP 256), loss on per-patch normalised (unbiased var) masked patches."""
    import torch
    import torch.nn.functional as F

    class _MAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = R.ViTT(1, 28, 4, 128, 6, 4, 512)
            self.decoder_embed = nn.Linear(128, 64)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, 64))
            self.decoder_blocks = nn.ModuleList([R.TransformerBlock(64, 4, 256) for _ in range(2)])
            self.decoder_norm = nn.LayerNorm(64, eps=1e-6)
            self.decoder_pred = nn.Linear(64, 16)
            dp = torch.from_numpy(R.sincos_pos_embed_2d(64, 7, False))
            self.register_buffer("dec_pos", dp.unsqueeze(0), persistent=False)

        def forward(self, x):
            e = self.enc
            n, L = x.shape[0], 49
            keep = int(L * 0.25)
            tok = e.patch_embed(x) + e.pos_embed[:, 1:, :]
            noise = torch.rand(n, L)
            shuf = noise.argsort(1)
            restore = shuf.argsort(1)
            ki = shuf[:, :keep]
            vis = torch.gather(tok, 1, ki[:, :, None].expand(-1, -1, 128))
            cls = (e.cls_token + e.pos_embed[:, :1, :]).expand(n, -1, -1)
            h = torch.cat([cls, vis], 1)
            for b in e.blocks:
                h = b(h)
            h = self.decoder_embed(e.norm(h))
            mt = self.mask_token.expand(n, L - keep, -1)
            full = torch.cat([h[:, 1:], mt], 1)
            full = torch.gather(full, 1, restore[:, :, None].expand(-1, -1, 64)) + self.dec_pos
            h = torch.cat([h[:, :1], full], 1)
            for b in self.decoder_blocks:
                h = b(h)
            pred = self.decoder_pred(self.decoder_norm(h))[:, 1:]
            t = x.reshape(n, 1, 7, 4, 7, 4).permute(0, 2, 4, 3, 5, 1).reshape(n, L, 16)
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
            mask = torch.ones(n, L)
            mask[:, :keep] = 0
            mask = torch.gather(mask, 1, restore).bool()
            return F.mse_loss(pred[mask], t[mask])

    return _MAE()


def MLM(R, nn):
    """text-s + BERT head as selfsup's src/ssl/mlm.c: chosen rows only, dense
    128x128 + GELU + LayerNorm, logits with the tied token table + bias."""
    import torch
    import torch.nn.functional as F

    class _MLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = R.TextS(8192, 128, 128, 4, 4, 512, mask_pad=False)
            self.head = R.MLMHead(128, 8192)

        def forward(self, ids, rows, tg):
            h = self.enc.hidden(ids).reshape(-1, 128)[rows]
            return F.cross_entropy(self.head(h, self.enc.tok_embed.weight), tg)

    return _MLM()


# ----------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------
def run_json(cmd, env):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), r.stderr.strip()))
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit("no JSON from: %s\n%s" % (" ".join(cmd), r.stdout))
    return json.loads(lines[-1])


def throughput(d):
    return d["gflops"] if d["bench"] == "gemm" else d["items_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="benchmarks (default: all)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "selfsup"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs of each side; median reported")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--selfsup-args", default="", help="extra arguments passed to selfsup bench")
    ap.add_argument("--torch-default-spin", action="store_true",
                    help="leave PyTorch with libgomp's default spin-wait (by default both sides run with "
                         "GOMP_SPINCOUNT=10000, which the selfsup CLI sets for itself)")
    ap.add_argument("--torch-bf16", action="store_true",
                    help="run PyTorch under torch.autocast('cpu', dtype=torch.bfloat16) (gemm: bf16 tensors): "
                         "mixed precision on both sides when selfsup gets --selfsup-args '--precision bf16'")
    ap.add_argument("--torch-worker", metavar="NAME", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        print(json.dumps(torch_worker(a.torch_worker, a.threads, a.steps, a.torch_bf16)))
        return 0
    names = a.names or ALL
    for n in names:
        if n not in ALL:
            raise SystemExit("unknown benchmark '%s' (expected one of %s)" % (n, ", ".join(ALL)))
    if not os.access(a.bin, os.X_OK):
        raise SystemExit("%s: not an executable (build selfsup first or pass --bin)" % a.bin)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    if "GOMP_SPINCOUNT" not in env and "OMP_WAIT_POLICY" not in env and not a.torch_default_spin:
        # The selfsup CLI sets this for itself (ss_runtime_omp_defaults);
        # PyTorch's libgomp gets the same setting so the comparison is of
        # the code, not of the OpenMP wait policy.
        env["GOMP_SPINCOUNT"] = "10000"
    rows = []
    for n in names:
        ss, pt = [], []
        for r in range(a.repeat):
            # Alternate which side goes first so slow drift in machine load
            # does not favour one of them.
            order = ["ss", "pt"] if r % 2 == 0 else ["pt", "ss"]
            for side in order:
                if side == "ss":
                    ss.append(run_json([a.bin, "bench", "--json", "--threads", str(a.threads), "--steps",
                                        str(a.steps)] + a.selfsup_args.split() + [n], env))
                else:
                    pt.append(run_json([sys.executable, os.path.abspath(__file__), "--torch-worker", n,
                                        "--threads", str(a.threads), "--steps", str(a.steps)]
                                       + (["--torch-bf16"] if a.torch_bf16 else []), env))
        rs = statistics.median(throughput(d) / throughput(e) for d, e in zip(ss, pt))
        rows.append({
            "bench": n,
            "unit": "GFLOP/s" if n == "gemm" else ss[0]["unit"] + "/s",
            "ss": statistics.median(throughput(d) for d in ss),
            "pt": statistics.median(throughput(d) for d in pt),
            "ratio": rs,
            "ss_mib": max(d["peak_mib"] for d in ss),
            "pt_mib": max(d["peak_mib"] for d in pt),
            "share": statistics.median(d.get("share", 0) for d in ss),
        })
        sys.stderr.write("%s done\n" % n)
    hdr = ["benchmark", "unit", "selfsup", "PyTorch", "ratio", "selfsup MiB", "PyTorch MiB", "selfsup % peak"]
    fmt = [lambda r: r["bench"], lambda r: r["unit"], lambda r: "%.1f" % r["ss"], lambda r: "%.1f" % r["pt"],
           lambda r: "%.2fx" % r["ratio"], lambda r: "%d" % r["ss_mib"], lambda r: "%d" % r["pt_mib"],
           lambda r: "%.0f%%" % (100 * r["share"])]
    print("threads %d, %d steps, median of %d alternating repeat(s); ratio = median of per-repeat "
          "selfsup/PyTorch throughput; GOMP_SPINCOUNT=%s" % (a.threads, a.steps, a.repeat,
                                                             env.get("GOMP_SPINCOUNT", "(default)")))
    if a.markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "|".join(" --- " for _ in hdr) + "|")
        for r in rows:
            print("| " + " | ".join(f(r) for f in fmt) + " |")
    else:
        w = [18, 9, 10, 10, 7, 12, 12, 15]
        print(" ".join(h.rjust(x) if i else h.ljust(x) for i, (h, x) in enumerate(zip(hdr, w))))
        for r in rows:
            print(" ".join(f(r).rjust(x) if i else f(r).ljust(x) for i, (f, x) in enumerate(zip(fmt, w))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
