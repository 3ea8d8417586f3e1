"""The two engines against each other, through the Open Inference Protocol (tritonclient).

The fallback to tract (`--nn off`) and 64 concurrent requests on the session pool are host
mechanics, tested with the reference vectors in `host/tests/nn.rs`."""

import numpy as np
import pytest
import tritonclient.http as tc

from conftest import Server


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
