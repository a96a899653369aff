#!/usr/bin/env python3
"""Parity fixtures for the spherical mapper f_S, the prototypes S_Z and sphere bundles (METHOD §3).

Runs the REAL reference code, VICO-UoE/SphericalMaps `dino_mapper.py` (imported from a checkout given by
--spherical-maps-src, never copied), on the tiny DINOv2 backbone of Tests/Fixtures/dinov2/plain.safetensors
(built with the official facebookresearch/dinov2 code from --dinov2-src). The mapper is built exactly as
DINOMapper.__init__ builds it, for embed_dim = 128 (so f_S is Linear(128→64) → GELU → Block(64, 1 head) →
Linear(64→3), and S_Z has 2 heads), with every parameter moved away from its initial value.

The bundle is produced the way a user converts a trained checkpoint: DINOMapper.make_checkpoint() writes a
.pth, and tools/convert_checkpoint.py turns it into the safetensors bundle, key for key.

Writes into --out:
  bundle.safetensors   the bundle (reference tensor names; metadata format/version/backbone_embed_dim/categories)
  case0.safetensors    features [2,12,128] → s_raw, sphere; one-hot categories → recon; non-binary mask → rec_loss
  e2e.safetensors      image [1,3,70,28] → DINOv2 x_prenorm patch tokens → sphere (DINOMapper.forward, mask of ones)
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CATEGORIES = ["car", "chair", "dog"]


def build_backbone(dinov2_src):
    sys.path.insert(0, dinov2_src)
    os.environ["XFORMERS_DISABLED"] = "1"
    from dinov2.models.vision_transformer import DinoVisionTransformer
    from dinov2.layers import MemEffAttention, NestedTensorBlock as Block
    from functools import partial
    model = DinoVisionTransformer(img_size=518, patch_size=14, embed_dim=128, depth=2, num_heads=2, mlp_ratio=4,
                                  block_chunks=0, init_values=1.0, ffn_layer="mlp", num_register_tokens=0,
                                  interpolate_offset=0.1, interpolate_antialias=False,
                                  block_fn=partial(Block, attn_class=MemEffAttention))
    sd = load_file(os.path.join(REPO, "Tests/Fixtures/dinov2/plain.safetensors"))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def build_mapper(sm_src, dino, n_cats):
    """DINOMapper.__init__ without torch.hub: the same modules, with our local backbone."""
    sys.path.insert(0, sm_src)
    import dino_mapper as ref
    m = ref.DINOMapper.__new__(ref.DINOMapper)
    nn.Module.__init__(m)
    m.dino = dino
    m.patch_size = dino.patch_size
    m.embed_dim = dino.embed_dim
    m.sphere_mapper = nn.Sequential(
        nn.Linear(m.embed_dim, m.embed_dim // 2),
        nn.GELU(),
        ref.Block(dim=m.embed_dim // 2, num_heads=m.embed_dim // 2 // 64),
        nn.Linear(m.embed_dim // 2, 3),
    )
    m.sphere = nn.Embedding(2 ** 10, 3)
    with torch.no_grad():
        m.sphere.weight = nn.Parameter(F.normalize(torch.randn(2 ** 10, 3)), requires_grad=False)
    m.n_cats = n_cats
    m.prototypes = ref.ConditionalPrototypes(bloc_dim=m.embed_dim, cond_dim=n_cats, atten_dim=m.embed_dim,
                                             num_heads=m.embed_dim // 64, depth=2, cond_bottleneck=0)
    return m, ref


def perturb(m, g):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("dino.") or name == "sphere.weight":
                continue
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spherical-maps-src", required=True, help="checkout of VICO-UoE/SphericalMaps")
    ap.add_argument("--dinov2-src", required=True, help="directory containing the dinov2 package")
    ap.add_argument("--out", default=os.path.join(REPO, "Tests/Fixtures/sphere"))
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1234)
    os.makedirs(a.out, exist_ok=True)

    dino = build_backbone(a.dinov2_src)
    m, ref = build_mapper(a.spherical_maps_src, dino, len(CATEGORIES))
    perturb(m, g)
    m.eval()
    # The two prototype blocks are one module (METHOD §3.3, H16).
    assert m.prototypes.blocks[0] is m.prototypes.blocks[1]

    # Bundle: the reference checkpoint, converted key for key by our tool.
    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "200.pth")
        m.make_checkpoint(pth)
        bundle = os.path.join(a.out, "bundle.safetensors")
        subprocess.run([sys.executable, os.path.join(REPO, "tools/convert_checkpoint.py"), pth, bundle,
                        "--categories", ",".join(CATEGORIES), "--backbone-variant", "fixture-plain"], check=True)
        # Round trip: load_checkpoint reads the converted names back.
        back = load_file(bundle)
        sd = torch.load(pth)
        assert sorted(back) == sorted(sd), "bundle keys differ from the reference checkpoint"
        for k in sd:
            assert torch.equal(back[k], sd[k]), k

    with torch.no_grad():
        feats = torch.randn(2, 12, 128, generator=g) * 1.5
        s_raw = m.sphere_mapper(feats)
        sph = F.normalize(s_raw, dim=-1)
        cats = torch.tensor([2, 0])
        onehot = F.one_hot(cats, len(CATEGORIES)).float()
        recon = m.prototypes(sph, onehot.unsqueeze(1))
        # A non-binary mask as bicubic resampling produces (METHOD §3.2): zeros, ringing, ≈1.
        mask = torch.tensor([0.0, 1.0, 0.97, 1.04, -0.03, 1.0, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0] * 2).view(2, 12, 1)
        sph_masked = sph * mask
        rec_loss = m.sphere_loss_prototypes_implicit(feats, sph_masked, onehot)
        recon_masked = m.prototypes(sph_masked, onehot.unsqueeze(1))
    save_file({
        "features": feats.numpy(), "s_raw": s_raw.numpy(), "sphere": sph.numpy(),
        "categories": cats.float().numpy(), "recon": recon.numpy(),
        "mask": mask.numpy(), "recon_masked": recon_masked.numpy(), "rec_loss": rec_loss.reshape(1).numpy(),
    }, os.path.join(a.out, "case0.safetensors"))

    ex = load_file(os.path.join(REPO, "Tests/Fixtures/dinov2/plain.case1.safetensors"))
    image = ex["input"][:1].contiguous()  # [1, 3, 70, 28]
    with torch.no_grad():
        x, sph_e2e, _ = m.forward(image, None, torch.ones(1, 1, 1))
    save_file({"input": image.numpy(), "features": x.contiguous().numpy(), "sphere": sph_e2e.contiguous().numpy()},
              os.path.join(a.out, "e2e.safetensors"))
    for f in sorted(os.listdir(a.out)):
        print(f"{f}: {os.path.getsize(os.path.join(a.out, f))} bytes")


if __name__ == "__main__":
    main()
