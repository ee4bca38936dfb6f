"""sift: two-stage retrieval (BM25 + dense HNSW fused by RRF, then a
cross-encoder rerank), a Rust engine driven from Python.

>>> import sift
>>> index = sift.Index("my-index", create=True)              # doctest: +SKIP
>>> index.add([{"id": "faq/close.md", "title": "Closing your account",
...             "text": "Your notes are deleted after 30 days."}])  # doctest: +SKIP
>>> for hit in index.search("what happens to my notes", k=3).hits:  # doctest: +SKIP
...     print(f"{hit.score:+.2f} {hit.citation} [{hit.char_start}..{hit.char_end}]")

Retrievers for chatbot frameworks, imported on demand (their packages are
optional extras): ``sift.langchain.SiftRetriever`` and
``sift.llama_index.SiftRetriever``.
"""

from ._sift import Hit, Index, InvalidInputError, Reranker, SearchResult, SiftError, __version__, read_documents

__all__ = ["Index", "Reranker", "SearchResult", "Hit", "SiftError", "InvalidInputError", "read_documents", "__version__"]
