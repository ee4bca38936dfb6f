//! The dense retriever's index for sift: an HNSW graph ([hnsw_rs]) of
//! L2-normalised embeddings keyed by [`sift_core::ChunkId`].
//!
//! The graph is derived from the system of record (the lexical index stores
//! every live chunk with its vector), persisted beside it for fast opening
//! and repairable:
//!
//! - hnsw_rs cannot delete points, so dead chunks stay in the graph and every
//!   search filters them out with a caller-provided liveness predicate
//!   ([`VectorIndex::search`]); [`VectorIndex::contains`] tells which chunks
//!   still need inserting.
//! - [`VectorIndex::save`] is atomic and [`VectorIndex::load`] reports bad
//!   files as [`Error::Corrupt`] (never a panic), so the caller rebuilds.
//! - [`VectorIndex::exact_search`] and [`recall_at_k`] measure the graph
//!   against brute force.
//!
//! [hnsw_rs]: https://docs.rs/hnsw_rs

mod distance;
mod error;
mod graph;
mod index;
mod persist;
mod recall;

pub use error::{Error, Result};
pub use index::VectorIndex;
pub use recall::recall_at_k;
