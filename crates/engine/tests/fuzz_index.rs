//! Fuzzing the index folder: a small real index is built once, then each
//! of its files in turn (sift-index.json, tantivy's meta.json and segment
//! files, the HNSW dump and its vector-meta.json) is deleted, emptied, cut
//! in half, partly overwritten or replaced with random bytes, in a fresh
//! copy, and the engine opens the copy.
//!
//! Opening must give an error that names the index folder or the damaged
//! file, or recover; never panic. Recovered means no silent wrong answer:
//! every document is still counted and a known query still finds its
//! document, by BM25 and by the dense retriever (a damaged graph is
//! rebuilt from the vectors stored in tantivy).
//!
//! Every file gets every kind of damage (the sweep), then proptest picks
//! random files, offsets and bytes. `SIFT_FUZZ_SCALE=N` runs N times as
//! many random cases (`just fuzz`). The target prints `fuzz: index folder:
//! CASES cases, CRASHES crashes, ...`.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use sift_core::{Config, Document, ModelSource, SearchOptions};
use sift_engine::Engine;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;
use common::model_dir;

fn config() -> Config {
    let mut config = Config::default();
    config.models.bi_encoder = ModelSource::local(model_dir());
    config.models.cross_encoder = ModelSource::default();
    config.models.cross_encoder_fallback = None;
    config
}

fn documents() -> Vec<Document> {
    [
        (
            "billing.md",
            "Billing",
            "Annual plans can be refunded within fourteen days of purchase.",
        ),
        (
            "export.md",
            "Exporting",
            "Export every notebook as Markdown or PDF from the settings page.",
        ),
        (
            "offline.md",
            "Offline",
            "The desktop app keeps a full copy of your notes for flights.",
        ),
        (
            "password.md",
            "Passwords",
            "Use the forgot password link; the reset link is valid for one hour.",
        ),
        (
            "close.md",
            "Closing",
            "Closed accounts keep attachments for thirty days, then delete them.",
        ),
        (
            "sharing.md",
            "Sharing",
            "Share a notebook with a link that expires after seven days.",
        ),
    ]
    .into_iter()
    .map(|(id, title, text)| Document::new(id, title, text))
    .collect()
}

/// The pristine index, built once; its files, relative, sorted.
fn pristine() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static INDEX: std::sync::OnceLock<(tempfile::TempDir, Vec<PathBuf>)> =
        std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path())
            .config(config())
            .create_if_missing(true)
            .load_reranker(false)
            .open()
            .unwrap();
        engine.index(&documents(), |_| {}).unwrap();
        drop(engine);
        let mut files: Vec<PathBuf> = walk(dir.path())
            .into_iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_owned())
            .collect();
        files.sort();
        (dir, files)
    })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[derive(Clone, Debug)]
enum Damage {
    Delete,
    Empty,
    Half,
    /// Overwrite bytes from this share (per mille) of the file.
    Overwrite(u16, Vec<u8>),
    Random(Vec<u8>),
}

fn apply(path: &Path, damage: &Damage) {
    let bytes = std::fs::read(path).unwrap();
    let new = match damage {
        Damage::Delete => return std::fs::remove_file(path).unwrap(),
        Damage::Empty => Vec::new(),
        Damage::Half => bytes[..bytes.len() / 2].to_vec(),
        Damage::Overwrite(share, patch) => {
            let mut b = bytes.clone();
            let at = (*share as usize * b.len()) / 1000;
            for (i, byte) in patch.iter().enumerate() {
                if let Some(slot) = b.get_mut(at + i) {
                    *slot = *byte;
                }
            }
            b
        }
        Damage::Random(b) => b.clone(),
    };
    std::fs::write(path, new).unwrap();
}

/// What opening a damaged copy came to.
enum Outcome {
    Refused,
    Recovered,
    /// Opened, but wrong or broken: the message says how.
    Wrong(String),
}

/// Open the damaged copy and judge it.
fn judge(dir: &Path, file: &Path) -> Outcome {
    let opened = Engine::builder(dir)
        .config(config())
        .load_reranker(false)
        .open();
    let engine = match opened {
        Ok(engine) => engine,
        Err(e) => {
            let message = e.to_string();
            let name = file.file_name().unwrap().to_string_lossy();
            return if message.contains(&dir.display().to_string())
                || message.contains(name.as_ref())
            {
                Outcome::Refused
            } else {
                Outcome::Wrong(format!(
                    "an error naming neither the folder nor {name}: {message}"
                ))
            };
        }
    };
    let expected = documents().len() as u64;
    match engine.stats() {
        Ok(stats) if stats.documents == expected => {}
        Ok(stats) => return Outcome::Wrong(format!("{} documents of {expected}", stats.documents)),
        Err(e) => return Outcome::Wrong(format!("opened, then stats failed: {e}")),
    }
    let options = SearchOptions::default().depth(6).k(6).rerank(false);
    for doc in documents() {
        let hits = match engine.search(&doc.text, &options) {
            Ok(r) => r.hits,
            Err(e) => return Outcome::Wrong(format!("opened, then a search failed: {e}")),
        };
        let Some(top) = hits.first() else {
            return Outcome::Wrong(format!("no hit for {}", doc.id));
        };
        if top.chunk.doc_id != doc.id || top.chunk.text != doc.text {
            return Outcome::Wrong(format!("{} answered for {}", top.chunk.doc_id, doc.id));
        }
        if top.scores.bm25.is_none() || top.scores.dense.is_none() {
            return Outcome::Wrong(format!(
                "{} not found by both retrievers: {:?}",
                doc.id, top.scores
            ));
        }
    }
    Outcome::Recovered
}

struct Tally {
    cases: Cell<u32>,
    crashes: Cell<u32>,
    refused: Cell<u32>,
    recovered: Cell<u32>,
}

fn run_case(tally: &Tally, file: &Path, damage: &Damage) -> Result<(), String> {
    let bump = |c: &Cell<u32>| c.set(c.get() + 1);
    bump(&tally.cases);
    let (pristine, _) = pristine();
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("index");
    copy_dir(pristine.path(), &dir);
    apply(&dir.join(file), damage);
    match std::panic::catch_unwind(AssertUnwindSafe(|| judge(&dir, file))) {
        Err(_) => {
            bump(&tally.crashes);
            Err(format!("{}: {damage:?}: panicked", file.display()))
        }
        Ok(Outcome::Refused) => {
            bump(&tally.refused);
            Ok(())
        }
        Ok(Outcome::Recovered) => {
            bump(&tally.recovered);
            Ok(())
        }
        Ok(Outcome::Wrong(why)) => Err(format!("{} ({damage:?}): {why}", file.display())),
    }
}

#[test]
fn fuzz_index_folder() {
    let (_, files) = pristine();
    let tally = Tally {
        cases: Cell::new(0),
        crashes: Cell::new(0),
        refused: Cell::new(0),
        recovered: Cell::new(0),
    };
    let started = Instant::now();
    // The sweep: every file, every kind of damage.
    let mut failures = Vec::new();
    for file in files {
        let size = std::fs::metadata(pristine().0.path().join(file))
            .unwrap()
            .len() as usize;
        let garbage: Vec<u8> = (0..size.max(64)).map(|i| (i * 7919 % 251) as u8).collect();
        for damage in [
            Damage::Delete,
            Damage::Empty,
            Damage::Half,
            Damage::Overwrite(500, vec![0xff; 8]),
            Damage::Random(garbage),
            // Four zero bytes: shorter than tantivy's footer trailer but
            // long enough to pass its first length check (it panicked).
            Damage::Random(vec![0; 4]),
        ] {
            if let Err(why) = run_case(&tally, file, &damage) {
                failures.push(why);
            }
        }
    }
    let swept = tally.cases.get();
    // Random files, places and bytes.
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 20
            * std::env::var("SIFT_FUZZ_SCALE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1u32)
                .max(1),
        failure_persistence: None,
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    });
    let damage = prop_oneof![
        (0u16..1000, prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, b)| Damage::Overwrite(at, b)),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(Damage::Random),
    ];
    let result = runner.run(&(0..files.len(), damage), |(i, damage)| {
        run_case(&tally, &files[i], &damage).map_err(TestCaseError::fail)
    });
    println!(
        "fuzz: index folder: {} cases, {} crashes ({} files x 6 kinds of damage, then {} random), {} refused with an error naming the path, {} recovered (all documents found by BM25 and dense), {:.1?}",
        tally.cases.get(),
        tally.crashes.get(),
        files.len(),
        tally.cases.get() - swept,
        tally.refused.get(),
        tally.recovered.get(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if let Err(e) = result {
        panic!("index folder: {e}");
    }
}
