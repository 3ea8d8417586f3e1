#!/usr/bin/env python3
"""Latency of one route through a running server: one client, keep-alive, N sequential requests.

Prints p50/p99 of the round trip and, for predictions, the medians of the guest's own
`Server-Timing` split (decode / infer / encode); "rest" is round trip minus those (host,
instantiation, HTTP, client). Used for the figures in the README and the issue notes:

    scripts/latency.py --port 3000 --path /health -n 1000
    scripts/latency.py --port 3000 --path /predict -n 1000 --body /tmp/req.json
"""
import argparse
import http.client
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument("--path", default="/health")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--body", help="JSON file to POST")
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    body = open(args.body, "rb").read() if args.body else None
    conn = http.client.HTTPConnection(args.host, args.port, timeout=60)
    lat, parts = [], {"decode": [], "infer": [], "encode": []}
    for i in range(args.warmup + args.n):
        t = time.perf_counter()
        conn.request("POST" if body else "GET", args.path, body=body, headers={"content-type": "application/json"})
        r = conn.getresponse()
        r.read()
        dt = (time.perf_counter() - t) * 1e3
        if r.status != 200:
            raise SystemExit(f"{args.path}: HTTP {r.status}")
        if i < args.warmup:
            continue
        lat.append(dt)
        for metric in filter(None, (r.getheader("server-timing") or "").split(",")):
            name, _, dur = metric.strip().partition(";dur=")
            if name in parts:
                parts[name].append(float(dur))
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    line = f"{args.path}: n={len(lat)} p50={q(0.50):.2f} ms p99={q(0.99):.2f} ms"
    if parts["infer"]:
        med = {k: statistics.median(v) for k, v in parts.items()}
        rest = statistics.median(lat) - sum(med.values())
        line += " | median split: " + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()) + f", rest {rest:.2f} ms"
    print(line)


if __name__ == "__main__":
    main()
