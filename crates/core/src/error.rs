use std::path::PathBuf;

/// Errors of the shared layer: configuration and input validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    ConfigIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
