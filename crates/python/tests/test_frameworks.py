"""The LangChain and LlamaIndex retrievers (each tested when its package is installed)."""

import pytest

from conftest import DOCS


def test_langchain_retriever_returns_documents_with_citations(index):
    pytest.importorskip("langchain_core")
    from sift.langchain import SiftRetriever

    retriever = SiftRetriever(index=index, k=2, depth=4, search_kwargs={"rerank": False})
    docs = retriever.invoke("what happens to my notes when I close my account")
    assert len(docs) == 2
    top = docs[0]
    assert top.metadata["doc_id"].endswith("close-account.md")
    assert top.metadata["citation"].startswith(top.metadata["doc_id"])
    assert top.page_content and top.page_content in "".join(d["text"] for d in DOCS)
    assert top.metadata["scores"]["fused"] == pytest.approx(top.metadata["score"])
    assert "source" in top.metadata


def test_llama_index_retriever_returns_scored_nodes(index):
    pytest.importorskip("llama_index.core")
    from sift.llama_index import SiftRetriever

    retriever = SiftRetriever(index, k=2, depth=4, rerank=False)
    nodes = retriever.retrieve("what happens to my notes when I close my account")
    assert len(nodes) == 2
    assert nodes[0].node.metadata["doc_id"].endswith("close-account.md")
    assert nodes[0].score >= nodes[1].score
    assert len(nodes[0].node.node_id) == 16
