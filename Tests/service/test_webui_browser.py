"""The demo page (issue #15) in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromedriver (no browser download). Directly, through nginx with deploy/nginx/spherecorr.conf, and through nginx
under a path prefix. Two real JPEGs, three clicked points whose markers hold exactly what /v1/match answers for the
same points, alpha switches that re-match the same points, the keyboard, sphere maps, the dense drawing, and a 413
shown in the page. Any console error, failed request or unexpected HTTP error fails the test. Screenshots are saved
in .build/artifacts/ui/ (FRONT-STEP.png)."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from helpers import REPO, NginxFront, ServerProcess, fixture_image, image_part, json_part, post_multipart

webdriver = pytest.importorskip("selenium.webdriver", reason="pip selenium (Tests/service/requirements.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = REPO / ".build/artifacts/ui"
SOURCE_JPEG = "jpeg_420_97x61_optimized.jpg"
TARGET_JPEG = "jpeg_422_50x71.jpg"
LIMIT = 32 << 10  # the server's --max-body-bytes: both JPEGs fit (~7 KiB), the padded one does not
CLICKS = [(0.22, 0.30), (0.55, 0.62), (0.83, 0.25)]  # fractions of the displayed source image
PREFIX = "/spherecorr/"


@pytest.fixture(scope="module")
def ui_server():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing: scripts/install-deps installs Debian's chromium and chromium-driver")
    s = ServerProcess("--max-body-bytes", str(LIMIT), "--reload-interval", "0", name="ui")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module", params=["direct", "nginx", "nginx-prefix"])
def front(request, ui_server):
    """(name, base URL of the page) for the page served directly, through nginx, and through nginx under a prefix."""
    if request.param == "direct":
        yield request.param, ui_server.base + "/"
        return
    nginx = NginxFront(ui_server.port, prefix=PREFIX if request.param == "nginx-prefix" else None)
    try:
        yield request.param, nginx.base + (PREFIX if request.param == "nginx-prefix" else "/")
    finally:
        nginx.stop()


class Browser:
    """A headless chromium with its console and network (CDP performance) logs collected."""

    def __init__(self):
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1100",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions",
                  # Nothing leaves the machine: every non-loopback request would go to a closed local port.
                  "--proxy-server=127.0.0.1:9"]:
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
        self.console: list[dict] = []
        self.requests: dict[str, dict] = {}  # CDP requestId → {url, method, status, failed, finished, order}

    def poll_logs(self) -> None:
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            m = json.loads(entry["message"])["message"]
            p = m.get("params", {})
            rid = p.get("requestId")
            if m["method"] == "Network.requestWillBeSent":
                req = p["request"]
                self.requests[rid] = {"url": req["url"], "method": req["method"], "status": None, "failed": None,
                                      "finished": False, "order": len(self.requests)}
            elif rid in self.requests:
                r = self.requests[rid]
                if m["method"] == "Network.responseReceived":
                    r["status"] = p["response"]["status"]
                elif m["method"] == "Network.loadingFinished":
                    r["finished"] = True
                elif m["method"] == "Network.loadingFailed":
                    r["failed"] = p.get("errorText", "failed")

    def calls(self, path: str, method: str = "POST") -> list[tuple[str, dict]]:
        """The requests to `path` (relative to the page), oldest first."""
        self.poll_logs()
        found = [(rid, r) for rid, r in self.requests.items() if r["url"].split("?")[0].endswith("/" + path) and r["method"] == method]
        return sorted(found, key=lambda x: x[1]["order"])

    def body(self, rid: str) -> bytes:
        b = self.driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": rid})
        return base64.b64decode(b["body"]) if b.get("base64Encoded") else b["body"].encode()

    def sent_fields(self, rid: str) -> dict[str, str]:
        """The multipart fields of a request as the browser sent them, files left out (CDP gives their bytes empty)."""
        data = self.driver.execute_cdp_cmd("Network.getRequestPostData", {"requestId": rid})["postData"]
        return {m.group(1): m.group(2) for m in re.finditer(r'Content-Disposition: form-data; name="([^"]+)"\r\n\r\n(.*?)\r\n--', data, re.S)}

    def testid(self, name: str):
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')

    def all(self, name: str):
        return self.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{name}"]')

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def browser():
    b = Browser()
    try:
        yield b
    finally:
        b.driver.quit()


def wait(what: str, predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def idle(b: Browser, markers: int):
    """Waits until the page has no /v1/match in flight and shows `markers` match markers."""
    wait(f"{markers} match markers", lambda: b.js("return document.getElementById('pair').getAttribute('aria-busy')") == "false"
         and len(b.all("match-marker")) == markers)


def api_match(server: ServerProcess, points, alpha: float) -> dict:
    r = post_multipart(server, "/v1/match", [image_part("source", fixture_image(SOURCE_JPEG), "source.jpg"),
                                             image_part("target", fixture_image(TARGET_JPEG), "target.jpg"),
                                             json_part("points", points), json_part("params", {"alpha": alpha})])
    assert r.status == 200, r
    return r.json()


def markers(b: Browser) -> list[tuple[float, float, float]]:
    return [(float(m.get_attribute("data-x")), float(m.get_attribute("data-y")), float(m.get_attribute("data-score")))
            for m in b.all("match-marker")]


def source_points(b: Browser) -> list[list[float]]:
    return [[float(m.get_attribute("data-x")), float(m.get_attribute("data-y"))] for m in b.all("source-point")]


def check_page_answers_like_the_api(b: Browser, server: ServerProcess, alpha: float) -> dict:
    """The markers equal /v1/match's answer to the page's own request, and to our own request with the same points."""
    rid, req = b.calls("v1/match")[-1]
    assert req["status"] == 200 and req["failed"] is None, req
    seen = json.loads(b.body(rid))
    points = source_points(b)
    sent = b.sent_fields(rid)  # the request as it went out: the page's points and alpha
    assert json.loads(sent["points"]) == points and json.loads(sent["params"]) == {"alpha": alpha}, sent
    assert seen["alpha"] == alpha and [m["source"] for m in seen["matches"]] == points, (seen, points)
    ours = api_match(server, points, alpha)
    want = [(m["target"][0], m["target"][1], m["score"]) for m in ours["matches"]]
    assert markers(b) == want, f"page markers {markers(b)} != /v1/match {want}"
    assert [(m["target"][0], m["target"][1], m["score"]) for m in seen["matches"]] == want
    hollow = [m.get_attribute("data-visible") == "false" for m in b.all("match-marker")]
    assert hollow == [m.get("visible") is False for m in ours["matches"]]
    return req


def test_demo_page_in_chromium(front, browser, ui_server, tmp_path):
    name, base = front
    b, d = browser, browser.driver
    src, trg, big = tmp_path / "source.jpg", tmp_path / "target.jpg", tmp_path / "too-large.jpg"
    src.write_bytes(fixture_image(SOURCE_JPEG))
    trg.write_bytes(fixture_image(TARGET_JPEG))
    # A real JPEG padded after its end-of-image marker: the browser shows it, the request is over the server's limit.
    big.write_bytes(fixture_image(TARGET_JPEG) + b"\0" * (LIMIT + 4096))

    d.get(base)
    assert d.current_url == base
    banner = wait("the demo banner", lambda: b.testid("demo-banner").is_displayed() and b.testid("demo-banner"))
    assert "random" in banner.text and "meaningless" in banner.text, banner.text

    # Two real JPEGs, shown both.
    b.testid("source-input").send_keys(str(src))
    b.testid("target-input").send_keys(str(trg))
    for role, (w, h) in (("source", (97, 61)), ("target", (50, 71))):
        wait(f"the {role} image", lambda: b.js(f"const i = document.getElementById('{role}-img'); "
                                               "return !i.hidden && i.complete && i.naturalWidth > 0"))
        assert b.js(f"return [document.getElementById('{role}-img').naturalWidth, "
                    f"document.getElementById('{role}-img').naturalHeight]") == [w, h]

    # Three clicks on the source: the page sends the clicked image pixels, and draws what /v1/match answers.
    img = d.find_element(By.ID, "source-img")
    rect = b.js("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height]", img)
    expected = []
    for fx, fy in CLICKS:
        dx, dy = round(fx * rect[2] - rect[2] / 2), round(fy * rect[3] - rect[3] / 2)
        ActionChains(d).move_to_element_with_offset(img, dx, dy).click().perform()
        expected.append(((rect[2] / 2 + dx) * 97 / rect[2], (rect[3] / 2 + dy) * 61 / rect[3]))
    idle(b, 3)
    points = source_points(b)
    one_css_px = 97 / rect[2] + 0.1
    for (x, y), (ex, ey) in zip(points, expected):
        assert abs(x - ex) <= one_css_px and abs(y - ey) <= one_css_px, (points, expected)
    check_page_answers_like_the_api(b, ui_server, 0.2)
    b.screenshot(f"{name}-1-three-points")

    # alpha: each switch re-matches the same points, and the request carries the new value.
    for value in ("1", "0"):
        before = len(b.calls("v1/match"))
        Select(b.testid("alpha-input")).select_by_value(value)
        wait(f"alpha {value} answered", lambda: b.testid("target-view").get_attribute("data-alpha") == value)
        idle(b, 3)
        calls = b.calls("v1/match")
        assert len(calls) > before, "changing alpha sent no request"
        check_page_answers_like_the_api(b, ui_server, float(value))  # the request carried the new alpha
        assert source_points(b) == points, "the points were not kept"
        b.screenshot(f"{name}-2-alpha-{value}")
    Select(b.testid("alpha-input")).select_by_value("0.2")
    wait("alpha 0.2 answered", lambda: b.testid("target-view").get_attribute("data-alpha") == "0.2")
    idle(b, 3)

    # The keyboard: focus the source, move the cross, Enter places a point, Backspace removes it.
    view = b.testid("source-view")
    d.execute_script("arguments[0].focus()", view)
    view.send_keys(Keys.ARROW_LEFT, Keys.ARROW_UP, Keys.ENTER)
    idle(b, 4)
    assert len(source_points(b)) == 4
    check_page_answers_like_the_api(b, ui_server, 0.2)
    view.send_keys(Keys.BACKSPACE)
    idle(b, 3)
    assert source_points(b) == points

    # Both sphere maps in place of the photographs, then back.
    d.find_element(By.ID, "sphere-toggle").click()
    wait("two sphere maps", lambda: len([r for _, r in b.calls("v1/sphere-map") if r["status"] == 200 and r["finished"]]) == 2)
    wait("sphere maps shown", lambda: b.js("return ['source-img', 'target-img'].every(id => "
                                           "{ const i = document.getElementById(id); return i.complete && i.naturalWidth > 0 && "
                                           "i.src.startsWith('blob:'); })"))
    b.screenshot(f"{name}-3-sphere-maps")
    d.find_element(By.ID, "sphere-toggle").click()

    # The dense drawing (/v1/match as PNG).
    d.find_element(By.ID, "dense-button").click()
    wait("the dense drawing", lambda: d.find_element(By.ID, "dense").is_displayed()
         and b.js("const i = document.getElementById('dense-img'); return i.complete && i.naturalWidth > 0"))
    dense = [r for _, r in b.calls("v1/match") if r["status"] == 200]
    assert dense, "no /v1/match answered 200"
    b.screenshot(f"{name}-4-dense")

    # An image over the size limit: the server's 413 problem appears in the page, as the server words it.
    b.testid("target-input").send_keys(str(big))
    error = wait("the error element", lambda: b.testid("error").is_displayed() and b.testid("error"))
    rid, req = b.calls("v1/match")[-1]
    assert req["status"] == 413, req
    problem = json.loads(b.body(rid))
    assert problem["code"] == "payload_too_large" and problem["limit_bytes"] == LIMIT
    assert problem["detail"] in error.text and "413" in error.text and problem["title"] in error.text, error.text
    idle(b, 0)
    b.screenshot(f"{name}-5-error-413")

    # Nothing failed but the 413 we asked for: no console error, no failed or refused request, all relative.
    b.poll_logs()
    problems = [r for r in b.requests.values() if r["failed"] or (r["status"] or 0) >= 400]
    assert [(r["url"], r["status"]) for r in problems] == [(base + "v1/match", 413)], problems
    errors = [e for e in b.console if e["level"] == "SEVERE"]
    unexpected = [e for e in errors if not (f"{base}v1/match" in e["message"] and "413" in e["message"])]
    assert not unexpected, unexpected
    assert all(r["url"].startswith(base) or r["url"].startswith(("blob:", "data:")) for r in b.requests.values()), \
        sorted({r["url"] for r in b.requests.values()})
