"""A LlamaIndex retriever over a sift index (needs ``llama-index-core``).

>>> from sift.llama_index import SiftRetriever             # doctest: +SKIP
>>> retriever = SiftRetriever(sift.Index("my-index"), k=5)  # doctest: +SKIP
>>> nodes = retriever.retrieve("what happens to my data if I close my account")  # doctest: +SKIP
"""

from typing import Any, List

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ._common import hit_metadata, search_hits


class SiftRetriever(BaseRetriever):
    """Both stages of sift per query; each chunk becomes a ``TextNode``
    (id: the chunk id) scored by the score sift ordered it by."""

    def __init__(self, index: Any, k: int = 5, depth: int = 50, **search_kwargs: Any) -> None:
        super().__init__()
        self._index = index
        self._k = k
        self._depth = depth
        self._search_kwargs = search_kwargs

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        hits = search_hits(self._index, query_bundle.query_str, self._k, self._depth, self._search_kwargs)
        return [
            NodeWithScore(node=TextNode(id_=h.chunk_id, text=h.text, metadata=hit_metadata(h)), score=h.score)
            for h in hits
        ]
