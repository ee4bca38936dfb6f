//! Bad input gets a clear error and loses nothing: bad queries, bad
//! settings, missing or corrupt indexes, config files.

use crate::index::index_small_corpus;
use crate::util::{doc_ids, Sift};
use serde_json::Value;

#[test]
fn empty_whitespace_and_huge_queries_are_refused() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    for query in ["", "   ", "\t\n "] {
        let stderr = sift.fails(&["search", query]);
        assert!(stderr.contains("query is empty"), "{query:?}: {stderr}");
        let stderr = sift.fails(&["search", query, "--json", "--no-rerank"]);
        assert!(stderr.contains("query is empty"), "{query:?}: {stderr}");
    }
    let huge = "lighthouse ".repeat(1000);
    assert_eq!(huge.chars().count(), 11_000);
    let stderr = sift.fails(&["search", &huge, "--no-rerank"]);
    assert!(
        stderr.contains("11000 characters") && stderr.contains("limit"),
        "{stderr}"
    );
    let stderr = sift.fails(&["search", &"é".repeat(10_000)]);
    assert!(stderr.contains("10000 characters"), "{stderr}");
    // A query of stop words and punctuation only is not an error: dense
    // retrieval still answers it.
    let hits = sift.hits("?!. the of", &["--k", "2", "--depth", "5"]);
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h["scores"]["bm25"].is_null()));
}

#[test]
fn bad_depth_and_k_are_refused() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let q = "close my account";
    let stderr = sift.fails(&["search", q, "--k", "10", "--depth", "5"]);
    assert!(
        stderr.contains("k must be") && stderr.contains("10"),
        "{stderr}"
    );
    let stderr = sift.fails(&["search", q, "--depth", "0", "--k", "1"]);
    assert!(stderr.contains("depth must be"), "{stderr}");
    let stderr = sift.fails(&["search", q, "--k", "0"]);
    assert!(stderr.contains("k must be"), "{stderr}");
    let stderr = sift.fails(&["search", q, "--depth", "5000"]);
    assert!(stderr.contains("depth must be"), "{stderr}");
    let stderr = sift.fails(&["search", q, "--retriever-depth", "0"]);
    assert!(stderr.contains("retriever_depth"), "{stderr}");
    let stderr = sift.fails(&["search", q, "--rrf-k=-1"]);
    assert!(stderr.contains("rrf_k"), "{stderr}");
    // clap's own refusals exit with 2 and no panic.
    let run = sift.run(&["search", q, "--k", "-3"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    // Depth larger than the index is fine: all there is comes back.
    let hits = sift.hits(q, &["--k", "100", "--depth", "100"]);
    let (_, chunks) = crate::util::counts(&sift.stats(&[]));
    assert_eq!(hits.len() as u64, chunks);
}

#[test]
fn a_missing_index_is_named_with_how_to_build_one() {
    let sift = Sift::new();
    for args in [
        vec!["search", "close my account"],
        vec!["search", "close my account", "--no-rerank", "--json"],
        vec!["stats"],
        vec!["delete", "some/doc.md"],
        vec!["check-hnsw"],
    ] {
        let stderr = sift.fails(&args);
        assert!(
            stderr.contains("no index at") && stderr.contains("sift index"),
            "{args:?}: {stderr}"
        );
    }
    // An explicit --index is named in the message; nothing was created.
    let stderr = sift.fails(&["search", "x", "--index", "elsewhere"]);
    assert!(stderr.contains("elsewhere"), "{stderr}");
    assert!(!sift.path("elsewhere").exists());
    assert!(!sift.index_dir().exists());
    // Indexing a path that is not there, or not a corpus, is an error too.
    let stderr = sift.fails(&["index", "no-such-folder"]);
    assert!(stderr.contains("no-such-folder"), "{stderr}");
    sift.write("notes.csv", "a,b\n");
    let stderr = sift.fails(&["index", "notes.csv"]);
    assert!(stderr.contains("notes.csv"), "{stderr}");
    assert!(!sift.index_dir().exists());
}

#[test]
fn a_corrupt_lexical_index_is_a_message_not_a_panic() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let meta = sift.index_dir().join("lexical/meta.json");
    assert!(meta.is_file());
    std::fs::write(&meta, "{ this is not tantivy's meta").unwrap();
    for args in [
        vec!["search", "close my account", "--no-rerank"],
        vec!["stats"],
        vec!["index", "corpus"],
    ] {
        let stderr = sift.fails(&args);
        assert!(stderr.contains("corrupt"), "{args:?}: {stderr}");
        assert!(stderr.contains("meta.json"), "{args:?}: {stderr}");
    }
    // Same with the engine's own meta file.
    let sift = Sift::new();
    index_small_corpus(&sift);
    std::fs::write(sift.index_dir().join("sift-index.json"), "garbage").unwrap();
    let stderr = sift.fails(&["search", "close my account", "--no-rerank"]);
    assert!(stderr.contains("sift-index.json"), "{stderr}");
    // And with a segment file truncated.
    let sift = Sift::new();
    index_small_corpus(&sift);
    for entry in std::fs::read_dir(sift.index_dir().join("lexical")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "store" || e == "idx") {
            std::fs::write(&path, b"xx").unwrap();
        }
    }
    let run = sift.run(&["search", "close my account", "--no-rerank"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("error:"), "{run:?}");
}

/// Hits with their scores, without the timings.
fn answer(sift: &Sift, query: &str) -> Vec<Value> {
    sift.hits(query, &["--k", "6", "--depth", "20"])
}

#[test]
fn truncated_vector_files_are_rebuilt_from_the_stored_vectors() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let queries = [
        "what happens to my notes when I close my account",
        "lighthouse",
    ];
    let before: Vec<Vec<Value>> = queries.iter().map(|q| answer(&sift, q)).collect();
    let vectors = sift.index_dir().join("vectors");
    let stats = sift.stats(&[]);

    // Every file in vectors/ cut short.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&vectors).unwrap() {
        let path = entry.unwrap().path();
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 3)
            .unwrap();
        files.push(path);
    }
    assert!(files.len() >= 2, "{files:?}");
    let run = sift.ok(&[
        "search",
        queries[0],
        "--no-rerank",
        "--json",
        "--k",
        "6",
        "--depth",
        "20",
    ]);
    assert!(run.stderr.contains("rebuilding"), "{}", run.stderr);
    let hits: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(hits["hits"].as_array().unwrap(), &before[0]);
    assert_eq!(answer(&sift, queries[1]), before[1]);
    // The rebuilt graph was saved: the next open has nothing to repair.
    let run = sift.ok(&["stats"]);
    assert!(!run.stderr.contains("rebuilding"), "{}", run.stderr);
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap(), stats);

    // Only the data file cut short (hnsw_rs would exit the process on it).
    let data = std::fs::read_dir(&vectors)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".hnsw.data"))
        .expect("an hnsw data file");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    assert_eq!(answer(&sift, queries[0]), before[0]);

    // The vector folder gone entirely.
    std::fs::remove_dir_all(&vectors).unwrap();
    assert_eq!(answer(&sift, queries[1]), before[1]);
    assert!(vectors.is_dir());
    let ids = doc_ids(&before[1]);
    assert_eq!(ids[0], "deep/er/nested/lighthouse.txt");
}

#[test]
fn config_prints_toml_that_round_trips() {
    let sift = Sift::new();
    let printed = sift.ok(&["config"]).stdout;
    for key in [
        "[models]",
        "[chunking]",
        "[index]",
        "commit_every_chunks = 4096",
        "[hnsw]",
        "[rerank]",
        "[search]",
        "depth = 50",
        "k = 5",
    ] {
        assert!(printed.contains(key), "{key} missing:\n{printed}");
    }
    sift.write("sift.toml", &printed);
    let again = sift.ok(&["config", "--config", "sift.toml"]).stdout;
    assert_eq!(again, printed);

    // A file changes what it names, flags win over the file, and the
    // index's own sift.toml is read by default.
    sift.write(
        "idx/sift.toml",
        "[search]\ndepth = 33\n\n[hnsw]\nef_search = 77\n",
    );
    let printed = sift.ok(&["config"]).stdout;
    assert!(printed.contains("depth = 33"), "{printed}");
    assert!(printed.contains("ef_search = 77"), "{printed}");
    assert!(printed.contains("k = 5"), "{printed}");
    let printed = sift
        .ok(&["config", "--hnsw-ef-search", "12", "--commit-every", "9"])
        .stdout;
    assert!(printed.contains("ef_search = 12"), "{printed}");
    assert!(printed.contains("commit_every_chunks = 9"), "{printed}");
    sift.write("sift2.toml", &printed);
    assert_eq!(
        sift.ok(&["config", "--config", "sift2.toml"]).stdout,
        printed
    );
}

#[test]
fn config_with_an_unknown_or_bad_key_fails_naming_it() {
    let sift = Sift::new();
    sift.write("bad.toml", "[search]\ndepht = 20\n");
    let stderr = sift.fails(&["config", "--config", "bad.toml"]);
    assert!(
        stderr.contains("depht") && stderr.contains("bad.toml"),
        "{stderr}"
    );
    sift.write("bad2.toml", "[serach]\ndepth = 20\n");
    let stderr = sift.fails(&["config", "--config", "bad2.toml"]);
    assert!(stderr.contains("serach"), "{stderr}");
    sift.write("bad3.toml", "[search]\nk = \"five\"\n");
    let stderr = sift.fails(&["config", "--config", "bad3.toml"]);
    assert!(stderr.contains("bad3.toml"), "{stderr}");
    let stderr = sift.fails(&["config", "--config", "missing.toml"]);
    assert!(stderr.contains("missing.toml"), "{stderr}");
    // Values out of range are refused, file or flag.
    sift.write(
        "bad4.toml",
        "[chunking]\nmax_tokens = 10\noverlap_tokens = 10\n",
    );
    let stderr = sift.fails(&["config", "--config", "bad4.toml"]);
    assert!(stderr.contains("overlap_tokens"), "{stderr}");
    let stderr = sift.fails(&["config", "--commit-every", "0"]);
    assert!(stderr.contains("commit_every_chunks"), "{stderr}");
    // A bad config file stops a search before anything else.
    let stderr = sift.fails(&["search", "x", "--config", "bad.toml"]);
    assert!(stderr.contains("depht"), "{stderr}");
}
