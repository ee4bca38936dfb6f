//! Crash safety: `kill -9` during `sift index` leaves the index at its last
//! commit, with BM25, stored chunks and vectors agreeing; indexing again
//! completes the job.

use crate::util::{counts, doc_ids, model_dir, Sift, WORDS};
use serde_json::Value;
use std::time::{Duration, Instant};

const DOCS: usize = 400;
/// 20 one-token words cut 8 at a time: chunks of 8, 8 and 4 tokens.
const CHUNKS_PER_DOC: u64 = 3;
const INDEX_ARGS: [&str; 8] = [
    "index",
    "corpus.jsonl",
    "--chunk-tokens",
    "8",
    "--chunk-overlap",
    "0",
    "--commit-every",
    "24",
];
/// Documents per commit: commits fall after the document that brings the
/// staged chunks to at least 24.
const DOCS_PER_COMMIT: u64 = 8;

/// Two distinct one-token words per document (from the model's vocabulary),
/// then a filler sentence of one-token words.
fn documents() -> Vec<(String, String)> {
    let vocab = std::fs::read_to_string(model_dir().join("vocab.txt")).unwrap();
    let mut distinct = vocab
        .lines()
        .filter(|w| (6..=10).contains(&w.len()) && w.chars().all(|c| c.is_ascii_lowercase()))
        .filter(|w| !WORDS.contains(w));
    let filler = crate::util::words(0, 18);
    (0..DOCS)
        .map(|i| {
            let (a, b) = (distinct.next().unwrap(), distinct.next().unwrap());
            (format!("doc{i}"), format!("{a} {b} {filler}"))
        })
        .collect()
}

/// The text of a document's first chunk: its first 8 words.
fn first_chunk(text: &str) -> String {
    text.split(' ').take(8).collect::<Vec<_>>().join(" ")
}

/// Chunks committed to the lexical index so far, read from tantivy's
/// meta.json without opening the index.
fn committed_chunks(sift: &Sift) -> u64 {
    let path = sift.index_dir().join("lexical/meta.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let Ok(meta) = serde_json::from_str::<Value>(&text) else {
        return 0;
    };
    meta["segments"]
        .as_array()
        .map(|segments| {
            segments
                .iter()
                .map(|s| s["max_doc"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// The hit for `doc`'s first chunk when searching its text, if any.
fn find_first_chunk(sift: &Sift, doc: &(String, String)) -> Option<Value> {
    let hits = sift.hits(&first_chunk(&doc.1), &["--k", "10", "--depth", "50"]);
    hits.into_iter()
        .find(|h| h["chunk"]["doc_id"] == doc.0.as_str() && h["chunk"]["ordinal"] == 0)
}

/// Found by BM25 and by the dense retriever, with the exact text.
fn assert_found_by_both(sift: &Sift, doc: &(String, String)) {
    let hit = find_first_chunk(sift, doc).unwrap_or_else(|| panic!("{} not found", doc.0));
    assert_eq!(hit["chunk"]["text"], first_chunk(&doc.1).as_str());
    assert!(
        !hit["scores"]["bm25"].is_null(),
        "{} not found by BM25: {hit}",
        doc.0
    );
    assert!(
        !hit["scores"]["dense"].is_null(),
        "{} not found densely: {hit}",
        doc.0
    );
    assert!(
        hit["scores"]["dense"]["score"].as_f64().unwrap() > 0.9,
        "{hit}"
    );
}

fn assert_consistent(sift: &Sift, documents: &[(String, String)]) -> u64 {
    let stats = sift.stats(&[]);
    let (docs, chunks) = counts(&stats);
    // Whole documents only, whole commits only.
    assert_eq!(chunks, docs * CHUNKS_PER_DOC, "{stats}");
    // Every live chunk is in the vector index (repaired from the stored
    // vectors on open), and nothing else is.
    assert_eq!(stats["vector_points"].as_u64().unwrap(), chunks, "{stats}");
    let recall = sift.ok(&["check-hnsw", "--sample", "200"]);
    let figure: f64 = recall
        .stdout
        .split("vs exact search:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", recall.stdout));
    assert!(figure >= 0.95, "{}", recall.stdout);
    if docs > 0 {
        let committed = docs as usize;
        for i in [0, committed / 2, committed - 1] {
            assert_found_by_both(sift, &documents[i]);
        }
    }
    docs
}

#[test]
fn kill_9_during_index_leaves_the_last_commit_and_reindexing_completes() {
    let sift = Sift::new();
    let documents = documents();
    let mut corpus = String::new();
    for (id, text) in &documents {
        corpus += &(serde_json::json!({"_id": id, "title": "", "text": text}).to_string() + "\n");
    }
    sift.write("corpus.jsonl", corpus);

    let mut child = sift.spawn(&INDEX_ARGS);
    let started = Instant::now();
    // Wait for at least three commits, then kill -9 mid-way.
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "`sift index` ended ({status}) before it could be killed; \
                 committed {} chunks; stderr:\n{}",
                committed_chunks(&sift),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if committed_chunks(&sift) >= 3 * 24 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no commit after 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");

    let committed = assert_consistent(&sift, &documents);
    assert!(committed > 0, "at least one commit survived");
    assert!(
        (committed as usize) < DOCS,
        "killed before the end: {committed} of {DOCS}"
    );
    assert_eq!(committed % DOCS_PER_COMMIT, 0, "{committed} documents");
    // The first document not committed is not there at all.
    let next = &documents[committed as usize];
    assert!(find_first_chunk(&sift, next).is_none(), "{} found", next.0);
    let hits = sift.hits(&first_chunk(&next.1), &["--k", "5", "--depth", "50"]);
    assert!(!doc_ids(&hits).contains(&next.0), "{hits:?}");

    // Indexing again finishes the job, without redoing committed documents.
    let run = sift.ok(&INDEX_ARGS);
    let expected = format!(
        "indexed {DOCS} documents ({} new or changed, {committed} unchanged, 0 empty)",
        DOCS as u64 - committed
    );
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    assert_eq!(assert_consistent(&sift, &documents), DOCS as u64);
    assert_found_by_both(&sift, next);
}
