//! LLM pointwise reranking: one prompt per candidate, scored by the model's
//! probability that the next token says the candidate is relevant.

use crate::prompt::Passage;
use crate::{RerankQuery, Reranker, Result};
use sift_core::Candidate;
use sift_llm::LanguageModel;
use std::sync::Arc;

/// Next-token spellings that count as "yes" and as "no".
const YES: [&str; 2] = [" yes", " Yes"];
const NO: [&str; 2] = [" no", " No"];

/// Scores each candidate by P(yes) = softmax over the "yes" and "no"
/// next-token logits after a relevance question, in 0..1. Never parses
/// generated text (except as the documented fallback of an endpoint
/// without `logprobs`, see [`sift_llm::HttpModel`]).
pub struct LlmPointwiseReranker {
    model: Arc<dyn LanguageModel>,
    max_passage_chars: usize,
}

impl LlmPointwiseReranker {
    pub fn new(model: Arc<dyn LanguageModel>, max_passage_chars: usize) -> Self {
        LlmPointwiseReranker {
            model,
            max_passage_chars,
        }
    }

    /// The prompt for one candidate.
    pub fn prompt(&self, query: &RerankQuery<'_>, candidate: &Candidate) -> String {
        pointwise_prompt(query, &Passage::of(candidate, self.max_passage_chars))
    }
}

pub(crate) fn pointwise_prompt(query: &RerankQuery<'_>, p: &Passage<'_>) -> String {
    let mut s = String::new();
    s.push_str("Document\n");
    if !p.title.is_empty() {
        s.push_str(&format!("Title: {}\n", p.title));
    }
    if let Some(date) = p.date {
        s.push_str(&format!("Date: {date}\n"));
    }
    s.push_str(&format!("Source: {}\n", p.source));
    s.push_str(&format!("Text: {}\n\n", p.text));
    s.push_str(&format!("Search query: {}\n", query.text));
    if let Some(instruction) = query.instruction {
        s.push_str(&format!("Searcher's instruction: {instruction}\n"));
    }
    s.push_str("Question: Does this document answer the search query");
    if query.instruction.is_some() {
        s.push_str(" and follow the searcher's instruction");
    }
    s.push_str("? Answer yes or no.\nAnswer:");
    s
}

/// P(yes) from the log-probabilities of the yes and no spellings.
pub(crate) fn yes_probability(logprobs: &[Option<f32>]) -> f32 {
    let lse = |xs: &[Option<f32>]| {
        let known: Vec<f32> = xs.iter().flatten().copied().collect();
        if known.is_empty() {
            return f32::NEG_INFINITY;
        }
        let m = known.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        m + known.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
    };
    let (yes, no) = (lse(&logprobs[..YES.len()]), lse(&logprobs[YES.len()..]));
    match (yes.is_finite(), no.is_finite()) {
        (false, false) => 0.5,
        (true, false) => 1.0,
        (false, true) => 0.0,
        (true, true) => 1.0 / (1.0 + (no - yes).exp()),
    }
}

impl Reranker for LlmPointwiseReranker {
    fn describe(&self) -> String {
        format!("llm pointwise {}", self.model.describe())
    }

    fn follows_instructions(&self) -> bool {
        true
    }

    fn score(&self, query: &RerankQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        let prompts: Vec<String> = candidates.iter().map(|c| self.prompt(query, c)).collect();
        let choices: Vec<&str> = YES.iter().chain(NO.iter()).copied().collect();
        let logprobs = self
            .model
            .next_token_logprobs(&prompts, &choices, query.deadline)?;
        Ok(logprobs.iter().map(|lp| yes_probability(lp)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sift_core::{Chunk, ChunkId, Scores};

    #[test]
    fn the_prompt_shows_metadata_and_the_instruction() {
        let mut chunk = Chunk {
            id: ChunkId(1),
            doc_id: "security/2fa.md".into(),
            ordinal: 0,
            title: "Set up 2FA".into(),
            section: Vec::new(),
            text: "Use a   passkey.\nOr an app.".into(),
            char_start: 0,
            char_end: 0,
            metadata: Default::default(),
        };
        chunk.metadata.insert("date".into(), "2025-11-20".into());
        let c = Candidate {
            chunk,
            scores: Scores::default(),
        };
        let q = RerankQuery::new("how do I set up 2FA");
        let plain = pointwise_prompt(&q, &Passage::of(&c, 100));
        for line in [
            "Title: Set up 2FA",
            "Date: 2025-11-20",
            "Source: security/2fa.md",
            "Text: Use a passkey. Or an app.",
            "Search query: how do I set up 2FA",
        ] {
            assert!(plain.contains(line), "{line:?} in\n{plain}");
        }
        assert!(plain.ends_with("Answer:"), "the next token is the answer");
        assert!(!plain.contains("instruction"));
        let q = q.instruction(Some("prefer recent documents"));
        let told = pointwise_prompt(&q, &Passage::of(&c, 100));
        assert!(
            told.contains("Searcher's instruction: prefer recent documents"),
            "{told}"
        );
    }

    #[test]
    fn yes_probability_is_a_two_way_softmax() {
        let p = yes_probability(&[Some(-1.0), None, Some(-2.0), None]);
        assert!((p - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6, "{p}");
        // Both spellings of yes add up.
        let p2 = yes_probability(&[Some(-1.0), Some(-1.0), Some(-2.0), None]);
        assert!(p2 > p);
        assert_eq!(yes_probability(&[None, None, None, None]), 0.5);
        assert_eq!(yes_probability(&[Some(0.0), None, None, None]), 1.0);
        assert_eq!(yes_probability(&[None, None, Some(-0.1), None]), 0.0);
    }
}
