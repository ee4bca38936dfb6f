//! `sift train-reranker`: a tiny training run on the demo corpus is
//! deterministic given its seed, writes a checkpoint `sift search` reranks
//! with, and refuses the test split.

use crate::util::{committed_reranker, helpcentre_dir, Sift};
use std::path::{Path, PathBuf};

/// The demo eval set's judgements offered as a `train` split. This tests
/// the mechanics of training, not the quality of the model.
fn demo_train_split(sift: &Sift) -> PathBuf {
    let eval = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/helpcentre-eval");
    sift.write(
        "demo/queries.jsonl",
        std::fs::read(eval.join("queries.jsonl")).unwrap(),
    );
    sift.write(
        "demo/qrels/train.tsv",
        std::fs::read(eval.join("qrels/test.tsv")).unwrap(),
    );
    sift.path("demo")
}

fn train(sift: &Sift, dataset: &Path, out: &str, seed: &str) {
    let dataset = dataset.display().to_string();
    let corpus = helpcentre_dir().display().to_string();
    let run = sift.ok(&[
        "train-reranker",
        "--dataset",
        &dataset,
        "--corpus",
        &corpus,
        "--out",
        out,
        "--seed",
        seed,
        "--max-queries",
        "16",
        "--validation-fraction",
        "0.25",
        "--negative-pool",
        "3",
        "--negatives",
        "2",
        "--queries-per-step",
        "4",
        "--epochs",
        "1",
        "--max-length",
        "64",
        "--weak-examples",
        "8",
        "-vv",
    ]);
    // Mining runs stage 1 only: the configured cross-encoder is not looked
    // for (its lookup is logged at debug level when it fails).
    assert!(!run.stderr.contains("ms-marco"), "{}", run.stderr);
}

#[test]
fn training_is_deterministic_and_its_checkpoint_reranks_search() {
    let sift = Sift::new();
    let dataset = demo_train_split(&sift);
    train(&sift, &dataset, "ce-a", "5");
    train(&sift, &dataset, "ce-b", "5");
    train(&sift, &dataset, "ce-c", "6");

    let weights = |dir: &str| std::fs::read(sift.path(dir).join("model.safetensors")).unwrap();
    assert!(
        weights("ce-a") == weights("ce-b"),
        "two runs with one seed wrote different weights"
    );
    assert!(
        weights("ce-a") != weights("ce-c"),
        "the seed changed nothing"
    );
    for file in [
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "training.json",
    ] {
        assert!(sift.path("ce-a").join(file).is_file(), "no {file}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sift.path("ce-a/training.json")).unwrap()).unwrap();
    assert_eq!(report["train_queries"], 12);
    assert_eq!(report["validation_queries"], 4);
    assert!(report["steps"].as_u64().unwrap() >= 3);
    assert!(!report["validation"].as_array().unwrap().is_empty());
    // The stage-1 weight is chosen on validation among 0, 0.1, ..., 1 and
    // handed to the engine through config.json.
    let blend = report["validation_blend"].as_array().unwrap();
    assert_eq!(blend.len(), 11);
    let chosen = report["stage1_weight"].as_f64().unwrap();
    let best = blend
        .iter()
        .map(|p| p["ndcg_at_10"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let at_chosen = blend
        .iter()
        .find(|p| (p["stage1_weight"].as_f64().unwrap() - chosen).abs() < 1e-6)
        .expect("the chosen weight is one of those tried");
    assert_eq!(at_chosen["ndcg_at_10"].as_f64().unwrap(), best);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sift.path("ce-a/config.json")).unwrap()).unwrap();
    assert_eq!(config["sift_trained"]["max_length"], 64);
    assert!((config["sift_trained"]["stage1_weight"].as_f64().unwrap() - chosen).abs() < 1e-6);

    let checkpoint = sift.path("ce-a").display().to_string();
    let response = sift.search_json(
        "how do I close my account",
        &["--reranker-path", &checkpoint, "--depth", "6", "--k", "3"],
    );
    let by = response["reranked_by"].as_str().unwrap_or_default();
    assert!(by.contains("ce-a"), "reranked by {by:?}");
    let hits = response["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    // Ordered by the final score: the logit, or its blend with stage 1 at
    // the weight the run chose on validation.
    let weight = config["sift_trained"]["stage1_weight"].as_f64().unwrap();
    let order_by = if weight > 0.0 { "blended" } else { "rerank" };
    assert!(hits.iter().all(|h| h["scores"]["rerank"].is_f64()));
    let scores: Vec<f64> = hits
        .iter()
        .map(|h| h["scores"][order_by].as_f64().expect("the ordering score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[test]
fn training_refuses_the_test_split() {
    let sift = Sift::new();
    let eval = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/helpcentre-eval");
    let stderr = sift.fails(&[
        "train-reranker",
        "--dataset",
        &eval.display().to_string(),
        "--split",
        "test",
        "--out",
        "ce",
    ]);
    assert!(stderr.contains("test split"), "{stderr}");
    assert!(!sift.path("ce").exists());
}

/// Offline, the hub cross-encoder cannot be had: by default search answers
/// from stage 1 and the notice says in one line how to rerank (the
/// committed stand-in lowers quality out of its domain, so it is never the
/// default). `--reranker-fallback` or `true` in the config reranks with it
/// (found relative to the working folder) and says which one ran;
/// `--no-reranker-fallback` wins over the config; a folder the user named
/// is never replaced by it.
#[test]
fn offline_search_reranks_with_the_committed_reranker_only_when_asked() {
    let sift = Sift::new();
    for file in [
        "accounts/close-your-account.md",
        "data-retention/what-happens-to-your-data-after-account-closure.md",
        "billing/plans-and-pricing.md",
    ] {
        sift.write(
            &format!("docs/{file}"),
            std::fs::read(helpcentre_dir().join(file)).unwrap(),
        );
    }
    sift.ok(&["index", "docs"]);
    std::fs::create_dir_all(sift.path("data/rerankers")).unwrap();
    std::os::unix::fs::symlink(
        committed_reranker(),
        sift.path("data/rerankers/sift-minilm-l6-scifact"),
    )
    .unwrap();
    // The stand-in is there, but not used unless asked for.
    let response = sift.search_json("close my account", &[]);
    assert!(response["reranked_by"].is_null(), "{response}");
    assert!(
        response["hits"][0]["scores"]["rerank"].is_null(),
        "{response}"
    );
    let notice = response["notice"].as_str().unwrap_or_default();
    assert!(!notice.contains('\n'), "{notice}");
    for how in ["--reranker-path", "train-reranker", "--reranker-fallback"] {
        assert!(
            notice.contains(how),
            "the notice does not say {how}: {notice}"
        );
    }

    let asked = sift.write("on.toml", "[models]\ncross_encoder_fallback = true\n");
    for flags in [
        vec!["--reranker-fallback"],
        vec!["--config", asked.to_str().unwrap()],
    ] {
        let response = sift.search_json("what happens to my data if I close my account", &flags);
        let by = response["reranked_by"].as_str().unwrap_or_default();
        assert!(
            by.contains("sift-minilm-l6-scifact"),
            "{flags:?}: reranked by {by:?}"
        );
        assert!(
            by.contains("the fallback for hf://cross-encoder/ms-marco-MiniLM-L-6-v2"),
            "{by}"
        );
        assert!(response["hits"][0]["scores"]["rerank"].is_number());
    }
    let response = sift.search_json(
        "close my account",
        &[
            "--config",
            asked.to_str().unwrap(),
            "--no-reranker-fallback",
        ],
    );
    assert!(response["reranked_by"].is_null(), "{response}");

    // Asked for but not in this working folder: the notice names where it looked.
    std::fs::remove_file(sift.path("data/rerankers/sift-minilm-l6-scifact")).unwrap();
    let response = sift.search_json("close my account", &["--reranker-fallback"]);
    assert!(response["reranked_by"].is_null(), "{response}");
    let notice = response["notice"].as_str().unwrap_or_default();
    assert!(notice.contains("sift-minilm-l6-scifact"), "{notice}");

    let missing = sift.path("no-such-model").display().to_string();
    let response = sift.search_json(
        "close my account",
        &["--reranker-path", &missing, "--reranker-fallback"],
    );
    assert!(response["reranked_by"].is_null(), "{response}");
}
