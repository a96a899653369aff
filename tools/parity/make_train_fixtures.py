#!/usr/bin/env python3
"""Training parity fixtures for the Swift trainer (METHOD §3, §4; Sources/Training).

Runs the REAL reference code, VICO-UoE/SphericalMaps `dino_mapper.py` (imported from a checkout given by
--spherical-maps-src, never copied): its Block, ConditionalPrototypes, DINOMapper.sphere_loss_prototypes_implicit,
relative_viewpoint_loss, triplet_orientation_loss and triplet_distance_loss, combined exactly as
train_sph.py's train_epoch does (same order, same weights, correct_sine=False), then torch.optim.Adam with the two
parameter groups of train_sph.py, for five steps on one fixed batch.

Sizes: D = 128 (f_S: Linear(128→64) → GELU → Block(64, 2 heads of 32) → Linear(64→3); S_Z: 2 heads), 3 categories,
B = 3 images of 8×8 tokens, 32 triplets per image. The mask is non-binary: exact zeros on background, ringing
negatives, values above 1 and edge values below the 0.99 triplet threshold. Every parameter is moved off its
PyTorch-default init so LayerNorm weights are not 1.

The triplet draws are the reference's own `random.choices` calls with a seeded Python RNG, recorded in call order
(per step: the orientation loss for each qualifying image, then the distance loss), so Swift replays them.

Writes --out/step.safetensors (float32; index tensors stored as float):
  features [3,64,128], mask [3,64], categories [3], viewpoints [3], grid [2] = (8, 8), draws [calls, 96]
  losses [5, 5]: per step (total, rec, rd, o, vp)
  sph [3,64,3] (step 1), param0.<name> (initial), grad<k>.<name> (the gradient of step k, at param<k-1>),
  param<k>.<name> after step k = 1…5, f32error<k>.<name> [1] = max|g_f32 − g_f64| / max|g_f64| of PyTorch itself
  (the same step run in float64); linspace.<s> = torch.linspace(0, 1, s) for s = 2…64.
Adam amplifies float noise in near-zero gradients (its first step is ≈ lr·sign(g) once |g| ≫ eps), so a
free-running 5-step comparison is chaotic at the 1e-3 level; recording each step's gradient lets the Swift tests
check each step teacher-forced (gradients at the reference's parameters; Adam fed the reference's gradients).
Names are the reference checkpoint's (shared CABlock once, as `prototypes.blocks.0.*`: named_parameters de-duplicates).

Run:
  mkdir -p /tmp/sm-src && git -C /work/.mirror/VICO-UoE+SphericalMaps/repo archive HEAD | tar -x -C /tmp/sm-src
  python3 tools/parity/make_train_fixtures.py --spherical-maps-src /tmp/sm-src
"""
import argparse
import copy
import os
import random
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
D, N_CATS, B, GH, GW, TRIPLETS, MAPPER_HEADS = 128, 3, 3, 8, 8, 32, 2
sys.path.insert(0, HERE)
from fixture_io import write_safetensors  # noqa: E402  (the one deterministic writer)

CFG = dict(rd_strength=0.3, o_strength=0.3, vp_strength=0.1, rd_margin=0.5, o_thresh=1, vp_bins=8, lr=1e-3)


class Model(nn.Module):
    """DINOMapper without its backbone: the same sphere_mapper and prototypes modules, and its loss method."""

    def __init__(self, ref):
        super().__init__()
        h = D // 2
        self.sphere_mapper = nn.Sequential(nn.Linear(D, h), nn.GELU(), ref.Block(dim=h, num_heads=MAPPER_HEADS), nn.Linear(h, 3))
        self.prototypes = ref.ConditionalPrototypes(bloc_dim=D, cond_dim=N_CATS, atten_dim=D, num_heads=D // 64, depth=2,
                                                    cond_bottleneck=0)

    sphere_loss = None  # bound below to the reference's DINOMapper.sphere_loss_prototypes_implicit


def make_mask(g):
    """[B, N]: a blob of ≈1 values on zero background with bicubic-like edges (ringing < 0, overshoot > 1, < 0.99)."""
    m = torch.zeros(B, GH, GW)
    m[0, 1:7, 2:8] = 1.0
    m[0, 1, 2:8] = 0.97          # edge below the triplet threshold, still foreground
    m[0, 0, 3:6] = -0.03         # ringing: foreground for the reconstruction (‖sph‖ ≠ 0), never valid
    m[0, 6, 4] = 1.04            # overshoot: valid (‖sph‖ > 0.99)
    m[1, 2:8, 0:5] = 1.0
    m[1, 2:8, 5] = 0.5
    m[1, 3, 1] = 1.02
    m[1, 1, 0:4] = -0.02
    m[2, 0:4, 0:3] = 1.0         # small object: few valid tokens
    m[2, 4, 0:3] = 0.3
    m[2, 2, 2] = 0.995
    return m.view(B, GH * GW)


def perturb(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "norm" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spherical-maps-src", required=True, help="checkout of VICO-UoE/SphericalMaps")
    ap.add_argument("--out", default=os.path.join(REPO, "Tests/Fixtures/training"))
    a = ap.parse_args()
    sys.path.insert(0, a.spherical_maps_src)
    import dino_mapper as ref

    torch.manual_seed(0)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(2024)
    model = Model(ref)
    Model.sphere_loss = ref.DINOMapper.sphere_loss_prototypes_implicit
    assert model.prototypes.blocks[0] is model.prototypes.blocks[1]  # shared CABlock (H16)
    perturb(model, g)

    feats = torch.randn(B, GH * GW, D, generator=g) * 1.5
    gt_mask = make_mask(g).unsqueeze(-1)                      # [B, N, 1] as train_sph.py reshapes it
    cats = torch.tensor([2, 0, 2])
    vp = torch.tensor([0, 3, 7])

    # random.choices, recorded: the reference draws with Python's random module.
    draws, rng = [], random.Random(7)
    real_choices = random.choices

    replay = []

    def recording_choices(population, k):
        if replay:  # the float64 twin of a step replays that step's draws
            return replay.pop(0)
        out = rng.choices(population, k=k)
        draws.append(list(out))
        return out

    ref.random.choices = recording_choices

    def train_step_loss(m, dtype):
        """train_sph.py train_epoch, line for line (the backbone's features are given)."""
        x, gm = feats.to(dtype), gt_mask.to(dtype)
        loss = 0
        sph = m.sphere_mapper(x)
        sph = F.normalize(sph, dim=-1) * gm
        vp_loss = ref.relative_viewpoint_loss(sph, vp, n_bins=CFG["vp_bins"])
        cond = F.one_hot(cats, num_classes=N_CATS).to(dtype)
        sph_loss = m.sphere_loss(x, sph, cond)
        o_loss = ref.triplet_orientation_loss(sph, fm_shape=(GH, GW), correct_sine=False, n_triplets=TRIPLETS, thresh=CFG["o_thresh"])
        rd_loss = ref.triplet_distance_loss(sph, fm_shape=(GH, GW), correct_sine=False, n_triplets=TRIPLETS, margin=CFG["rd_margin"])
        loss += CFG["vp_strength"] * vp_loss
        loss += CFG["o_strength"] * o_loss
        loss += CFG["rd_strength"] * rd_loss
        loss += 1e0 * sph_loss
        return loss, sph, [loss.item(), sph_loss.item(), rd_loss.item(), o_loss.item(), vp_loss.item()]

    optim = torch.optim.Adam([{"params": model.sphere_mapper.parameters()}, {"params": model.prototypes.parameters()}], lr=CFG["lr"])
    names = [n for n, _ in model.named_parameters()]
    out = {"features": feats.numpy(), "mask": gt_mask.squeeze(-1).numpy(), "categories": cats.float().numpy(),
           "viewpoints": vp.float().numpy(), "grid": np.array([GH, GW], dtype=np.float32)}
    for n, p in model.named_parameters():
        out["param0." + n] = p.detach().numpy().copy()
    losses = []
    for step in range(1, 6):
        first_draw = len(draws)
        loss, sph, values = train_step_loss(model, torch.float32)
        optim.zero_grad()
        loss.backward()
        if step == 1:
            out["sph"] = sph.detach().numpy()
        # The same step in float64 (same parameters, same draws): PyTorch's own float32 rounding error per gradient,
        # the yardstick of the Swift tolerance (near-coincident sphere points make the triplet terms ill-conditioned).
        twin = copy.deepcopy(model).double()
        replay.extend(draws[first_draw:])
        loss64, _, _ = train_step_loss(twin, torch.float64)
        loss64.backward()
        assert not replay
        for (n, p), (_, p64) in zip(model.named_parameters(), twin.named_parameters()):
            out[f"grad{step}." + n] = p.grad.detach().numpy().copy()
            g64 = p64.grad.detach().numpy()
            scale = max(np.abs(g64).max(), 1e-30)
            out[f"f32error{step}." + n] = np.array([np.abs(p.grad.double().numpy() - g64).max() / scale])
        optim.step()
        loss_val, sph_loss, rd_loss, o_loss, vp_loss = values
        losses.append(values)
        for n, p in model.named_parameters():
            out[f"param{step}." + n] = p.detach().numpy().copy()
        print(f"step {step}: total {loss_val:.6f} rec {sph_loss:.6f} rd {rd_loss:.6f} o {o_loss:.6f} vp {vp_loss:.6f}; "
              f"torch f32 vs f64 gradients ≤ {max(out[f'f32error{step}.' + n][0] for n in names):.1e}")
    ref.random.choices = real_choices
    assert all(len(d) == 3 * TRIPLETS for d in draws)
    out["draws"] = np.array(draws, dtype=np.float32)
    # The image coordinates of both triplet losses come from torch.linspace(0, 1, side); its float rounding decides
    # exact distance ties (H20), so the Swift grid is checked against it bit for bit.
    for s in range(2, 65):
        out[f"linspace.{s}"] = torch.linspace(0, 1, s).numpy()
    out["losses"] = np.array(losses, dtype=np.float32)
    assert not any(np.isnan(v).any() for v in out.values())
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "step.safetensors")
    write_safetensors(path, out)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(names)} trainable tensors, {len(draws)} draw calls")


if __name__ == "__main__":
    main()
