"""The server takes a DINOv1 backbone like any other (issue #12, Also): the tiny facebookresearch/dino fixture in the
Hugging Face ViTModel layout, its family inferred from the files, with the reference extractor's patch stride.
/v1/info names the family; features, sphere maps and matches come on the backbone's own patch grid."""
from __future__ import annotations

import shutil

import pytest

from helpers import REPO, assert_problem, image_part, json_part, png, post_multipart

V1 = REPO / "Tests/Fixtures/dino_v1/hf-p8"
BUNDLE = REPO / "Tests/Fixtures/sphere/bundle.safetensors"  # f_S for D = 128, as the fixture backbone


@pytest.fixture(scope="module")
def v1_server(tmp_path_factory):
    from helpers import ServerProcess

    bundles = tmp_path_factory.mktemp("v1-bundles")
    shutil.copyfile(BUNDLE, bundles / "bundle.safetensors")
    # p = 8, stride 4 at R = 64: a 15×15 grid.
    s = ServerProcess("--backbone", str(V1), "--patch-stride", "4", "--max-resolution", "128", bundles=bundles,
                      resolution=64, name="dinov1")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop(timeout=60)


def test_info_names_the_family_and_the_grid(v1_server):
    info = v1_server.request("GET", "/v1/info").json()
    b = info["backbone"]
    assert b["family"] == "dinov1" and b["patch_size"] == 8 and b["patch_stride"] == 4, b
    assert b["name"] == "dino-custom(D=128,L=2,p=8)-stride4" and b["variant"] is None and b["embed_dim"] == 128, b
    assert b["features"] == "keys of block 1", b


def test_features_sphere_and_match_on_the_backbone_grid(v1_server):
    img = png(80, 60, seed=3)
    r = post_multipart(v1_server, "/v1/features", [image_part("image", img)], {"Accept": "application/octet-stream"})
    assert r.status == 200, r
    assert r.header("X-Tensor-Shape") == "15,15,128" and r.header("X-Patch-Grid") == "15,15", r
    assert len(r.body) == 15 * 15 * 128 * 4

    s = post_multipart(v1_server, "/v1/sphere-map", [image_part("image", img)])
    assert s.status == 200, s

    m = post_multipart(v1_server, "/v1/match", [image_part("source", img), image_part("target", png(64, 64, seed=4)),
                                               json_part("points", [[10, 10], [70, 50]])])
    assert m.status == 200, m
    body = m.json()
    assert body["target"]["grid"] == [15, 15] and body["target"]["patch_size"] == 8 and body["target"]["patch_stride"] == 4, body
    matches = body["matches"]
    assert len(matches) == 2
    for q in matches:
        x, y = q["target"]
        assert 0 <= x < 64 and 0 <= y < 64


def test_a_resolution_off_the_patch_grid_is_named(v1_server):
    r = post_multipart(v1_server, "/v1/features?resolution=60", [image_part("image", png(32, 32))])
    assert_problem(r, 422)
    assert "multiple of 8" in r.json()["detail"], r.json()


def test_official_pth_checkpoint_serves_the_same_features(v1_server, make_server):
    """--backbone takes a torch.save checkpoint directly (a DINOv1 'teacher' training checkpoint with module./backbone.
    prefixes, tools/parity/make_pth_fixtures.py): the same weights as hf-p8, so the same bytes out."""
    pth = REPO / "Tests/Fixtures/pth/dino_v1-p8-teacher.pth"
    s = make_server("--backbone", str(pth), "--patch-stride", "4", "--max-resolution", "128", resolution=64, name="dinov1-pth")
    b = s.request("GET", "/v1/info").json()["backbone"]
    assert b["family"] == "dinov1" and b["name"] == "dino-custom(D=128,L=2,p=8)-stride4", b
    img = png(80, 60, seed=5)
    got = post_multipart(s, "/v1/features", [image_part("image", img)], {"Accept": "application/octet-stream"})
    want = post_multipart(v1_server, "/v1/features", [image_part("image", img)], {"Accept": "application/octet-stream"})
    assert got.status == 200 and want.status == 200, (got, want)
    assert got.header("X-Patch-Grid") == "15,15" and got.body == want.body
