//! `EvalRun` end to end on a tiny BEIR dataset written here, with the real
//! MiniLM bi-encoder (`just fetch-models`). The reranker, where one is
//! needed, is a throwaway checkpoint (MiniLM body + a fixed head, as in
//! `crates/bert/tests/parity.rs`): it exercises the rerank code path, and
//! its figures mean nothing.

use candle_core::{safetensors, Device, Tensor};
use sift_core::{Config, ModelSource};
use sift_eval::{EvalOptions, EvalRun, Report, STAGE_RERANK};
use sift_metrics::{evaluate, read_qrels, read_run, Metric, MissingQueries};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("SIFT_BI_ENCODER_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model in {}: run `just fetch-models`",
        dir.display()
    );
    dir
}

/// Documents: (id, title, text). `long` has several ~200-token chunks, so
/// document-level collapsing is exercised.
fn documents() -> Vec<(String, String, String)> {
    let mut docs: Vec<(String, String, String)> = [
        ("close", "Close your account", "To close your account open Settings, choose Account and press Close account. Closing is permanent after thirty days."),
        ("retention", "What happens to your data after closing", "When an account is closed your notes and files are kept for thirty days, then deleted for good from every server and backup."),
        ("export", "Export your notes", "You can export every note as Markdown or PDF from the File menu. Exports include attachments in a zip archive."),
        ("sync", "Sync is stuck", "If sync is stuck, check your network, sign out and back in, and make sure the app is up to date on every device."),
        ("billing", "Change your plan", "Upgrade or downgrade your plan under Billing. The price difference is prorated to the day."),
        ("invoice", "Download an invoice", "Invoices are emailed each month and can be downloaded as PDF from the Billing page."),
        ("twofactor", "Turn on two-factor authentication", "Protect your account with a second factor: an authenticator app or a security key."),
        ("share", "Share a notebook", "Invite people to a notebook by email; they can view or edit depending on the role you give them."),
    ]
    .iter()
    .map(|(id, t, x)| (id.to_string(), t.to_string(), x.to_string()))
    .collect();
    let mut long = String::new();
    for i in 0..12 {
        long.push_str(&format!(
            "Section {i}: the offline mode keeps a copy of every notebook on the device, and changes made offline are merged when the connection returns. Conflicts are shown side by side so nothing is lost. "
        ));
    }
    docs.push(("offline".into(), "Work offline".into(), long));
    docs
}

/// Judged documents of a query: (document, grade).
type Judgements = &'static [(&'static str, i32)];

const QUERIES: &[(&str, &str, Judgements)] = &[
    (
        "q1",
        "what happens to my data if I close my account",
        &[("retention", 2), ("close", 1)],
    ),
    ("q2", "how do I get a pdf invoice", &[("invoice", 2)]),
    ("q3", "can I edit notes without internet", &[("offline", 2)]),
    ("q4", "my notes do not sync between devices", &[("sync", 2)]),
    ("q5", "security key login", &[("twofactor", 2)]),
    (
        "q6",
        "give a colleague access to my notebook",
        &[("share", 2)],
    ),
];

/// Write `queries.jsonl` and `qrels/test.tsv` (and `corpus.jsonl` when
/// asked) into `dir`; a folder corpus of `.md` files goes to `dir/docs`.
fn write_dataset(dir: &Path, jsonl_corpus: bool) {
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    if jsonl_corpus {
        let corpus: String = documents()
            .iter()
            .map(|(id, title, text)| {
                serde_json::json!({"_id": id, "title": title, "text": text}).to_string() + "\n"
            })
            .collect();
        std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    } else {
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        for (id, title, text) in documents() {
            std::fs::write(
                dir.join("docs").join(format!("{id}.md")),
                format!("# {title}\n\n{text}\n"),
            )
            .unwrap();
        }
    }
    let queries: String = QUERIES
        .iter()
        .map(|(id, text, _)| serde_json::json!({"_id": id, "text": text}).to_string() + "\n")
        .collect();
    std::fs::write(dir.join("queries.jsonl"), queries).unwrap();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for (qid, _, judged) in QUERIES {
        for (doc, grade) in *judged {
            let doc = if jsonl_corpus {
                doc.to_string()
            } else {
                format!("{doc}.md")
            };
            qrels.push_str(&format!("{qid}\t{doc}\t{grade}\n"));
        }
    }
    std::fs::write(dir.join("qrels/test.tsv"), qrels).unwrap();
}

fn config(reranker: Option<&Path>) -> Config {
    let mut config = Config::default();
    config.models.bi_encoder = ModelSource::local(minilm_dir());
    // A folder that does not exist: no reranker, and no hub is asked.
    config.models.cross_encoder = ModelSource::local(reranker.map_or_else(
        || PathBuf::from("/nonexistent/cross-encoder"),
        Path::to_owned,
    ));
    // Small chunks, so the long document has many and the others one.
    config.chunking.max_tokens = 48;
    config.chunking.overlap_tokens = 8;
    config
}

/// A cross-encoder checkpoint: the MiniLM body under `bert.` and a fixed
/// head `w[i] = 0.1 sin(i + 1)`, `b = 0.25`. Deterministic, untrained.
fn throwaway_cross_encoder(dir: &Path) {
    let src = minilm_dir();
    let body = safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> = body
        .into_iter()
        .filter(|(name, _)| !name.ends_with("position_ids"))
        .map(|(name, t)| (format!("bert.{name}"), t))
        .collect();
    let weight: Vec<f32> = (0..384)
        .map(|i| (0.1 * ((i + 1) as f64).sin()) as f32)
        .collect();
    tensors.insert(
        "classifier.weight".into(),
        Tensor::from_vec(weight, (1, 384), &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "classifier.bias".into(),
        Tensor::new(&[0.25f32], &Device::Cpu).unwrap(),
    );
    safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
}

/// Every stage's run file, read back and scored, gives the report's numbers.
fn check_run_files(report: &Report, out: &Path, qrels_path: &Path) {
    // The queries evaluated: all, or the first N with --max-queries.
    let evaluated: HashSet<&str> = QUERIES[..report.queries].iter().map(|q| q.0).collect();
    let mut qrels = read_qrels(qrels_path).unwrap();
    qrels.retain(|q, _| evaluated.contains(q.as_str()));
    let metrics: Vec<Metric> = report.metrics.iter().map(|m| m.parse().unwrap()).collect();
    for stage in &report.stages {
        let path = out.join(&stage.run_file);
        let run = read_run(&path).unwrap();
        for (qid, docs) in &run {
            assert!(
                docs.len() <= report.depth,
                "{}: {qid} has {} documents",
                stage.name,
                docs.len()
            );
            let distinct: HashSet<&str> = docs.iter().map(|(d, _)| d.as_str()).collect();
            assert_eq!(
                distinct.len(),
                docs.len(),
                "{}: {qid} lists a document twice",
                stage.name
            );
        }
        let eval = evaluate(&qrels, &run, &metrics, MissingQueries::Zero);
        assert_eq!(eval.num_queries, report.queries);
        for (name, value) in &stage.metrics {
            assert!(
                (eval.mean[name] - value).abs() < 1e-12,
                "{} {name}: file scores {} but the report says {value}",
                stage.name,
                eval.mean[name]
            );
        }
    }
}

fn options(dataset: &Path, index: &Path, out: &Path, reranker: Option<&Path>) -> EvalOptions {
    let mut o = EvalOptions::new(dataset, index, out);
    o.config = config(reranker);
    o.depth = 4;
    o.k = 2;
    o
}

#[test]
fn evaluates_every_stage_and_sweeps_without_a_reranker() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("tiny");
    write_dataset(&dataset, true);
    let (index, out) = (tmp.path().join("index"), tmp.path().join("out"));
    // A stale rerank run from an earlier invocation must not survive.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("rerank.trec"), "q1 Q0 close 1 1 old\n").unwrap();

    let mut o = options(&dataset, &index, &out, None);
    o.sweep_depth = vec![2, 3, 4, 6];
    o.sweep_rrf_k = vec![1.0, 60.0];
    o.sweep_retriever_depth = vec![1, 4, 8];
    let run = EvalRun::open(o.clone()).unwrap();
    assert_eq!(run.queries().len(), QUERIES.len());
    let report = run.run().unwrap();

    assert_eq!(report.dataset, "tiny");
    assert_eq!(report.queries, QUERIES.len());
    assert!(!report.index.reused);
    assert_eq!(report.index.documents, documents().len() as u64);
    assert!(
        report.index.chunks > report.index.documents,
        "the long document has several chunks"
    );
    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bm25", "dense", "hybrid"]);
    assert!(report.reranker.is_none());
    let why = report.no_reranker.as_deref().unwrap();
    assert!(why.contains("no reranker available"), "{why}");
    assert!(report.diagnosis.rerank.is_none());
    assert!(!out.join("rerank.trec").exists());
    for m in [
        "ndcg@10",
        "mrr@10",
        "recall@1",
        "recall@2",
        "recall@4",
        "recall@5",
        "recall@10",
        "p@2",
        "map",
    ] {
        assert!(
            report.metrics.iter().any(|n| n == m),
            "{m} missing from {:?}",
            report.metrics
        );
        for stage in &report.stages {
            let v = stage.metrics[m];
            assert!((0.0..=1.0).contains(&v), "{} {m} = {v}", stage.name);
        }
    }
    for stage in &report.stages {
        assert_eq!(stage.latency.n, QUERIES.len());
        assert!(stage.latency.mean_ms > 0.0 && stage.latency.p50_ms <= stage.latency.p95_ms);
    }
    // The queries were written to be answerable: hybrid finds most.
    let hybrid = report.stage("hybrid").unwrap();
    assert!(hybrid.metrics["recall@4"] >= 0.8, "{:?}", hybrid.metrics);
    // The diagnosis is consistent with the hybrid figures.
    let d = &report.diagnosis;
    assert_eq!((d.depth, d.k, d.queries), (4, 2, QUERIES.len()));
    assert!((d.hybrid_recall_at_depth - hybrid.metrics["recall@4"]).abs() < 1e-12);
    assert!((d.hybrid_recall_at_k - hybrid.metrics["recall@2"]).abs() < 1e-12);
    assert_eq!(d.gap_queries, d.queries_hit_at_depth - d.queries_hit_at_k);

    check_run_files(&report, &out, &dataset.join("qrels/test.tsv"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["stages"][2]["name"], "hybrid");
    assert_eq!(json["diagnosis"]["gap_queries"], d.gap_queries);
    let table = report.to_table();
    assert!(table.contains("No reranker was available"), "{table}");
    assert!(
        table.contains("a document takes the rank of its best chunk"),
        "{table}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| hybrid (RRF k=60) |"), "{md}");

    // Sweeps: hybrid only, the flattening depth is one of the depths.
    let sweep = report.sweeps.depth.as_ref().unwrap();
    assert!(!sweep.reranked);
    let depths: Vec<usize> = sweep.points.iter().map(|p| p.depth).collect();
    assert_eq!(depths, [2, 3, 4, 6]);
    assert!(sweep
        .points
        .iter()
        .all(|p| p.rerank_recall_at_k.is_none() && p.rerank_latency.is_none()));
    assert!(depths.contains(&sweep.flattening.depth.unwrap()));
    // Depth 4 of the sweep is the main hybrid list.
    let at4 = &sweep.points[2];
    assert!((at4.hybrid_recall_at_depth - hybrid.metrics["recall@4"]).abs() < 1e-12);
    assert!((at4.hybrid_ndcg_at_10 - hybrid.metrics["ndcg@10"]).abs() < 1e-12);
    assert!((at4.hybrid_mrr_at_10 - hybrid.metrics["mrr@10"]).abs() < 1e-12);
    // Recall at depth never falls as depth grows.
    assert!(sweep
        .points
        .windows(2)
        .all(|w| w[0].hybrid_recall_at_depth <= w[1].hybrid_recall_at_depth + 1e-12));
    assert_eq!(report.sweeps.rrf_k.len(), 2);
    let rrf60 = &report.sweeps.rrf_k[1];
    assert!((rrf60.ndcg_at_10 - hybrid.metrics["ndcg@10"]).abs() < 1e-12);
    let retr: Vec<usize> = report
        .sweeps
        .retriever_depth
        .iter()
        .map(|p| p.retriever_depth)
        .collect();
    assert_eq!(retr, [1, 4, 8]);
    assert!(
        (report.sweeps.retriever_depth[1].recall_at_depth - hybrid.metrics["recall@4"]).abs()
            < 1e-12
    );

    let png = std::fs::read(out.join("sweep.png")).unwrap();
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "{} bytes",
        png.len()
    );
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("hybrid recall@2"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    for f in [
        "sweep.json",
        "sweep.md",
        "bm25.trec",
        "dense.trec",
        "hybrid.trec",
    ] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 0, "{f}");
    }
    let sweep_md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(sweep_md.contains("Flattening depth"), "{sweep_md}");

    // Opened again, the index is reused as it is, and the figures repeat.
    let again = EvalRun::open(EvalOptions {
        sweep_depth: vec![],
        sweep_rrf_k: vec![],
        sweep_retriever_depth: vec![],
        max_queries: Some(3),
        ..o
    })
    .unwrap();
    assert_eq!(again.queries().len(), 3);
    let report2 = again.run().unwrap();
    assert!(report2.index.reused);
    assert_eq!(report2.queries, 3);
    assert!(report2.notes.iter().any(|n| n.contains("--max-queries")));
    check_run_files(&report2, &out, &dataset.join("qrels/test.tsv"));
}

#[test]
fn reranks_a_folder_corpus_with_a_throwaway_cross_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tmp.path().join("folder-set");
    write_dataset(&dataset, false);
    let (index, out) = (tmp.path().join("index"), tmp.path().join("out"));
    // Without --corpus there is nothing to index.
    let err = EvalRun::open(options(&dataset, &index, &out, None))
        .err()
        .unwrap();
    assert!(err.to_string().contains("--corpus"), "{err}");

    let ce = tmp.path().join("ce");
    std::fs::create_dir_all(&ce).unwrap();
    throwaway_cross_encoder(&ce);
    let mut o = options(&dataset, &index, &out, Some(&ce));
    o.corpus = Some(dataset.join("docs"));
    o.sweep_depth = vec![2, 4];
    let report = EvalRun::open(o).unwrap().run().unwrap();

    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bm25", "dense", "hybrid", "rerank"]);
    assert!(report
        .reranker
        .as_deref()
        .unwrap()
        .contains("cross-encoder"));
    assert!(report.no_reranker.is_none());
    let hybrid = report.stage("hybrid").unwrap();
    let rerank = report.stage(STAGE_RERANK).unwrap();
    // Reranking reorders the top depth; it cannot change what is in it.
    assert!((rerank.metrics["recall@4"] - hybrid.metrics["recall@4"]).abs() < 1e-12);
    assert!(rerank.latency.mean_ms > 0.0);
    let effect = report.diagnosis.rerank.as_ref().unwrap();
    assert!((effect.recall_at_k - rerank.metrics["recall@2"]).abs() < 1e-12);
    assert!(effect.queries_recovered <= report.diagnosis.gap_queries);
    check_run_files(&report, &out, &dataset.join("qrels/test.tsv"));
    // Folder document ids are paths under the folder.
    let run = read_run(out.join("rerank.trec")).unwrap();
    assert!(run.values().flatten().all(|(d, _)| d.ends_with(".md")));

    let sweep = report.sweeps.depth.as_ref().unwrap();
    assert!(sweep.reranked);
    for p in &sweep.points {
        let chunks = p.rerank_chunks_mean.unwrap();
        assert!(
            chunks >= p.depth as f64 - 1e-9,
            "depth {} read {chunks} chunks",
            p.depth
        );
        assert!(p.rerank_latency.unwrap().n == QUERIES.len());
        assert!((p.rerank_recall_at_k.unwrap() - 0.5).abs() <= 0.5);
    }
    // Depth 4 of the sweep reranks the same candidates as the main figures.
    let at4 = &sweep.points[1];
    assert!((at4.rerank_recall_at_k.unwrap() - rerank.metrics["recall@2"]).abs() < 1e-12);
    assert!((at4.rerank_mrr_at_10.unwrap() - rerank.metrics["mrr@10"]).abs() < 1e-12);
    assert!(sweep.flattening.metric.contains("reranked"));
    let png = std::fs::read(out.join("sweep.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
}
