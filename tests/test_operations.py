"""What operators rely on, through pfd-host serving the real component: Prometheus metrics, the
API key checked before the body is read, per-client rate limits, and `pfd-host config`."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import FLAVOURS, ROOT, Server, flavour_server, host_bin, signal_of
from test_openapi import check

SPEC = json.loads((ROOT / "crates" / "pfd-core" / "api" / "openapi.json").read_text())

RULES = ROOT / "deploy" / "prometheus" / "rules" / "pfd-edge.rules.yml"


# --- metrics -----------------------------------------------------------------------------------

def scrape(http) -> dict[tuple[str, tuple], float]:
    """`/metrics` parsed by the Prometheus client's own OpenMetrics parser: {(sample, labels): value}."""
    status, headers, body = http.request("GET", "/metrics")
    assert status == 200, body
    headers = lower(headers)
    assert headers["content-type"].startswith("application/openmetrics-text"), headers
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        samples[(family.name, ("family",))] = 0.0
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def lower(headers: dict) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name, **labels) -> float:
    """Sum over the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture(scope="module", params=list(FLAVOURS))
def fresh(request):
    """A server of its own per build, so that every count below is this module's traffic."""
    s = flavour_server(request.param)
    yield s
    s.stop()


def test_metrics_count_the_traffic(fresh):
    http = fresh.http
    # model_loaded is set by the host asking the component, once it is up.
    deadline = time.time() + 60
    while True:
        before = scrape(http)
        loaded = {m: value(before, "model_loaded", model=m) for m in ("bearing-lstm", "bearing-lstm-int8")}
        if all(v == 1 for v in loaded.values()) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert loaded == {"bearing-lstm": 1, "bearing-lstm-int8": 1}

    predicted = []
    for cls, seed in [(0, 71), (3, 72), (7, 73)]:
        status, body = http.json("POST", "/predict", {"signal": signal_of(cls, seed)})
        assert status == 200, body
        predicted.append(body["class_name"])
    status, body = http.json("POST", "/predict/batch", {"signals": [signal_of(5, 74), signal_of(9, 75)]})
    assert status == 200, body
    predicted += [p["class_name"] for p in body["predictions"]]
    assert http.json("POST", "/predict", {"signal": [1.0, 2.0]})[0] == 422
    assert http.json("GET", "/no/such/route")[0] == 404
    assert http.json("GET", "/health/ready")[0] == 200
    oip = {"inputs": [{"name": "input", "shape": [2, 1, len(signal_of(1, 76))], "datatype": "FP32",
                       "data": signal_of(1, 76) + signal_of(2, 77)}]}
    status, body = http.json("POST", "/v2/models/bearing-lstm-int8/infer", oip)
    assert status == 200, body

    after = scrape(http)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("http_requests_total", route="/predict", code="200") == 3
    assert delta("http_requests_total", route="/predict", code="422") == 1
    assert delta("http_requests_total", route="/predict/batch", code="200") == 1
    assert delta("http_requests_total", route="unmatched", code="404") == 1
    assert delta("http_requests_total", route="/health/ready", code="200") == 1
    assert delta("http_requests_total", route="/v2/models/{name}/infer", code="200") == 1
    # The scrape before this one was counted too (a response is counted once it is sent).
    assert delta("http_requests_total", route="/metrics", code="200") >= 1
    assert delta("http_request_duration_seconds_count", route="/predict") == 4
    # 0.5 s (the SLO threshold) is a bucket boundary; these requests all beat it.
    assert delta("http_request_duration_seconds_bucket", route="/predict", le="0.5") == 4
    assert delta("http_request_duration_seconds_bucket", route="/predict", le="0.0001") <= 4

    # Inferences by predicted class: exactly what the responses said.
    for name in set(predicted):
        assert delta("inferences_total", model="bearing-lstm", **{"class": name}) == predicted.count(name), name
    assert total(after, "inferences_total", model="bearing-lstm") - total(before, "inferences_total", model="bearing-lstm") == 5
    assert total(after, "inferences_total", model="bearing-lstm-int8") - total(before, "inferences_total", model="bearing-lstm-int8") == 2
    # One engine call per request, labelled with the backend that ran it.
    assert delta("inference_duration_seconds_count", model="bearing-lstm", backend=fresh.device) == 4
    assert delta("inference_duration_seconds_count", model="bearing-lstm-int8", backend=fresh.device) == 1
    assert delta("inference_duration_seconds_sum", model="bearing-lstm", backend=fresh.device) > 0
    # The scrape itself is the one request in flight; nothing waits for a slot.
    assert value(after, "http_requests_in_flight") == 1
    assert value(after, "inference_queue_depth") == 0
    assert fresh.alive()


def test_inference_records_never_reach_clients(fresh):
    status, headers, _ = fresh.http.request(
        "POST", "/predict", {"signal": signal_of(4, 78)}, headers={"pfd-telemetry": "1", "Content-Type": "application/json"})
    assert status == 200
    assert not any(k.lower() in ("pfd-inference", "pfd-telemetry") for k in headers), headers


def test_every_metric_the_alert_rules_use_is_exported(fresh):
    http = fresh.http
    http.json("POST", "/predict", {"signal": signal_of(1, 79)})
    exported = {name for name, _ in scrape(http)}
    # Metric names in expressions and descriptions (not the `pfd_edge:…:…` recorded series).
    used = set(re.findall(r"(?<![:\w])((?:http|inference|inferences|model)_[a-z_]+)", RULES.read_text()))
    assert used, "no metric names found in the rules"
    assert used <= exported, f"used by the rules but not exported: {sorted(used - exported)}"


def test_metrics_can_be_turned_off():
    s = Server({}, args=["--component", "build/pfd-edge.wasm", "--metrics", "off"])
    try:
        status, body = s.http.json("GET", "/metrics")
        assert status == 404, body  # the component's own 404
    finally:
        s.stop()


# --- API key before the body -------------------------------------------------------------------

def raw_exchange(port: int, head: str, timeout: float = 10.0) -> bytes:
    """Sends a request head (and no body) and returns what comes back before `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        sock.settimeout(timeout)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        return data


@pytest.mark.parametrize("path,shape", [("/predict", "lstm"), ("/v2/models/bearing-lstm/infer", "oip")])
def test_a_missing_key_is_refused_before_the_body_is_read(secured, path, shape):
    # The head announces 100 MB and no byte of it is ever sent: only a server that answers
    # before reading the body can reply at all.
    started = time.monotonic()
    reply = raw_exchange(secured.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                       f"Content-Length: 100000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert time.monotonic() - started < 5
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    if shape == "oip":
        assert body == {"error": "Invalid or missing API key"}
        check(SPEC, "/v2/models/{model}/infer", "post", 401, body)
    else:
        assert body["error"] == "Invalid or missing API key" and body["detail"].startswith("401")
        check(SPEC, path, "post", 401, body)
    assert secured.http.json("GET", "/health/ready")[0] == 200


def test_several_keys_each_work_and_bearer_too():
    s = Server({"PFD_API_KEY": "old-key,new-key"}, args=["--component", "build/pfd-edge.wasm"])
    try:
        for headers in ({"X-API-Key": "old-key"}, {"X-API-Key": "new-key"}, {"Authorization": "Bearer new-key"}):
            status, body = s.http.json("GET", "/model/info", headers=headers)
            assert status == 200, (headers, body)
        for headers in ({}, {"X-API-Key": "old-key,new-key"}, {"Authorization": "Basic b2xkLWtleQ=="}):
            assert s.http.json("GET", "/model/info", headers=headers)[0] == 401, headers
    finally:
        s.stop()


# --- rate limits -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def limited():
    # One token every 5 s, bursts of 3: nothing refills between the requests of a test.
    s = Server({}, args=["--component", "build/pfd-edge.wasm", "--rate-limit", "0.2",
                         "--rate-limit-burst", "3", "--trust-forwarded-for"])
    yield s
    s.stop()


def test_a_client_gets_its_burst_then_429_with_retry_after(limited):
    http, client = limited.http, {"X-Forwarded-For": "198.51.100.1"}
    remaining = []
    for _ in range(3):
        status, headers, _ = http.request("GET", "/", headers=client)
        assert status == 200
        assert lower(headers)["x-ratelimit-limit"] == "3"
        remaining.append(int(lower(headers)["x-ratelimit-remaining"]))
        assert 0 < int(lower(headers)["x-ratelimit-reset"]) <= 15
    assert remaining == [2, 1, 0]
    status, headers, body = http.request("POST", "/predict", {"signal": signal_of(0, 80)}, headers=client)
    assert status == 429
    assert 1 <= int(lower(headers)["retry-after"]) <= 5
    # Full again only after the next token and two more (5 s each).
    assert int(lower(headers)["x-ratelimit-reset"]) >= int(lower(headers)["retry-after"]) + 9
    assert lower(headers)["x-ratelimit-remaining"] == "0"
    err = json.loads(body)
    assert err["detail"].startswith("429") and "Rate limit" in err["error"]
    check(SPEC, "/predict", "post", 429, err)
    # OIP clients get Triton's error shape.
    status, _, body = http.request("GET", "/v2/models/bearing-lstm", headers=client)
    assert status == 429 and set(json.loads(body)) == {"error"}
    check(SPEC, "/v2/models/{model}", "get", 429, json.loads(body))
    # Probes and scrapes are never limited; the server keeps serving.
    assert http.request("GET", "/health/ready", headers=client)[0] == 200
    assert http.request("GET", "/v2/health/live", headers=client)[0] == 200
    samples = scrape(limited.http)
    assert value(samples, "http_requests_total", route="/predict", code="429") >= 1


def test_each_client_has_its_own_bucket(limited):
    http = limited.http
    for _ in range(3):
        assert http.request("GET", "/", headers={"X-Forwarded-For": "198.51.100.2"})[0] == 200
    assert http.request("GET", "/", headers={"X-Forwarded-For": "198.51.100.2"})[0] == 429
    # Another client (the proxy appended its address last), and the proxy's own requests.
    assert http.request("GET", "/", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.3"})[0] == 200
    assert http.request("GET", "/")[0] == 200


def test_buckets_per_api_key_refill():
    s = Server({"PFD_API_KEY": "k1,k2"}, args=["--component", "build/pfd-edge.wasm", "--rate-limit", "1",
                                               "--rate-limit-burst", "2", "--rate-limit-by", "api-key"])
    try:
        k1, k2 = {"X-API-Key": "k1"}, {"X-API-Key": "k2"}
        assert [s.http.request("GET", "/model/info", headers=k1)[0] for _ in range(2)] == [200, 200]
        status, headers, _ = s.http.request("GET", "/model/info", headers=k1)
        assert status == 429
        assert s.http.request("GET", "/model/info", headers=k2)[0] == 200, "k2 has its own bucket"
        # A missing key is a 401 (checked first), and the token comes back after Retry-After.
        assert s.http.request("GET", "/model/info")[0] == 401
        time.sleep(int(lower(headers)["retry-after"]) + 0.1)
        assert s.http.request("GET", "/model/info", headers=k1)[0] == 200
    finally:
        s.stop()


# --- configuration -----------------------------------------------------------------------------

def run_host(args, env=None, cwd=None, timeout=60):
    base = {k: v for k, v in os.environ.items() if not k.startswith("PFD_")}
    return subprocess.run([host_bin(), *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_config_shows_values_sources_and_hides_secrets(tmp_path):
    (tmp_path / ".env").write_text("PFD_MAX_CONCURRENCY=7\nPFD_REQUEST_TIMEOUT_MS=1111\nPFD_RATE_LIMIT=2\n")
    r = run_host(["config", "--format", "json", "--manifest", str(ROOT / "spin.toml"),
                  "--listen", "127.0.0.1:4003", "--env", "PFD_MAX_BATCH_SIZE=4"],
                 env={"PFD_MAX_CONCURRENCY": "9", "PFD_API_KEY": "s3cret-value"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "s3cret-value" not in r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["dotenv"] == str(tmp_path / ".env")
    host = {s["name"]: (s["value"], s["source"]) for s in out["host"]}
    assert host["PFD_LISTEN"] == ("127.0.0.1:4003", "flag")
    assert host["PFD_MAX_CONCURRENCY"] == ("9", "environment")  # the environment beats .env
    assert host["PFD_REQUEST_TIMEOUT_MS"] == ("1111", ".env")
    assert host["PFD_RATE_LIMIT"] == ("2", ".env")
    assert host["PFD_MAX_BODY_BYTES"] == ("256MiB", "default")
    component = {s["name"]: (s["value"], s["source"]) for s in out["component"]}
    assert component["PFD_API_KEY"] == ("<redacted>", "environment")
    assert component["PFD_MAX_BATCH_SIZE"] == ("4", "--env")
    assert component["PFD_MODEL"] == ("bearing-lstm", "spin.toml")
    # The text form says the same.
    r = run_host(["config", "--manifest", str(ROOT / "spin.toml")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^PFD_REQUEST_TIMEOUT_MS=1111 +# \.env$", r.stdout, re.M), r.stdout
    assert re.search(r"^PFD_API_KEY=<empty> +# spin\.toml$", r.stdout, re.M), r.stdout


@pytest.mark.parametrize("env,dotenv,needle", [
    ({}, "PFD_MAX_BODY_BYTE=1MiB\n", "PFD_MAX_BODY_BYTE (from .env); did you mean PFD_MAX_BODY_BYTES?"),
    ({"PFD_MAX_BATCH_SIZE": "0"}, "", "PFD_MAX_BATCH_SIZE"),
    ({"PFD_REQUIRE_AUTH": "true"}, "", "PFD_REQUIRE_AUTH"),
    ({"PFD_RATE_LIMIT": "fast"}, "", "rate-limit"),
])
def test_invalid_settings_stop_config_and_serve_naming_the_setting(tmp_path, env, dotenv, needle):
    (tmp_path / ".env").write_text(dotenv)
    for cmd in (["config"], ["serve", "--listen", "127.0.0.1:0"]):
        r = run_host([*cmd, "--manifest", str(ROOT / "spin.toml")], env=env, cwd=tmp_path)
        assert r.returncode != 0, (cmd, r.stdout)
        assert needle in r.stderr, (cmd, r.stderr)


def test_an_unknown_variable_in_the_environment_is_only_a_warning(tmp_path):
    r = run_host(["config", "--manifest", str(ROOT / "spin.toml")], env={"PFD_LISTN": "x"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "unknown setting PFD_LISTN (from the environment); did you mean PFD_LISTEN?" in r.stderr


# --- batch-size limit (PFD_MAX_BATCH_SIZE), on both APIs ----------------------------------------

def test_batches_over_the_limit_are_refused_on_both_apis(secured):
    # The secured server runs with PFD_MAX_BATCH_SIZE=4.
    key = {"X-API-Key": "test-key-123"}
    signals = [signal_of(i, 81) for i in range(5)]
    status, body = secured.http.json("POST", "/predict/batch", {"signals": signals}, headers=key)
    assert status == 400, body
    check(SPEC, "/predict/batch", "post", status, body)
    assert "4" in body["error"], body
    oip = {"inputs": [{"name": "input", "shape": [5, 1, len(signals[0])], "datatype": "FP32",
                       "data": [x for s in signals for x in s]}]}
    status, body = secured.http.json("POST", "/v2/models/bearing-lstm/infer", oip, headers=key)
    assert status == 400 and "exceeds the maximum (4)" in body["error"], body
    check(SPEC, "/v2/models/{model}/infer", "post", status, body)
    # At the limit, both answer.
    status, body = secured.http.json("POST", "/predict/batch", {"signals": signals[:4]}, headers=key)
    assert status == 200 and body["batch_size"] == 4, body
