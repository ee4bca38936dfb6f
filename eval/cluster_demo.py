"""Sharded stage 1 on a local 3-node Ray cluster (loopback 127.0.0.2-4),
against one index of the same corpus: `just cluster-demo`.

Indexes a BEIR corpus across 3 shards (a document goes to the shard its id
hashes to), runs the test queries through the router and through one index
(in process, and over HTTP through `sift serve`), and reports overlap@10 and
nDCG@10 of both, latency p50/p95, memory per shard, and the time to recover
a killed node's shard. Results go to OUT/report.json.
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import sift
from sift.cluster import LocalCluster, Router

ROOT = pathlib.Path(__file__).resolve().parents[1]


def doc_run(hits, k=10):
    """Document ids in order of their best chunk (BEIR judges documents)."""
    seen = []
    for doc_id in hits:
        if doc_id not in seen:
            seen.append(doc_id)
    return seen[:k]


def write_run(path, runs, tag):
    with open(path, "w") as f:
        for qid, docs in runs.items():
            for rank, doc in enumerate(docs, 1):
                f.write(f"{qid} Q0 {doc} {rank} {1.0 / rank:.6f} {tag}\n")


def score(sift_bin, qrels, run):
    out = subprocess.run([sift_bin, "score", "--qrels", str(qrels), "--run", str(run), "--metrics", "ndcg@10,recall@10", "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["mean"]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "scifact"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--shards-dir", default=str(ROOT / "indexes" / "scifact-sharded"))
    ap.add_argument("--single-dir", default=str(ROOT / "indexes" / "scifact-single"))
    ap.add_argument("--out", default=str(ROOT / "eval" / "out" / "cluster-demo"))
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--max-queries", type=int, default=0)
    ap.add_argument("--sift", default=str(ROOT / "target" / ("release" if (ROOT / "target/release/sift").exists() else "debug") / "sift"))
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = pathlib.Path(args.dataset)
    queries = [json.loads(l) for l in open(dataset / "queries.jsonl")]
    qrels = dataset / "qrels" / f"{args.split}.tsv"
    judged = {line.split("\t")[0] for line in open(qrels).read().splitlines()[1:]}
    queries = [q for q in queries if q["_id"] in judged]
    if args.max_queries:
        queries = queries[: args.max_queries]
    bi = os.environ.get("SIFT_BI_ENCODER_PATH", str(ROOT / "data" / "models" / "all-MiniLM-L6-v2"))
    report = {"queries": len(queries), "shards": args.shards, "depth": args.depth}

    cluster = LocalCluster(nodes=3, port=6399).start()
    try:
        report["nodes"] = cluster.node_addresses()
        print(f"Ray nodes: {report['nodes']}", flush=True)
        router = Router.create(args.shards_dir, args.shards, bi_encoder_path=bi, timeout_s=30)
        documents = sift.read_documents(dataset / "corpus.jsonl")
        t = time.time()
        for i in range(0, len(documents), 600):
            router.add(documents[i : i + 600])
            print(f"sharded: {min(i + 600, len(documents))}/{len(documents)} documents ({time.time() - t:.0f} s)", flush=True)
        report["sharded_index_s"] = time.time() - t
        single = sift.Index(args.single_dir, create=True, bi_encoder_path=bi, load_reranker=False)
        t = time.time()
        single.add(documents)
        report["single_index_s"] = time.time() - t
        info = router.info()
        report["per_shard"] = [{k: i[k] for k in ("shard", "node_ip", "documents", "chunks", "rss_bytes")} for i in info]
        print(json.dumps(report["per_shard"]), flush=True)

        k_chunks = 30
        same, overlap, lat_router, lat_single = 0, 0.0, [], []
        runs_router, runs_single = {}, {}
        for q in queries:
            t = time.perf_counter()
            a = router.search(q["text"], depth=args.depth, k=k_chunks, rerank=False)["hits"]
            lat_router.append(1e3 * (time.perf_counter() - t))
            t = time.perf_counter()
            b = single.search(q["text"], depth=args.depth, k=k_chunks, rerank=False).hits
            lat_single.append(1e3 * (time.perf_counter() - t))
            ta, tb = [h["chunk_id"] for h in a[:10]], [h.chunk_id for h in b[:10]]
            same += ta == tb
            overlap += len(set(ta) & set(tb)) / 10
            runs_router[q["_id"]] = doc_run([h["doc_id"] for h in a])
            runs_single[q["_id"]] = doc_run([h.doc_id for h in b])
        write_run(out / "sharded.run", runs_router, "sharded")
        write_run(out / "single.run", runs_single, "single")
        report["identical_top10"] = same / len(queries)
        report["overlap_at_10"] = overlap / len(queries)
        report["sharded"] = score(args.sift, qrels, out / "sharded.run")
        report["single"] = score(args.sift, qrels, out / "single.run")
        report["latency_ms"] = {
            "router": {"p50": pct(lat_router, 50), "p95": pct(lat_router, 95)},
            "single_in_process": {"p50": pct(lat_single, 50), "p95": pct(lat_single, 95)},
        }
        del single  # free the single index's lock for sift serve

        # The same queries over HTTP through `sift serve` on the single index.
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, SIFT_BI_ENCODER_PATH=bi)
        server = subprocess.Popen([args.sift, "serve", "--index", args.single_dir, "--host", "127.0.0.2", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.2:{port}"
            for _ in range(600):
                try:
                    urllib.request.urlopen(url + "/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            lat_http = []
            for q in queries:
                body = json.dumps({"query": q["text"], "depth": args.depth, "k": k_chunks, "rerank": False}).encode()
                req = urllib.request.Request(url + "/search", body, {"Content-Type": "application/json"})
                t = time.perf_counter()
                urllib.request.urlopen(req, timeout=60).read()
                lat_http.append(1e3 * (time.perf_counter() - t))
            report["latency_ms"]["sift_serve_http"] = {"p50": pct(lat_http, 50), "p95": pct(lat_http, 95)}
        finally:
            server.terminate()
            server.wait(timeout=60)

        # Kill a node holding a shard; time until every shard answers again.
        victim = next(i for i in info if i["node_ip"] != report["nodes"][0])
        killed = time.time()
        cluster.kill_node(victim["node_ip"])
        partial = router.search(queries[0]["text"], depth=args.depth, k=10, rerank=False)
        while not all(router.info(timeout_s=2)):
            time.sleep(0.25)
        report["kill"] = {
            "node": victim["node_ip"],
            "partial_flagged": partial["partial"],
            "missing": partial["shards"]["missing"],
            "recovered_s": time.time() - killed,
            "now_on": [i["node_ip"] for i in router.info()],
        }
    finally:
        cluster.stop()
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
