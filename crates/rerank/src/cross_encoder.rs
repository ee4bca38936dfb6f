use crate::{RerankQuery, Reranker, Result};
use sift_bert::CrossEncoder;
use sift_core::Candidate;

/// The cross-encoder reranker: reads `title + chunk` with the query.
pub struct CrossEncoderReranker {
    model: CrossEncoder,
}

impl CrossEncoderReranker {
    pub fn new(model: CrossEncoder) -> Self {
        CrossEncoderReranker { model }
    }
}

impl Reranker for CrossEncoderReranker {
    fn describe(&self) -> String {
        let origin = self.model.origin();
        match self.model.trained_with().and_then(|t| t.stage1_weight) {
            Some(w) => format!("cross-encoder {origin} (trained; its stage-1 weight {w})"),
            None => format!("cross-encoder {origin}"),
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
