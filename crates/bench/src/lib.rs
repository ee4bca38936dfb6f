//! Benchmarks of sift: `sift-speed` (`just bench`) times embed and rerank
//! against PyTorch and ONNX Runtime on the same inputs; `sift-growth`
//! (`just bench-growth`) measures index time, disk, resident memory and
//! stage-1 latency as the corpus grows ([`growth`] holds its pieces).
//! Latency summaries come from the `sift eval` harness (`sift_eval`).

mod error;
pub mod growth;

pub use error::{Error, Result};

/// Set a benchmark binary up as the `sift` binary runs: candle kernels and
/// rayon single-threaded unless the environment says otherwise (batches
/// run on parallel workers, see sift_bert's `map_batches`, and HNSW inserts
/// as `sift index` runs them), and logs to stderr filtered by `SIFT_LOG`
/// (default `warn`).
pub fn run_as_sift_does() {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
