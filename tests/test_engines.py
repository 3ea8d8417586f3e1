"""The two engines against each other (through the Open Inference Protocol, tritonclient), and 64
concurrent requests on every build and host.

The fallback to tract (`--nn off`) is a host mechanic, tested with the reference vectors' logits
in `host/tests/nn.rs`, as is the wasi-nn session pool under 64 concurrent requests."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.http as tc

from conftest import Server, signal_of


def logits_of(server, inputs):
    client = tc.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=120)
    inp = tc.InferInput("input", [len(inputs), 1, inputs.shape[1]], "FP32")
    inp.set_data_from_numpy(inputs[:, None, :].astype(np.float32), binary_data=True)
    return client.infer("bearing-lstm", [inp]).as_numpy("logits")


@pytest.fixture(scope="module")
def tract_and_nn():
    tract = Server({}, args=["--component", "build/pfd-edge.wasm"])
    nn = Server({}, args=["--component", "build/pfd-edge-nn.wasm", "--device", "cpu"])
    yield tract, nn
    tract.stop()
    nn.stop()


def test_ort_via_wasi_nn_matches_tract_in_wasm(tract_and_nn, reference):
    meta, inputs = reference
    tract, nn = tract_and_nn
    assert tract.http.json("GET", "/health")[1]["device"] == "tract/wasm"
    assert nn.http.json("GET", "/health")[1]["device"] == "wasi-nn/onnx/cpu"
    a, b = logits_of(tract, inputs), logits_of(nn, inputs)
    assert (a.argmax(1) == b.argmax(1)).all()
    np.testing.assert_allclose(b, a, rtol=meta["rtol"], atol=meta["atol"])


def test_64_concurrent_requests_all_succeed(server):
    body = {"signal": signal_of(6, 905), "return_top_k": 1}

    def one(_):
        return server.http.json("POST", "/predict", body)

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(one, range(64)))
    assert [s for s, _ in results] == [200] * 64, [b for s, b in results if s != 200][:2]
    assert len({b["predicted_class"] for _, b in results}) == 1
