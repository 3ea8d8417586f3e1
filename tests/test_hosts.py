"""One component, every host: the same requests to pfd-host (wasi-nn build), pfd-host (portable
build) and `wasmtime serve` (portable build) give the same answers, and the component finds its
models however the host mounts them.

- pfd-host and `wasmtime serve` running the same (portable) component must answer
  byte-identically, apart from timings and timestamps: both run the same guest code, so any
  difference is a host leaking into the answer.
- The wasi-nn build runs the model in ONNX Runtime instead of tract: every non-inference answer
  is byte-identical except the `device` it reports, and inference agrees within the reference's
  rtol/atol (logits) and on every predicted class.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from conftest import ROOT, SIGNAL_LENGTH, WasmtimeServe, reference_of, shared_server
from test_bad_input import CASES

MODELS = ["bearing-lstm", "bearing-lstm-int8"]

# Values that legitimately differ between two runs of the same request: replaced in the raw
# JSON text before comparing, so every other byte (number formatting included) must match.
VOLATILE = re.compile(
    rb'"(timestamp|inference_time_ms|average_inference_time_ms|total_inference_time_ms|uptime_seconds)"'
    rb'\s*:\s*("[^"]*"|[-+0-9.eE]+)'
)


def normalise(body: bytes) -> bytes:
    return VOLATILE.sub(rb'"\1":"~"', body)


def oip_json(inputs: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "shape": [len(inputs), 1, SIGNAL_LENGTH], "datatype": "FP32",
                        "data": inputs.ravel().tolist()}]}


def requests() -> list[tuple[str, str, str, bytes | None]]:
    """(id, method, path, body): every LSTM_PFD and OIP route, both models, every reference
    vector, and the bad-input matrix."""
    meta, inputs = reference_of("bearing-lstm")
    out = [
        ("welcome", "GET", "/", None),
        ("health", "GET", "/health", None),
        ("live", "GET", "/health/live", None),
        ("ready", "GET", "/health/ready", None),
        ("model-info", "GET", "/model/info", None),
        ("openapi", "GET", "/openapi.json", None),
        ("oip-server", "GET", "/v2", None),
        ("oip-live", "GET", "/v2/health/live", None),
        ("oip-ready", "GET", "/v2/health/ready", None),
    ]
    for model in MODELS:
        out += [
            (f"{model}-metadata", "GET", f"/v2/models/{model}", None),
            (f"{model}-ready", "GET", f"/v2/models/{model}/ready", None),
            (f"{model}-version-ready", "GET", f"/v2/models/{model}/versions/1/ready", None),
            (f"{model}-infer", "POST", f"/v2/models/{model}/infer",
             json.dumps(oip_json(reference_of(model)[1])).encode()),
        ]
    for i in range(meta["count"]):
        out.append((f"predict-ref-{i}", "POST", "/predict", json.dumps({"signal": inputs[i].tolist()}).encode()))
    out.append(("predict-top-k", "POST", "/predict",
                json.dumps({"signal": inputs[3].tolist(), "return_top_k": 3}).encode()))
    out.append(("batch-refs", "POST", "/predict/batch", json.dumps({"signals": inputs.tolist()}).encode()))
    out += [(f"bad-{c[0]}", c[1], c[2], c[3]) for c in CASES]
    out.append(("oip-unknown-model", "POST", "/v2/models/nope/infer", json.dumps(oip_json(inputs[:1])).encode()))
    return out


def answers(server) -> dict[str, tuple[int, str, bytes]]:
    got = {}
    for rid, method, path, body in requests():
        status, headers, payload = server.http.request(method, path, raw=body)
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        got[rid] = (status, ctype, payload)
    return got


@pytest.fixture(scope="module")
def by_host():
    return {name: answers(shared_server(name)) for name in ("tract", "wasmtime-serve", "wasi-nn")}


def test_pfd_host_and_wasmtime_serve_answer_byte_identically(by_host):
    pfd, wt = by_host["tract"], by_host["wasmtime-serve"]
    for rid in pfd:
        (s1, c1, b1), (s2, c2, b2) = pfd[rid], wt[rid]
        assert (s1, c1) == (s2, c2), rid
        assert normalise(b1) == normalise(b2), (rid, b1[:300], b2[:300])
    # The comparison is not vacuous: every kind of answer was there.
    statuses = {s for s, _, _ in pfd.values()}
    assert {200, 404, 405, 422} <= statuses, statuses


def engine_as_tract(body: bytes) -> bytes:
    """The wasi-nn build's answer with its engine names (`device`/`platform`, `backend`) put
    back to the tract build's."""
    return body.replace(b'"wasi-nn/onnx/cpu"', b'"tract/wasm"').replace(b'"backend":"wasi-nn/onnx"', b'"backend":"tract"')


def logits_of(body: bytes) -> np.ndarray:
    out = json.loads(body)["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def test_wasi_nn_and_tract_agree_within_the_references_tolerances(by_host):
    tract, nn = by_host["tract"], by_host["wasi-nn"]
    for rid in tract:
        (s1, c1, b1), (s2, c2, b2) = tract[rid], nn[rid]
        assert (s1, c1) == (s2, c2), rid
        if rid.endswith("-infer"):
            meta, _ = reference_of(rid[: -len("-infer")])
            a, b = logits_of(b1), logits_of(b2)
            np.testing.assert_allclose(b, a, rtol=meta["rtol"], atol=meta["atol"], err_msg=rid)
            assert (a.argmax(1) == b.argmax(1)).all(), rid
        elif rid.startswith(("predict-", "batch-")):
            one, two = json.loads(b1), json.loads(b2)
            for p, q in zip(one.get("predictions", [one]), two.get("predictions", [two])):
                assert p["predicted_class"] == q["predicted_class"], rid
                assert list(p["probabilities"]) == list(q["probabilities"]), rid
                np.testing.assert_allclose(list(q["probabilities"].values()), list(p["probabilities"].values()),
                                           rtol=1e-3, atol=1e-5, err_msg=rid)
        else:
            # Only the engine differs: what it reports as device, platform and backend.
            assert normalise(b1) == engine_as_tract(normalise(b2)), (rid, b1[:300], b2[:300])


def models_answer(server):
    """Every bundled model is ready and reproduces its reference logits on `server`."""
    for model in MODELS:
        status, body = server.http.json("GET", f"/v2/models/{model}/ready")
        assert status == 200, (model, body, server.logs())
        meta, inputs = reference_of(model)
        status, _, payload = server.http.request("POST", f"/v2/models/{model}/infer",
                                                 raw=json.dumps(oip_json(inputs)).encode())
        assert status == 200, (model, payload[:300])
        np.testing.assert_allclose(logits_of(payload), np.array(meta["logits"]), rtol=meta["rtol"], atol=meta["atol"])


@pytest.mark.parametrize("style", ["models", "root", "extra-dir-first"])
def test_every_model_answers_under_each_mount_style(style, tmp_path):
    """The pre-initialised snapshot does not fix how files are mounted: `/models` (spin.toml,
    pfd-host), one staging folder at `/` with `models/` inside (Spin's default strategy), and
    another directory preopened before the models (descriptor 3 is not the models)."""
    models = ROOT / "models"
    if style == "models":
        dirs = [f"{models}::/models"]
    elif style == "root":
        staging = tmp_path / "staging"
        shutil.copytree(models, staging / "models", ignore=shutil.ignore_patterns("scripts"))
        dirs = [f"{staging}::/"]
    else:
        (tmp_path / "data").mkdir()
        dirs = [f"{tmp_path / 'data'}::/data", f"{models}::/models"]
    s = WasmtimeServe(dirs=dirs, precompiled=True)
    try:
        models_answer(s)
        # A model that is not there is still a clean 404, not a wrong file.
        status, body = s.http.json("GET", "/v2/models/nope/ready")
        assert status == 404, body
    finally:
        s.stop()



def test_host_differences_are_the_documented_ones():
    """The README's host table, checked: the component's own API key check works on
    `wasmtime serve`; /metrics and the body limit are pfd-host's (the component has neither)."""
    key = {"X-API-Key": "k-123"}
    wt = WasmtimeServe(env={"PFD_API_KEY": "k-123", "PFD_REQUIRE_AUTH": "true"}, precompiled=True)
    try:
        status, body = wt.http.json("GET", "/model/info")
        assert status == 401 and body["error"] == "Invalid or missing API key", body
        assert wt.http.json("GET", "/model/info", headers=key)[0] == 200
        assert wt.http.json("GET", "/health")[0] == 200
        assert wt.http.json("GET", "/metrics", headers=key) == (404, {"detail": "Not Found"})
        # 2 MB of JSON (over pfd-host's limit in test_bad_input) reaches the component, which
        # answers it: no host limit in between.
        big = b'{"signal": [' + b",".join([b"0.000000"] * 250_000) + b"]}"
        status, body = wt.http.json("POST", "/predict", raw=big, headers=key)
        assert status == 422 and "Got 250000 samples" in body["detail"][0]["msg"], body
    finally:
        wt.stop()
    pfd = shared_server("tract")
    status, _, text = pfd.http.request("GET", "/metrics")
    assert status == 200 and b"model_loaded" in text
