//! The `sift eval` harness: measure a sift index on relevance-judged
//! queries.
//!
//! [`EvalRun`] indexes a BEIR dataset's corpus (or reuses its index), runs
//! every query through stage 1 once, and derives each stage from that run:
//! BM25 alone, dense alone, hybrid (RRF), and hybrid + rerank when a
//! cross-encoder is loaded. It reports, per stage, nDCG@10, MRR@10, recall
//! at 1/5/10/depth and latency; the recall-at-depth against recall-at-k
//! [`Diagnosis`]; and optionally [`Sweeps`] of the rerank depth (with a
//! plot), the RRF constant and the per-retriever depth. Everything lands in
//! one folder: `report.json`, `report.md`, a TREC run file per stage, and
//! `sweep.{json,md,png,svg}`.
//!
//! Evaluation is per document: a document takes the rank of its best chunk,
//! and depth and k count distinct documents ([`collapse_to_documents`]).

mod doclevel;
mod error;
mod latency;
mod plot;
mod report;
mod run;
mod sweep;

pub use doclevel::{collapse_to_documents, prefix_holding};
pub use error::{Error, Result};
pub use latency::{percentile, Latency};
pub use plot::plot_depth_sweep;
pub use report::{
    Diagnosis, IndexSummary, Report, RerankEffect, RetrievalSummary, StageReport,
    DOCUMENT_LEVEL_NOTE, LATENCY_NOTE, RETRIEVAL_RULE, STAGE_BM25, STAGE_DENSE, STAGE_HYBRID,
    STAGE_RERANK,
};
pub use run::{progress_bar, EvalOptions, EvalRun, CHUNKS_PER_DOCUMENT, RANK_CUTOFF};
pub use sweep::{
    flattening_depth, DepthPoint, DepthSweep, Flattening, RetrieverDepthPoint, RrfPoint, Sweeps,
    FLATTENING_TOLERANCE,
};
