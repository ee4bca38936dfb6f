//! LLM listwise reranking (RankGPT): the model orders a window of
//! candidates at once; the window slides from the back of the list to the
//! front, so strong candidates bubble up.

use crate::prompt::Passage;
use crate::{RerankQuery, Reranker, Result};
use sift_core::Candidate;
use sift_llm::LanguageModel;
use std::sync::Arc;

/// What a ranking answer is written with; the in-process model decodes
/// within it (see [`LanguageModel::complete_in`]).
const ANSWER_ALPHABET: &str = "0123456789[]>, ";

/// Orders candidates by sliding windows of a language model's rankings;
/// greedy decoding and [`parse_permutation`] make the order deterministic.
/// Each candidate's score is `1 / rank` in the final order.
pub struct ListwiseReranker {
    model: Arc<dyn LanguageModel>,
    window: usize,
    step: usize,
    max_passage_chars: usize,
}

impl ListwiseReranker {
    /// `window` candidates per call (at least 2), moved `step` (1..window)
    /// towards the front each time.
    pub fn new(
        model: Arc<dyn LanguageModel>,
        window: usize,
        step: usize,
        max_passage_chars: usize,
    ) -> Self {
        let window = window.max(2);
        ListwiseReranker {
            model,
            window,
            step: step.clamp(1, window - 1),
            max_passage_chars,
        }
    }

    /// The prompt for one window.
    pub fn prompt(&self, query: &RerankQuery<'_>, window: &[Candidate]) -> String {
        let n = window.len();
        let mut s = String::new();
        s.push_str(&format!(
            "Rank the {n} documents below by how well they answer the search query.\n"
        ));
        s.push_str(&format!("Search query: {}\n", query.text));
        if let Some(instruction) = query.instruction {
            s.push_str(&format!("Searcher's instruction: {instruction}\n"));
        }
        s.push('\n');
        for (i, c) in window.iter().enumerate() {
            let p = Passage::of(c, self.max_passage_chars);
            s.push_str(&format!("[{}] ", i + 1));
            if !p.title.is_empty() {
                s.push_str(p.title);
                s.push_str(". ");
            }
            if let Some(date) = p.date {
                s.push_str(&format!("(Date: {date}) "));
            }
            s.push_str(&p.text);
            s.push('\n');
        }
        s.push_str(&format!(
            "\nSearch query: {}\nThe {n} documents ranked from most to least relevant, by number: [",
            query.text
        ));
        s
    }

    /// Tokens to let the model write for `n` ids: "12] > [" is about 4
    /// (digits are single tokens in Gemma's vocabulary).
    fn max_tokens(n: usize) -> usize {
        4 * n + 2
    }
}

impl Reranker for ListwiseReranker {
    fn describe(&self) -> String {
        format!(
            "listwise (window {}, step {}) {}",
            self.window,
            self.step,
            self.model.describe()
        )
    }

    fn follows_instructions(&self) -> bool {
        true
    }

    fn score(&self, query: &RerankQuery<'_>, candidates: &[Candidate]) -> Result<Vec<f32>> {
        let n = candidates.len();
        // order[i] = index into `candidates` of the i-th best so far.
        let mut order: Vec<usize> = (0..n).collect();
        if n > 1 {
            let mut end = n;
            loop {
                let start = end.saturating_sub(self.window);
                let window: Vec<Candidate> = order[start..end]
                    .iter()
                    .map(|&i| candidates[i].clone())
                    .collect();
                let prompt = self.prompt(query, &window);
                let answer = self.model.complete_in(
                    &prompt,
                    Self::max_tokens(window.len()),
                    ANSWER_ALPHABET,
                    query.deadline,
                )?;
                // The prompt ends with "[", so the answer starts mid-id.
                let permutation = parse_permutation(&format!("[{answer}"), window.len());
                tracing::debug!(start, end, answer = %answer.trim(), ?permutation, "listwise window");
                let reordered: Vec<usize> = permutation.iter().map(|&p| order[start + p]).collect();
                order[start..end].copy_from_slice(&reordered);
                if start == 0 {
                    break;
                }
                end -= self.step;
            }
        }
        let mut scores = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            scores[i] = 1.0 / (rank + 1) as f32;
        }
        Ok(scores)
    }
}

/// A model's ranking of `n` items ("[2] > [3] > [1]", "2, 3, 1", …) as a
/// permutation of `0..n`: numbers are read in order; ones outside `1..=n`
/// (invented) and repeats are dropped; items never named keep their input
/// order after those named. Never fails.
pub fn parse_permutation(text: &str, n: usize) -> Vec<usize> {
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            // Over-long digit runs do not parse: treated as invented.
            if let Ok(id) = digits.parse::<usize>() {
                if (1..=n).contains(&id) && !seen[id - 1] {
                    seen[id - 1] = true;
                    order.push(id - 1);
                }
            }
            digits.clear();
        }
    }
    order.extend((0..n).filter(|&i| !seen[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_repaired() {
        assert_eq!(parse_permutation("[2] > [3] > [1]", 3), vec![1, 2, 0]);
        // Missing ids follow in input order.
        assert_eq!(parse_permutation("[3]", 4), vec![2, 0, 1, 3]);
        // Repeats and invented ids are dropped.
        assert_eq!(
            parse_permutation("[2] > [2] > [9] > [0] > [1]", 3),
            vec![1, 0, 2]
        );
        // Garbage, empty, huge numbers.
        assert_eq!(parse_permutation("I think so!", 2), vec![0, 1]);
        assert_eq!(parse_permutation("", 0), Vec::<usize>::new());
        assert_eq!(
            parse_permutation("99999999999999999999999 1", 2),
            vec![0, 1]
        );
        assert_eq!(parse_permutation("10, 1", 10)[..2], [9, 0]);
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use sift_core::{Chunk, ChunkId, Scores};
    use std::sync::Mutex;
    use std::time::Instant;

    /// Ranks a window by the relevance written in each passage ("rel N"),
    /// optionally answering with garbage; records the windows it saw.
    struct Oracle {
        garbage: bool,
        windows: Mutex<Vec<usize>>,
    }

    impl LanguageModel for Oracle {
        fn describe(&self) -> String {
            "oracle".into()
        }
        fn next_token_logprobs(
            &self,
            _: &[String],
            _: &[&str],
            _: Option<Instant>,
        ) -> sift_llm::Result<Vec<Vec<Option<f32>>>> {
            unreachable!("listwise only completes")
        }
        fn complete(&self, prompt: &str, _: usize, _: Option<Instant>) -> sift_llm::Result<String> {
            let rels: Vec<(usize, u32)> = prompt
                .lines()
                .filter_map(|l| {
                    let id = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
                    let rel = l
                        .split("rel ")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()?;
                    Some((id, rel))
                })
                .collect();
            self.windows.lock().unwrap().push(rels.len());
            if self.garbage {
                return Ok("7] > [7] > banana [0] > [3".into());
            }
            let mut sorted = rels.clone();
            sorted.sort_by_key(|x| std::cmp::Reverse(x.1));
            let ids: Vec<String> = sorted.iter().map(|(id, _)| format!("[{id}]")).collect();
            // The prompt already opened the first bracket.
            Ok(ids.join(" > ")[1..].to_string())
        }
    }

    fn candidates(rels: &[u32]) -> Vec<Candidate> {
        rels.iter()
            .enumerate()
            .map(|(i, rel)| Candidate {
                chunk: Chunk {
                    id: ChunkId(i as u64),
                    doc_id: format!("d{i}"),
                    ordinal: 0,
                    title: String::new(),
                    section: Vec::new(),
                    text: format!("passage rel {rel}"),
                    char_start: 0,
                    char_end: 0,
                    metadata: Default::default(),
                },
                scores: Scores::default(),
            })
            .collect()
    }

    #[test]
    fn sliding_windows_bubble_the_best_to_the_front() {
        let oracle = Arc::new(Oracle {
            garbage: false,
            windows: Mutex::new(Vec::new()),
        });
        let reranker = ListwiseReranker::new(oracle.clone(), 4, 2, 200);
        // The two best sit at the back of the stage-1 order.
        let c = candidates(&[1, 3, 2, 0, 5, 4, 9, 8]);
        let top = crate::rerank(&reranker, &RerankQuery::new("q"), c, 3).unwrap();
        let ids: Vec<u64> = top.iter().map(|c| c.chunk.id.0).collect();
        // Windows of 4 moving by 2 guarantee the top 2 (window - step):
        // rel 9 and 8 reach the front; rel 5 was left behind in the second
        // window, so rel 3 is third (RankGPT's known trade-off).
        assert_eq!(ids, vec![6, 7, 1]);
        // Windows [4..8], [2..6], [0..4]: back to front.
        assert_eq!(*oracle.windows.lock().unwrap(), vec![4, 4, 4]);
        assert_eq!(top[0].scores.rerank, Some(1.0));
    }

    #[test]
    fn garbage_answers_keep_a_valid_deterministic_order() {
        let oracle = Arc::new(Oracle {
            garbage: true,
            windows: Mutex::new(Vec::new()),
        });
        let reranker = ListwiseReranker::new(oracle, 3, 1, 200);
        let run = || {
            crate::rerank(
                &reranker,
                &RerankQuery::new("q"),
                candidates(&[0, 1, 2, 3, 4]),
                5,
            )
            .unwrap()
            .iter()
            .map(|c| c.chunk.id.0)
            .collect::<Vec<_>>()
        };
        let first = run();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1, 2, 3, 4],
            "a permutation: nothing lost or doubled"
        );
        assert_eq!(first, run());
    }
}
