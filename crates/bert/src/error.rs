use std::path::PathBuf;

/// Errors of model loading and inference.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be obtained; the message says how to provide it.
    #[error("{0}")]
    ModelUnavailable(String),
    #[error("model file {path} is invalid: {message}")]
    InvalidModelFile { path: PathBuf, message: String },
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("inference error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        Error::Tokenizer(e.to_string())
    }
}
