//! Background compaction: once the replaced and deleted chunks' points pass
//! `index.compact_dead_ratio` (0.3 by default), a write starts a rebuild of
//! the HNSW graph without them; searches answer meanwhile, and `/stats` and
//! `/metrics` say what happened.

mod common;

use common::{Setup, TestServer};
use serde_json::json;
use sift_core::{Chunk, ChunkId};
use std::time::{Duration, Instant};

/// A unit vector from a seed (xorshift; no rand crate).
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

/// `docs` filler documents of 4 chunks each, with stored vectors made up
/// (so that the graph is big enough for a rebuild to take a moment without
/// embedding thousands of passages); `version` changes every chunk.
fn filler(docs: usize, version: u32) -> Vec<(Chunk, Vec<f32>)> {
    (0..docs)
        .flat_map(|doc| {
            (0..4u32).map(move |ordinal| {
                let doc_id = format!("filler/{doc}");
                let text = format!("filler passage {doc} {ordinal} version {version}");
                let seed = (doc as u64) << 24 | u64::from(version) << 8 | u64::from(ordinal);
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
                (chunk, pseudo_random_unit(seed, 384))
            })
        })
        .collect()
}

#[test]
fn a_write_past_the_threshold_compacts_in_the_background_while_searches_answer() {
    let s = TestServer::start(Setup::default());
    // Written around the server (its engine directly), so that no check
    // runs yet: 6,000 filler chunks, then 2,000 of them replaced.
    s.engine.index_embedded(filler(1500, 1), |_| {}).unwrap();
    s.engine.index_embedded(filler(500, 2), |_| {}).unwrap();
    let stats = s.get("/stats").json();
    assert_eq!(stats["dead_points"], 2000, "{stats}");
    assert_eq!(stats["compaction"]["running"], false);
    assert_eq!(stats["compaction"]["completed"], 0);
    assert_eq!(stats["compaction"]["dead_ratio_threshold"], 0.3);

    // 2,000 of 8,005 points are dead (0.250). Deleting 100 filler
    // documents (400 more dead) leaves it just below 0.3 (0.2998); the
    // 101st deletion takes it past and starts the compaction.
    for doc in 1000..1100 {
        assert_eq!(s.delete(&format!("/documents/filler%2F{doc}")).status, 200);
    }
    let stats = s.get("/stats").json();
    assert_eq!(stats["dead_points"], 2400, "{stats}");
    assert_eq!(stats["compaction"]["running"], false, "not yet: {stats}");
    assert_eq!(stats["compaction"]["completed"], 0, "not yet: {stats}");
    assert_eq!(s.delete("/documents/filler%2F1100").status, 200);

    let search = json!({"query": "what happens to my notes when I close my account", "depth": 10, "k": 3, "rerank": false});
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut answered_while_running = 0;
    let stats = loop {
        let before = s.get("/stats").json();
        let r = s.post("/search", &search);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json()["hits"][0]["doc_id"],
            "faq/close-account.md",
            "{}",
            r.text
        );
        let after = s.get("/stats").json();
        if before["compaction"]["running"] == true && after["compaction"]["running"] == true {
            answered_while_running += 1;
        }
        if after["compaction"]["completed"] == 1 {
            break after;
        }
        assert!(Instant::now() < deadline, "no compaction finished: {after}");
    };
    assert_eq!(stats["dead_points"], 0, "{stats}");
    assert_eq!(stats["vector_points"], stats["chunks"], "{stats}");
    assert_eq!(stats["chunks"], 5 + 6000 - 404);
    let last = &stats["compaction"]["last"];
    assert_eq!(last["points_before"], 8005, "{stats}");
    assert_eq!(last["points_after"], 5601, "{stats}");
    assert!(last["error"].is_null(), "{stats}");
    assert!(
        answered_while_running > 0,
        "no search was answered during the {}s compaction",
        last["seconds"]
    );

    eprintln!("/stats after the compaction: {stats}");
    let metrics = s.get("/metrics").text;
    assert!(
        metrics.contains("sift_compactions_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("sift_compaction_running 0"), "{metrics}");
    assert!(metrics.contains("sift_index_dead_points 0"), "{metrics}");
}

/// Dead points below the threshold stay (a rebuild is not worth it yet).
#[test]
fn dead_points_below_the_threshold_are_left_alone() {
    let s = TestServer::start(Setup::default());
    // One of five documents replaced: 1 dead point of 6 (0.17 < 0.3).
    let r = s.post(
        "/documents",
        &json!({"documents": [{"id": "faq/export.md", "title": "Exporting", "text": "Export notebooks from Settings."}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::sleep(Duration::from_millis(500));
    let stats = s.get("/stats").json();
    assert_eq!(stats["dead_points"], 1, "{stats}");
    assert_eq!(stats["vector_points"], 6, "{stats}");
    assert_eq!(stats["compaction"]["running"], false);
    assert_eq!(stats["compaction"]["completed"], 0);
}
