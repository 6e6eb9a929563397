#!/usr/bin/python3
"""Check that a selfsup checkpoint loads in PyTorch and reproduces its logits.

Usage: /usr/bin/python3 scripts/check_checkpoint.py CKPT.safetensors INPUT.safetensors [TOL]

CKPT.safetensors: the model's tensors under their state_dict names
  (encoder.*, head.*) and a __metadata__ with
    "encoder":     "convnet-s" | "vit-t" | "text-s"
    "in_chans":    image channels (convnet-s, vit-t; default 1)
    "img_size":    image side (vit-t; default 28)
    "num_classes": head outputs; absent or 0 = no head (the output is then
                   the encoder feature)
  optional overrides: vit-t "patch", "dim", "depth", "heads", "mlp";
  text-s "vocab_size", "seq_len", "dim", "depth", "heads", "mlp", "pad_id".
  Metadata values are strings holding integers (JSON numbers also accepted).
INPUT.safetensors: "input" (F32 [B,C,H,W] images, or I32/I64 [B,T] token ids
  for text-s) and "logits" (F32 [B,num_classes]) -- or "features" [B,128]
  when the checkpoint has no head.

The model is built from ref_models.py, the state dict is loaded strictly
(every encoder.*/head.* key must match in name and shape; the only key that
may be missing is BatchNorm's num_batches_tracked, which does not affect the
forward; tensors outside encoder.*/head.*, e.g. optimiser state or a
pretext head, are listed on stderr and ignored), the input is run in eval
mode, and the max abs difference to the expected output is printed.
Exit status: 0 if max abs diff <= TOL (default 1e-4), 1 if larger, 2 on a
load or format error.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_models as rm  # noqa: E402


def _int(meta, key, default):
    v = meta.get(key)
    if v is None or v == "":
        return default
    try:
        return int(json.loads(v)) if isinstance(v, str) else int(v)
    except (ValueError, TypeError):
        raise ValueError("metadata %s=%r is not an integer" % (key, v))


def build(meta):
    enc = meta.get("encoder")
    ncls = _int(meta, "num_classes", 0)
    if enc == "convnet-s":
        e = rm.ConvNetS(_int(meta, "in_chans", 1))
        dim = 128
    elif enc == "vit-t":
        dim = _int(meta, "dim", 128)
        e = rm.ViTT(_int(meta, "in_chans", 1), _int(meta, "img_size", 28), _int(meta, "patch", 4),
                    dim, _int(meta, "depth", 6), _int(meta, "heads", 4), _int(meta, "mlp", 512))
    elif enc == "text-s":
        dim = _int(meta, "dim", 128)
        e = rm.TextS(_int(meta, "vocab_size", 8192), _int(meta, "seq_len", 128), dim,
                     _int(meta, "depth", 4), _int(meta, "heads", 4), _int(meta, "mlp", 512),
                     pad_id=_int(meta, "pad_id", 0))
    else:
        raise ValueError("metadata encoder=%r: expected convnet-s, vit-t or text-s" % enc)
    m = rm.Classifier(e, dim, max(ncls, 1))
    if ncls <= 0:
        m.head = torch.nn.Identity()
    return m, ncls > 0


def load_into(model, tensors):
    sd = model.state_dict()
    unexpected = [k for k in tensors if k not in sd]
    ignored = [k for k in unexpected if not k.startswith(("encoder.", "head."))]
    bad = [k for k in unexpected if k.startswith(("encoder.", "head."))]
    if ignored:
        print("check_checkpoint: ignoring %d tensors outside encoder./head.: %s"
              % (len(ignored), ", ".join(sorted(ignored)[:8])), file=sys.stderr)
    if bad:
        raise ValueError("unexpected tensors (not in the model): %s" % ", ".join(sorted(bad)))
    missing = [k for k in sd if k not in tensors and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError("missing tensors: %s" % ", ".join(missing))
    new = {}
    for k, ref in sd.items():
        if k not in tensors:
            new[k] = ref
            continue
        a = tensors[k]
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError("tensor %s has shape %s, the model expects %s"
                             % (k, list(a.shape), list(ref.shape)))
        new[k] = torch.from_numpy(np.ascontiguousarray(a)).to(ref.dtype)
    model.load_state_dict(new, strict=True)


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    tol = float(argv[3]) if len(argv) == 4 else 1e-4
    try:
        ckpt, meta = rm.load_safetensors(argv[1])
        model, has_head = build(meta)
        load_into(model, ckpt)
        inp, _ = rm.load_safetensors(argv[2])
        want_key = "logits" if has_head else "features"
        if "input" not in inp or want_key not in inp:
            raise ValueError("%s: needs tensors 'input' and '%s'" % (argv[2], want_key))
        x = torch.from_numpy(inp["input"])
        x = x.long() if not x.is_floating_point() else x.float()
        want = torch.from_numpy(inp[want_key]).float()
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print("check_checkpoint: error: %s" % e, file=sys.stderr)
        return 2
    model.eval()
    with torch.no_grad():
        got = model(x)
    if got.shape != want.shape:
        print("check_checkpoint: output shape %s but %s is %s"
              % (list(got.shape), want_key, list(want.shape)), file=sys.stderr)
        return 1
    diff = (got - want).abs().max().item()
    print("max abs diff %.3g (tolerance %.3g) over %s %s" % (diff, tol, want_key, list(want.shape)))
    return 0 if diff <= tol else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
