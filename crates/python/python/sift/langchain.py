"""A LangChain retriever over a sift index (needs ``langchain-core``).

>>> from sift.langchain import SiftRetriever               # doctest: +SKIP
>>> retriever = SiftRetriever(index=sift.Index("my-index"), k=5)  # doctest: +SKIP
>>> docs = retriever.invoke("what happens to my data if I close my account")  # doctest: +SKIP
"""

from typing import Any, Dict, List

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from ._common import hit_metadata, search_hits


class SiftRetriever(BaseRetriever):
    """Both stages of sift per query; each chunk becomes a ``Document``
    whose metadata carries the citation (doc id, section, offsets) and
    every score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    """A ``sift.Index``."""
    k: int = 5
    depth: int = 50
    search_kwargs: Dict[str, Any] = Field(default_factory=dict)
    """More ``Index.search`` options: ``filter``, ``rerank``, ``prefer_recent``, …"""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> List[Document]:
        hits = search_hits(self.index, query, self.k, self.depth, self.search_kwargs)
        return [Document(page_content=h.text, metadata=hit_metadata(h)) for h in hits]
