#!/usr/bin/env python3
"""Generate DINOv1 parity fixtures for the Swift engine from the REAL reference code.

The reference model is the official facebookresearch/dino `VisionTransformer`
(vision_transformer.py, imported from a checkout given by --dino-src), built exactly as
its hubconf.py builds `dino_vits8` & co. (qkv_bias, LayerNorm eps 1e-6, mlp_ratio 4),
only tiny. Features are taken with the paper code's own `ViTExtractor`
(VICO-UoE/SphericalMaps extractor_dino.py, imported from --extractor-src): its
`patch_vit_resolution` sets a patch-embedding stride below the patch size and swaps in
its position-embedding rule, and `extract_descriptors(layer, facet='key')` gives the
descriptors the reference evaluates DINOv1 with (METHOD §1.5). No reference code is
copied into this repository. extractor_dino.py imports `timm` at the top for the timm
model types only; it is not needed for `dino_*` models, so a stub module stands in.

Hugging Face layouts (ViTModel) are produced by `transformers` itself (`save_pretrained`),
after loading the torch-hub weights through the torch-hub -> HF key mapping. The script
asserts that the HF model reproduces the reference block outputs at 224x224 (where
neither side interpolates the position embedding), which proves the mapping.

Output (all float32, little-endian safetensors):
  <name>.safetensors          model weights, torch-hub key names
  <name>.case<k>.safetensors  inputs and intermediate activations for one input
  hf-p8/ hf-p16/              transformers save_pretrained directories (hf-p16 with the pooler)
  hf-prefixed/                hf-p8 with every key prefixed by "vit." (task-head models)

Usage:
  python3 tools/parity/make_dino_v1_fixtures.py --dino-src /tmp/dino-src \
      --extractor-src /tmp/sphericalmaps-src --out Tests/Fixtures/dino_v1
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import types
import warnings
from functools import partial

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import (  # noqa: E402
    hub_state_dict, make_input, max_abs, perturb_parameters, read_safetensors, report, save_hf_directory, write_prefixed_copy,
    write_safetensors)

IMG_SIZE = 224  # the released models: pos_embed holds (224/p)^2 + 1 tokens
EMBED_DIM = 128
DEPTH = 2
NUM_HEADS = 2  # head dim 64 as in every released variant (the hub layout infers heads = D/64); two heads exercise the (head_dim, head) key order
MLP_RATIO = 4
LN_EPS = 1e-6

CONFIGS = {"p8": dict(patch_size=8), "p16": dict(patch_size=16)}

# (batch, height, width, stride, full) per case; full=False keeps only input, pos_embed, the last
# block and its keys, cls. Heights/widths tile the strided grid exactly (H = p + s·(G-1)).
# Stride 4 at 116x116 gives a 28x28 grid on a square input: the extractor's rule returns
# pos_embed unchanged there, as the official one does at 224x224 (the p16 case).
CASES = {
    "p8": [(2, 48, 64, 8, True), (1, 40, 72, 8, True), (1, 48, 64, 4, True),
           (2, 36, 28, 4, True), (1, 116, 116, 4, False)],
    "p16": [(2, 64, 48, 16, True), (1, 224, 224, 16, False), (1, 64, 80, 8, True)],
}

HF_DIRS = {"p8": "hf-p8", "p16": "hf-p16"}
HF_POOLER = {"p8": False, "p16": True}  # ViTModel's default adds the pooler; both occur on the hub
HF_PREFIXED_DIR = "hf-prefixed"

BASE_SEED = 20240815


# --------------------------------------------------------------------------------------
# reference model
# --------------------------------------------------------------------------------------

def import_reference(dino_src: str, extractor_src: str):
    dino_src, extractor_src = os.path.abspath(dino_src), os.path.abspath(extractor_src)
    if not os.path.isfile(os.path.join(dino_src, "vision_transformer.py")):
        sys.exit(f"--dino-src {dino_src}: no vision_transformer.py in it")
    if not os.path.isfile(os.path.join(extractor_src, "extractor_dino.py")):
        sys.exit(f"--extractor-src {extractor_src}: no extractor_dino.py in it")
    sys.path.insert(0, dino_src)
    sys.path.insert(0, extractor_src)
    # Only ViTExtractor.create_model's timm branch uses timm: a stub while importing, then gone again
    # (transformers probes for a real timm).
    stub = "timm" not in sys.modules and not __import__("importlib").util.find_spec("timm")
    if stub:
        sys.modules["timm"] = types.ModuleType("timm")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import vision_transformer as vits
            import extractor_dino
    finally:
        if stub:
            del sys.modules["timm"]
    assert os.path.abspath(vits.__file__).startswith(dino_src), vits.__file__
    assert os.path.abspath(extractor_dino.__file__).startswith(extractor_src), extractor_dino.__file__
    return vits, extractor_dino.ViTExtractor


def build_reference(vits, name: str):
    # hubconf.py: vits.vit_small(patch_size=8, num_classes=0); vit_small/vit_base fix qkv_bias=True,
    # mlp_ratio=4, LayerNorm eps 1e-6. Same class, tiny width/depth.
    model = vits.VisionTransformer(
        img_size=[IMG_SIZE], patch_size=CONFIGS[name]["patch_size"], num_classes=0, embed_dim=EMBED_DIM,
        depth=DEPTH, num_heads=NUM_HEADS, mlp_ratio=MLP_RATIO, qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=LN_EPS),
    )
    model.eval()
    return model


def model_metadata(name: str) -> dict[str, str]:
    return {
        "family": "dinov1",
        "embed_dim": str(EMBED_DIM),
        "depth": str(DEPTH),
        "num_heads": str(NUM_HEADS),
        "patch_size": str(CONFIGS[name]["patch_size"]),
        "img_size": str(IMG_SIZE),
        "layer_norm_eps": "1e-06",
        "layerscale": "false",
    }


@torch.no_grad()
def run_reference(model, ViTExtractor, x: torch.Tensor, stride: int) -> dict[str, torch.Tensor]:
    """Everything the Swift engine computes, from the reference (with the extractor's stride patch)."""
    B, _, H, W = x.shape
    p = model.patch_embed.patch_size
    # The paper code's extractor, on this very model (it patches stride and pos rule in place).
    ext = ViTExtractor(model_type="dino_vits8", stride=stride, model=model, device="cpu")
    assert model.patch_embed.proj.stride == (stride, stride)
    gh, gw = 1 + (H - p) // stride, 1 + (W - p) // stride
    N, D = gh * gw, EMBED_DIM

    patch = model.patch_embed(x)
    with_cls = torch.cat((model.cls_token.expand(B, -1, -1), patch), dim=1)
    pos = model.interpolate_pos_encoding(with_cls, H, W)  # prepare_tokens: `B, nc, w, h = x.shape`
    tokens = model.prepare_tokens(x)
    assert torch.equal(with_cls + pos, tokens)

    captured: dict[int, torch.Tensor] = {}
    hooks = [blk.register_forward_hook(lambda _m, _i, out, i=i: captured.__setitem__(i, out.detach().clone()))
             for i, blk in enumerate(model.blocks)]
    try:
        cls = model(x)  # forward: norm(x)[:, 0]
    finally:
        for hk in hooks:
            hk.remove()
    last = captured[DEPTH - 1]
    x_norm = model.norm(last)
    assert torch.equal(x_norm[:, 0], cls)

    out = {"input": x, "patch_embed": patch, "pos_embed": pos, "tokens": tokens, "x_norm": x_norm, "cls": cls}
    for i, t in captured.items():
        out[f"block.{i}"] = t
        # The reference's DINOv1 descriptor: facet 'key' of block i, CLS removed, B x 1 x N x D
        # with channels in (head_dim, head) order (x.permute(0, 2, 3, 1).flatten(-2)).
        desc = ext.extract_descriptors(x, layer=i, facet="key", bin=False)
        assert tuple(desc.shape) == (B, 1, N, D), desc.shape
        assert ext.num_patches == (gh, gw), ext.num_patches
        out[f"keys.{i}"] = desc[:, 0]

    shapes = {"input": (B, 3, H, W), "patch_embed": (B, N, D), "pos_embed": (1, 1 + N, D), "tokens": (B, 1 + N, D),
              "x_norm": (B, 1 + N, D), "cls": (B, D)}
    for i in range(DEPTH):
        shapes[f"block.{i}"] = (B, 1 + N, D)
        shapes[f"keys.{i}"] = (B, N, D)
    for k, s in shapes.items():
        assert tuple(out[k].shape) == s, (k, tuple(out[k].shape), s)
    return {k: v.detach().float().contiguous() for k, v in out.items()}


# --------------------------------------------------------------------------------------
# Hugging Face layout (ViTModel)
# --------------------------------------------------------------------------------------

def hub_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torch-hub -> HF ViTModel checkpoint keys (METHOD §1.5; transformers' convert_dino_to_pytorch.py)."""
    D = sd["cls_token"].shape[-1]
    used = set()

    def take(k):
        used.add(k)
        return sd[k]

    hf = {
        "embeddings.cls_token": take("cls_token"),
        "embeddings.position_embeddings": take("pos_embed"),
        "embeddings.patch_embeddings.projection.weight": take("patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": take("patch_embed.proj.bias"),
        "layernorm.weight": take("norm.weight"),
        "layernorm.bias": take("norm.bias"),
    }
    for i in range(DEPTH):
        s, d = f"blocks.{i}.", f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            hf[f"{d}layernorm_before.{p}"] = take(f"{s}norm1.{p}")
            hf[f"{d}layernorm_after.{p}"] = take(f"{s}norm2.{p}")
            qkv = take(f"{s}attn.qkv.{p}")
            hf[f"{d}attention.attention.query.{p}"] = qkv[0:D]
            hf[f"{d}attention.attention.key.{p}"] = qkv[D:2 * D]
            hf[f"{d}attention.attention.value.{p}"] = qkv[2 * D:3 * D]
            hf[f"{d}attention.output.dense.{p}"] = take(f"{s}attn.proj.{p}")
            hf[f"{d}intermediate.dense.{p}"] = take(f"{s}mlp.fc1.{p}")
            hf[f"{d}output.dense.{p}"] = take(f"{s}mlp.fc2.{p}")
    missing = set(sd) - used
    assert not missing, f"hub keys not mapped: {sorted(missing)}"
    return {k: v.contiguous().clone() for k, v in hf.items()}


def hf_config(name: str):
    import transformers

    return transformers.ViTConfig(
        hidden_size=EMBED_DIM, num_hidden_layers=DEPTH, num_attention_heads=NUM_HEADS,
        intermediate_size=MLP_RATIO * EMBED_DIM, hidden_act="gelu", layer_norm_eps=LN_EPS,
        image_size=IMG_SIZE, patch_size=CONFIGS[name]["patch_size"], num_channels=3, qkv_bias=True,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )


def hf_load(path: str, pooler: bool):
    import transformers

    model, info = transformers.ViTModel.from_pretrained(path, add_pooling_layer=pooler, output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        v = info.get(k)
        assert not v, f"{path}: {k} = {v}"
    model.eval()
    return model


@torch.no_grad()
def check_hf(model, ref_model, ViTExtractor, x, label: str, notes: list[str]) -> None:
    ref = run_reference(ref_model, ViTExtractor, x, ref_model.patch_embed.patch_size)
    out = model(pixel_values=x, output_hidden_states=True)
    assert len(out.hidden_states) == DEPTH + 1
    worst = max(max_abs(out.hidden_states[i + 1], ref[f"block.{i}"]) for i in range(DEPTH))
    d_norm = max_abs(out.last_hidden_state, ref["x_norm"])
    assert worst <= 1e-5 and d_norm <= 1e-5, f"{label}: HF vs reference blocks {worst}, x_norm {d_norm}"
    notes.append(f"{label}: HF vs reference at {IMG_SIZE}x{IMG_SIZE}: blocks {worst:.2e}, x_norm {d_norm:.2e}")


def write_hf(name: str, sd, ref_model, ViTExtractor, out_dir: str, seed: int, notes: list[str]) -> str:
    import transformers

    legacy = hub_to_hf(sd)
    pooler = HF_POOLER[name]
    if pooler:  # the pooler (dense + tanh on CLS) is a head, not backbone: random values, never read
        g = torch.Generator().manual_seed(seed + 7)
        legacy["pooler.dense.weight"] = torch.randn((EMBED_DIM, EMBED_DIM), generator=g) / math.sqrt(EMBED_DIM)
        legacy["pooler.dense.bias"] = 0.1 * torch.randn((EMBED_DIM,), generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        hf_config(name).save_pretrained(tmp)
        write_safetensors(os.path.join(tmp, "model.safetensors"), legacy, {"format": "pt"})
        model = hf_load(tmp, pooler)
    x = make_input(seed, 1, IMG_SIZE, IMG_SIZE)
    check_hf(model, ref_model, ViTExtractor, x, name, notes)

    dest = os.path.join(out_dir, HF_DIRS[name])
    cfg = save_hf_directory(model, dest, legacy)
    assert cfg.get("model_type") == "vit" and cfg.get("patch_size") == CONFIGS[name]["patch_size"], cfg
    check_hf(hf_load(dest, pooler), ref_model, ViTExtractor, x, name + " (reloaded)", notes)
    return dest


def write_hf_prefixed(out_dir: str, ref_model, ViTExtractor, seed: int, notes: list[str]) -> str:
    import transformers

    prefix = transformers.ViTPreTrainedModel.base_model_prefix + "."
    assert prefix == "vit.", prefix
    dest = os.path.join(out_dir, HF_PREFIXED_DIR)
    write_prefixed_copy(os.path.join(out_dir, HF_DIRS["p8"]), dest, prefix)
    head = transformers.ViTForImageClassification(hf_config("p8"))
    assert all(k.startswith(prefix) for k in head.state_dict() if not k.startswith("classifier.")), \
        "ViTForImageClassification backbone keys are not 'vit.'-prefixed"
    # transformers itself must accept the prefixed file as a ViTModel checkpoint.
    check_hf(hf_load(dest, False), ref_model, ViTExtractor, make_input(seed, 1, IMG_SIZE, IMG_SIZE), "hf-prefixed", notes)
    return dest


# --------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dino-src", required=True, help="directory holding facebookresearch/dino's vision_transformer.py")
    ap.add_argument("--extractor-src", required=True, help="directory holding VICO-UoE/SphericalMaps' extractor_dino.py")
    ap.add_argument("--out", required=True, help="output directory, e.g. Tests/Fixtures/dino_v1")
    ap.add_argument("--skip-hf", action="store_true", help="do not write/verify the HF directories")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vits, ViTExtractor = import_reference(args.dino_src, args.extractor_src)
    os.makedirs(args.out, exist_ok=True)

    written: list[str] = []
    notes: list[str] = []
    for ci, name in enumerate(CONFIGS):
        torch.manual_seed(BASE_SEED + ci)
        model = build_reference(vits, name)
        perturb_parameters(model, BASE_SEED + 100 + ci)
        sd = hub_state_dict(model)
        path = os.path.join(args.out, f"{name}.safetensors")
        write_safetensors(path, sd, model_metadata(name))
        written.append(path)

        for k, (b, h, w, stride, full) in enumerate(CASES[name]):
            # A fresh reference per case: the extractor patches stride and pos rule into the model.
            ref = build_reference(vits, name)
            ref.load_state_dict(sd)
            x = make_input(BASE_SEED + 1000 + 10 * ci + k, b, h, w)
            res = run_reference(ref, ViTExtractor, x, stride)
            if not full:
                res = {key: res[key] for key in ("input", "pos_embed", f"block.{DEPTH - 1}", f"keys.{DEPTH - 1}", "cls")}
            path = os.path.join(args.out, f"{name}.case{k}.safetensors")
            write_safetensors(path, res, {"height": str(h), "width": str(w), "batch": str(b), "stride": str(stride)})
            written.append(path)

        if not args.skip_hf:
            dest = write_hf(name, sd, model, ViTExtractor, args.out, BASE_SEED + 2000 + ci, notes)
            written += [os.path.join(dest, f) for f in sorted(os.listdir(dest))]
            if name == "p8":
                dest = write_hf_prefixed(args.out, model, ViTExtractor, BASE_SEED + 3000, notes)
                written += [os.path.join(dest, f) for f in sorted(os.listdir(dest))]

    report(written, args.out, notes)


if __name__ == "__main__":
    main()
