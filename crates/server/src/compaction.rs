//! Background compaction of the HNSW graph.
//!
//! Every write leaves the replaced or deleted chunks' points in the graph
//! (hnsw_rs cannot remove one). After each write, and once at start, the
//! server asks the engine whether they have reached
//! `index.compact_dead_ratio`; if so, and no compaction is running, it runs
//! [`Engine::compact`] on a blocking thread of its own, outside the
//! inference pool and the write gate. Searches go on against the old graph
//! meanwhile and writes queue only for the final catch-up and swap (see
//! `Engine::compact`). With sift's single-threaded rayon (`sift serve` sets
//! `RAYON_NUM_THREADS=1`) the rebuild takes one core.
//!
//! Shutdown does not wait for a compaction: one cut short leaves the old
//! graph on disk (the save is atomic), and the next start checks again.

use crate::api::{CompactionStatus, LastCompaction};
use crate::metrics::Metrics;
use sift_engine::Engine;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Whether a compaction is running, and how the last one went.
#[derive(Default)]
pub(crate) struct Compactor {
    /// One lock for all of it, so that `/stats` never sees a half-told end
    /// (a count raised while the report is still the previous one).
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: bool,
    completed: u64,
    failed: u64,
    last: Option<LastCompaction>,
}

/// Clears the running flag if the job ends without saying how (a panic).
struct RunningGuard(Arc<Compactor>, prometheus::IntGauge);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut state = self.0.state();
        if state.running {
            state.running = false;
            self.1.dec();
        }
    }
}

impl Compactor {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters: still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn status(&self, engine: &Engine) -> CompactionStatus {
        let state = self.state();
        CompactionStatus {
            dead_ratio_threshold: engine.config().index.compact_dead_ratio,
            running: state.running,
            completed: state.completed,
            failed: state.failed,
            last: state.last.clone(),
        }
    }

    /// Start a compaction on a blocking thread when the engine needs one
    /// and none is running; returns whether one was started. Cheap enough
    /// to call after every write (a lock and two counts).
    pub fn start_if_needed(self: &Arc<Self>, engine: &Arc<Engine>, metrics: &Arc<Metrics>) -> bool {
        if !engine.needs_compaction() {
            return false;
        }
        {
            let mut state = self.state();
            if state.running {
                return false;
            }
            state.running = true;
        }
        metrics.compaction_running.inc();
        let guard = RunningGuard(self.clone(), metrics.compaction_running.clone());
        let (compactor, engine, metrics) = (self.clone(), engine.clone(), metrics.clone());
        let before = engine.stats().map(|s| s.vector_points).unwrap_or_default();
        tracing::info!(
            points = before,
            threshold = engine.config().index.compact_dead_ratio,
            "dead points past the threshold: compacting the vector index in the background"
        );
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let started = Instant::now();
            let result = engine.compact();
            let seconds = started.elapsed().as_secs_f64();
            metrics.compaction_seconds.observe(seconds);
            let finished_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Ok(stats) = engine.stats() {
                metrics.set_index(&stats);
            }
            let mut state = compactor.state();
            state.last = Some(match result {
                Ok(report) => {
                    state.completed += 1;
                    metrics.compactions.with_label_values(&["ok"]).inc();
                    LastCompaction {
                        points_before: report.points_before,
                        points_after: Some(report.points_after),
                        seconds,
                        finished_unix,
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::warn!("background compaction failed (the old graph stays): {e}");
                    state.failed += 1;
                    metrics.compactions.with_label_values(&["error"]).inc();
                    LastCompaction {
                        points_before: before,
                        points_after: None,
                        seconds,
                        finished_unix,
                        error: Some(e.to_string()),
                    }
                }
            });
            // Under the same lock, so that whoever sees the count raised
            // also sees the gauge down.
            state.running = false;
            metrics.compaction_running.dec();
        });
        true
    }
}
