"""Issue #14 over loopback: sub-patch refinement (`params.refine`), and each bad parameter named in a 422."""
from __future__ import annotations

import pytest

from helpers import image_part, json_part, post_multipart, assert_problem

PTS = [[1, 2], [30, 40], [79.5, 59.5], [40, 35]]


def match(server, img_a, img_b, params=None, points=PTS, query=""):
    fields = [image_part("source", img_a), image_part("target", img_b), json_part("points", points)]
    if params is not None:
        fields.append(json_part("params", params))
    return post_multipart(server, "/v1/match" + query, fields)


def test_refine_none_is_the_default(server, img_a, img_b):
    plain = match(server, img_a, img_b)
    none = match(server, img_a, img_b, {"refine": "none"})
    assert plain.status == 200 and none.status == 200, (plain, none)
    assert plain.json()["refine"] == {"method": "none"}
    assert [m["target"] for m in plain.json()["matches"]] == [m["target"] for m in none.json()["matches"]]


def test_refine_soft_argmax_moves_points_within_the_window(server, img_a, img_b):
    plain = match(server, img_a, img_b).json()
    r = match(server, img_a, img_b, {"refine": "soft-argmax", "window": 2, "temperature": 0.05})
    assert r.status == 200, r
    body = r.json()
    assert body["refine"] == {"method": "soft-argmax", "window": 2, "temperature": 0.05}
    assert len(body["matches"]) == len(PTS)
    w, h = body["target"]["width"], body["target"]["height"]
    # One patch is 14 letterbox pixels; the target is scaled by resolution / its longer side.
    patch = 14 / (body["resolution"] / max(w, h))
    moved = 0
    for p, q in zip(plain["matches"], body["matches"]):
        x, y = q["target"]
        assert 0 <= x < w and 0 <= y < h
        assert q["score"] == p["score"] and q["target_patch"] == p["target_patch"]
        dx, dy = abs(x - p["target"][0]), abs(y - p["target"][1])
        assert dx <= 2 * patch + 1e-6 and dy <= 2 * patch + 1e-6
        moved += (dx > 1e-9 or dy > 1e-9)
    assert moved >= 1
    defaults = match(server, img_a, img_b, {"refine": "soft-argmax"}, query="?resolution=168").json()
    assert defaults["refine"] == {"method": "soft-argmax", "window": 5, "temperature": 0.02}


@pytest.mark.parametrize("params,field", [
    ({"refine": "bilinear"}, "refine"),
    ({"refine": 1}, "refine"),
    ({"refine": "soft-argmax", "temperature": 0}, "temperature"),
    ({"refine": "soft-argmax", "temperature": -0.5}, "temperature"),
    ({"refine": "soft-argmax", "temperature": "hot"}, "temperature"),
    ({"refine": "soft-argmax", "window": 0}, "window"),
    ({"refine": "soft-argmax", "window": 2.5}, "window"),
    ({"refine": "soft-argmax"}, "window"),  # the test server's 56 px: a 4×4 patch grid, the default 5 is too large
    ({"refine": "soft-argmax", "window": 32}, "window"),
    ({"window": 3}, "window"),
    ({"temperature": 0.1}, "temperature"),
])
def test_bad_refinement_is_named(server, img_a, img_b, params, field):
    body = assert_problem(match(server, img_a, img_b, params), 422, "invalid_parameter")
    assert body["pointer"] == f"/params/{field}", body
    assert field in body["detail"], body


def test_window_is_checked_against_the_requested_resolution(server, img_a, img_b):
    ok = match(server, img_a, img_b, {"refine": "soft-argmax", "window": 5}, query="?resolution=84")
    assert ok.status == 200, ok
    bad = match(server, img_a, img_b, {"refine": "soft-argmax", "window": 6}, query="?resolution=84")
    body = assert_problem(bad, 422, "invalid_parameter")
    assert body["pointer"] == "/params/window" and "6×6" in body["detail"], body


# ---------------------------------------------------------------- visibility (forward–backward check)

def test_every_point_match_carries_visibility(server, img_a, img_b):
    body = match(server, img_a, img_b).json()
    w, h = body["source"]["width"], body["source"]["height"]
    for m in body["matches"]:
        assert isinstance(m["visible"], bool) and m["cycle_error_px"] >= 0
        # The default threshold: 0.1 × the source's longer side.
        assert m["visible"] == (m["cycle_error_px"] <= 0.1 * max(w, h))
    dense = post_multipart(server, "/v1/match", [image_part("source", img_a), image_part("target", img_b),
                                                 json_part("params", {"min_score": -1})]).json()
    assert all("visible" not in m for m in dense["matches"])


def test_an_image_matched_to_itself_is_visible(server, img_a):
    body = match(server, img_a, img_a).json()
    for m in body["matches"]:
        # The cycle starts and ends at patch centres: a consistent one is exactly 0 at any patch size.
        assert m["visible"] is True and m["cycle_error_px"] == 0, m


def test_threshold_and_drop_invisible(server, img_a, img_b):
    strict = match(server, img_a, img_b, {"visibility_threshold": 0}).json()["matches"]
    assert all(m["visible"] == (m["cycle_error_px"] == 0) for m in strict)
    assert any(not m["visible"] for m in strict), strict  # random images: some cycle is inconsistent
    loose = match(server, img_a, img_b, {"visibility_threshold": 1e6}).json()["matches"]
    assert all(m["visible"] for m in loose)
    kept = match(server, img_a, img_b, {"visibility_threshold": 0, "drop_invisible": True}).json()["matches"]
    assert kept == [m for m in strict if m["visible"]]
    everything = match(server, img_a, img_b, {"visibility_threshold": 1e6, "drop_invisible": True}).json()["matches"]
    assert len(everything) == len(PTS)


@pytest.mark.parametrize("params,field", [
    ({"visibility_threshold": -1}, "visibility_threshold"),
    ({"visibility_threshold": "far"}, "visibility_threshold"),
    ({"drop_invisible": "yes"}, "drop_invisible"),
])
def test_bad_visibility_params_are_named(server, img_a, img_b, params, field):
    body = assert_problem(match(server, img_a, img_b, params), 422, "invalid_parameter")
    assert body["pointer"] == f"/params/{field}", body
