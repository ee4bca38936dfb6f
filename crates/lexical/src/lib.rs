//! The system of record of sift and its BM25 retriever, on tantivy.
//!
//! Every [`Chunk`](sift_core::Chunk) is one tantivy document holding its
//! text, title, offsets, metadata and embedding, so chunks, vectors and the
//! BM25 index move together in one atomic commit. The vector index elsewhere
//! is (re)built from [`LexicalIndex::for_each_vector`] and filtered with
//! [`LexicalIndex::live_chunk_ids`].

mod analysis;
mod error;
mod index;
mod schema;

pub use analysis::{analyze, ScriptTokenizer};
pub use error::{Error, Result};
pub use index::{Bm25Stats, LexicalIndex};
