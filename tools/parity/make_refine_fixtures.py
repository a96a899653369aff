#!/usr/bin/env python3
"""Parity fixtures for the Swift window soft-argmax (`Sources/Correspondence/Refinement.swift`, issue #14).

    git -C /work/.mirror/Junyi42+GeoAware-SC/repo archive HEAD utils/utils_correspondence.py | tar -x -C /tmp/geoaware
    #   (or: git clone https://github.com/Junyi42/GeoAware-SC /tmp/geoaware)
    python3 tools/parity/make_refine_fixtures.py --geoaware /tmp/geoaware [--out Tests/Fixtures/refine]

Writes into --out:
  maps.safetensors   one float32 tensor `case<i>` of shape [rows, G*G] per case: fixed similarity maps
  expected.json      per case: grid side G, window, temperature, and the refined (column, row) of every row

The refined coordinates come from GeoAware-SC's own `get_flow` (utils/utils_correspondence.py, imported from
the checkout at run time, never copied), which windows the map around each row's argmax, applies
`soft_argmax` (softmax with temperature over the target cells, expected normalised coordinates) and
`unnormalise_and_convert_mapping_to_flow` (back to patch units). One deliberate change on both sides: the
reference multiplies the map by a 0/1 window mask, so cells outside the window take part in the softmax
with the score 0; SphereCorr gives them -inf (no weight). Here the window of `get_flow(flow_window > 0)` is
rebuilt exactly as it builds it (first argmax, offsets -w..w on both axes, positions clamped into the grid),
the cells outside it are set to -inf, and the masked map goes through `get_flow(..., flow_window=0)`, which
is the reference's soft-argmax without its own masking. The maps are float32 values handed to torch as
float64, so the reference's softmax runs in float64 (its last step rounds the coordinates to float32).

`get_flow` works on a square [G*G source, G*G target] map and refines every source row; a case's map has
only `rows` source rows, so they are padded with copies of the last row to G*G rows and the first `rows`
results kept. Output is deterministic (fixed seed, sorted keys).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch


def load_reference(root):
    sys.path.insert(0, root)
    from utils import utils_correspondence  # GeoAware-SC's module, from the checkout
    return utils_correspondence


def window_mask_inf(corr, window, g):
    """get_flow's window (flow_window > 0) with -inf instead of 0 outside it. corr: [S, G*G]."""
    idx = torch.argmax(corr, dim=-1)
    mx, my = idx % g, idx // g
    off = torch.arange(-window, window + 1)
    ox, oy = torch.meshgrid(off, off, indexing="ij")
    ox, oy = ox.flatten(), oy.flatten()
    px = (mx[:, None] + ox[None, :]).clamp(0, g - 1)
    py = (my[:, None] + oy[None, :]).clamp(0, g - 1)
    keep = torch.zeros(corr.shape[0], g, g, dtype=torch.bool)
    keep[torch.arange(corr.shape[0])[:, None], py, px] = True
    return corr.view(-1, g, g).masked_fill(~keep, float("-inf")).view(corr.shape)


def reference_refine(uc, maps, g, window, temperature):
    rows = maps.shape[0]
    full = np.concatenate([maps, np.repeat(maps[-1:], g * g - rows, axis=0)], axis=0)
    corr = torch.from_numpy(full.astype(np.float64))
    masked = window_mask_inf(corr, window, g)
    # soft_argmax's temperature is a keyword of soft_argmax; get_flow calls it with the default 0.02.
    if temperature != 0.02:
        original = uc.soft_argmax
        uc.soft_argmax = lambda c, beta=temperature: original(c, beta=temperature)
        try:
            flow = uc.get_flow(masked, flow_window=0, num_patches=g)
        finally:
            uc.soft_argmax = original
    else:
        flow = uc.get_flow(masked, flow_window=0, num_patches=g)
    flow = flow.reshape(-1, 2)[:rows]  # (x = column, y = row) in patch units
    assert torch.isfinite(flow).all()
    return [[float(c), float(r)] for c, r in flow.tolist()]


def make_maps(rng, g, rows, kind):
    """float32 maps [rows, G*G]: smooth blobs (realistic cosines), noise, and argmaxes at the borders."""
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float64)
    out = np.zeros((rows, g * g), dtype=np.float32)
    for k in range(rows):
        if kind == "noise":
            m = rng.uniform(-1, 1, (g, g))
        else:
            if k % 3 == 0:  # a peak on an edge or in a corner: the window is clamped
                cy, cx = rng.choice([0, g - 1]), rng.uniform(0, g - 1)
                if k % 2:
                    cx = rng.choice([0, g - 1])
            else:
                cy, cx = rng.uniform(0, g - 1, 2)
            sigma = rng.uniform(0.6, 2.5)
            m = 0.55 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)) + 0.05 * rng.standard_normal((g, g)) - 0.1
            m = np.clip(m, -1, 1)
        out[k] = m.astype(np.float32).reshape(-1)
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--geoaware", required=True, help="a GeoAware-SC checkout (the directory holding utils/)")
    ap.add_argument("--out", default="Tests/Fixtures/refine")
    args = ap.parse_args()
    uc = load_reference(args.geoaware)
    torch.set_num_threads(1)
    rng = np.random.default_rng(14)
    cases = [  # (G, rows, kind, window, temperature)
        (6, 8, "blob", 1, 0.02),
        (6, 8, "blob", 5, 0.02),
        (12, 12, "blob", 2, 0.05),
        (12, 6, "noise", 3, 0.1),
        (16, 12, "blob", 5, 0.02),
        (16, 6, "blob", 5, 0.005),
        (32, 9, "blob", 5, 0.02),
        (60, 6, "blob", 5, 0.02),
        (60, 6, "blob", 7, 0.2),
    ]
    tensors, expected = {}, []
    for i, (g, rows, kind, window, temperature) in enumerate(cases):
        maps = make_maps(rng, g, rows, kind)
        name = f"case{i}"
        tensors[name] = maps
        expected.append({"name": name, "grid": g, "rows": rows, "window": window, "temperature": temperature,
                         "refined": reference_refine(uc, maps, g, window, temperature)})
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "maps.safetensors"), tensors)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"generator": "tools/parity/make_refine_fixtures.py", "reference": "GeoAware-SC utils/utils_correspondence.py get_flow",
                   "cases": expected}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
