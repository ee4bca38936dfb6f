use std::path::PathBuf;

/// Errors of training a reranker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] sift_engine::Error),
    #[error(transparent)]
    Metrics(#[from] sift_metrics::Error),
    #[error(transparent)]
    Eval(#[from] sift_eval::Error),
    #[error(transparent)]
    Bert(#[from] sift_bert::Error),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot use the model file {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("no base model to start from: {0}")]
    BaseModel(String),
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid training option: {0}")]
    InvalidOption(String),
    #[error("nothing to train on: {0}")]
    NoData(String),
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

    pub(crate) fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.into(),
            message: message.into(),
        }
    }
}
