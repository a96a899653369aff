"""scripts/fetch-weights against a stand-in hub on loopback (the real one is out of reach here): downloads,
records SHA256SUMS, verifies on the next run, refuses changed files and a hub checksum mismatch."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from helpers import REPO

SCRIPT = REPO / "scripts/fetch-weights"


class Hub(http.server.SimpleHTTPRequestHandler):
    linked_etag: str | None = None

    def log_message(self, *args):  # quiet
        pass

    def end_headers(self):
        if self.path.split("?")[0].endswith("model.safetensors") and Hub.linked_etag:
            self.send_header("X-Linked-Etag", f'"{Hub.linked_etag}"')
        super().end_headers()


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub"
    files = root / "facebook/dinov2-small/resolve/main"
    files.mkdir(parents=True)
    (files / "config.json").write_text(json.dumps({"model_type": "dinov2", "hidden_size": 384}))
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    (files / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    Hub.linked_etag = hashlib.sha256((files / "model.safetensors").read_bytes()).hexdigest()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Hub, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def run(hub, dest, variant="small"):
    env = dict(os.environ, HF_ENDPOINT=hub)
    return subprocess.run(["bash", str(SCRIPT), variant, str(dest)], capture_output=True, text=True, timeout=120, env=env)


def test_download_record_verify(hub, tmp_path):
    dest = tmp_path / "w"
    p = run(hub, dest)
    assert p.returncode == 0, p.stderr
    assert "matches the hub's SHA-256" in p.stderr
    sums = (dest / "SHA256SUMS").read_text()
    assert "config.json" in sums and "model.safetensors" in sums
    p = run(hub, dest)  # second run: verified, not downloaded
    assert p.returncode == 0 and "verifying" in p.stderr
    with open(dest / "config.json", "a") as f:
        f.write(" ")
    p = run(hub, dest)
    assert p.returncode == 1 and "MISMATCH" in p.stderr


def test_hub_checksum_mismatch_refused(hub, tmp_path):
    Hub.linked_etag = "0" * 64
    p = run(hub, tmp_path / "w")
    assert p.returncode == 1 and "differs from the hub" in p.stderr
    assert not (tmp_path / "w/model.safetensors").exists()


def test_unknown_variant(tmp_path):
    p = subprocess.run(["bash", str(SCRIPT), "tiny", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "unknown variant" in p.stderr
