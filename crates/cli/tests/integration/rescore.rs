//! Rescoring rules: `--prefer-recent`, `--boost`, `--rescore FILE`, and
//! instructions mapped to rules on the cross-encoder path.

use crate::util::{doc_id, doc_ids, helpcentre_dir, Sift};
use serde_json::Value;

/// Two pricing pages answer the question equally well; the 2022 one
/// (Business, $9 per user) ranks first on its words. Preferring recent
/// pages puts the current one (Teams, $8 per user) first. The same from
/// an instruction, and each hit says what the rule did.
#[test]
fn prefer_recent_lifts_the_newer_of_two_pricing_pages() {
    let sift = Sift::new();
    sift.ok(&["index", helpcentre_dir().to_str().unwrap()]);
    let query = "how much does the Business plan cost per user";
    let old = "billing/plans-and-pricing-2022.md";
    let new = "billing/plans-and-pricing.md";

    let plain = sift.hits(query, &["--k", "3", "--depth", "30"]);
    assert_eq!(doc_id(&plain[0]), old, "{:?}", doc_ids(&plain));
    assert!(plain[0]["scores"].get("rescore").is_none());

    let recent = sift.hits(
        query,
        &["--k", "3", "--depth", "30", "--prefer-recent", "1y"],
    );
    assert_eq!(doc_id(&recent[0]), new, "{:?}", doc_ids(&recent));
    let rescore = &recent[0]["scores"]["rescore"];
    let factor = &rescore["factors"][0];
    assert_eq!(factor["value"], "2025-10-01");
    assert!(
        factor["rule"]
            .as_str()
            .unwrap()
            .starts_with("date: exp decay from newest, scale 1y"),
        "{factor}"
    );
    let product = rescore["base"].as_f64().unwrap() * factor["factor"].as_f64().unwrap();
    assert!(
        (rescore["score"].as_f64().unwrap() - product).abs() < 1e-5,
        "{rescore}"
    );
    // The old page, wherever it went, carries a smaller factor.
    let all = sift.hits(
        query,
        &["--k", "30", "--depth", "30", "--prefer-recent", "1y"],
    );
    let factor_of = |id: &str| -> f64 {
        let hit = all
            .iter()
            .find(|h| doc_id(h) == id)
            .expect("still among the candidates");
        hit["scores"]["rescore"]["factors"][0]["factor"]
            .as_f64()
            .unwrap()
    };
    assert!(factor_of(old) < factor_of(new));
    let scores: Vec<f64> = all
        .iter()
        .map(|h| h["scores"]["rescore"]["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // The instruction on the cross-encoder path becomes the same kind of rule.
    let run = sift.ok(&[
        "search",
        query,
        "--json",
        "--no-rerank",
        "--k",
        "3",
        "--depth",
        "30",
        "--instruction",
        "prefer the newest pages, and answer like a pirate",
    ]);
    let response: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc_id(&response["hits"][0]), new, "{}", run.stdout);
    assert!(
        run.stderr.contains("instruction read as rescoring rules"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("not understood: \"answer like a pirate\""),
        "{}",
        run.stderr
    );

    // Plain output shows each hit's factor and says what ordered them.
    let run = sift.ok(&[
        "search",
        query,
        "--no-rerank",
        "--k",
        "2",
        "--depth",
        "30",
        "--prefer-recent",
        "1y",
    ]);
    assert!(run.stdout.contains("(date 2025-10-01)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("order: rescored by date: exp decay"),
        "{}",
        run.stdout
    );
}

const JSONL: &str = r#"{"_id": "forum-1", "title": "Refund question", "text": "How do refunds work for annual plans? Someone said fourteen days.", "metadata": {"source": "community", "tags": ["billing"]}}
{"_id": "help-1", "title": "Refunds", "text": "Annual plans can be refunded within 14 days of purchase; monthly plans are not refunded.", "metadata": {"source": "official", "tags": ["billing", "refunds"]}}
{"_id": "blog-1", "title": "Our refund policy, explained", "text": "Why we refund annual plans within 14 days, and what happens to monthly plans.", "metadata": {"source": "blog"}}
"#;

/// Boosts from flags and from a rule file lift what they match; bad rules
/// are refused with the reason; a filter keeps only what matches.
#[test]
fn boosts_rule_files_and_filters() {
    let sift = Sift::new();
    sift.write("corpus.jsonl", JSONL);
    sift.ok(&["index", "corpus.jsonl"]);
    let query = "are annual plans refunded";
    let base = sift.hits(query, &["--k", "3", "--depth", "3"]);
    let first = doc_id(&base[0]).to_string();

    for target in ["forum-1", "help-1", "blog-1"]
        .into_iter()
        .filter(|t| *t != first)
    {
        let source = match target {
            "forum-1" => "community",
            "help-1" => "official",
            _ => "blog",
        };
        let boost = format!("source={source}:50");
        let hits = sift.hits(query, &["--k", "3", "--depth", "3", "--boost", &boost]);
        assert_eq!(doc_id(&hits[0]), target, "{boost}: {:?}", doc_ids(&hits));
    }
    // A tag in a list, from a TOML rule file; a JSON one with a demotion.
    sift.write(
        "rules.toml",
        "[[rules]]\nkind = \"boost\"\nfield = \"tags\"\nany_of = [\"refunds\"]\nfactor = 50\n",
    );
    let hits = sift.hits(
        query,
        &["--k", "3", "--depth", "3", "--rescore", "rules.toml"],
    );
    assert_eq!(doc_id(&hits[0]), "help-1");
    // Demoted (factor below 1) under `combine = "sum"`: the first goes last.
    let first_source = base[0]["chunk"]["metadata"]["source"].as_str().unwrap();
    sift.write(
        "rules.json",
        format!(r#"{{"rules": [{{"kind": "boost", "field": "source", "equals": "{first_source}", "factor": 0.01}}], "combine": "sum"}}"#),
    );
    let hits = sift.hits(
        query,
        &["--k", "3", "--depth", "3", "--rescore", "rules.json"],
    );
    assert_eq!(doc_id(&hits[2]), first, "{:?}", doc_ids(&hits));
    assert_eq!(hits[2]["scores"]["rescore"]["combine"], "sum");
    // Filter: only the official page.
    let hits = sift.hits(
        query,
        &["--k", "3", "--depth", "3", "--filter", "source=official"],
    );
    assert_eq!(doc_ids(&hits), vec!["help-1"]);

    let e = sift.fails(&["search", query, "--boost", "source=official"]);
    assert!(e.contains("--boost \"source=official\": no :FACTOR"), "{e}");
    let e = sift.fails(&["search", query, "--prefer-recent", "soon"]);
    assert!(
        e.contains("--prefer-recent soon") && e.contains("not a duration"),
        "{e}"
    );
    sift.write(
        "bad.toml",
        "[[rules]]\nkind = \"decay\"\nfield = \"date\"\nscale = \"9d\"\ndecay = 2\n",
    );
    let e = sift.fails(&["search", query, "--rescore", "bad.toml"]);
    assert!(
        e.contains("bad.toml") && e.contains("decay must be in (0, 1)"),
        "{e}"
    );
    sift.write("typo.toml", "[[rules]]\nkind = \"boost\"\nfeild = \"x\"\n");
    let e = sift.fails(&["search", query, "--rescore", "typo.toml"]);
    assert!(e.contains("typo.toml") && e.contains("feild"), "{e}");
}
