#!/usr/bin/env python3
"""PyTorch anchor for `make bench-service`: the /v1/match pipeline a Python user would otherwise run in-process.

Per pair, timed end to end from the two JPEG files' bytes: Pillow decode → letterbox to R×R (LANCZOS, black
padding, as Sources/Imaging/Preprocess.swift) → ImageNet normalisation → ONE batched DINOv2 forward of both images
(transformers' Dinov2Model, hidden_states[-1][:, 1:] = x_prenorm patch tokens) → sphere mapper of the reference
shape (Linear(D→D/2) → GELU → timm Block(D/2, D/128 heads, qkv without bias) → Linear(D/2→3), normalize) →
blended cosine (1−α)·cos(F) + α·cos(S) of each query point's patch against the target's content patches → argmax.

--weights loads a torch-hub-named .safetensors (what `spherecorr-train bench --write-weights` writes) through the
torch-hub → Hugging Face key mapping; --bundle loads the sphere mapper of a SphereCorr bundle. Without them the
weights are random of the same shapes (timing is the same either way; the JSON says which). Same thread count as
the server when --threads is given. Prints one JSON object (latency and, per query point, the target patch).
Needs torch, transformers, pillow, numpy (and safetensors for --weights/--bundle).
"""
import argparse
import io
import json
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import Dinov2Config, Dinov2Model

VARIANTS = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16), "giant": (1536, 40, 24)}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
PATCH = 14


def hub_to_hf(sd, depth, d, model_keys):
    """torch-hub → transformers Dinov2Model keys (as tools/parity/make_dinov2_fixtures.py); transformers 5 names the
    attention projections q_proj/k_proj/v_proj/o_proj instead of attention.{query,key,value} and output.dense."""
    v5 = "encoder.layer.0.attention.q_proj.weight" in model_keys
    names = (("q_proj", "k_proj", "v_proj", "o_proj") if v5 else
             ("attention.query", "attention.key", "attention.value", "output.dense"))
    hf = {"embeddings.cls_token": sd["cls_token"], "embeddings.mask_token": sd["mask_token"],
          "embeddings.position_embeddings": sd["pos_embed"],
          "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
          "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
          "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    for i in range(depth):
        s, t = f"blocks.{i}.", f"encoder.layer.{i}."
        for n in ("norm1", "norm2"):
            for p in ("weight", "bias"):
                hf[f"{t}{n}.{p}"] = sd[f"{s}{n}.{p}"]
        for p in ("weight", "bias"):
            qkv = sd[f"{s}attn.qkv.{p}"]
            hf[f"{t}attention.{names[0]}.{p}"] = qkv[0:d]
            hf[f"{t}attention.{names[1]}.{p}"] = qkv[d:2 * d]
            hf[f"{t}attention.{names[2]}.{p}"] = qkv[2 * d:3 * d]
            hf[f"{t}attention.{names[3]}.{p}"] = sd[f"{s}attn.proj.{p}"]
            hf[f"{t}mlp.fc1.{p}"] = sd[f"{s}mlp.fc1.{p}"]
            hf[f"{t}mlp.fc2.{p}"] = sd[f"{s}mlp.fc2.{p}"]
        hf[f"{t}layer_scale1.lambda1"] = sd[f"{s}ls1.gamma"]
        hf[f"{t}layer_scale2.lambda1"] = sd[f"{s}ls2.gamma"]
    return hf


class Block(torch.nn.Module):
    """timm Block as the reference mapper uses it: LayerNorm eps 1e-5, qkv without bias, no LayerScale."""

    def __init__(self, h):
        super().__init__()
        self.heads = max(1, h // 64)
        self.norm1 = torch.nn.LayerNorm(h, eps=1e-5)
        self.qkv = torch.nn.Linear(h, 3 * h, bias=False)
        self.proj = torch.nn.Linear(h, h)
        self.norm2 = torch.nn.LayerNorm(h, eps=1e-5)
        self.fc1 = torch.nn.Linear(h, 4 * h)
        self.fc2 = torch.nn.Linear(4 * h, h)

    def forward(self, x):
        b, n, h = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, h))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class SphereMapper(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        h = d // 2
        self.inp = torch.nn.Linear(d, h)
        self.block = Block(h)
        self.out = torch.nn.Linear(h, 3)

    def forward(self, f):
        return F.normalize(self.out(self.block(F.gelu(self.inp(f)))), dim=-1)

    def load_bundle(self, t):
        sm = "sphere_mapper"
        with torch.no_grad():
            for mod, name in ((self.inp, "0"), (self.out, "3"), (self.block.proj, "2.attn.proj"), (self.block.norm1, "2.norm1"),
                              (self.block.norm2, "2.norm2"), (self.block.fc1, "2.mlp.fc1"), (self.block.fc2, "2.mlp.fc2")):
                mod.weight.copy_(t[f"{sm}.{name}.weight"])
                mod.bias.copy_(t[f"{sm}.{name}.bias"])
            self.block.qkv.weight.copy_(t[f"{sm}.2.attn.qkv.weight"])


class Letterbox:
    """Geometry of the square letterbox (Preprocess.swift: letterboxContentSize, KeypointTransform)."""

    def __init__(self, w, h, r):
        self.w, self.h, self.r = w, h, r
        if h <= w:
            self.cw, self.ch = r, int(np.around(r * h / w))
        else:
            self.cw, self.ch = int(np.around(r * w / h)), r
        self.left, self.top = (r - self.cw) // 2, (r - self.ch) // 2
        self.scale = np.float32(r / max(w, h))
        self.g = r // PATCH

    def patch_of(self, x, y):
        f = np.float32(self.g / self.r)
        lx = np.float32(x) * self.scale + np.float32(self.left)
        ly = np.float32(y) * self.scale + np.float32(self.top)
        col, row = int(f * lx), int(f * ly)
        return min(max(self.g * row + col, 0), self.g * self.g - 1)

    def content_patches(self):
        """Patches whose centre (14·c + 6.5, 14·r + 6.5) maps inside the original image (restrict_to_image)."""
        idx = np.arange(self.g * self.g)
        cx = (PATCH * (idx % self.g) + 6.5 - self.left) / float(self.scale)
        cy = (PATCH * (idx // self.g) + 6.5 - self.top) / float(self.scale)
        keep = idx[(cx >= 0) & (cy >= 0) & (cx < self.w) & (cy < self.h)]
        return keep if len(keep) else idx


def preprocess(data, r):
    img = Image.open(io.BytesIO(data)).convert("RGB")
    box = Letterbox(img.width, img.height, r)
    canvas = Image.new("RGB", (r, r))
    canvas.paste(img.resize((box.cw, box.ch), Image.Resampling.LANCZOS), (box.left, box.top))
    x = (np.asarray(canvas, dtype=np.float32) / 255 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy()), box


def match(model, mapper, src_bytes, trg_bytes, points, r, alpha):
    s, sbox = preprocess(src_bytes, r)
    t, tbox = preprocess(trg_bytes, r)
    out = model(pixel_values=torch.stack([s, t]), output_hidden_states=True)
    feats = out.hidden_states[-1][:, 1:]  # [2, G·G, D]: x_prenorm patch tokens
    sph = mapper(feats)                   # [2, G·G, 3]; attention is per image
    rows = torch.from_numpy(tbox.content_patches())
    q = torch.tensor([sbox.patch_of(x, y) for x, y in points])
    f1, f2 = F.normalize(feats[0, q], dim=-1, eps=1e-8), F.normalize(feats[1, rows], dim=-1, eps=1e-8)
    s1, s2 = F.normalize(sph[0, q], dim=-1, eps=1e-8), F.normalize(sph[1, rows], dim=-1, eps=1e-8)
    sim = (1 - alpha) * (f1 @ f2.T) + alpha * (s1 @ s2.T)
    best = sim.argmax(dim=1)
    return rows[best].tolist(), sim.max(dim=1).values.tolist()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", required=True, choices=["small", "base", "large"])
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--points", required=True, help="JSON [[x, y], ...] in source pixels")
    p.add_argument("--weights", help="torch-hub-named .safetensors to load (default: random init)")
    p.add_argument("--bundle", help="SphereCorr bundle .safetensors whose sphere_mapper to load (default: random init)")
    p.add_argument("--resolution", type=int, default=448)
    p.add_argument("--alpha", type=float, default=0.2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, depth, heads = VARIANTS[a.variant]
    model = Dinov2Model(Dinov2Config(hidden_size=d, num_hidden_layers=depth, num_attention_heads=heads, mlp_ratio=4,
                                     image_size=518, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu",
                                     qkv_bias=True, layerscale_value=1.0))
    weights = "random init"
    if a.weights:
        from safetensors.torch import load_file
        model.load_state_dict(hub_to_hf(load_file(a.weights), depth, d, model.state_dict().keys()), strict=True)
        weights = "loaded from " + a.weights
    mapper = SphereMapper(d)
    mapper_weights = "random init"
    if a.bundle:
        from safetensors.torch import load_file
        mapper.load_bundle(load_file(a.bundle))
        mapper_weights = "loaded from " + a.bundle
    model.eval()
    mapper.eval()
    src, trg = open(a.source, "rb").read(), open(a.target, "rb").read()
    points = json.loads(a.points)
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.repeat):
            t0 = time.perf_counter()
            patches, scores = match(model, mapper, src, trg, points, a.resolution, a.alpha)
            dt = time.perf_counter() - t0
            assert all(math.isfinite(x) for x in scores)
            if i >= a.warmup:
                times.append(dt)
    print(json.dumps({
        "variant": a.variant, "resolution": a.resolution, "alpha": a.alpha, "points": len(points),
        "latency_s": {"min": min(times), "median": statistics.median(times), "max": max(times), "n": len(times)},
        "backbone_weights": weights, "mapper_weights": mapper_weights, "target_patches": patches,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
