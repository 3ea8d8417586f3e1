#!/usr/bin/env python3
"""Where a `/diagnose` request's time goes: a real recording end to end, against the model alone.

    scripts/diagnose_bench.py [--requests 10] [--seconds 60,10] [--out bench]

For each component build (wasi-nn: ONNX Runtime on the host; portable: tract in the guest) it
starts pfd-host on a free loopback port and posts the same 48 kHz int16 WAV (a generated Wear
record with an outer-race defect on a 6205 at 1770 rpm, `rpm` and `bearing` given, so every
stage runs) `--requests` times, one at a time after two warm-up requests, and reports the
medians of:

* the guest's own split, from the `Server-Timing` header: decode, resample, the model (every
  window, in engine calls of `PFD_BATCH_SIZE` windows: the floor this issue's target refers
  to), unknown-condition features, evidence (spectra and lines); their total, and
  **total ÷ model**;
* the client's latency, and the **server CPU per request** (pfd-host's utime+stime from
  /proc/<pid>/stat over the measured requests ÷ requests).

Requests go one at a time, so a Python client is not the bottleneck: each takes tens to
hundreds of milliseconds of server time. Writes `<out>/diagnose[-<label>].md` and `.json`.

`--baseline DIR` measures the component builds in DIR beside those of `--components`, in the
same run and interleaved: both hosts are up at once and take requests in turn (baseline, then
this), so the drift of a shared machine falls on both alike — separate runs of the same build
minutes apart differed by up to 30 % here. Each host's CPU is its own process's.

Between each build's requests (in `FLOOR_ROUNDS` rounds), while its hosts are idle, it measures the **native floor** of
the same request (`pfd-host bench --diagnose-floor`: the guest's `/diagnose` route compiled
natively, called in-process with in-process ONNX Runtime on the same body and query): a row of
its own, whose total ÷ model is the best any build of the route reaches on this machine, and
each served row's **total ÷ native**, what serving it as a WASI component adds on top of the
work. `--no-floor` skips it.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models" / "scripts"))
sys.path.insert(0, str(ROOT / "scripts"))

import generator  # noqa: E402
from load_bench import TICKS, cpu_ticks, start  # noqa: E402  (one way to start and read pfd-host)

BUILDS = [  # (name, component file, extra flags)
    ("wasi-nn", "pfd-edge-nn.wasm", ["--device", "cpu"]),
    ("tract", "pfd-edge.wasm", []),
]
RATE, RPM, BEARING = 48_000, 1770.0, "6205"
BPFO_6205 = 3.5848
STAGES = ("decode", "resample", "infer", "unknown", "evidence")


def recording(seconds: int) -> bytes:
    rng = np.random.default_rng([20261204, seconds])
    x = generator.generate(6, rng, seconds * RATE, RATE, shaft_hz=RPM / 60, defect=("bpfo", BPFO_6205))
    return generator.wav_bytes(x, RATE)


QUERY = f"rpm={RPM}&bearing={BEARING}"
FLOOR_ROUNDS = 4  # parts the native floor is measured in, between a build's requests


def native_floor(host_bin: str, body: bytes, seconds: float) -> dict:
    """One run of the native floor of a request with `body` (see the module docs)."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        f.write(body)
        f.flush()
        out = subprocess.run(
            [host_bin, "bench", "--diagnose-floor", f.name, "--diagnose-query", QUERY,
             "--diagnose-content-type", "audio/wav", "--floor-seconds", str(seconds), "--device", "cpu"],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def floor_summary(rounds: list[dict]) -> dict:
    """The floor's rounds as a summary row: medians of the rounds' medians, CPU over them all."""
    med = lambda key: statistics.median([r["timing_ms"][key] for r in rounds])  # noqa: E731
    split = {"decode": med("decode"), "resample": med("resample"), "infer": med("model"),
             "unknown": med("unknown"), "evidence": med("evidence")}
    requests = sum(r["requests"] for r in rounds)
    answer = rounds[-1]["answer"]
    return {
        "build": "native floor", "device": f"native/onnx/{rounds[-1]['device']}",
        "diagnosis": answer["diagnosis"]["class_name"],
        "bpfo_present": "BPFO" in (answer["present"] or []), "windows": answer["windows"],
        "split_ms": split, "total_ms": med("total"), "total_over_model": med("total") / split["infer"],
        "latency_ms": statistics.median([r["wall_ms"] for r in rounds]),
        "cpu_ms_per_request": sum(r["cpu_ms"] * r["requests"] for r in rounds) / requests,
        "requests": requests, "rounds": len(rounds),
    }


def post(addr: str, body: bytes) -> tuple[float, dict[str, float], dict]:
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    t = time.perf_counter()
    conn.request("POST", f"/diagnose?{QUERY}", body, {"Content-Type": "audio/wav"})
    r = conn.getresponse()
    payload = r.read()
    latency = (time.perf_counter() - t) * 1e3
    conn.close()
    if r.status != 200:
        sys.exit(f"/diagnose answered {r.status}: {payload[:300]!r}")
    timing = {}
    for part in r.getheader("server-timing", "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        timing[name] = float(dur)
    return latency, timing, json.loads(payload)


def measure(targets: list[tuple[str, int]], body: bytes, requests: int,
            floor: "callable | None" = None, rounds: int = FLOOR_ROUNDS) -> tuple[list[dict], list[dict]]:
    """`requests` requests to each of `targets` (address, pid), in turn; a summary for each. With
    `floor` (a function of the share of the floor's time to spend), the native floor is measured
    in `rounds` parts between the requests, while the hosts are idle: the drift of the machine
    then falls on it as on them. Returns the summaries and the floor's rounds."""
    for addr, _ in targets:
        for _ in range(2):
            post(addr, body)
    rows: list[list] = [[] for _ in targets]
    cpu = [0.0 for _ in targets]
    floors = []
    rounds = max(1, min(rounds, requests)) if floor else 1
    for r in range(rounds):
        if floor:
            floors.append(floor(1 / rounds))
        t0 = [cpu_ticks(pid) for _, pid in targets]
        for _ in range(requests * (r + 1) // rounds - requests * r // rounds):
            for k, (addr, _) in enumerate(targets):
                latency, timing, answer = post(addr, body)
                rows[k].append((latency, timing, answer))
        t1 = [cpu_ticks(pid) for _, pid in targets]
        cpu = [c + (b - a) * 1000 / TICKS for c, a, b in zip(cpu, t0, t1)]
    return [summary(r, c / requests) for r, c in zip(rows, cpu)], floors


def summary(rows: list, cpu_ms_per_request: float) -> dict:
    med = lambda values: statistics.median(values)  # noqa: E731
    answer = rows[-1][2]
    split = {s: med([t[s] for _, t, _ in rows]) for s in STAGES}
    total = med([a["timing_ms"]["total"] for _, _, a in rows])
    return {
        "windows": len(answer["windows"]), "duration_s": answer["input"]["duration_s"],
        "device": answer["model"]["device"], "diagnosis": answer["diagnosis"]["class_name"],
        "bpfo_present": "BPFO" in (answer["evidence"]["bearing"] or {}).get("present", []),
        "split_ms": split, "total_ms": total, "total_over_model": total / split["infer"],
        "latency_ms": med([lat for lat, _, _ in rows]),
        "cpu_ms_per_request": cpu_ms_per_request, "requests": len(rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--seconds", default="60,10", help="recording lengths, comma-separated")
    ap.add_argument("--builds", default="", help="comma-separated build names (default: all)")
    ap.add_argument("--components", default=str(ROOT / "build"),
                    help="folder of the component builds (default: build/, what xtask writes)")
    ap.add_argument("--label", default="", help="a name for this run in the table (e.g. a commit)")
    ap.add_argument("--baseline", default="", help="folder of baseline component builds, measured interleaved")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--out", default="bench")
    ap.add_argument("--no-floor", action="store_true", help="skip the native floor rows")
    ap.add_argument("--floor-seconds", type=float, default=4.0,
                    help=f"seconds the native floor runs per recording and build (in {FLOOR_ROUNDS} rounds)")
    ap.add_argument("--host-bin", default=os.environ.get("PFD_HOST_BIN")
                    or str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/pfd-host"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recordings = {int(s): recording(int(s)) for s in args.seconds.split(",")}
    results = []
    runs = [(args.baseline_label, args.baseline)] if args.baseline else []
    runs.append((args.label, args.components))
    for name, component, flags in BUILDS:
        if args.builds and name not in args.builds.split(","):
            continue
        procs = []
        try:
            for label, folder in runs:
                proc, addr = start(args.host_bin, ["--component", str(Path(folder) / component), *flags],
                                   out / f"server-diagnose-{name}{'-' + label if label else ''}.log")
                procs.append((label, proc, addr))
            for seconds, body in recordings.items():
                floor = None if args.no_floor else (
                    lambda share, body=body: native_floor(args.host_bin, body, args.floor_seconds * share))
                measured, rounds = measure([(addr, proc.pid) for _, proc, addr in procs], body,
                                           args.requests, floor)
                native = floor_summary(rounds) if rounds else None
                if native:
                    native.update(seconds=seconds, body_bytes=len(body), label=f"beside {name}")
                    results.append(native)
                    print(f"{'native':>10} {'floor':8} {seconds:3} s  total {native['total_ms']:7.1f} ms "
                          f"({native['total_over_model']:.1f}x its model)  cpu {native['cpu_ms_per_request']:.1f} ms/req",
                          flush=True)
                for (label, _, _), r in zip(procs, measured):
                    r.update(build=name, seconds=seconds, body_bytes=len(body), label=label,
                             total_over_native=r["total_ms"] / native["total_ms"] if native else None)
                    results.append(r)
                    s = r["split_ms"]
                    print(f"{label:>10} {name:8} {seconds:3} s  total {r['total_ms']:7.1f} ms = " +
                          " + ".join(f"{k} {s[k]:.1f}" for k in STAGES) +
                          f"  ({r['total_over_model']:.1f}x the model)  cpu {r['cpu_ms_per_request']:.1f} ms/req",
                          flush=True)
        finally:
            for _, proc, _ in procs:
                proc.terminate()
                proc.wait(timeout=60)
    stem = f"diagnose-{args.label}" if args.label else "diagnose"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (out / f"{stem}.md").write_text(markdown(results, args))
    print((out / f"{stem}.md").read_text())


def markdown(results: list[dict], args) -> str:
    lines = [
        f"`/diagnose` of a 48 kHz int16 WAV (generated Wear record, BPFO defect, rpm={RPM:.0f}, "
        f"bearing={BEARING}) through pfd-host; medians of {args.requests} sequential requests after 2 "
        "warm-ups" + (f", {args.baseline_label} and {args.label} interleaved (both hosts up, requests in turn)"
                      if args.baseline else "") + ". Stage times are the guest's (`Server-Timing`); the model column is every window "
        "(in engine calls of PFD_BATCH_SIZE); ratio = total ÷ model (target ≤ 2 on the wasi-nn build). "
        "A *native floor* row is the same route compiled natively and called in-process with ONNX Runtime "
        f"(`pfd-host bench --diagnose-floor`), measured in {FLOOR_ROUNDS} rounds between the build's requests while its hosts were idle; "
        "÷ native = a served build's total over that floor's; a floor's client ms is its wall time per call.",
        "",
        "| build | recording | windows | decode ms | resample ms | model ms | unknown ms | evidence ms "
        "| total ms | total ÷ model | ÷ native | client ms | server CPU ms/req | diagnosis |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["split_ms"]
        over_native = r.get("total_over_native")
        build = (f"{r['build']} {r['label']}" if r["build"] == "native floor"
                 else f"{r['label'] + ' ' if r['label'] else ''}{r['build']}")
        lines.append(
            f"| {build} ({r['device']}) | {r['seconds']} s, {r['body_bytes'] / 1e6:.1f} MB | {r['windows'] or '—'} "
            f"| {s['decode']:.1f} | {s['resample']:.1f} | {s['infer']:.1f} | {s['unknown']:.1f} "
            f"| {s['evidence']:.1f} | {r['total_ms']:.1f} | **{r['total_over_model']:.1f}** "
            f"| {f'{over_native:.1f}' if over_native else '—'} "
            f"| {r['latency_ms']:.1f} | {r['cpu_ms_per_request']:.1f} "
            f"| {r['diagnosis']}{', BPFO present' if r['bpfo_present'] else ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
