"""A model's files are what readiness vouches for. Missing, truncated or corrupt at start, or
removed while serving: pfd-host stays up and live, every readiness route answers 503 with the
reason, `model_loaded` turns 0 with a log line saying why — and all of it recovers when the file
comes back. Through pfd-host serving each build, with its own copy of `models/`.

The pre-initialised component holds the default model in memory, so a prediction can still be
answered while the file is gone; readiness is what takes such a server out of rotation."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import FLAVOURS, ROOT, Server, signal_of
from test_operations import scrape, value

MODEL = "bearing-lstm"
OTHER = "bearing-lstm-int8"
READINESS = ["/health/ready", "/v2/health/ready", f"/v2/models/{MODEL}/ready"]


def own_models(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of models/ and a spin.toml that mounts it (the component comes from --component)."""
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("scripts"))
    manifest = tmp_path / "spin.toml"
    text = (ROOT / "spin.toml").read_text()
    assert 'source = "models"' in text
    manifest.write_text(text.replace('source = "models"', f'source = "{models}"'))
    return models, manifest


def serve(flavour: str, manifest: Path) -> Server:
    args, _ = FLAVOURS[flavour]
    # Probed twice a second (default: a minute), so the test sees model_loaded follow the files.
    return Server({}, manifest=manifest, args=args + ["--model-probe-interval-ms", "500"])


def eventually(check, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        result = check()
        if result or time.time() > deadline:
            return result
        time.sleep(0.2)


def model_loaded(server) -> dict[str, float]:
    samples = scrape(server.http)
    return {m: value(samples, "model_loaded", model=m) for m in (MODEL, OTHER)}


def assert_not_ready(server, reason: str):
    status, body = server.http.json("GET", "/health/live")
    assert status == 200, body
    for path in READINESS:
        status, body = server.http.json("GET", path)
        assert status == 503, (path, body)
        assert reason in str(body), (path, body)
    assert eventually(lambda: model_loaded(server) == {MODEL: 0, OTHER: 1}), model_loaded(server)
    assert eventually(lambda: "model is not ready" in server.logs()), server.logs()
    assert server.alive()


def assert_ready(server):
    for path in READINESS:
        assert eventually(lambda: server.http.json("GET", path)[0] == 200), (path, server.http.json("GET", path))
    assert eventually(lambda: model_loaded(server) == {MODEL: 1, OTHER: 1}), model_loaded(server)
    status, body = server.http.json("POST", "/predict", {"signal": signal_of(3, 5)})
    assert status == 200, body


def damage(onnx: Path, how: str):
    data = onnx.read_bytes()
    if how == "missing":
        onnx.unlink()
    elif how == "truncated":
        onnx.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":
        # Same size, garbage in the middle: only the content tells it apart.
        middle = len(data) // 2
        onnx.write_bytes(data[:middle] + bytes(range(256)) * 16 + data[middle + 4096:])
        assert onnx.stat().st_size == len(data)
    else:
        raise ValueError(how)


REASONS = {"missing": "is missing", "truncated": "model.onnx", "corrupt": "model.onnx"}


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("how", list(REASONS))
def test_a_broken_model_file_at_start_is_not_ready_until_it_is_restored(flavour, how, tmp_path):
    models, manifest = own_models(tmp_path)
    onnx = models / MODEL / "model.onnx"
    original = onnx.read_bytes()
    damage(onnx, how)
    server = serve(flavour, manifest)
    try:
        assert_not_ready(server, REASONS[how])
        onnx.write_bytes(original)
        assert_ready(server)
    finally:
        server.stop()


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_a_model_folder_removed_while_serving_is_not_ready_until_it_returns(flavour, tmp_path):
    models, manifest = own_models(tmp_path)
    server = serve(flavour, manifest)
    try:
        assert_ready(server)
        kept = tmp_path / "kept"
        shutil.move(models / MODEL, kept)
        assert_not_ready(server, "is missing")
        # Still answered from the copy in memory; readiness is what routes traffic away.
        status, body = server.http.json("POST", "/predict", {"signal": signal_of(1, 6)})
        assert status == 200, body
        shutil.move(kept, models / MODEL)
        assert_ready(server)
    finally:
        server.stop()
