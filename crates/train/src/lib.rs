//! Train sift's cross-encoder reranker from relevance judgements.
//!
//! No peer engine adapts its reranker to a user's domain; sift does it from
//! the user's own qrels, on a CPU, in minutes:
//!
//! * **examples**: each judged query with its relevant chunks as positives
//!   and hard negatives mined by the engine's own stage 1 (the top hybrid
//!   candidates of documents not judged relevant); optionally weak examples
//!   from the corpus (a title, or one of its sentences, as the query for
//!   its own text);
//! * **model**: a BERT checkpoint (all-MiniLM-L6-v2 by default) with a
//!   fresh one-label head, read as `[CLS] query [SEP] passage [SEP]`;
//! * **loss**: softmax cross-entropy over one positive and several
//!   negatives (listwise), AdamW, linear warm-up and decay;
//! * **speed**: the embeddings and lower layers are frozen and run on
//!   sift-bert's inference kernels; only the top layers, pooler and head
//!   train, on both cores;
//! * **data**: one dataset or several ([`TrainingSet`]), each step's
//!   queries drawn from them by weight, each validated on its own held-back
//!   queries (a dev split, or a share of the train split);
//! * **selection**: the mean of the sets' validation nDCG@10, early
//!   stopping, the best weights kept;
//! * **resuming**: a checkpoint every N steps (weights, best weights,
//!   optimiser moments, place in each dataset, the mined examples); run
//!   again, an interrupted run goes on to the weights an uninterrupted one
//!   ends with, and a time or step budget pauses it on purpose;
//! * **output**: the Hugging Face `BertForSequenceClassification` layout
//!   (`config.json`, `model.safetensors`, tokenizer files) that
//!   `sift_bert::CrossEncoder` loads like any hub cross-encoder, and
//!   `training.json` with what was measured.
//!
//! ```no_run
//! use sift_train::{train, TrainOptions};
//! let options = TrainOptions::new("../shared/datasets/scifact", "indexes/scifact", "out/reranker");
//! let report = train(&options)?;
//! println!("best validation nDCG@10 {:.4}", report.best_ndcg_at_10);
//! # Ok::<(), sift_train::Error>(())
//! ```

mod data;
mod error;
mod model;
mod optimizer;
mod pairs;
mod sets;
mod trainer;

pub use data::{MiningSummary, WeakQuery};
pub use error::{Error, Result};
pub use sets::{TrainingSet, Validation, DEFAULT_VALIDATION_QUERIES};
pub use trainer::{
    train, BlendPoint, PhaseSeconds, SetReport, TrainOptions, TrainReport, ValidationPoint,
};
