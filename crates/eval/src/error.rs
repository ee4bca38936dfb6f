use std::path::PathBuf;

/// Errors of an evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] sift_engine::Error),
    #[error(transparent)]
    Metrics(#[from] sift_metrics::Error),
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the dataset {0} has no corpus.jsonl: name the corpus (a .jsonl file or a folder of .txt/.md files) with --corpus")]
    NoCorpus(PathBuf),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("the index at {path} is not the corpus' index: {message}; rebuild it with --reindex")]
    WrongIndex { path: PathBuf, message: String },
    #[error("cannot draw {path}: {message}")]
    Plot { path: PathBuf, message: String },
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
