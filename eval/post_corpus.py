"""Index a BEIR corpus through a running `sift serve`, batch by batch, over
POST /documents, and report what the server said of every document.

    python3 eval/post_corpus.py ../shared/datasets/squad-v1.1/corpus.jsonl \
        --url http://127.0.0.1:8080 --batch 200 --out eval/results/squad-http.json

Only the standard library: it runs with the machine's python3. A batch the
server answers with 422 names its failed documents (`failed`); the others of
that batch are committed, and the run goes on with the next batch.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def post(url, documents, key):
    body = json.dumps({"documents": documents}).encode()
    request = urllib.request.Request(url + "/documents", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=3600) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def batches(path, size):
    batch = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            doc = {"id": row["_id"], "title": row.get("title", ""), "text": row["text"]}
            batch.append(doc)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="a BEIR corpus.jsonl")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--key", default=None, help="the server's bearer key")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the summary here as JSON")
    args = parser.parse_args()

    started = time.monotonic()
    summary = {"documents": 0, "written": 0, "unchanged": 0, "empty": 0,
               "chunks": 0, "failed": [], "statuses": {}}
    for batch in batches(args.corpus, args.batch):
        status, reply = post(args.url, batch, args.key)
        summary["statuses"][str(status)] = summary["statuses"].get(str(status), 0) + 1
        summary["documents"] += len(batch)
        if status not in (200, 422) or "documents_written" not in reply:
            print(f"batch starting at {batch[0]['id']!r}: HTTP {status}: {reply}", file=sys.stderr)
            summary["failed"].extend({"id": d["id"], "reason": f"HTTP {status}"} for d in batch)
            continue
        summary["written"] += reply["documents_written"]
        summary["unchanged"] += reply["documents_unchanged"]
        summary["empty"] += reply["documents_empty"]
        summary["chunks"] += reply["chunks_written"]
        for failed in reply.get("failed", []):
            print(f"not indexed {failed['id']!r}: {failed['reason']}", file=sys.stderr)
            summary["failed"].append(failed)
        elapsed = time.monotonic() - started
        print(f"{summary['documents']} documents, {summary['chunks']} chunks, "
              f"{len(summary['failed'])} failed, {elapsed:.0f}s", flush=True)
    summary["seconds"] = round(time.monotonic() - started, 1)
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    sys.exit(1 if summary["failed"] else 0)


if __name__ == "__main__":
    main()
