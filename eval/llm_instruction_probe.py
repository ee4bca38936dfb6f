#!/usr/bin/env python3
"""Does the LLM pointwise reranker's model follow "prefer recent documents"?

Writes the prompt sets of the second to fourth rounds in eval/README.md
("prefer recent documents" on the demo), scores them with the model through
crates/llm/examples/score_prompts.rs, and prints the tables:

    python3 eval/llm_instruction_probe.py prompts OUT
    cargo run --release -p sift-llm --example score_prompts -- \
        data/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf OUT/prompts.json > OUT/p_yes.txt
    python3 eval/llm_instruction_probe.py report OUT

Each case is one (prompt wording, query, instruction) and a pair of
candidates, the newer and the older page; the report counts the cases where
the newer one gets the higher P(yes). Standard library only.
"""
import json
import re
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "data" / "helpcentre"
PAIRS = [
    ("how do I set up two-factor authentication",
     "security/set-up-two-factor-authentication.md", "security/set-up-two-factor-authentication-2021.md"),
    ("what plans does Lumina offer and how much do they cost",
     "billing/plans-and-pricing.md", "billing/plans-and-pricing-2022.md"),
    ("how much does Lumina cost", "billing/plans-and-pricing.md", "billing/plans-and-pricing-2022.md"),
    ("turn on two-step verification",
     "security/set-up-two-factor-authentication.md", "security/set-up-two-factor-authentication-2021.md"),
]
INSTRUCTIONS = [None, "prefer recent documents", "prefer older documents"]


def page(relative, max_chars=600):
    """Title, date and the start of the body, flattened and cut on a word
    (as the reranker shows a chunk, max_passage_chars 600)."""
    lines = (DEMO / relative).read_text().split("\n")
    title = lines[0][2:].strip()
    rest = "\n".join(lines[1:]).strip()
    m = re.match(r"Updated:\s*(\S+)\s*", rest)
    flat = " ".join(rest[m.end():].split())
    if len(flat) > max_chars:
        cut = flat[:max_chars]
        flat = cut[:cut.rfind(" ")] + "…"
    return title, m.group(1), flat


def years_between(newer, older):
    return round(int(newer[:4]) - int(older[:4]) + (int(newer[5:7]) - int(older[5:7])) / 12)


# --- the shipped prompt (crates/rerank/src/llm.rs), Source shown as "x" ---
def shipped(q, ins, title, date, text, newest):
    s = f"Document\nTitle: {title}\nDate: {date}\nSource: x\nText: {text}\n\nSearch query: {q}\n"
    if ins:
        s += f"Searcher's instruction: {ins}\n"
    s += "Question: Does this document answer the search query"
    if ins:
        s += " and follow the searcher's instruction"
    return s + "? Answer yes or no.\nAnswer:"


# --- few-shot, four worked examples ---
def newest_note(date, newest):
    if date == newest:
        return "the newest of the results"
    y = years_between(newest, date)
    return f"{y} year{'s' if y != 1 else ''} older than the newest result"


SHOTS4 = [
    ("how do I reset my router", None, "Reset your router", "2023-06-01", "2023-06-01",
     "Hold the reset button on the back of the router for ten seconds until the lights blink, then wait two minutes for it to restart.", "yes"),
    ("how do I reset my router", None, "Pay your phone bill", "2023-06-01", "2023-06-01",
     "You can pay your bill online, by direct debit or at any of our shops. Payments take up to three days to arrive.", "no"),
    ("change the battery in the remote", "prefer recent documents", "Replace the remote's battery", "2018-02-10", "2024-09-15",
     "Slide off the cover on the back of the remote, take out the old battery and insert a new one with the plus side facing up.", "no"),
    ("change the battery in the remote", "prefer recent documents", "Replace the remote's battery", "2024-09-15", "2024-09-15",
     "Open the cover on the back of the remote, remove the old battery and put in a new one, plus side up, then close the cover.", "yes"),
]


def shot_block(q, ins, title, date, text, newest, rel, date_last):
    dl = f"Document date: {date}" + (f" ({newest_note(date, newest)})" if rel else "") + "\n"
    s = f"Search query: {q}\n"
    if ins:
        s += f"Searcher's instruction: {ins}\n"
    s += f"Document title: {title}\n"
    if not date_last:
        s += dl
    s += f"Document text: {text}\n"
    if date_last:
        s += dl
        if ins:
            s += f"Searcher's instruction: {ins}\n"
    return s + "Relevant:"


def few_shot(rel, date_last):
    def prompt(q, ins, title, date, text, newest):
        s = ("Each search result is judged for the searcher: Relevant: yes if it answers the search query "
             "and follows the searcher's instruction, if any; otherwise no.\n\n")
        for (sq, si, st, sd, sn, sx, a) in SHOTS4:
            s += shot_block(sq, si, st, sd, sx, sn, rel, date_last) + f" {a}\n\n"
        return s + shot_block(q, ins, title, date, text, newest, rel, date_last)
    return prompt


# --- zero-shot, the date annotated in words ---
def words_note(date, newest, style):
    is_newest = date == newest
    if style == "A":
        return ("the most recent of the results" if is_newest
                else f"{years_between(newest, date)} years older than the most recent result")
    if style == "B":
        return "a recent document" if is_newest else "an older document"
    return "recent" if is_newest else "old"


def annotated(style, where):
    def prompt(q, ins, title, date, text, newest):
        dl = f"Date: {date} ({words_note(date, newest, style)})\n"
        s = f"Document\nTitle: {title}\n" + (dl if where == "top" else "")
        s += f"Text: {text}\n\nSearch query: {q}\n"
        if ins:
            s += f"Searcher's instruction: {ins}\n"
        if where == "last":
            s += "Document " + dl[0].lower() + dl[1:]
        s += "Question: Does this document answer the search query"
        if ins:
            s += " and follow the searcher's instruction"
        return s + "? Answer yes or no.\nAnswer:"
    return prompt


# --- few-shot, six worked examples including "prefer older documents" ---
SHOTS6 = [
    ("how do I reset my router", None, "Reset your router", "2023-06-01", "2023-06-01",
     "Hold the reset button on the back of the router for ten seconds, then wait two minutes for it to restart.", "yes"),
    ("how do I reset my router", None, "Pay your phone bill", "2023-06-01", "2023-06-01",
     "You can pay your bill online, by direct debit or at any of our shops.", "no"),
    ("change the battery in the remote", "prefer recent documents", "Replace the remote's battery", "2024-09-15", "2024-09-15",
     "Open the cover on the back of the remote and put in a new battery, plus side up.", "yes"),
    ("change the battery in the remote", "prefer recent documents", "Replace the remote's battery", "2018-02-10", "2024-09-15",
     "Slide off the cover on the back of the remote and insert a new battery, plus side up.", "no"),
    ("bake a sourdough loaf", "prefer older documents", "Sourdough bread", "2016-04-02", "2023-01-20",
     "Mix the starter with flour and water, then leave the dough to rise overnight.", "yes"),
    ("bake a sourdough loaf", "prefer older documents", "Sourdough bread", "2023-01-20", "2023-01-20",
     "Mix your starter with flour and water and let the dough rise overnight.", "no"),
]


def six_block(q, ins, title, date, text, newest):
    note = ("the most recent of the results" if date == newest
            else f"{years_between(newest, date)} years older than the most recent result")
    s = f"Document title: {title}\nDocument text: {text}\nSearch query: {q}\n"
    if ins:
        s += f"Searcher's instruction: {ins}\n"
    return s + f"Document date: {date} ({note})\nRelevant:"


def few_shot6(q, ins, title, date, text, newest):
    s = ("Search results judged for a searcher. Relevant: yes when the document answers the search query "
         "and follows the searcher's instruction, if any.\n\n")
    for (sq, si, st, sd, sn, sx, a) in SHOTS6:
        s += six_block(sq, si, st, sd, sx, sn) + f" {a}\n\n"
    return s + six_block(q, ins, title, date, text, newest)


# --- the instruction alone, over the metadata ---
FOLLOW_NOTES = {
    "the most recent of the results": ("2025-11-20 (the most recent of the results)",
                                       "2021-03-15 (4 years older than the most recent result)"),
    "newest / oldest": ("2025-11-20 (newest)", "2021-03-15 (oldest)"),
    "this is the newest / an old document": ("2025-11-20 (this is the newest document)",
                                             "2021-03-15 (this is an old document)"),
}
FOLLOW_INSTRUCTIONS = ["prefer recent documents", "show me the latest version", "prefer newer pages",
                       "prefer older documents", "show me the oldest version",
                       "prefer pages from the billing section"]


def follow_prompt(date_line, ins):
    return ("Title: Set up two-factor authentication\nSource: security/set-up-two-factor-authentication.md\n"
            f"Date: {date_line}\n\nSearcher's instruction: {ins}\n"
            "Question: Does this document follow the searcher's instruction? Answer yes or no.\nAnswer:")


ROUND2 = {  # the demo's real pairs
    "the shipped prompt": shipped,
    "few-shot (4), absolute dates": few_shot(False, False),
    "few-shot (4), relative-date annotation": few_shot(True, False),
    "few-shot (4), annotated date right before the answer": few_shot(True, True),
    **{f"zero-shot, annotation {st}, date {w}": annotated(st, w)
       for st, w in [("A", "top"), ("A", "last"), ("B", "top"), ("B", "last"), ("C", "last")]},
}
ROUND3 = {  # the same text twice, two dates
    "the shipped prompt": shipped,
    "annotation A before the question": annotated("A", "last"),
    "annotation B before the question": annotated("B", "last"),
    "few-shot (6, with 'prefer older' examples)": few_shot6,
}


def build():
    prompts, rows = [], []

    def add(rnd, name, case, ins, which, prompt):
        prompts.append(prompt)
        rows.append([rnd, name, case, ins, which])

    for name, fn in ROUND2.items():
        for q, new, old in PAIRS:
            (tn, dn, xn), (to, do, xo) = page(new), page(old)
            for ins in INSTRUCTIONS:
                add("real pairs", name, q, ins, "new", fn(q, ins, tn, dn, xn, max(dn, do)))
                add("real pairs", name, q, ins, "old", fn(q, ins, to, do, xo, max(dn, do)))
    for name, fn in ROUND3.items():
        for q, new, old in PAIRS:
            for src in (new, old):
                t, _, x = page(src)
                for ins in INSTRUCTIONS:
                    add("same text", name, f"{q} | {src}", ins, "new", fn(q, ins, t, "2025-11-20", x, "2025-11-20"))
                    add("same text", name, f"{q} | {src}", ins, "old", fn(q, ins, t, "2021-03-15", x, "2025-11-20"))
    for name, (dn, do) in FOLLOW_NOTES.items():
        for ins in FOLLOW_INSTRUCTIONS:
            add("instruction alone", name, "metadata", ins, "new", follow_prompt(dn, ins))
            add("instruction alone", name, "metadata", ins, "old", follow_prompt(do, ins))
    return prompts, rows


def report(out):
    rows = json.loads((out / "rows.json").read_text())
    p_yes = [float(x) for x in (out / "p_yes.txt").read_text().split()]
    assert len(p_yes) == len(rows), f"{len(p_yes)} scores for {len(rows)} prompts"
    score = {tuple(r): p for r, p in zip(rows, p_yes)}
    table = {}
    for (rnd, name, case, ins, which), p in score.items():
        if which == "new":
            diff = p - score[(rnd, name, case, ins, "old")]
            table.setdefault((rnd, name), {}).setdefault(ins, []).append(diff)
    current = None
    for (rnd, name), by_ins in table.items():
        if rnd != current:
            current = rnd
            print(f"\n## {rnd}\n\n| prompt | instruction | new > old | mean P(new) - P(old) |\n| --- | --- | --- | --- |")
        for ins, diffs in by_ins.items():
            wins = sum(d > 0 for d in diffs)
            print(f"| {name} | {ins or '(none)'} | {wins}/{len(diffs)} | {sum(diffs) / len(diffs):+.3f} |")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("prompts", "report"):
        sys.exit(__doc__)
    out = Path(sys.argv[2])
    if sys.argv[1] == "prompts":
        out.mkdir(parents=True, exist_ok=True)
        prompts, rows = build()
        (out / "prompts.json").write_text(json.dumps(prompts))
        (out / "rows.json").write_text(json.dumps(rows))
        print(f"{len(prompts)} prompts in {out / 'prompts.json'}")
    else:
        report(out)


if __name__ == "__main__":
    main()
