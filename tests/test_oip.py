"""Open Inference Protocol v2 through pfd-host and the component, driven by a real client
(tritonclient.http) plus plain HTTP for the edge cases a client never sends."""
import json

import numpy as np
import pytest
import tritonclient.http as tc
from tritonclient.utils import InferenceServerException

from conftest import ROOT, SIGNAL_LENGTH

MODEL = "bearing-lstm"


@pytest.fixture(scope="module")
def client(server):
    return tc.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=120)


def infer(client, batch: np.ndarray, binary: bool, model=MODEL, **kw):
    inp = tc.InferInput("input", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch.astype(np.float32), binary_data=binary)
    out = tc.InferRequestedOutput("logits", binary_data=binary)
    return client.infer(model, [inp], outputs=[out], **kw)


def test_server_live_ready_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "pfd-edge"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_ready(client, card):
    meta = client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, SIGNAL_LENGTH]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 11]}]
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version=card["version"])
    assert not client.is_model_ready("no-such-model")


def test_repository_index_lists_every_model_folder(client, card):
    """Triton's POST /v2/repository/index, as tritonclient calls it: the committed model folders
    (not models/scripts, which holds no model.onnx), each READY with its version."""
    index = client.get_model_repository_index()
    folders = sorted(p.parent.name for p in (ROOT / "models").glob("*/model.onnx"))
    assert [m["name"] for m in index] == folders
    assert all(m["state"] == "READY" for m in index), index
    assert next(m for m in index if m["name"] == MODEL)["version"] == card["version"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_reference_logits(client, reference, binary):
    """The raw logits of every reference vector, within the card's rtol/atol."""
    meta, inputs = reference
    batch = inputs[:, None, :]
    result = infer(client, batch, binary, request_id=f"ref-{binary}")
    logits = result.as_numpy("logits")
    assert logits.shape == (meta["count"], 11)
    np.testing.assert_allclose(logits, np.array(meta["logits"]), rtol=meta["rtol"], atol=meta["atol"])
    assert result.get_response()["id"] == f"ref-{binary}"


def test_non_finite_binary_tensors_are_refused_naming_the_value(client, reference):
    """tritonclient's binary tensors carry any f32 bit pattern; a NaN or an infinity is a 400
    naming the first bad value (its index in the flattened tensor), never logits."""
    _, inputs = reference
    for index, bad in [(7, np.nan), (SIGNAL_LENGTH + 3, np.inf), (2 * SIGNAL_LENGTH - 1, -np.inf)]:
        batch = inputs[:2, None, :].astype(np.float32).copy()
        batch.reshape(-1)[index] = bad
        with pytest.raises(InferenceServerException) as err:
            infer(client, batch, True)
        assert f"value {index} is" in str(err.value) and "finite" in str(err.value), str(err.value)
    assert client.is_server_ready()
    assert infer(client, inputs[:1, None, :], True).as_numpy("logits").shape == (1, 11)


def test_batch_larger_than_one_matches_single(client, reference):
    _, inputs = reference
    together = infer(client, inputs[:4, None, :], True).as_numpy("logits")
    alone = np.concatenate([infer(client, inputs[i : i + 1, None, :], True).as_numpy("logits") for i in range(4)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_unknown_model_is_a_readable_error(client, reference):
    _, inputs = reference
    with pytest.raises(InferenceServerException) as e:
        infer(client, inputs[:1, None, :], False, model="no-such-model")
    assert "no-such-model" in str(e.value)
    assert e.value.status() == "404" or "404" in str(e.value) or "not available" in str(e.value)


def test_wrong_shape_is_a_readable_error(client):
    with pytest.raises(InferenceServerException) as e:
        infer(client, np.zeros((1, 300), dtype=np.float32), True)
    assert "shape" in str(e.value)


# ---- plain HTTP: what tritonclient never sends -------------------------------------------------

def post(http, body: bytes, headers=None):
    return http.json("POST", f"/v2/models/{MODEL}/infer", raw=body, headers=headers)


def test_http_edge_cases(http):
    ok_input = {"name": "input", "shape": [1, 1, SIGNAL_LENGTH], "datatype": "FP32", "data": [0.0] * SIGNAL_LENGTH}
    cases = [
        (b"{not json", {}, 400, "invalid inference request"),
        (json.dumps({"inputs": []}).encode(), {}, 400, "exactly one input"),
        (json.dumps({"inputs": [dict(ok_input, name="x")]}).encode(), {}, 400, "unexpected input"),
        (json.dumps({"inputs": [dict(ok_input, datatype="FP64")]}).encode(), {}, 400, "FP32"),
        (json.dumps({"inputs": [dict(ok_input, data=[0.0] * 10)]}).encode(), {}, 400, "needs"),
        (json.dumps({"inputs": [dict(ok_input, data=None)]}).encode(), {}, 400, "no data"),
        (json.dumps({"inputs": [ok_input], "outputs": [{"name": "probs"}]}).encode(), {}, 400, "unknown output"),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "999"}, 400, "exceeds"),
        (b'{"inputs": []}', {"Inference-Header-Content-Length": "abc"}, 400, "Inference-Header-Content-Length"),
    ]
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, SIGNAL_LENGTH], "datatype": "FP32",
                                      "parameters": {"binary_data_size": 16}}]}).encode()
    cases.append((header + b"\0" * 16, {"Inference-Header-Content-Length": str(len(header))}, 400, "binary_data_size"))
    nan_header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, SIGNAL_LENGTH], "datatype": "FP32",
                                          "parameters": {"binary_data_size": SIGNAL_LENGTH * 4}}]}).encode()
    nan_body = np.zeros(SIGNAL_LENGTH, dtype="<f4")
    nan_body[7] = np.nan
    cases.append((nan_header + nan_body.tobytes(), {"Inference-Header-Content-Length": str(len(nan_header))}, 400, "finite"))
    for body, headers, status, needle in cases:
        got, payload = post(http, body, headers)
        assert got == status, (needle, payload)
        assert needle in payload["error"], (needle, payload)
    assert http.json("GET", f"/v2/models/{MODEL}/infer")[0] == 405
    assert http.json("GET", "/v2/models/x/y/z")[0] == 404
    assert http.json("GET", f"/v2/models/{MODEL}/versions/999")[0] == 404
    assert http.json("GET", "/health")[0] == 200


def test_oip_requires_the_key_when_configured(secured):
    client = tc.InferenceServerClient(url=f"127.0.0.1:{secured.port}")
    assert client.is_server_live()
    with pytest.raises(InferenceServerException):
        client.get_model_metadata(MODEL)
    assert client.get_model_metadata(MODEL, headers={"X-API-Key": "test-key-123"})["name"] == MODEL
    with pytest.raises(InferenceServerException):
        client.get_model_repository_index()
    assert client.get_model_repository_index(headers={"X-API-Key": "test-key-123"})
