"""What the fixture scripts share: one deterministic safetensors writer checked against the official reader
(make_dinov2_fixtures.py, make_dino_v1_fixtures.py, make_train_fixtures.py) and, for the two backbone scripts, the
parameter perturbation that moves a reference model away from its init, seeded inputs, the save/re-read check of a
transformers directory, and the closing report."""
from __future__ import annotations

import json
import math
import os
import shutil
import struct

import numpy as np
import torch


def write_safetensors(path: str, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """float32 tensors in sorted name order, metadata keys sorted, header padded to 8 bytes: the same bytes on every
    run. Read back with the official implementation. torch tensors must be float32; numpy arrays are stored as
    float32."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    blobs = []
    offset = 0
    arrays = {}
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, torch.Tensor):
            assert t.dtype == torch.float32, (name, t.dtype)
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(t, dtype="<f4")
        arrays[name] = a
        b = a.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        assert sorted(f.keys()) == sorted(arrays), path
        if metadata:
            assert f.metadata() == {k: str(v) for k, v in metadata.items()}, path
        for name, a in arrays.items():
            r = f.get_tensor(name)
            assert r.dtype == np.float32 and r.shape == a.shape and np.array_equal(r, a), (path, name)


def read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    out = {}
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out, meta


def perturb_parameters(model: torch.nn.Module, seed: int) -> None:
    """Move every parameter away from its init, with O(1)-preserving scales (DINOv2 and DINOv1 parameter names)."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            leaf = name.rsplit(".", 1)[-1]
            owner = name.rsplit(".", 2)[-2] if "." in name else ""
            if name in ("pos_embed", "cls_token", "register_tokens", "mask_token"):
                v = 0.5 * randn(p.shape)
            elif leaf == "gamma":  # LayerScale
                v = 0.5 + 0.2 * randn(p.shape)
            elif owner.startswith("norm"):  # norm1 / norm2 / final norm (LayerNorm)
                v = (1.0 + 0.1 * randn(p.shape)) if leaf == "weight" else 0.1 * randn(p.shape)
            elif leaf == "weight":  # Linear / Conv2d
                fan_in = int(np.prod(p.shape[1:]))
                v = randn(p.shape) / math.sqrt(fan_in)
            elif leaf == "bias":
                v = 0.1 * randn(p.shape)
            else:
                raise AssertionError(f"unhandled parameter {name}")
            # randn can return exactly 0.0 (probability ~2^-24 per element); nudge such
            # elements (and any exact 1.0) so that no parameter sits at an init value.
            v = torch.where(v == 0.0, torch.full_like(v, 1e-3), v)
            v = torch.where(v == 1.0, torch.full_like(v, 1.0 + 1e-3), v)
            p.copy_(v)
        for name, t in model.state_dict().items():
            assert t.dtype == torch.float32, name
            assert not torch.any(t == 0.0) and not torch.any(t == 1.0), f"{name} has an element at 0 or 1"


def hub_state_dict(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def make_input(seed: int, b: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((b, 3, h, w), generator=g, dtype=torch.float32)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max())


def save_hf_directory(model, dest: str, expected: dict[str, torch.Tensor]) -> dict:
    """`save_pretrained` into a fresh `dest`; what transformers wrote must be `expected` (the hub-style HF layout),
    bit for bit. Returns the written config.json."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    model.save_pretrained(dest, safe_serialization=True)
    assert sorted(os.listdir(dest)) == ["config.json", "model.safetensors"], os.listdir(dest)
    saved, _ = read_safetensors(os.path.join(dest, "model.safetensors"))
    assert sorted(saved) == sorted(expected), sorted(set(saved) ^ set(expected))
    for k in expected:
        assert saved[k].dtype == torch.float32 and torch.equal(saved[k], expected[k]), k
    with open(os.path.join(dest, "config.json")) as f:
        return json.load(f)


def write_prefixed_copy(src: str, dest: str, prefix: str) -> None:
    """`src`'s HF directory with every weight key prefixed (the layout of transformers' task-head models)."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    shutil.copyfile(os.path.join(src, "config.json"), os.path.join(dest, "config.json"))
    sd, meta = read_safetensors(os.path.join(src, "model.safetensors"))
    write_safetensors(os.path.join(dest, "model.safetensors"), {prefix + k: v for k, v in sd.items()}, meta or {"format": "pt"})


def report(written: list[str], out_dir: str, notes: list[str]) -> None:
    """Versions, notes, and every written file with its size."""
    import safetensors
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"safetensors {safetensors.__version__}, numpy {np.__version__}")
    for n in notes:
        print("note:", n)
    width = max(len(os.path.relpath(p, out_dir)) for p in written)
    total = 0
    print(f"{'file'.ljust(width)}  {'bytes':>10}")
    for p in written:
        size = os.path.getsize(p)
        total += size
        print(f"{os.path.relpath(p, out_dir).ljust(width)}  {size:>10}")
    print(f"{'total'.ljust(width)}  {total:>10}  ({total / 2**20:.2f} MiB)")
