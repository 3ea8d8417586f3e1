#!/usr/bin/env python3
"""Good clients' latency with and without a slow-body attack, one pfd-host, one run.

    scripts/slow_body_attack.py [--attackers 1000] [--duration 8] [--conc 4]

Starts pfd-host (defaults, the wasi-nn build) and measures `/predict` (the 1.06 MB body of
`load_bench.py`) with **wrk** at `--conc` connections twice: alone (the baseline), then while
`--attackers` connections each announce a 1 MB body, send 100 bytes and then one byte a second.
Reports req/s, p50/p99, wrk's errors and non-2xx answers for both runs, the p99 ratio, what the
attackers were answered and the in-flight body gauge. The attackers are an asyncio script: they
send almost nothing, so Python is not the bottleneck here (wrk carries the measured load).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_bench  # noqa: E402  (same directory: pfd-host start, wrk runner, bodies)


async def attack(addr: str, n: int, stop: threading.Event, answers: dict, connected: list):
    host, port = addr.split(":")

    async def one():
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            answers["connect failed"] = answers.get("connect failed", 0) + 1
            return
        connected[0] += 1
        writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1048576\r\n\r\n" + b" " * 100)
        await writer.drain()
        status = None
        while not stop.is_set() and status is None:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=1.0)
                status = line.split()[1].decode() if line.startswith(b"HTTP/") else "closed"
            except asyncio.TimeoutError:
                try:
                    writer.write(b" ")
                    await writer.drain()
                except OSError:
                    status = "reset"
            except (OSError, IndexError):
                status = "reset"
        answers[status or "still waiting"] = answers.get(status or "still waiting", 0) + 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(n)))


def gauge(addr: str) -> float:
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    m = re.search(r"^http_request_body_in_flight_bytes (\S+)", text, re.M)
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attackers", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--conc", type=int, default=4)
    ap.add_argument("--host-bin", default=os.environ.get(
        "PFD_HOST_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", load_bench.ROOT / "target")) / "release/pfd-host")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lua = tmp / "bench.lua"
        lua.write_text(load_bench.LUA)
        body, path, headers = load_bench.bodies(tmp)["/predict (1 MB JSON)"]
        proc, addr = load_bench.start(args.host_bin, [], tmp / "server.log")
        try:
            base = load_bench.run_wrk(addr, path, body, headers, args.conc, args.duration, lua, proc.pid)
            stop, answers, connected = threading.Event(), {}, [0]
            t = threading.Thread(target=lambda: asyncio.run(attack(addr, args.attackers, stop, answers, connected)))
            t.start()
            deadline = time.time() + 30
            while connected[0] < args.attackers and time.time() < deadline:
                time.sleep(0.1)
            held_before = gauge(addr)
            attacked = load_bench.run_wrk(addr, path, body, headers, args.conc, args.duration, lua, proc.pid)
            held_after = gauge(addr)
            stop.set()
            t.join()
        finally:
            proc.terminate()
            proc.wait()
    report = {"attackers": args.attackers, "connected": connected[0], "baseline": base,
              "under_attack": attacked, "p99_ratio": attacked["p99_ms"] / base["p99_ms"],
              "attackers_answered": answers,
              "body_bytes_in_flight": [held_before, held_after]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
