use crate::VectorIndex;
use sift_core::ChunkId;
use std::collections::HashSet;

/// Mean recall@k of [`VectorIndex::search`] against
/// [`VectorIndex::exact_search`] over `queries`: for each query,
/// |approx ∩ exact| / |exact|. Queries with no exact hit (nothing live, or an
/// unusable query) are left out; with none left the recall is 1 (nothing
/// could be missed).
pub fn recall_at_k(
    index: &VectorIndex,
    queries: &[Vec<f32>],
    k: usize,
    is_live: &(dyn Fn(ChunkId) -> bool + Sync),
) -> f64 {
    let mut sum = 0.0;
    let mut counted = 0usize;
    for query in queries {
        let exact = index.exact_search(query, k, is_live);
        if exact.is_empty() {
            continue;
        }
        let approx: HashSet<ChunkId> = index
            .search(query, k, is_live)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let found = exact.iter().filter(|(id, _)| approx.contains(id)).count();
        sum += found as f64 / exact.len() as f64;
        counted += 1;
    }
    if counted == 0 {
        1.0
    } else {
        sum / counted as f64
    }
}
