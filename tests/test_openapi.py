"""/openapi.json is served and describes what the routes actually answer: every documented
operation is called, and each answer's status and body must match the document."""
import json

import pytest
from jsonschema import Draft202012Validator

from conftest import SIGNAL_LENGTH

MODEL = "bearing-lstm"


@pytest.fixture(scope="module")
def spec(http):
    status, doc = http.json("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    return doc


def check(spec, path, method, status, body):
    op = spec["paths"][path][method]
    assert str(status) in op["responses"], f"{method.upper()} {path} answered {status}, not documented"
    response = op["responses"][str(status)]
    if "$ref" in response:  # "#/components/responses/<name>"
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {}).get("application/json", {})
    if "schema" in content:
        schema = dict(content["schema"], components=spec["components"])
        errors = list(Draft202012Validator(schema).iter_errors(body))
        assert not errors, f"{method.upper()} {path} {status}: {errors[0].message}"


def test_every_documented_operation_answers_as_documented(http, spec, card):
    good = {"signal": [0.0] * SIGNAL_LENGTH, "return_top_k": 2}
    bodies = {
        ("/predict", "post"): [good, {"signal": [1.0]}],
        ("/predict/batch", "post"): [{"signals": [[0.0] * SIGNAL_LENGTH]}, {"signals": []}, {"signals": [[0.0]] * 129}],
        ("/v2/models/{model}/infer", "post"): [
            {"id": "x", "inputs": [{"name": "input", "shape": [1, 1, SIGNAL_LENGTH], "datatype": "FP32", "data": [0.0] * SIGNAL_LENGTH}]},
            {"inputs": []},
        ],
    }
    bodies[("/v2/models/{model}/versions/{version}/infer", "post")] = bodies[("/v2/models/{model}/infer", "post")]
    called = 0
    for path, ops in spec["paths"].items():
        concrete = path.replace("{model}", MODEL).replace("{version}", card["version"])
        for method in ops:
            if method == "parameters":
                continue
            documented = ops[method]["responses"].get("200", {}).get("content", {})
            if documented and "application/json" not in documented:
                # The page's files: the documented content type, not JSON.
                status, headers, _ = http.request(method.upper(), concrete)
                kind = {k.lower(): v for k, v in headers.items()}["content-type"].split(";")[0]
                assert (status, kind) in [(200, t) for t in documented], (path, status, kind)
                called += 1
                continue
            for body in bodies.get((path, method), [None]):
                status, payload = http.json(method.upper(), concrete, body)
                check(spec, path, method, status, payload)
                called += 1
    assert called >= 18
    # Unknown models on the parametrised paths answer as documented too.
    status, payload = http.json("GET", "/v2/models/nope")
    check(spec, "/v2/models/{model}", "get", status, payload)
    assert status == 404
