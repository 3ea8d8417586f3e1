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
    # Hostile JSON: nesting, number literals, strings that are not valid Unicode, bytes that
    # are not UTF-8, a BOM, trailing garbage — each a 422 json_invalid, never a crash.
    ("deep-nesting", "POST", "/predict", b'{"signal": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    # An unknown key's value is skipped, however deep (without recursion), and the known ones
    # are still checked.
    ("deep-nesting-in-unknown-key", "POST", "/predict", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "signal": [0]}', 422, lambda b: b["detail"][0]["loc"] == ["body", "signal"] and "Got 1 samples" in b["detail"][0]["msg"]),
    ("huge-number-literal", "POST", "/predict", with_sample("1" + "0" * 5000), 422, lambda b: b["detail"][0]["loc"][:2] == ["body", "signal"] or b["detail"][0]["type"] == "json_invalid"),
    ("huge-exponent", "POST", "/predict", with_sample("1e999999999999999999"), 422, lambda b: b["detail"][0]["loc"][:2] == ["body", "signal"] or b["detail"][0]["type"] == "json_invalid"),
    ("number-grammar-leading-zero", "POST", "/predict", with_sample("01"), 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("number-grammar-bare-dot", "POST", "/predict", with_sample(".5"), 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("number-grammar-plus", "POST", "/predict", with_sample("+1"), 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("number-grammar-hex", "POST", "/predict", with_sample("0x10"), 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("lone-surrogate-in-key", "POST", "/predict", b'{"sig\\ud800nal": [0]}', 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("lone-surrogate-in-value", "POST", "/predict", with_sample('"\\udc00"'), 422, lambda b: b["detail"][0]["loc"][:2] == ["body", "signal"] or b["detail"][0]["type"] == "json_invalid"),
    ("invalid-utf8-in-unknown-key", "POST", "/predict", b'{"signal": [0], "x": "\xff\xfe"}', 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("invalid-utf8-in-key", "POST", "/predict", b'{"signal\xff": [0]}', 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("utf8-bom", "POST", "/predict", b"\xef\xbb\xbf" + body({"signal": GOOD}), 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("nul-bytes", "POST", "/predict", b"\0" * 1000, 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("trailing-garbage", "POST", "/predict", body({"signal": GOOD}) + b" x", 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("two-documents", "POST", "/predict", body({"signal": GOOD}) * 2, 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("unterminated-string", "POST", "/predict", b'{"signal": [0], "x": "abc', 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    # Wrong types, one field at a time.
    ("body-is-null", "POST", "/predict", b"null", 422, lambda b: b["detail"][0]["type"] == "model_attributes_type"),
    ("body-is-number", "POST", "/predict", b"42", 422, lambda b: b["detail"][0]["type"] == "model_attributes_type"),
    ("signal-is-null", "POST", "/predict", body({"signal": None}), 422, lambda b: b["detail"][0]["type"] == "list_type"),
    ("signal-is-object", "POST", "/predict", body({"signal": {"0": 1.0}}), 422, lambda b: b["detail"][0]["type"] == "list_type"),
    ("signal-nested-lists", "POST", "/predict", body({"signal": [[0.0]] * SIGNAL_LENGTH}), 422, lambda b: b["detail"][0]["loc"][:2] == ["body", "signal"]),
    ("sample-is-object", "POST", "/predict", with_sample("{}"), 422, lambda b: b["detail"][0]["loc"] == ["body", "signal", 5]),
    ("sample-is-list", "POST", "/predict", with_sample("[1]"), 422, lambda b: b["detail"][0]["loc"] == ["body", "signal", 5]),
    ("top-k-not-a-number", "POST", "/predict", body({"signal": GOOD, "return_top_k": "abc"}), 422, lambda b: b["detail"][0]["loc"] == ["body", "return_top_k"]),
    ("top-k-huge", "POST", "/predict", body({"signal": GOOD, "return_top_k": 10 ** 30}), 422, lambda b: b["detail"][0]["loc"] == ["body", "return_top_k"]),
    ("probabilities-null", "POST", "/predict", body({"signal": GOOD, "return_probabilities": None}), 422, lambda b: b["detail"][0]["loc"] == ["body", "return_probabilities"]),
    ("batch-signals-missing", "POST", "/predict/batch", body({"signal": GOOD}), 422, lambda b: b["detail"][0]["loc"] == ["body", "signals"] and b["detail"][0]["type"] == "missing"),
    ("batch-signals-is-object", "POST", "/predict/batch", body({"signals": {"a": GOOD}}), 422, lambda b: b["detail"][0]["type"] == "list_type"),
    ("batch-signals-flat", "POST", "/predict/batch", body({"signals": GOOD}), 422, lambda b: b["detail"][0]["loc"][:3] == ["body", "signals", 0]),
    ("batch-sample-NaN", "POST", "/predict/batch", ('{"signals": [[' + ",".join(["0"] * 7 + ["NaN"]) + "]]}").encode(), 422, lambda b: b["detail"][0]["type"] == "json_invalid" and "NaN" in b["detail"][0]["ctx"]["error"]),
    ("batch-malformed-json", "POST", "/predict/batch", b'{"signals": [[0, 1', 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("batch-deep-nesting", "POST", "/predict/batch", b'{"signals": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, lambda b: b["detail"][0]["type"] == "json_invalid"),
    ("wrong-method-predict", "GET", "/predict", None, 405, lambda b: b == {"detail": "Method Not Allowed"}),
    ("wrong-method-health", "POST", "/health", b"{}", 405, lambda b: b == {"detail": "Method Not Allowed"}),
    ("unknown-route", "GET", "/nope", None, 404, lambda b: b == {"detail": "Not Found"}),
    ("unknown-nested-route", "POST", "/predict/batch/extra", b"{}", 404, lambda b: b == {"detail": "Not Found"}),
    ("wrong-method-batch", "PUT", "/predict/batch", b"{}", 405, lambda b: b == {"detail": "Method Not Allowed"}),
    ("wrong-method-model-info", "DELETE", "/model/info", None, 405, lambda b: b == {"detail": "Method Not Allowed"}),
]

# The Open Inference Protocol's errors: Triton's shape, `{"error": message}`, 400 for a bad
# request, 404 for what does not exist. Model names are folder names: no traversal.
INFER = "/v2/models/bearing-lstm/infer"


def oip(inp: dict | None = None, **request) -> bytes:
    base = {"name": "input", "shape": [1, 1, SIGNAL_LENGTH], "datatype": "FP32", "data": GOOD}
    return body({"inputs": [dict(base, **(inp or {}))], **request})


def oip_binary(size: int, header_len: int | None = None, data: bytes = b"") -> tuple[bytes, str]:
    header = body({"inputs": [{"name": "input", "shape": [1, 1, SIGNAL_LENGTH], "datatype": "FP32",
                               "parameters": {"binary_data_size": size}}]})
    return header + data, str(len(header) if header_len is None else header_len)


def error_has(needle: str):
    return lambda b: set(b) == {"error"} and needle.lower() in b["error"].lower()


OIP_CASES = [
    ("oip-shape-u64-overflow", "POST", INFER, oip({"shape": [1, 1, 2 ** 64 - 1]}), 400, error_has("")),
    ("oip-shape-product-overflow", "POST", INFER, oip({"shape": [2 ** 40, 2 ** 40, 1]}), 400, error_has("")),
    ("oip-shape-negative", "POST", INFER, oip({"shape": [-1, 1, SIGNAL_LENGTH]}), 400, error_has("")),
    ("oip-shape-empty", "POST", INFER, oip({"shape": []}), 400, error_has("")),
    ("oip-shape-not-a-list", "POST", INFER, oip({"shape": "1x1"}), 400, error_has("")),
    ("oip-datatype-bytes", "POST", INFER, oip({"datatype": "BYTES"}), 400, error_has("FP32")),
    ("oip-datatype-unknown", "POST", INFER, oip({"datatype": "FP128"}), 400, error_has("")),
    ("oip-data-nested-deep", "POST", INFER, b'{"inputs": [{"name": "input", "shape": [1, 1, 1], "datatype": "FP32", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}", 400, error_has("")),
    ("oip-data-NaN", "POST", INFER, oip({"data": None}).replace(b"null", b"NaN"), 400, error_has("")),
    ("oip-data-strings", "POST", INFER, oip({"data": ["a"] * SIGNAL_LENGTH}), 400, error_has("")),
    ("oip-inputs-not-a-list", "POST", INFER, body({"inputs": {"name": "input"}}), 400, error_has("")),
    ("oip-inputs-missing", "POST", INFER, body({}), 400, error_has("")),
    ("oip-invalid-utf8", "POST", INFER, oip()[:-1] + b', "x": "\xff"}', 400, error_has("unicode")),
    ("oip-lone-surrogate", "POST", INFER, oip()[:-1] + b', "id": "\\ud800"}', 400, error_has("hex escape")),
    ("oip-unknown-model", "POST", "/v2/models/nope/infer", oip(), 404, error_has("nope")),
    ("oip-unknown-version", "POST", "/v2/models/bearing-lstm/versions/999/infer", oip(), 404, error_has("999")),
    ("oip-traversal-dotdot", "GET", "/v2/models/..%2F..%2Fetc/ready", None, 404, error_has("")),
    ("oip-traversal-hidden", "GET", "/v2/models/.config/ready", None, 404, error_has("")),
    ("oip-traversal-backslash", "GET", "/v2/models/..%5Cmodels/ready", None, 404, error_has("")),
    ("oip-traversal-encoded-slash", "POST", "/v2/models/bearing-lstm%2F..%2Fbearing-lstm/infer", oip(), 404, error_has("")),
    ("oip-wrong-method-ready", "POST", "/v2/models/bearing-lstm/ready", b"{}", 405, error_has("")),
]


def binary_case(name, size, header_len=None, data=b""):
    raw, length = oip_binary(size, header_len, data)
    return (name, "POST", INFER, raw, 400, error_has(""), {"Inference-Header-Content-Length": length})


# Binary tensors: the header-length and size fields are the client's word, and may lie.
OIP_BINARY_CASES = [
    binary_case("oip-header-length-past-body", SIGNAL_LENGTH * 4, header_len=10 ** 9),
    binary_case("oip-header-length-negative", SIGNAL_LENGTH * 4, header_len=-5),
    binary_case("oip-header-length-zero", SIGNAL_LENGTH * 4, header_len=0, data=b"\0" * SIGNAL_LENGTH * 4),
    binary_case("oip-header-length-cuts-json", SIGNAL_LENGTH * 4, header_len=7, data=b"\0" * SIGNAL_LENGTH * 4),
    binary_case("oip-binary-size-past-body", SIGNAL_LENGTH * 4, data=b"\0" * 16),
    binary_case("oip-binary-size-u64-max", 2 ** 64 - 1, data=b"\0" * 16),
    binary_case("oip-binary-size-not-f32-multiple", 7, data=b"\0" * 7),
    binary_case("oip-binary-trailing-bytes", SIGNAL_LENGTH * 4, data=b"\0" * (SIGNAL_LENGTH * 4 + 3)),
]



MATRIX = [c + ({},) for c in CASES + OIP_CASES] + OIP_BINARY_CASES


def test_the_matrix_is_as_large_as_promised():
    assert len(MATRIX) >= 60, len(MATRIX)
    assert len({c[0] for c in MATRIX}) == len(MATRIX), "case ids are unique"


@pytest.mark.parametrize("case", MATRIX, ids=[c[0] for c in MATRIX])
def test_bad_input(http, case):
    _, method, path, raw, expected, check, headers = case
    status, payload = http.json(method, path, raw=raw, headers=dict(headers))
    assert status == expected, payload
    assert check(payload), payload
    # ...and the server still answers a good request.
    status, ok = http.json("GET", "/health")
    assert status == 200 and ok["model_loaded"]


def test_auth_matrix(secured):
    http = secured.http
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "test-key-12"}, {"Authorization": "Basic test-key-123"}):
        status, payload = http.json("POST", "/predict", {"signal": GOOD}, headers=headers)
        assert status == 401, (headers, payload)
        assert payload["error"] == "Invalid or missing API key"
    status, payload = http.json("POST", "/predict/batch", {"signals": [GOOD] * 5}, headers={"X-API-Key": "test-key-123"})
    assert status == 400 and payload["error"] == "Batch size exceeds maximum (4)"
    assert secured.alive()
