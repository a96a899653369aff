"""Real nginx (Debian nginx-light) in front of the server with deploy/nginx/spherecorr.conf, ports rewritten for the
test, on loopback: matching through the proxy, the service's problem+json 413 reaching the client, request ids."""
from __future__ import annotations

import json
import re
import time

import pytest

from helpers import NGINX, NginxFront, ServerProcess, image_part, json_part, multipart, png, request

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx not installed (Debian nginx-light)")

SERVER_MAX_BODY = 2 << 20  # the server's body limit here, far below the site file's client_max_body_size


@pytest.fixture(scope="module")
def proxied():
    server = ServerProcess("--max-body-bytes", str(SERVER_MAX_BODY), "--reload-interval", "0", name="nginx")
    front = None
    try:
        server.wait_ready()
        front = NginxFront(server.port)
        yield server, front.port, front.dir
    finally:
        if front is not None:
            front.stop()
        server.stop()


def via(proxied, method, path, body=None, headers=None):
    _, port, _ = proxied
    return request("127.0.0.1", port, method, path, body, headers, timeout=120)


def test_match_through_nginx(proxied, img_a, img_b):
    body, ctype = multipart([image_part("source", img_a), image_part("target", img_b), json_part("points", [[3, 3], [70, 50]])])
    r = via(proxied, "POST", "/v1/match", body, {"Content-Type": ctype})
    assert r.status == 200, r
    assert len(r.json()["matches"]) == 2
    assert r.header("X-Model-Version") and r.header("Server-Timing")


def test_service_problem_413_reaches_the_client(proxied):
    server, _, _ = proxied
    big = png(20, 20, seed=3) + b"\0" * (SERVER_MAX_BODY + 512 * 1024)
    body, ctype = multipart([image_part("image", big)])
    assert len(body) < 40 << 20  # below nginx's client_max_body_size: nginx passes it on
    r = via(proxied, "POST", "/v1/features", body, {"Content-Type": ctype})
    assert r.status == 413, r
    assert r.header("Content-Type") == "application/problem+json", r  # the service's, not nginx's HTML
    problem = r.json()
    assert problem["code"] == "payload_too_large" and problem["limit_bytes"] == SERVER_MAX_BODY
    assert r.header("X-Request-Id") == problem["request_id"]
    assert server.request("GET", "/livez").status == 200


def test_request_id_forwarded_and_echoed(proxied):
    server, _, prefix = proxied
    r = via(proxied, "GET", "/v1/info", headers={"X-Request-Id": "client-chosen-42"})
    assert r.status == 200 and r.header("X-Request-Id") == "client-chosen-42"
    r2 = via(proxied, "GET", "/v1/info")
    generated = r2.header("X-Request-Id")
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated  # nginx's $request_id
    deadline = time.monotonic() + 10
    while True:  # the server saw both ids (its JSON access log)
        ids = set()
        for line in server.log_text().splitlines():
            m = re.search(r'"request_id":"([^"]+)"', line)
            if m:
                ids.add(m.group(1))
        if {"client-chosen-42", generated} <= ids:
            break
        assert time.monotonic() < deadline, "request ids not in the server's access log"
        time.sleep(0.1)
    # nginx writes its access-log line after the response is sent: poll for it too.
    log = prefix / "spherecorr.access.log"
    while f"rid={generated}" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"rid={generated} not in nginx's access log"
        time.sleep(0.05)


def test_upstream_keepalive_reuses_connections(proxied):
    server, _, _ = proxied
    before = server.metric("spherecorr_http_connections_total")
    for _ in range(10):
        assert via(proxied, "GET", "/livez").status == 200
    assert server.metric("spherecorr_http_connections_total") - before <= 3
