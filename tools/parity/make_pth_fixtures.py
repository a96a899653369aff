#!/usr/bin/env python3
"""Generate torch.save (.pth) fixtures for TensorFiles' TorchCheckpoint and the backbone loader.

The two model files hold the tiny random parity models of make_dinov2_fixtures.py (`plain`) and
make_dino_v1_fixtures.py (`p8`): their committed torch-hub safetensors are loaded with `strict=True`
into the official model classes (facebookresearch/dinov2 `DinoVisionTransformer`, facebookresearch/dino
`VisionTransformer`, built by those scripts' own `build_reference`), and the models' state_dicts are
written by `torch.save` itself:

  dinov2-plain.pth       torch.save(model.state_dict()): the layout of the official dinov2_*_pretrain.pth
  dino_v1-p8-teacher.pth a DINOv1 training checkpoint: {'teacher': {'module.backbone.<k>': Parameter,
                         'module.head.*': DINOHead stand-in}, 'student': {...}, 'epoch': 7}, which
                         facebookresearch/dino's load_pretrained_weights(checkpoint_key='teacher') reads

and, verified here, dino's own `load_pretrained_weights` recovers exactly the parity weights from the
teacher file. The format cases are small:

  tensors.pth            strided views (transpose, offset slice, shared storage), float16 and bfloat16
                         storages, a Parameter, a nested dict, non-tensor values
  tensors.expected.safetensors  the same tensors, contiguous float32, names dotted ('nested.x')
  tensors-deflate.pth    tensors.pth re-zipped with DEFLATE entries
  tensors-zip64.pth      tensors.pth re-zipped by hand with ZIP64 extra fields on every central entry
  forbidden-global.pth   a data.pkl calling os.system (bytes written by hand, never executed)
  truncated.pth          the first 60 % of tensors.pth
  missing-entry.pth      tensors.pth without the entry of one storage
  legacy.pth             torch.save(..., _use_new_zipfile_serialization=False): the pre-1.6 format

Every .pth (except the damaged ones) is read back with torch.load(weights_only=True) and compared.

Usage (sources as for the two parity scripts, tools/parity/README.md):
  python3 tools/parity/make_pth_fixtures.py --dino-src /tmp/dino-src --dinov2-src /tmp/dinov2-src \
      --fixtures Tests/Fixtures --out Tests/Fixtures/pth
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import zipfile
import zlib

os.environ["XFORMERS_DISABLED"] = "1"

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dino_v1_fixtures as v1  # noqa: E402
import make_dinov2_fixtures as v2  # noqa: E402
from make_dinov2_fixtures import read_safetensors, write_safetensors  # noqa: E402

SEED = 20261203


def check_same(a: dict, b: dict, label: str) -> None:
    assert sorted(a) == sorted(b), (label, sorted(set(a) ^ set(b)))
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), (label, k)


def dinov2_plain(dinov2_src: str, fixtures: str, out: str) -> str:
    vits, MemEffAttention, Block = v2.import_reference(dinov2_src)
    model = v2.build_reference(vits, MemEffAttention, Block, "plain")
    sd, _ = read_safetensors(os.path.join(fixtures, "dinov2", "plain.safetensors"))
    model.load_state_dict(sd, strict=True)
    path = os.path.join(out, "dinov2-plain.pth")
    torch.save(model.state_dict(), path)
    check_same(torch.load(path, weights_only=True), sd, path)
    return path


def dino_v1_teacher(dino_src: str, fixtures: str, out: str) -> str:
    sys.path.insert(0, os.path.abspath(dino_src))
    import vision_transformer as vits
    import utils as dino_utils  # facebookresearch/dino utils.py: load_pretrained_weights

    model = v1.build_reference(vits, "p8")
    sd, _ = read_safetensors(os.path.join(fixtures, "dino_v1", "p8.safetensors"))
    model.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(SEED)
    teacher = {"module.backbone." + k: v for k, v in model.state_dict(keep_vars=True).items()}
    # DINOHead stand-in (the projection head the backbone loader ignores, as strict=False does in the reference).
    teacher["module.head.last_layer.weight_g"] = torch.nn.Parameter(torch.randn((16, 1), generator=g))
    student = {"module.backbone.cls_token": torch.randn((1, 1, v1.EMBED_DIM), generator=g)}
    path = os.path.join(out, "dino_v1-p8-teacher.pth")
    torch.save({"teacher": teacher, "student": student, "epoch": 7}, path)
    # The reference's own loader recovers the parity weights from it.
    fresh = v1.build_reference(vits, "p8")
    dino_utils.load_pretrained_weights(fresh, path, "teacher", "vit_small", 8)
    check_same({k: v.detach() for k, v in fresh.state_dict().items()}, sd, path)
    return path


def format_cases(out: str) -> list[str]:
    g = torch.Generator().manual_seed(SEED + 1)
    base = torch.randn((5, 7), generator=g)
    obj = {
        "transposed": base.t(),                                   # strides (1, 7)
        "sliced": base[1:4, 2:6],                                 # offset 9, strides (7, 1)
        "every_other": base[:, ::2],                              # strides (7, 2)
        "whole": base,                                            # shares the storage of the views above
        "half": torch.randn((3, 4), generator=g).half(),
        "half_transposed": torch.randn((4, 3), generator=g).half().t(),
        "bfloat": torch.randn((6,), generator=g).bfloat16(),
        "param": torch.nn.Parameter(torch.randn((2, 3), generator=g)),
        "nested": {"x": torch.randn((2, 2), generator=g), "deeper": {"y": torch.randn((3,), generator=g)}},
        "epoch": 3,
        "note": "non-tensor values are skipped",
    }
    assert not obj["transposed"].is_contiguous() and obj["sliced"].storage_offset() == 9
    paths = []
    pth = os.path.join(out, "tensors.pth")
    torch.save(obj, pth)
    back = torch.load(pth, weights_only=True)
    expected = {}

    def flatten(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                flatten(v, prefix + k + ".")
            elif isinstance(v, torch.Tensor):
                expected[prefix + k] = v.detach().float().contiguous()

    flatten(back)
    assert len(expected) == 10, sorted(expected)
    write_safetensors(os.path.join(out, "tensors.expected.safetensors"), expected, {"source": "tensors.pth"})
    paths += [pth, os.path.join(out, "tensors.expected.safetensors")]

    raw = open(pth, "rb").read()
    src = zipfile.ZipFile(io.BytesIO(raw))
    names = src.namelist()

    # DEFLATE entries.
    p = os.path.join(out, "tensors-deflate.pth")
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n in names:
            z.writestr(n, src.read(n))
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zipfile.ZipFile(p).infolist())
    paths.append(p)

    # ZIP64: every central entry saturates its sizes and offset and carries them in a ZIP64 extra field,
    # with ZIP64 end records, as a > 4 GiB checkpoint has (dinov2_vitg14 is 4.5 GB).
    p = os.path.join(out, "tensors-zip64.pth")
    body, central = bytearray(), bytearray()
    for n in names:
        data, nb = src.read(n), n.encode()
        crc = zlib.crc32(data)
        offset = len(body)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(extra))
        body += nb + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(nb), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF)
        central += nb + cextra
    cd_offset = len(body)
    z64 = len(body) + len(central)
    tail = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(names), len(names), len(central), cd_offset)
    tail += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    tail += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    open(p, "wb").write(bytes(body + central + tail))
    z = zipfile.ZipFile(p)
    assert z.testzip() is None and all(z.read(n) == src.read(n) for n in names)
    paths.append(p)

    for q in paths:
        if q.endswith(".pth"):
            for k, v in torch.load(q, weights_only=True).items():
                if isinstance(v, torch.Tensor):
                    assert torch.equal(v, back[k]), (q, k)

    # A pickle that would call os.system('echo') if unpickled: GLOBAL 'os system', the argument, REDUCE.
    p = os.path.join(out, "forbidden-global.pth")
    pkl = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03."
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    paths.append(p)

    p = os.path.join(out, "truncated.pth")
    open(p, "wb").write(raw[: len(raw) * 6 // 10])
    paths.append(p)

    p = os.path.join(out, "missing-entry.pth")
    with zipfile.ZipFile(p, "w") as z:
        for n in names:
            if not n.endswith("/data/1"):  # the top directory is the file's stem ('tensors/')
                z.writestr(n, src.read(n))
    assert len(zipfile.ZipFile(p).namelist()) == len(names) - 1
    paths.append(p)

    p = os.path.join(out, "legacy.pth")
    torch.save({"w": torch.ones(2)}, p, _use_new_zipfile_serialization=False)
    paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dino-src", required=True, help="directory holding facebookresearch/dino's vision_transformer.py and utils.py")
    ap.add_argument("--dinov2-src", required=True, help="directory that contains facebookresearch/dinov2's `dinov2` package")
    ap.add_argument("--fixtures", required=True, help="Tests/Fixtures (reads dinov2/plain.safetensors and dino_v1/p8.safetensors)")
    ap.add_argument("--out", required=True, help="output directory, e.g. Tests/Fixtures/pth")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    written = [dinov2_plain(args.dinov2_src, args.fixtures, args.out),
               dino_v1_teacher(args.dino_src, args.fixtures, args.out)]
    written += format_cases(args.out)
    print(f"torch {torch.__version__}")
    for p in written:
        print(f"{os.path.relpath(p, args.out):32s} {os.path.getsize(p):>10}")


if __name__ == "__main__":
    main()
