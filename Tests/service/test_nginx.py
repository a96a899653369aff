"""Real nginx (Debian nginx-light) in front of the server with deploy/nginx/spherecorr.conf, ports rewritten for the
test, on loopback: matching through the proxy, the service's problem+json 413 reaching the client, request ids."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import REPO, ServerProcess, free_port, image_part, json_part, multipart, png, request

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx not installed (Debian nginx-light)")

SERVER_MAX_BODY = 2 << 20  # the server's body limit here, far below the site file's client_max_body_size


def site_config(server_port: int, nginx_port: int, logs: Path) -> str:
    text = (REPO / "deploy/nginx/spherecorr.conf").read_text()
    text, n1 = re.subn(r"server 127\.0\.0\.1:8080", f"server 127.0.0.1:{server_port}", text)
    text, n2 = re.subn(r"listen 80;", f"listen 127.0.0.1:{nginx_port};", text)
    text = text.replace("/var/log/nginx/", f"{logs}/")
    assert n1 == 1 and n2 == 1, "deploy/nginx/spherecorr.conf changed shape: update the test's templating"
    return text


@pytest.fixture(scope="module")
def proxied():
    server = ServerProcess("--max-body-bytes", str(SERVER_MAX_BODY), "--reload-interval", "0", name="nginx")
    prefix = Path(tempfile.mkdtemp(prefix="spherecorr-nginx-"))
    os.chmod(prefix, 0o755)  # workers (user nobody when started as root) create their temp files here
    nginx_port = free_port()
    proc = None
    try:
        server.wait_ready()
        (prefix / "site.conf").write_text(site_config(server.port, nginx_port, prefix))
        (prefix / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
""")
        args = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        check = subprocess.run(args + ["-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                if request("127.0.0.1", nginx_port, "GET", "/livez", timeout=5).status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (prefix / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.1)
        yield server, nginx_port, prefix
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
        shutil.rmtree(prefix, ignore_errors=True)


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
