use crate::VectorIndex;
use sift_core::ChunkId;
use std::collections::HashSet;

/// Similarity below the exact k-th within which an approximate hit still
/// counts as a true neighbour (float noise).
const TIE_TOLERANCE: f32 = 1e-6;

/// Mean recall@k of [`VectorIndex::search`] against
/// [`VectorIndex::exact_search`] over `queries`: for each query, the share
/// of the exact top k that the approximate top k matches. As in
/// ann-benchmarks, an approximate hit at least as similar as the exact k-th
/// neighbour counts even when it is not among the exact ids: with
/// duplicate vectors the exact top k is one arbitrary pick among equals.
/// Queries with no exact hit (nothing live, or an unusable query) are left
/// out; with none left the recall is 1 (nothing could be missed).
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
        let exact_ids: HashSet<ChunkId> = exact.iter().map(|&(id, _)| id).collect();
        let kth = exact.last().map_or(f32::INFINITY, |&(_, s)| s);
        let found = index
            .search(query, k, is_live)
            .into_iter()
            .filter(|&(id, s)| exact_ids.contains(&id) || s >= kth - TIE_TOLERANCE)
            .count()
            .min(exact.len());
        sum += found as f64 / exact.len() as f64;
        counted += 1;
    }
    if counted == 0 {
        1.0
    } else {
        sum / counted as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sift_core::HnswConfig;

    /// A unit vector of `dim` entries pointing mostly along axis `i % dim`.
    fn unit(i: usize, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim)
            .map(|j| ((i * 31 + j * 17) % 13) as f32 / 100.0)
            .collect();
        v[i % dim] += 1.0;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    #[test]
    fn duplicates_tied_with_the_kth_neighbour_count_as_found() {
        let dim = 16;
        let mut index = VectorIndex::new(dim, &HnswConfig::default(), 1000);
        // 600 copies of one vector among 400 distinct ones: the exact top 10
        // for it is 10 of the 600, an arbitrary pick the graph need not make.
        let copies = unit(0, dim);
        let points: Vec<(ChunkId, Vec<f32>)> = (0..1000u64)
            .map(|i| {
                let v = if i % 5 < 3 {
                    copies.clone()
                } else {
                    unit(i as usize, dim)
                };
                (ChunkId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)), v)
            })
            .collect();
        index.insert(&points).unwrap();
        let recall = recall_at_k(&index, &[copies], 10, &|_| true);
        assert_eq!(recall, 1.0);
    }
}
