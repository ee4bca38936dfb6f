"""Peers for `sift-speed` (`just bench`): PyTorch and ONNX Runtime on the same inputs.

The Rust benchmark (crates/bench/src/bin/sift-speed.rs) writes the inputs it
times the engine on (passages to embed, one query with its candidate
passages to rerank, optionally the long workload's whole documents for the
same query, the model folders) to a JSON file and starts this script
as a child process. The script loads every peer once, then answers commands
on stdin, one per line, so that peer runs interleave with engine runs in the
same benchmark run (the machine is shared and drifts; only side-by-side
ratios mean anything):

    embed        -> {"embed": {"pytorch": s, "ort-fp32": s, "ort-int8": s}}
    rerank       -> {"rerank": {...}}
    rerank-long  -> {"rerank-long": {...}}   (only when the spec has "long")
    quit

Peers (all on `--threads` intra-op threads, 2 by default = the machine):

* pytorch: sentence-transformers `SentenceTransformer.encode` (length-sorted
  batches of 32) for embedding; transformers `BertForSequenceClassification`
  on one padded batch of all pairs for reranking, under `torch.inference_mode`
  (rerank-long: its own cross-encoder, the spec's "long" model, read at the
  spec's length with `truncation="only_second"`, as the engine reads it).
* ort-fp32: the same weights exported with `torch.onnx.export`, run by
  ONNX Runtime (all graph optimisations), same batching, mean pooling and
  L2 normalisation in numpy.
* ort-int8: that ONNX file after `onnxruntime.quantization.quantize_dynamic`
  (per-channel int8 weights, dynamic activations).

Exported files are cached under `cache_dir` keyed by the model folder.
Each peer's outputs (embeddings, logits; float32, little-endian, row-major)
are written once to `out_dir/<peer>.<command>.f32` so the benchmark can
measure their agreement with the engine.

Tokenisation is inside the timed region for every peer, as it is for the
engine (whose `embed`/`score` take text).
"""

import json
import os
import pathlib
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def export_onnx(model, path, with_type_ids=True):
    """Export a BERT (body or classifier) with dynamic batch and length."""
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    types = torch.zeros((2, 16), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["out"] = {0: "batch"}
    kwargs = dict(
        input_names=names,
        output_names=["out"],
        dynamic_axes=axes,
        opset_version=17,
        do_constant_folding=True,
    )
    try:
        torch.onnx.export(model, (ids, mask, types), str(path), dynamo=False, **kwargs)
    except TypeError:
        torch.onnx.export(model, (ids, mask, types), str(path), **kwargs)


class Body(torch.nn.Module):
    """BERT body returning the last hidden state (pooling happens outside)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


class Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits[:, 0]


def cached(cache_dir, name, src_dir, make):
    """`cache_dir/<name>.onnx`, rebuilt when the weights change."""
    src = pathlib.Path(src_dir) / "model.safetensors"
    stamp = f"{src.resolve()}:{src.stat().st_size}:{src.stat().st_mtime_ns}"
    path = pathlib.Path(cache_dir) / f"{name}.onnx"
    stamp_path = path.with_suffix(".stamp")
    if path.exists() and stamp_path.exists() and stamp_path.read_text() == stamp:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"bench_peers: building {path}")
    make(path)
    stamp_path.write_text(stamp)
    return path


def quantize(fp32_path, int8_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path), str(int8_path), per_channel=True, weight_type=QuantType.QInt8
    )


def main():
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    threads = int(spec.get("threads", 2))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertForSequenceClassification, BertModel

    cache = pathlib.Path(spec["cache_dir"])
    out = pathlib.Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    passages = spec["passages"]
    query = spec["query"]
    candidates = spec["candidates"]
    batch = int(spec.get("batch_size", 32))
    max_seq = int(spec.get("max_seq_length", 256))
    max_len = int(spec.get("max_length", 512))

    # --- bi-encoder ---
    st = SentenceTransformer(spec["bi_encoder"], device="cpu")
    st.max_seq_length = max_seq
    bi_tok = AutoTokenizer.from_pretrained(spec["bi_encoder"])

    def make_bi(path):
        export_onnx(Body(BertModel.from_pretrained(spec["bi_encoder"]).float().eval()), path)

    bi_fp32 = cached(cache, "bi-encoder.fp32", spec["bi_encoder"], make_bi)
    bi_int8 = cached(
        cache, "bi-encoder.int8", spec["bi_encoder"], lambda p: quantize(bi_fp32, p)
    )

    # --- cross-encoder ---
    def load_cross_encoder(name, src):
        """The model, its tokenizer and its fp32 and int8 ONNX files."""
        # .float(): a checkpoint saved in f16 (data/rerankers/*) loads as f16 under
        # transformers 5's dtype="auto", which neither the fp32 peers nor the
        # ONNX export (mixed-type LayerNormalization) want.
        def load():
            return BertForSequenceClassification.from_pretrained(src, num_labels=1).float().eval()

        model = load()
        # Exported from a copy of its own: after torch.onnx.export the model
        # it traced ran slower and disagreed with the engine (logits off by
        # up to 2.4) in the runs that exported, and agreed to 1e-5 in those
        # that found the export cached.
        fp32 = cached(cache, f"{name}.fp32", src, lambda p: export_onnx(Logits(load()), p))
        int8 = cached(cache, f"{name}.int8", src, lambda p: quantize(fp32, p))
        return model, AutoTokenizer.from_pretrained(src), fp32, int8

    ce = load_cross_encoder("cross-encoder", spec["cross_encoder"])
    long = spec.get("long")
    # Its own cache name: the two workloads may read different checkpoints.
    long_ce = load_cross_encoder("long-cross-encoder", long["cross_encoder"]) if long else None

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

    def session(path):
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    bi_sessions = {"ort-fp32": session(bi_fp32), "ort-int8": session(bi_int8)}

    def st_embed():
        return st.encode(passages, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True)

    def ort_embed(sess):
        enc = bi_tok(passages, truncation=True, max_length=max_seq)
        lengths = [len(x) for x in enc["input_ids"]]
        order = sorted(range(len(passages)), key=lambda i: -lengths[i])
        result = np.zeros((len(passages), 384), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            width = max(lengths[i] for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : lengths[i]] = enc["input_ids"][i]
                mask[r, : lengths[i]] = 1
            hidden = sess.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            m = mask[:, :, None].astype(np.float32)
            mean = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
            result[idx] = mean
        return result

    def rerankers(cross_encoder, texts, max_length):
        """The three peers of one rerank workload: all pairs as one padded batch."""
        model, tok, fp32, int8 = cross_encoder

        def pair_batch(return_tensors):
            return tok(
                [query] * len(texts),
                texts,
                padding=True,
                truncation="only_second",
                max_length=max_length,
                return_tensors=return_tensors,
            )

        def torch_rerank():
            with torch.inference_mode():
                return model(**pair_batch("pt")).logits[:, 0].numpy()

        def ort_rerank(sess):
            enc = pair_batch("np")
            feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            return sess.run(None, feeds)[0]

        fp32_session, int8_session = session(fp32), session(int8)
        return {
            "pytorch": torch_rerank,
            "ort-fp32": lambda: ort_rerank(fp32_session),
            "ort-int8": lambda: ort_rerank(int8_session),
        }

    peers = {
        "embed": {
            "pytorch": st_embed,
            "ort-fp32": lambda: ort_embed(bi_sessions["ort-fp32"]),
            "ort-int8": lambda: ort_embed(bi_sessions["ort-int8"]),
        },
        "rerank": rerankers(ce, candidates, max_len),
    }
    if long:
        peers["rerank-long"] = rerankers(long_ce, long["candidates"], int(long["max_length"]))
    written = set()
    print(json.dumps({"ready": {k: list(v) for k, v in peers.items()}}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit" or not cmd:
            break
        if cmd not in peers:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
            continue
        times = {}
        for name, run in peers[cmd].items():
            start = time.perf_counter()
            result = run()
            times[name] = time.perf_counter() - start
            if (cmd, name) not in written:
                np.asarray(result, dtype="<f4").tofile(out / f"{name}.{cmd}.f32")
                written.add((cmd, name))
        print(json.dumps({cmd: times}), flush=True)


if __name__ == "__main__":
    main()
