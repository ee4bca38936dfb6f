//! Small language models for sift's LLM rerankers.
//!
//! [`LanguageModel`] is the one interface: next-token log-probabilities and
//! greedy completion of a plain-text prompt. Two back ends implement it:
//!
//! * [`GgufModel`]: a quantised Gemma 3 GGUF file run in process by candle,
//!   with the SentencePiece tokenizer its metadata holds ([`SpmTokenizer`]);
//! * [`HttpModel`]: any OpenAI-compatible `/v1/chat/completions` endpoint,
//!   with timeouts, retries and a per-query deadline.

mod error;
mod gemma3;
mod http;
mod local;
mod model;
mod tokenizer;

pub use error::{Error, Result};
pub use http::{HttpModel, HttpModelBuilder};
pub use local::{Generation, GgufModel, GgufModelBuilder, Step};
pub use model::LanguageModel;
pub use tokenizer::SpmTokenizer;
