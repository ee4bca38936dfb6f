#!/usr/bin/env python3
"""Resident memory of `sift serve` on an index (`just bench-serve-rss`).

Starts `SIFT serve --index INDEX --port PORT` (loopback), waits for
/health, reads /proc/PID/status, sends the first N queries of a BEIR
queries.jsonl to /search (stage 1 only unless --rerank), reads it again,
stops the server with SIGTERM and prints a JSON report (also written to
--out). Standard library only; Linux only (/proc).
"""

import argparse
import json
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request


def status(pid):
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def post(url, body):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sift", default="target/release/sift")
    p.add_argument("--index", required=True)
    p.add_argument("--queries", required=True, help="a BEIR queries.jsonl")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--rerank", action="store_true")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--out", default="target/bench/serve-rss.json")
    p.add_argument("extra", nargs="*", help="more arguments for `sift serve`")
    a = p.parse_args()

    queries = []
    with open(a.queries) as f:
        for line in f:
            if line.strip():
                queries.append(json.loads(line)["text"])
            if len(queries) >= a.n:
                break
    base = f"http://127.0.0.1:{a.port}"
    server = subprocess.Popen(
        [a.sift, "serve", "--index", a.index, "--port", str(a.port), *a.extra],
        stdout=subprocess.DEVNULL,
    )
    try:
        started = time.time()
        while True:
            if server.poll() is not None:
                sys.exit(f"sift serve exited with {server.returncode}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() - started > 120:
                sys.exit("sift serve did not answer /health within 120 s")
            time.sleep(0.2)
        ready_s = time.time() - started
        after_open = status(server.pid)
        stage1_ms = []
        for q in queries:
            r = post(base + "/search", {"query": q, "depth": a.depth, "k": 10, "rerank": a.rerank})
            t = r.get("timings", {})
            stage1_ms.append(sum(t.get(s, 0.0) for s in ("tokenize", "bm25", "embed", "hnsw", "fuse")))
        after_queries = status(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    stage1_ms.sort()
    rank = lambda p: stage1_ms[max(1, -(-len(stage1_ms) * p // 100)) - 1]
    report = {
        "index": a.index,
        "ready_seconds": ready_s,
        "queries": len(queries),
        "depth": a.depth,
        "rerank": a.rerank,
        "memory_after_open": after_open,
        "memory_after_queries": after_queries,
        "stage1_ms_p50": rank(50),
        "stage1_ms_p95": rank(95),
    }
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(report, indent=2))
    mib = lambda b: b / 2**20
    print(
        f"sift serve on {a.index}: ready in {ready_s:.1f} s; RSS {mib(after_open['VmRSS']):.0f} MiB after open, "
        f"{mib(after_queries['VmRSS']):.0f} MiB after {len(queries)} searches "
        f"(anon {mib(after_queries['RssAnon']):.0f}, file {mib(after_queries['RssFile']):.0f}, peak {mib(after_queries['VmHWM']):.0f}); "
        f"stage 1 (server-side timings) p50 {rank(50):.1f} ms, p95 {rank(95):.1f} ms"
    )
    print(f"JSON: {a.out}")


if __name__ == "__main__":
    main()
