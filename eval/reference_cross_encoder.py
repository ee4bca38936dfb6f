"""Parity cross-encoder checkpoint and reference logits for the Rust test (crates/bert).

There is no real cross-encoder checkpoint on this machine (the hub is
unreachable), so the parity test uses a synthetic one built from the
all-MiniLM-L6-v2 folder. The Rust test rebuilds the SAME checkpoint itself,
so this recipe is exact and must not drift:

  1. model = transformers.BertForSequenceClassification.from_pretrained(
         MINILM_DIR, num_labels=1)
     The BERT body loads from the MiniLM safetensors, pooler included
     (`pooler.dense.weight`, `pooler.dense.bias` exist there); only the
     classifier head is freshly (randomly) initialised, and is overwritten next.
  2. Head, deterministic (hidden size 384):
         classifier.weight[0, i] = float32(0.1 * sin(i + 1))   for i in 0..384
             (sin in radians, computed in float64, then cast to float32)
         classifier.bias[0]      = 0.25
  3. model.eval() (no dropout). Score of a pair =
         classifier(tanh(pooler.dense(hidden[CLS])))[0]
     i.e. `model(**enc).logits[:, 0]`, float32, under torch.no_grad().

Pairs are tokenised as the HF cross-encoders do:
    tokenizer(queries, passages, padding=True, truncation="only_second",
              max_length=MAX_LEN, return_tensors="pt")
with the AutoTokenizer of MINILM_DIR ([CLS] q [SEP] p [SEP], token_type_ids 0
for the query part and 1 for the passage part; only the passage is cut).
Logits are computed for MAX_LEN = 512 and MAX_LEN = 128. Two passages make
query + passage exceed 512 tokens, others exceed 128, so both truncation
lengths are exercised.

With `--out DIR` the checkpoint is also saved in the Hugging Face layout
(model.safetensors with keys bert.embeddings.*, bert.encoder.*,
bert.pooler.dense.*, classifier.weight, classifier.bias, plus config.json and
the tokenizer files) so a person can inspect it; the fixture does not need it.

Usage (from the repository root):
    HF_HUB_OFFLINE=1 eval/.venv/bin/python eval/reference_cross_encoder.py \
        [--model data/models/all-MiniLM-L6-v2] \
        [--fixture crates/bert/tests/fixtures/cross_encoder_logits.json] \
        [--out eval/out/parity-cross-encoder]
"""

import argparse
import inspect
import json
import math
import os
import pathlib
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, BertForSequenceClassification  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "data" / "models" / "all-MiniLM-L6-v2"
DEFAULT_FIXTURE = ROOT / "crates" / "bert" / "tests" / "fixtures" / "cross_encoder_logits.json"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]
RECIPE = (
    "BertForSequenceClassification.from_pretrained(all-MiniLM-L6-v2, num_labels=1) with "
    "classifier.weight[0,i] = float32(0.1*sin(i+1)) (radians, float64) for i in 0..384, "
    "classifier.bias[0] = 0.25; eval mode; logit = classifier(tanh(pooler.dense(h_CLS)))"
)
MAX_LENGTHS = (512, 128)

LONG_DATA_RETENTION = (
    "Data retention, exports and deleting your account. This article explains what happens "
    "to the information stored in your workspace over its whole life, from the day it is "
    "created until the day it is permanently erased. Everything you upload, including "
    "documents, comments, attachments and the history of edits, is stored in the region you "
    "selected when the workspace was set up. Copies are written to two separate data centres "
    "in that region so that the loss of one building does not cause the loss of your files. "
    "Backups are taken every night and kept for thirty-five days; they are encrypted with keys "
    "that are rotated every quarter, and they are only ever restored by our operations team "
    "after a documented incident, never on request for a single file. If you delete a "
    "document it first moves to the Trash, where it stays for thirty days and can be restored "
    "by anyone with edit rights. After that period the document is removed from the live "
    "database, although it may remain inside the nightly backups until they expire. "
    "Administrators can shorten the Trash period to seven days or extend it to ninety days "
    "from the Security page, and can also place a legal hold on selected members, which "
    "prevents any of their content from being purged while the hold is active. Exports are "
    "available to owners and administrators. A full export produces a compressed archive "
    "containing every document in its original format, a JSON file describing folders, "
    "permissions and comments, and a CSV listing of all members with the dates they joined "
    "and left. Large workspaces are exported in several parts, each no bigger than ten "
    "gigabytes, and you will receive an email with download links that stay valid for seven "
    "days. Exports are generated in the background and can take several hours for "
    "workspaces with millions of files, so please plan ahead if you need the archive by a "
    "particular date. Deleting the entire account is irreversible. When the owner confirms "
    "the deletion, the workspace is locked immediately, all sessions are signed out, "
    "integrations are disconnected and scheduled jobs are cancelled. Seventy-two hours "
    "later, the data is removed from the live systems; the short delay exists so that an "
    "owner who acted by mistake can contact support and undo the request. The backups that "
    "still contain the workspace expire on their normal schedule, after which no copy of "
    "your content exists anywhere in our infrastructure. Invoices and payment records are "
    "the exception: tax law requires us to keep them for up to ten years, but they are "
    "stored separately and contain no document content. If you are an individual member "
    "rather than the owner, leaving a workspace does not delete the documents you created, "
    "because they belong to the organisation; ask an administrator to transfer or remove "
    "them if that matters to you. Finally, if you need a signed data processing agreement, "
    "a list of our subprocessors, or confirmation that a deletion has been completed, write "
    "to the privacy team from the address registered as the workspace owner, and we will "
    "reply within five working days."
)

LONG_CORAL = (
    "Thermal stress and the breakdown of coral symbiosis. Reef-building corals depend on "
    "single-celled algae that live inside the cells of their gut lining. The algae "
    "photosynthesise and pass most of the sugars, glycerol and amino acids they produce to "
    "the host, which in return supplies nitrogen, phosphorus and carbon dioxide from its own "
    "metabolism and shelters the algae in a well-lit, stable environment. This partnership "
    "allows corals to thrive in clear tropical waters that are otherwise poor in nutrients. "
    "When sea surface temperatures rise one or two degrees above the usual summer maximum "
    "for several weeks, the partnership begins to fail. The photosynthetic machinery of the "
    "algae is damaged first: heat impairs the repair of a key protein in photosystem two, "
    "electron transport becomes congested, and reactive oxygen species such as superoxide "
    "and hydrogen peroxide accumulate. These molecules leak into the host tissue, where they "
    "damage membranes and trigger signalling pathways that resemble an immune response. The "
    "coral then expels the algae, or the algae are digested or die in place, and the tissue "
    "becomes transparent, revealing the white limestone skeleton underneath. This is the "
    "process known as bleaching. A bleached coral is not dead, but it has lost its main "
    "source of energy; if temperatures fall quickly, it can reacquire algae from the "
    "surrounding water within weeks, yet prolonged bleaching leads to starvation, disease "
    "and death. Researchers quantify heat exposure with degree heating weeks, the sum of "
    "temperature anomalies above the bleaching threshold over a rolling twelve-week window; "
    "values above four usually correspond to widespread bleaching, and values above eight to "
    "significant mortality. Not all corals respond in the same way. Massive, slow-growing "
    "forms with thick tissue tend to survive better than branching species, and colonies "
    "that host heat-tolerant algal lineages can withstand higher temperatures, sometimes at "
    "the cost of slower growth. Local conditions matter too: reefs bathed by cool upwelling, "
    "shaded by turbid water, or exposed to strong tidal currents often suffer less. Field "
    "surveys after recent marine heatwaves have shown that recovery of coral cover takes at "
    "least a decade when larvae can arrive from healthy reefs upstream, and much longer when "
    "the reef is isolated or also stressed by pollution and overfishing. Experimental "
    "approaches under study include breeding corals from naturally warm reefs, inoculating "
    "juveniles with tolerant algae, and shading small, high-value areas during heatwaves, "
    "but all of them operate at scales far smaller than the reefs they aim to protect, which "
    "is why most scientists argue that limiting ocean warming remains the decisive factor."
)

MEDIUM_TWO_FACTOR = (
    "Turning on two-step verification. Open your profile, choose Security, and select Set up "
    "two-step verification. Scan the QR code with an authenticator app on your phone and type "
    "the six-digit code it shows to confirm. We then display ten single-use recovery codes: "
    "print them or store them in a password manager, because they are the only way back into "
    "your account if you lose the phone. Administrators can make two-step verification "
    "mandatory for every member from the organisation settings; members who have not enrolled "
    "are asked to do so the next time they sign in and cannot skip the step. Security keys "
    "that follow the FIDO2 standard are supported as a second factor as well: plug the key in "
    "or hold it near the phone when prompted, then give it a name so you can recognise it in "
    "the list later. Text-message codes are still offered in countries where authenticator "
    "apps are uncommon, but we recommend them only as a backup, since phone numbers can be "
    "transferred to another SIM card without your knowledge."
)

PAIRS = [
    ("How do I reset my password?",
     "To reset your password, click Forgot password on the sign-in page and enter the email "
     "address linked to your account. We will send a link that stays valid for one hour."),
    ("How do I reset my password?",
     "Our offices are closed on public holidays, but the status page is updated around the "
     "clock."),
    ("How do I reset my password?", MEDIUM_TWO_FACTOR),
    ("set up two factor authentication", MEDIUM_TWO_FACTOR),
    ("Where can I download old invoices?",
     "Past invoices can be downloaded as PDF files from Settings, Billing, Invoices."),
    ("Where can I download old invoices?",
     "Photosynthesis converts light energy into chemical energy stored in sugars."),
    ("how long are deleted files kept", LONG_DATA_RETENTION),
    ("what causes coral bleaching", LONG_CORAL),
    ("what causes coral bleaching", LONG_DATA_RETENTION),
    ("what causes coral bleaching",
     "Corals bleach when heat stress makes them expel the symbiotic algae living in their "
     "tissue."),
    ("Can I share a folder with people outside my company?",
     "Folders can be shared with external guests if an administrator has enabled guest "
     "access. Guests can view and comment but cannot create new folders."),
    ("Can I share a folder with people outside my company?",
     "The mitochondrion is the site of oxidative phosphorylation in eukaryotic cells."),
    ("why is mitochondrial DNA inherited from the mother",
     "In most animals the sperm's mitochondria are tagged and destroyed shortly after "
     "fertilisation, so the embryo keeps only the egg's mitochondrial genomes."),
    ("why is mitochondrial DNA inherited from the mother",
     "You can change the payment method at any time from the Billing page."),
    ("boiling point of water on a mountain",
     "At lower atmospheric pressure water boils at a lower temperature: roughly 90 degrees "
     "Celsius at three thousand metres above sea level."),
    ("boiling point of water on a mountain",
     "Exports are generated in the background and may take several hours."),
    ("Comment réinitialiser mon mot de passe ? 🔑",
     "Pour réinitialiser votre mot de passe, cliquez sur « Mot de passe oublié » et suivez "
     "le lien reçu par e-mail."),
    ("Comment réinitialiser mon mot de passe ? 🔑",
     "Crème brûlée is a custard dessert topped with a layer of hardened caramelised sugar."),
    ("C4 photosynthesis hot climates",
     "Photosynthetic efficiency in C4 plants is higher under hot, dry conditions because "
     "PEP carboxylase concentrates carbon dioxide around Rubisco, suppressing "
     "photorespiration."),
    ("C4 photosynthesis hot climates",
     "The camp was set up on a broad saddle between two outlet glaciers."),
    ("how fast do glaciers move",
     "Surface velocity near the saddle is only a few centimetres per day but rises to almost "
     "two metres per day close to the calving front."),
    ("cancel subscription refund",
     "Refunds for annual plans are available within thirty days of the renewal date and are "
     "returned to the original payment method."),
    ("cancel subscription refund", "The train was late again."),
    ("What is the capital of Australia?", "Canberra is the capital city of Australia."),
    ("What is the capital of Australia?",
     "Sydney is the largest city in Australia, famous for its harbour and opera house."),
    ("export contacts to csv",
     "To export your contacts, open the Address Book, select the entries you want, and choose "
     "Export from the File menu. The file is saved in CSV format."),
]


def build_model(model_dir: pathlib.Path) -> BertForSequenceClassification:
    model, info = BertForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=1, output_loading_info=True
    )
    missing = sorted(info.get("missing_keys", []))
    print(f"missing keys (freshly initialised): {missing}")
    if any(not k.startswith("classifier.") for k in missing):
        sys.exit("only the classifier head may be missing; the pooler must load")
    hidden = model.config.hidden_size
    weight = np.array([0.1 * math.sin(i + 1) for i in range(hidden)], dtype=np.float64)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight.astype(np.float32)).view(1, hidden))
        model.classifier.bias.fill_(0.25)
    model.eval()
    return model


def save_checkpoint(model, model_dir: pathlib.Path, out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers < 5; 5.x always writes safetensors
    model.save_pretrained(str(out), **kwargs)
    for name in TOKENIZER_FILES:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out / name)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    print(f"saved {out}: {len(keys)} tensors")
    for k in keys:
        if not k.startswith("bert.encoder.layer.") or k.startswith("bert.encoder.layer.0."):
            print(f"  {k}")
    print("  ... (bert.encoder.layer.1-5.* as layer 0)")


def score(model, tokenizer, pairs, max_length):
    queries = [q for q, _ in pairs]
    passages = [p for _, p in pairs]
    enc = tokenizer(queries, passages, padding=True, truncation="only_second",
                    max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[:, 0].float()
    counts = [int(n) for n in enc["attention_mask"].sum(dim=1)]
    return counts, [float(x) for x in logits.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--fixture", type=pathlib.Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="also save the checkpoint (HF layout) in this folder")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = build_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    if args.out is not None:
        save_checkpoint(model, args.model, args.out)
    else:
        keys = list(model.state_dict().keys())
        print(f"state_dict: {len(keys)} keys, e.g. {keys[:2]} ... {keys[-4:]}")

    full = [len(tokenizer(q, p)["input_ids"]) for q, p in PAIRS]
    fixture = {
        "recipe": RECIPE,
        "pairs": [{"query": q, "passage": p} for q, p in PAIRS],
    }
    for max_length in MAX_LENGTHS:
        counts, logits = score(model, tokenizer, PAIRS, max_length)
        # Padding must not matter: each pair scored alone gives the same logit.
        alone = [score(model, tokenizer, [pair], max_length)[1][0] for pair in PAIRS]
        pad_diff = max(abs(a - b) for a, b in zip(alone, logits))
        assert pad_diff < 1e-4, pad_diff
        print(f"\nmax_length={max_length}: logits in [{min(logits):.4f}, {max(logits):.4f}], "
              f"std {np.std(logits):.4f}, max |batched - alone| {pad_diff:.2e}")
        for (q, _), n, u, s in zip(PAIRS, counts, full, logits):
            print(f"  tokens={n:3d} (untruncated {u:3d})  logit={s: .6f}  {q[:45]!r}")
        if len({round(x, 4) for x in logits}) < len(logits) // 2:
            sys.exit("logits barely differ between pairs")
        fixture[f"max_length_{max_length}"] = {"token_counts": counts, "logits": logits}

    over_512 = sum(1 for n in full if n > 512)
    over_128 = sum(1 for n in full if 128 < n <= 512)
    if over_512 < 2 or over_128 < 1:
        sys.exit(f"need >= 2 pairs over 512 tokens and >= 1 over 128: {full}")

    args.fixture.parent.mkdir(parents=True, exist_ok=True)
    args.fixture.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    print(f"\nwrote {args.fixture} ({args.fixture.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
