"""End-to-end fixtures: real hosts serving the real wasm component over HTTP.

Two hosts: pfd-host (both component builds) and `wasmtime serve` (the wasmtime CLI at
pfd-host's wasmtime version, an independent host, serving the portable build with spin.toml's
mounts and environment). The binaries are built and installed by `scripts/test.sh` (the
README's test command); these fixtures only start them. Environment:

- ``PFD_HOST_BIN``  path to the pfd-host binary (default: target/release/pfd-host)
- ``PFD_WASMTIME_BIN``  path to the wasmtime CLI (default: $PFD_CACHE/tools/bin/wasmtime);
  without one the `wasmtime serve` cases are skipped, unless ``PFD_REQUIRE_WASMTIME=1`` (CI)
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
import tomllib
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


class Process:
    """A server process on a free port, its output in a log file, live once `/health/live`
    answers. Subclasses say which command serves."""

    name = "server"
    host = "pfd-host"

    def start(self, cmd: list[str], env: dict[str, str]):
        self.log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)
        # No drain delay at shutdown unless a test sets one: every server is stopped, 5 s each
        # would add up (the drain itself is tested in host/tests/serve.rs).
        full_env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), "PFD_DRAIN_DELAY_MS": "0", **env}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        self.http = Http(f"http://127.0.0.1:{self.port}")
        self.wait_live()

    def wait_live(self, timeout: float = 180.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _, _ = self.http.request("GET", "/health/live", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not live after {timeout}s:\n{self.logs()}")

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


class Server(Process):
    """pfd-host serving spin.toml (or `manifest`), with `env` over the environment."""

    name = "pfd-host"

    def __init__(self, env: dict[str, str], manifest: Path | None = None, args: list[str] | None = None):
        self.port = free_port()
        cmd = [host_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--manifest", str(manifest or ROOT / "spin.toml")]
        self.start(cmd + (args or []), env)


# spin.toml's component: what every host is given (its `files` mounts, its `environment`).
SPIN_COMPONENT = tomllib.loads((ROOT / "spin.toml").read_text())["component"]["pfd-edge"]


def wasmtime_bin() -> str:
    cache = Path(os.environ.get("PFD_CACHE", Path.home() / ".cache" / "pfd-edge"))
    path = Path(os.environ.get("PFD_WASMTIME_BIN", cache / "tools" / "bin" / "wasmtime"))
    if path.exists():
        return str(path)
    if os.environ.get("PFD_REQUIRE_WASMTIME") == "1":
        pytest.fail(f"PFD_REQUIRE_WASMTIME=1 but there is no wasmtime CLI at {path} (scripts/tools.sh installs it)")
    pytest.skip(f"no wasmtime CLI at {path}: run scripts/tools.sh, or set PFD_WASMTIME_BIN")


def spin_mounts() -> list[str]:
    """spin.toml's `files` as `wasmtime --dir host::guest` arguments (the `/models` style)."""
    return [f"{ROOT / f['source']}::{f['destination']}" for f in SPIN_COMPONENT["files"]]


_precompiled = tempfile.TemporaryDirectory(prefix="pfd-wasmtime-")


def precompiled_portable() -> str:
    """The portable component compiled once per session (`wasmtime compile`), for the servers
    that only vary mounts: each then starts in about a second instead of compiling the 23 MB
    component again (~10 s here). The suite's main `wasmtime serve` runs the .wasm itself."""
    out = Path(_precompiled.name) / "pfd-edge.cwasm"
    if not out.exists():
        subprocess.run([wasmtime_bin(), "compile", str(ROOT / "build" / "pfd-edge.wasm"), "-o", str(out)], check=True)
    return str(out)


class WasmtimeServe(Process):
    """`wasmtime serve` running the portable component with spin.toml's environment (`env` on
    top) and `dirs` as its preopens (default: spin.toml's mounts)."""

    name = "wasmtime-serve"
    host = "wasmtime-serve"

    def __init__(self, env: dict[str, str] | None = None, dirs: list[str] | None = None,
                 precompiled: bool = False):
        self.port = free_port()
        cmd = [wasmtime_bin(), "serve", "--addr", f"127.0.0.1:{self.port}", "-S", "cli=y"]
        for d in spin_mounts() if dirs is None else dirs:
            cmd += ["--dir", d]
        for k, v in {**SPIN_COMPONENT["environment"], **(env or {})}.items():
            cmd += ["--env", f"{k}={v}"]
        component = ["--allow-precompiled", precompiled_portable()] if precompiled else ["build/pfd-edge.wasm"]
        self.start(cmd + component, {})


# The end-to-end suite runs once per (host, component build, engine) — parametrised, not copied:
# - "tract":   pfd-host, the portable build (spin.toml's), tract inside the guest;
# - "wasi-nn": pfd-host, the wasi-nn build, ONNX Runtime on the host (CPU here, CUDA on GPU nodes);
# - "wasmtime-serve": `wasmtime serve`, the portable build, spin.toml's mounts and environment.
FLAVOURS = {
    "tract": (["--component", "build/pfd-edge.wasm"], "tract/wasm"),
    "wasi-nn": (["--component", "build/pfd-edge-nn.wasm", "--device", "cpu"], "wasi-nn/onnx/cpu"),
}
SERVERS = [*FLAVOURS, "wasmtime-serve"]


def flavour_server(flavour: str) -> Process:
    """A server for one of SERVERS; `.host`, `.flavour` and `.device` say which."""
    if flavour == "wasmtime-serve":
        s = WasmtimeServe()
        s.flavour, s.device = "tract", "tract/wasm"
        return s
    args, device = FLAVOURS[flavour]
    s = Server({}, args=args)
    s.flavour, s.device = flavour, device
    return s


_started: dict[str, Process] = {}


def shared_server(name: str) -> Process:
    """The session's one server of kind `name` (started on first use, stopped at the end), so
    the per-server suite and the cross-host comparison share processes."""
    if name not in _started or not _started[name].alive():
        _started[name] = flavour_server(name)
    return _started[name]


def pytest_sessionfinish(session, exitstatus):
    for s in _started.values():
        s.stop()
    _precompiled.cleanup()


@pytest.fixture(scope="session", params=SERVERS)
def server(request):
    return shared_server(request.param)


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


def reference_of(model: str):
    """A model folder's reference vectors: (reference.json, inputs as [count, length] float32)."""
    folder = ROOT / "models" / model
    meta = json.loads((folder / "reference.json").read_text())
    raw = np.fromfile(folder / meta["inputs_file"], dtype="<f4")
    return meta, raw.reshape(meta["count"], meta["length"])


@pytest.fixture(scope="session")
def reference():
    return reference_of(MODEL_DIR.name)


@pytest.fixture(scope="session")
def card():
    return json.loads((MODEL_DIR / "model.json").read_text())


__all__ = ["Http", "Server", "WasmtimeServe", "reference_of", "signal_of", "SIGNAL_LENGTH", "struct"]
