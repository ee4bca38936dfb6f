#!/usr/bin/env python3
"""Check `sift score` against pytrec_eval (trec_eval semantics).

Usage: check_metrics.py SIFT_BINARY

Generates, from a fixed seed, a synthetic TREC qrels file (graded -1..3,
queries without relevant documents) and a TREC run (0-120 documents per
query, many exact score ties and near-ties, queries missing on either
side), runs

    SIFT_BINARY score --qrels Q --run R --metrics ... --per-query \
        --pytrec-compatible --json

and compares every per-query value and every mean with pytrec_eval to 1e-6.
`mrr@k` for k < 1000 has no trec_eval measure (only the uncut `recip_rank`,
compared with `mrr@1000` and `mrr`), so it is computed here with trec_eval's
ordering rule: score descending, ties by document id descending, where
scores are compared as C floats (trec_eval stores them in single precision,
so 1.0 and 1.0 + 1e-9 tie); the rule is itself checked against
pytrec_eval's recip_rank. The same
run is also scored without --pytrec-compatible, whose means must equal
pytrec_eval's sums divided by the number of qrels queries (missing = 0).

If /work/shared/datasets/scifact/qrels/test.tsv exists, the same checks run
on the real SciFact test qrels (BEIR TSV) with a synthetic run over real
document ids.

Prints one line per failure, then exactly one summary line
`N passed, M failed`; exits 1 on any failure.
"""

import json
import math
import os
import random
import subprocess
import sys
import struct
import tempfile

import pytrec_eval

TOLERANCE = 1e-6
METRICS = [
    "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@100",
    "recall@1", "recall@5", "recall@10", "recall@100",
    "p@5", "p@10", "mrr@10", "mrr@1000", "map",
    # Beyond the required list: uncut nDCG / MRR, MAP cut, MRR cut at 1.
    "ndcg", "mrr", "map@10", "map@100", "mrr@1",
]
PYTREC_MEASURES = {
    "ndcg_cut.1,5,10,100", "recall.1,5,10,100", "P.5,10",
    "recip_rank", "map", "ndcg", "map_cut.10,100",
}
SCIFACT_QRELS = "/work/shared/datasets/scifact/qrels/test.tsv"
SCIFACT_CORPUS = "/work/shared/datasets/scifact/corpus.jsonl"


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, label, expected, actual):
        ok = (
            isinstance(actual, (int, float))
            and isinstance(expected, (int, float))
            and abs(expected - actual) <= TOLERANCE
        )
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {label}: expected {expected!r}, sift gave {actual!r}")

    def fail(self, label, message):
        self.failed += 1
        print(f"FAIL {label}: {message}")


def as_float32(x):
    """Round a double to single precision, as trec_eval stores scores."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def trec_ranking(docs):
    """trec_eval's order: score (as a C float) descending, then document id
    descending."""
    ranked = sorted(docs.items(), key=lambda x: (as_float32(x[1]), x[0]), reverse=True)
    return [d for d, _ in ranked]


def reciprocal_rank(docs, judgements, k):
    for rank, doc in enumerate(trec_ranking(docs)[:k], start=1):
        if judgements.get(doc, 0) >= 1:
            return 1.0 / rank
    return 0.0


def expected_value(metric, qid, pytrec, qrels, run):
    name, _, k = metric.partition("@")
    values = pytrec[qid]
    if name == "ndcg":
        return values[f"ndcg_cut_{k}"] if k else values["ndcg"]
    if name == "recall":
        return values[f"recall_{k}"]
    if name == "p":
        return values[f"P_{k}"]
    if name == "map":
        return values[f"map_cut_{k}"] if k else values["map"]
    if name == "mrr":
        if not k or int(k) >= 1000:
            return values["recip_rank"]
        return reciprocal_rank(run.get(qid, {}), qrels[qid], int(k))
    raise ValueError(metric)


def write_qrels_trec(path, qrels):
    with open(path, "w") as f:
        for qid, docs in qrels.items():
            for doc, grade in docs.items():
                f.write(f"{qid} 0 {doc} {grade}\n")


def write_run(path, run):
    """TREC run; the file order is deliberately not the ranking (and the
    rank column is bogus) since trec_eval ignores both."""
    rng = random.Random(7)
    with open(path, "w") as f:
        for qid, docs in run.items():
            items = list(docs.items())
            rng.shuffle(items)
            for i, (doc, score) in enumerate(items, start=1):
                f.write(f"{qid} Q0 {doc} {i} {score!r} synthetic\n")


def run_sift(binary, qrels_path, run_path, pytrec_compatible):
    cmd = [
        binary, "score", "--qrels", qrels_path, "--run", run_path,
        "--metrics", ",".join(METRICS), "--per-query", "--json",
    ]
    if pytrec_compatible:
        cmd.append("--pytrec-compatible")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise RuntimeError(f"cannot run {binary}: {e}") from e
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def compare(tally, binary, label, qrels, run, qrels_path, run_path):
    """Score with sift in both modes and compare with pytrec_eval."""
    # Every query of the run file has at least one document.
    assert all(run.values())
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES)
    pytrec = evaluator.evaluate(run)
    evaluated = sorted(pytrec)

    # Self-check of the ordering rule used for the cut MRR: uncut, it must
    # reproduce pytrec_eval's recip_rank.
    for qid in evaluated:
        tally.check(
            f"[{label}] python tie rule, query {qid}",
            pytrec[qid]["recip_rank"],
            reciprocal_rank(run[qid], qrels[qid], 10**9),
        )

    try:
        out = run_sift(binary, qrels_path, run_path, pytrec_compatible=True)
    except (RuntimeError, json.JSONDecodeError) as e:
        tally.fail(f"[{label}] sift score --pytrec-compatible", str(e))
        return
    per_query = out.get("per_query", {})
    if sorted(per_query) != evaluated:
        extra = sorted(set(per_query) - set(evaluated))
        lacking = sorted(set(evaluated) - set(per_query))
        tally.fail(f"[{label}] evaluated queries", f"sift extra {extra}, sift lacks {lacking}")
    for qid in evaluated:
        for metric in METRICS:
            tally.check(
                f"[{label}] query {qid} {metric}",
                expected_value(metric, qid, pytrec, qrels, run),
                per_query.get(qid, {}).get(metric),
            )
    sums = {
        m: sum(expected_value(m, qid, pytrec, qrels, run) for qid in evaluated)
        for m in METRICS
    }
    for metric in METRICS:
        tally.check(
            f"[{label}] mean {metric}",
            sums[metric] / len(evaluated),
            out.get("mean", {}).get(metric),
        )

    # Default mode: every qrels query counts, those absent from the run as 0.
    try:
        out = run_sift(binary, qrels_path, run_path, pytrec_compatible=False)
    except (RuntimeError, json.JSONDecodeError) as e:
        tally.fail(f"[{label}] sift score", str(e))
        return
    tally.check(f"[{label}] zero-mode query count", len(qrels), out.get("num_queries"))
    for metric in METRICS:
        tally.check(
            f"[{label}] zero-mode mean {metric}",
            sums[metric] / len(qrels),
            out.get("mean", {}).get(metric),
        )
    print(
        f"[{label}] {len(qrels)} qrels queries, {len(run)} run queries, "
        f"{len(evaluated)} in both"
    )


def random_score(rng, pool):
    """Mostly values from a small pool (exact ties); sometimes near-ties
    that a 6-decimal rendering would merge, or arbitrary floats."""
    r = rng.random()
    if r < 0.6:
        return rng.choice(pool)
    if r < 0.8:
        # 1e-9 and below tie with the pool value in trec_eval's single
        # precision (except around 0); 2e-7 does not, yet vanishes at 6 decimals.
        return rng.choice(pool) + rng.choice([1e-9, 2e-9, -1e-9, 3e-12, 2e-7, -2e-7])
    return rng.uniform(-5, 20)


def synthetic(rng):
    # Ids sort differently as strings and as numbers ("d10" < "d9").
    doc_pool = [f"d{i}" for i in range(300)] + [str(i) for i in range(50)] + ["D7", "a-1", "z"]
    qrels = {}
    for i in range(60):
        qid = f"q{i}"
        n = rng.randint(1, 25)
        docs = rng.sample(doc_pool, n)
        if i % 7 == 3:
            grades = [rng.choice([0, -1]) for _ in docs]  # no relevant doc
        else:
            grades = [rng.choices([-1, 0, 1, 2, 3], weights=[1, 4, 4, 2, 1])[0] for _ in docs]
        qrels[qid] = dict(zip(docs, grades))

    run = {}
    pool = [0.0, 0.5, 1.0, 1.5, 2.0, 3.25, 7.0, -1.0]
    for i in range(10, 70):  # q0-q9 only in qrels, q60-q69 only in the run
        qid = f"q{i}"
        length = rng.choice([0, 1, 3, 5, 10, 20, 50, 80, 120, rng.randint(0, 120)])
        judged = list(qrels.get(qid, {}))
        docs = set(rng.sample(judged, min(len(judged), rng.randint(0, length)))) if length else set()
        while len(docs) < length:
            docs.add(rng.choice(doc_pool))
        local_pool = rng.sample(pool, rng.randint(1, 4))
        if docs:
            run[qid] = {d: random_score(rng, local_pool) for d in docs}
    return qrels, run


def read_beir_qrels(path):
    qrels = {}
    with open(path) as f:
        for n, line in enumerate(f):
            fields = line.rstrip("\n").split("\t")
            if n == 0 and fields[2] == "score":
                continue
            if len(fields) == 3:
                qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    return qrels


def scifact_run(rng, qrels):
    doc_ids = set()
    if os.path.exists(SCIFACT_CORPUS):
        with open(SCIFACT_CORPUS) as f:
            doc_ids = {json.loads(line)["_id"] for line in f if line.strip()}
    for docs in qrels.values():
        doc_ids.update(docs)
    doc_ids = sorted(doc_ids)
    run = {}
    qids = sorted(qrels)
    pool = [0.1, 0.2, 0.3, 0.5, 1.0]
    for qid in qids + ["no-such-query-1", "no-such-query-2"]:
        if rng.random() < 0.05:
            continue  # absent from the run
        length = rng.randint(1, 100)
        docs = set(rng.sample(doc_ids, length))
        for doc in qrels.get(qid, {}):
            if rng.random() < 0.5:
                docs.add(doc)
        run[qid] = {d: random_score(rng, pool) for d in docs}
    return run


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = sys.argv[1]
    tally = Tally()
    rng = random.Random(20240601)
    with tempfile.TemporaryDirectory() as tmp:
        qrels, run = synthetic(rng)
        qrels_path = os.path.join(tmp, "synthetic.qrels")
        run_path = os.path.join(tmp, "synthetic.run")
        write_qrels_trec(qrels_path, qrels)
        write_run(run_path, run)
        compare(tally, binary, "synthetic", qrels, run, qrels_path, run_path)

        if os.path.exists(SCIFACT_QRELS):
            qrels = read_beir_qrels(SCIFACT_QRELS)
            run = scifact_run(rng, qrels)
            run_path = os.path.join(tmp, "scifact.run")
            write_run(run_path, run)
            compare(tally, binary, "scifact", qrels, run, SCIFACT_QRELS, run_path)
        else:
            print(f"[scifact] skipped: {SCIFACT_QRELS} not found")

    print(f"{tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
