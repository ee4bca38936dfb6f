"""Fixtures: the real bi-encoder from data/models, a small index written here."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BI_ENCODER = ROOT / "data" / "models" / "all-MiniLM-L6-v2"
# The SciFact worked example: a small real cross-encoder the tests name.
COMMITTED_RERANKER = ROOT / "data" / "rerankers" / "sift-minilm-l6-scifact"

DOCS = [
    {
        "id": "faq/close-account.md",
        "title": "Closing your account",
        "text": "When you close your account, your notes and attachments are kept for 30 days "
        "so you can change your mind. After 30 days they are deleted permanently.",
        "metadata": {"source": "official", "date": "2025-04-03"},
    },
    {
        "id": "forum/close-account.md",
        "title": "Closed my account, where did my notes go?",
        "text": "Someone said notes are kept for a month after you close your account, then deleted.",
        "metadata": {"source": "community", "date": "2026-02-01"},
    },
    {
        "id": "faq/refunds.md",
        "title": "Refunds",
        "text": "Annual plans can be refunded within 14 days of purchase. Monthly plans are not refunded.",
        "metadata": {"source": "official", "date": "2021-01-10"},
    },
    {
        "id": "blog/offline.md",
        "title": "Working offline",
        "text": "The desktop app keeps a full copy of your notes, so you can write on a plane.",
        "metadata": {"source": "blog"},
    },
]


@pytest.fixture(scope="session")
def bi_encoder() -> pathlib.Path:
    if not (BI_ENCODER / "model.safetensors").is_file():
        pytest.fail(f"no bi-encoder in {BI_ENCODER}: run `just fetch-models`")
    return BI_ENCODER


@pytest.fixture(scope="session")
def index(tmp_path_factory, bi_encoder):
    import sift

    # Stage 1 only: the hub is out of reach and the general reranker is not
    # asked to stand in, so that these tests see the fused order.
    index = sift.Index(
        tmp_path_factory.mktemp("index") / "idx", create=True, bi_encoder_path=bi_encoder, reranker_fallback=False
    )
    report = index.add(DOCS)
    assert report["documents_written"] == len(DOCS)
    return index
