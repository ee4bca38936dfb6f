//! Retrieval metrics for sift: the BEIR/TREC file formats and
//! trec_eval-compatible metrics.
//!
//! * [`beir`]: readers for BEIR datasets (corpus, queries, qrels in BEIR TSV
//!   or TREC format) and [`Dataset`];
//! * [`trec`]: TREC run files ([`Run`], [`write_run`], [`read_run`]);
//! * [`metrics`]: nDCG, recall, precision, MRR and MAP with trec_eval
//!   semantics ([`evaluate`]), checked against pytrec_eval by
//!   `eval/check_metrics.py`;
//! * [`score`]: the `sift score` command ([`score_command`]).

pub mod beir;
mod error;
mod lines;
pub mod metrics;
pub mod score;
pub mod trec;

pub use beir::{
    corpus_iter, read_corpus, read_qrels, read_qrels_with_format, read_queries, Dataset, Qrels,
    QrelsFormat, Query,
};
pub use error::{Error, Result};
pub use metrics::{
    evaluate, parse_metrics, Evaluation, Metric, MetricKind, MissingQueries, RELEVANCE_LEVEL,
};
pub use score::{score_command, OutputFormat, ScoreOptions, DEFAULT_METRICS};
pub use trec::{read_run, trec_cmp, trec_order, write_run, write_run_to, Run};
