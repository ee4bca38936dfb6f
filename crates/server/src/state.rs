use crate::compaction::Compactor;
use crate::metrics::Metrics;
use crate::pool::InferencePool;
use crate::ServerOptions;
use sift_engine::Engine;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What every handler shares.
pub(crate) struct AppState {
    pub engine: Arc<Engine>,
    pub options: ServerOptions,
    pub pool: InferencePool,
    pub metrics: Arc<Metrics>,
    /// Held by the one write in progress (its guard lives in the blocking
    /// job). Writes queue here rather than on the inference pool, and
    /// shutdown takes it to know no write is half done.
    pub writes: Arc<tokio::sync::Mutex<()>>,
    /// Background compaction of the HNSW graph.
    pub compactor: Arc<Compactor>,
    /// The OpenAPI document, rendered once.
    pub openapi: String,
    ids: AtomicU64,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, options: ServerOptions, openapi: String) -> Self {
        let metrics = Arc::new(Metrics::new());
        AppState {
            pool: InferencePool::new(
                options.inference_threads,
                options.max_queued,
                metrics.clone(),
            ),
            engine,
            options,
            metrics,
            writes: Arc::new(tokio::sync::Mutex::new(())),
            compactor: Arc::new(Compactor::default()),
            openapi,
            ids: AtomicU64::new(1),
        }
    }

    /// After a write (and at start): compact the graph in the background
    /// if its dead points passed the threshold.
    pub fn compact_if_needed(&self) {
        self.compactor.start_if_needed(&self.engine, &self.metrics);
    }

    /// A fresh response id (Cohere answers carry one).
    pub fn next_id(&self) -> String {
        format!("sift-{}", self.ids.fetch_add(1, Ordering::Relaxed))
    }
}
