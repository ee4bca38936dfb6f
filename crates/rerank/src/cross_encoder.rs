use crate::{RerankQuery, Reranker, Result};
use sift_bert::CrossEncoder;
use sift_core::Candidate;

/// The cross-encoder reranker: reads `title + chunk` with the query.
pub struct CrossEncoderReranker {
    model: CrossEncoder,
    /// The configured model this one stands in for, when it is a fallback.
    stands_in_for: Option<String>,
}

impl CrossEncoderReranker {
    pub fn new(model: CrossEncoder) -> Self {
        CrossEncoderReranker {
            model,
            stands_in_for: None,
        }
    }

    /// A fallback for `configured`, which could not be had; its description
    /// says so, so that every response shows which model really ranked.
    pub fn fallback_for(model: CrossEncoder, configured: impl Into<String>) -> Self {
        CrossEncoderReranker {
            model,
            stands_in_for: Some(configured.into()),
        }
    }
}

impl Reranker for CrossEncoderReranker {
    fn describe(&self) -> String {
        let origin = self.model.origin();
        let trained = self.model.trained_with();
        let model = match trained.and_then(|t| t.stage1_weight) {
            Some(w) => format!("cross-encoder {origin} (trained; its stage-1 weight {w})"),
            None => format!("cross-encoder {origin}"),
        };
        let model = match trained.and_then(|t| t.data_terms.as_deref()) {
            Some(terms) => format!("{model}, trained on {terms}"),
            None => model,
        };
        match &self.stands_in_for {
            Some(configured) => format!("{model}, the fallback for {configured}"),
            None => model,
        }
    }

    fn score(&self, query: &RerankQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        let passages: Vec<String> = candidates.iter().map(|c| c.chunk.passage()).collect();
        Ok(self.model.score(query.text, &passages)?)
    }

    fn stage1_weight(&self) -> f32 {
        self.model
            .trained_with()
            .and_then(|t| t.stage1_weight)
            .unwrap_or(0.0)
    }
}
