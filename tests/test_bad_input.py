"""The bad-input matrix: each case gets its documented 4xx with a JSON body, and the server
keeps serving afterwards."""
import json

import pytest

from conftest import SIGNAL_LENGTH

GOOD = [0.0] * SIGNAL_LENGTH


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def with_sample(value_json: str) -> bytes:
    """A full-length signal whose sample 5 is `value_json` (raw JSON text, e.g. NaN)."""
    samples = ["0"] * SIGNAL_LENGTH
    samples[5] = value_json
    return ('{"signal": [' + ",".join(samples) + "]}").encode()


# (id, method, path, raw body, expected status, check on the JSON body)
CASES = [
    ("malformed-json", "POST", "/predict", b'{"signal": [1, 2', 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("not-json-at-all", "POST", "/predict", b"hello", 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("empty-body", "POST", "/predict", b"", 422, lambda b: b["detail"][0]["type"] == "missing" and b["detail"][0]["loc"] == ["body"]),
    ("body-is-list", "POST", "/predict", body([1, 2, 3]), 422, lambda b: b["detail"][0]["type"] == "model_attributes_type"),
    ("missing-signal", "POST", "/predict", body({"sig": GOOD}), 422, lambda b: b["detail"][0]["loc"] == ["body", "signal"] and b["detail"][0]["type"] == "missing"),
    ("signal-is-string", "POST", "/predict", body({"signal": "abc"}), 422, lambda b: b["detail"][0]["type"] == "list_type"),
    ("sample-is-string", "POST", "/predict", with_sample('"x"'), 422, lambda b: b["detail"][0]["loc"] == ["body", "signal", 5]),
    ("sample-is-null", "POST", "/predict", with_sample("null"), 422, lambda b: b["detail"][0]["type"] == "float_type"),
    ("sample-is-NaN", "POST", "/predict", with_sample("NaN"), 422, lambda b: "NaN" in b["detail"][0]["ctx"]["error"]),
    ("sample-is-Infinity", "POST", "/predict", with_sample("-Infinity"), 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("sample-overflows-f32", "POST", "/predict", with_sample("1e39"), 422, lambda b: "Sample 5" in b["detail"][0]["msg"]),
    ("too-short", "POST", "/predict", body({"signal": [0.0] * 300}), 422,
     lambda b: b["detail"][0]["msg"] == f"Value error, Signal must be exactly {SIGNAL_LENGTH} samples long. Got 300 samples. Please resample or pad your signal."),
    ("too-long", "POST", "/predict", body({"signal": [0.0] * (SIGNAL_LENGTH + 1)}), 422, lambda b: "Got 102401 samples" in b["detail"][0]["msg"]),
    ("empty-signal", "POST", "/predict", body({"signal": []}), 422, lambda b: "Got 0 samples" in b["detail"][0]["msg"]),
    ("top-k-zero", "POST", "/predict", body({"signal": GOOD, "return_top_k": 0}), 422, lambda b: b["detail"][0]["type"] == "greater_than_equal"),
    ("top-k-negative", "POST", "/predict", body({"signal": GOOD, "return_top_k": -1}), 422, lambda b: b["detail"][0]["loc"] == ["body", "return_top_k"]),
    ("top-k-too-big", "POST", "/predict", body({"signal": GOOD, "return_top_k": 12}), 422, lambda b: b["detail"][0]["type"] == "less_than_equal"),
    ("top-k-fraction", "POST", "/predict", body({"signal": GOOD, "return_top_k": 2.5}), 422, lambda b: b["detail"][0]["type"] == "int_from_float"),
    ("probabilities-not-bool", "POST", "/predict", body({"signal": GOOD, "return_probabilities": "yes"}), 422, lambda b: b["detail"][0]["type"] == "bool_type"),
    ("batch-empty", "POST", "/predict/batch", body({"signals": []}), 422, lambda b: b["detail"][0]["type"] == "too_short"),
    ("batch-mixed-lengths", "POST", "/predict/batch", body({"signals": [GOOD, [0.0] * 10, GOOD]}), 422,
     lambda b: b["detail"][0]["loc"] == ["body", "signals", 1] and "Got 10 samples" in b["detail"][0]["msg"]),
    ("batch-not-list-of-lists", "POST", "/predict/batch", body({"signals": [GOOD, "x"]}), 422, lambda b: b["detail"][0]["loc"] == ["body", "signals", 1]),
    # LSTM_PFD's schema says max_items=128: pydantic answers 422 too_long before the handler's
    # 400 (which only a lower PFD_MAX_BATCH_SIZE reaches: test_auth_matrix).
    ("batch-over-128", "POST", "/predict/batch", body({"signals": [[0.0]] * 129}), 422,
     lambda b: b["detail"][0]["type"] == "too_long" and b["detail"][0]["loc"] == ["body", "signals"]
     and b["detail"][0]["msg"] == "List should have at most 128 items after validation, not 129"),
    ("wrong-method-predict", "GET", "/predict", None, 405, lambda b: b == {"detail": "Method Not Allowed"}),
    ("wrong-method-health", "POST", "/health", b"{}", 405, lambda b: b == {"detail": "Method Not Allowed"}),
    ("unknown-route", "GET", "/nope", None, 404, lambda b: b == {"detail": "Not Found"}),
    ("unknown-nested-route", "POST", "/predict/batch/extra", b"{}", 404, lambda b: b == {"detail": "Not Found"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(http, case):
    _, method, path, raw, expected, check = case
    status, payload = http.json(method, path, raw=raw)
    assert status == expected, payload
    assert check(payload), payload
    # ...and the server still answers a good request.
    status, ok = http.json("GET", "/health")
    assert status == 200 and ok["model_loaded"]


def test_oversize_body_is_413_and_server_survives():
    """A body over pfd-host's limit is refused before it reaches the component."""
    from conftest import Server

    small = Server({"PFD_MAX_BODY_BYTES": "100000"})
    try:
        status, payload = small.http.json("POST", "/predict", {"signal": GOOD})
        assert status == 413, payload
        assert payload["error"] and payload["detail"].startswith("413")
        assert small.http.json("GET", "/health")[0] == 200
    finally:
        small.stop()


def test_auth_matrix(secured):
    http = secured.http
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "test-key-12"}, {"Authorization": "Basic test-key-123"}):
        status, payload = http.json("POST", "/predict", {"signal": GOOD}, headers=headers)
        assert status == 401, (headers, payload)
        assert payload["error"] == "Invalid or missing API key"
    status, payload = http.json("POST", "/predict/batch", {"signals": [GOOD] * 5}, headers={"X-API-Key": "test-key-123"})
    assert status == 400 and payload["error"] == "Batch size exceeds maximum (4)"
    assert secured.alive()
