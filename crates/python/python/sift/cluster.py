"""Stage 1 sharded on Ray, one rerank on top (needs ``ray``).

A corpus is split over N shards, each a Ray actor holding one sift index
folder; a document goes to the shard its id hashes to (BLAKE2b, stable
across processes and machines). A query goes to every shard; the router
merges the shards' BM25 lists by score and their dense lists by cosine,
fuses the merged lists with reciprocal rank fusion exactly as one index
does, and reranks the merged top ``depth`` once with its own cross-encoder.
The answer has the JSON shape of ``POST /search``, plus ``shards`` (which
answered, which were missing) and ``partial``.

Dense scores are exact per shard (each shard's own HNSW graph over its
vectors) and comparable across shards (cosine). BM25 scores use each
shard's own document frequencies and lengths: with documents routed by a
hash those statistics are samples of one corpus, and how much that moves the
top 10 is measured, not assumed (crates/python/README.md, "Sharded").

Faults: a shard actor is created with ``max_restarts=-1`` and its index on
disk, so when its node dies Ray restarts it on a live node, where it opens
the same folder (the index is at its last commit). Until then queries
answer from the live shards and say which were missing; writes to a
missing shard raise ``ShardUnavailable`` and are not acknowledged.

>>> cluster = LocalCluster(nodes=3).start()                  # doctest: +SKIP
>>> router = Router.create(root="indexes/sharded", shards=3)   # doctest: +SKIP
>>> router.add(documents)                                      # doctest: +SKIP
>>> router.search("what happens to my data if I close my account", depth=50, k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import sift

RRF_K = 60.0


class ShardUnavailable(sift.SiftError):
    """A write reached a shard that is down; nothing of it was applied there."""


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document lives on: a stable hash of its id."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class Shard:
    """One sift index folder, opened for writing (it takes the index's lock)."""

    def __init__(self, shard_id: int, path: str, bi_encoder_path: Optional[str], config: Optional[dict]):
        self.shard_id = shard_id
        self.opened_at = time.time()
        self.index = sift.Index(path, create=True, bi_encoder_path=bi_encoder_path, config=config, load_reranker=False)

    def add(self, documents: List[dict]) -> dict:
        return self.index.add(documents)

    def delete(self, doc_id: str) -> bool:
        return self.index.delete(doc_id)

    def bm25_stats(self, query: str) -> dict:
        return self.index.bm25_stats(query)

    def retrieve(self, query: str, depth: int, retriever_depth: int, bm25_stats: Optional[dict]) -> dict:
        return self.index.retrieve(query, depth=depth, retriever_depth=retriever_depth, bm25_stats=bm25_stats)

    def info(self) -> dict:
        stats = self.index.stats()
        return {
            "shard": self.shard_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "rss_bytes": _rss_bytes(),
            "opened_at": self.opened_at,
            "documents": stats["documents"],
            "chunks": stats["chunks"],
        }


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Router:
    """Fans a query out to every shard, fuses, reranks once."""

    shards: List[Any]
    reranker: Optional[sift.Reranker] = None
    timeout_s: float = 10.0
    rrf_k: float = RRF_K
    names: List[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        root: str | Path,
        shards: int,
        *,
        bi_encoder_path: Optional[str] = None,
        reranker: Optional[sift.Reranker] = None,
        config: Optional[dict] = None,
        spread: bool = True,
        timeout_s: float = 10.0,
    ) -> "Router":
        """Start (or reattach to the folders of) ``shards`` shard actors under
        ``root``, one per node when ``spread`` (softly: a dead node's shard
        may restart anywhere)."""
        root = Path(root).resolve()
        bi_encoder_path = bi_encoder_path or os.environ.get("SIFT_BI_ENCODER_PATH")
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        handles = []
        for i in range(shards):
            options: Dict[str, Any] = {"name": f"sift-shard-{i}", "get_if_exists": True}
            if spread and nodes:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True)
            path = str(root / f"shard-{i}")
            handles.append(Shard.options(**options).remote(i, path, bi_encoder_path, config))
        router = cls(handles, reranker, timeout_s, names=[f"shard-{i}" for i in range(shards)])
        router.info()  # every shard has opened its index
        return router

    # ------------------------------------------------------------- writes

    def add(self, documents: Sequence[dict]) -> dict:
        """Route each document to its shard and wait for every shard's commit.
        A shard that is down raises ``ShardUnavailable`` naming it; the other
        shards' documents are committed (each document is on one shard)."""
        groups: Dict[int, List[dict]] = {}
        for d in documents:
            groups.setdefault(shard_of(d["id"], len(self.shards)), []).append(d)
        refs = {i: self.shards[i].add.remote(docs) for i, docs in groups.items()}
        total: Dict[str, Any] = {}
        failed = []
        for i, ref in refs.items():
            try:
                report = ray.get(ref, timeout=max(self.timeout_s, 600.0))
            except (RayActorError, GetTimeoutError, RayError) as e:
                failed.append(f"{self.names[i]} ({len(groups[i])} documents): {type(e).__name__}")
                continue
            for key, value in report.items():
                # Counts add up; lists (the documents that failed) join.
                if isinstance(value, list):
                    total.setdefault(key, []).extend(value)
                else:
                    total[key] = total.get(key, 0) + value
        if failed:
            raise ShardUnavailable(
                "not written, shard down: " + "; ".join(failed)
                + " (those documents were not acknowledged; retry when the shard is back)"
            )
        return total

    def delete(self, doc_id: str) -> bool:
        i = shard_of(doc_id, len(self.shards))
        try:
            return ray.get(self.shards[i].delete.remote(doc_id), timeout=self.timeout_s)
        except (RayActorError, GetTimeoutError, RayError) as e:
            raise ShardUnavailable(f"not deleted, {self.names[i]} is down ({type(e).__name__})") from e

    # ------------------------------------------------------------- reads

    def info(self, timeout_s: Optional[float] = None) -> List[Optional[dict]]:
        """Each shard's node, process, memory and counts (None: not answering)."""
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        out = []
        for ref in [s.info.remote() for s in self.shards]:
            try:
                info = ray.get(ref, timeout=timeout_s or max(self.timeout_s, 120.0))
                info["node_ip"] = ips.get(info["node_id"])
                out.append(info)
            except (RayActorError, GetTimeoutError, RayError):
                out.append(None)
        return out

    def search(
        self,
        query: str,
        depth: int = 50,
        k: int = 5,
        rerank: bool = True,
        retriever_depth: Optional[int] = None,
        stage1_weight: Optional[float] = None,
    ) -> dict:
        """The ``POST /search`` answer for a sharded corpus."""
        if not 1 <= k <= depth:
            raise sift.InvalidInputError(f"k must be in 1..=depth ({depth}), got {k}")
        start = time.perf_counter()
        n = retriever_depth or depth
        # Round 1: each shard's BM25 statistics for the query's terms,
        # summed, so every shard scores BM25 as one index of the corpus
        # would (Elasticsearch's dfs_query_then_fetch).
        parts, missing = self._gather([s.bm25_stats.remote(query) for s in self.shards])
        stats = merge_bm25_stats([p for p in parts if p is not None])
        # Round 2: each live shard's BM25 and dense lists.
        live = [i for i, p in enumerate(parts) if p is not None]
        results, late = self._gather([self.shards[i].retrieve.remote(query, depth, n, stats) for i in live],
                                     [self.names[i] for i in live])
        missing += late
        lists = [r for r in results if r is not None]
        fanout = time.perf_counter()
        candidates = fuse(lists, depth, n, self.rrf_k)
        fused = time.perf_counter()
        reranked_by = None
        notice = None
        if rerank and self.reranker is not None and candidates:
            hits = self.reranker.rerank_candidates(query, candidates, k, stage1_weight=stage1_weight)
            reranked_by = self.reranker.describe
        else:
            hits = candidates[:k]
            if rerank:
                notice = "not reranked: the router has no reranker; hits are in stage-1 (hybrid RRF) order"
        end = time.perf_counter()
        if missing:
            gone = f"partial results: {', '.join(missing)} did not answer within {self.timeout_s:g} s"
            notice = f"{gone}; {notice}" if notice else gone
        return {
            "hits": [_hit(i + 1, c) for i, c in enumerate(hits)],
            "timings": {
                "shards": 1e3 * (fanout - start),
                "fuse": 1e3 * (fused - fanout),
                "rerank": 1e3 * (end - fused),
                "total": 1e3 * (end - start),
            },
            "reranked_by": reranked_by,
            "notice": notice,
            "shards": {"total": len(self.shards), "answered": len(self.shards) - len(missing), "missing": missing},
            "partial": bool(missing),
        }


    def _gather(self, refs: list, names: Optional[List[str]] = None):
        """Each ref's value within the timeout, or None; and the names of
        the shards that did not answer. A refused query is raised."""
        names = names if names is not None else self.names
        ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)
        values, missing = [], []
        for name, ref in zip(names, refs):
            try:
                values.append(ray.get(ref, timeout=0))
            except (RayActorError, GetTimeoutError, RayError) as e:
                if "InvalidInputError" in str(e):
                    raise sift.InvalidInputError(_cause(e)) from None
                values.append(None)
                missing.append(name)
        return values, missing


def merge_bm25_stats(parts: List[dict]) -> dict:
    """The statistics of the union of disjoint shards: sums."""
    total = {"num_docs": 0, "num_tokens": 0, "doc_freqs": {}}
    for p in parts:
        total["num_docs"] += p["num_docs"]
        total["num_tokens"] += p["num_tokens"]
        for term, df in p["doc_freqs"].items():
            total["doc_freqs"][term] = total["doc_freqs"].get(term, 0) + df
    return total


def _cause(e: Exception) -> str:
    text = str(e)
    match = re.search(r"InvalidInputError: (.*)", text)
    return match.group(1).strip() if match else text


def fuse(lists: List[dict], depth: int, retriever_depth: int, rrf_k: float = RRF_K) -> List[dict]:
    """Merge the shards' BM25 and dense lists by score and fuse them as one
    index does (sift-fusion): f32 RRF, ties by best rank then chunk id."""
    chunks: Dict[str, dict] = {}
    bm25, dense = [], []
    for part in lists:
        chunks.update(part["chunks"])
        bm25.extend(part["bm25"])
        dense.extend(part["dense"])
    # Best first; equal scores by chunk id, as each retriever breaks ties.
    bm25 = sorted(bm25, key=lambda p: (-p[1], p[0]))[:retriever_depth]
    dense = sorted(dense, key=lambda p: (-p[1], p[0]))[:retriever_depth]
    scores: Dict[str, dict] = {}
    for name, merged in (("bm25", bm25), ("dense", dense)):
        for rank, (chunk_id, score) in enumerate(merged, 1):
            s = scores.setdefault(chunk_id, {"bm25": None, "dense": None, "fused": np.float32(0.0)})
            if s[name] is None:
                s[name] = {"rank": rank, "score": score}
                s["fused"] = np.float32(s["fused"] + np.float32(1.0) / np.float32(rrf_k + rank))

    def best_rank(s: dict) -> int:
        return min(s[n]["rank"] if s[n] else 2**32 - 1 for n in ("bm25", "dense"))

    order = sorted(scores, key=lambda c: (-scores[c]["fused"], best_rank(scores[c]), c))[:depth]
    out = []
    for rank, chunk_id in enumerate(order, 1):
        s = scores[chunk_id]
        candidate = chunks.get(chunk_id)
        if candidate is None:  # deleted between the shard's lists and its fetch
            continue
        out.append({
            "chunk": candidate["chunk"],
            "scores": {"bm25": s["bm25"], "dense": s["dense"], "fused": float(s["fused"]), "stage1_rank": rank},
        })
    return out


def _hit(rank: int, c: dict) -> dict:
    """A candidate in the shape of a ``POST /search`` hit."""
    chunk, s = c["chunk"], c["scores"]
    score = s.get("blended") if s.get("blended") is not None else s.get("rerank")
    if score is None:
        score = s.get("fused")
    return {
        "rank": rank,
        "chunk_id": f"{chunk['id']:016x}",
        "doc_id": chunk["doc_id"],
        "ordinal": chunk["ordinal"],
        "title": chunk["title"],
        "section": chunk.get("section", []),
        "text": chunk["text"],
        "char_start": chunk["char_start"],
        "char_end": chunk["char_end"],
        "metadata": chunk.get("metadata", {}),
        "score": score,
        "scores": {
            "bm25": s.get("bm25"),
            "dense": {"rank": s["dense"]["rank"], "similarity": s["dense"]["score"]} if s.get("dense") else None,
            "fused": s.get("fused"),
            "stage1_rank": s.get("stage1_rank"),
            "rerank": s.get("rerank"),
            "blended": s.get("blended"),
        },
    }


class LocalCluster:
    """``nodes`` Ray nodes on this machine, on loopback addresses 127.0.0.2,
    127.0.0.3, … (Ray rewrites 127.0.0.1 to the machine's interface
    address, so it is not used), each with 1 CPU. ``stop()`` stops them all."""

    def __init__(self, nodes: int = 3, port: int = 6390, first_ip: int = 2):
        self.ips = [f"127.0.0.{first_ip + i}" for i in range(nodes)]
        self.port = port
        self.address = f"{self.ips[0]}:{port}"

    def _ray(self) -> str:
        return shutil.which("ray") or str(Path(os.sys.executable).with_name("ray"))

    def start(self, timeout_s: float = 120.0) -> "LocalCluster":
        common = ["--num-cpus=1", "--disable-usage-stats"]
        subprocess.run(
            [self._ray(), "start", "--head", f"--node-ip-address={self.ips[0]}", f"--port={self.port}",
             "--include-dashboard=false",
             '--system-config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3}', *common],
            check=True, capture_output=True, timeout=timeout_s,
        )
        for ip in self.ips[1:]:
            subprocess.run(
                [self._ray(), "start", f"--address={self.address}", f"--node-ip-address={ip}", *common],
                check=True, capture_output=True, timeout=timeout_s,
            )
        ray.init(address=self.address, _node_ip_address=self.ips[0], logging_level="warning", log_to_driver=False)
        deadline = time.time() + timeout_s
        while len([n for n in ray.nodes() if n["Alive"]]) < len(self.ips):
            if time.time() > deadline:
                raise RuntimeError(f"only {len(ray.nodes())} of {len(self.ips)} Ray nodes came up")
            time.sleep(0.5)
        return self

    def node_addresses(self) -> List[str]:
        return sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])

    def kill_node(self, ip: str) -> List[int]:
        """kill -9 every process of the node on ``ip``, as when its machine
        dies: the processes started for it (raylet and helpers, found by
        their ``--node-ip-address``) and their children, the workers that
        hold the shard actors (Ray renames those, so they are found by
        parent)."""
        out = subprocess.run(["pgrep", "-f", "--", f"--node[-_]ip[-_]address={re.escape(ip)}( |$)"],
                             capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split() if int(p) != os.getpid()]
        family, frontier = set(pids), list(pids)
        while frontier:
            children = subprocess.run(["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True)
            for child in map(int, children.stdout.split()):
                if child not in family:
                    family.add(child)
                    frontier.append(child)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return sorted(family)

    def stop(self) -> None:
        try:
            ray.shutdown()
        finally:
            subprocess.run([self._ray(), "stop", "--force"], capture_output=True, timeout=120)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
