"""Every endpoint and every output format over loopback, with stdlib clients and curl (SERVICE-NOTES §2.5, §4.7)."""
from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from helpers import (REPO, image_part, json_part, np, parse_npy, parse_safetensors, png, post_multipart,
                     assert_problem)


def test_livez_readyz(server):
    r = server.request("GET", "/livez")
    assert r.status == 200 and r.json() == {"status": "ok"}
    r = server.request("GET", "/readyz")
    assert r.status == 200 and r.json() == {"status": "ready"}
    for reply in (r, server.request("HEAD", "/livez")):
        assert reply.header("X-Request-Id") and reply.header("X-Model-Version") and reply.header("Date")


def test_head_has_no_body(server):
    get = server.request("GET", "/v1/info")
    head = server.request("HEAD", "/v1/info")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == get.header("Content-Length")


def test_info_names_model_limits_and_demo_warning(server):
    info = server.request("GET", "/v1/info").json()
    assert info["service"] == "spherecorr" and info["ready"] == "ready"
    assert info["demo"] is True and "random weights" in info["warning"]
    assert info["bundle"]["file"] == "0001-initial.safetensors"
    assert info["bundle"]["metadata"]["format"] == "spherecorr-bundle"
    assert info["backbone"]["embed_dim"] == 192 and info["backbone"]["patch_size"] == 14
    assert info["last_reload_error"] is None
    limits = info["limits"]
    for key in ("max_body_bytes", "max_image_bytes", "max_image_pixels", "max_resolution", "header_read_timeout_s",
                "request_deadline_s", "drain_delay_s", "shutdown_timeout_s", "inference_queue_size"):
        assert key in limits, key
    assert info["model_version"].startswith("DEMO")
    assert server.request("GET", "/livez").header("X-Model-Version") == info["model_version"]


def test_openapi_served_is_the_repository_file(server):
    r = server.request("GET", "/openapi.yaml")
    assert r.status == 200 and r.header("Content-Type").startswith("application/yaml")
    assert r.body == (REPO / "openapi.yaml").read_bytes()


def test_request_id_echoed_and_generated(server):
    r = server.request("GET", "/livez", headers={"X-Request-Id": "client-abc-123"})
    assert r.header("X-Request-Id") == "client-abc-123"
    r = server.request("GET", "/livez", headers={"X-Request-Id": "bad id with spaces"})
    assert r.header("X-Request-Id") and r.header("X-Request-Id") != "bad id with spaces"
    r = server.request("GET", "/nope", headers={"X-Request-Id": "err-1"})
    body = assert_problem(r, 404, "not_found")
    assert body["request_id"] == "err-1"


def test_405_with_allow(server):
    r = server.request("GET", "/v1/match")
    assert_problem(r, 405, "method_not_allowed")
    assert "POST" in r.header("Allow")


# ---------------------------------------------------------------- /v1/features

def features(server, img, accept=None, query="", raw=False):
    headers = {"Accept": accept} if accept else {}
    if raw:
        headers["Content-Type"] = "image/png"
        return server.request("POST", "/v1/features" + query, img, headers)
    return post_multipart(server, "/v1/features" + query, [image_part("image", img)], headers)


def test_features_npy_default(server, img_a):
    r = features(server, img_a)
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/x-npy"
    assert r.header("X-Tensor-Shape") == "4,4,192" and r.header("X-Tensor-Dtype") == "float32"
    assert r.header("X-Patch-Grid") == "4,4"
    assert r.header("X-Model-Version").startswith("DEMO")
    assert "backbone;dur=" in r.header("Server-Timing")
    arr = parse_npy(r.body)
    if np is not None:
        assert arr.shape == (4, 4, 192) and arr.dtype == np.float32 and np.isfinite(arr).all()
    else:
        assert arr[0] == (4, 4, 192)


def test_features_all_formats_agree_bit_for_bit(server, img_a):
    npy = features(server, img_a, "application/x-npy")
    raw = features(server, img_a, "application/octet-stream")
    st = features(server, img_a, "application/vnd.safetensors")
    st_alias = features(server, img_a, "application/octet-stream;format=safetensors")
    js = features(server, img_a, "application/json")
    arr = features(server, img_a, "application/json", query="?encoding=array")
    for r in (npy, raw, st, st_alias, js, arr):
        assert r.status == 200, r
    # npy payload = the raw float32 body
    assert npy.body.endswith(raw.body) and len(raw.body) == 4 * 4 * 4 * 192
    assert raw.header("X-Tensor-Shape") == "4,4,192" and raw.header("Content-Type") == "application/octet-stream"
    assert st.header("Content-Type") == "application/vnd.safetensors" and st_alias.body == st.body
    tensors, meta = parse_safetensors(st.body)
    shape, dtype, blob = tensors["features"]
    assert shape == [4, 4, 192] and dtype == "F32" and blob == raw.body
    assert meta["model_version"] == st.header("X-Model-Version") and meta["grid"] == "4,4"
    body = js.json()
    assert js.header("Content-Type") == "application/json"
    assert body["shape"] == [4, 4, 192] and body["dtype"] == "float32" and body["encoding"] == "base64"
    assert base64.b64decode(body["data"]) == raw.body   # JSON base64 vs npy: bit-identical
    values = arr.json()["data"]
    assert arr.json()["encoding"] == "array" and len(values) == 4 * 4 * 192
    assert struct.pack(f"<{len(values)}f", *values) == raw.body
    if np is not None:
        assert (parse_npy(npy.body).tobytes() == raw.body)


def test_features_raw_body_equals_multipart(server, img_a):
    a = features(server, img_a, "application/octet-stream")
    b = features(server, img_a, "application/octet-stream", raw=True)
    assert b.status == 200 and a.body == b.body


def test_features_resolution(server, img_a):
    r = features(server, img_a, "application/octet-stream", query="?resolution=112")
    assert r.status == 200 and r.header("X-Tensor-Shape") == "8,8,192"
    assert len(r.body) == 8 * 8 * 192 * 4


@pytest.mark.parametrize("value", ["50", "0", "-14", "abc", "100000", "14.0"])
def test_features_bad_resolution(server, img_a, value):
    r = features(server, img_a, query=f"?resolution={value}")
    body = assert_problem(r, 422, "invalid_parameter")
    assert "resolution" in body["detail"] and body["pointer"] == "/resolution"


def test_same_request_twice_identical_bytes(server):
    img = png(64, 48, seed=42)
    first = features(server, img, "application/x-npy")
    second = features(server, img, "application/x-npy")
    assert first.status == second.status == 200 and first.body == second.body
    fields = [image_part("source", png(70, 40, seed=43)), image_part("target", img), json_part("points", [[3, 4], [60, 30]])]
    m1 = post_multipart(server, "/v1/match", fields)
    m2 = post_multipart(server, "/v1/match", fields)
    assert m1.status == 200 and m1.body.replace(b'"cached":false', b'"cached":true') == m2.body


def test_feature_cache_hits_and_misses_in_metrics(server):
    img = png(40, 40, seed=99)
    hits0 = server.metric("spherecorr_feature_cache_hits_total")
    misses0 = server.metric("spherecorr_feature_cache_misses_total")
    assert features(server, img).status == 200
    assert features(server, img).status == 200
    assert server.metric("spherecorr_feature_cache_misses_total") == misses0 + 1
    assert server.metric("spherecorr_feature_cache_hits_total") == hits0 + 1
    # another resolution is another key
    assert features(server, img, query="?resolution=28").status == 200
    assert server.metric("spherecorr_feature_cache_misses_total") == misses0 + 2


# ---------------------------------------------------------------- /v1/sphere-map

def test_sphere_map_json_npy_png(server, img_b):
    js = post_multipart(server, "/v1/sphere-map", [image_part("image", img_b)])
    assert js.status == 200 and js.header("Content-Type") == "application/json"
    body = js.json()
    assert body["shape"] == [4, 4, 3]
    raw = base64.b64decode(body["data"])
    v = struct.unpack(f"<{4 * 4 * 3}f", raw)
    for i in range(16):
        norm = sum(x * x for x in v[3 * i:3 * i + 3]) ** 0.5
        assert abs(norm - 1) < 1e-4
    npy = post_multipart(server, "/v1/sphere-map", [image_part("image", img_b)], {"Accept": "application/x-npy"})
    assert npy.status == 200 and npy.body.endswith(raw)
    pic = post_multipart(server, "/v1/sphere-map?box=5,5,40,60", [image_part("image", img_b)], {"Accept": "image/png"})
    assert pic.status == 200 and pic.header("Content-Type") == "image/png" and pic.body[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", pic.body[16:24])
    assert (width, height) == (50, 70)


def test_sphere_map_box_only_for_png(server, img_b):
    r = post_multipart(server, "/v1/sphere-map?box=1,1,5,5", [image_part("image", img_b)])
    assert_problem(r, 422, "invalid_parameter")
    r = post_multipart(server, "/v1/sphere-map?box=1,1,500,5", [image_part("image", img_b)], {"Accept": "image/png"})
    assert_problem(r, 422, "invalid_parameter")


# ---------------------------------------------------------------- /v1/match

def test_match_points(server, img_a, img_b):
    pts = [[1, 2], [30, 40], [79.5, 59.5]]
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             json_part("points", pts)])
    assert r.status == 200, r
    body = r.json()
    assert body["mode"] == "points" and len(body["matches"]) == 3
    assert body["model_version"] == r.header("X-Model-Version")
    for p, m in zip(pts, body["matches"]):
        assert m["source"] == p
        x, y = m["target"]
        assert 0 <= x < 50 and 0 <= y < 70 and -1 <= m["score"] <= 1
    assert body["source"]["width"] == 80 and body["target"]["height"] == 70


def test_match_dense_and_params(server, img_a, img_b):
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             json_part("params", {"alpha": 0, "min_score": -1, "max_matches": 3})])
    assert r.status == 200, r
    body = r.json()
    assert body["mode"] == "dense" and body["alpha"] == 0 and 1 <= len(body["matches"]) <= 3
    scores = [m["score"] for m in body["matches"]]
    assert scores == sorted(scores, reverse=True)


def test_match_png(server, img_a, img_b):
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             json_part("points", [[10, 10]])], {"Accept": "image/png"})
    assert r.status == 200 and r.header("Content-Type") == "image/png"
    assert struct.unpack(">II", r.body[16:24]) == (80 + 50, 70)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_match_and_features(server, tmp_path, img_a, img_b):
    (tmp_path / "a.png").write_bytes(img_a)
    (tmp_path / "b.png").write_bytes(img_b)
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-F", f"source=@{tmp_path / 'a.png'}",
                          "-F", f"target=@{tmp_path / 'b.png'}", "-F", "points=[[5,5]];type=application/json",
                          f"{server.base}/v1/match"], capture_output=True, timeout=90, check=True)
    assert len(json.loads(out.stdout)["matches"]) == 1
    npy = tmp_path / "f.npy"
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-H", "Accept: application/x-npy", "-o", str(npy),
                          "-w", "%{http_code} %{content_type}", "--data-binary", f"@{tmp_path / 'a.png'}",
                          "-H", "Content-Type: image/png", f"{server.base}/v1/features"],
                         capture_output=True, timeout=90, check=True, text=True)
    assert out.stdout == "200 application/x-npy"
    assert npy.read_bytes()[:6] == b"\x93NUMPY"


@pytest.mark.parametrize("size", [(200, 14), (14, 200)])
def test_match_elongated_images(server, size):
    """An image thinner than half a patch after letterboxing: no patch centre inside it (once a crash)."""
    thin, square = png(*size, seed=8), png(40, 40, seed=9)
    w, h = size
    for src, trg, pts in ((thin, square, [[1, 1], [w - 1, h - 1]]), (square, thin, [[5, 5]]), (thin, thin, None)):
        fields = [image_part("source", src), image_part("target", trg)]
        if pts:
            fields.append(json_part("points", pts))
        r = post_multipart(server, "/v1/match", fields)
        assert r.status == 200, r
        tw, th = (w, h) if trg is thin else (40, 40)
        for m in r.json()["matches"]:
            assert 0 <= m["target"][0] < tw and 0 <= m["target"][1] < th, m
    assert server.request("GET", "/livez").status == 200
