use crate::rescore::Rescored;
use crate::Chunk;
use serde::{Deserialize, Serialize};

/// A score with the rank (from 1) it earned in one retriever's list.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedScore {
    pub rank: u32,
    pub score: f32,
}

/// Every score a candidate collected on its way through the pipeline.
///
/// `None` means the stage did not see the candidate (e.g. a chunk found only
/// by BM25 has no dense score) or did not run (no reranker).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// BM25 rank and score.
    pub bm25: Option<RankedScore>,
    /// Dense rank and cosine similarity.
    pub dense: Option<RankedScore>,
    /// Reciprocal-rank-fusion score.
    pub fused: Option<f32>,
    /// Rank (from 1) in the fused stage-1 list: where the hit stood before
    /// stage 2 moved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage1_rank: Option<u32>,
    /// Stage-2 score; only meaningful for sorting within one query. The
    /// cross-encoder's raw logit, the LLM's P("yes") in 0..1, or for
    /// listwise `1 / rank` in the model's order.
    pub rerank: Option<f32>,
    /// The stage-2 order mixed with the stage-1 order by rank, when the
    /// reranker runs with a stage-1 weight (`sift_rerank::blend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blended: Option<f32>,
    /// The rescoring rules' base, factors and score, when rules ran
    /// ([`crate::rescore`]); the hits are then in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore: Option<Rescored>,
}

impl Scores {
    /// The score the candidate is currently ordered by: the latest stage's.
    pub fn final_score(&self) -> f32 {
        self.rescore
            .as_ref()
            .map(|r| r.score)
            .or(self.blended)
            .or(self.rerank)
            .or(self.fused)
            .or(self.dense.map(|s| s.score))
            .or(self.bm25.map(|s| s.score))
            .unwrap_or(f32::NEG_INFINITY)
    }
}

/// A retrieved chunk together with its provenance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub chunk: Chunk,
    pub scores: Scores,
}
