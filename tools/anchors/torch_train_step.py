#!/usr/bin/env python3
"""PyTorch eager fp32 anchor for `make bench-train`: one training step of the paper's own code on this CPU.

Imports the reference modules and losses from a checkout of VICO-UoE/SphericalMaps (--spherical-maps-src; never
copied): sphere_mapper (Linear → GELU → Block → Linear as DINOMapper builds it), ConditionalPrototypes, the
reconstruction loss of DINOMapper and the three triplet/viewpoint losses; the step is train_sph.py's train_epoch
body line for line (features given instead of the frozen backbone), then Adam as train_sph.py configures it.
Same shapes, batch, foreground fraction, thread count and timing rules as `spherecorr-train bench-train`
(one warm-up step, then --repeat timed steps). Prints one JSON object; peak_rss_bytes is the process's VmHWM.
"""
import argparse
import json
import random
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spherical-maps-src", required=True, help="checkout of VICO-UoE/SphericalMaps")
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--tokens", type=int, default=1024)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--foreground", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    sys.path.insert(0, a.spherical_maps_src)
    import dino_mapper as ref

    torch.manual_seed(0)
    random.seed(0)
    d, n_cats, side = a.width, 18, int(round(a.tokens ** 0.5))
    mapper = ref.DINOMapper.__new__(ref.DINOMapper)
    nn.Module.__init__(mapper)
    mapper.sphere_mapper = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), ref.Block(dim=d // 2, num_heads=d // 2 // 64),
                                         nn.Linear(d // 2, 3))
    mapper.prototypes = ref.ConditionalPrototypes(bloc_dim=d, cond_dim=n_cats, atten_dim=d, num_heads=d // 64, depth=2,
                                                  cond_bottleneck=0)
    optim = torch.optim.Adam([{"params": mapper.sphere_mapper.parameters()}, {"params": mapper.prototypes.parameters()}], lr=1e-3)

    feats = torch.randn(a.batch, a.tokens, d)
    gt_mask = torch.zeros(a.batch, a.tokens, 1)
    gt_mask[:, : int(a.foreground * a.tokens)] = 1
    cats = torch.arange(a.batch) % n_cats
    vp = torch.arange(a.batch) % 8

    def step():
        loss = 0
        sph = mapper.sphere_mapper(feats)
        sph = F.normalize(sph, dim=-1) * gt_mask
        vp_loss = ref.relative_viewpoint_loss(sph, vp, n_bins=8)
        cond = F.one_hot(cats, num_classes=n_cats).float()
        sph_loss = mapper.sphere_loss_prototypes_implicit(feats, sph, cond)
        o_loss = ref.triplet_orientation_loss(sph, fm_shape=(side, side), correct_sine=False, n_triplets=32, thresh=1)
        rd_loss = ref.triplet_distance_loss(sph, fm_shape=(side, side), correct_sine=False, n_triplets=32, margin=0.5)
        loss += 0.1 * vp_loss
        loss += 0.3 * o_loss
        loss += 0.3 * rd_loss
        loss += 1e0 * sph_loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        return loss.item()

    times = []
    for i in range(a.repeat + 1):
        t = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t
        if i > 0:
            times.append(dt)
    times.sort()
    med = statistics.median(times)
    print(json.dumps({"engine": f"pytorch {torch.__version__} eager fp32", "width": d, "tokens": a.tokens, "batch": a.batch,
                      "foreground": a.foreground, "repeat": a.repeat, "threads": torch.get_num_threads(),
                      "step_s": {"min": times[0], "median": med, "max": times[-1]}, "images_per_s": a.batch / med,
                      "peak_rss_bytes": peak_rss_bytes(), "loss": loss}, sort_keys=True))


if __name__ == "__main__":
    main()
