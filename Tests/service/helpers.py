"""Helpers of the service integration suite: a server process on free loopback ports, HTTP with the stdlib,
multipart bodies, test images, sphere bundles, a tiny .npy/safetensors reader. Every wait is bounded."""
from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

try:
    import numpy as np
except ImportError:  # the suite runs without numpy too (tiny parsers below)
    np = None


def server_binary() -> Path:
    p = Path(os.environ.get("SPHERECORR_SERVER", REPO / ".build/debug/spherecorr-server"))
    if not p.exists():
        raise RuntimeError(f"{p} does not exist: build it first (swift build --product spherecorr-server) "
                           f"or point SPHERECORR_SERVER at a binary")
    return p


def train_binary() -> Path:
    p = Path(os.environ.get("SPHERECORR_TRAIN", REPO / ".build/debug/spherecorr-train"))
    if not p.exists():
        raise RuntimeError(f"{p} does not exist: build it first (swift build --build-tests)")
    return p


# The synthetic SPair-format dataset beside the repository clone (shared/data).
SYNTH = REPO.parent / "shared/data/spair-synth-dev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the server process

class ServerProcess:
    """spherecorr-server on 127.0.0.1 with ports chosen by the kernel (--port 0), read back from its log."""

    def __init__(self, *args: str, bundles: Path | None = None, env: dict | None = None, resolution: int = 56,
                 token: str = "test-token", name: str = "server"):
        self.token = token
        self.bundles = bundles
        self.workdir = Path(tempfile.mkdtemp(prefix=f"spherecorr-{name}-"))
        self.log_path = self.workdir / "server.log"
        cmd = [str(server_binary()), "--host", "127.0.0.1", "--port", "0", "--admin-port", "0",
               "--admin-token", token, "--resolution", str(resolution), "--log-format", "json"]
        if bundles is not None:
            cmd += ["--bundles", str(bundles)]
        cmd += list(args)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERECORR_")}
        full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env,
                                     stdin=subprocess.DEVNULL)
        self.port, self.admin_port = self._read_ports(timeout=60)

    def _read_ports(self, timeout: float) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"address=[0-9.]+:(\d+) admin=[0-9.]+:(\d+)")
        while time.monotonic() < deadline:
            m = pattern.search(self.log_path.read_bytes())
            if m:
                return int(m.group(1)), int(m.group(2))
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not report its ports within {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", timeout=5).status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.1)
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.log_text()[-4000:]}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 120, admin: bool = False) -> "Reply":
        return request("127.0.0.1", self.admin_port if admin else self.port, method, path, body, headers, timeout)

    def metric(self, name: str, labels: dict | None = None) -> float:
        return metric_value(self.request("GET", "/metrics").text, name, labels)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- nginx in front (deploy/nginx/spherecorr.conf)

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def nginx_site_config(server_port: int, nginx_port: int, logs: Path, prefix: str | None = None) -> str:
    """deploy/nginx/spherecorr.conf with the test's ports and log directory. With `prefix` (e.g. "/spherecorr/"), the
    site's own `location / { … }` block is also served under that prefix, stripped before the service (proxy_pass
    with a trailing slash): what a deployment under a path prefix does."""
    text = (REPO / "deploy/nginx/spherecorr.conf").read_text()
    text, n1 = re.subn(r"server 127\.0\.0\.1:8080", f"server 127.0.0.1:{server_port}", text)
    text, n2 = re.subn(r"listen 80;", f"listen 127.0.0.1:{nginx_port};", text)
    text = text.replace("/var/log/nginx/", f"{logs}/")
    assert n1 == 1 and n2 == 1, "deploy/nginx/spherecorr.conf changed shape: update the test's templating"
    if prefix is not None:
        m = re.search(r"\n    location / \{\n.*?\n    \}\n", text, re.S)
        assert m and "proxy_pass http://spherecorr;" in m.group(0), "deploy/nginx/spherecorr.conf: no 'location / {' block"
        prefixed = m.group(0).replace("location / {", f"location {prefix} {{").replace(
            "proxy_pass http://spherecorr;", "proxy_pass http://spherecorr/;")
        text = text[:m.end()] + prefixed + text[m.end():]
    return text


class NginxFront:
    """Real nginx (Debian nginx-light) on a free loopback port in front of a server, with the deploy site file."""

    def __init__(self, server_port: int, prefix: str | None = None):
        if NGINX is None:
            raise RuntimeError("nginx is not installed (Debian nginx-light; scripts/install-deps installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix="spherecorr-nginx-"))
        os.chmod(self.dir, 0o755)  # workers (user nobody when started as root) create their temp files here
        self.port = free_port()
        self.proc = None
        d = self.dir
        (d / "site.conf").write_text(nginx_site_config(server_port, self.port, d, prefix))
        (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/site.conf;
}}
""")
        args = [NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
        check = subprocess.run(args + ["-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {check.stderr}")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                if request("127.0.0.1", self.port, "GET", "/livez", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(d / 'error.log').read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not come up within 30 s")
            time.sleep(0.1)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- HTTP

class Reply:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status, self.reason, self.header_list, self.body = status, reason, headers, body

    def header(self, name: str) -> str | None:
        for k, v in self.header_list:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.header('Content-Type')} {self.body[:300]!r}>"


def request(host: str, port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 120) -> Reply:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, r.reason, r.getheaders(), data)
    finally:
        conn.close()


def multipart(fields: list[tuple[str, bytes, str | None, str | None]]) -> tuple[bytes, str]:
    """fields: (name, value, filename or None, content type or None) → (body, Content-Type)."""
    boundary = "----spherecorr" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value, filename, ctype in fields:
        out.write(f"--{boundary}\r\n".encode())
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename:
            disp += f'; filename="{filename}"'
        out.write(disp.encode() + b"\r\n")
        if ctype:
            out.write(f"Content-Type: {ctype}\r\n".encode())
        out.write(b"\r\n" + value + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def image_part(name: str, data: bytes, filename: str = "img.png") -> tuple[str, bytes, str, str]:
    return (name, data, filename, "image/png" if data[:4] == b"\x89PNG" else "image/jpeg")


def json_part(name: str, value) -> tuple[str, bytes, None, str]:
    return (name, json.dumps(value).encode(), None, "application/json")


def post_multipart(server: ServerProcess, path: str, fields, headers: dict | None = None, timeout: float = 120) -> Reply:
    body, ctype = multipart(fields)
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return server.request("POST", path, body, h, timeout=timeout)


# ---------------------------------------------------------------- images (stdlib PNG writer; no Pillow needed)

def png(width: int, height: int, seed: int = 0, channels: int = 3) -> bytes:
    """A deterministic pseudo-random RGB (or grey) PNG."""
    state = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    rows = []
    for _ in range(height):
        row = bytearray([0])
        for _ in range(width * channels):
            state = (1103515245 * state + 12345) & 0x7FFFFFFF
            row.append((state >> 16) & 0xFF)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colour = 2 if channels == 3 else 0
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height but carries almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def fixture_image(name: str) -> bytes:
    return (REPO / "Tests/Fixtures/imaging" / name).read_bytes()


# ---------------------------------------------------------------- tensor formats

_NPY_DTYPES = {"<f4": ("f", 4)}


def parse_npy(data: bytes):
    """(shape, values) of a little-endian float32 .npy v1/v2; numpy array when numpy is present."""
    if np is not None:
        return np.load(io.BytesIO(data), allow_pickle=False)
    assert data[:6] == b"\x93NUMPY", data[:10]
    major = data[6]
    if major == 1:
        hlen = struct.unpack("<H", data[8:10])[0]
        start = 10
    else:
        hlen = struct.unpack("<I", data[8:12])[0]
        start = 12
    header = data[start:start + hlen].decode("latin1")
    descr = re.search(r"'descr':\s*'([^']+)'", header).group(1)
    shape = tuple(int(x) for x in re.search(r"'shape':\s*\(([^)]*)\)", header).group(1).replace(" ", "").split(",") if x)
    assert descr == "<f4" and "'fortran_order': False" in header, header
    n = 1
    for s in shape:
        n *= s
    values = struct.unpack(f"<{n}f", data[start + hlen:start + hlen + 4 * n])
    return shape, values


def parse_safetensors(data: bytes) -> tuple[dict, dict]:
    """({name: (shape, raw bytes)}, metadata)."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = (info["shape"], info["dtype"], data[base + b:base + e])
    return out, meta


def write_safetensors(path: Path, tensors: dict, metadata: dict) -> None:
    """tensors: name → (shape, float list or numpy array); written float32 little-endian."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, (shape, values) in tensors.items():
        if np is not None:
            blob = np.asarray(values, dtype="<f4").tobytes()
        else:
            blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---------------------------------------------------------------- sphere bundles for the demo backbone (D = 192)

CATEGORIES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dog",
              "horse", "motorbike", "person", "pottedplant", "sheep", "train", "tvmonitor"]


def bundle_tensors(seed: int, d: int = 192, categories: int = len(CATEGORIES)) -> dict:
    """Every tensor of a sphere bundle (METHOD §3.6 names), small random weights, LayerNorms at identity."""
    h = d // 2
    state = [seed * 7919 + 1]

    def rand(n: int, scale: float = 0.02):
        if np is not None:
            return (np.random.default_rng(state[0] + n).standard_normal(n) * scale).astype("<f4")
        out = []
        for _ in range(n):
            state[0] = (1103515245 * state[0] + 12345) & 0x7FFFFFFF
            out.append(((state[0] / 0x7FFFFFFF) - 0.5) * 2 * scale)
        return out

    def ones(n):
        return [1.0] * n

    def zeros(n):
        return [0.0] * n

    t = {}
    sm = "sphere_mapper"
    t[f"{sm}.0.weight"] = ([h, d], rand(h * d))
    t[f"{sm}.0.bias"] = ([h], zeros(h))
    t[f"{sm}.2.norm1.weight"] = ([h], ones(h))
    t[f"{sm}.2.norm1.bias"] = ([h], zeros(h))
    t[f"{sm}.2.attn.qkv.weight"] = ([3 * h, h], rand(3 * h * h))
    t[f"{sm}.2.attn.proj.weight"] = ([h, h], rand(h * h))
    t[f"{sm}.2.attn.proj.bias"] = ([h], zeros(h))
    t[f"{sm}.2.norm2.weight"] = ([h], ones(h))
    t[f"{sm}.2.norm2.bias"] = ([h], zeros(h))
    t[f"{sm}.2.mlp.fc1.weight"] = ([4 * h, h], rand(4 * h * h))
    t[f"{sm}.2.mlp.fc1.bias"] = ([4 * h], zeros(4 * h))
    t[f"{sm}.2.mlp.fc2.weight"] = ([h, 4 * h], rand(4 * h * h))
    t[f"{sm}.2.mlp.fc2.bias"] = ([h], zeros(h))
    t[f"{sm}.3.weight"] = ([3, h], rand(3 * h, 0.2))
    t[f"{sm}.3.bias"] = ([3], rand(3, 0.2))
    t["prototypes.proj.weight"] = ([d, 3], rand(d * 3))
    t["prototypes.proj.bias"] = ([d], zeros(d))
    nc = categories
    block = {
        "norm1.weight": ([d], ones(d)), "norm1.bias": ([d], zeros(d)),
        "attn.q.weight": ([d, d], rand(d * d)), "attn.k.weight": ([d, nc], rand(d * nc)),
        "attn.v.weight": ([d, nc], rand(d * nc)), "attn.proj.weight": ([d, d], rand(d * d)),
        "attn.proj.bias": ([d], zeros(d)), "norm2.weight": ([d], ones(d)), "norm2.bias": ([d], zeros(d)),
        "mlp.fc1.weight": ([4 * d, d], rand(4 * d * d)), "mlp.fc1.bias": ([4 * d], zeros(4 * d)),
        "mlp.fc2.weight": ([d, 4 * d], rand(4 * d * d)), "mlp.fc2.bias": ([d], zeros(d)),
    }
    for i in (0, 1):  # the reference saves the shared block twice
        for k, v in block.items():
            t[f"prototypes.blocks.{i}.{k}"] = v
    return t


def publish_bundle(directory: Path, name: str, seed: int, corrupt: str | None = None) -> Path:
    """Publishes a bundle as a trainer does: a temporary file in the same directory, fsync, rename.
    corrupt: None, "shape" (a wrong shape), "truncated" (cut in half), "nan" (a non-finite weight)."""
    tensors = bundle_tensors(seed)
    meta = {"format": "spherecorr-bundle", "version": "1", "backbone_embed_dim": "192",
            "categories": ",".join(CATEGORIES), "seed": str(seed)}
    if corrupt == "shape":
        tensors["sphere_mapper.3.weight"] = ([4, 96], [0.01] * 384)
    if corrupt == "nan":
        shape, values = tensors["sphere_mapper.3.bias"]
        values = list(values)
        values[0] = float("nan")
        tensors["sphere_mapper.3.bias"] = (shape, values)
    tmp = directory / f".{name}.tmp-{uuid.uuid4().hex}"
    write_safetensors(tmp, tensors, meta)
    if corrupt == "truncated":
        data = tmp.read_bytes()
        tmp.write_bytes(data[: len(data) // 2])
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    final = directory / name
    os.rename(tmp, final)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return final


# ---------------------------------------------------------------- Prometheus text

def metric_value(text: str, name: str, labels: dict | None = None) -> float:
    """The sample `name{labels}` (labels must match exactly those given, in any order); 0 when absent."""
    want = labels or {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in want.items()) and (labels is not None or not got):
            return float(m.group(4))
    return 0.0


def assert_problem(reply: Reply, status: int, code: str | None = None) -> dict:
    assert reply.status == status, reply
    assert reply.header("Content-Type", ) == "application/problem+json", reply
    body = reply.json()
    for k in ("type", "title", "status", "detail", "code", "request_id"):
        assert k in body, (k, body)
    assert body["status"] == status
    assert body["request_id"] == reply.header("X-Request-Id")
    assert reply.header("X-Model-Version"), reply
    if code is not None:
        assert body["code"] == code, body
    if status == 503:
        assert reply.header("Retry-After") and int(reply.header("Retry-After")) >= 1, reply
    return body
