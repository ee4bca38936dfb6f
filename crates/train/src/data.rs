//! Training examples from judgements and the engine's own stage 1.

use crate::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sift_core::{Chunk, SearchOptions};
use sift_engine::Engine;
use sift_eval::{Qrels, Query};
use std::collections::{BTreeMap, HashSet};

/// A passage the model reads, with the document it comes from.
#[derive(Clone, Debug)]
pub(crate) struct Passage {
    pub doc_id: String,
    pub text: String,
}

/// One query with its positives and a pool of hard negatives.
#[derive(Clone, Debug)]
pub(crate) struct Example {
    pub query: String,
    pub positives: Vec<Passage>,
    /// Stage-1 candidates of documents not judged relevant, best first,
    /// one chunk per document.
    pub negatives: Vec<Passage>,
}

/// A held-out query and the stage-1 chunks the reranker would be given.
#[derive(Clone, Debug)]
pub(crate) struct ValidationQuery {
    pub id: String,
    pub query: String,
    pub candidates: Vec<Passage>,
}

/// What mining found, for the report.
#[derive(Clone, Debug, Default, serde::Serialize)]
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

/// Weak examples from the corpus itself: a document's title is the query,
/// its first chunk *without the title* the positive, and stage-1 chunks of
/// other documents (also without titles, so the title cannot give the
/// answer away) the negatives. Documents are drawn with `seed`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mine_weak_examples(
    engine: &Engine,
    corpus_ids: &[String],
    exclude: &HashSet<String>,
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
    ids.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ 0x5eed_7173,
    ));
    let mut examples = Vec::new();
    for doc in ids {
        if examples.len() == count {
            break;
        }
        progress();
        let Some(first) = engine.document_chunks(doc)?.into_iter().next() else {
            continue;
        };
        // Titles of a few words say little; a query needs some substance.
        if first.title.split_whitespace().count() < 4 {
            continue;
        }
        let candidates = stage_one(engine, &first.title, depth)?;
        let negatives: Vec<Passage> = best_chunk_per_document(&candidates, |d| d != doc)
            .take(pool)
            .map(|c| passage(c, false))
            .collect();
        if negatives.is_empty() {
            continue;
        }
        examples.push(Example {
            query: first.title.clone(),
            positives: vec![passage(&first, false)],
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
) -> Result<Vec<ValidationQuery>> {
    queries
        .iter()
        .map(|q| {
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
    fn weak_passages_drop_the_title() {
        let c = chunk("a", 0);
        assert_eq!(passage(&c, true).text, "T a-0");
        assert_eq!(passage(&c, false).text, "a-0");
    }
}
