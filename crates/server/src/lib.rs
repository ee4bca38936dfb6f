//! The sift HTTP API: what a chatbot calls for the chunks to put in its
//! prompt.
//!
//! | endpoint | what |
//! | --- | --- |
//! | `POST /search` | two-stage retrieval with an optional metadata filter; hits carry citations, every score and per-stage timings |
//! | `POST /rerank` | the cross-encoder alone, in text-embeddings-inference's or Cohere's shape |
//! | `POST /v1/embeddings` | the bi-encoder alone, OpenAI-compatible |
//! | `POST /documents`, `DELETE /documents/{id}` | writes, committed before they are answered |
//! | `GET /stats` | index size, models, search defaults |
//! | `GET /eval/runs`, `GET /eval/file` | `sift eval --out` reports from the folder given by `--eval-dir` |
//! | `GET /health`, `GET /metrics`, `GET /openapi.json` | operations |
//! | `GET /` | the web page: search playground, documents, eval reports (`crates/server/web/`) |
//!
//! Model inference runs on a bounded blocking pool (a semaphore sized to the
//! cores), so a burst of requests queues instead of oversubscribing the CPU.
//! Every error is `{"error": {"code": …, "message": …}}` with a fitting
//! status. See `crates/server/README.md` for the request and answer shapes.
//!
//! ```no_run
//! use sift_engine::Engine;
//! use sift_server::{serve_blocking, ServerOptions};
//!
//! let engine = Engine::builder("sift-index").open()?;
//! serve_blocking("127.0.0.1:8080".parse()?, engine.into(), ServerOptions::default(), |addr| {
//!     eprintln!("listening on http://{addr}");
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod api;
mod compaction;
mod error;
mod eval_runs;
mod handlers;
mod json;
mod metrics;
mod openapi;
mod page;
mod pool;
mod server;
mod state;

pub use error::{Error, ErrorBody, ErrorDetail, Result};
pub use server::{app, runtime, serve_blocking, shutdown_signal, Server, ServerOptions};
pub use sift_engine::FILTER_POOL_FACTOR;
