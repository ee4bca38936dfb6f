//! From chunks to documents.
//!
//! The engine ranks chunks; qrels judge documents. A document takes the rank
//! of its best (first-ranked) chunk, and every depth and cutoff in the
//! evaluation counts distinct documents, never chunks.

use crate::Result;
use sift_core::ChunkId;
use sift_engine::Engine;
use std::collections::{HashMap, HashSet};

/// Collapse a ranked list of chunks, given as the document id of each chunk
/// in rank order, into a ranked list of documents: each document appears
/// once, at the rank of its best chunk. At most `limit` documents are kept.
///
/// ```
/// use sift_eval::collapse_to_documents;
/// let chunks = ["a", "b", "a", "c", "b", "d"];
/// assert_eq!(collapse_to_documents(chunks, 3), ["a", "b", "c"]);
/// ```
pub fn collapse_to_documents<'a>(
    chunk_docs: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    let mut docs = Vec::new();
    for doc in chunk_docs {
        if docs.len() == limit {
            break;
        }
        if seen.insert(doc) {
            docs.push(doc);
        }
    }
    docs
}

/// Length of the shortest prefix of a ranked chunk list that holds
/// `documents` distinct documents (the whole list when it holds fewer).
///
/// This is how a retriever's "top n documents" are cut from its chunk list:
/// every chunk in the prefix counts, including second chunks of documents
/// already seen, so fusion sees exactly what the retriever ranked above its
/// n-th document.
///
/// ```
/// use sift_eval::prefix_holding;
/// let chunks = ["a", "a", "b", "a", "c", "d"];
/// assert_eq!(prefix_holding(chunks, 2), 3);
/// assert_eq!(prefix_holding(chunks, 3), 5);
/// assert_eq!(prefix_holding(chunks, 9), 6);
/// assert_eq!(prefix_holding(chunks, 0), 0);
/// ```
pub fn prefix_holding<'a>(
    chunk_docs: impl IntoIterator<Item = &'a str>,
    documents: usize,
) -> usize {
    if documents == 0 {
        return 0;
    }
    let mut seen = HashSet::new();
    let mut len = 0;
    for doc in chunk_docs {
        len += 1;
        if seen.insert(doc) && seen.len() == documents {
            return len;
        }
    }
    len
}

/// Number of distinct documents among ranked chunks.
pub(crate) fn distinct_documents<'a>(chunk_docs: impl IntoIterator<Item = &'a str>) -> usize {
    chunk_docs.into_iter().collect::<HashSet<_>>().len()
}

/// Chunk id → document id, filled from the index as chunks are seen.
/// Chunk ids are stable, so the map is shared by every query of a run.
#[derive(Debug, Default)]
pub(crate) struct DocMap {
    docs: HashMap<ChunkId, String>,
}

impl DocMap {
    /// Look up every id not seen yet. Ids the index no longer holds stay
    /// unmapped, and [`DocMap::known`] drops them.
    pub fn resolve(
        &mut self,
        engine: &Engine,
        ids: impl IntoIterator<Item = ChunkId>,
    ) -> Result<()> {
        let missing: Vec<ChunkId> = ids
            .into_iter()
            .filter(|id| !self.docs.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (id, chunk) in missing.iter().zip(engine.chunks(&missing)?) {
            if let Some(chunk) = chunk {
                self.docs.insert(*id, chunk.doc_id);
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn insert(&mut self, id: ChunkId, doc: &str) {
        self.docs.insert(id, doc.to_owned());
    }

    pub fn doc(&self, id: ChunkId) -> Option<&str> {
        self.docs.get(&id).map(String::as_str)
    }

    /// The entries of a ranked list whose chunk is known, in order.
    pub fn known(&self, list: &[(ChunkId, f32)]) -> Vec<(ChunkId, f32)> {
        list.iter()
            .copied()
            .filter(|(id, _)| self.docs.contains_key(id))
            .collect()
    }

    /// Document ids of a ranked list of known chunks.
    pub fn docs_of<'a>(
        &'a self,
        ids: impl IntoIterator<Item = ChunkId> + 'a,
    ) -> impl Iterator<Item = &'a str> + 'a {
        ids.into_iter().filter_map(|id| self.doc(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_takes_the_rank_of_its_best_chunk() {
        // Chunks of d2 at ranks 1 and 4, d1 at 2, d3 at 3 and 5.
        let chunks = ["d2", "d1", "d3", "d2", "d3", "d4"];
        assert_eq!(collapse_to_documents(chunks, 10), ["d2", "d1", "d3", "d4"]);
    }

    #[test]
    fn depth_counts_distinct_documents() {
        // Ten chunks but only three documents: a depth of 3 documents needs
        // the first 6 chunks, and depth 5 cannot be reached.
        let chunks = ["a", "a", "b", "a", "b", "c", "c", "a", "b", "c"];
        assert_eq!(collapse_to_documents(chunks, 2), ["a", "b"]);
        assert_eq!(collapse_to_documents(chunks, 5), ["a", "b", "c"]);
        assert_eq!(prefix_holding(chunks, 1), 1);
        assert_eq!(prefix_holding(chunks, 2), 3);
        assert_eq!(prefix_holding(chunks, 3), 6);
        assert_eq!(prefix_holding(chunks, 5), 10);
        assert_eq!(distinct_documents(chunks), 3);
        // The prefix holding n documents collapses to exactly those n.
        let n = prefix_holding(chunks, 2);
        assert_eq!(
            collapse_to_documents(chunks[..n].iter().copied(), usize::MAX),
            ["a", "b"]
        );
    }

    #[test]
    fn empty_lists() {
        let none: [&str; 0] = [];
        assert!(collapse_to_documents(none, 5).is_empty());
        assert_eq!(prefix_holding(none, 5), 0);
        assert!(collapse_to_documents(["a"], 0).is_empty());
    }
}
