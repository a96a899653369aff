"""Concurrent large decodes against a running spherecorr-server, with its peak resident memory read from /proc.

The input of issue #16: distinct 6324×6324 16-bit RGBA PNGs (40 Mpx, under the default --max-image-pixels) that
compress to about 0.3 MB but cost about 430 MB to decode. Used by test_decode_admission.py, and standalone to
measure a server binary:  python3 Tests/service/decode_load.py 8 16 [-- extra server flags]"""
from __future__ import annotations

import random
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import ServerProcess, request  # noqa: E402

SIDE = 6324


def big_png(seed: int, side: int = SIDE, height: int | None = None, depth: int = 16, colour: int = 6) -> bytes:
    """A side×height PNG (default: square, 16-bit RGBA): one random row (distinct per seed, so no cache hits), the
    rest zeros, streamed through zlib so that the samples never exist in this process."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    height = height or side
    row = side * {0: 1, 2: 3, 4: 2, 6: 4}[colour] * depth // 8
    rnd = random.Random(seed)
    n = min(row, 4096)
    first = b"\x00" + bytes(rnd.getrandbits(8) for _ in range(n)) + bytes(row - n)
    zero = bytes(row + 1)
    c = zlib.compressobj(6)
    parts = [c.compress(first)] + [c.compress(zero) for _ in range(height - 1)] + [c.flush()]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def proc_kib(pid: int, field: str) -> int:
    """VmRSS / VmHWM (peak resident) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def fire(server: ServerProcess, images: list[bytes], path: str = "/v1/features", headers: dict | None = None,
         timeout: float = 300) -> list:
    """POSTs every image at once (one thread each); the replies (or exceptions), in order."""
    out: list = [None] * len(images)

    def one(i: int) -> None:
        try:
            h = {"Content-Type": "image/png", "Accept": "application/x-npy"}
            h.update(headers or {})
            out[i] = request("127.0.0.1", server.port, "POST", path, images[i], h, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    return out


def measure(server: ServerProcess, images: list[bytes]) -> dict:
    """Peak RSS above the idle server while len(images) decodes arrive at once."""
    pid = server.proc.pid
    idle = proc_kib(pid, "VmHWM")
    t0 = time.monotonic()
    replies = fire(server, images)
    return {"concurrency": len(images), "idle_peak_mib": idle / 1024, "peak_mib": proc_kib(pid, "VmHWM") / 1024,
            "seconds": time.monotonic() - t0, "replies": replies}


def main(argv: list[str]) -> None:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    counts = [int(a) for a in (argv[:argv.index("--")] if "--" in argv else argv)] or [8, 16]
    images = [big_png(1000 + i) for i in range(max(counts))]
    for n in counts:
        # A fresh server per run: VmHWM is the peak since the process started.
        s = ServerProcess("--reload-interval", "0", *extra, name="decode-load")
        try:
            s.wait_ready()
            request("127.0.0.1", s.port, "GET", "/v1/info")
            m = measure(s, images[:n])
            codes = [r.status if hasattr(r, "status") else repr(r) for r in m["replies"]]
            print(f"concurrency {n}: idle peak {m['idle_peak_mib']:.0f} MiB, peak {m['peak_mib']:.0f} MiB, "
                  f"{m['seconds']:.1f} s, statuses {sorted(codes, key=str)}", flush=True)
        finally:
            s.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
