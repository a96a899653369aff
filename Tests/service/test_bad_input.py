"""Bad input: each a 4xx application/problem+json naming what was wrong; never a 5xx, never a crash."""
from __future__ import annotations

import socket

import pytest

from helpers import (assert_problem, fixture_image, image_part, json_part, multipart, png, png_header_only,
                     post_multipart)


def single(server, data: bytes, ctype: str = "image/png", path: str = "/v1/features"):
    return post_multipart(server, path, [("image", data, "x.bin", ctype)])


@pytest.mark.parametrize("data,status,code,words", [
    (b"hello, this is a text file\n", 415, "unsupported_media_type", "not a JPEG or PNG"),
    (b"", 422, "invalid_image", "empty"),
    ("bad_gif_header.gif", 415, "unsupported_media_type", "not a JPEG or PNG"),
    ("bad_jpeg_truncated_body.jpg", 422, "invalid_image", "image"),
    ("bad_jpeg_truncated_header.jpg", 422, "invalid_image", "image"),
    ("bad_jpeg_soi_only.jpg", 422, "invalid_image", "image"),
    ("bad_png_truncated_idat.png", 422, "invalid_image", "image"),
    ("bad_png_crc.png", 422, "invalid_image", "image"),
    ("bad_png_signature_only.png", 422, "invalid_image", "image"),
    ("bad_jpeg_huge_sof.jpg", 413, "image_too_large", "pixels"),
    ("bad_png_huge_ihdr.png", 413, "image_too_large", "pixels"),
])
def test_broken_images(server, data, status, code, words):
    if isinstance(data, str):
        data = fixture_image(data)
    for path in ("/v1/features", "/v1/sphere-map"):
        body = assert_problem(single(server, data, path=path), status, code)
        assert words in body["detail"] and "'image'" in body["detail"], body


def test_truncated_png_of_ours(server):
    data = png(64, 64, seed=5)
    assert_problem(single(server, data[: len(data) // 2]), 422, "invalid_image")


def test_decompression_bomb_refused_from_header(server):
    body = assert_problem(single(server, png_header_only(20000, 20000)), 413, "image_too_large")
    assert "400000000" in body["detail"] and body["limit_pixels"] > 0


def test_too_small_image(server):
    for w, h in ((10, 10), (13, 200), (200, 1)):
        body = assert_problem(single(server, png(w, h, seed=1)), 422, "image_too_small")
        assert "14" in body["detail"]


def test_image_too_many_bytes(server):
    # Above --max-image-bytes (default 16 MiB) but below the body limit (32 MiB): refused before decoding.
    data = png(20, 20, seed=1) + b"\0" * (17 << 20)
    body = assert_problem(single(server, data), 413, "image_too_large")
    assert "bytes" in body["detail"]


def test_body_too_large_before_reading(server):
    limit = server.request("GET", "/v1/info").json()["limits"]["max_body_bytes"]
    # Only the head is sent: the 413 comes from Content-Length, without the body.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall((f"POST /v1/features HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                   f"Content-Length: {limit + 1}\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert "application/problem+json" in head and "X-Model-Version" in head


def test_match_missing_part(server, img_a):
    body = assert_problem(post_multipart(server, "/v1/match", [image_part("source", img_a)]), 422, "missing_part")
    assert "'target'" in body["detail"] and body["pointer"] == "/target"
    body = assert_problem(post_multipart(server, "/v1/features", [json_part("params", {})]), 422)
    assert "params" in body["detail"]
    body = assert_problem(post_multipart(server, "/v1/features", [("other", b"x", None, "text/plain")]), 422)
    assert "'other'" in body["detail"]


def test_missing_image_part(server):
    body, ctype = multipart([])
    r = server.request("POST", "/v1/features", body, {"Content-Type": ctype})
    assert 400 <= r.status < 500, r
    assert r.header("Content-Type") == "application/problem+json"


def test_points_outside_the_image(server, img_a, img_b):
    for p in ([80, 10], [-1, 5], [10, 60], [1e9, 1]):
        r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                                 json_part("points", [[1, 1], p])])
        body = assert_problem(r, 422, "invalid_parameter")
        assert body["pointer"] == "/points/1" and "outside the source image" in body["detail"]


@pytest.mark.parametrize("points", [[[1]], [["a", 2]], {"x": 1}, [[1, 2, 3]], [[True, 1]], "12"])
def test_points_wrong_shape(server, img_a, img_b, points):
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             json_part("points", points)])
    assert_problem(r, 422, "invalid_parameter")


def test_malformed_json(server, img_a, img_b):
    for name, text in (("points", b"[[1, 2]"), ("params", b"{alpha: 0.1}"), ("points", b"\xff\xfe")):
        r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                                 (name, text, None, "application/json")])
        body = assert_problem(r, 400, "malformed_json")
        assert f"'{name}'" in body["detail"]


def test_unknown_parameters(server, img_a, img_b):
    r = post_multipart(server, "/v1/features?colour=red", [image_part("image", img_a)])
    body = assert_problem(r, 422, "invalid_parameter")
    assert "colour" in body["detail"]
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             json_part("params", {"alpha": 0.2, "beta": 1})])
    body = assert_problem(r, 422, "invalid_parameter")
    assert "beta" in body["detail"] and body["pointer"] == "/params/beta"
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             ("extra", b"1", None, "text/plain")])
    assert_problem(r, 422, "invalid_parameter")


@pytest.mark.parametrize("params", [{"alpha": 2}, {"alpha": "x"}, {"min_score": -3}, {"max_matches": 0},
                                    {"max_matches": 1.5}, {"restrict_to_image": 1}])
def test_params_out_of_range(server, img_a, img_b, params):
    r = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                             json_part("params", params)])
    body = assert_problem(r, 422, "invalid_parameter")
    assert body["pointer"] == "/params/" + next(iter(params))


def test_unsupported_content_type(server, img_a):
    r = server.request("POST", "/v1/match", b'{"source": "x"}', {"Content-Type": "application/json"})
    assert_problem(r, 415, "unsupported_media_type")
    r = server.request("POST", "/v1/features", img_a, {"Content-Type": "image/gif"})
    assert_problem(r, 415, "unsupported_media_type")
    r = server.request("POST", "/v1/features", img_a)
    assert_problem(r, 415, "unsupported_media_type")


def test_malformed_multipart(server):
    r = server.request("POST", "/v1/features", b"--b\r\nno headers end", {"Content-Type": "multipart/form-data; boundary=b"})
    assert_problem(r, 400)
    r = server.request("POST", "/v1/features", b"x", {"Content-Type": "multipart/form-data"})
    assert_problem(r, 400)


@pytest.mark.parametrize("path,accept", [("/v1/features", "text/html"), ("/v1/features", "image/png"),
                                         ("/v1/match", "application/vnd.safetensors"), ("/v1/transfer", "application/x-npy"),
                                         ("/v1/sphere-map", "text/csv, application/xml;q=0.5"),
                                         ("/v1/features", "application/json;q=0")])
def test_unsatisfiable_accept(server, img_a, img_b, path, accept):
    fields = [image_part("source", img_a), image_part("target", img_b)] if path in ("/v1/match", "/v1/transfer") else [image_part("image", img_a)]
    body = assert_problem(post_multipart(server, path, fields, {"Accept": accept}), 406, "not_acceptable")
    assert "Accept" in body["detail"]


def test_server_survives_all_of_it(server):
    assert server.request("GET", "/livez").status == 200
    assert server.proc.poll() is None
    text = server.request("GET", "/metrics").text
    five = [l for l in text.splitlines() if l.startswith("spherecorr_http_requests_total") and 'code="5' in l
            and 'route="/readyz"' not in l]  # /readyz is 503 while the model loads
    assert five == [], five
