use std::path::PathBuf;

/// Errors of loading and running a language model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the GGUF model {path}: {message}")]
    Gguf { path: PathBuf, message: String },
    #[error("the GGUF model {path} has no usable tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("model inference failed: {0}")]
    Inference(#[from] candle_core::Error),
    #[error("the prompt is {tokens} tokens long; the model reads at most {limit}")]
    PromptTooLong { tokens: usize, limit: usize },
    #[error("LLM endpoint {url}: {message}")]
    Http { url: String, message: String },
    #[error("LLM endpoint {url} answered something unusable: {message}")]
    BadResponse { url: String, message: String },
    #[error("the time budget for this query's LLM calls is spent")]
    BudgetExhausted,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
