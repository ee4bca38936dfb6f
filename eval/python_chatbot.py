"""A chatbot's retrieval layer in Python: sift behind LangChain's retriever
interface, over the demo help centre, printing the grounded prompt a
language model would get (with citations it can point back to).

    just python
    SIFT_BI_ENCODER_PATH=data/models/all-MiniLM-L6-v2 \\
        target/python-venv/bin/python eval/python_chatbot.py "what happens to my data if I close my account"
"""

import pathlib
import sys

import sift
from sift.langchain import SiftRetriever

ROOT = pathlib.Path(__file__).resolve().parents[1]
INDEX = ROOT / "target" / "python-demo-index"


def main() -> None:
    question = " ".join(sys.argv[1:]) or "what happens to my data if I close my account"
    index = sift.Index(INDEX, create=True)
    report = index.add_path(ROOT / "data" / "helpcentre")  # unchanged pages are skipped
    print(f"index: {index.stats()['chunks']} chunks ({report['documents_written']} documents written)", file=sys.stderr)

    # The two lines a LangChain app changes to use sift:
    retriever = SiftRetriever(index=index, k=3, depth=50, search_kwargs={"prefer_recent": "1y"})
    docs = retriever.invoke(question)

    context = "\n\n".join(
        f"[{i}] ({d.metadata['citation']}, updated {d.metadata.get('date', 'n/a')})\n{d.page_content}"
        for i, d in enumerate(docs, 1)
    )
    print(f"Answer from the sources below and cite them as [n].\n\n{context}\n\nQuestion: {question}")
    for i, d in enumerate(docs, 1):
        m = d.metadata
        print(f"[{i}] {m['doc_id']} chars {m['char_start']}..{m['char_end']} score {m['score']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
