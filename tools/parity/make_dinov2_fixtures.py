#!/usr/bin/env python3
"""Generate DINOv2 parity fixtures for the Swift engine from the REAL reference code.

The reference model is the official facebookresearch/dinov2 `DinoVisionTransformer`,
imported from a checkout given by --dinov2-src (the directory that contains the
`dinov2` package). No reference code is copied into this repository.

Hugging Face layouts are produced by `transformers` itself (`save_pretrained`), after
loading the torch-hub weights through the torch-hub -> HF key mapping (METHOD §1.4).
The script asserts that the HF model reproduces the reference `x_prenorm` at 518x518
(where neither side interpolates the positional embedding), which proves the mapping.

Output (all float32, little-endian safetensors):
  <name>.safetensors          model weights, torch-hub key names
  <name>.case<k>.safetensors  inputs and intermediate activations for one input
  hf-plain/ hf-registers/ hf-swiglu/   transformers save_pretrained directories
  hf-prefixed/                hf-plain with every key prefixed by "dinov2."

The files written by this script (everything except the hf-* directories written by
transformers) use a small deterministic safetensors writer: keys sorted, metadata
keys sorted. The official `safetensors` writer orders `__metadata__` entries
non-deterministically (hash map), which would make re-runs produce different bytes.
Every file written is read back with the official `safetensors` reader and compared.

Usage:
  python3 tools/parity/make_dinov2_fixtures.py --dinov2-src /tmp/dinov2-src \
      --out Tests/Fixtures/dinov2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from functools import partial

# The reference layers import xformers optionally. Force the pure-PyTorch fallback
# (SDPA attention, plain SwiGLUFFN) even if xformers happens to be installed, so the
# fixtures are computed by the same code path on every machine (CPU, fp32).
os.environ["XFORMERS_DISABLED"] = "1"

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import (  # noqa: E402
    hub_state_dict, make_input, max_abs, perturb_parameters, read_safetensors, report, save_hf_directory, write_prefixed_copy,
    write_safetensors)

PATCH = 14
IMG_SIZE = 518  # -> 37x37 grid, pos_embed has 1 + 1369 = 1370 tokens
EMBED_DIM = 128
DEPTH = 2
NUM_HEADS = 2  # head dim 64, as in every released variant
MLP_RATIO = 4
LN_EPS = 1e-6

# name -> reference constructor settings. Order matters only for seeding.
CONFIGS = {
    "plain": dict(ffn_layer="mlp", num_register_tokens=0, interpolate_offset=0.1, interpolate_antialias=False),
    "registers": dict(ffn_layer="mlp", num_register_tokens=4, interpolate_offset=0.0, interpolate_antialias=True),
    "swiglu": dict(ffn_layer="swiglufused", num_register_tokens=0, interpolate_offset=0.1, interpolate_antialias=False),
}

# (batch, height, width, full) per case; full=False keeps only input/features/cls.
CASES = {
    "plain": [(2, 42, 56, True), (1, 70, 28, True), (1, 518, 518, False), (1, 224, 168, True)],
    "registers": [(2, 42, 56, True), (1, 70, 28, True)],
    "swiglu": [(2, 42, 56, True), (1, 70, 28, True)],
}

HF_DIRS = {"plain": "hf-plain", "registers": "hf-registers", "swiglu": "hf-swiglu"}
HF_PREFIXED_DIR = "hf-prefixed"
HF_PREFIX = "dinov2."

BASE_SEED = 20240601


# --------------------------------------------------------------------------------------
# reference model
# --------------------------------------------------------------------------------------

def import_reference(src: str):
    src = os.path.abspath(src)
    if not os.path.isfile(os.path.join(src, "dinov2", "models", "vision_transformer.py")):
        sys.exit(f"--dinov2-src {src}: no dinov2/models/vision_transformer.py below it")
    sys.path.insert(0, src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "xFormers is disabled" notices
        from dinov2.models import vision_transformer as vits
        from dinov2.layers import MemEffAttention, NestedTensorBlock
        from dinov2.layers import attention as attn_mod
    assert not attn_mod.XFORMERS_AVAILABLE, "xformers path must be disabled"
    assert os.path.abspath(vits.__file__).startswith(src), vits.__file__
    return vits, MemEffAttention, NestedTensorBlock


def build_reference(vits, MemEffAttention, Block, name: str):
    cfg = CONFIGS[name]
    # Exactly how dinov2/hub/backbones.py + vits.vit_* build the released models,
    # only with a tiny width/depth.
    model = vits.DinoVisionTransformer(
        img_size=IMG_SIZE,
        patch_size=PATCH,
        embed_dim=EMBED_DIM,
        depth=DEPTH,
        num_heads=NUM_HEADS,
        mlp_ratio=MLP_RATIO,
        qkv_bias=True,
        proj_bias=True,
        ffn_bias=True,
        drop_path_rate=0.0,
        init_values=1.0,
        block_fn=partial(Block, attn_class=MemEffAttention),
        block_chunks=0,
        **cfg,
    )
    model.eval()
    return model


def model_metadata(model, name: str) -> dict[str, str]:
    cfg = CONFIGS[name]
    mlp = model.blocks[0].mlp
    ffn_hidden = mlp.fc1.out_features if cfg["ffn_layer"] == "mlp" else mlp.w3.in_features
    return {
        # contract keys
        "embed_dim": str(EMBED_DIM),
        "depth": str(DEPTH),
        "num_heads": str(NUM_HEADS),
        "ffn": "mlp" if cfg["ffn_layer"] == "mlp" else "swiglu",
        "num_registers": str(cfg["num_register_tokens"]),
        "patch_size": str(PATCH),
        # extra, informational
        "ffn_hidden": str(ffn_hidden),
        "img_size": str(IMG_SIZE),
        "interpolate_offset": repr(float(cfg["interpolate_offset"])),
        "interpolate_antialias": "true" if cfg["interpolate_antialias"] else "false",
        "layer_norm_eps": "1e-06",
        "layerscale": "true",
    }


@torch.no_grad()
def run_reference(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    B, _, H, W = x.shape
    R = model.num_register_tokens
    N = (H // PATCH) * (W // PATCH)

    patch = model.patch_embed(x)
    with_cls = torch.cat((model.cls_token.expand(B, -1, -1), patch), dim=1)
    # prepare_tokens_with_masks calls interpolate_pos_encoding(x, w, h) with
    # (w, h) = x.shape[2:], i.e. (H, W).
    pos = model.interpolate_pos_encoding(with_cls, H, W)
    tokens = model.prepare_tokens_with_masks(x)

    # cross-check the decomposition against the reference's own composition
    manual = with_cls + pos
    if R:
        manual = torch.cat((manual[:, :1], model.register_tokens.expand(B, -1, -1), manual[:, 1:]), dim=1)
    assert torch.equal(manual, tokens)

    captured: dict[int, torch.Tensor] = {}
    hooks = [
        blk.register_forward_hook(lambda _m, _i, out, i=i: captured.__setitem__(i, out.detach().clone()))
        for i, blk in enumerate(model.blocks)
    ]
    try:
        ff = model.forward_features(x)
    finally:
        for hk in hooks:
            hk.remove()
    assert sorted(captured) == list(range(len(model.blocks)))

    x_prenorm = ff["x_prenorm"]
    x_norm = model.norm(x_prenorm)
    assert torch.equal(captured[len(model.blocks) - 1], x_prenorm)
    assert torch.equal(x_norm[:, 0], ff["x_norm_clstoken"])
    assert torch.equal(x_norm[:, 1 + R:], ff["x_norm_patchtokens"])

    out = {
        "input": x,
        "patch_embed": patch,
        "pos_embed": pos,
        "tokens": tokens,
        "x_prenorm": x_prenorm,
        "x_norm": x_norm,
        "features": x_prenorm[:, 1 + R:],
        "cls": ff["x_norm_clstoken"],
    }
    for i, t in captured.items():
        out[f"block.{i}"] = t

    D = EMBED_DIM
    T = 1 + R + N
    shapes = {
        "input": (B, 3, H, W), "patch_embed": (B, N, D), "pos_embed": (1, 1 + N, D), "tokens": (B, T, D),
        "x_prenorm": (B, T, D), "x_norm": (B, T, D), "features": (B, N, D), "cls": (B, D),
    }
    for i in range(len(model.blocks)):
        shapes[f"block.{i}"] = (B, T, D)
    for k, s in shapes.items():
        assert tuple(out[k].shape) == s, (k, tuple(out[k].shape), s)
    return {k: v.detach().float().contiguous() for k, v in out.items()}


# --------------------------------------------------------------------------------------
# Hugging Face layout
# --------------------------------------------------------------------------------------

def hub_to_hf(sd: dict[str, torch.Tensor], depth: int, swiglu: bool, registers: bool) -> dict[str, torch.Tensor]:
    """torch-hub -> HF checkpoint keys (METHOD §1.4; transformers' convert_dinov2_to_hf.py)."""
    D = sd["cls_token"].shape[-1]
    used = set()

    def take(k):
        used.add(k)
        return sd[k]

    hf = {
        "embeddings.cls_token": take("cls_token"),
        "embeddings.mask_token": take("mask_token"),
        "embeddings.position_embeddings": take("pos_embed"),
        "embeddings.patch_embeddings.projection.weight": take("patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": take("patch_embed.proj.bias"),
        "layernorm.weight": take("norm.weight"),
        "layernorm.bias": take("norm.bias"),
    }
    if registers:
        hf["embeddings.register_tokens"] = take("register_tokens")
    for i in range(depth):
        s, d = f"blocks.{i}.", f"encoder.layer.{i}."
        for n in ("norm1", "norm2"):
            for p in ("weight", "bias"):
                hf[f"{d}{n}.{p}"] = take(f"{s}{n}.{p}")
        for p in ("weight", "bias"):
            qkv = take(f"{s}attn.qkv.{p}")
            hf[f"{d}attention.attention.query.{p}"] = qkv[0:D]
            hf[f"{d}attention.attention.key.{p}"] = qkv[D:2 * D]
            hf[f"{d}attention.attention.value.{p}"] = qkv[2 * D:3 * D]
            hf[f"{d}attention.output.dense.{p}"] = take(f"{s}attn.proj.{p}")
            if swiglu:
                hf[f"{d}mlp.weights_in.{p}"] = take(f"{s}mlp.w12.{p}")
                hf[f"{d}mlp.weights_out.{p}"] = take(f"{s}mlp.w3.{p}")
            else:
                hf[f"{d}mlp.fc1.{p}"] = take(f"{s}mlp.fc1.{p}")
                hf[f"{d}mlp.fc2.{p}"] = take(f"{s}mlp.fc2.{p}")
        hf[f"{d}layer_scale1.lambda1"] = take(f"{s}ls1.gamma")
        hf[f"{d}layer_scale2.lambda1"] = take(f"{s}ls2.gamma")
    missing = set(sd) - used
    assert not missing, f"hub keys not mapped: {sorted(missing)}"
    return {k: v.contiguous().clone() for k, v in hf.items()}


def hf_classes(name: str):
    import transformers

    if name == "registers":
        return transformers.Dinov2WithRegistersConfig, transformers.Dinov2WithRegistersModel
    return transformers.Dinov2Config, transformers.Dinov2Model


def hf_config(name: str):
    cfg_cls, _ = hf_classes(name)
    kw = dict(
        hidden_size=EMBED_DIM,
        num_hidden_layers=DEPTH,
        num_attention_heads=NUM_HEADS,
        mlp_ratio=MLP_RATIO,
        hidden_act="gelu",  # exact erf GELU
        layer_norm_eps=LN_EPS,
        image_size=IMG_SIZE,
        patch_size=PATCH,
        num_channels=3,
        qkv_bias=True,
        layerscale_value=1.0,
        drop_path_rate=0.0,
        use_swiglu_ffn=(name == "swiglu"),
    )
    if name == "registers":
        kw["num_register_tokens"] = CONFIGS[name]["num_register_tokens"]
    return cfg_cls(**kw)


def hf_load(model_cls, path: str):
    model, info = model_cls.from_pretrained(path, output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        v = info.get(k)
        assert not v, f"{path}: {k} = {v}"
    model.eval()
    return model


@torch.no_grad()
def hf_forward(model, x: torch.Tensor):
    out = model(pixel_values=x, output_hidden_states=True)
    return out.hidden_states[-1], out.last_hidden_state, out.hidden_states


def write_hf(name: str, sd: dict[str, torch.Tensor], ref_model, out_dir: str, seed: int, notes: list[str]) -> str:
    _, model_cls = hf_classes(name)
    legacy = hub_to_hf(sd, DEPTH, swiglu=(name == "swiglu"), registers=(name == "registers"))

    with tempfile.TemporaryDirectory() as tmp:
        # A checkpoint laid out exactly like the hub's model.safetensors, loaded through
        # transformers' own loading path (including its key conversions).
        hf_config(name).save_pretrained(tmp)
        write_safetensors(os.path.join(tmp, "model.safetensors"), legacy, {"format": "pt"})
        model = hf_load(model_cls, tmp)

    # Parity at 518x518 (no interpolation on either side): proves the mapping.
    x = make_input(seed, 1, IMG_SIZE, IMG_SIZE)
    ref = run_reference(ref_model, x)
    hs_last, last, hs = hf_forward(model, x)
    assert len(hs) == DEPTH + 1, len(hs)
    d_pre = max_abs(hs_last, ref["x_prenorm"])
    d_norm = max_abs(last, ref["x_norm"])
    assert d_pre <= 1e-5, f"{name}: HF hidden_states[-1] vs x_prenorm max|d| = {d_pre}"
    assert d_norm <= 1e-5, f"{name}: HF last_hidden_state vs x_norm max|d| = {d_norm}"
    notes.append(f"{name}: HF vs reference at 518x518: hidden_states[-1]~x_prenorm {d_pre:.2e}, "
                 f"last_hidden_state~x_norm {d_norm:.2e}")

    dest = os.path.join(out_dir, HF_DIRS[name])
    cfg_json = save_hf_directory(model, dest, legacy)
    if name == "registers":
        saved, _ = read_safetensors(os.path.join(dest, "model.safetensors"))
        assert "embeddings.register_tokens" in saved
    assert cfg_json.get("model_type") == ("dinov2_with_registers" if name == "registers" else "dinov2"), cfg_json

    # Reload the written directory and re-check.
    model2 = hf_load(model_cls, dest)
    hs2, _, _ = hf_forward(model2, x)
    assert max_abs(hs2, ref["x_prenorm"]) <= 1e-5
    return dest


def write_hf_prefixed(out_dir: str, ref_model, seed: int, notes: list[str]) -> str:
    import transformers

    dest = os.path.join(out_dir, HF_PREFIXED_DIR)
    write_prefixed_copy(os.path.join(out_dir, HF_DIRS["plain"]), dest, HF_PREFIX)

    # The prefix is what transformers' task-head models use for the backbone.
    prefix = transformers.Dinov2PreTrainedModel.base_model_prefix
    assert HF_PREFIX == prefix + ".", prefix
    head = transformers.Dinov2ForImageClassification(hf_config("plain"))
    assert all(k.startswith(HF_PREFIX) for k in head.state_dict() if not k.startswith("classifier.")), \
        "Dinov2ForImageClassification backbone keys are not 'dinov2.'-prefixed"
    notes.append("registers task heads use prefix '"
                 + transformers.Dinov2WithRegistersPreTrainedModel.base_model_prefix + ".' (not 'dinov2.')")

    # transformers itself must accept the prefixed file as a Dinov2Model checkpoint.
    model = hf_load(transformers.Dinov2Model, dest)
    x = make_input(seed, 1, IMG_SIZE, IMG_SIZE)
    ref = run_reference(ref_model, x)
    hs_last, _, _ = hf_forward(model, x)
    assert max_abs(hs_last, ref["x_prenorm"]) <= 1e-5
    return dest


@torch.no_grad()
def hf_interp_report(name: str, out_dir: str, ref_model, case_inputs: list[torch.Tensor], notes: list[str]):
    """Informational: HF vs reference where the pos-embed IS interpolated (METHOD §1.3, H9)."""
    _, model_cls = hf_classes(name)
    model = hf_load(model_cls, os.path.join(out_dir, HF_DIRS[name]))
    for x in case_inputs:
        H, W = x.shape[2:]
        if H == W == IMG_SIZE:
            continue
        ref = run_reference(ref_model, x)
        hs_last, _, _ = hf_forward(model, x)
        notes.append(f"{name}: HF vs reference at {H}x{W}: hidden_states[-1]~x_prenorm "
                     f"max|d| = {max_abs(hs_last, ref['x_prenorm']):.2e}")


# --------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dinov2-src", required=True, help="directory containing the `dinov2` package")
    ap.add_argument("--out", required=True, help="output directory, e.g. Tests/Fixtures/dinov2")
    ap.add_argument("--skip-hf", action="store_true", help="do not write/verify the HF directories")
    args = ap.parse_args()

    torch.set_num_threads(1)  # reproducible reductions
    torch.use_deterministic_algorithms(True)

    vits, MemEffAttention, Block = import_reference(args.dinov2_src)
    os.makedirs(args.out, exist_ok=True)

    written: list[str] = []
    notes: list[str] = []
    for ci, name in enumerate(CONFIGS):
        torch.manual_seed(BASE_SEED + ci)  # the reference init (overwritten below) draws from the global RNG
        model = build_reference(vits, MemEffAttention, Block, name)
        perturb_parameters(model, BASE_SEED + 100 + ci)

        sd = hub_state_dict(model)
        path = os.path.join(args.out, f"{name}.safetensors")
        write_safetensors(path, sd, model_metadata(model, name))
        written.append(path)

        inputs = []
        for k, (b, h, w, full) in enumerate(CASES[name]):
            x = make_input(BASE_SEED + 1000 + 10 * ci + k, b, h, w)
            inputs.append(x)
            res = run_reference(model, x)
            if not full:
                res = {key: res[key] for key in ("input", "features", "cls")}
            path = os.path.join(args.out, f"{name}.case{k}.safetensors")
            write_safetensors(path, res, {"height": str(h), "width": str(w), "batch": str(b)})
            written.append(path)

        if not args.skip_hf:
            dest = write_hf(name, sd, model, args.out, BASE_SEED + 2000 + ci, notes)
            written += [os.path.join(dest, f) for f in sorted(os.listdir(dest))]
            hf_interp_report(name, args.out, model, inputs, notes)
            if name == "plain":
                dest = write_hf_prefixed(args.out, model, BASE_SEED + 3000, notes)
                written += [os.path.join(dest, f) for f in sorted(os.listdir(dest))]

    report(written, args.out, notes)


if __name__ == "__main__":
    main()
