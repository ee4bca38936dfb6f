"""Reference bi-encoder embeddings for the Rust parity test (crates/bert).

Encodes a fixed list of original sentences with sentence-transformers'
all-MiniLM-L6-v2 loaded from the local model folder (never the hub), with
normalize_embeddings=True and batch_size=4, and writes
crates/bert/tests/fixtures/minilm_embeddings.json.

What the fixture pins down for the Rust side:
  * truncation at max_seq_length = 256 tokens (including [CLS] and [SEP]);
    the shipped tokenizer.json asks for a fixed 128-token pad/truncation,
    which sentence-transformers does NOT use: it truncates at 256 and pads to
    the longest sequence of each batch. Two passages here are longer than 300
    wordpieces, so a Rust encoder that truncates at 128 (or 512) fails;
  * mean pooling over the attention mask, then L2 normalisation;
  * padding inside a batch must not change any embedding.

Usage (from the repository root):
    HF_HUB_OFFLINE=1 eval/.venv/bin/python eval/reference_embeddings.py \
        [--model data/models/all-MiniLM-L6-v2] \
        [--out crates/bert/tests/fixtures/minilm_embeddings.json]
"""

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "data" / "models" / "all-MiniLM-L6-v2"
DEFAULT_OUT = ROOT / "crates" / "bert" / "tests" / "fixtures" / "minilm_embeddings.json"
MAX_SEQ_LENGTH = 256
BATCH_SIZE = 4

LONG_PASSAGE_GLACIER = (
    "Field notes from the third season on the northern ice cap. The camp was set up on a "
    "broad saddle between two outlet glaciers, roughly eleven kilometres from the calving "
    "front, where the surface slopes gently enough for the sledges to be unloaded without "
    "anchoring them. Our first task each morning was to visit the stake network: forty-two "
    "aluminium poles drilled into the firn along a transect that follows the central flow "
    "line. Every stake is surveyed with a dual-frequency receiver, and the height of the pole "
    "above the snow is measured by hand with a folding ruler, because the automatic sensors "
    "have a habit of icing over after a storm. By comparing positions from one week to the "
    "next we estimate the surface velocity, which near the saddle is only a few centimetres "
    "per day but rises to almost two metres per day close to the terminus. The accumulation "
    "record is collected from shallow pits, each one dug to a depth of two metres with a "
    "snow saw and shovels. On the clean wall of the pit we mark the visible layers, measure "
    "density with a wedge cutter every five centimetres, and take samples for stable isotope "
    "analysis back at the laboratory. Dust horizons from late summer make the annual layers "
    "fairly easy to identify, though wind crusts occasionally imitate them and fool the "
    "less experienced diggers. In the afternoons the radar team towed the ground-penetrating "
    "antenna behind a snowmobile at walking pace, mapping the bed topography beneath "
    "roughly four hundred metres of ice. The echoes revealed a buried trough that may "
    "channel meltwater towards the front during warm spells, which would explain the "
    "sudden speed-ups recorded by the stakes in July. Weather permitting, the final week "
    "will be spent retrieving the instruments, packing the ice cores into insulated boxes "
    "and flying everything out to the coastal station before the autumn storms arrive."
)

LONG_PASSAGE_BILLING = (
    "Understanding your invoice and changing how you pay. Your invoice is generated on the "
    "first day of each billing period and is emailed to the account owner as well as to any "
    "address listed under Billing contacts. It shows the plan you were on, the number of "
    "seats that were active during the period, any add-ons such as extra storage or priority "
    "support, and the taxes that apply in your region. If a seat was added in the middle of "
    "a period, you will see a prorated line for the days it was in use; removing a seat "
    "creates a credit that is applied automatically to the next invoice rather than being "
    "refunded to your card. To download past invoices as PDF files, open Settings, choose "
    "Billing, and select the Invoices tab, where documents from the last seven years are "
    "kept. You can change the payment method at any time: add a new card or a direct debit "
    "mandate, mark it as the default, and then remove the old one. Payments that fail are "
    "retried three times over ten days, and the owner receives a reminder after each attempt. "
    "If the last retry also fails, the workspace switches to read-only mode: your data stays "
    "safe and visible, but new projects cannot be created and integrations are paused until "
    "the balance is settled. Customers who need purchase orders, a fixed invoice address in "
    "another country, or payment by bank transfer can move to annual invoicing; contact the "
    "sales team with your company registration number and the name of the person who "
    "approves purchases. Please note that VAT identification numbers must be entered before "
    "an invoice is issued, because we are not able to reissue documents for previous periods "
    "once they have been finalised and reported to the tax authority. Refunds for annual "
    "plans are available within thirty days of the renewal date, minus any usage above the "
    "included allowance, and are returned to the original payment method within a week."
)

SENTENCES = [
    "How do I reset my password?",
    "Where can I find my invoices?",
    "what is the boiling point of water at high altitude",
    "Can I share a folder with someone outside my organisation?",
    "To export your contacts, open the Address Book, select the entries you want, and choose "
    "Export from the File menu. The file is saved in CSV format and can be imported into most "
    "spreadsheet programs.",
    "Photosynthetic efficiency in C4 plants is higher under hot, dry conditions because the "
    "enzyme PEP carboxylase concentrates carbon dioxide around Rubisco, suppressing "
    "photorespiration.",
    "Crème brûlée à la française, façon grand-mère — naïve café owners in Zürich serve it "
    "with a smile 😊 and a cup of São Tomé coffee ☕.",
    "The train was late again.",
    "Mitochondrial DNA is inherited almost exclusively from the mother.",
    LONG_PASSAGE_GLACIER,
    "A cheap laptop stand made of bamboo",
    LONG_PASSAGE_BILLING,
]


def sig7(x: float) -> float:
    """Round to 7 significant digits (the JSON stays small; float32 carries ~7)."""
    return float(f"{x:.7g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = SentenceTransformer(str(args.model), device="cpu")
    model.eval()
    if model.max_seq_length != MAX_SEQ_LENGTH:
        sys.exit(f"expected max_seq_length {MAX_SEQ_LENGTH}, model says {model.max_seq_length}")

    tokenizer = model.tokenizer
    untruncated = [len(tokenizer(s, truncation=False)["input_ids"]) for s in SENTENCES]
    # exactly what encode() feeds the transformer (`tokenize` is the pre-6.x name)
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    features = preprocess(SENTENCES)
    token_counts = [int(n) for n in features["attention_mask"].sum(dim=1)]
    if max(token_counts) > MAX_SEQ_LENGTH:
        sys.exit("truncation did not happen")
    long_ones = [i for i, n in enumerate(untruncated) if n > 300]
    if len(long_ones) < 2 or any(token_counts[i] != MAX_SEQ_LENGTH for i in long_ones):
        sys.exit(f"need two sentences over 300 tokens truncated to {MAX_SEQ_LENGTH}: {untruncated}")

    embeddings = model.encode(
        SENTENCES,
        batch_size=BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    ).astype(np.float32)
    assert embeddings.shape == (len(SENTENCES), 384), embeddings.shape
    norms = np.linalg.norm(embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5), norms

    # Padding must not matter: each sentence alone gives the same vector.
    alone = np.stack(
        [model.encode([s], normalize_embeddings=True, convert_to_numpy=True)[0] for s in SENTENCES]
    )
    max_pad_diff = float(np.abs(alone - embeddings).max())
    assert max_pad_diff < 1e-5, max_pad_diff

    # Independent check with plain transformers: truncate at 256, no fixed
    # padding, mean over the attention mask, L2-normalise. This is the recipe
    # the Rust encoder implements.
    from transformers import AutoModel, AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(args.model))
    hf_model = AutoModel.from_pretrained(str(args.model)).eval()
    manual = []
    with torch.no_grad():
        for start in range(0, len(SENTENCES), BATCH_SIZE):
            batch = SENTENCES[start : start + BATCH_SIZE]
            enc = hf_tok(batch, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH,
                         return_tensors="pt")
            hidden = hf_model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            manual.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
    manual = np.concatenate(manual)
    max_manual_diff = float(np.abs(manual - embeddings).max())
    assert max_manual_diff < 1e-5, max_manual_diff

    for i, (s, n, u) in enumerate(zip(SENTENCES, token_counts, untruncated)):
        print(f"{i:2d} tokens={n:3d} (untruncated {u:3d})  {s[:60]!r}")
    print(f"max |batched - alone| = {max_pad_diff:.2e}")
    print(f"max |sentence-transformers - manual transformers| = {max_manual_diff:.2e}")

    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_seq_length": MAX_SEQ_LENGTH,
        "normalized": True,
        "sentences": SENTENCES,
        "token_counts": token_counts,
        "embeddings": [[sig7(v) for v in row.tolist()] for row in embeddings],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
