use std::path::PathBuf;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] sift_core::Error),
    #[error(transparent)]
    Model(#[from] sift_bert::Error),
    #[error(transparent)]
    Lexical(#[from] sift_lexical::Error),
    #[error(transparent)]
    Vector(#[from] sift_vector::Error),
    #[error(transparent)]
    Rerank(#[from] sift_rerank::Error),
    #[error(transparent)]
    Corpus(#[from] sift_metrics::Error),
    #[error("the {kind} reranker is unavailable: {why}")]
    RerankerUnavailable {
        kind: sift_core::RerankerKind,
        why: String,
    },
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing to index at {0}: expected a folder of .txt/.md files or a .jsonl corpus")]
    UnsupportedSource(PathBuf),
    #[error("no index at {0}: build one with `sift index PATH --index {0}`")]
    NoIndex(PathBuf),
    #[error("the index at {path} is unusable: {message}")]
    IncompatibleIndex { path: PathBuf, message: String },
    /// Another process holds the index's writer lock (`sift-index.lock`).
    #[error(
        "the index {dir} is being written by another process ({holder}); wait for it or stop it"
    )]
    IndexBusy { dir: PathBuf, holder: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
