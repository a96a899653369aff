"""/metrics (SERVICE-NOTES §2.8): promtool lint, Prometheus naming, histograms in seconds, the real process start."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from helpers import image_part, png, post_multipart


def scrape(server):
    r = server.request("GET", "/metrics")
    assert r.status == 200
    return r


def test_content_type_and_non_empty_before_traffic(server):
    r = scrape(server)
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    for name in ("spherecorr_build_info", "spherecorr_model_info", "spherecorr_model_reloads_total",
                 "spherecorr_requests_rejected_total", "spherecorr_inference_queue_depth",
                 "spherecorr_inference_inflight", "spherecorr_feature_cache_hits_total",
                 "spherecorr_feature_cache_misses_total", "process_start_time_seconds",
                 "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
        assert re.search(rf"^{name}(\{{|\s)", r.text, re.M), name
    assert 'spherecorr_model_reloads_total{result="failure"}' in r.text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_check_metrics(server, img_a):
    assert post_multipart(server, "/v1/features", [image_part("image", img_a)]).status == 200
    assert server.request("GET", "/nope").status == 404
    r = scrape(server)
    p = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True, timeout=60)
    assert p.returncode == 0, (p.stdout + p.stderr).decode()
    assert (p.stdout + p.stderr).strip() == b"", (p.stdout + p.stderr).decode()


def test_names_units_and_histograms(server, img_a):
    assert post_multipart(server, "/v1/sphere-map", [image_part("image", png(30, 30, seed=7))]).status == 200
    text = scrape(server).text
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, kind in types.items():
        assert name.startswith(("spherecorr_", "process_")), name
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith(("_seconds", "_bytes", "_size")), name
        assert not re.search(r"_(ms|milliseconds|us|microseconds)$", name), name
    for h in ("spherecorr_http_request_duration_seconds", "spherecorr_inference_duration_seconds",
              "spherecorr_inference_queue_wait_seconds"):
        assert types.get(h) == "histogram", h
    # buckets cumulative and +Inf == _count, per series
    series: dict[str, list[tuple[float, float]]] = {}
    counts: dict[str, float] = {}
    for m in re.finditer(r'^(\w+)_bucket\{(.*?)le="([^"]+)"\} (\S+)$', text, re.M):
        key = m.group(1) + "{" + m.group(2).rstrip(",") + "}"
        series.setdefault(key, []).append((float(m.group(3)), float(m.group(4))))
    for m in re.finditer(r"^(\w+)_count(\{.*?\})? (\S+)$", text, re.M):
        counts[m.group(1) + (m.group(2) or "{}")] = float(m.group(3))
    assert series
    for key, buckets in series.items():
        values = [v for _, v in sorted(buckets)]
        assert values == sorted(values), key
        assert sorted(buckets)[-1][0] == float("inf"), key
        assert counts.get(key) == values[-1], key
    # no high-cardinality labels
    assert "request_id" not in text and "/tmp" not in text


def test_prometheus_client_parses(server):
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(scrape(server).text)}
    assert "spherecorr_model_reloads" in families or "spherecorr_model_reloads_total" in families
    assert families["process_start_time_seconds"].type == "gauge"


def test_process_start_time_is_the_real_start(server):
    """Not the time of the first scrape: /proc/<pid>/stat starttime + btime."""
    value = server.metric("process_start_time_seconds")
    with open(f"/proc/{server.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open("/proc/stat") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    expected = btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    assert abs(value - expected) < 0.05, (value, expected)
    assert value < time.time() - 0.5  # the session's server started a while ago, not at this scrape


def test_request_counters_by_route_and_code(server, img_a):
    before = server.metric("spherecorr_http_requests_total", {"route": "/v1/features", "method": "POST", "code": "422"})
    r = post_multipart(server, "/v1/features?resolution=15", [image_part("image", img_a)])
    assert r.status == 422
    after = server.metric("spherecorr_http_requests_total", {"route": "/v1/features", "method": "POST", "code": "422"})
    assert after == before + 1
