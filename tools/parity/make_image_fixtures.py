#!/usr/bin/env python3
"""Parity fixtures for the Swift `Imaging` module (METHOD §2, hazards H1-H8).

Everything expected is produced by the REAL references, never re-implemented here:
  * decoding:   Pillow  `Image.open(path).convert('RGB')`
  * LANCZOS:    Pillow  `Image.resize(size, Image.Resampling.LANCZOS)`
  * letterbox:  the evaluation `resize(img, R)` of sd-dino / SphericalMaps
                (utils/utils_correspondence.py), reproduced below line for line because it is
                a few lines of glue around Pillow and numpy
  * tensors:    torchvision ToTensor + Normalize, written as the torch ops torchvision runs
                (`img.float().div(255)`, `sub_(mean).div_(std)`; torchvision is not installed)
  * keypoints:  `preprocess_kps_pad` and the numpy patch-index lines of
                pck_spair_pascal_sphere.py, reproduced line for line (torch + numpy)
  * resamplers: torch `F.interpolate` (bicubic antialias=True/False, nearest)

Source images are synthesised deterministically (gradients + noise + edges, odd sizes) and
saved by Pillow, by a raw PNG writer below (bit depths / interlacing / palettes Pillow cannot
write), or by a tiny libjpeg program compiled on the fly (YCCK, Adobe-RGB, 4:4:0, restart
markers, arithmetic coding: encodings Pillow cannot write). Needs `cc` and libjpeg headers
(Debian: libjpeg62-turbo-dev).

Two Pillow generations are used. Pillow 13 changed LANCZOS: it runs the vertical pass first
when the height shrinks by more than twice as many pixels as the width (Resample.c,
ImagingResampleInner); Pillow <= 12 always runs the horizontal pass first, as in the
reference environment (2023, PyTorch 2.0.1). Resize and letterbox fixtures are written for
both where they differ (`lanczos12_*` / `letterbox12_*` from Pillow 12); decoding is
cross-checked to be identical under both.

Run from the repository root:
    pip install -r tools/parity/requirements-images.txt
    pip install --no-deps --target /tmp/pillow12 pillow==12.3.0
    python3 tools/parity/make_image_fixtures.py --legacy-pillow /tmp/pillow12
Output is deterministic for the pinned versions; manifest.json records them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image, features

torch.set_num_threads(1)

OUT = Path("Tests/Fixtures/imaging")
manifest: dict = {}


def save_npy(name: str, array: np.ndarray) -> None:
    np.save(OUT / name, np.ascontiguousarray(array))


def synth(w: int, h: int, seed: int) -> np.ndarray:
    """[h, w, 3] uint8: smooth gradients, a sinusoid, hard-edged shapes, Gaussian noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        255.0 * x / max(w - 1, 1),
        255.0 * y / max(h - 1, 1),
        127.5 + 110.0 * np.sin(x / 3.0) * np.cos(y / 5.0),
    ], axis=-1)
    img[h // 4: h // 2, w // 5: w // 2] = [250, 20, 30]
    img[(x + 2 * y) % 13 < 2] = [10, 200, 240]
    disk = (x - 0.7 * w) ** 2 + (y - 0.6 * h) ** 2 < (0.2 * min(w, h)) ** 2
    img[disk] = [255, 255, 255]
    img += rng.normal(0.0, 14.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------------------------------------
# Raw PNG writer (any colour type / bit depth, Adam7, all five filter types, extra chunks)
# ---------------------------------------------------------------------------------------------

def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(samples: np.ndarray, depth: int) -> list[bytes]:
    """samples: [h, w, c] integers -> one packed byte string per row."""
    h, w, c = samples.shape
    rows = []
    for r in range(h):
        flat = samples[r].reshape(-1)
        if depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            out = bytearray((len(flat) + per - 1) // per)
            for i, v in enumerate(flat):
                out[i // per] |= (int(v) & ((1 << depth) - 1)) << (8 - depth * (i % per + 1))
            rows.append(bytes(out))
    return rows


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows: list[bytes], bpp: int) -> bytes:
    """Filter type = row index mod 5, so every PNG filter is exercised."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        ftype = i % 5
        line = bytearray(len(row))
        for k in range(len(row)):
            a = row[k - bpp] if k >= bpp else 0
            b = prev[k]
            c = prev[k - bpp] if k >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
            line[k] = (row[k] - pred) & 0xFF
        out.append(ftype)
        out += line
        prev = row
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path: Path, samples: np.ndarray, depth: int, color_type: int, *, interlace: bool = False,
              palette: np.ndarray | None = None, trns: bytes | None = None, pre_chunks: list[tuple[bytes, bytes]] = ()) -> None:
    h, w, c = samples.shape
    bpp = max(1, depth * c // 8)
    if interlace:
        data = b""
        for xs, ys, dx, dy in ADAM7:
            sub = samples[ys::dy, xs::dx]
            if sub.shape[0] and sub.shape[1]:
                data += filter_rows(pack_rows(sub, depth), bpp)
    else:
        data = filter_rows(pack_rows(samples, depth), bpp)
    z = zlib.compress(data, 9)
    half = len(z) // 2
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    for kind, payload in pre_chunks:
        png += chunk(kind, payload)
    if palette is not None:
        png += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", z[:half]) + chunk(b"IDAT", z[half:]) + chunk(b"IEND", b"")
    path.write_bytes(png)


# ---------------------------------------------------------------------------------------------
# libjpeg helper for encodings Pillow cannot write
# ---------------------------------------------------------------------------------------------

CJPEG_HELPER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
/* usage: helper W H MODE QUALITY < raw > out.jpg
   MODE: ycck (4-channel input stored as YCCK), rgb (Adobe RGB colour space),
         h1v2 (YCbCr, luma sampled 1x2 = 4:4:0), rst (4:2:0 with restart interval 3),
         arith (4:2:0, arithmetic coding) */
int main(int argc, char **argv) {
    int w = atoi(argv[1]), h = atoi(argv[2]), q = atoi(argv[4]);
    const char *mode = argv[3];
    int comps = strcmp(mode, "ycck") == 0 ? 4 : 3;
    size_t n = (size_t)w * h * comps;
    unsigned char *buf = malloc(n);
    if (fread(buf, 1, n, stdin) != n) return 2;
    struct jpeg_compress_struct c; struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, stdout);
    c.image_width = w; c.image_height = h; c.input_components = comps;
    c.in_color_space = comps == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, q, TRUE);
    if (strcmp(mode, "ycck") == 0) jpeg_set_colorspace(&c, JCS_YCCK);
    if (strcmp(mode, "rgb") == 0) jpeg_set_colorspace(&c, JCS_RGB);
    if (strcmp(mode, "h1v2") == 0) { c.comp_info[0].h_samp_factor = 1; c.comp_info[0].v_samp_factor = 2; }
    if (strcmp(mode, "rst") == 0) c.restart_interval = 3;
    if (strcmp(mode, "arith") == 0) c.arith_code = TRUE;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = buf + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return 0;
}
"""


def build_helper(tmp: Path) -> Path:
    src, exe = tmp / "helper.c", tmp / "helper"
    src.write_text(CJPEG_HELPER)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src), "-ljpeg"], check=True)
    return exe


def helper_jpeg(exe: Path, path: Path, pixels: np.ndarray, mode: str, quality: int = 90) -> None:
    h, w = pixels.shape[:2]
    out = subprocess.run([str(exe), str(w), str(h), mode, str(quality)], input=pixels.tobytes(), capture_output=True, check=True)
    path.write_bytes(out.stdout)


# ---------------------------------------------------------------------------------------------
# Decoding fixtures
# ---------------------------------------------------------------------------------------------

def make_decode_fixtures(exe: Path) -> list[str]:
    names: list[str] = []

    def record(name: str) -> None:
        rgb = pillow_rgb(OUT / name)
        save_npy(name.rsplit(".", 1)[0] + ".rgb.npy", rgb)
        names.append(name)

    a = synth(50, 71, 1)   # portrait, odd width vs MCU
    b = synth(37, 23, 2)   # landscape, odd both
    c = synth(97, 61, 3)

    # JPEG, written by Pillow (its bundled libjpeg-turbo)
    Image.fromarray(a).save(OUT / "jpeg_420_50x71.jpg", quality=90, subsampling="4:2:0")
    Image.fromarray(b).save(OUT / "jpeg_420_37x23.jpg", quality=85, subsampling="4:2:0")
    Image.fromarray(b).save(OUT / "jpeg_444_37x23.jpg", quality=95, subsampling="4:4:4")
    Image.fromarray(a).save(OUT / "jpeg_422_50x71.jpg", quality=90, subsampling="4:2:2")
    Image.fromarray(c).save(OUT / "jpeg_420_97x61_optimized.jpg", quality=75, optimize=True)
    Image.fromarray(a).save(OUT / "jpeg_progressive_50x71.jpg", quality=90, progressive=True)
    Image.fromarray(b).convert("L").save(OUT / "jpeg_grey_37x23.jpg", quality=90)
    cmyk = np.concatenate([synth(37, 23, 4), synth(37, 23, 5)[..., :1]], axis=-1)
    Image.fromarray(cmyk, "CMYK").save(OUT / "jpeg_cmyk_37x23.jpg", quality=90)  # Adobe marker, inverted
    # JPEG, written by libjpeg directly
    helper_jpeg(exe, OUT / "jpeg_ycck_37x23.jpg", np.concatenate([b, synth(37, 23, 6)[..., :1]], axis=-1), "ycck")
    helper_jpeg(exe, OUT / "jpeg_adobe_rgb_37x23.jpg", b, "rgb")
    helper_jpeg(exe, OUT / "jpeg_440_50x71.jpg", a, "h1v2")
    helper_jpeg(exe, OUT / "jpeg_restart_97x61.jpg", c, "rst")
    helper_jpeg(exe, OUT / "jpeg_arith_37x23.jpg", b, "arith")
    for name in ["jpeg_420_50x71.jpg", "jpeg_420_37x23.jpg", "jpeg_444_37x23.jpg", "jpeg_422_50x71.jpg",
                 "jpeg_420_97x61_optimized.jpg", "jpeg_progressive_50x71.jpg", "jpeg_grey_37x23.jpg",
                 "jpeg_cmyk_37x23.jpg", "jpeg_ycck_37x23.jpg", "jpeg_adobe_rgb_37x23.jpg", "jpeg_440_50x71.jpg",
                 "jpeg_restart_97x61.jpg", "jpeg_arith_37x23.jpg"]:
        record(name)

    # PNG, written by Pillow
    rng = np.random.default_rng(7)
    Image.fromarray(b).save(OUT / "png_rgb8_37x23.png")
    alpha = rng.integers(0, 256, (23, 37, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([b, alpha], -1), "RGBA").save(OUT / "png_rgba8_37x23.png")
    Image.fromarray(b[..., 0]).save(OUT / "png_l8_37x23.png")
    Image.fromarray(np.stack([b[..., 1], alpha[..., 0]], -1), "LA").save(OUT / "png_la8_37x23.png")
    indices = (synth(50, 71, 8)[..., 0] // 16).astype(np.uint8)  # 16 colours
    pal = Image.fromarray(indices, "P")
    pal.putpalette(rng.integers(0, 256, 16 * 3, dtype=np.uint8).tobytes())
    pal.save(OUT / "png_palette8_trns_50x71.png", transparency=bytes(rng.integers(0, 256, 16, dtype=np.uint8)))
    Image.fromarray(b[..., 2] > 127).save(OUT / "png_bilevel_37x23.png")  # mode "1"

    # PNG, raw writer
    s16 = rng.integers(0, 65536, (23, 37, 4), dtype=np.uint16)
    s16[:4] = rng.integers(0, 256, (4, 37, 4), dtype=np.uint16)  # grey rows below 256 (not clipped)
    write_png(OUT / "png_l16_37x23.png", s16[..., :1], 16, 0)
    write_png(OUT / "png_rgb16_37x23.png", s16[..., :3], 16, 2)
    write_png(OUT / "png_rgba16_37x23.png", s16, 16, 6)
    write_png(OUT / "png_la16_37x23.png", s16[..., :2], 16, 4)
    for depth in (1, 2, 4):
        g = rng.integers(0, 1 << depth, (23, 37, 1), dtype=np.uint8)
        write_png(OUT / f"png_l{depth}_37x23.png", g, depth, 0)
        plte = rng.integers(0, 256, ((1 << depth), 3), dtype=np.uint8)
        write_png(OUT / f"png_palette{depth}_37x23.png", g, depth, 3, palette=plte)
    # 4-bit palette with only 5 entries but indices up to 15: Pillow maps the rest to black
    g = rng.integers(0, 16, (23, 37, 1), dtype=np.uint8)
    write_png(OUT / "png_palette4_short_37x23.png", g, 4, 3, palette=rng.integers(0, 256, (5, 3), dtype=np.uint8))
    write_png(OUT / "png_rgb8_adam7_50x71.png", a, 8, 2, interlace=True)
    write_png(OUT / "png_rgba16_adam7_37x23.png", s16, 16, 6, interlace=True)
    g2 = rng.integers(0, 4, (71, 50, 1), dtype=np.uint8)
    write_png(OUT / "png_palette2_adam7_50x71.png", g2, 2, 3, interlace=True,
              palette=rng.integers(0, 256, (4, 3), dtype=np.uint8), trns=bytes([0, 128]))
    write_png(OUT / "png_l4_adam7_5x3.png", rng.integers(0, 16, (3, 5, 1), dtype=np.uint8), 4, 0, interlace=True)
    # ancillary chunks Pillow ignores for pixels: gAMA, sBIT, tRNS (RGB)
    write_png(OUT / "png_rgb8_gamma_trns_37x23.png", b, 8, 2, trns=struct.pack(">HHH", *b[0, 0]),
              pre_chunks=[(b"gAMA", struct.pack(">I", 80000)), (b"sBIT", bytes([5, 6, 5]))])
    for name in ["png_rgb8_37x23.png", "png_rgba8_37x23.png", "png_l8_37x23.png", "png_la8_37x23.png",
                 "png_palette8_trns_50x71.png", "png_bilevel_37x23.png", "png_l16_37x23.png", "png_rgb16_37x23.png",
                 "png_rgba16_37x23.png", "png_la16_37x23.png", "png_l1_37x23.png", "png_l2_37x23.png", "png_l4_37x23.png",
                 "png_palette1_37x23.png", "png_palette2_37x23.png", "png_palette4_37x23.png",
                 "png_palette4_short_37x23.png", "png_rgb8_adam7_50x71.png", "png_rgba16_adam7_37x23.png",
                 "png_palette2_adam7_50x71.png", "png_l4_adam7_5x3.png", "png_rgb8_gamma_trns_37x23.png"]:
        record(name)

    # Sanity checks of our understanding of Pillow (the fixtures are Pillow's output regardless).
    assert (np.load(OUT / "png_rgb8_adam7_50x71.rgb.npy") == a).all()
    assert (np.load(OUT / "png_rgb16_37x23.rgb.npy") == (s16[..., :3] >> 8)).all()
    assert (np.load(OUT / "png_l16_37x23.rgb.npy")[..., 0] == np.minimum(s16[..., 0], 255)).all()
    return names


# ---------------------------------------------------------------------------------------------
# Malformed inputs
# ---------------------------------------------------------------------------------------------

def make_malformed() -> dict[str, str]:
    expect: dict[str, str] = {}
    j = (OUT / "jpeg_420_50x71.jpg").read_bytes()
    prog = (OUT / "jpeg_progressive_50x71.jpg").read_bytes()
    p = (OUT / "png_rgb8_37x23.png").read_bytes()
    files = {
        "bad_empty.bin": (b"", "tooSmall"),
        "bad_garbage.bin": (bytes(np.random.default_rng(11).integers(0, 256, 300, dtype=np.uint8)), "unsupportedFormat"),
        "bad_gif_header.gif": (b"GIF89a" + bytes(40), "unsupportedFormat"),
        "bad_png_signature_only.png": (p[:8], "truncated"),
        "bad_jpeg_soi_only.jpg": (j[:3], "truncated"),
        "bad_jpeg_truncated_header.jpg": (j[:120], "truncated"),
        "bad_jpeg_truncated_body.jpg": (j[: int(len(j) * 0.6)], "truncated"),
        "bad_jpeg_no_eoi.jpg": (j[:-2], "truncated"),  # Pillow: "image file is truncated" too
        "bad_jpeg_progressive_truncated.jpg": (prog[: int(len(prog) * 0.7)], "truncated"),
        "bad_png_truncated_idat.png": (p[: int(len(p) * 0.6)], "truncated"),
        # Pillow decodes a PNG whose IEND is missing; we deliberately reject it as truncated
        # (without IEND nothing shows the image data is complete).
        "bad_png_no_iend.png": (p[:-12], "truncated"),
    }
    # IDAT byte flipped: CRC mismatch
    k = p.index(b"IDAT") + 10
    files["bad_png_crc.png"] = (p[:k] + bytes([p[k] ^ 0xFF]) + p[k + 1:], "corrupt")
    # IDAT zlib stream is garbage but the CRC is valid (reaches libpng: needs the C guards)
    ihdr = p[8:33]
    junk = bytes(np.random.default_rng(12).integers(0, 256, 64, dtype=np.uint8))
    files["bad_png_zlib.png"] = (p[:8] + ihdr + chunk(b"IDAT", junk) + chunk(b"IEND", b""), "corrupt:guarded")
    # decompression bombs: headers declaring huge images, valid CRC / markers
    files["bad_png_huge_ihdr.png"] = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""), "tooManyPixels")
    sof = j.index(b"\xff\xc0")
    huge = bytearray(j)
    huge[sof + 5: sof + 9] = struct.pack(">HH", 65000, 65000)
    files["bad_jpeg_huge_sof.jpg"] = (bytes(huge), "tooManyPixels")
    twelve = bytearray(j)
    twelve[sof + 4] = 12
    files["bad_jpeg_12bit.jpg"] = (bytes(twelve), "unsupported")
    # DHT with counts summing to more than 256 codes: libjpeg's fatal "Bogus Huffman table"
    dht = j.index(b"\xff\xc4")
    bogus = bytearray(j)
    bogus[dht + 5: dht + 21] = bytes([255] * 16)
    files["bad_jpeg_bogus_dht.jpg"] = (bytes(bogus), "corrupt")
    # a scan naming the same component twice
    sos = j.index(b"\xff\xda")
    dup = bytearray(j)
    dup[sos + 7] = dup[sos + 5]
    files["bad_jpeg_duplicate_scan_component.jpg"] = (bytes(dup), "corrupt")
    for name, (data, outcome) in files.items():
        (OUT / name).write_bytes(data)
        try:
            with Image.open(OUT / name) as im:
                im.convert("RGB")
            pillow = "decoded"
        except Exception as e:  # noqa: BLE001 -- we record what Pillow says
            pillow = f"{type(e).__name__}: {e}"
        assert pillow != "decoded" or name == "bad_png_no_iend.png", f"Pillow decodes {name}"
        expect[name] = outcome
        manifest.setdefault("malformed_pillow", {})[name] = pillow
    return expect


# ---------------------------------------------------------------------------------------------
# LANCZOS, letterbox, normalised tensor, keypoints
# ---------------------------------------------------------------------------------------------

LANCZOS_PLAN = {
    "png_rgb8_37x23": [(20, 13), (56, 35), (84, 52), (37, 60), (70, 23), (9, 5), (150, 97), (1, 1), (30, 4)],
    "jpeg_420_50x71": [(39, 56), (59, 84), (25, 35), (50, 30), (120, 71), (56, 56), (200, 3), (45, 20)],
    "jpeg_420_97x61_optimized": [(56, 35), (84, 53), (33, 21), (97, 200), (90, 13)],
}
LETTERBOX_PLAN = [("png_rgb8_37x23", 56), ("png_rgb8_37x23", 84), ("jpeg_420_50x71", 56), ("jpeg_420_50x71", 84),
                  ("jpeg_420_97x61_optimized", 84), ("synth_40x40", 56), ("synth_16x3", 56), ("synth_16x5", 56),
                  ("synth_56x56", 56), ("synth_84x30", 84), ("synth_5x16", 56), ("synth_20x90", 56)]


def legacy_job(out_dir: str) -> None:
    """Runs under the legacy Pillow (subprocess): the same resizes, written with a '12' prefix."""
    global OUT
    OUT = Path(out_dir)
    for src, sizes in LANCZOS_PLAN.items():
        arr = np.load(OUT / f"{src}.rgb.npy")
        for w, h in sizes:
            save_npy(f"lanczos12_{src}_{w}x{h}.npy", np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS)))
    for src, r in LETTERBOX_PLAN:
        img = Image.fromarray(np.load(OUT / f"{src}.rgb.npy"))
        save_npy(f"letterbox12_{src}_R{r}.npy", np.asarray(reference_resize(img, r)))
    for name in manifest_decode_names(OUT):
        assert (pillow_rgb(OUT / name) == np.load(OUT / (name.rsplit(".", 1)[0] + ".rgb.npy"))).all(), name
    print(PIL.__version__, features.version("libjpeg_turbo"))


def manifest_decode_names(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.suffix in (".jpg", ".png") and not p.name.startswith("bad_"))


def run_legacy(legacy: str) -> dict:
    """Runs legacy_job under the other Pillow; keeps its files only where they differ."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([legacy, str(Path(__file__).resolve().parent)]))
    out = subprocess.run(["python3", "-c", f"import make_image_fixtures as m; m.legacy_job({str(OUT)!r})"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    version, jpeg = out[-2], out[-1]
    assert version.startswith("12."), version
    return {"pillow": version, "libjpeg_turbo": jpeg, "decode_identical": True}


def pick(new: str, legacy: str) -> dict:
    """Expected files per Pillow generation; the legacy copy is dropped when identical."""
    if (np.load(OUT / new) == np.load(OUT / legacy)).all():
        (OUT / legacy).unlink()
        return {"pillow13": new, "pillow12": new}
    return {"pillow13": new, "pillow12": legacy}


def make_lanczos() -> list[dict]:
    cases = []
    for src, sizes in LANCZOS_PLAN.items():
        arr = np.load(OUT / f"{src}.rgb.npy")
        for w, h in sizes:
            out = np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.LANCZOS))
            name = f"lanczos_{src}_{w}x{h}.npy"
            save_npy(name, out)
            cases.append({"source": f"{src}.rgb.npy", "width": w, "height": h,
                          "expected": pick(name, f"lanczos12_{src}_{w}x{h}.npy")})
    return cases


def reference_resize(img: Image.Image, target_res: int) -> Image.Image:
    """utils_correspondence.resize(img, target_res, resize=True, to_pil=True, edge=False) for RGB."""
    original_width, original_height = img.size
    canvas = np.zeros([target_res, target_res, 3], dtype=np.uint8)
    if original_height <= original_width:
        img = img.resize((target_res, int(np.around(target_res * original_height / original_width))), Image.Resampling.LANCZOS)
        width, height = img.size
        img = np.asarray(img)
        canvas[(width - height) // 2: (width + height) // 2] = img
    else:
        img = img.resize((int(np.around(target_res * original_width / original_height)), target_res), Image.Resampling.LANCZOS)
        width, height = img.size
        img = np.asarray(img)
        canvas[:, (height - width) // 2: (height + width) // 2] = img
    return Image.fromarray(canvas)


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """torchvision ToTensor() + Normalize(ImageNet) as the torch ops they run."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    t = t.to(dtype=torch.get_default_dtype()).div(255)
    mean = torch.as_tensor((0.485, 0.456, 0.406), dtype=t.dtype).view(-1, 1, 1)
    std = torch.as_tensor((0.229, 0.224, 0.225), dtype=t.dtype).view(-1, 1, 1)
    return t.sub_(mean).div_(std)


def make_synth_sources() -> None:
    extra = {"synth_40x40": synth(40, 40, 20), "synth_16x3": synth(16, 3, 21), "synth_16x5": synth(16, 5, 22),
             "synth_56x56": synth(56, 56, 23), "synth_84x30": synth(84, 30, 24), "synth_5x16": synth(5, 16, 25),
             "synth_20x90": synth(20, 90, 26)}  # tall: Pillow 13 runs the vertical pass first
    for name, arr in extra.items():
        save_npy(f"{name}.rgb.npy", arr)


def make_letterbox() -> list[dict]:
    cases = []
    for src, r in LETTERBOX_PLAN:
        img = Image.fromarray(np.load(OUT / f"{src}.rgb.npy"))
        out = np.asarray(reference_resize(img, r))
        name = f"letterbox_{src}_R{r}.npy"
        save_npy(name, out)
        cases.append({"source": f"{src}.rgb.npy", "resolution": r, "expected": pick(name, f"letterbox12_{src}_R{r}.npy")})
    # normalised tensors of two letterboxed images (padding becomes -mean/std)
    for src, r in [("png_rgb8_37x23", 56), ("jpeg_420_50x71", 84)]:
        lb = Image.fromarray(np.load(OUT / f"letterbox_{src}_R{r}.npy"))
        save_npy(f"tensor_{src}_R{r}.npy", to_normalized_tensor(lb).numpy())
    return cases


COUNT_INVIS = False


def preprocess_kps_pad(kps, img_width, img_height, size):
    """pck_spair_pascal_sphere.preprocess_kps_pad, unchanged."""
    kps = kps.clone()
    scale = size / max(img_width, img_height)
    kps[:, [0, 1]] *= scale
    if img_height < img_width:
        new_h = int(np.around(size * img_height / img_width))
        offset_y = int((size - new_h) / 2)
        offset_x = 0
        kps[:, 1] += offset_y
    elif img_width < img_height:
        new_w = int(np.around(size * img_width / img_height))
        offset_x = int((size - new_w) / 2)
        offset_y = 0
        kps[:, 0] += offset_x
    else:
        offset_x = 0
        offset_y = 0
    if not COUNT_INVIS:
        kps *= kps[:, 2:3].clone()  # zero-out any non-visible key points
    return kps, offset_x, offset_y, scale


def make_keypoints() -> list[dict]:
    cases = []
    rng = np.random.default_rng(30)
    for (w, h, r) in [(500, 375, 840), (375, 500, 840), (333, 333, 840), (640, 427, 56), (427, 640, 84), (16, 3, 56), (16, 5, 56)]:
        k = 24
        xy = np.stack([rng.integers(0, w, k), rng.integers(0, h, k)], -1).astype(np.float64)
        xy[::3] += rng.random((len(xy[::3]), 2))  # some fractional coordinates
        xy[-1] = [w - 1, h - 1]                     # corner
        vis = (rng.random(k) > 0.3).astype(np.float64)
        vis[-1] = 1
        raw = torch.tensor(np.concatenate([xy, vis[:, None]], -1).tolist(), dtype=torch.float)
        kps, off_x, off_y, scale = preprocess_kps_pad(raw, w, h, r)
        num_patches = int(14 / 14 * (r // 14 - 1) + 1)
        y, x = kps[:, 1].numpy(), kps[:, 0].numpy()
        y_patch = (num_patches / r * y).astype(np.int32)
        x_patch = (num_patches / r * x).astype(np.int32)
        idx = (num_patches * y_patch + x_patch).astype(np.int32)
        stem = f"kps_{w}x{h}_R{r}"
        save_npy(f"{stem}_in.npy", raw.numpy())
        save_npy(f"{stem}_out.npy", kps.numpy())
        save_npy(f"{stem}_patch.npy", idx)
        cases.append({"width": w, "height": h, "resolution": r, "offset_x": off_x, "offset_y": off_y, "scale": scale,
                      "stem": stem})
    return cases


# ---------------------------------------------------------------------------------------------
# torch resamplers
# ---------------------------------------------------------------------------------------------

def make_torch() -> dict[str, list[dict]]:
    g = torch.Generator().manual_seed(40)
    result: dict[str, list[dict]] = {"aa": [], "bicubic": [], "nearest": []}

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    # antialiased bicubic, size=
    for i, (c, h, w, oh, ow) in enumerate([(3, 23, 37, 13, 20), (3, 23, 37, 40, 61), (3, 23, 37, 23, 50), (3, 23, 37, 11, 37),
                                           (4, 50, 71, 32, 32), (2, 64, 64, 7, 5), (5, 37, 37, 16, 12), (5, 37, 37, 60, 60),
                                           (1, 30, 45, 30, 45)]):
        x = rand(c, h, w)
        y = F.interpolate(x[None], size=(oh, ow), mode="bicubic", antialias=True, align_corners=False)[0]
        stem = f"aa_{c}x{h}x{w}_to_{oh}x{ow}"
        save_npy(f"{stem}_in.npy", x.numpy())
        save_npy(f"{stem}_out.npy", y.numpy())
        result["aa"].append({"stem": stem, "c": c, "h": h, "w": w, "oh": oh, "ow": ow})

    # non-antialiased bicubic: DINOv2 pos-embed rule (scale_factor=(g+0.1)/37) and size=
    pos = rand(1, 6, 37, 37)
    save_npy("bicubic_pos_in.npy", pos[0].numpy())
    for gh, gw in [(3, 4), (5, 2), (16, 12), (60, 60), (32, 32), (37, 37)]:
        sy, sx = (gh + 0.1) / 37, (gw + 0.1) / 37
        y = F.interpolate(pos, scale_factor=(sy, sx), mode="bicubic", align_corners=False)
        assert tuple(y.shape[2:]) == (gh, gw), y.shape
        stem = f"bicubic_pos_to_{gh}x{gw}"
        save_npy(f"{stem}_out.npy", y[0].numpy())
        result["bicubic"].append({"stem": stem, "input": "bicubic_pos_in.npy", "c": 6, "h": 37, "w": 37, "oh": gh, "ow": gw,
                                  "scale_h": sy, "scale_w": sx})
    for c, h, w, oh, ow in [(2, 23, 37, 40, 15), (2, 23, 37, 9, 80)]:
        x = rand(c, h, w)
        y = F.interpolate(x[None], size=(oh, ow), mode="bicubic", align_corners=False)[0]
        stem = f"bicubic_{c}x{h}x{w}_to_{oh}x{ow}"
        save_npy(f"{stem}_in.npy", x.numpy())
        save_npy(f"{stem}_out.npy", y.numpy())
        result["bicubic"].append({"stem": stem, "input": f"{stem}_in.npy", "c": c, "h": h, "w": w, "oh": oh, "ow": ow,
                                  "scale_h": None, "scale_w": None})

    # nearest (mask -> patch grid)
    for c, h, w, oh, ow in [(1, 28, 28, 2, 2), (1, 112, 112, 8, 8), (1, 37, 23, 10, 7), (1, 5, 5, 10, 10), (2, 30, 45, 7, 11),
                            (1, 7, 9, 20, 25)]:
        x = rand(c, h, w)
        y = F.interpolate(x[None], size=(oh, ow), mode="nearest")[0]
        stem = f"nearest_{c}x{h}x{w}_to_{oh}x{ow}"
        save_npy(f"{stem}_in.npy", x.numpy())
        save_npy(f"{stem}_out.npy", y.numpy())
        result["nearest"].append({"stem": stem, "c": c, "h": h, "w": w, "oh": oh, "ow": ow})
    return result


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--legacy-pillow", required=True,
                        help="directory holding Pillow 12 (pip install --no-deps --target DIR pillow==12.3.0)")
    args = parser.parse_args()
    OUT = Path(args.out)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    manifest["versions"] = {
        "python": ".".join(map(str, __import__("sys").version_info[:3])), "pillow": PIL.__version__,
        "pillow_libjpeg_turbo": features.version("libjpeg_turbo"), "pillow_zlib": features.version("zlib"),
        "numpy": np.__version__, "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_helper(Path(tmp))
        manifest["decode"] = make_decode_fixtures(exe)
    manifest["malformed"] = make_malformed()
    make_synth_sources()
    manifest["legacy"] = run_legacy(args.legacy_pillow)
    manifest["lanczos"] = make_lanczos()
    manifest["letterbox"] = make_letterbox()
    manifest["keypoints"] = make_keypoints()
    manifest["torch"] = make_torch()
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB to {OUT}")
    assert total < 3_000_000, "fixtures must stay under 3 MB"


if __name__ == "__main__":
    main()
