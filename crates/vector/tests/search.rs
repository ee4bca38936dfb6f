mod common;

use common::{id, points, queries, Rng};
use sift_core::{ChunkId, HnswConfig};
use sift_vector::{recall_at_k, Error, VectorIndex};
use std::collections::HashSet;
use std::time::Instant;

const ALL: &(dyn Fn(ChunkId) -> bool + Sync) = &|_| true;

fn build(n: usize, dim: usize) -> (VectorIndex, Vec<(ChunkId, Vec<f32>)>) {
    let points = points(42, n, dim);
    let mut index = VectorIndex::new(dim, &HnswConfig::default(), n);
    let start = Instant::now();
    assert_eq!(index.insert(&points).unwrap(), n);
    eprintln!("inserted {n} x {dim} in {:.2?}", start.elapsed());
    (index, points)
}

#[test]
fn recall_at_10_is_at_least_0_98_with_default_config() {
    let (index, _) = build(5_000, 64);
    assert_eq!(index.len(), 5_000);
    let queries = queries(7, 200, 64);

    let start = Instant::now();
    for q in &queries {
        assert_eq!(index.search(q, 10, ALL).len(), 10);
    }
    let per_query = start.elapsed() / queries.len() as u32;

    let recall = recall_at_k(&index, &queries, 10, ALL);
    eprintln!("recall@10 = {recall:.4} ({per_query:.2?} per query, ef_search 128)");
    assert!(recall >= 0.98, "recall@10 = {recall}");
}

#[test]
fn search_never_returns_dead_ids_and_still_fills_k() {
    let (index, points) = build(5_000, 64);
    let dead: HashSet<ChunkId> = points.iter().step_by(2).map(|(id, _)| *id).collect();
    let is_live = |id: ChunkId| !dead.contains(&id);
    let queries = queries(8, 200, 64);
    for q in &queries {
        let hits = index.search(q, 10, &is_live);
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|(id, _)| !dead.contains(id)));
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1), "sorted by score");
    }
    // Querying with a dead point's own vector finds live neighbours only.
    for (dead_id, vector) in points.iter().step_by(2).take(50) {
        let hits = index.search(vector, 10, &is_live);
        assert_eq!(hits.len(), 10);
        assert!(hits
            .iter()
            .all(|(id, _)| id != dead_id && !dead.contains(id)));
    }
    let recall = recall_at_k(&index, &queries, 10, &is_live);
    eprintln!("recall@10 with half the points dead = {recall:.4}");
    assert!(recall >= 0.95, "recall@10 with half dead = {recall}");
}

#[test]
fn search_fills_k_when_almost_everything_is_dead() {
    let (index, points) = build(3_000, 32);
    // 1% live: the graph walk mostly meets dead points.
    let live: HashSet<ChunkId> = points.iter().step_by(100).map(|(id, _)| *id).collect();
    let is_live = |id: ChunkId| live.contains(&id);
    for q in queries(9, 30, 32) {
        let hits = index.search(&q, 10, &is_live);
        assert_eq!(hits, index.exact_search(&q, 10, &is_live));
    }
    // Fewer live points than k: all of them.
    let few: HashSet<ChunkId> = points.iter().take(3).map(|(id, _)| *id).collect();
    let hits = index.search(&points[0].1, 10, &|id| few.contains(&id));
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].0, points[0].0);
    // Nothing live: nothing returned.
    assert!(index.search(&points[0].1, 10, &|_| false).is_empty());
}

#[test]
fn results_are_sorted_by_similarity_then_id() {
    let dim = 8;
    let mut index = VectorIndex::new(dim, &HnswConfig::default(), 16);
    let mut rng = Rng::new(1);
    let shared = rng.unit_vector(dim);
    // Three chunks with the same vector (identical texts) tie exactly.
    let mut pts = vec![
        (ChunkId(30), shared.clone()),
        (ChunkId(10), shared.clone()),
        (ChunkId(20), shared.clone()),
    ];
    for i in 0..10 {
        pts.push((ChunkId(100 + i), rng.unit_vector(dim)));
    }
    index.insert(&pts).unwrap();
    for hits in [
        index.search(&shared, 5, ALL),
        index.exact_search(&shared, 5, ALL),
    ] {
        let ids: Vec<u64> = hits.iter().map(|(id, _)| id.0).collect();
        assert_eq!(ids[..3], [10, 20, 30]);
        // A vector's similarity with itself is 1, never above.
        assert!(hits[..3]
            .iter()
            .all(|(_, s)| (*s - 1.0).abs() < 1e-5 && *s <= 1.0));
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

#[test]
fn querying_with_indexed_vectors_does_not_panic() {
    // hnsw_rs's DistDot asserts 1 - a·b >= 0, which a unit vector's self-dot
    // (rounding to 1.0000001) breaks; the index's distance clamps instead.
    let (index, points) = build(1_000, 384);
    for (id, vector) in points.iter().take(200) {
        let hits = index.search(vector, 1, ALL);
        assert_eq!(hits[0].0, *id);
        assert!(hits[0].1 > 0.9999 && hits[0].1 <= 1.0);
    }
}

#[test]
fn exact_search_agrees_with_a_naive_scan() {
    let (index, points) = build(500, 16);
    let q = &queries(3, 1, 16)[0];
    let mut naive: Vec<(ChunkId, f32)> = points
        .iter()
        .map(|(id, v)| (*id, v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()))
        .collect();
    naive.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let exact = index.exact_search(q, 20, ALL);
    assert_eq!(exact.len(), 20);
    for (e, n) in exact.iter().zip(&naive) {
        assert_eq!(e.0, n.0);
        assert!((e.1 - n.1).abs() < 1e-5);
    }
    let mut count = 0;
    index.for_each_point(|id, v| {
        count += 1;
        assert_eq!(v.len(), 16);
        assert!(index.contains(id));
    });
    assert_eq!(count, 500);
}

#[test]
fn insert_skips_existing_ids_and_batch_duplicates() {
    let dim = 16;
    let pts = points(5, 300, dim);
    let mut index = VectorIndex::new(dim, &HnswConfig::default(), 300);
    assert_eq!(index.insert(&pts[..200]).unwrap(), 200);
    // 100 already present, 100 new, and one new id twice in the batch.
    let mut batch = pts[100..].to_vec();
    batch.push(pts[250].clone());
    assert_eq!(index.insert(&batch).unwrap(), 100);
    assert_eq!(index.len(), 300);
    assert_eq!(index.insert(&pts).unwrap(), 0);
    assert!(pts.iter().all(|(id, _)| index.contains(*id)));
    assert!(!index.contains(ChunkId(12345)));
    let mut seen = HashSet::new();
    index.for_each_point(|id, _| assert!(seen.insert(id), "{id} twice"));
    assert_eq!(seen.len(), 300);
}

#[test]
fn insert_rejects_bad_vectors_and_inserts_nothing() {
    let dim = 4;
    let mut index = VectorIndex::new(dim, &HnswConfig::default(), 4);
    let good = (ChunkId(1), vec![0.5, 0.5, 0.5, 0.5]);
    let cases = [
        (ChunkId(2), vec![1.0, 0.0, 0.0]),
        (ChunkId(3), vec![f32::NAN, 0.0, 0.0, 1.0]),
        (ChunkId(4), vec![f32::INFINITY, 0.0, 0.0, 0.0]),
        (ChunkId(5), vec![2.0, 0.0, 0.0, 0.0]),
        (ChunkId(6), vec![0.0; 4]),
    ];
    for bad in cases {
        let err = index.insert(&[good.clone(), bad.clone()]).unwrap_err();
        match (&err, bad.0 .0) {
            (
                Error::Dimension {
                    id,
                    expected: 4,
                    got: 3,
                },
                2,
            ) => assert_eq!(*id, bad.0),
            (Error::NonFinite { id }, 3 | 4) => assert_eq!(*id, bad.0),
            (Error::NotNormalized { id, .. }, 5 | 6) => assert_eq!(*id, bad.0),
            other => panic!("unexpected {other:?}"),
        }
        assert!(index.is_empty(), "nothing inserted on error");
    }
    assert_eq!(index.insert(&[good]).unwrap(), 1);
}

#[test]
fn unusable_queries_and_empty_indexes_return_nothing() {
    let empty = VectorIndex::new(4, &HnswConfig::default(), 0);
    assert!(empty.search(&[1.0, 0.0, 0.0, 0.0], 5, ALL).is_empty());
    assert!(empty.exact_search(&[1.0, 0.0, 0.0, 0.0], 5, ALL).is_empty());
    empty.for_each_point(|_, _| panic!("no points"));

    let (index, _) = build(100, 4);
    assert!(
        index.search(&[1.0, 0.0, 0.0], 5, ALL).is_empty(),
        "wrong dim"
    );
    assert!(index.search(&[f32::NAN, 0.0, 0.0, 0.0], 5, ALL).is_empty());
    assert!(index.search(&[0.0; 4], 5, ALL).is_empty());
    assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 0, ALL).is_empty());
    // A query that is not unit length is normalised: same hits, cosine scores.
    let a = index.search(&[3.0, 0.0, 0.0, 0.0], 5, ALL);
    let b = index.search(&[1.0, 0.0, 0.0, 0.0], 5, ALL);
    assert_eq!(a, b);
    assert!(a.iter().all(|(_, s)| *s <= 1.0 && *s >= -1.0));
}

#[test]
fn ef_search_trades_recall() {
    let (mut index, _) = build(3_000, 64);
    let queries = queries(11, 100, 64);
    index.set_ef_search(10);
    let low = recall_at_k(&index, &queries, 10, ALL);
    index.set_ef_search(256);
    let high = recall_at_k(&index, &queries, 10, ALL);
    eprintln!("recall@10: ef 10 -> {low:.4}, ef 256 -> {high:.4}");
    assert_eq!(index.config().ef_search, 256);
    assert!(high >= low);
    assert!(high >= 0.98);
}

#[test]
fn ids_use_the_full_u64_range() {
    let mut index = VectorIndex::new(2, &HnswConfig::default(), 2);
    let big = ChunkId(u64::MAX);
    index
        .insert(&[(big, vec![1.0, 0.0]), (ChunkId(0), vec![0.0, 1.0])])
        .unwrap();
    assert_eq!(index.search(&[1.0, 0.0], 1, ALL)[0].0, big);
    assert!(index.contains(big));
    let _ = id(0);
}
