"""Issue #16 item 1 over loopback: image decodes are admitted by a memory budget priced from the image headers.

The case of the issue: 8 and 16 concurrent uploads of distinct 6324×6324 16-bit RGBA PNGs (0.3 MB each, about
440 MB each to decode). Without the budget the server's peak resident memory grew with the concurrency (3.4 GB for
8, 6.8 GB for 16); with --max-decode-bytes 1 GiB it stays under the idle peak + the budget + FIXED_OVERHEAD."""
from __future__ import annotations

import struct

import pytest

from decode_load import big_png, fire, proc_kib
from helpers import assert_problem, image_part, post_multipart

BUDGET = 1 << 30
# Beyond the budget: what the budget does not price. The 56² demo model's inference buffers, the request bodies
# (0.3 MB each), thread stacks, malloc's retained free memory and arena slack. Measured: about 0 (peak 903 MiB with
# an idle peak of 52 MiB: the budget is an upper bound, two decodes of 441 MB fit in it).
FIXED_OVERHEAD = 256 << 20


@pytest.fixture(scope="module")
def large_pngs() -> list[bytes]:
    return [big_png(1000 + i) for i in range(16)]


@pytest.fixture
def make_server(make_server):
    """conftest's servers, without bundle polling, logged as "decode"."""
    return lambda *args, **kw: make_server("--reload-interval", "0", *args, name="decode", **kw)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("concurrency", [8, 16])
def test_concurrent_large_decodes_stay_within_the_budget(make_server, large_pngs, concurrency):
    s = make_server("--max-decode-bytes", str(BUDGET))
    assert s.request("GET", "/v1/info").json()["limits"]["max_decode_bytes"] == BUDGET
    idle = proc_kib(s.proc.pid, "VmHWM") * 1024
    replies = fire(s, large_pngs[:concurrency])
    peak = proc_kib(s.proc.pid, "VmHWM") * 1024
    print(f"\nconcurrency {concurrency}: idle peak {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, budget {BUDGET / 2**20:.0f} MiB")
    for r in replies:
        assert not isinstance(r, Exception), r
        assert r.status in (200, 503), r
        if r.status == 503:
            assert_problem(r, 503)
    assert any(r.status == 200 for r in replies)
    assert peak <= idle + BUDGET + FIXED_OVERHEAD, (peak / 2**20, idle / 2**20)
    assert s.metric("spherecorr_decode_bytes_in_flight") == 0


def test_budget_in_info_and_metrics(server, make_server):
    # The default: sized from the machine's memory, the same figure in /v1/info and /metrics.
    limits = server.request("GET", "/v1/info").json()["limits"]
    assert limits["max_decode_bytes"] >= 256 << 20 and limits["max_render_side_px"] == 2048
    assert server.metric("spherecorr_decode_budget_bytes") == limits["max_decode_bytes"]
    assert server.metric("spherecorr_decode_bytes_in_flight") == 0
    text = server.request("GET", "/metrics").text
    for reason in ("overloaded", "deadline", "too_large"):
        assert f'spherecorr_decode_admissions_refused_total{{reason="{reason}"}}' in text
    # The environment variables.
    s = make_server(env={"SPHERECORR_MAX_DECODE_BYTES": "123456789", "SPHERECORR_MAX_RENDER_SIDE": "640"})
    limits = s.request("GET", "/v1/info").json()["limits"]
    assert limits["max_decode_bytes"] == 123456789 and limits["max_render_side_px"] == 640
    assert s.metric("spherecorr_decode_budget_bytes") == 123456789


def test_one_image_larger_than_the_budget_is_413(make_server):
    s = make_server("--max-decode-bytes", str(64 << 20))
    big = big_png(7, side=3000)  # 3000² 16-bit RGBA: about 100 MB to decode
    body = assert_problem(s.request("POST", "/v1/features", big, {"Content-Type": "image/png"}), 413, "image_too_large")
    assert body["limit"] == "max_decode_bytes" and body["limit_bytes"] == 64 << 20, body
    assert body["decode_bytes"] > 64 << 20 and "max_decode_bytes" in body["detail"], body
    assert s.metric("spherecorr_decode_admissions_refused_total", {"reason": "too_large"}) == 1
    # A smaller image of the same kind fits.
    r = s.request("POST", "/v1/features", big_png(8, side=1000), {"Content-Type": "image/png"})
    assert r.status == 200, r


def test_full_decode_queue_is_503_overloaded(make_server, large_pngs):
    # Room for one large decode and nobody may wait: the others are refused at once, with Retry-After.
    s = make_server("--max-decode-bytes", str(600 << 20), "--queue-size", "0")
    replies = fire(s, large_pngs[:4])
    statuses = [getattr(r, "status", r) for r in replies]
    assert all(x in (200, 503) for x in statuses), statuses
    assert 200 in statuses and 503 in statuses, statuses
    for r in replies:
        if r.status == 503:
            assert_problem(r, 503, "overloaded")
    assert s.metric("spherecorr_decode_admissions_refused_total", {"reason": "overloaded"}) >= 1
    assert s.metric("spherecorr_decode_bytes_in_flight") == 0


def test_drawings_are_bounded_and_keep_the_aspect(server):
    wide, tall = big_png(21, side=2400, height=300, depth=8, colour=2), big_png(22, side=300, height=1000, depth=8, colour=2)
    r = server.request("POST", "/v1/sphere-map", wide, {"Content-Type": "image/png", "Accept": "image/png"})
    assert r.status == 200, r
    assert png_size(r.body) == (2048, 256)  # 2400×300 scaled by 2048/2400
    # A match: both images at one scale, the side-by-side canvas (2700×1000) within 2048.
    for _ in range(2):  # the second time the features come from the cache: the pixels are decoded for the drawing only
        r = post_multipart(server, "/v1/match", [image_part("source", wide), image_part("target", tall)], headers={"Accept": "image/png"})
        assert r.status == 200, r
        w, h = png_size(r.body)
        assert (w, h) == (round(2400 * 2048 / 2700) + round(300 * 2048 / 2700), round(1000 * 2048 / 2700)), (w, h)
    # Small pictures are drawn at their own size.
    small = big_png(23, side=200, height=100, depth=8, colour=2)
    r = server.request("POST", "/v1/sphere-map", small, {"Content-Type": "image/png", "Accept": "image/png"})
    assert png_size(r.body) == (200, 100)
    assert server.metric("spherecorr_decode_bytes_in_flight") == 0
