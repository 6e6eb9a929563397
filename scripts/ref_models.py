#!/usr/bin/python3
"""PyTorch reference modules for selfsup parity tests.

Run with Debian's torch (`/usr/bin/python3`, torch 1.13, numpy 1.24); no other
packages.  The state_dict names of these modules are the names the C library
uses, so a selfsup checkpoint loads here with `load_state_dict(strict=True)`
(see check_checkpoint.py) and the reference vectors written by
gen_reference.py name gradients by these names.

Contents
  * ConvBNReLU, ConvNetS         -- `convnet-s` (shared/REFERENCE_MODELS.md)
  * TransformerBlock, ViTT       -- `vit-t`
  * TextS                        -- `text-s`
  * Classifier                   -- encoder + linear head (`encoder.*`, `head.*`)
  * hash_u, hash_init            -- deterministic parameter initialisation that
                                    the C side computes bit-identically
  * fingerprint                  -- 6-number summary of a large tensor
  * save_safetensors, load_safetensors -- tiny safetensors reader/writer
  * sincos_pos_embed_2d          -- fixed ViT position embedding
Self-test: `/usr/bin/python3 scripts/ref_models.py` (exit status 0 = pass).
docs/REFERENCE_VECTORS.md restates every definition here for the C side.
"""
import json
import math
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------
# Deterministic hash initialisation
# --------------------------------------------------------------------------
HASH_INIT_VERSION = "hash_init_v1"
_M64 = (1 << 64) - 1


def splitmix64_int(x):
    """Pure-Python reference splitmix64 finaliser (all arithmetic mod 2^64)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def hash_u_int(name, i):
    """Pure-Python u(name, i) (slow reference for the vectorised hash_u)."""
    key = (i + (zlib.crc32(name.encode("utf-8")) << 32)) & _M64
    return ((splitmix64_int(key) >> 40) / 2.0**24) * 2.0 - 1.0


def splitmix64_np(x):
    """Vectorised splitmix64 on a numpy uint64 array (wrap-around arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def hash_u(name, n):
    """u(name, i) for i = 0..n-1 as float64, each exactly k/2^23 - 1 in [-1, 1).

    u(i) = ((splitmix64(i + (crc32(name) << 32)) >> 40) / 2^24) * 2 - 1
    with crc32 = zlib.crc32 of the UTF-8 bytes of `name` (the standard CRC-32,
    polynomial 0xEDB88320, init/xorout 0xFFFFFFFF; crc32("test") = 0xD87F7E0C)
    and all integer arithmetic mod 2^64.  Every u is a multiple of 2^-23 in
    [-1, 1), so it is exact in float32 as well as float64.
    """
    base = np.uint64(zlib.crc32(name.encode("utf-8"))) << np.uint64(32)
    with np.errstate(over="ignore"):
        keys = np.arange(n, dtype=np.uint64) + base
    h = splitmix64_np(keys) >> np.uint64(40)
    return (h.astype(np.float64) / 2.0**24) * 2.0 - 1.0


def hash_init_value(name, shape):
    """The hash_init value (float32 numpy array of `shape`) of one parameter.

    With u = hash_u(name, numel) (flat, row-major index i), computed in float64
    and rounded to float32 once at the end, the first matching rule wins:
      1. name ends with "cls_token", "mask_token" or "embed.weight"
         (token / position Embedding tables; NOT patch_embed.proj.weight):
             0.02 * u
      2. ndim >= 2 (conv and linear weights):
             u * sqrt(3.0 / fan_in),  fan_in = numel / shape[0]
             (sqrt(3.0/fan_in) evaluated in double first, then multiplied)
      3. ndim == 1 and name ends with ".weight" (LayerNorm / BatchNorm scale):
             1.0 + 0.1 * u            (0.1*u rounded to double, then + 1.0)
      4. anything else (biases):
             0.1 * u
    Buffers are not hash-initialised: BatchNorm running_mean = 0,
    running_var = 1, num_batches_tracked = 0.
    """
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape)) if len(shape) else 1
    u = hash_u(name, n)
    if name.endswith("cls_token") or name.endswith("mask_token") or name.endswith("embed.weight"):
        v = 0.02 * u
    elif len(shape) >= 2:
        fan_in = n // shape[0]
        v = u * math.sqrt(3.0 / fan_in)
    elif len(shape) == 1 and name.endswith(".weight"):
        v = 1.0 + 0.1 * u
    else:
        v = 0.1 * u
    return v.astype(np.float32).reshape(shape)


@torch.no_grad()
def hash_init(module):
    """Apply hash_init_value to every parameter of `module` (by state_dict
    name) and reset BatchNorm buffers (running_mean 0, running_var 1,
    num_batches_tracked 0).  Returns the module."""
    for name, p in module.named_parameters():
        p.copy_(torch.from_numpy(hash_init_value(name, p.shape)).to(p.dtype))
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.num_batches_tracked.zero_()
    return module


def fingerprint(name, t):
    """float64 [6] fingerprint of tensor `t` belonging to parameter `name`:
    [sum x, sum |x|, sum x^2, sum x*P0, sum x*P1, sum x*P2] where
    Pk[i] = hash_u(name + "#" + str(k), numel)[i] (flat row-major index i)
    and all sums are evaluated in float64 from the float32 values."""
    x = t.detach().reshape(-1).to(torch.float64).cpu().numpy()
    n = x.size
    out = [x.sum(), np.abs(x).sum(), (x * x).sum()]
    for k in range(3):
        out.append(float(np.dot(x, hash_u("%s#%d" % (name, k), n))))
    return np.array(out, dtype=np.float64)


# --------------------------------------------------------------------------
# Fixed 2-D sin-cos position embedding (MAE get_2d_sincos_pos_embed)
# --------------------------------------------------------------------------
def sincos_pos_embed_2d(dim, grid, cls_token=True):
    """float32 [(cls_token + grid*grid), dim] fixed position embedding.

    Identical to MAE's get_2d_sincos_pos_embed(dim, grid, cls_token).  All in
    float64, rounded to float32 at the end.  With Q = dim/4 (dim % 4 == 0),
    omega_k = 1 / 10000^(k / Q) for k = 0..Q-1 (evaluated as
    1.0 / 10000.0 ** (k / Q) in double), and a patch p = r*grid + c
    (row r, column c of the patch grid, row-major like the flattened
    patch_embed output):
        E[p, k]       = sin(c * omega_k)
        E[p, Q + k]   = cos(c * omega_k)
        E[p, 2Q + k]  = sin(r * omega_k)
        E[p, 3Q + k]  = cos(r * omega_k)
    (MAE's meshgrid puts the column coordinate in the first half -- kept.)
    With cls_token, row 0 is all zeros and patch p is row p+1.
    """
    assert dim % 4 == 0
    q = dim // 4
    omega = np.arange(q, dtype=np.float64) / q
    omega = 1.0 / 10000.0**omega
    rr, cc = np.meshgrid(np.arange(grid, dtype=np.float64),
                         np.arange(grid, dtype=np.float64), indexing="ij")
    r = rr.reshape(-1)
    c = cc.reshape(-1)
    oc = np.outer(c, omega)
    orow = np.outer(r, omega)
    e = np.concatenate([np.sin(oc), np.cos(oc), np.sin(orow), np.cos(orow)], axis=1)
    if cls_token:
        e = np.concatenate([np.zeros((1, dim)), e], axis=0)
    return e.astype(np.float32)


# --------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------
class ConvBNReLU(nn.Module):
    """conv3x3 (pad 1, no bias) -> BatchNorm2d (eps 1e-5, momentum 0.1) -> ReLU.
    State: conv.weight [cout,cin,3,3]; bn.weight, bn.bias, bn.running_mean,
    bn.running_var, bn.num_batches_tracked."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ConvNetS(nn.Module):
    """convnet-s: blocks.0 cin->32, blocks.1 32->32, maxpool 2,
    blocks.2 32->64, blocks.3 64->64, maxpool 2, blocks.4 64->128,
    global average pool -> [B, 128]."""

    feat_dim = 128

    def __init__(self, cin=1):
        super().__init__()
        chans = [(cin, 32), (32, 32), (32, 64), (64, 64), (64, 128)]
        self.blocks = nn.ModuleList([ConvBNReLU(a, b) for a, b in chans])

    def forward(self, x):
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in (1, 3):
                x = F.max_pool2d(x, 2)
        return x.mean(dim=(2, 3))


def attention(q, k, v, key_mask=None):
    """Scaled dot-product attention on [B,H,T,Dh] tensors.
    scores = (q @ k^T) * Dh^-0.5; keys with key_mask[b, j] == 0 get score
    -inf (attention weight exactly 0); softmax over keys; out = weights @ v.
    key_mask: [B,T] (bool or 0/1 float, 1 = keep) or None."""
    scale = q.shape[-1] ** -0.5
    s = (q @ k.transpose(-2, -1)) * scale
    if key_mask is not None:
        keep = key_mask.bool()[:, None, None, :]
        s = s.masked_fill(~keep, float("-inf"))
    return s.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Multi-head self-attention (timm layout): qkv = Linear(dim, 3*dim) whose
    output is [q | k | v], reshaped (B,T,3,H,Dh) -> q,k,v [B,H,T,Dh]; heads are
    concatenated back to [B,T,dim] (head-major) and projected by proj."""

    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, key_mask=None):
        b, t, d = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        o = attention(qkv[0], qkv[1], qkv[2], key_mask)
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class TransformerBlock(nn.Module):
    """Pre-LN block: x = x + attn.proj(MHSA(norm1(x)));
    x = x + mlp.fc2(gelu(mlp.fc1(norm2(x)))).  LayerNorm eps 1e-6.
    State: norm1.{weight,bias}, attn.qkv.{weight,bias}, attn.proj.{weight,bias},
    norm2.{weight,bias}, mlp.fc1.{weight,bias}, mlp.fc2.{weight,bias}."""

    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp)

    def forward(self, x, key_mask=None):
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cin, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, stride=patch)

    def forward(self, x):  # [B,C,H,W] -> [B, (H/p)*(W/p), dim], row-major patches
        return self.proj(x).flatten(2).transpose(1, 2)


class ViTT(nn.Module):
    """vit-t: patch_embed.proj Conv2d(cin, dim, patch, stride patch) with bias;
    tokens = [cls_token + pos[0], patch_p + pos[p+1]] where pos is the fixed
    sincos_pos_embed_2d(dim, img/patch, cls_token=True) (row 0 zero) held as a
    NON-persistent buffer `pos_embed` [1, 1+N, dim] (not in state_dict);
    blocks.0..depth-1 TransformerBlock; final norm LayerNorm eps 1e-6;
    feature = norm(x)[:, 0]."""

    def __init__(self, cin=1, img=28, patch=4, dim=128, depth=6, heads=4, mlp=512):
        super().__init__()
        assert img % patch == 0
        self.feat_dim = dim
        self.patch_embed = PatchEmbed(cin, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        pe = torch.from_numpy(sincos_pos_embed_2d(dim, img // patch, True))
        self.register_buffer("pos_embed", pe.unsqueeze(0), persistent=False)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed[:, 1:, :].to(x.dtype)
        cls = self.cls_token + self.pos_embed[:, :1, :].to(x.dtype)
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]


class TextS(nn.Module):
    """text-s: x = tok_embed(ids) + pos_embed(arange(T)) (both nn.Embedding,
    T <= seq); blocks.i TransformerBlock with key mask (ids != pad_id) when
    mask_pad; final norm LayerNorm eps 1e-6; feature = norm(x)[:, 0] (position
    0 holds the [CLS] token id supplied by the tokenizer)."""

    def __init__(self, vocab=8192, seq=128, dim=128, depth=4, heads=4, mlp=512,
                 pad_id=0, mask_pad=True):
        super().__init__()
        self.feat_dim = dim
        self.pad_id = pad_id
        self.mask_pad = mask_pad
        self.tok_embed = nn.Embedding(vocab, dim)
        self.pos_embed = nn.Embedding(seq, dim)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def hidden(self, ids):
        """All final hidden states norm(x): [B, T, dim]."""
        ids = ids.long()
        t = ids.shape[1]
        x = self.tok_embed(ids) + self.pos_embed(torch.arange(t, device=ids.device))[None]
        mask = (ids != self.pad_id) if self.mask_pad else None
        for b in self.blocks:
            x = b(x, mask)
        return self.norm(x)

    def forward(self, ids):
        return self.hidden(ids)[:, 0]


class MLMHead(nn.Module):
    """BERT's MLM head as selfsup's src/ssl/mlm.c: logits = LayerNorm(GELU(
    dense(h))) @ table^T + bias, with the token table tied (passed in).
    State: dense.{weight,bias}, norm.{weight,bias}, bias."""

    def __init__(self, dim, vocab):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, h, table):
        return F.linear(self.norm(F.gelu(self.dense(h))), table, self.bias)


class Classifier(nn.Module):
    """encoder.* + head = Linear(feat_dim, nclasses) on the encoder feature."""

    def __init__(self, encoder, feat_dim, nclasses):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feat_dim, nclasses)

    def forward(self, x):
        return self.head(self.encoder(x))


def adamw_param_groups(model, weight_decay=0.05):
    """Decay only params with ndim >= 2 whose name does not end in
    cls_token / pos_embed / mask_token (TextS' pos_embed.weight IS decayed:
    it ends in '.weight')."""
    dec, nodec = [], []
    for n, p in model.named_parameters():
        if p.ndim >= 2 and not n.endswith(("cls_token", "pos_embed", "mask_token")):
            dec.append(p)
        else:
            nodec.append(p)
    return [{"params": dec, "weight_decay": weight_decay},
            {"params": nodec, "weight_decay": 0.0}]


# --------------------------------------------------------------------------
# Minimal safetensors reader / writer
# --------------------------------------------------------------------------
_DT_TO_NP = {"F32": np.float32, "F64": np.float64, "F16": np.float16,
             "I32": np.int32, "I64": np.int64, "I16": np.int16, "I8": np.int8,
             "U8": np.uint8, "BOOL": np.bool_}
_NP_TO_DT = {np.dtype(v).str: k for k, v in _DT_TO_NP.items()}


def save_safetensors(path, tensors, metadata=None):
    """Write {name: numpy array or torch tensor} to `path` in safetensors
    format: u64 LE header length, JSON header (sorted keys, compact, padded
    with spaces to a multiple of 8), then the raw little-endian data of the
    tensors in sorted-name order.  Deterministic byte output."""
    arrs = {}
    for k, v in tensors.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        a = np.array(v, order="C", copy=True)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        arrs[k] = a
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    for k in sorted(arrs):
        a = arrs[k]
        dt = _NP_TO_DT[a.dtype.newbyteorder("<").str if a.dtype.str[0] == "=" else a.dtype.str]
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for k in sorted(arrs):
            f.write(arrs[k].tobytes())


def load_safetensors(path):
    """Read a safetensors file -> (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header length %d exceeds file size %d" % (path, n, len(data)))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for k, d in header.items():
        dt = np.dtype(_DT_TO_NP[d["dtype"]]).newbyteorder("<")
        b, e = d["data_offsets"]
        cnt = int(np.prod(d["shape"])) if d["shape"] else 1
        if e - b != cnt * dt.itemsize or base + e > len(data):
            raise ValueError("%s: tensor %s has bad data_offsets" % (path, k))
        out[k] = np.frombuffer(data, dtype=dt, count=cnt, offset=base + b).reshape(d["shape"]).copy()
    return out, meta


# --------------------------------------------------------------------------
# Self-test
# --------------------------------------------------------------------------
def _selftest():
    import os
    import tempfile
    ok = True
    for name in ("test", "encoder.blocks.0.conv.weight", "head.bias#2", ""):
        vec = hash_u(name, 200000)
        base = np.uint64(zlib.crc32(name.encode("utf-8"))) << np.uint64(32)
        for i in (0, 1, 2, 7, 1000, 123457, 2**31 + 5, 2**32 - 1):
            ref = hash_u_int(name, i)
            if i < vec.size:
                got = vec[i]
            else:
                with np.errstate(over="ignore"):
                    key = np.array([i], dtype=np.uint64) + base
                got = ((splitmix64_np(key) >> np.uint64(40)).astype(np.float64) / 2.0**24 * 2.0 - 1.0)[0]
            if got != ref:
                print("selftest: hash mismatch", repr(name), i, got, ref)
                ok = False
    # float32 exactness of u
    u = hash_u("test", 4096)
    ok &= bool(np.all(u.astype(np.float32).astype(np.float64) == u))
    # sin-cos embedding matches the literal MAE recipe
    g, d = 7, 128
    gh = np.arange(g, dtype=np.float32)
    gw = np.arange(g, dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, g, g)

    def one(dd, pos):
        om = np.arange(dd // 2, dtype=np.float64) / (dd / 2.0)
        om = 1.0 / 10000**om
        o = np.einsum("m,d->md", pos.reshape(-1), om)
        return np.concatenate([np.sin(o), np.cos(o)], axis=1)

    mae = np.concatenate([one(d // 2, grid[0]), one(d // 2, grid[1])], axis=1)
    mae = np.concatenate([np.zeros([1, d]), mae], axis=0).astype(np.float32)
    if not np.array_equal(mae, sincos_pos_embed_2d(d, g, True)):
        print("selftest: sincos mismatch", np.abs(mae - sincos_pos_embed_2d(d, g, True)).max())
        ok = False
    # safetensors round trip
    t = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], dtype=np.int32),
         "s": np.array(3.5, dtype=np.float32)}
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "x.safetensors")
        save_safetensors(p, t, {"k": "v"})
        r, m = load_safetensors(p)
        ok &= m == {"k": "v"} and all(np.array_equal(r[k], t[k]) and r[k].dtype == t[k].dtype for k in t)
    # state-dict names and sizes
    m = Classifier(ConvNetS(1), 128, 10)
    names = list(m.state_dict().keys())
    ok &= names[0] == "encoder.blocks.0.conv.weight" and names[-1] == "head.bias"
    v = Classifier(ViTT(1), 128, 10)
    ok &= "encoder.pos_embed" not in v.state_dict()
    print("selftest", "ok" if ok else "FAILED",
          "convnet-s params", sum(p.numel() for p in m.parameters()),
          "vit-t params", sum(p.numel() for p in v.parameters()))
    return ok


if __name__ == "__main__":
    sys.exit(0 if _selftest() else 1)
