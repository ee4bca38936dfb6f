//! Training examples from judgements and the engine's own stage 1.

use crate::Result;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use sift_core::{Chunk, SearchOptions};
use sift_engine::Engine;
use sift_metrics::{Qrels, Query};
use std::collections::{BTreeMap, HashSet};
use unicode_segmentation::UnicodeSegmentation;

/// A passage the model reads, with the document it comes from.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Passage {
    pub doc_id: String,
    pub text: String,
}

/// One query with its positives and a pool of hard negatives.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Example {
    pub query: String,
    pub positives: Vec<Passage>,
    /// Stage-1 candidates of documents not judged relevant, best first,
    /// one chunk per document.
    pub negatives: Vec<Passage>,
}

/// A held-out query and the stage-1 chunks the reranker would be given.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ValidationQuery {
    pub id: String,
    pub query: String,
    pub candidates: Vec<Passage>,
}

/// What mining found, for the report.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MiningSummary {
    pub queries: usize,
    pub positives: usize,
    /// Relevant documents stage 1 did not return (their first chunk is the positive).
    pub positives_not_retrieved: usize,
    /// Relevant documents not in the index at all (skipped).
    pub positives_missing: usize,
    pub negatives: usize,
    pub weak_examples: usize,
}

impl MiningSummary {
    /// The counts of two sets together.
    pub(crate) fn plus(self, other: &MiningSummary) -> MiningSummary {
        MiningSummary {
            queries: self.queries + other.queries,
            positives: self.positives + other.positives,
            positives_not_retrieved: self.positives_not_retrieved + other.positives_not_retrieved,
            positives_missing: self.positives_missing + other.positives_missing,
            negatives: self.negatives + other.negatives,
            weak_examples: self.weak_examples + other.weak_examples,
        }
    }
}

fn relevant_docs(qrels: &Qrels, query_id: &str) -> BTreeMap<String, i32> {
    qrels
        .get(query_id)
        .map(|j| {
            j.iter()
                .filter(|(_, &g)| g >= 1)
                .map(|(d, &g)| (d.clone(), g))
                .collect()
        })
        .unwrap_or_default()
}

/// Stage-1 chunks for `query`, in fused order.
fn stage_one(engine: &Engine, query: &str, depth: usize) -> Result<Vec<Chunk>> {
    let options = SearchOptions::default().depth(depth).k(1).rerank(false);
    Ok(engine
        .retrieve(query, &options)?
        .candidates
        .into_iter()
        .map(|c| c.chunk)
        .collect())
}

/// Each query's relevant chunks (the best-ranked chunk of each relevant
/// document, or its first chunk when stage 1 missed it) and up to
/// `pool` hard negatives: the best chunk of each unjudged (or judged
/// non-relevant) document among the top `depth` stage-1 chunks.
pub(crate) fn mine_examples(
    engine: &Engine,
    queries: &[Query],
    qrels: &Qrels,
    depth: usize,
    pool: usize,
    summary: &mut MiningSummary,
    mut progress: impl FnMut(),
) -> Result<Vec<Example>> {
    let mut examples = Vec::with_capacity(queries.len());
    for q in queries {
        progress();
        let relevant = relevant_docs(qrels, &q.id);
        if relevant.is_empty() {
            continue;
        }
        let candidates = stage_one(engine, &q.text, depth)?;
        let mut positives = Vec::new();
        for doc in relevant.keys() {
            match candidates.iter().find(|c| &c.doc_id == doc) {
                Some(chunk) => positives.push(passage(chunk, true)),
                None => match engine.document_chunks(doc)?.first() {
                    Some(chunk) => {
                        summary.positives_not_retrieved += 1;
                        positives.push(passage(chunk, true));
                    }
                    None => summary.positives_missing += 1,
                },
            }
        }
        if positives.is_empty() {
            continue;
        }
        let negatives = best_chunk_per_document(&candidates, |doc| !relevant.contains_key(doc))
            .take(pool)
            .map(|c| passage(c, true))
            .collect::<Vec<_>>();
        if negatives.is_empty() {
            continue;
        }
        summary.positives += positives.len();
        summary.negatives += negatives.len();
        examples.push(Example {
            query: q.text.clone(),
            positives,
            negatives,
        });
    }
    summary.queries = examples.len();
    Ok(examples)
}

/// What a weak example asks with: text of a document standing in for a
/// judged query, so its own passage is the positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeakQuery {
    /// The document's title; the positive is its first chunk without the
    /// title, so the title cannot give the answer away.
    #[default]
    Title,
    /// One sentence of the first chunk (the inverse cloze task); the
    /// positive is the chunk without that sentence, so only its meaning,
    /// not its words, can be matched. Closer to claims and questions about
    /// a passage than a title is.
    Sentence,
}

impl std::str::FromStr for WeakQuery {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "title" => Ok(WeakQuery::Title),
            "sentence" => Ok(WeakQuery::Sentence),
            other => Err(format!(
                "unknown weak query kind {other:?}: title or sentence"
            )),
        }
    }
}

/// Sentences of a text (Unicode sentence boundaries), trimmed.
fn sentences(text: &str) -> Vec<&str> {
    text.split_sentence_bounds()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A (query, positive text) pair for the inverse cloze task: a sentence of
/// 6 to 60 words drawn with `rng`, and the text without it; `None` when
/// no sentence qualifies or nothing would be left.
fn cloze(text: &str, rng: &mut impl rand::Rng) -> Option<(String, String)> {
    let all = sentences(text);
    if all.len() < 2 {
        return None;
    }
    let usable: Vec<usize> = (0..all.len())
        .filter(|&i| (6..=60).contains(&all[i].split_whitespace().count()))
        .collect();
    let &pick = usable.choose(rng)?;
    let rest: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != pick)
        .map(|(_, s)| *s)
        .collect();
    Some((all[pick].to_owned(), rest.join(" ")))
}

/// Weak examples from the corpus itself (see [`WeakQuery`]), with stage-1
/// chunks of other documents as negatives. Documents are drawn with
/// `seed`; those in `exclude` are skipped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mine_weak_examples(
    engine: &Engine,
    corpus_ids: &[String],
    exclude: &HashSet<String>,
    kind: WeakQuery,
    count: usize,
    depth: usize,
    pool: usize,
    seed: u64,
    mut progress: impl FnMut(),
) -> Result<Vec<Example>> {
    let mut ids: Vec<&String> = corpus_ids
        .iter()
        .filter(|d| !exclude.contains(*d))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_7173);
    ids.shuffle(&mut rng);
    let mut examples = Vec::new();
    for doc in ids {
        if examples.len() == count {
            break;
        }
        progress();
        let Some(first) = engine.document_chunks(doc)?.into_iter().next() else {
            continue;
        };
        let (query, positive, negatives_with_title) = match kind {
            WeakQuery::Title => {
                // Titles of a few words say little; a query needs some substance.
                if first.title.split_whitespace().count() < 4 {
                    continue;
                }
                (first.title.clone(), passage(&first, false), false)
            }
            WeakQuery::Sentence => {
                let Some((sentence, rest)) = cloze(&first.text, &mut rng) else {
                    continue;
                };
                let rest = Chunk {
                    text: rest,
                    ..first.clone()
                };
                (sentence, passage(&rest, true), true)
            }
        };
        let candidates = stage_one(engine, &query, depth)?;
        let negatives: Vec<Passage> = best_chunk_per_document(&candidates, |d| d != doc)
            .take(pool)
            .map(|c| passage(c, negatives_with_title))
            .collect();
        if negatives.is_empty() {
            continue;
        }
        examples.push(Example {
            query,
            positives: vec![positive],
            negatives,
        });
    }
    Ok(examples)
}

/// Held-out queries with their top `depth` stage-1 chunks.
pub(crate) fn validation_queries(
    engine: &Engine,
    queries: &[Query],
    depth: usize,
    mut progress: impl FnMut(),
) -> Result<Vec<ValidationQuery>> {
    queries
        .iter()
        .map(|q| {
            progress();
            Ok(ValidationQuery {
                id: q.id.clone(),
                query: q.text.clone(),
                candidates: stage_one(engine, &q.text, depth)?
                    .iter()
                    .map(|c| passage(c, true))
                    .collect(),
            })
        })
        .collect()
}

fn best_chunk_per_document<'a>(
    candidates: &'a [Chunk],
    keep: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a Chunk> + 'a {
    let mut seen = HashSet::new();
    candidates
        .iter()
        .filter(move |c| keep(&c.doc_id) && seen.insert(c.doc_id.clone()))
}

/// The text the reranker reads: `title + chunk` as at query time, or the
/// bare chunk for weak examples.
fn passage(chunk: &Chunk, with_title: bool) -> Passage {
    Passage {
        doc_id: chunk.doc_id.clone(),
        text: if with_title {
            chunk.passage()
        } else {
            chunk.text.clone()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sift_core::{ChunkId, Metadata};

    fn chunk(doc: &str, ordinal: u32) -> Chunk {
        Chunk {
            id: ChunkId::derive(doc, ordinal, "t"),
            doc_id: doc.into(),
            ordinal,
            title: "T".into(),
            section: Vec::new(),
            text: format!("{doc}-{ordinal}"),
            char_start: 0,
            char_end: 1,
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn one_chunk_per_document_in_rank_order_without_excluded_documents() {
        let list = [
            chunk("a", 1),
            chunk("b", 0),
            chunk("a", 0),
            chunk("c", 2),
            chunk("b", 1),
        ];
        let kept: Vec<String> = best_chunk_per_document(&list, |d| d != "b")
            .map(|c| c.text.clone())
            .collect();
        assert_eq!(kept, ["a-1", "c-2"]);
    }

    #[test]
    fn a_cloze_query_is_one_sentence_taken_out_of_its_passage() {
        let text = "Short one. Vitamin D supplements did not change bone density in adults. \
                    Calcium intake was recorded by diary for two years. Done.";
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let (query, rest) = cloze(text, &mut rng).unwrap();
            let words = query.split_whitespace().count();
            assert!((6..=60).contains(&words), "{query}");
            assert!(
                text.contains(&query) && !rest.contains(&query),
                "{query} | {rest}"
            );
            assert!(rest.starts_with("Short one.") && rest.ends_with("Done."));
            seen.insert(query);
        }
        assert_eq!(seen.len(), 2, "both long sentences get drawn");
        assert!(cloze(
            "One sentence only, long enough to be a query here.",
            &mut rng
        )
        .is_none());
        assert!(cloze("Too. Short. All.", &mut rng).is_none());
    }

    #[test]
    fn weak_query_kinds_parse_by_name() {
        assert_eq!("title".parse(), Ok(WeakQuery::Title));
        assert_eq!("sentence".parse(), Ok(WeakQuery::Sentence));
        assert!("both".parse::<WeakQuery>().is_err());
    }

    #[test]
    fn weak_passages_drop_the_title() {
        let c = chunk("a", 0);
        assert_eq!(passage(&c, true).text, "T a-0");
        assert_eq!(passage(&c, false).text, "a-0");
    }
}
