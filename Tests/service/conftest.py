"""Fixtures of the service integration suite: spherecorr-server (built beforehand: .build/debug/spherecorr-server or
$SPHERECORR_SERVER) on free loopback ports, the built-in demo model at --resolution 56, a temporary bundles
directory. Nothing is built here; every wait is bounded."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import PKI, ServerProcess, png, publish_bundle  # noqa: E402


@pytest.fixture(scope="session")
def bundles_dir():
    d = Path(tempfile.mkdtemp(prefix="spherecorr-bundles-"))
    publish_bundle(d, "0001-initial.safetensors", seed=1)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki():
    """A test CA and a leaf for 127.0.0.1 (openssl CLI), for the TLS servers."""
    d = Path(tempfile.mkdtemp(prefix="spherecorr-pki-"))
    yield PKI(d)
    shutil.rmtree(d, ignore_errors=True)


def _shared_server(bundles_dir, **kw):
    s = ServerProcess("--reload-interval", "0", bundles=bundles_dir, **kw)
    try:
        s.wait_ready()
        yield s
    finally:
        code = s.stop()
        if code not in (0, None):
            print(s.log_text()[-3000:], file=sys.stderr)


@pytest.fixture(scope="session")
def plain_server(bundles_dir):
    """The shared server: nothing publishes into its bundles directory, so its model version never changes."""
    yield from _shared_server(bundles_dir, name="main")


@pytest.fixture(scope="session")
def tls_server(bundles_dir, pki):
    """The shared server's twin with TLS on its main listener (the test CA's leaf)."""
    yield from _shared_server(bundles_dir, name="tls", tls=pki)


@pytest.fixture
def server(request):
    """The shared server over plain HTTP; a test marked `over_tls` (helpers) runs once over HTTP and once over TLS."""
    return request.getfixturevalue("tls_server" if getattr(request, "param", "http") == "https" else "plain_server")


@pytest.fixture
def fresh_bundles(tmp_path):
    d = tmp_path / "bundles"
    d.mkdir()
    publish_bundle(d, "0001-initial.safetensors", seed=1)
    return d


@pytest.fixture(scope="session")
def img_a() -> bytes:
    return png(80, 60, seed=1)


@pytest.fixture(scope="session")
def img_b() -> bytes:
    return png(50, 70, seed=2)


@pytest.fixture
def make_server():
    """Starts servers of the test's own configuration (ready before it returns); stops them all afterwards."""
    started = []

    def make(*args, **kw):
        # tls=pki (the session fixture) serves the main listener over TLS.
        s = ServerProcess(*args, **kw)
        started.append(s)
        s.wait_ready()
        return s

    yield make
    for s in started:
        s.stop(timeout=60)
