//! The bounded pool that model inference runs on.
//!
//! A query's embedding and rerank are CPU-bound for tens to hundreds of
//! milliseconds. Run on the async workers they would stall every other
//! connection; run on unbounded blocking threads, a burst of 100 requests
//! would oversubscribe the cores 50-fold and make every one of them slow.
//! So each job takes a permit of a semaphore sized to the cores first: a
//! burst queues (cheaply, as futures) and the cores work on a few at a time.
//! Writes run one at a time in a lane of their own (see
//! [`InferencePool::run_write`]).

use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::http::{header, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub(crate) struct InferencePool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queued: usize,
    metrics: Arc<Metrics>,
}

/// Decrements the waiting count however the wait ends (a request that is
/// dropped while queued included).
struct Waiting<'a>(&'a InferencePool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.inference_waiting.dec();
    }
}

/// Counts a running job for as long as it lives, a panicking one included.
struct Running(prometheus::IntGauge);

impl Running {
    fn start(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Running(gauge)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl InferencePool {
    pub fn new(threads: usize, max_queued: usize, metrics: Arc<Metrics>) -> Self {
        InferencePool {
            permits: Arc::new(Semaphore::new(threads.max(1))),
            waiting: AtomicUsize::new(0),
            max_queued,
            metrics,
        }
    }

    /// Run `job` on a blocking thread once a permit is free; also returns
    /// how long it queued.
    ///
    /// The permit moves into the blocking closure: if the request is dropped
    /// (client gone, timeout) the job still runs to its end, and its permit
    /// is held until then, so the pool never runs more jobs than permits.
    pub async fn run<T, F>(&self, job: F) -> Result<(T, Duration), ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let queued_at = Instant::now();
        let permit = {
            if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_queued {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    format!(
                        "{} requests are already waiting for the model; retry shortly",
                        self.max_queued
                    ),
                )
                .with_header(header::RETRY_AFTER, "1"));
            }
            self.metrics.inference_waiting.inc();
            let _waiting = Waiting(self);
            self.permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed")
        };
        let queued = queued_at.elapsed();
        self.metrics.queue_seconds.observe(queued.as_secs_f64());
        let running = Running::start(self.metrics.inference_running.clone());
        let out = blocking(move || {
            let _permit = permit;
            let _running = running;
            job()
        })
        .await?;
        Ok((out, queued))
    }

    /// Run a write's job (embedding its documents, committing) without a
    /// permit. Writes have a lane of their own: the write gate lets one run
    /// at a time, so the CPU runs at most `threads + 1` jobs. Queued behind
    /// the searches for a permit instead, every write would wait out the
    /// whole search queue while holding the gate, and the writes behind it
    /// would wait for all of that in turn.
    pub async fn run_write<T, F>(&self, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let running = Running::start(self.metrics.inference_running.clone());
        blocking(move || {
            let _running = running;
            job()
        })
        .await
    }
}

/// Run blocking work that is not model inference (index statistics, a
/// delete) off the async workers, without taking an inference permit.
pub(crate) async fn blocking<T, F>(job: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(job).await.map_err(|e| {
        tracing::error!("a blocking job failed: {e}");
        ApiError::internal("the request's job panicked; see the server log")
    })
}
