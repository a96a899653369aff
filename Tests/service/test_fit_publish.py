"""Train → publish → hot reload: a running `spherecorr-server --bundles DIR` picks up the bundles that
`spherecorr-train fit` publishes into DIR (atomic temp + rename), with zero failed requests meanwhile.
Uses the tiny parity backbone (D = 128) and the synthetic SPair-format dev set at 112² so the run takes seconds."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, SYNTH, ServerProcess, image_part, png, post_multipart, train_binary

BACKBONE = REPO / "Tests/Fixtures/dinov2/plain.safetensors"


def fit(out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(train_binary()), "fit", "--data", str(SYNTH), "--backbone", str(BACKBONE), "--out", str(out),
           "--cache", str(cache), "--resolution", "112", "--replications", "1", "--batch-size", "16", "--views", "1",
           "--save-every", "1", "--threads", "1", "--quiet", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERECORR_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.skipif(not SYNTH.exists(), reason="synthetic dataset not found beside the repository")
def test_server_hot_reloads_what_fit_publishes(tmp_path):
    out, cache = tmp_path / "bundles", tmp_path / "cache"
    first = fit(out, cache, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    assert (out / "sphere-e000001.safetensors").exists()

    s = ServerProcess("--reload-interval", "0.2", "--backbone", str(BACKBONE), bundles=out, resolution=56, name="fit")
    try:
        s.wait_ready()
        stop = threading.Event()
        replies, errors = [], []
        img = png(90, 70, seed=5)

        def client():
            while not stop.is_set():
                try:
                    replies.append(post_multipart(s, "/v1/sphere-map", [image_part("image", img)], timeout=60))
                except Exception as e:  # noqa: BLE001 - asserted below
                    errors.append(e)

        t = threading.Thread(target=client)
        t.start()
        try:
            more = fit(out, cache, "--epochs", "3", "--resume")
            assert more.returncode == 0, more.stderr
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                info = s.request("GET", "/v1/info").json()
                if "sphere-e000003" in str(info):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"the server did not load sphere-e000003: {s.request('GET', '/v1/info').text()}")
            n = len(replies)
            deadline = time.monotonic() + 60
            while len(replies) < n + 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            t.join(timeout=120)
        assert errors == []
        bad = [r for r in replies if r.status != 200]
        assert bad == [], bad[:3]
        versions = {r.header("X-Model-Version") for r in replies}
        assert any("sphere-e000001" in v for v in versions) and any("sphere-e000003" in v for v in versions), versions
        assert "bundle rejected" not in s.log_text()
    finally:
        s.stop()
