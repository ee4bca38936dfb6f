use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Free-form document metadata (source, date, tags…), kept with every chunk.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// A document as given to the engine, before chunking.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Caller-chosen identifier; re-indexing the same id replaces the document.
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

impl Document {
    pub fn new(id: impl Into<String>, title: impl Into<String>, text: impl Into<String>) -> Self {
        Document {
            id: id.into(),
            title: title.into(),
            text: text.into(),
            metadata: Metadata::new(),
        }
    }
}

/// Stable 64-bit identifier of a chunk.
///
/// It is a hash of the document id, the chunk's ordinal and the chunk's text,
/// so it survives re-opening and re-indexing (unlike tantivy's `DocAddress`),
/// and a chunk whose text changed gets a new id: the vector index can never
/// serve a stale embedding under a live id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkId(pub u64);

impl ChunkId {
    pub fn derive(doc_id: &str, ordinal: u32, text: &str) -> Self {
        use xxhash_rust::xxh3::Xxh3;
        let mut hasher = Xxh3::new();
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hasher.update(&(doc_id.len() as u64).to_le_bytes());
        hasher.update(doc_id.as_bytes());
        hasher.update(&ordinal.to_le_bytes());
        hasher.update(text.as_bytes());
        ChunkId(hasher.digest())
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A passage of a document: the unit that is indexed, retrieved and reranked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub id: ChunkId,
    pub doc_id: String,
    /// Position of this chunk within its document, from 0.
    pub ordinal: u32,
    /// Title of the document the chunk belongs to.
    pub title: String,
    pub text: String,
    /// Character offsets (Unicode scalar values, end exclusive) of `text` in
    /// the document's text, so an answer can cite its source exactly.
    pub char_start: usize,
    pub char_end: usize,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

impl Chunk {
    /// The text the bi-encoder embeds and the cross-encoder reads:
    /// the document title, then the chunk.
    pub fn passage(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{} {}", self.title, self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ids_are_stable_and_content_sensitive() {
        let a = ChunkId::derive("doc", 0, "hello");
        assert_eq!(a, ChunkId::derive("doc", 0, "hello"));
        assert_ne!(a, ChunkId::derive("doc", 1, "hello"));
        assert_ne!(a, ChunkId::derive("doc", 0, "hello!"));
        assert_ne!(ChunkId::derive("ab", 0, "c"), ChunkId::derive("a", 0, "bc"));
        // Pinned: a change of hash function would silently orphan every index.
        assert_eq!(format!("{a}").len(), 16);
    }
}
