#!/usr/bin/env python3
"""Parity fixtures for the training augmentation (METHOD §2.1, hazards H6-H8) → Tests/Fixtures/augment.

The expected values come from the REAL torchvision, never re-implemented here:
  * boxes:  `torchvision.transforms.RandomResizedCrop.get_params(img, scale=(0.5, 1.5), ratio=(3/4, 4/3))`
            with torch's random draws replaced by recorded ones (see `Replay`);
  * tensor: `torchvision.transforms.functional.resized_crop(x, i, j, h, w, [S, S], BICUBIC, antialias=True)`
            on the 4-channel float tensor `cat(to_tensor(rgb), mask)` of a real image of the synthetic
            SPair-format dev set and its Segmentation PNG (object = raw value > 0);
  * normalisation: `torchvision.transforms.Normalize(mean, std)`; the mask to the 32×32 grid:
            `F.interpolate(mask, (S/14, S/14), mode='nearest')`.

Replaying the draws. get_params calls `torch.empty(1).uniform_(lo, hi)` twice per attempt and
`torch.randint(lo, hi, (1,))` twice when it accepts. We feed both from one list of uniforms
u ∈ [0, 1) (multiples of 2^-24, as our SplitMix64 draws them) with the mapping the Swift side uses:
    uniform_(lo, hi) = float32(lo) + (float32(hi) − float32(lo)) · float32(u)   (float32 arithmetic)
    randint(lo, hi)  = lo + floor(u · (hi − lo))                                 (float64)
so the boxes test everything torchvision does after the draw: the float32 log/exp of the ratio, the
float64 area arithmetic, Python's round-half-even, the inclusive ranges, the retries and the
centre-crop fallback, and how many draws each call consumes.

Run from the repository root (torch 2.x + torchvision, Pillow, numpy, safetensors):
    python3 tools/parity/make_augment_fixtures.py --data ../shared/data/spair-synth-dev
Deterministic (fixed numpy seed).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.numpy import save_file
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as TF

SCALE = (0.5, 1.5)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Replay:
    """Replaces torch's uniform_ and randint with draws from a list, counting what is consumed."""

    def __init__(self, draws: list[float]):
        self.draws = draws
        self.used = 0

    def next(self) -> float:
        u = self.draws[self.used]
        self.used += 1
        return u

    def __enter__(self):
        self.saved = (torch.Tensor.uniform_, torch.randint)
        replay = self

        def uniform_(t, lo=0.0, hi=1.0):
            lo32, hi32 = np.float32(float(lo)), np.float32(float(hi))
            v = lo32 + (hi32 - lo32) * np.float32(replay.next())
            return t.fill_(float(v))

        def randint(lo, hi, size, **kw):
            return torch.tensor([lo + math.floor(replay.next() * (hi - lo))])

        torch.Tensor.uniform_ = uniform_
        torch.randint = randint
        return self

    def __exit__(self, *exc):
        torch.Tensor.uniform_, torch.randint = self.saved


def get_params(height: int, width: int, draws: list[float]):
    img = torch.empty(4, height, width)
    with Replay(draws) as r:
        box = RandomResizedCrop.get_params(img, list(SCALE), list(RATIO))
    return [int(v) for v in box], r.used


def draw_list(rng: np.random.Generator, n: int, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """n uniforms in [lo, hi), multiples of 2^-24."""
    k = rng.integers(int(lo * 2**24), int(hi * 2**24), size=n)
    return [float(v) / 2**24 for v in k]


def box_cases(rng: np.random.Generator) -> list[dict]:
    sizes = [(267, 400), (400, 267), (333, 500), (500, 500), (37, 23), (23, 37), (448, 448), (60, 600), (600, 60),
             (17, 21), (1, 1), (2, 9), (375, 500), (281, 500), (500, 334)]
    cases = []
    for h, w in sizes:
        for t in range(40):
            draws = draw_list(rng, 24)
            box, used = get_params(h, w, draws)
            cases.append({"height": h, "width": w, "draws": draws, "box": box, "consumed": used})
        # Areas near 1.5×: every attempt is rejected (a side too long) → centre-crop fallback, except on tiny images.
        draws = []
        for _ in range(10):
            draws += draw_list(rng, 1, 0.97, 1.0) + draw_list(rng, 1)
        box, used = get_params(h, w, draws)
        assert used == 20 or h * w < 100, (h, w, used)
        cases.append({"height": h, "width": w, "draws": draws, "box": box, "consumed": used})
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/spair-synth-dev")
    ap.add_argument("--out", default="Tests/Fixtures/augment")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(20240601)

    # Boxes.
    cases = box_cases(rng)
    log_ratio = torch.log(torch.tensor(RATIO))
    (out / "boxes.json").write_text(json.dumps({
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "scale": list(SCALE), "ratio": list(RATIO),
        "log_ratio_float32_bits": [int(np.float32(v).view(np.uint32)) for v in log_ratio.tolist()],
        "cases": cases,
    }, indent=None, separators=(",", ":")) + "\n")

    # Tensor: the first training source of the dev set (METHOD §2.1), with two boxes: one drawn, one fallback.
    data = Path(args.data)
    stem, cat = "2101_000001", "car"
    rgb = Image.open(data / "JPEGImages" / cat / f"{stem}.jpg").convert("RGB")
    raw = np.array(Image.open(data / "Segmentation" / cat / f"{stem}.png"))
    assert raw.ndim == 2, "expected a single-channel Segmentation PNG"
    mask = torch.from_numpy((raw > 0).astype(np.float32))[None]
    x = torch.cat([TF.to_tensor(rgb), mask], dim=0)  # [4, H, W]
    H, W = x.shape[1:]
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, str] = {"image": f"JPEGImages/{cat}/{stem}.jpg", "mask": f"Segmentation/{cat}/{stem}.png",
                            "torch": torch.__version__, "torchvision": torchvision.__version__}
    tensor_cases = [("drawn", 448, draw_list(rng, 24)),
                    ("fallback", 112, sum((draw_list(rng, 1, 0.97, 1.0) + draw_list(rng, 1) for _ in range(10)), []))]
    for name, size, draws in tensor_cases:
        (i, j, h, w), used = get_params(H, W, draws)
        y = TF.resized_crop(x, i, j, h, w, [size, size], InterpolationMode.BICUBIC, antialias=True)
        img = TF.normalize(y[:3].clone(), MEAN, STD)
        g = size // 14
        grid = F.interpolate(y[3:][None], (g, g), mode="nearest")[0, 0]
        tensors[f"{name}.draws"] = np.array(draws, dtype=np.float64)
        tensors[f"{name}.resized"] = y.numpy().astype(np.float32)
        tensors[f"{name}.normalized"] = img.numpy().astype(np.float32)
        tensors[f"{name}.grid"] = grid.numpy().astype(np.float32)
        meta[f"{name}.box"] = ",".join(str(v) for v in (i, j, h, w))
        meta[f"{name}.size"] = str(size)
        meta[f"{name}.consumed"] = str(used)
        print(f"{name}: box {(i, j, h, w)} from {used} draws; mask range [{y[3].min():.4f}, {y[3].max():.4f}]")
    # Only the first rows of the 448² normalised image (the formula is the same everywhere; keeps the file small).
    tensors["drawn.normalized"] = tensors["drawn.normalized"][:, :8]
    # save_file writes a strided view's buffer as is: make every array contiguous first.
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(tensors, str(out / "tensor.safetensors"), metadata=meta)
    fb = sum(1 for c in cases if c["consumed"] == 20 and len(c["draws"]) == 20)
    print(f"{len(cases)} box cases ({fb} forced fallbacks) → {out}/boxes.json; tensors → {out}/tensor.safetensors")


if __name__ == "__main__":
    main()
