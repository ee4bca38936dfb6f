//! BERT in candle, shared by both neural stages of sift.
//!
//! * [`BiEncoder`] embeds passages and queries (mean pooling + L2
//!   normalisation, as sentence-transformers' all-MiniLM-L6-v2 does).
//! * [`CrossEncoder`] reads a query and a passage together and returns a raw
//!   relevance logit (BERT + pooler + one-label classifier, the Hugging Face
//!   `BertForSequenceClassification` layout of cross-encoder/ms-marco-MiniLM-L-6-v2).
//!
//! * [`BertBody`] runs the embeddings and lower layers alone, for the
//!   reranker trainer's frozen layers.
//!
//! All load through [`ModelFiles`], which resolves a [`sift_core::ModelSource`]
//! to a local folder or to the Hugging Face hub cache.

mod bi_encoder;
mod body;
mod cross_encoder;
mod encoder;
mod error;
mod files;
pub mod kernels;
mod model;
pub mod profile;

pub use bi_encoder::BiEncoder;
pub use body::BertBody;
pub use cross_encoder::{CrossEncoder, TrainedWith};
pub use error::{Error, Result};
pub use files::{ModelFiles, ModelRole};
pub use sift_core::Precision;
pub use tokenizers::Tokenizer;
