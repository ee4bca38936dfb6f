//! `Engine::compact` and the writer lock: the HNSW graph is rebuilt from the
//! stored vectors without its dead points, searches go on meanwhile, a crash
//! at any step leaves a loadable graph, and one process writes at a time.

use sift_core::{Chunk, ChunkId, Document, SearchOptions};
use sift_engine::{Engine, Error};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

mod common;
use common::config;

fn open_writer(dir: &Path) -> Engine {
    Engine::builder(dir)
        .config(config())
        .create_if_missing(true)
        .load_reranker(false)
        .open()
        .unwrap()
}

fn open_reader(dir: &Path) -> Engine {
    Engine::builder(dir)
        .config(config())
        .load_reranker(false)
        .open()
        .unwrap()
}

const TOPICS: [(&str, &str); 12] = [
    (
        "billing",
        "Invoices are sent on the first day of each month by email.",
    ),
    (
        "security",
        "Turn on two-factor authentication in the account settings.",
    ),
    (
        "export",
        "You can download all your notes as a zip archive.",
    ),
    (
        "close",
        "Closing your account deletes your notes after thirty days.",
    ),
    (
        "sharing",
        "Share a notebook with a colleague by inviting their email address.",
    ),
    (
        "offline",
        "The mobile app keeps recent notes available without a network connection.",
    ),
    (
        "search",
        "Type a word in the search box to find every note that mentions it.",
    ),
    (
        "tags",
        "Tags group notes across notebooks; add one with the hash sign.",
    ),
    (
        "backup",
        "Nightly backups are kept for ninety days and can be restored on request.",
    ),
    (
        "password",
        "Reset a forgotten password from the link on the sign-in page.",
    ),
    (
        "storage",
        "Each plan includes ten gigabytes of attachment storage.",
    ),
    (
        "language",
        "Change the interface language under preferences, then reload the page.",
    ),
];

fn documents(version: &str) -> Vec<Document> {
    TOPICS
        .iter()
        .map(|(id, text)| Document::new(format!("{id}.md"), *id, format!("{text} {version}")))
        .collect()
}

const QUERIES: [&str; 4] = [
    "how do I turn on two-factor authentication",
    "what happens to my notes when I close my account",
    "restore a backup",
    "forgot my password",
];

/// Stage-1 top 3 (document ids) of each query.
fn top_hits(engine: &Engine) -> Vec<Vec<String>> {
    let options = SearchOptions::default().depth(3).k(3).rerank(false);
    QUERIES
        .iter()
        .map(|q| {
            engine
                .search(q, &options)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.chunk.doc_id)
                .collect()
        })
        .collect()
}

/// An index whose graph holds dead points: every document indexed, then
/// half of them rewritten (new chunks, the old ones dead), one deleted.
fn index_with_dead_points(dir: &Path) -> Engine {
    let engine = open_writer(dir);
    engine.index(&documents("(v1)"), |_| {}).unwrap();
    let rewritten: Vec<Document> = documents("(v2)").into_iter().step_by(2).collect();
    engine.index(&rewritten, |_| {}).unwrap();
    assert!(engine.delete("storage.md").unwrap());
    engine
}

#[test]
fn compaction_drops_the_dead_points_and_keeps_the_hits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = index_with_dead_points(dir.path());
    let before = engine.stats().unwrap();
    assert_eq!(before.chunks, 11);
    // 12 first chunks, 6 rewritten: 18 points, 11 live, 7 dead.
    assert_eq!(before.vector_points, 18);
    assert_eq!(before.dead_points, 7);
    assert!((before.dead_ratio - 7.0 / 18.0).abs() < 1e-9);
    assert!(engine.needs_compaction(), "0.39 is past the default 0.3");
    let hits_before = top_hits(&engine);

    let report = engine.compact().unwrap();
    assert_eq!((report.points_before, report.points_after), (18, 11));
    assert!((report.dead_ratio_before - 7.0 / 18.0).abs() < 1e-9);
    assert_eq!(report.dead_ratio_after, 0.0);
    assert_eq!(report.caught_up, 0);
    let after = engine.stats().unwrap();
    assert_eq!((after.vector_points, after.dead_points), (11, 0));
    assert!(!engine.needs_compaction());
    assert_eq!(top_hits(&engine), hits_before);

    // The compacted graph is what was saved: a reopened engine loads it.
    drop(engine);
    let reopened = open_reader(dir.path());
    assert_eq!(reopened.stats().unwrap().vector_points, 11);
    assert_eq!(top_hits(&reopened), hits_before);
}

/// The threshold: 0 never compacts on its own; any other ratio does once
/// the dead share reaches it.
#[test]
fn needs_compaction_follows_the_configured_ratio() {
    let dir = tempfile::tempdir().unwrap();
    drop(index_with_dead_points(dir.path()));
    let with_ratio = |ratio: f64| {
        let mut config = config();
        config.index.compact_dead_ratio = ratio;
        Engine::builder(dir.path())
            .config(config)
            .load_reranker(false)
            .open()
            .unwrap()
            .needs_compaction()
    };
    assert!(!with_ratio(0.0), "0 turns it off");
    assert!(with_ratio(0.35));
    assert!(!with_ratio(0.4), "7/18 = 0.389 is below 0.4");
}

/// The states a crash can leave a save in (see sift-vector's persist.rs):
/// a half-written `.vectors.saving` beside the old graph, and the old graph
/// moved to `.vectors.previous` with the new one not yet in place. Both
/// reopen with the old graph (not one rebuilt from scratch: that would have
/// no dead point), and the next writer cleans up and compacts.
#[test]
fn a_crash_mid_compaction_reopens_with_the_old_graph() {
    let dir = tempfile::tempdir().unwrap();
    let engine = index_with_dead_points(dir.path());
    let hits = top_hits(&engine);
    drop(engine);
    let vectors = dir.path().join("vectors");
    let saving = dir.path().join(".vectors.saving");
    let previous = dir.path().join(".vectors.previous");
    let half_written = || {
        std::fs::create_dir(&saving).unwrap();
        std::fs::write(saving.join("vectors.hnsw.graph"), b"half a graph").unwrap();
    };

    // 1. Killed while writing the new folder.
    half_written();
    let reader = open_reader(dir.path());
    assert_eq!(reader.stats().unwrap().vector_points, 18, "the old graph");
    assert_eq!(top_hits(&reader), hits);
    drop(reader);
    assert!(saving.exists(), "a reader removes nothing");
    let writer = open_writer(dir.path());
    assert!(!saving.exists(), "the writer removed the half-written save");
    assert_eq!(writer.stats().unwrap().vector_points, 18);
    drop(writer);

    // 2. Killed between the renames: the old graph is `.previous`.
    std::fs::rename(&vectors, &previous).unwrap();
    half_written();
    let reader = open_reader(dir.path());
    assert_eq!(reader.stats().unwrap().vector_points, 18, "the old graph");
    assert_eq!(top_hits(&reader), hits);
    drop(reader);
    let writer = open_writer(dir.path());
    assert!(!saving.exists());
    assert!(previous.exists(), "the only complete save is kept");
    assert_eq!(writer.stats().unwrap().vector_points, 18);
    let report = writer.compact().unwrap();
    assert_eq!(report.points_after, 11);
    assert!(vectors.is_dir() && !previous.exists() && !saving.exists());
    drop(writer);
    assert_eq!(open_reader(dir.path()).stats().unwrap().vector_points, 11);
}

/// A unit vector of `dim` entries from a seed (xorshift; no rand crate).
fn pseudo_random_unit(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        })
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.into_iter().map(|a| a / norm).collect()
}

fn filler(doc: usize, version: u32, dim: usize) -> Vec<(Chunk, Vec<f32>)> {
    (0..4u32)
        .map(|ordinal| {
            let doc_id = format!("filler/{doc}");
            let text = format!("filler passage {doc} {ordinal} version {version}");
            let chunk = Chunk {
                id: ChunkId::derive(&doc_id, ordinal, &text),
                doc_id,
                ordinal,
                title: String::new(),
                section: Vec::new(),
                char_start: 0,
                char_end: text.len(),
                text,
                metadata: Default::default(),
            };
            let seed = (doc as u64) << 24 | u64::from(version) << 8 | u64::from(ordinal);
            (chunk, pseudo_random_unit(seed, dim))
        })
        .collect()
}

/// Searches answer while the graph is rebuilt (from a thread, on a graph
/// big enough for the build to take a while), and a document written
/// during the rebuild is in the new graph.
#[test]
fn searches_and_writes_go_on_during_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_writer(dir.path());
    engine.index(&documents("(v1)"), |_| {}).unwrap();
    let dim = engine.stats().unwrap().embedding_dim;
    let docs = 1500;
    let all: Vec<_> = (0..docs).flat_map(|d| filler(d, 1, dim)).collect();
    engine.index_embedded(all, |_| {}).unwrap();
    let rewritten: Vec<_> = (0..docs / 2).flat_map(|d| filler(d, 2, dim)).collect();
    engine.index_embedded(rewritten, |_| {}).unwrap();
    let before = engine.stats().unwrap();
    assert_eq!(before.dead_points, docs / 2 * 4);
    // The best hit of each query: the random filler vectors may take the
    // lower ranks, where the old and new (approximate) graphs can differ.
    let best = |engine: &Engine| -> Vec<String> {
        top_hits(engine).into_iter().map(|h| h[0].clone()).collect()
    };
    let expected = best(&engine);
    assert_eq!(expected[0], "security.md");

    let engine = Arc::new(engine);
    let done = Arc::new(AtomicBool::new(false));
    let compaction = {
        let (engine, done) = (engine.clone(), done.clone());
        std::thread::spawn(move || {
            let report = engine.compact();
            done.store(true, Ordering::SeqCst);
            report
        })
    };
    let answered_meanwhile = Arc::new(AtomicUsize::new(0));
    let searcher = {
        let (engine, done, answered) = (engine.clone(), done.clone(), answered_meanwhile.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                assert_eq!(best(&engine), expected);
                if !done.load(Ordering::SeqCst) {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let late = Document::new(
        "late.md",
        "Late",
        "Keyboard shortcuts are listed under the question mark menu.",
    );
    engine.index(std::slice::from_ref(&late), |_| {}).unwrap();
    let report = compaction.join().unwrap().unwrap();
    searcher.join().unwrap();

    assert!(
        answered_meanwhile.load(Ordering::SeqCst) > 0,
        "no search was answered during a {:?} build",
        report.build
    );
    let after = engine.stats().unwrap();
    assert_eq!(after.dead_points, 0);
    assert_eq!(after.vector_points as u64, after.chunks);
    // The late document is in the new graph, whether it was written before
    // the build read the stored vectors or caught up after.
    let options = SearchOptions::default().depth(5).k(5).rerank(false);
    let dense = engine
        .retrieve("where are the keyboard shortcuts listed", &options)
        .unwrap()
        .dense;
    let top = engine
        .chunks(&[dense[0].0])
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(top.doc_id, "late.md");
}

/// Two writers on one folder: the second is refused at once, naming the
/// holder; a reader opens beside the writer but cannot write; once the
/// writer is gone the folder can be written again. (flock locks belong to
/// an open file, so this works within one process.)
#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open_writer(dir.path());
    writer.index(&documents("(v1)"), |_| {}).unwrap();

    let second = Engine::builder(dir.path())
        .config(config())
        .writable(true)
        .load_reranker(false)
        .open();
    let err = match second {
        Err(e) => e,
        Ok(_) => panic!("a second writer opened"),
    };
    assert!(matches!(err, Error::IndexBusy { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("is being written by another process")
            && message.contains(&format!("pid {}", std::process::id()))
            && message.contains(&dir.path().display().to_string()),
        "{message}"
    );

    let reader = open_reader(dir.path());
    assert_eq!(reader.stats().unwrap().chunks, 12);
    // Checking that documents are indexed writes nothing: no lock needed.
    let unchanged = reader.index(&documents("(v1)"), |_| {}).unwrap();
    assert_eq!(unchanged.documents_unchanged, 12);
    for err in [
        reader.delete("billing.md").unwrap_err(),
        reader.index(&documents("(v3)"), |_| {}).unwrap_err(),
        reader.compact().unwrap_err(),
    ] {
        assert!(matches!(err, Error::IndexBusy { .. }), "{err}");
    }
    assert_eq!(writer.stats().unwrap().chunks, 12, "nothing was written");

    drop(writer);
    assert!(reader.delete("billing.md").unwrap(), "the lock is free now");
}

/// A reader that finds the graph behind the lexical index repairs it in
/// memory; it saves the repair only when no writer holds the lock, so it
/// never saves over a writer's graph.
#[test]
fn a_reader_saves_its_repair_only_without_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open_writer(dir.path());
    writer.index(&documents("(v1)"), |_| {}).unwrap();
    let vectors = dir.path().join("vectors");
    std::fs::remove_dir_all(&vectors).unwrap();

    let reader = open_reader(dir.path());
    assert_eq!(reader.stats().unwrap().vector_points, 12, "repaired");
    assert_eq!(top_hits(&reader)[0][0], "security.md");
    assert!(!vectors.exists(), "saved beside a writer");
    drop(reader);

    drop(writer);
    let reader = open_reader(dir.path());
    assert_eq!(reader.stats().unwrap().vector_points, 12);
    assert!(vectors.join("vector-meta.json").is_file(), "saved");
}
