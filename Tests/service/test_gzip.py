"""Content-Encoding: gzip (issue #13): the same request with and without Accept-Encoding decodes to identical bytes
(JSON matches, JSON tensors, /metrics, /openapi.yaml), over TCP and TLS; PNG and binary tensors never; q-values."""
from __future__ import annotations

import gzip

import pytest

from helpers import REPO, image_part, json_part, over_tls, post_multipart


def fetch(server, path, accept_encoding=None, accept=None, fields=None):
    headers = {}
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    if accept is not None:
        headers["Accept"] = accept
    if fields is not None:
        return post_multipart(server, path, fields, headers)
    return server.request("GET", path, headers=headers)


def assert_gzip_same(plain, gz):
    assert plain.status == gz.status == 200, (plain, gz)
    assert plain.header("Content-Encoding") is None
    assert gz.header("Content-Encoding") == "gzip"
    assert plain.header("Vary") == gz.header("Vary") == "Accept-Encoding"
    assert int(gz.header("Content-Length")) == len(gz.body) < len(plain.body)
    assert gzip.decompress(gz.body) == plain.body


@over_tls
def test_openapi_and_info_round_trip(server):
    plain, gz = fetch(server, "/openapi.yaml"), fetch(server, "/openapi.yaml", "gzip")
    assert_gzip_same(plain, gz)
    assert plain.body == (REPO / "openapi.yaml").read_bytes()
    assert gz.header("Content-Type") == plain.header("Content-Type")


@over_tls
def test_match_json_round_trip(server, img_a, img_b):
    # Dense matches: a JSON body well above the threshold.
    fields = [image_part("source", img_a), image_part("target", img_b), json_part("params", {"min_score": -1, "max_matches": 500})]
    # Once first, so that both compared answers say "cached": true.
    assert fetch(server, "/v1/match", fields=fields).status == 200
    plain, gz = fetch(server, "/v1/match", fields=fields), fetch(server, "/v1/match", "gzip, deflate, br", fields=fields)
    assert_gzip_same(plain, gz)


def test_json_tensors_round_trip_binary_tensors_never(server, img_a):
    fields = [image_part("image", img_a)]
    plain = fetch(server, "/v1/features?encoding=array", accept="application/json", fields=fields)
    gz = fetch(server, "/v1/features?encoding=array", "gzip", accept="application/json", fields=fields)
    assert_gzip_same(plain, gz)
    for accept in ("application/x-npy", "application/vnd.safetensors", "application/octet-stream"):
        r = fetch(server, "/v1/features", "gzip", accept=accept, fields=fields)
        assert r.status == 200 and r.header("Content-Encoding") is None and r.header("Vary") is None, accept


def test_png_is_never_gzipped(server, img_a, img_b):
    for path, fields in (("/v1/match", [image_part("source", img_a), image_part("target", img_b), json_part("points", [[5, 5]])]),
                         ("/v1/sphere-map", [image_part("image", img_b)])):
        r = fetch(server, path, "gzip", accept="image/png", fields=fields)
        assert r.status == 200 and r.header("Content-Type") == "image/png", r
        assert r.header("Content-Encoding") is None and r.body[:4] == b"\x89PNG"


def test_metrics_gzip_decodes_to_an_exposition(server):
    gz = fetch(server, "/metrics", "gzip")
    assert gz.status == 200 and gz.header("Content-Encoding") == "gzip" and gz.header("Vary") == "Accept-Encoding"
    text = gzip.decompress(gz.body).decode()
    assert "# TYPE spherecorr_http_connections_total counter" in text and "process_resident_memory_bytes" in text


@pytest.mark.parametrize("field, coded", [
    (None, False), ("", False), ("gzip", True), ("GZIP;q=0.5", True), ("x-gzip", True), ("*", True),
    ("gzip;q=0", False), ("identity", False), ("br", False), ("*;q=0, identity", False),
    ("gzip;q=0.4, identity;q=0.6", False), ("identity;q=0, gzip;q=0.1", True), ("gzip;q=2", False),
])
def test_accept_encoding_q_values(server, field, coded):
    r = fetch(server, "/openapi.yaml", field)
    assert r.status == 200
    assert (r.header("Content-Encoding") == "gzip") is coded, (field, r.header("Content-Encoding"))
    assert (gzip.decompress(r.body) if coded else r.body) == (REPO / "openapi.yaml").read_bytes()


def test_tiny_bodies_are_not_gzipped(server):
    r = fetch(server, "/livez", "gzip")
    assert r.status == 200 and r.header("Content-Encoding") is None and r.json() == {"status": "ok"}
    info = server.request("GET", "/v1/info").json()
    assert info["compression"]["codings"] == ["gzip"] and info["compression"]["min_bytes"] == 1024


def test_demo_page_gzip_weakens_the_etag_and_still_revalidates(server):
    plain, gz = fetch(server, "/"), fetch(server, "/", "gzip")
    assert_gzip_same(plain, gz)
    assert gz.header("ETag") == "W/" + plain.header("ETag")
    r = server.request("GET", "/", headers={"Accept-Encoding": "gzip", "If-None-Match": gz.header("ETag")})
    assert r.status == 304 and r.body == b""
