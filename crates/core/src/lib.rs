//! Shared vocabulary of the sift retrieval engine.
//!
//! Every other crate speaks in these types: a [`Document`] is split into
//! [`Chunk`]s, each identified by a stable [`ChunkId`]; retrieval produces
//! [`Candidate`]s that carry their [`Scores`] from every stage that saw them;
//! [`Config`] holds every setting, and [`StageTimings`] says where a query's
//! time went.

mod candidate;
mod config;
mod document;
mod error;
mod precision;
pub mod rescore;
mod timings;

pub use candidate::{Candidate, RankedScore, Scores};
pub use config::{
    validate_query, ChunkingConfig, Config, HnswConfig, IndexingConfig, LlmBackend, LlmConfig,
    ModelSource, ModelsConfig, RerankConfig, RerankerKind, SearchOptions, BUNDLED_RERANKER,
    DEFAULT_COMPACT_DEAD_RATIO, MAX_DEPTH, MAX_INSTRUCTION_CHARS, MAX_QUERY_CHARS,
    SCIFACT_RERANKER,
};
pub use document::{Chunk, ChunkId, Document, Metadata};
pub use error::{Error, Result};
pub use precision::Precision;
pub use timings::{Stage, StageTimings};
