"""What the framework retrievers share: one search, hits as metadata."""

from typing import Any, Dict, List


def search_hits(index: Any, query: str, k: int, depth: int, search_kwargs: Dict[str, Any]) -> List[Any]:
    return index.search(query, k=k, depth=depth, **search_kwargs).hits


def hit_metadata(hit: Any) -> Dict[str, Any]:
    """The document's own metadata, then what a citation needs and the
    scores; the sift keys win over a document key of the same name."""
    return {
        **hit.metadata,
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "title": hit.title,
        "section": list(hit.section),
        "citation": hit.citation,
        "char_start": hit.char_start,
        "char_end": hit.char_end,
        "score": hit.score,
        "scores": hit.scores,
    }
