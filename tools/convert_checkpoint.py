#!/usr/bin/env python3
"""Convert a reference SphericalMaps checkpoint (.pth from DINOMapper.make_checkpoint) to a SphereCorr bundle.

Tensor names are kept exactly (sphere_mapper.*, prototypes.*, sphere.weight: METHOD §3.6), so the bundle is the
same data in safetensors. Metadata per docs/CONTRACTS.md. The file is published atomically (temp, fsync, rename).

    python3 tools/convert_checkpoint.py 200.pth bundles/0001-reference.safetensors --categories aeroplane,bicycle,...

Needs torch (to read the pickle) and safetensors; the server and trainer do not.
"""
import argparse
import json
import os
import struct
import sys

SPAIR_CATEGORIES = ("aeroplane,bicycle,bird,boat,bottle,bus,car,cat,chair,cow,dog,horse,motorbike,person,"
                    "pottedplant,sheep,train,tvmonitor")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("bundle")
    ap.add_argument("--categories", default=SPAIR_CATEGORIES,
                    help="comma-separated, in condition-index order (default: the 18 SPair-71k categories)")
    ap.add_argument("--backbone-variant", default="dinov2_vitb14")
    a = ap.parse_args()
    import torch
    try:
        sd = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unreadable file plainly
        sys.exit(f"{a.checkpoint}: cannot read as a PyTorch checkpoint: {e}")
    if not isinstance(sd, dict):
        sys.exit(f"{a.checkpoint}: expected a state dict, found {type(sd).__name__}")
    keys = [k for k in sd if k.startswith(("sphere_mapper.", "prototypes.")) or k == "sphere.weight"]
    other = sorted(set(sd) - set(keys))
    if other:
        sys.exit(f"{a.checkpoint}: unexpected keys {other[:8]} (a bundle holds sphere_mapper.*, prototypes.*, sphere.weight)")
    if "sphere_mapper.0.weight" not in sd:
        sys.exit(f"{a.checkpoint}: missing 'sphere_mapper.0.weight'")
    width = sd["sphere_mapper.0.weight"].shape[1]
    n_cats = sd["prototypes.blocks.0.attn.k.weight"].shape[1]
    cats = a.categories.split(",")
    if len(cats) != n_cats:
        sys.exit(f"--categories names {len(cats)} categories but the checkpoint conditions on {n_cats}")
    meta = {"format": "spherecorr-bundle", "version": "1", "backbone_embed_dim": str(width),
            "categories": ",".join(cats), "backbone_variant": a.backbone_variant,
            "source": os.path.basename(a.checkpoint)}
    # Written by hand (sorted keys, 8-byte aligned header) so the output is byte-reproducible.
    header, blobs, offset = {"__metadata__": dict(sorted(meta.items()))}, [], 0
    for k in sorted(keys):
        t = sd[k].detach().to(torch.float32).contiguous().cpu().numpy()
        b = t.tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    out_dir = os.path.dirname(os.path.abspath(a.bundle))
    tmp = os.path.join(out_dir, f".{os.path.basename(a.bundle)}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, a.bundle)
    print(f"wrote {a.bundle}: {len(keys)} tensors, width {width}, {n_cats} categories")


if __name__ == "__main__":
    main()
