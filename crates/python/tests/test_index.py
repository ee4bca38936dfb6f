"""The bindings: documents in, hits out, errors as exceptions, the GIL let go."""

import math
import threading
import time

import pytest

import sift
from conftest import COMMITTED_RERANKER, DOCS


def test_search_returns_cited_hits_with_every_score_and_timings(index):
    result = index.search("what happens to my notes when I close my account", depth=4, k=3, rerank=False)
    assert len(result) == len(result.hits) == 3
    assert result.reranked_by is None
    top = result.hits[0]
    assert top.doc_id.endswith("close-account.md")
    assert [h.rank for h in result.hits] == [1, 2, 3]
    by_id = {d["id"]: d for d in DOCS}
    for hit in result.hits:
        # Offsets cite the document's text exactly.
        assert by_id[hit.doc_id]["text"][hit.char_start : hit.char_end] == hit.text
        assert hit.metadata["source"] == by_id[hit.doc_id]["metadata"]["source"]
        assert hit.scores["fused"] == pytest.approx(hit.score)
        assert hit.scores["stage1_rank"] == hit.rank
        assert len(hit.chunk_id) == 16
        assert hit.to_dict()["doc_id"] == hit.doc_id
        assert hit.citation.startswith(hit.doc_id)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    for stage in ["tokenize", "bm25", "embed", "hnsw", "fuse", "fetch", "rerank", "rescore", "total"]:
        assert result.timings[stage] >= 0.0, stage
    assert result.timings["embed"] > 0.0


def test_without_a_reranker_the_answer_is_stage_one_and_says_so(index):
    result = index.search("refund an annual plan", depth=4, k=2)
    assert result.reranked_by is None
    assert "not reranked" in result.notice


def test_filter_prefer_recent_boost_and_rules(index):
    query = "what happens to my notes when I close my account"
    hits = index.search(query, depth=4, k=4, rerank=False, filter={"source": "official"}).hits
    assert {h.metadata["source"] for h in hits} == {"official"}

    plain = [h.doc_id for h in index.search(query, depth=4, k=2, rerank=False).hits]
    assert plain == ["forum/close-account.md", "faq/close-account.md"], plain
    # A decay around the official page's date lifts it over the forum post.
    dated = index.search(query, depth=4, k=4, rerank=False, rescore={"rules": [
        {"kind": "decay", "field": "date", "origin": "2025-04-03", "scale": "30d"}]}).hits
    assert dated[0].doc_id == "faq/close-account.md"
    factor = dated[0].scores["rescore"]["factors"][0]
    assert factor["value"] == "2025-04-03" and factor["factor"] == pytest.approx(1.0)
    factors = {h.doc_id: h.scores["rescore"]["factors"][0]["factor"] for h in dated}
    assert factors["forum/close-account.md"] < 0.01  # ten months from the origin
    assert factors["blog/offline.md"] == pytest.approx(0.5)  # undated: as if one scale away
    # A boost from the CLI's shorthand does the same.
    boosted = index.search(query, depth=4, k=1, rerank=False, boost=["source=official:3"]).hits
    assert boosted[0].doc_id == "faq/close-account.md"
    assert boosted[0].scores["rescore"]["factors"][0]["rule"] == "source = official ×3"
    lifted = index.search(query, depth=4, k=4, rerank=False, prefer_recent="90d").hits
    assert all(h.scores["rescore"] is not None for h in lifted)


def test_documents_are_replaced_and_deleted(tmp_path, bi_encoder):
    index = sift.Index(tmp_path / "idx", create=True, bi_encoder_path=bi_encoder)
    index.add([{"id": "a", "text": "The lighthouse keeper climbs the stairs at dusk."}])
    report = index.add([{"id": "a", "text": "The lighthouse keeper rows to the island at dawn."}])
    assert report["documents_written"] == 1
    assert index.add([{"id": "a", "text": "The lighthouse keeper rows to the island at dawn."}])["documents_unchanged"] == 1
    hit = index.search("lighthouse keeper", depth=1, k=1, rerank=False).hits[0]
    assert "dawn" in hit.text
    assert index.document_ids() == ["a"]
    assert index.stats()["documents"] == 1
    assert index.delete("a") is True
    assert index.delete("a") is False
    assert index.search("lighthouse keeper", depth=1, k=1, rerank=False).hits == []


def test_a_folder_is_indexed_like_sift_index(tmp_path, bi_encoder):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "tides.md").write_text("# Tides\n\nUpdated: 2024-05-01\n\nHigh tide comes twice a day.\n")
    index = sift.Index(tmp_path / "idx", create=True, bi_encoder_path=bi_encoder)
    assert index.add_path(folder)["documents_written"] == 1
    hit = index.search("when is high tide", depth=1, k=1, rerank=False).hits[0]
    assert hit.doc_id == "sub/tides.md" and hit.title == "Tides"
    assert hit.metadata["date"] == "2024-05-01"


def test_errors_are_exceptions_with_the_engines_message(index, tmp_path, bi_encoder):
    with pytest.raises(sift.InvalidInputError, match="the query is empty"):
        index.search("   ")
    with pytest.raises(sift.InvalidInputError, match="2048"):
        index.search("a" * 3000)
    with pytest.raises(sift.InvalidInputError, match=r"k must be in 1..=depth"):
        index.search("notes", depth=2, k=3)
    with pytest.raises(sift.InvalidInputError, match=r"rescore.rules\[0\] \(decay\).*not a duration"):
        index.search("notes", rescore={"rules": [{"kind": "decay", "field": "date", "scale": "soon"}]})
    with pytest.raises(sift.InvalidInputError, match="--boost"):
        index.search("notes", boost=["source=official"])
    with pytest.raises(sift.InvalidInputError, match="reranker \"gpt\""):
        index.search("notes", reranker="gpt")
    with pytest.raises(sift.InvalidInputError, match=r"documents\[0\].id is empty"):
        index.add([{"id": " ", "text": "x"}])
    with pytest.raises(sift.InvalidInputError, match="invalid documents"):
        index.add([{"id": "x"}])
    with pytest.raises(sift.SiftError, match="no index at"):
        sift.Index(tmp_path / "nothing-here", bi_encoder_path=bi_encoder)
    with pytest.raises(sift.InvalidInputError, match="detph"):
        sift.Index(tmp_path / "x", create=True, bi_encoder_path=bi_encoder, config={"search": {"detph": 3}})
    with pytest.raises(sift.SiftError, match="model.safetensors|config.json|cannot"):
        sift.Index(tmp_path / "y", create=True, bi_encoder_path=tmp_path)
    assert issubclass(sift.InvalidInputError, sift.SiftError)


def test_embed_gives_unit_vectors_that_match_search(index):
    a, b, c = index.embed(["close my account", "close my account", "tides and the moon"])
    assert len(a) == 384
    assert math.sqrt(sum(x * x for x in a)) == pytest.approx(1.0, abs=1e-5)
    assert sum(x * y for x, y in zip(a, b)) == pytest.approx(1.0, abs=1e-5)
    assert sum(x * y for x, y in zip(a, c)) < 0.5


def test_rerank_orders_texts_with_the_cross_encoder(tmp_path, bi_encoder):
    index = sift.Index(tmp_path / "idx", create=True, bi_encoder_path=bi_encoder, reranker_path=COMMITTED_RERANKER)
    texts = ["Tides come twice a day.", "Closed accounts keep notes for 30 days, then delete them."]
    ranked = index.rerank("what happens to my notes when I close my account", texts)
    assert [i for i, _ in ranked] == [1, 0]
    assert ranked[0][1] > ranked[1][1]
    assert len(index.rerank("notes", texts, k=1)) == 1
    index.add(DOCS)
    result = index.search("what happens to my notes when I close my account", depth=4, k=2)
    assert result.reranked_by and "sift-minilm-l6-scifact" in result.reranked_by
    assert all(h.scores["rerank"] is not None for h in result.hits)


def test_offline_the_general_reranker_stands_in_for_the_hub_when_asked(tmp_path, bi_encoder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    plain = sift.Index(tmp_path / "plain", create=True, bi_encoder_path=bi_encoder)
    plain.add(DOCS)
    assert plain.search("what happens to my notes when I close my account", depth=4, k=2).reranked_by is None
    index = sift.Index(tmp_path / "idx", create=True, bi_encoder_path=bi_encoder, reranker_fallback=True)
    index.add(DOCS)
    result = index.search("what happens to my notes when I close my account", depth=4, k=2)
    assert "sift-minilm-l6-general" in result.reranked_by
    assert "the fallback for hf://cross-encoder/ms-marco-MiniLM-L-6-v2" in result.reranked_by
    assert "non-commercial research only" in result.reranked_by
    assert all(h.scores["rerank"] is not None for h in result.hits)


def test_rerank_without_a_reranker_says_how_to_load_one(index):
    with pytest.raises(sift.SiftError, match="reranker_path"):
        index.rerank("notes", ["a", "b"])


def test_engine_work_releases_the_gil(index):
    """While one thread searches and embeds, another keeps running Python."""
    texts = [f"passage number {i} about closing an account and keeping notes" for i in range(200)]
    done = threading.Event()
    ticks = 0

    def work():
        index.embed(texts)
        for _ in range(5):
            index.search("what happens to my notes", depth=4, k=2, rerank=False)
        done.set()

    worker = threading.Thread(target=work)
    start = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    worker.join()
    elapsed = time.perf_counter() - start
    # A held GIL would let this loop run only between Python bytecodes of the
    # worker, a few times; released, it spins the whole time.
    assert elapsed > 0.05, elapsed
    assert ticks > 1000, (ticks, elapsed)
