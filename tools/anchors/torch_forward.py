#!/usr/bin/env python3
"""PyTorch eager fp32 (or bf16 autocast) anchor for `make bench`: the DINOv2 forward a user would otherwise run on this CPU.

Random weights of the real shapes (transformers' Dinov2Model / Dinov2WithRegistersModel, same layers as the
torch-hub model), same thread count and input size as `spherecorr-train bench`. Prints one JSON object.
Needs torch and transformers (tools/parity/requirements.txt); `make bench` skips it when they are absent.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import Dinov2Config, Dinov2Model

try:
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel
except ImportError:  # older transformers
    Dinov2WithRegistersConfig = Dinov2WithRegistersModel = None

VARIANTS = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16), "giant": (1536, 40, 24)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", required=True, choices=VARIANTS)
    p.add_argument("--registers", action="store_true")
    p.add_argument("--resolution", type=int, default=448)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bf16-autocast", action="store_true", help="torch.autocast('cpu', dtype=torch.bfloat16): what a user would try for bf16")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    d, depth, heads = VARIANTS[a.variant]
    kw = dict(hidden_size=d, num_hidden_layers=depth, num_attention_heads=heads, mlp_ratio=4,
              use_swiglu_ffn=a.variant == "giant", image_size=518, patch_size=14, layer_norm_eps=1e-6)
    if a.registers:
        model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=4, **kw))
    else:
        model = Dinov2Model(Dinov2Config(**kw))
    model.eval()
    torch.manual_seed(1)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution)
    times = []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16_autocast)
    with torch.inference_mode(), autocast:
        for i in range(a.repeat + 1):
            t = time.perf_counter()
            out = model(pixel_values=x, output_hidden_states=True)
            feats = out.hidden_states[-1]  # x_prenorm, as the method uses
            dt = time.perf_counter() - t
            assert torch.isfinite(feats).all()
            if i > 0:
                times.append(dt)
    print(json.dumps({
        "variant": a.variant + ("-reg" if a.registers else ""), "resolution": a.resolution, "batch": a.batch,
        "latency_s": {"min": min(times), "median": statistics.median(times), "max": max(times)},
        "torch": torch.__version__, "precision": "bf16-autocast" if a.bf16_autocast else "fp32", "threads": torch.get_num_threads(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
    }, sort_keys=True))


if __name__ == "__main__":
    main()
