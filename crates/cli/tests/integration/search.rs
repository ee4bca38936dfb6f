//! Searching: output formats, citations, provenance, timings, the demo.

use crate::index::{index_small_corpus, SMALL_CORPUS_DOCS};
use crate::util::{
    committed_reranker, doc_id, doc_ids, helpcentre_dir, parse_hit_line, text, Sift,
};
use serde_json::Value;

const QUERY: &str = "what happens to my notes when I close my account";

/// The citation line under a hit: its document, then its headings.
fn citation(hit: &Value) -> String {
    let sections: Vec<&str> = hit["chunk"]["section"]
        .as_array()
        .map(|s| s.iter().map(|h| h.as_str().unwrap()).collect())
        .unwrap_or_default();
    std::iter::once(doc_id(hit))
        .chain(sections)
        .collect::<Vec<_>>()
        .join(" › ")
}

#[test]
fn plain_output_is_a_scored_line_and_a_citation_per_hit() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let meta = sift.index_dir().join("sift-index.json");
    let written = std::fs::metadata(&meta).unwrap().modified().unwrap();
    let run = sift.ok(&["search", QUERY, "--k", "3", "--depth", "10", "--no-rerank"]);
    let all: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(all.len(), 6, "{}", run.stdout);
    let (lines, citations): (Vec<&str>, Vec<&str>) =
        all.chunks(2).map(|pair| (pair[0], pair[1])).unzip();
    // Nothing to say on stderr (the index's own chunking settings are not
    // the defaults, which matters only when indexing), and a search writes
    // nothing into the index.
    assert_eq!(run.stderr, "");
    assert_eq!(
        std::fs::metadata(&meta).unwrap().modified().unwrap(),
        written
    );
    let mut scores = Vec::new();
    for line in &lines {
        let (score, text) =
            parse_hit_line(line).unwrap_or_else(|| panic!("not `+S.SS text`: {line:?}"));
        assert!(!text.contains('\n'));
        scores.push(score);
    }
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    // The lines are the JSON hits, in the same order and with the same
    // scores, each with the document and section it comes from under it.
    let hits = sift.hits(QUERY, &["--k", "3", "--depth", "10"]);
    for (citation_line, hit) in citations.iter().zip(&hits) {
        assert_eq!(*citation_line, format!("      {}", citation(hit)));
    }
    assert!(
        hits.iter().any(|h| h["chunk"]["section"].is_array()),
        "no hit has a section: {hits:?}"
    );
    for (line, hit) in lines.iter().zip(&hits) {
        let (score, snippet) = parse_hit_line(line).unwrap();
        let fused = hit["scores"]["fused"].as_f64().unwrap() as f32;
        assert!((score - fused).abs() <= 0.005, "{line} vs {fused}");
        let flat: String = text(hit).split_whitespace().collect::<Vec<_>>().join(" ");
        let shown = snippet.trim_end_matches(" …");
        assert!(
            flat.starts_with(shown),
            "{shown:?} is not the start of {flat:?}"
        );
    }
}

/// With a reranker the score shown is its raw score (the logit, as the
/// seed shows it), not the blend; when a blend with stage 1 orders the
/// hits, that is said once, under them.
#[test]
fn plain_output_shows_the_rerankers_raw_score_and_says_when_a_blend_orders() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let reranker = committed_reranker();
    let reranker = reranker.to_str().unwrap();
    let args = ["--k", "3", "--depth", "10", "--reranker-path", reranker];
    let mut search = vec!["search", QUERY];
    search.extend_from_slice(&args);
    let run = sift.ok(&search);
    let response = sift.search_json(QUERY, &args);
    let hits = response["hits"].as_array().unwrap();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2 * hits.len() + 1, "{}", run.stdout);
    for (pair, hit) in lines.chunks(2).zip(hits) {
        let (score, _) = parse_hit_line(pair[0]).unwrap();
        let raw = hit["scores"]["rerank"].as_f64().unwrap() as f32;
        assert!(hit["scores"]["blended"].is_number(), "{hit}");
        assert!(
            (score - raw).abs() <= 0.005,
            "{} shows {score}, raw {raw}",
            pair[0]
        );
        assert_eq!(pair[1], format!("      {}", citation(hit)));
    }
    let note = lines.last().unwrap();
    assert!(
        note.starts_with("order: the reranker's scores blended with the stage-1 order"),
        "{note}"
    );
    // Trusted alone (stage-1 weight 0), the raw scores order the hits and
    // nothing needs saying.
    search.extend_from_slice(&["--stage1-weight", "0"]);
    let run = sift.ok(&search);
    assert!(!run.stdout.contains("order:"), "{}", run.stdout);
    let scores: Vec<f32> = run
        .stdout
        .lines()
        .filter_map(parse_hit_line)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(scores.len(), 3);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

/// Every hit's offsets cite its source file exactly, and its scores are
/// consistent with reciprocal rank fusion.
fn check_hit(sift: &Sift, hit: &Value, rrf_k: f64) {
    let chunk = &hit["chunk"];
    let id = doc_id(hit);
    assert!(SMALL_CORPUS_DOCS.contains(&id), "{id}");
    let source = std::fs::read_to_string(sift.path("corpus").join(id)).unwrap();
    let body: Vec<char> = source.chars().collect();
    let (start, end) = (
        chunk["char_start"].as_u64().unwrap() as usize,
        chunk["char_end"].as_u64().unwrap() as usize,
    );
    assert!(start < end && end <= body.len(), "{id} {start}..{end}");
    let cited: String = body[start..end].iter().collect();
    assert_eq!(cited, text(hit), "{id} {start}..{end}");
    assert!(chunk["id"].is_u64(), "{chunk}");
    assert!(chunk["ordinal"].is_u64(), "{chunk}");

    let scores = &hit["scores"];
    let mut expected_rrf = 0.0;
    for retriever in ["bm25", "dense"] {
        let s = &scores[retriever];
        if s.is_null() {
            continue;
        }
        let rank = s["rank"].as_u64().unwrap();
        assert!(rank >= 1, "{scores}");
        assert!(s["score"].as_f64().unwrap().is_finite(), "{scores}");
        expected_rrf += 1.0 / (rrf_k + rank as f64);
    }
    assert!(expected_rrf > 0.0, "found by neither retriever: {scores}");
    let fused = scores["fused"].as_f64().expect("a fused score");
    assert!((fused - expected_rrf).abs() < 1e-6, "{scores}");
    assert!(scores["rerank"].is_null(), "{scores}");
}

#[test]
fn json_hits_cite_their_source_and_carry_every_score() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let response = sift.search_json(QUERY, &["--k", "8", "--depth", "20", "--no-rerank"]);
    let hits = response["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 8);
    for hit in hits {
        check_hit(&sift, hit, 60.0);
    }
    assert!(hits
        .windows(2)
        .all(|w| w[0]["scores"]["fused"].as_f64() >= w[1]["scores"]["fused"].as_f64()));
    // Later chunks of a document have non-zero offsets, and non-ASCII text
    // (é, ï, —, 🚲) is counted in characters.
    let hits = sift.hits(
        "café menus naïve drafts bike-ride logs",
        &["--k", "1", "--depth", "5"],
    );
    assert_eq!(doc_id(&hits[0]), "accounts/close-your-account.md");
    assert!(hits[0]["chunk"]["char_start"].as_u64().unwrap() > 0);
    assert!(text(&hits[0]).contains("naïve"), "{}", text(&hits[0]));
    check_hit(&sift, &hits[0], 60.0);
    // rrf_k is settable.
    let hits = sift.hits(QUERY, &["--k", "4", "--depth", "20", "--rrf-k", "10"]);
    for hit in &hits {
        check_hit(&sift, hit, 10.0);
    }
    // Every stage has a timing; the reranker's absence is stated.
    assert!(response["reranked_by"].is_null());
    for stage in [
        "tokenize", "bm25", "embed", "hnsw", "fuse", "fetch", "rerank", "total",
    ] {
        assert!(response["timings"][stage].is_f64(), "{stage}: {response}");
    }
}

#[test]
fn retriever_depth_bounds_each_retrievers_list() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let hits = sift.hits(
        QUERY,
        &["--k", "5", "--depth", "20", "--retriever-depth", "2"],
    );
    assert!(!hits.is_empty() && hits.len() <= 4, "{hits:?}");
    for hit in &hits {
        for retriever in ["bm25", "dense"] {
            let s = &hit["scores"][retriever];
            assert!(s.is_null() || s["rank"].as_u64().unwrap() <= 2, "{hit}");
        }
    }
}

#[test]
fn explain_shows_provenance_of_every_hit() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let run = sift.ok(&[
        "search",
        QUERY,
        "--k",
        "3",
        "--depth",
        "10",
        "--no-rerank",
        "--explain",
    ]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 9, "{}", run.stdout);
    let hits = sift.hits(QUERY, &["--k", "3", "--depth", "10"]);
    for (lines, hit) in lines.chunks(3).zip(&hits) {
        assert!(parse_hit_line(lines[0]).is_some(), "{}", lines[0]);
        assert!(lines[1].contains(doc_id(hit)), "{}", lines[1]);
        let explain = lines[2];
        let stage1 = hit["scores"]["stage1_rank"].as_u64().unwrap();
        assert!(
            explain.contains(&format!("stage 1 #{stage1} ")),
            "{explain}"
        );
        let start = hit["chunk"]["char_start"].as_u64().unwrap();
        let end = hit["chunk"]["char_end"].as_u64().unwrap();
        assert!(explain.contains(&format!("{start}..{end}")), "{explain}");
        for (retriever, tag) in [("bm25", "bm25 "), ("dense", "dense ")] {
            let s = &hit["scores"][retriever];
            let shown = if s.is_null() {
                format!("{tag}-")
            } else {
                format!("{tag}#{} {:.3}", s["rank"], s["score"].as_f64().unwrap())
            };
            assert!(explain.contains(&shown), "{shown:?} not in {explain}");
        }
        let fused = hit["scores"]["fused"].as_f64().unwrap();
        assert!(explain.contains(&format!("rrf {fused:.4}")), "{explain}");
    }
}

#[test]
fn timings_print_every_stage() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let run = sift.ok(&["search", QUERY, "--k", "2", "--depth", "5", "--timings"]);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("timings (ms):"))
        .unwrap_or_else(|| panic!("no timings line:\n{}", run.stdout));
    for stage in [
        "tokenize", "bm25", "embed", "hnsw", "fuse", "fetch", "rerank", "total",
    ] {
        let value = line
            .split([',', '|', ':'])
            .map(str::trim)
            .find_map(|part| part.strip_prefix(stage)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no number for {stage} in {line}"));
        assert!(value >= 0.0);
    }
    assert!(run.stdout.contains("not reranked"), "{}", run.stdout);
}

#[test]
fn without_a_reranker_search_answers_and_says_it_did_not_rerank() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    // Rerank is asked for (the default), but the cross-encoder is not in the
    // (empty) cache and the hub is offline.
    let run = sift.ok(&["search", QUERY, "--k", "2", "--depth", "10"]);
    let hits: Vec<&str> = run.stdout.lines().step_by(2).collect();
    assert_eq!(hits.len(), 2, "{}", run.stdout);
    assert!(hits.iter().all(|l| parse_hit_line(l).is_some()));
    let note = run
        .stderr
        .lines()
        .find(|l| l.contains("not reranked"))
        .unwrap_or_else(|| panic!("stderr does not say it did not rerank:\n{}", run.stderr));
    // It says how to provide one.
    assert!(note.contains("--reranker-path"), "{note}");
    // The order is the stage-1 order.
    let stage1 = sift.hits(QUERY, &["--k", "2", "--depth", "10"]);
    let json = sift.search_json(QUERY, &["--k", "2", "--depth", "10"]);
    assert_eq!(json["hits"].as_array().unwrap(), &stage1);
    assert!(json["reranked_by"].is_null());
    assert!(json["notice"].as_str().unwrap().contains("not reranked"));
    // With --json the note is on stderr too; stdout is only the JSON.
    let run = sift.ok(&["search", QUERY, "--k", "2", "--depth", "10", "--json"]);
    assert!(run.stderr.contains("not reranked"), "{}", run.stderr);
    serde_json::from_str::<Value>(&run.stdout).unwrap();
    // An explicit --no-rerank is not a reason for a notice.
    let run = sift.ok(&["search", QUERY, "--k", "2", "--depth", "10", "--no-rerank"]);
    assert!(!run.stderr.contains("not reranked"), "{}", run.stderr);

    // A reranker folder that is not there is the same: answered, and said.
    let run = sift.ok(&[
        "search",
        QUERY,
        "--k",
        "2",
        "--depth",
        "10",
        "--reranker-path",
        "no/such/folder",
    ]);
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    assert!(run.stderr.contains("not reranked"), "{}", run.stderr);
}

#[test]
fn check_hnsw_reports_recall_of_at_least_095() {
    let sift = Sift::new();
    let mut corpus = String::new();
    for i in 0..150 {
        let text = format!(
            "{} number {i} of the {} collection, filed under {}",
            crate::util::words(i, 6 + i % 7),
            crate::util::WORDS[(i * 7) % 30],
            crate::util::words(i * 3, 3),
        );
        corpus += &(serde_json::json!({"_id": format!("d{i}"), "text": text}).to_string() + "\n");
    }
    sift.write("corpus.jsonl", corpus);
    sift.ok(&["index", "corpus.jsonl"]);
    let run = sift.ok(&["check-hnsw", "--sample", "100", "--k", "10"]);
    let recall: f64 = run
        .stdout
        .split("vs exact search:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recall figure in {}", run.stdout));
    assert!(
        (0.95..=1.0).contains(&recall),
        "recall {recall}: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("(100 sampled chunk vectors; 150 chunks;"),
        "{}",
        run.stdout
    );
    // Asking for more samples than there are vectors uses them all, and
    // says how many.
    let run = sift.ok(&["check-hnsw"]);
    assert!(
        run.stdout
            .contains("(150 sampled chunk vectors; 150 chunks;"),
        "{}",
        run.stdout
    );

    // With queries from a file too.
    sift.write(
        "queries.jsonl",
        "{\"_id\": \"q1\", \"text\": \"a green garden\"}\n{\"_id\": \"q2\", \"text\": \"silver river\"}\n",
    );
    let run = sift.ok(&["check-hnsw", "--queries", "queries.jsonl"]);
    assert!(run.stdout.contains("2 queries"), "{}", run.stdout);
}

/// The one test on the demo corpus: the seed's question finds the page
/// that answers it.
#[test]
fn demo_helpcentre_answers_the_seed_query() {
    let sift = Sift::new();
    let corpus = helpcentre_dir();
    let run = sift.ok(&["index", corpus.to_str().unwrap()]);
    assert!(run.stdout.contains("0 empty"), "{}", run.stdout);
    let (documents, _) = crate::util::counts(&sift.stats(&[]));
    assert!(documents >= 40, "{documents} documents");
    let hits = sift.hits(
        "what happens to my data if I close my account",
        &["--k", "5", "--depth", "50"],
    );
    assert_eq!(hits.len(), 5);
    let ids = doc_ids(&hits);
    assert!(
        ids.iter()
            .any(|id| id == "data-retention/what-happens-to-your-data-after-account-closure.md"),
        "{ids:?}"
    );
}

/// `--precision fast` (bf16 products on AMX / AVX-512 BF16, f32 elsewhere)
/// reranks the same candidates to nearly the same logits as exact f32, and
/// so to the same best hit; the config key does the same as the flag.
#[test]
fn fast_precision_reranks_like_f32() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let reranker = committed_reranker();
    let reranker = reranker.to_str().unwrap();
    let search = |extra: &[&str]| {
        let mut args = vec!["--k", "5", "--depth", "10", "--reranker-path", reranker];
        args.extend_from_slice(extra);
        sift.search_json(QUERY, &args)
    };
    let logits = |response: &Value| -> Vec<(String, f64)> {
        response["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["chunk"]["id"].to_string(),
                    h["scores"]["rerank"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let exact = search(&["--precision", "f32"]);
    let fast = search(&["--precision", "fast"]);
    let config = sift.write("fast.toml", "[models]\nprecision = \"fast\"\n");
    let from_config = search(&["--config", config.to_str().unwrap()]);
    let (exact, fast, from_config) = (logits(&exact), logits(&fast), logits(&from_config));
    assert_eq!(exact.len(), 5);
    assert_eq!(fast, from_config, "flag and config key differ");
    assert_eq!(
        exact[0].0, fast[0].0,
        "best hit differs: {exact:?} vs {fast:?}"
    );
    for (id, logit) in &fast {
        // A hit of one list may be just below the other's top 5.
        if let Some((_, want)) = exact.iter().find(|(e, _)| e == id) {
            assert!(
                (logit - want).abs() < 0.15,
                "{id}: fast {logit} vs f32 {want}"
            );
        }
    }
    // A usage error (clap's exit code 2) that names the bad value.
    let bad = sift.run(&["search", QUERY, "--precision", "int4"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("unknown precision \"int4\""),
        "{}",
        bad.stderr
    );
}
