//! Stage 2: reorder the fused candidates by a model that reads the query and
//! each candidate together, and keep the top `k`.
//!
//! [`Reranker`] is the one interface, with three implementations:
//!
//! * [`CrossEncoderReranker`]: a BERT cross-encoder's logit (the default);
//! * [`LlmPointwiseReranker`]: a language model's P("yes") for one prompt
//!   per candidate, which shows its metadata (title, date, source) and can
//!   carry an instruction such as "prefer recent documents";
//! * [`ListwiseReranker`]: the RankGPT scheme, a language model ordering
//!   sliding windows of candidates.
//!
//! The language models come from [`sift_llm`] (in process from a GGUF file,
//! or over HTTP from an OpenAI-compatible endpoint).

mod cross_encoder;
mod listwise;
mod llm;
mod prompt;

pub use cross_encoder::CrossEncoderReranker;
pub use listwise::{parse_permutation, ListwiseReranker};
pub use llm::LlmPointwiseReranker;

use sift_core::Candidate;
use std::time::{Duration, Instant};

/// Errors of reranking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] sift_bert::Error),
    #[error(transparent)]
    Llm(#[from] sift_llm::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a reranker is asked: the query, an optional instruction, and when
/// to give up.
#[derive(Clone, Copy, Debug)]
pub struct RerankQuery<'a> {
    pub text: &'a str,
    /// Read by rerankers that [follow instructions](Reranker::follows_instructions).
    pub instruction: Option<&'a str>,
    /// Past this instant a reranker stops with an error rather than go on.
    pub deadline: Option<Instant>,
    /// The weight of the stage-1 order in the final order (see [`blend`]);
    /// `None` takes the reranker's own [`Reranker::stage1_weight`].
    pub stage1_weight: Option<f32>,
}

impl<'a> RerankQuery<'a> {
    pub fn new(text: &'a str) -> Self {
        RerankQuery {
            text,
            instruction: None,
            deadline: None,
            stage1_weight: None,
        }
    }

    /// Override the reranker's [`Reranker::stage1_weight`].
    pub fn stage1_weight(mut self, weight: Option<f32>) -> Self {
        self.stage1_weight = weight;
        self
    }

    pub fn instruction(mut self, instruction: Option<&'a str>) -> Self {
        self.instruction = instruction.filter(|i| !i.trim().is_empty());
        self
    }

    /// Allow `budget` from now.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.deadline = Instant::now().checked_add(budget);
        self
    }
}

/// Scores candidates against a query.
pub trait Reranker: Send + Sync {
    /// What is reranking, for logs and for telling users which model ran.
    fn describe(&self) -> String;

    /// Whether [`RerankQuery::instruction`] is read (the cross-encoder
    /// cannot read one).
    fn follows_instructions(&self) -> bool {
        false
    }

    /// One score per candidate, in input order; higher is more relevant.
    fn score(&self, query: &RerankQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>>;

    /// How much of the stage-1 order to keep in the final order when the
    /// query does not say (see [`blend`]): 0 for a reranker trusted alone.
    /// A checkpoint from `sift train-reranker` carries the weight that did
    /// best on its validation queries.
    fn stage1_weight(&self) -> f32 {
        0.0
    }
}

/// The rank constant of [`blend`], as in reciprocal rank fusion.
pub const BLEND_RANK_CONSTANT: f32 = 60.0;

/// Mix the reranker's order with the stage-1 order, by rank:
/// `(1 - w) / (60 + rerank rank) + w / (60 + stage-1 rank)`, for candidates
/// given in stage-1 order with their rerank scores.
///
/// This is Elasticsearch's rescore `query_weight` / `rescore_query_weight`
/// and Vespa's second-phase expression over first-phase score, done on ranks
/// so that logits need no calibration. It keeps a reranker trained on a few
/// hundred queries from undoing what stage 1 got right. `w = 0` is the
/// reranker's order, `w = 1` the stage-1 order.
///
/// ```
/// // Stage 1 put a first; the reranker prefers b. Weighted enough, a stays first.
/// let mixed = sift_rerank::blend(&[0.1, 2.0], 0.7);
/// assert!(mixed[0] > mixed[1]);
/// assert!(sift_rerank::blend(&[0.1, 2.0], 0.0)[1] > sift_rerank::blend(&[0.1, 2.0], 0.0)[0]);
/// ```
pub fn blend(rerank_scores: &[f32], stage1_weight: f32) -> Vec<f32> {
    let w = stage1_weight.clamp(0.0, 1.0);
    let mut by_score: Vec<usize> = (0..rerank_scores.len()).collect();
    // Stable: equal scores keep the stage-1 order.
    by_score.sort_by(|&a, &b| rerank_scores[b].total_cmp(&rerank_scores[a]));
    let mut mixed = vec![0f32; rerank_scores.len()];
    for (rerank_rank, &i) in by_score.iter().enumerate() {
        mixed[i] = (1.0 - w) / (BLEND_RANK_CONSTANT + rerank_rank as f32 + 1.0)
            + w / (BLEND_RANK_CONSTANT + i as f32 + 1.0);
    }
    mixed
}

/// Score the candidates (given in stage-1 order), store each score in
/// `scores.rerank`, sort by it (ties keep the fused order, so the result is
/// deterministic) and keep `k`. With a stage-1 weight above 0 the order is
/// the [`blend`], stored in `scores.blended`.
pub fn rerank(
    reranker: &dyn Reranker,
    query: &RerankQuery<'_>,
    mut candidates: Vec<Candidate>,
    k: usize,
) -> Result<Vec<Candidate>> {
    let scores = reranker.score(query, &candidates)?;
    let weight = query
        .stage1_weight
        .unwrap_or_else(|| reranker.stage1_weight());
    let mixed = (weight > 0.0).then(|| blend(&scores, weight));
    for (i, (candidate, score)) in candidates.iter_mut().zip(scores).enumerate() {
        candidate.scores.rerank = Some(score);
        candidate.scores.blended = mixed.as_ref().map(|m| m[i]);
    }
    // A stable sort keeps the fused order among equal scores.
    candidates.sort_by(|a, b| b.scores.final_score().total_cmp(&a.scores.final_score()));
    candidates.truncate(k);
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sift_core::{Chunk, ChunkId, Scores};

    /// Scores by the number of query words the chunk contains.
    struct WordOverlap;
    impl Reranker for WordOverlap {
        fn describe(&self) -> String {
            "word overlap".into()
        }
        fn score(&self, query: &RerankQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
            Ok(candidates
                .iter()
                .map(|c| {
                    query
                        .text
                        .split_whitespace()
                        .filter(|w| c.chunk.text.contains(w))
                        .count() as f32
                })
                .collect())
        }
    }

    fn candidate(id: u64, text: &str, fused: f32) -> Candidate {
        let chunk = Chunk {
            id: ChunkId(id),
            doc_id: format!("d{id}"),
            ordinal: 0,
            title: String::new(),
            section: Vec::new(),
            text: text.into(),
            char_start: 0,
            char_end: text.chars().count(),
            metadata: Default::default(),
        };
        Candidate {
            chunk,
            scores: Scores {
                fused: Some(fused),
                ..Scores::default()
            },
        }
    }

    #[test]
    fn reorders_keeps_k_and_records_scores() {
        let candidates = vec![
            candidate(1, "closing an account", 0.9),
            candidate(2, "data is deleted when you close your account", 0.8),
            candidate(3, "billing", 0.7),
            candidate(4, "your data after you close", 0.6),
        ];
        let top = rerank(
            &WordOverlap,
            &RerankQuery::new("data close account"),
            candidates,
            2,
        )
        .unwrap();
        assert_eq!(
            top.iter().map(|c| c.chunk.id.0).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert_eq!(top[0].scores.rerank, Some(3.0));
        assert_eq!(top[0].scores.fused, Some(0.8), "fused provenance is kept");
    }

    #[test]
    fn a_stage1_weight_blends_the_orders() {
        let candidates = || {
            vec![
                candidate(1, "billing", 0.9),
                candidate(2, "close account data", 0.8),
                candidate(3, "close", 0.7),
            ]
        };
        let ids = |hits: Vec<Candidate>| hits.iter().map(|c| c.chunk.id.0).collect::<Vec<_>>();
        let query = RerankQuery::new("close account data");
        let alone = rerank(&WordOverlap, &query, candidates(), 3).unwrap();
        assert_eq!(ids(alone.clone()), vec![2, 3, 1]);
        assert!(alone.iter().all(|c| c.scores.blended.is_none()));
        // Weighted towards stage 1, its first stays first.
        let mixed = rerank(
            &WordOverlap,
            &query.stage1_weight(Some(0.8)),
            candidates(),
            3,
        )
        .unwrap();
        assert_eq!(ids(mixed.clone()), vec![1, 2, 3]);
        assert!(mixed[0].scores.blended.unwrap() > mixed[1].scores.blended.unwrap());
        assert_eq!(mixed[1].scores.rerank, Some(3.0), "the raw score is kept");
        let stage1 = rerank(
            &WordOverlap,
            &query.stage1_weight(Some(1.0)),
            candidates(),
            3,
        )
        .unwrap();
        assert_eq!(ids(stage1), vec![1, 2, 3]);
    }

    #[test]
    fn blend_is_rank_based_and_bounded() {
        // Only the order of the scores matters, not their scale.
        assert_eq!(blend(&[1.0, 5.0, 3.0], 0.4), blend(&[-9.0, 90.0, 0.0], 0.4));
        let pure = blend(&[1.0, 5.0, 3.0], 0.0);
        assert!(pure[1] > pure[2] && pure[2] > pure[0]);
        assert_eq!(blend(&[1.0, 5.0], 7.0), blend(&[1.0, 5.0], 1.0), "clamped");
    }

    #[test]
    fn equal_scores_keep_fused_order() {
        let candidates = vec![
            candidate(5, "x", 0.9),
            candidate(3, "x", 0.8),
            candidate(9, "x", 0.7),
        ];
        let top = rerank(&WordOverlap, &RerankQuery::new("x"), candidates, 3).unwrap();
        assert_eq!(
            top.iter().map(|c| c.chunk.id.0).collect::<Vec<_>>(),
            vec![5, 3, 9]
        );
    }
}
