//! `sift compact`, the automatic compaction at the end of `sift index`, and
//! one writer at a time: `sift index` beside a running `sift serve` is
//! refused with a clear error.

use crate::util::{doc_ids, words, Sift};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// Four one-chunk documents; `version` changes the text of the first two.
fn corpus(sift: &Sift, version: &str) {
    let lines: Vec<String> = (0..4)
        .map(|i| {
            let text = if i < 2 {
                format!("{} {version}", words(i * 5, 6))
            } else {
                words(i * 5, 6)
            };
            serde_json::json!({"_id": format!("d{i}"), "title": "", "text": text}).to_string()
        })
        .collect();
    sift.write("corpus.jsonl", lines.join("\n"));
}

fn points(sift: &Sift) -> (u64, u64, u64) {
    let stats = sift.stats(&[]);
    (
        stats["chunks"].as_u64().unwrap(),
        stats["vector_points"].as_u64().unwrap(),
        stats["dead_points"].as_u64().unwrap(),
    )
}

#[test]
fn compact_by_hand_and_after_indexing() {
    let sift = Sift::new();
    corpus(&sift, "one");
    sift.ok(&["index", "corpus.jsonl"]);
    assert_eq!(points(&sift), (4, 4, 0));

    // Automatic compaction off: the rewritten chunks' points stay.
    corpus(&sift, "two");
    let run = sift.ok(&["index", "corpus.jsonl", "--compact-dead-ratio", "0"]);
    assert!(!run.stdout.contains("compacted"), "{}", run.stdout);
    assert_eq!(points(&sift), (4, 6, 2));

    let run = sift.ok(&["compact"]);
    assert!(
        run.stdout.contains("6 → 4 graph points") && run.stdout.contains("4 live chunks"),
        "{}",
        run.stdout
    );
    assert_eq!(points(&sift), (4, 4, 0));
    let hits = sift.hits(&words(0, 6), &["--k", "1"]);
    assert_eq!(doc_ids(&hits), ["d0"]);

    // The default threshold (0.3): 2 dead of 6 points is past it.
    corpus(&sift, "three");
    let run = sift.ok(&["index", "corpus.jsonl"]);
    assert!(
        run.stdout.contains("compacted the vector index") && run.stdout.contains("6 → 4"),
        "{}",
        run.stdout
    );
    assert_eq!(points(&sift), (4, 4, 0));

    let err = sift.fails(&["index", "corpus.jsonl", "--compact-dead-ratio", "1.5"]);
    assert!(err.contains("index.compact_dead_ratio"), "{err}");
}

/// A child process killed when dropped, so a failing test leaves no server.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_writer_beside_sift_serve_is_refused() {
    let sift = Sift::new();
    corpus(&sift, "one");
    sift.ok(&["index", "corpus.jsonl"]);

    let mut child = sift
        .command(&["serve", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let pid = child.id();
    let server = KillOnDrop(child);
    loop {
        let line = lines
            .next()
            .expect("sift serve exited before listening")
            .unwrap();
        if line.contains(" on http://") {
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    corpus(&sift, "two");
    for args in [
        &["index", "corpus.jsonl"][..],
        &["delete", "d3"][..],
        &["compact"][..],
    ] {
        let err = sift.fails(args);
        assert!(
            err.contains("is being written by another process")
                && err.contains(&format!("pid {pid}"))
                && err.contains("serve")
                && err.contains("wait for it or stop it"),
            "`sift {}`: {err}",
            args.join(" ")
        );
    }
    // Reading needs no lock.
    assert_eq!(doc_ids(&sift.hits(&words(10, 6), &["--k", "1"])), ["d2"]);
    assert_eq!(sift.stats(&[])["chunks"], 4, "nothing was written");

    drop(server);
    let run = sift.ok(&["index", "corpus.jsonl"]);
    assert!(run.stdout.contains("2 new or changed"), "{}", run.stdout);
}
