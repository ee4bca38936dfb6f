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
}

impl<'a> RerankQuery<'a> {
    pub fn new(text: &'a str) -> Self {
        RerankQuery {
            text,
            instruction: None,
            deadline: None,
        }
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
}

/// Score the candidates, store each score in `scores.rerank`, sort by it
/// (ties keep the fused order, so the result is deterministic) and keep `k`.
pub fn rerank(
    reranker: &dyn Reranker,
    query: &RerankQuery<'_>,
    mut candidates: Vec<Candidate>,
    k: usize,
) -> Result<Vec<Candidate>> {
    let scores = reranker.score(query, &candidates)?;
    for (candidate, score) in candidates.iter_mut().zip(scores) {
        candidate.scores.rerank = Some(score);
    }
    // A stable sort keeps the fused order among equal logits.
    candidates.sort_by(|a, b| {
        b.scores
            .rerank
            .unwrap_or(f32::MIN)
            .total_cmp(&a.scores.rerank.unwrap_or(f32::MIN))
    });
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
