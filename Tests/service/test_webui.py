"""The demo page over HTTP (issue #15): served bytes equal web/, the embedded copy is generated from web/, strict
CSP, strong ETag and 304 on If-None-Match, relative URLs only, --no-ui / SPHERECORR_UI turn it off."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from helpers import REPO, ServerProcess, server_binary

ASSETS = {"/": ("web/index.html", "text/html; charset=utf-8"),
          "/ui.js": ("web/ui.js", "text/javascript; charset=utf-8"),
          "/ui.css": ("web/ui.css", "text/css; charset=utf-8")}


def test_embedded_page_is_generated_from_web():
    """Sources/Service/WebAssets.swift is scripts/gen-web-swift's output for the files in web/ as they are now."""
    swift = (REPO / "Sources/Service/WebAssets.swift").read_text()
    for name, path in (("webIndexHTML", "web/index.html"), ("webScript", "web/ui.js"), ("webStyleSheet", "web/ui.css")):
        text = (REPO / path).read_text()
        assert f'package let {name} = ##"""\n{text}\n"""##' in swift, f"run scripts/gen-web-swift after editing {path}"


@pytest.mark.parametrize("path", ASSETS)
def test_served_bytes_equal_the_files(server, path):
    file, ctype = ASSETS[path]
    r = server.request("GET", path)
    assert r.status == 200, r
    assert r.body == (REPO / file).read_bytes()
    assert r.header("Content-Type") == ctype
    assert r.header("Cache-Control") == "no-cache"
    assert r.header("X-Content-Type-Options") == "nosniff"
    csp = r.header("Content-Security-Policy")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    head = server.request("HEAD", path)
    assert head.status == 200 and head.body == b"" and head.header("Content-Length") == str(len(r.body))


@pytest.mark.parametrize("path", ASSETS)
def test_etag_revalidation(server, path):
    r = server.request("GET", path)
    etag = r.header("ETag")
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag), etag  # strong
    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        nm = server.request("GET", path, headers={"If-None-Match": inm})
        assert nm.status == 304, (inm, nm)
        assert nm.body == b"" and nm.header("ETag") == etag and nm.header("Cache-Control") == "no-cache"
    for inm in ('"other"', etag[:-1], f"{etag}, bogus"):
        assert server.request("GET", path, headers={"If-None-Match": inm}).status == 200, inm
    assert len({server.request("GET", p).header("ETag") for p in ASSETS}) == len(ASSETS)


def test_page_uses_relative_urls_and_no_inline_code():
    html = (REPO / "web/index.html").read_text()
    js = (REPO / "web/ui.js").read_text()
    urls = re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r'call\("([^"]+)"', js)
    assert {"ui.js", "ui.css", "v1/info", "v1/match", "v1/sphere-map"} <= set(urls), urls
    for u in urls:
        assert not u.startswith(("/", "http:", "https:", "//")), f"{u}: absolute URLs break under a path prefix"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script (the CSP forbids it)"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html), "inline style or event handler (the CSP forbids them)"
    for hook in ("source-input", "target-input", "source-view", "target-view", "alpha-input", "error", "demo-banner"):
        assert f'data-testid="{hook}"' in html, hook
    assert 'testid = "match-marker"' in js


def test_no_ui_flag_and_variable(make_server):
    for s in (make_server("--no-ui", name="no-ui"), make_server(env={"SPHERECORR_UI": "false"}, name="ui-env-off")):
        for path in ASSETS:
            r = s.request("GET", path)
            assert r.status == 404 and r.header("Content-Type") == "application/problem+json", (path, r)
        assert s.request("GET", "/livez").status == 200
    # The flag wins over the variable.
    s = make_server("--ui", env={"SPHERECORR_UI": "0"}, name="ui-flag-wins")
    assert s.request("GET", "/").status == 200


def test_bad_ui_variable_is_named():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERECORR_")} | {"SPHERECORR_UI": "maybe"}
    p = subprocess.run([str(server_binary()), "--port", "0", "--admin-port", "0"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "SPHERECORR_UI='maybe'" in p.stderr and "boolean" in p.stderr, p.stderr
