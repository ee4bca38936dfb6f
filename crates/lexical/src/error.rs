use std::path::PathBuf;

/// Errors of the lexical index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `open` was pointed at a folder that holds no index.
    #[error("no lexical index in {path}")]
    Missing { path: PathBuf },
    /// An index is there but tantivy cannot open it, its schema is not the
    /// one this crate writes, or a stored chunk cannot be decoded.
    #[error("the lexical index in {path} is corrupt or incompatible: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// Another writer (usually another process) holds the index's writer lock.
    #[error(
        "the lexical index in {path} is locked by another writer \
         (is another sift process indexing?)"
    )]
    Locked { path: PathBuf },
    /// A file system operation of this crate failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other tantivy failure.
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

pub type Result<T> = std::result::Result<T, Error>;
