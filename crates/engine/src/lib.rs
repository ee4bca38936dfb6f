//! The sift engine: index documents, answer queries in two stages.
//!
//! ```text
//! query ─┬─ BM25 (tantivy) ───────────────┐
//!        └─ embed (bi-encoder) ─ HNSW ─────┴─ RRF ─ fetch ─ filter ─ cross-encoder ─ rescore ─ top k
//! ```
//!
//! [`Engine`] ties the layers together over one index directory; see its
//! documentation for an example.

mod chunker;
mod engine;
mod error;
pub mod ingest;
mod lock;

pub use chunker::Chunker;
pub use engine::{
    CompactionReport, Engine, EngineBuilder, FailedDocument, IndexProgress, IndexReport,
    IndexStats, Retrieval, SearchResponse, FILTER_POOL_FACTOR,
};
pub use error::{Error, Result};
pub use sift_lexical::Bm25Stats;
