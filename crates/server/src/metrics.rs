//! Prometheus metrics, served as text on `GET /metrics`.

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};
use sift_core::Stage;
use sift_engine::{IndexStats, SearchResponse};
use std::time::Duration;

/// Every metric the server keeps, in its own registry (not the global one,
/// so several servers in one process — as in the tests — do not collide).
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    stage_seconds: HistogramVec,
    pub queue_seconds: prometheus::Histogram,
    pub inference_waiting: IntGauge,
    pub inference_running: IntGauge,
    pub documents_written: IntCounter,
    pub documents_deleted: IntCounter,
    /// Background compactions by result (`ok`, `error`).
    pub compactions: IntCounterVec,
    pub compaction_running: IntGauge,
    pub compaction_seconds: prometheus::Histogram,
    index_documents: IntGauge,
    index_chunks: IntGauge,
    index_vector_points: IntGauge,
    index_dead_points: IntGauge,
    index_lexical_bytes: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // 0.1 ms … ~15 s: a BM25 lookup to a deep rerank on a busy CPU.
        let buckets = exponential_buckets(1e-4, 2.5, 14).expect("valid buckets");
        let requests = IntCounterVec::new(
            Opts::new("sift_http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "sift_http_request_duration_seconds",
                "Time to answer an HTTP request, queueing included",
            )
            .buckets(buckets.clone()),
            &["route"],
        )
        .expect("valid metric");
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "sift_search_stage_duration_seconds",
                "Time spent in each stage of a /search query (stage=total for the whole query)",
            )
            .buckets(buckets.clone()),
            &["stage"],
        )
        .expect("valid metric");
        let queue_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "sift_inference_queue_seconds",
                "Time a request waited for a slot on the inference pool",
            )
            .buckets(buckets),
        )
        .expect("valid metric");
        let compactions = IntCounterVec::new(
            Opts::new(
                "sift_compactions_total",
                "Background compactions of the HNSW graph, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        // 10 ms … ~2 h: a demo index to a large one on a busy core.
        let compaction_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "sift_compaction_duration_seconds",
                "Time a background compaction took (build, catch-up, save, swap)",
            )
            .buckets(exponential_buckets(0.01, 4.0, 10).expect("valid buckets")),
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let metrics = Metrics {
            requests,
            request_seconds,
            stage_seconds,
            queue_seconds,
            inference_waiting: gauge(
                "sift_inference_waiting",
                "Requests waiting for a slot on the inference pool",
            ),
            inference_running: gauge("sift_inference_running", "Model inference jobs running now"),
            documents_written: counter(
                "sift_documents_written_total",
                "Documents added or replaced through POST /documents",
            ),
            documents_deleted: counter(
                "sift_documents_deleted_total",
                "Documents deleted through DELETE /documents/{id}",
            ),
            compactions,
            compaction_running: gauge(
                "sift_compaction_running",
                "1 while a background compaction of the HNSW graph runs",
            ),
            compaction_seconds,
            index_documents: gauge("sift_index_documents", "Documents in the index"),
            index_chunks: gauge("sift_index_chunks", "Chunks in the index"),
            index_vector_points: gauge(
                "sift_index_vector_points",
                "Points in the HNSW graph, deleted chunks' included",
            ),
            index_dead_points: gauge(
                "sift_index_dead_points",
                "Points in the HNSW graph of replaced or deleted chunks",
            ),
            index_lexical_bytes: gauge(
                "sift_index_lexical_bytes",
                "Bytes of the tantivy index on disk",
            ),
            registry,
        };
        let r = &metrics.registry;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.requests.clone()),
            Box::new(metrics.request_seconds.clone()),
            Box::new(metrics.stage_seconds.clone()),
            Box::new(metrics.queue_seconds.clone()),
            Box::new(metrics.inference_waiting.clone()),
            Box::new(metrics.inference_running.clone()),
            Box::new(metrics.documents_written.clone()),
            Box::new(metrics.documents_deleted.clone()),
            Box::new(metrics.compactions.clone()),
            Box::new(metrics.compaction_running.clone()),
            Box::new(metrics.compaction_seconds.clone()),
            Box::new(metrics.index_documents.clone()),
            Box::new(metrics.index_chunks.clone()),
            Box::new(metrics.index_vector_points.clone()),
            Box::new(metrics.index_dead_points.clone()),
            Box::new(metrics.index_lexical_bytes.clone()),
        ];
        for c in collectors {
            r.register(c).expect("each metric is registered once");
        }
        metrics
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.request_seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Per-stage latencies of one answered query. A stage that did not run
    /// (rerank without a reranker) is not observed, so it does not drag the
    /// histogram towards zero.
    pub fn observe_search(&self, response: &SearchResponse) {
        for stage in Stage::ALL {
            if stage == Stage::Rerank && response.reranked_by.is_none() {
                continue;
            }
            self.stage_seconds
                .with_label_values(&[stage.name()])
                .observe(response.timings.get(stage).as_secs_f64());
        }
        self.stage_seconds
            .with_label_values(&["total"])
            .observe(response.timings.total.as_secs_f64());
    }

    pub fn set_index(&self, stats: &IndexStats) {
        self.index_documents.set(stats.documents as i64);
        self.index_chunks.set(stats.chunks as i64);
        self.index_vector_points.set(stats.vector_points as i64);
        self.index_dead_points.set(stats.dead_points as i64);
        self.index_lexical_bytes.set(stats.lexical_bytes as i64);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
