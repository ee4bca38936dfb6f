use sift_core::ChunkId;
use std::path::PathBuf;

/// Errors of the vector index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vector does not have the index's dimension.
    #[error("vector of chunk {id} has {got} dimensions, the index has {expected}")]
    Dimension {
        id: ChunkId,
        expected: usize,
        got: usize,
    },
    /// A vector has a NaN or infinite component.
    #[error("vector of chunk {id} has a non-finite component")]
    NonFinite { id: ChunkId },
    /// A vector is not L2-normalised (cosine similarity is computed as a dot
    /// product, which needs unit vectors).
    #[error("vector of chunk {id} is not unit length (norm {norm})")]
    NotNormalized { id: ChunkId, norm: f32 },
    /// Saved files exist but cannot be used: truncated, garbage, written by
    /// another format, or inconsistent with `vector-meta.json`. The graph is
    /// derived data: rebuild it from the system of record.
    #[error("vector index in {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("vector index I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Saving failed for a reason other than plain I/O (e.g. hnsw_rs's dump).
    #[error("cannot save vector index to {path}: {reason}")]
    Save { path: PathBuf, reason: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
