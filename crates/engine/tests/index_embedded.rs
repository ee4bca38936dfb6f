//! `Engine::index_embedded`: chunks with vectors computed elsewhere are
//! written, committed, searched and reopened like embedded ones.

use sift_core::{Chunk, ChunkId, Document, SearchOptions};
use sift_engine::Engine;
use std::path::Path;

mod common;
use common::config;

/// The engine over `dir` (created when `create`), stage 1 only.
fn open(dir: &Path, create: bool) -> Engine {
    Engine::builder(dir)
        .config(config())
        .create_if_missing(create)
        .load_reranker(false)
        .open()
        .unwrap()
}

fn documents() -> Vec<Document> {
    vec![
        Document::new(
            "billing.md",
            "Billing",
            "Invoices are sent on the first day of each month by email.",
        ),
        Document::new(
            "security.md",
            "Security",
            "Turn on two-factor authentication in the account settings.",
        ),
        Document::new(
            "export.md",
            "Export",
            "You can download all your notes as a zip archive.",
        ),
    ]
}

#[test]
fn pre_embedded_chunks_are_searched_like_embedded_ones() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(source_dir.path(), true);
    source.index(&documents(), |_| {}).unwrap();

    // Copy every chunk with its stored vector into a second index, renamed.
    let mut vectors = std::collections::HashMap::new();
    source
        .for_each_stored_vector(|id, v| {
            vectors.insert(id, v);
        })
        .unwrap();
    assert_eq!(vectors.len(), 3);
    let mut copied: Vec<(Chunk, Vec<f32>)> = Vec::new();
    for doc_id in source.document_ids().unwrap() {
        for chunk in source.document_chunks(&doc_id).unwrap() {
            let vector = vectors[&chunk.id].clone();
            let doc_id = format!("copy/{}", chunk.doc_id);
            let id = ChunkId::derive(&doc_id, chunk.ordinal, &chunk.text);
            copied.push((
                Chunk {
                    id,
                    doc_id,
                    ..chunk
                },
                vector,
            ));
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), true);
    let mut last = None;
    let report = engine
        .index_embedded(copied.clone(), |p| last = Some(p))
        .unwrap();
    assert_eq!(report.documents_written, 3);
    assert_eq!(report.chunks_written, 3);
    let last = last.unwrap();
    assert_eq!((last.chunks_done, last.chunks_total), (3, 3));

    let options = SearchOptions::default().depth(3).k(3).rerank(false);
    let query = "how do I turn on two-factor authentication";
    let hits = |engine: &Engine| -> Vec<(String, f32)> {
        let retrieval = engine.retrieve(query, &options).unwrap();
        retrieval
            .dense
            .iter()
            .map(|&(id, score)| {
                let chunk = engine.chunks(&[id]).unwrap().pop().unwrap().unwrap();
                (chunk.doc_id.trim_start_matches("copy/").to_owned(), score)
            })
            .collect()
    };
    // The same vectors: the same dense ranking and similarities.
    let expected = hits(&source);
    let got = hits(&engine);
    assert_eq!(got.len(), 3);
    for ((a, x), (b, y)) in got.iter().zip(&expected) {
        assert_eq!(a, b);
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    assert_eq!(got[0].0, "security.md");
    let top = engine.search(query, &options).unwrap().hits;
    assert_eq!(top[0].chunk.doc_id, "copy/security.md");

    // Again: nothing changed, nothing written.
    let again = engine.index_embedded(copied.clone(), |_| {}).unwrap();
    assert_eq!(again.documents_unchanged, 3);
    assert_eq!(again.chunks_written, 0);

    // The graph was saved: a reopened engine has every point.
    drop(engine);
    let reopened = open(dir.path(), false);
    let stats = reopened.stats().unwrap();
    assert_eq!((stats.chunks, stats.vector_points), (3, 3));
}

#[test]
fn a_bad_vector_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), true);
    let chunk = |doc: &str, text: &str| Chunk {
        id: ChunkId::derive(doc, 0, text),
        doc_id: doc.into(),
        ordinal: 0,
        title: String::new(),
        section: Vec::new(),
        text: text.into(),
        char_start: 0,
        char_end: text.len(),
        metadata: Default::default(),
    };
    let mut unit = vec![0f32; 384];
    unit[0] = 1.0;
    let short = vec![1.0f32; 3];
    let unnormalised = vec![1.0f32; 384];
    for bad in [short, unnormalised] {
        let err = engine
            .index_embedded(
                vec![
                    (chunk("a", "first"), unit.clone()),
                    (chunk("b", "second"), bad),
                ],
                |_| {},
            )
            .unwrap_err();
        assert!(matches!(err, sift_engine::Error::Vector(_)), "{err}");
        assert_eq!(engine.stats().unwrap().chunks, 0);
    }
}
