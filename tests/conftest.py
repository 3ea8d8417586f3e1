"""End-to-end fixtures: a real pfd-host process serving the real wasm component over HTTP.

The binaries are built by `scripts/test.sh` (the README's test command); these fixtures only
start them. Environment:

- ``PFD_HOST_BIN``  path to the pfd-host binary (default: target/release/pfd-host)
- ``PFD_E2E_KEEP_LOGS``  keep server logs after the run (printed on failure anyway)
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models" / "scripts"))

import generator  # noqa: E402  (the committed, seeded data generator)

SIGNAL_LENGTH = generator.SIGNAL_LENGTH
MODEL_DIR = ROOT / "models" / "bearing-lstm"


def host_bin() -> str:
    default = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "pfd-host"
    return os.environ.get("PFD_HOST_BIN", str(default))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http:
    """A tiny JSON-over-HTTP client on urllib (no third-party client needed)."""

    def __init__(self, base: str):
        self.base = base

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None, timeout=120):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method: str, path: str, body=None, headers=None, raw=None):
        status, hdrs, payload = self.request(method, path, body, headers, raw)
        try:
            return status, json.loads(payload) if payload else None
        except json.JSONDecodeError:
            pytest.fail(f"{method} {path} -> {status}: not JSON: {payload[:200]!r}")


class Server:
    def __init__(self, env: dict[str, str], manifest: Path | None = None, args: list[str] | None = None):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="pfd-host-", suffix=".log", delete=False)
        cmd = [host_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--manifest", str(manifest or ROOT / "spin.toml")]
        cmd += args or []
        full_env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), **env}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        self.http = Http(f"http://127.0.0.1:{self.port}")
        self.wait_live()

    def wait_live(self, timeout: float = 180.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pfd-host exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _, _ = self.http.request("GET", "/health/live", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"pfd-host not live after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-8000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not os.environ.get("PFD_E2E_KEEP_LOGS"):
            os.unlink(self.log.name)


# The end-to-end suite runs once per (component build, engine) pair — parametrised, not copied:
# - "tract":   the portable build (spin.toml's), tract inside the guest;
# - "wasi-nn": the wasi-nn build, ONNX Runtime on the host (CPU here, CUDA on GPU nodes).
FLAVOURS = {
    "tract": (["--component", "build/pfd-edge.wasm"], "tract/wasm"),
    "wasi-nn": (["--component", "build/pfd-edge-nn.wasm", "--device", "cpu"], "wasi-nn/onnx/cpu"),
}


def flavour_server(flavour: str) -> Server:
    """A pfd-host serving one of FLAVOURS; `.flavour` and `.device` say which."""
    args, device = FLAVOURS[flavour]
    s = Server({}, args=args)
    s.flavour, s.device = flavour, device
    return s


@pytest.fixture(scope="session", params=list(FLAVOURS))
def server(request):
    s = flavour_server(request.param)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def http(server) -> Http:
    return server.http


@pytest.fixture(scope="session")
def secured():
    """A second server with authentication on and a small batch limit."""
    s = Server({"PFD_API_KEY": "test-key-123", "PFD_REQUIRE_AUTH": "true", "PFD_MAX_BATCH_SIZE": "4"})
    yield s
    s.stop()


def signal_of(class_index: int, seed: int) -> list[float]:
    rng = np.random.default_rng([seed, class_index, 0])
    return generator.generate(class_index, rng).astype(np.float32).tolist()


@pytest.fixture(scope="session")
def reference():
    meta = json.loads((MODEL_DIR / "reference.json").read_text())
    raw = np.fromfile(MODEL_DIR / meta["inputs_file"], dtype="<f4")
    inputs = raw.reshape(meta["count"], meta["length"])
    return meta, inputs


@pytest.fixture(scope="session")
def card():
    return json.loads((MODEL_DIR / "model.json").read_text())


__all__ = ["Http", "Server", "signal_of", "SIGNAL_LENGTH", "struct"]
