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
    /// The id of a chunk outside any section (see [`derive_in_section`](Self::derive_in_section)).
    pub fn derive(doc_id: &str, ordinal: u32, text: &str) -> Self {
        Self::derive_in_section(doc_id, ordinal, &[], text)
    }

    /// The id of a chunk under a heading path. The path is part of what is
    /// embedded, so renaming a heading re-embeds its chunks; an empty path
    /// hashes as [`derive`](Self::derive) always did, so the ids of text
    /// without headings (a BEIR corpus) are those of earlier indexes.
    pub fn derive_in_section(doc_id: &str, ordinal: u32, section: &[String], text: &str) -> Self {
        use xxhash_rust::xxh3::Xxh3;
        let mut hasher = Xxh3::new();
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hasher.update(&(doc_id.len() as u64).to_le_bytes());
        hasher.update(doc_id.as_bytes());
        hasher.update(&ordinal.to_le_bytes());
        hasher.update(text.as_bytes());
        for heading in section {
            hasher.update(&(heading.len() as u64).to_le_bytes());
            hasher.update(heading.as_bytes());
        }
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
    /// The headings the chunk sits under, outermost first, without the
    /// document's title: `["Closing your account", "What happens to your
    /// data"]`. Empty for text without headings. Indexed and embedded with
    /// the chunk, and returned with it for citations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub section: Vec<String>,
    pub text: String,
    /// Character offsets (Unicode scalar values, end exclusive) of `text` in
    /// the document's text, so an answer can cite its source exactly.
    pub char_start: usize,
    pub char_end: usize,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

impl Chunk {
    /// The text the bi-encoder embeds, BM25 indexes and the cross-encoder
    /// reads: the document title and the heading path, then the chunk
    /// (`Title › Section › Subsection text…`). A chunk read without its
    /// headings loses what it is about ("Within 30 days" of what?).
    pub fn passage(&self) -> String {
        let mut passage = String::with_capacity(self.text.len() + 64);
        for part in std::iter::once(&self.title)
            .chain(&self.section)
            .filter(|p| !p.is_empty())
        {
            if !passage.is_empty() {
                passage.push_str(" › ");
            }
            passage.push_str(part);
        }
        if !passage.is_empty() && !self.text.is_empty() {
            passage.push(' ');
        }
        passage.push_str(&self.text);
        passage
    }

    /// The heading path for display: `Closing your account › What happens`.
    pub fn section_path(&self) -> String {
        self.section.join(" › ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passage_reads_title_then_headings_then_text() {
        let mut chunk = Chunk {
            id: ChunkId(0),
            doc_id: "d".into(),
            ordinal: 0,
            title: "Closing your account".into(),
            section: vec!["What happens to your data".into(), "Backups".into()],
            text: "Purged within 90 days.".into(),
            char_start: 0,
            char_end: 22,
            metadata: Metadata::new(),
        };
        assert_eq!(
            chunk.passage(),
            "Closing your account › What happens to your data › Backups Purged within 90 days."
        );
        assert_eq!(chunk.section_path(), "What happens to your data › Backups");
        chunk.section.clear();
        // Text without headings reads as it always did (title, space, text).
        assert_eq!(
            chunk.passage(),
            "Closing your account Purged within 90 days."
        );
        chunk.title.clear();
        assert_eq!(chunk.passage(), "Purged within 90 days.");
    }

    #[test]
    fn chunk_ids_are_stable_and_content_sensitive() {
        let a = ChunkId::derive("doc", 0, "hello");
        assert_eq!(a, ChunkId::derive("doc", 0, "hello"));
        assert_ne!(a, ChunkId::derive("doc", 1, "hello"));
        assert_ne!(a, ChunkId::derive("doc", 0, "hello!"));
        assert_ne!(ChunkId::derive("ab", 0, "c"), ChunkId::derive("a", 0, "bc"));
        // A heading path is part of the id, and no path is the plain id.
        let under = |path: &[&str]| {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            ChunkId::derive_in_section("doc", 0, &path, "hello")
        };
        assert_eq!(under(&[]), a);
        assert_ne!(under(&["Billing"]), a);
        assert_ne!(under(&["Billing", "Refunds"]), under(&["Billing Refunds"]));
        // Pinned: a change of hash function would silently orphan every index.
        assert_eq!(format!("{a}").len(), 16);
    }
}
