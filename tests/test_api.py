"""Every LSTM_PFD route, through pfd-host and the wasm component, per the contract."""
import re

import pytest

from conftest import SIGNAL_LENGTH, signal_of

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CLASS_NAMES = [
    "Healthy", "Misalignment", "Imbalance", "Bearing Clearance", "Lubrication Issue", "Cavitation",
    "Wear", "Oil Whirl", "Misalignment + Imbalance", "Wear + Lubrication", "Cavitation + Clearance",
]


def test_welcome(http):
    status, body = http.json("GET", "/")
    assert status == 200
    assert set(body) >= {"message", "version", "docs", "health"}
    assert body["health"] == "/health"


def test_health(server, http):
    status, body = http.json("GET", "/health")
    assert status == 200
    assert body["status"] == "healthy"
    assert body["model_loaded"] is True
    assert ISO_Z.match(body["timestamp"]), body["timestamp"]
    # The backend that actually serves: tract in the guest, or ONNX Runtime through wasi-nn.
    assert body["device"] == server.device
    assert body["version"]


def test_live_and_ready(http):
    assert http.json("GET", "/health/live") == (200, {"status": "alive"})
    status, body = http.json("GET", "/health/ready")
    assert status == 200 and body["status"] == "ready", body


def test_model_info(http, card):
    status, body = http.json("GET", "/model/info")
    assert status == 200
    assert body["model_name"] == card["name"]
    assert body["model_type"] == card["model_type"]
    assert body["num_classes"] == 11
    assert body["input_shape"] == [1, 1, SIGNAL_LENGTH]
    assert body["num_parameters"] == card["num_parameters"] > 0
    assert 0 < body["model_size_mb"] <= 5
    assert body["class_names"] == {str(i): n for i, n in enumerate(CLASS_NAMES)}


def check_prediction(p, top_k=None, probabilities=True):
    assert set(p) == {"predicted_class", "class_name", "confidence", "probabilities", "inference_time_ms", "timestamp"}
    assert p["class_name"] == CLASS_NAMES[p["predicted_class"]]
    assert 0 < p["confidence"] <= 1
    assert p["inference_time_ms"] > 0
    assert ISO_Z.match(p["timestamp"])
    if not probabilities:
        assert p["probabilities"] is None
        return
    probs = p["probabilities"]
    values = list(probs.values())
    if top_k is None:
        assert list(probs) == CLASS_NAMES
        assert abs(sum(values) - 1) < 1e-4
    else:
        assert len(probs) == top_k
        assert values == sorted(values, reverse=True)
    assert list(probs)[0] == p["class_name"] or top_k is None
    assert max(values) == pytest.approx(p["confidence"])


def test_predict(http):
    status, body = http.json("POST", "/predict", {"signal": signal_of(2, 900)})
    assert status == 200, body
    check_prediction(body)


def test_predict_top_k_and_no_probabilities(http):
    sig = signal_of(7, 901)
    status, body = http.json("POST", "/predict", {"signal": sig, "return_top_k": 3})
    assert status == 200, body
    check_prediction(body, top_k=3)
    status, body = http.json("POST", "/predict", {"signal": sig, "return_probabilities": False, "unknown": 1})
    assert status == 200, body
    check_prediction(body, probabilities=False)


def test_predict_batch(http):
    signals = [signal_of(c, 902) for c in (0, 5, 9)]
    status, body = http.json("POST", "/predict/batch", {"signals": signals})
    assert status == 200, body
    assert body["batch_size"] == 3
    assert len(body["predictions"]) == 3
    for p in body["predictions"]:
        check_prediction(p)
        assert p["inference_time_ms"] == pytest.approx(body["average_inference_time_ms"])
    assert body["average_inference_time_ms"] == pytest.approx(body["total_inference_time_ms"] / 3)


def test_batch_matches_single(http):
    sig = signal_of(4, 903)
    _, single = http.json("POST", "/predict", {"signal": sig})
    _, batch = http.json("POST", "/predict/batch", {"signals": [sig, signal_of(1, 903)]})
    first = batch["predictions"][0]
    assert first["predicted_class"] == single["predicted_class"]
    for name, p in single["probabilities"].items():
        assert first["probabilities"][name] == pytest.approx(p, rel=1e-4, abs=1e-6)


def test_auth(secured):
    http = secured.http
    key = {"X-API-Key": "test-key-123"}
    assert http.json("GET", "/health")[0] == 200  # open route
    status, body = http.json("GET", "/model/info")
    assert status == 401
    assert body["error"] == "Invalid or missing API key"
    assert body["detail"] == "401: Invalid or missing API key"
    assert http.json("GET", "/model/info", headers={"X-API-Key": "wrong"})[0] == 401
    assert http.json("GET", "/model/info", headers=key)[0] == 200
    assert http.json("GET", "/model/info", headers={"Authorization": "Bearer test-key-123"})[0] == 200
    status, body = http.json("POST", "/predict", {"signal": signal_of(3, 904)}, headers=key)
    assert status == 200, body
    # Checked before the body: garbage without a key is 401, not 422.
    assert http.json("POST", "/predict", raw=b"{not json")[0] == 401
