"""Issue #14 item 3 over loopback: POST /v1/transfer (one source with points, 1 to --max-targets targets) and the
dense correspondence field of /v1/match as application/x-npy. Every limit and bad part is a 4xx naming it."""
from __future__ import annotations

import pytest

from helpers import assert_problem, image_part, json_part, parse_npy, png, post_multipart

np = pytest.importorskip("numpy")

PTS = [[1, 2], [30, 40], [79.5, 59.5], [40, 35]]


def transfer(server, source, targets, points=PTS, params=None, query="", headers=None):
    fields = [image_part("source", source)] + [image_part("target", t) for t in targets]
    if points is not None:
        fields.append(json_part("points", points))
    if params is not None:
        fields.append(json_part("params", params))
    return post_multipart(server, "/v1/transfer" + query, fields, headers=headers)


def match(server, source, target, points=PTS, params=None, headers=None):
    fields = [image_part("source", source), image_part("target", target)]
    if points is not None:
        fields.append(json_part("points", points))
    if params is not None:
        fields.append(json_part("params", params))
    return post_multipart(server, "/v1/match", fields, headers=headers)


@pytest.mark.parametrize("params", [
    None,
    {"alpha": 0},
    {"alpha": 0.5, "refine": "soft-argmax", "window": 2, "temperature": 0.05},
    {"visibility_threshold": 0, "drop_invisible": True},
    {"restrict_to_image": False},
])
def test_each_target_is_answered_in_order_as_match_answers_it(server, img_a, img_b, params):
    third = png(64, 40, seed=3)
    targets = [img_b, img_a, third, img_b]
    r = transfer(server, img_a, targets, params=params)
    assert r.status == 200, r
    body = r.json()
    assert body["mode"] == "points" and len(body["targets"]) == len(targets)
    assert [t["part"] for t in body["targets"]] == [f"target[{i}]" for i in range(len(targets))]
    for t, img in zip(body["targets"], targets):
        single = match(server, img_a, img, params=params)
        assert single.status == 200, single
        one = single.json()
        assert t["matches"] == one["matches"], (t["part"], params)
        assert (t["target"]["width"], t["target"]["height"]) == (one["target"]["width"], one["target"]["height"])
        assert body["refine"] == one["refine"] and body["alpha"] == one["alpha"]
    for m in body["targets"][0]["matches"]:
        assert isinstance(m["visible"], bool) and m["cycle_error_px"] >= 0


def test_each_distinct_image_is_embedded_once(server):
    # Fresh images (seeds no other test uses): nothing of them is cached yet.
    s, t1, t2 = png(60, 44, seed=101), png(44, 60, seed=102), png(52, 52, seed=103)
    misses = server.metric("spherecorr_feature_cache_misses_total")
    batches = server.metric("spherecorr_inference_batch_size_sum")
    pts = [[1, 2], [30, 20], [59, 43]]
    r = transfer(server, s, [t1, t1, s, t2, t1], points=pts)
    assert r.status == 200, r
    body = r.json()
    assert body["images_embedded"] == 3
    assert server.metric("spherecorr_feature_cache_misses_total") - misses == 3
    # One backbone pass of 3 images, not 6.
    assert server.metric("spherecorr_inference_batch_size_sum") - batches == 3
    assert body["targets"][0]["matches"] == body["targets"][1]["matches"] == body["targets"][4]["matches"]
    # Again: everything from the feature cache, nothing embedded, the same answer.
    again = transfer(server, s, [t1, t1, s, t2, t1], points=pts)
    assert again.status == 200 and again.json()["images_embedded"] == 0
    assert server.metric("spherecorr_feature_cache_misses_total") - misses == 3
    assert all(t["target"]["cached"] for t in again.json()["targets"])
    assert [t["matches"] for t in again.json()["targets"]] == [t["matches"] for t in body["targets"]]


def test_requests_are_counted_under_their_route(server, img_a, img_b):
    before = server.metric("spherecorr_http_requests_total", {"route": "/v1/transfer", "method": "POST", "code": "200"})
    assert transfer(server, img_a, [img_b]).status == 200
    after = server.metric("spherecorr_http_requests_total", {"route": "/v1/transfer", "method": "POST", "code": "200"})
    assert after - before == 1


def test_zero_targets_is_named(server, img_a):
    body = assert_problem(transfer(server, img_a, []), 422, "missing_part")
    assert body["pointer"] == "/target" and "'target'" in body["detail"], body


def test_max_targets_default_and_flag(server, make_server, img_a, img_b):
    assert server.request("GET", "/v1/info").json()["limits"]["max_targets"] == 16
    small = make_server("--max-targets", "2", env={"SPHERECORR_MAX_TARGETS": "9"})
    assert small.request("GET", "/v1/info").json()["limits"]["max_targets"] == 2  # the flag wins
    assert transfer(small, img_a, [img_b, img_a]).status == 200
    # One too many: the count and the first extra part named.
    body = assert_problem(transfer(small, img_a, [img_b, img_a, img_b]), 422, "too_many_targets")
    assert body["pointer"] == "/target/2" and "target[2]" in body["detail"] and body["max_targets"] == 2, body
    # Far too many (beyond the multipart parser's part limit of this route): the same problem.
    body = assert_problem(transfer(small, img_a, [img_b] * 12, params={"alpha": 0}), 422, "too_many_targets")
    assert body["max_targets"] == 2, body
    env_only = make_server(env={"SPHERECORR_MAX_TARGETS": "3"})
    assert env_only.request("GET", "/v1/info").json()["limits"]["max_targets"] == 3


def test_sixteen_targets_fit_the_default_limits(server, img_a, img_b):
    # 16 targets + source + points + params = 19 parts, over --max-parts (8): the route makes room for them.
    r = transfer(server, img_a, [img_a, img_b] * 8, params={"alpha": 0.2})
    assert r.status == 200, r
    assert len(r.json()["targets"]) == 16
    body = assert_problem(transfer(server, img_a, [img_b] * 17), 422, "too_many_targets")
    assert body["pointer"] == "/target/16", body


@pytest.mark.parametrize("bad,status,code,words", [
    (b"definitely not an image", 415, "unsupported_media_type", "not a JPEG or PNG"),
    (b"", 422, "invalid_image", "is empty"),
    (png(40, 30, seed=5)[:60], 422, "invalid_image", "truncated"),
    (png(5, 30, seed=5), 422, "image_too_small", "at least 14"),
])
def test_a_target_that_fails_is_named_and_nothing_is_answered(server, img_a, img_b, bad, status, code, words):
    r = transfer(server, img_a, [img_b, img_a, bad, img_b])
    body = assert_problem(r, status, code)
    assert "target[2]" in body["detail"] and words in body["detail"], body
    assert "targets" not in body


def test_a_bad_source_is_named(server, img_b):
    body = assert_problem(transfer(server, b"GIF89a....", [img_b]), 415, "unsupported_media_type")
    assert "'source'" in body["detail"], body


@pytest.mark.parametrize("params,pointer", [
    ({"refine": "soft-argmax", "window": 4}, "/params/window"),    # the test server's 56 px: a 4×4 grid
    ({"refine": "soft-argmax", "window": 40}, "/params/window"),
    ({"refine": "soft-argmax", "window": 2, "temperature": 0}, "/params/temperature"),
    ({"refine": "soft-argmax", "window": 2, "temperature": -1}, "/params/temperature"),
    ({"refine": "bicubic"}, "/params/refine"),
    ({"alpha": 2}, "/params/alpha"),
    ({"visibility_threshold": -3}, "/params/visibility_threshold"),
    ({"drop_invisible": 1}, "/params/drop_invisible"),
    ({"restrict_to_image": "no"}, "/params/restrict_to_image"),
    ({"min_score": 0.1}, "/params/min_score"),       # dense-mode parameters belong to /v1/match
    ({"max_matches": 3}, "/params/max_matches"),
])
def test_bad_params_are_named(server, img_a, img_b, params, pointer):
    body = assert_problem(transfer(server, img_a, [img_b], params=params), 422, "invalid_parameter")
    assert body["pointer"] == pointer, body


def test_bad_points_and_parts_are_named(server, img_a, img_b):
    body = assert_problem(transfer(server, img_a, [img_b], points=None), 422, "missing_part")
    assert body["pointer"] == "/points", body
    body = assert_problem(transfer(server, img_a, [img_b], points=[[1, 2], [80, 10]]), 422, "invalid_parameter")
    assert body["pointer"] == "/points/1" and "outside the source" in body["detail"], body
    body = assert_problem(transfer(server, img_a, [img_b], points=[[1, "x"]]), 422, "invalid_parameter")
    assert body["pointer"] == "/points/0", body
    r = post_multipart(server, "/v1/transfer", [image_part("source", img_a), image_part("target", img_b),
                                                json_part("points", PTS), image_part("extra", img_b)])
    assert assert_problem(r, 422, "invalid_parameter")["pointer"] == "/extra"
    r = post_multipart(server, "/v1/transfer", [image_part("target", img_b), json_part("points", PTS)])
    assert assert_problem(r, 422, "missing_part")["pointer"] == "/source"
    r = post_multipart(server, "/v1/transfer", [image_part("source", img_a), image_part("source", img_b),
                                                image_part("target", img_b), json_part("points", PTS)])
    assert assert_problem(r, 422, "invalid_parameter")["pointer"] == "/source"


def test_head_checks(server, img_a, img_b):
    assert_problem(transfer(server, img_a, [img_b], headers={"Accept": "image/png"}), 406, "not_acceptable")
    body = assert_problem(transfer(server, img_a, [img_b], query="?resolution=50"), 422, "invalid_parameter")
    assert body["pointer"] == "/resolution"
    body = assert_problem(transfer(server, img_a, [img_b], query="?box=1,2,3,4"), 422, "invalid_parameter")
    assert body["pointer"] == "/box"
    r = server.request("POST", "/v1/transfer", img_a, {"Content-Type": "image/png"})
    assert_problem(r, 415, "unsupported_media_type")


# ---------------------------------------------------------------- /v1/match dense field as .npy

def test_dense_field_npy_agrees_with_the_json_answers(server, img_a, img_b):
    r = match(server, img_a, img_b, points=None, headers={"Accept": "application/x-npy"})
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/x-npy"
    assert r.body[:6] == b"\x93NUMPY"
    field = parse_npy(r.body)
    assert field.dtype == np.float32 and field.shape == (4, 4, 3), field.shape  # 56 px: a 4×4 grid
    assert r.header("X-Tensor-Shape") == "4,4,3" and r.header("X-Patch-Grid") == "4,4"
    g = field.shape[1]
    # Dense JSON: every mutual match is its source patch's best target patch.
    dense = match(server, img_a, img_b, points=None, params={"min_score": -1}).json()
    assert dense["matches"]
    for m in dense["matches"]:
        row, col, score = field[m["source_patch"] // g, m["source_patch"] % g]
        assert (int(row), int(col)) == divmod(m["target_patch"], g), m
        assert score == pytest.approx(m["score"], abs=1e-5)
    # Points JSON: each point's target patch is its source patch's entry. (With restrict_to_image, a point on a
    # padding patch is answered from the nearest image patch, so compare without it: every patch is a query.)
    free = {"restrict_to_image": False}
    r = match(server, img_a, img_b, points=None, params=free, headers={"Accept": "application/x-npy"})
    field = parse_npy(r.body)
    pts = match(server, img_a, img_b, params=free).json()
    assert any(m["source_patch"] < g for m in pts["matches"])  # [1, 2] lies on the padding row of 80×60
    for m in pts["matches"]:
        row, col, score = field[m["source_patch"] // g, m["source_patch"] % g]
        assert (int(row), int(col)) == divmod(m["target_patch"], g), m
        assert score == pytest.approx(m["score"], abs=1e-5)
    # Rows and columns are patch indices; scores are blended cosines.
    assert np.all(field[..., :2] == np.round(field[..., :2])) and field[..., :2].min() >= 0 and field[..., :2].max() < g
    assert np.all(np.abs(field[..., 2]) <= 1 + 1e-5)


def test_dense_field_follows_alpha_and_restrict(server, img_a, img_b):
    def field(params):
        r = match(server, img_a, img_b, points=None, params=params, headers={"Accept": "application/x-npy"})
        assert r.status == 200, r
        return parse_npy(r.body)
    plain, dino = field(None), field({"alpha": 0})
    assert not np.array_equal(plain[..., 2], dino[..., 2])
    # img_b is 50×70: at 56 px, letterbox columns outside the image are never targets unless restrict is off.
    free = field({"alpha": 0, "restrict_to_image": False})
    assert free.shape == dino.shape and np.all(free[..., 2] >= dino[..., 2] - 1e-6)


def test_dense_field_with_points_is_not_acceptable(server, img_a, img_b):
    body = assert_problem(match(server, img_a, img_b, headers={"Accept": "application/x-npy"}), 406, "not_acceptable")
    assert "points" in body["detail"], body
