use std::path::PathBuf;

/// Errors of the evaluation crate: reading and writing BEIR / TREC files,
/// and parsing metric names.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of an input file could not be parsed; `line` counts from 1.
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("missing file: {0}")]
    MissingFile(PathBuf),
    #[error("invalid metric {name:?}: {message}")]
    InvalidMetric { name: String, message: String },
    /// A run cannot be written in TREC format (e.g. an id with whitespace).
    #[error("invalid run: {0}")]
    InvalidRun(String),
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

    pub(crate) fn malformed(
        path: impl Into<PathBuf>,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        Error::Malformed {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
