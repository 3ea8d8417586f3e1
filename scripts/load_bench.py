#!/usr/bin/env python3
"""Server CPU per request under load: pfd-host configurations side by side, one run.

    scripts/load_bench.py [--duration 8] [--conc 1,4,16,64] [--out bench-load]

For each configuration (a name and `pfd-host serve` flags; the first is the baseline) it starts
pfd-host on a free loopback port, then for each route and concurrency runs **wrk** (a compiled
client; a Python client saturates before the server does) for a fixed time and reports:

* requests/s, p50 and p99 latency (wrk's own histogram, via its Lua `done` hook);
* **server CPU per request**: the server process's utime+stime from /proc/<pid>/stat over the
  run, divided by the requests served;
* RSS: peak during the run (sampled every 100 ms from /proc/<pid>/status) and 10 s after the
  configuration's last run.

Routes: `/predict` with a 1.06 MB body of 102400 six-decimal floats (the body LSTM_PFD clients
send; the samples are the model's first reference vector), OIP binary tensor (400 kB) and
`/health`. wrk counts every socket error and every 4xx/5xx answer; they are reported per cell,
never hidden.

Python only orchestrates: it sends no load. Writes `<out>/load.md` and `<out>/load.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

# Configurations: the first is the baseline every ratio refers to.
#   decommit: wasmtime's reset (madvise every freed slot) — pfd-host before keep-resident.
#   default: today's defaults.
CONFIGS = [
    ("decommit", ["--memory-keep-resident", "0", "--table-keep-resident", "0",
                  "--pagemap-scan", "off"]),
    ("default", []),
]

LUA = r"""
local body_file = os.getenv("BENCH_BODY")
if body_file then
  local f = assert(io.open(body_file, "rb")); wrk.body = f:read("*a"); f:close()
  wrk.method = "POST"
end
local hdrs = os.getenv("BENCH_HEADERS") or ""
for k, v in string.gmatch(hdrs, "([^:;]+):([^;]*)") do wrk.headers[k] = v end
function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\":%d,\"p50_us\":%d,\"p99_us\":%d,\"errors\":%d}\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
    + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def rss_kib(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def bodies(tmp: Path) -> dict[str, tuple[Path | None, str, str]]:
    import numpy as np
    x = np.fromfile(ROOT / "models/bearing-lstm/reference_inputs.f32", dtype="<f4")[:102400]
    predict = tmp / "predict.json"
    predict.write_text('{"signal": [' + ", ".join(f"{v:.6f}" for v in x) + "]}")
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 102400], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 409600}}]}).encode()
    oip = tmp / "oip.bin"
    oip.write_bytes(header + x.astype("<f4").tobytes())
    return {
        "/predict (1 MB JSON)": (predict, "/predict", "Content-Type:application/json"),
        "OIP binary (400 kB)": (oip, "/v2/models/bearing-lstm/infer",
                                f"Content-Type:application/octet-stream;Inference-Header-Content-Length:{len(header)}"),
        "/health": (None, "/health", ""),
    }


def start(host_bin: str, flags: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    proc = subprocess.Popen([host_bin, "serve", "--manifest", str(ROOT / "spin.toml"),
                             "--listen", addr, *flags], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"pfd-host exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://{addr}/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, addr
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("pfd-host did not become ready")


def run_wrk(addr: str, path: str, body: Path | None, headers: str, conc: int, duration: int,
            lua: Path, pid: int) -> dict:
    env = dict(os.environ, BENCH_HEADERS=headers)
    if body:
        env["BENCH_BODY"] = str(body)
    peak = [rss_kib(pid)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = cpu_ticks(pid)
    out = subprocess.run(["wrk", "-t", str(min(conc, 2)), "-c", str(conc), "-d", f"{duration}s",
                          "--latency", "-s", str(lua), f"http://{addr}{path}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    t1 = cpu_ticks(pid)
    stop.set()
    sampler.join()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    stats = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    n = max(stats["requests"], 1)
    return {"conc": conc, "rps": rps, "requests": stats["requests"], "errors": stats["errors"],
            "p50_ms": stats["p50_us"] / 1000, "p99_ms": stats["p99_us"] / 1000,
            "cpu_ms_per_req": (t1 - t0) * 1000 / TICKS / n, "peak_rss_mib": peak[0] / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--conc", default="1,4,16,64")
    ap.add_argument("--routes", default="", help="substring filter on route names")
    ap.add_argument("--configs", default="", help="comma-separated names (default: all)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=FLAGS",
                    help="another configuration, e.g. 'k8=--memory-keep-resident 8MiB' (repeatable)")
    ap.add_argument("--out", default="bench-load")
    ap.add_argument("--host-bin", default=os.environ.get("PFD_HOST_BIN")
                    or str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/pfd-host"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required (apt-get install wrk)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    concs = [int(c) for c in args.conc.split(",")]
    configs = [c for c in CONFIGS if not args.configs or c[0] in args.configs.split(",")]
    configs += [(e.split("=", 1)[0], e.split("=", 1)[1].split()) for e in args.extra]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lua = tmp / "bench.lua"
        lua.write_text(LUA)
        routes = {k: v for k, v in bodies(tmp).items() if args.routes in k}
        for name, flags in configs:
            proc, addr = start(args.host_bin, flags, out / f"server-{name}.log")
            before = rss_kib(proc.pid)
            rows = []
            for route, (body, path, headers) in routes.items():
                for conc in concs:
                    r = run_wrk(addr, path, body, headers, conc, args.duration, lua, proc.pid)
                    r["route"] = route
                    rows.append(r)
                    print(f"{name:9} {route:22} c={conc:<3} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms"
                          f"  p99 {r['p99_ms']:7.2f} ms  cpu {r['cpu_ms_per_req']:6.3f} ms/req"
                          f"  rss {r['peak_rss_mib']:6.0f} MiB  errors {r['errors']}", flush=True)
            end = rss_kib(proc.pid)
            time.sleep(10)
            after = rss_kib(proc.pid)
            proc.terminate()
            proc.wait(timeout=60)
            results.append({"config": name, "flags": flags, "rss_start_mib": before / 1024,
                            "rss_end_mib": end / 1024, "rss_10s_after_mib": after / 1024, "runs": rows})
    (out / "load.json").write_text(json.dumps(results, indent=2))
    (out / "load.md").write_text(markdown(results, args))
    print((out / "load.md").read_text())


def markdown(results: list[dict], args) -> str:
    base = {(r["route"], r["conc"]): r for r in results[0]["runs"]}
    lines = [f"Server CPU per request = pfd-host's utime+stime over the run ÷ requests; wrk, "
             f"{args.duration} s per cell, {os.cpu_count()} cores. Ratio = CPU/request against "
             f"`{results[0]['config']}` (same run).", "",
             "| config | route | conc | req/s | p50 ms | p99 ms | CPU ms/req | ratio | peak RSS MiB | non-2xx |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["runs"]:
            b = base.get((r["route"], r["conc"]))
            ratio = r["cpu_ms_per_req"] / b["cpu_ms_per_req"] if b and b["cpu_ms_per_req"] else float("nan")
            lines.append(f"| {res['config']} | {r['route']} | {r['conc']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r['cpu_ms_per_req']:.3f} | {ratio:.2f} | {r['peak_rss_mib']:.0f} | {r['errors']} |")
    lines += ["", "| config | flags | RSS at start | at end of load | 10 s later |", "|---|---|---|---|---|"]
    for res in results:
        lines.append(f"| {res['config']} | `{' '.join(res['flags']) or '(defaults)'}` | {res['rss_start_mib']:.0f} MiB | "
                     f"{res['rss_end_mib']:.0f} MiB | {res['rss_10s_after_mib']:.0f} MiB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
