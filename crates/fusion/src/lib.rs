//! Reciprocal rank fusion of the lexical and dense candidate lists.
//!
//! Each list contributes `1 / (k + rank)` for every chunk it ranked (ranks
//! from 1), so a chunk ranked well by both retrievers beats one ranked first
//! by only one of them, and raw scores on different scales (BM25 vs cosine)
//! never have to be compared. Cormack, Clarke & Büttcher, SIGIR 2009.
//!
//! ```
//! use sift_core::ChunkId;
//! use sift_fusion::reciprocal_rank_fusion;
//! let bm25 = [(ChunkId(1), 12.0), (ChunkId(2), 9.5)];
//! let dense = [(ChunkId(2), 0.81), (ChunkId(3), 0.77)];
//! let fused = reciprocal_rank_fusion(&bm25, &dense, 60.0, 10);
//! // Chunk 2 is in both lists, so it comes first.
//! assert_eq!(fused[0].chunk_id, ChunkId(2));
//! assert_eq!(fused[0].scores.bm25.unwrap().rank, 2);
//! assert_eq!(fused[0].scores.dense.unwrap().rank, 1);
//! assert_eq!(fused.len(), 3);
//! ```

use sift_core::{ChunkId, RankedScore, Scores};
use std::collections::HashMap;

/// A fused candidate: its chunk id and its provenance so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused {
    pub chunk_id: ChunkId,
    pub scores: Scores,
}

impl Fused {
    /// The better of the chunk's ranks in the two lists.
    fn best_rank(&self) -> u32 {
        let rank = |s: Option<RankedScore>| s.map_or(u32::MAX, |s| s.rank);
        rank(self.scores.bm25).min(rank(self.scores.dense))
    }
}

/// Fuse two ranked lists (best first) and keep the top `depth`.
///
/// Ties in fused score are broken by the better single-list rank, then by
/// chunk id, so the result never depends on hash-map order.
pub fn reciprocal_rank_fusion(
    bm25: &[(ChunkId, f32)],
    dense: &[(ChunkId, f32)],
    rrf_k: f32,
    depth: usize,
) -> Vec<Fused> {
    let mut by_id: HashMap<ChunkId, Fused> = HashMap::with_capacity(bm25.len() + dense.len());
    let mut contribute =
        |list: &[(ChunkId, f32)], field: fn(&mut Scores) -> &mut Option<RankedScore>| {
            for (index, &(chunk_id, score)) in list.iter().enumerate() {
                let rank = index as u32 + 1;
                let entry = by_id.entry(chunk_id).or_insert_with(|| Fused {
                    chunk_id,
                    scores: Scores::default(),
                });
                let slot = field(&mut entry.scores);
                // A retriever lists a chunk once; if it repeats one, its best rank counts.
                if slot.is_none() {
                    *slot = Some(RankedScore { rank, score });
                    *entry.scores.fused.get_or_insert(0.0) += 1.0 / (rrf_k + rank as f32);
                }
            }
        };
    contribute(bm25, |s| &mut s.bm25);
    contribute(dense, |s| &mut s.dense);
    let mut fused: Vec<Fused> = by_id.into_values().collect();
    fused.sort_by(|a, b| {
        let (fa, fb) = (a.scores.fused.unwrap_or(0.0), b.scores.fused.unwrap_or(0.0));
        fb.total_cmp(&fa)
            .then(a.best_rank().cmp(&b.best_rank()))
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    fused.truncate(depth);
    for (rank, f) in fused.iter_mut().enumerate() {
        f.scores.stage1_rank = Some(rank as u32 + 1);
    }
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[Fused]) -> Vec<u64> {
        list.iter().map(|f| f.chunk_id.0).collect()
    }

    #[test]
    fn scores_follow_the_formula() {
        let fused = reciprocal_rank_fusion(&[(ChunkId(7), 3.0)], &[(ChunkId(7), 0.5)], 60.0, 5);
        assert_eq!(fused.len(), 1);
        let expected = 2.0 / 61.0;
        assert!((fused[0].scores.fused.unwrap() - expected).abs() < 1e-7);
    }

    #[test]
    fn ties_are_deterministic() {
        // 10 is first in BM25, 20 first in dense: equal fused scores and
        // equal best ranks, so the smaller chunk id wins, whatever the order.
        let a = reciprocal_rank_fusion(&[(ChunkId(20), 1.0)], &[(ChunkId(10), 1.0)], 60.0, 5);
        let b = reciprocal_rank_fusion(&[(ChunkId(10), 1.0)], &[(ChunkId(20), 1.0)], 60.0, 5);
        assert_eq!(ids(&a), vec![10, 20]);
        assert_eq!(ids(&b), vec![10, 20]);
    }

    #[test]
    fn depth_truncates_and_provenance_is_kept() {
        let bm25: Vec<_> = (0..30).map(|i| (ChunkId(i), 30.0 - i as f32)).collect();
        let dense: Vec<_> = (20..50)
            .map(|i| (ChunkId(i), 1.0 - i as f32 / 100.0))
            .collect();
        let fused = reciprocal_rank_fusion(&bm25, &dense, 60.0, 25);
        assert_eq!(fused.len(), 25);
        let first = &fused[0];
        assert!(
            first.scores.bm25.is_some() && first.scores.dense.is_some(),
            "{first:?}"
        );
        for w in fused.windows(2) {
            assert!(w[0].scores.fused >= w[1].scores.fused);
        }
        let only_dense = reciprocal_rank_fusion(&[], &dense, 60.0, 50);
        assert!(only_dense.iter().all(|f| f.scores.bm25.is_none()));
        assert_eq!(ids(&only_dense)[..3], [20, 21, 22]);
    }

    #[test]
    fn a_small_constant_favours_top_ranks() {
        // k = 0: rank 1 in a single list scores 1.0, rank 3 in both lists
        // only 1/3 + 1/3; with k = 60 the chunk found by both would win.
        let fused = reciprocal_rank_fusion(
            &[(ChunkId(1), 9.0), (ChunkId(9), 8.0), (ChunkId(3), 7.0)],
            &[(ChunkId(2), 9.0), (ChunkId(8), 8.0), (ChunkId(3), 7.0)],
            0.0,
            10,
        );
        assert_eq!(ids(&fused)[..2], [1, 2]);
        assert!(ids(&fused).iter().position(|&i| i == 3).unwrap() > 1);
    }
}
