//! Sweeps: rerank depth (holding k), the RRF constant, and the number of
//! documents each retriever contributes to fusion.

use crate::latency::Latency;
use crate::report::{aligned, markdown_table};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Recall within this of the sweep's best counts as flat. Half a point of
/// recall is about one query in 200: below what a test set of a few
/// hundred queries can tell apart.
pub const FLATTENING_TOLERANCE: f64 = 0.005;

/// The depth where a curve flattens: the smallest depth whose value is
/// within `tolerance` of the best value over the sweep. `points` are
/// (depth, value) pairs in any order; `None` when there are none.
///
/// ```
/// use sift_eval::flattening_depth;
/// let recall = [(10, 0.70), (20, 0.78), (30, 0.801), (50, 0.804), (100, 0.803)];
/// assert_eq!(flattening_depth(&recall, 0.005), Some(30));
/// ```
pub fn flattening_depth(points: &[(usize, f64)], tolerance: f64) -> Option<usize> {
    let best = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    points
        .iter()
        .filter(|p| p.1 >= best - tolerance)
        .map(|p| p.0)
        .min()
}

/// One depth of the depth sweep. The hybrid list at depth d fuses each
/// retriever's top d documents (as `sift search --depth d` does); the
/// reranker reads its chunks down to the d-th document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepthPoint {
    pub depth: usize,
    pub hybrid_recall_at_k: f64,
    pub hybrid_ndcg_at_10: f64,
    pub hybrid_mrr_at_10: f64,
    /// The ceiling: the most any reordering of the top d can reach at k.
    pub hybrid_recall_at_depth: f64,
    pub rerank_recall_at_k: Option<f64>,
    pub rerank_ndcg_at_10: Option<f64>,
    pub rerank_mrr_at_10: Option<f64>,
    /// Time the reranker added per query.
    pub rerank_latency: Option<Latency>,
    /// Chunks the reranker read per query, on average (≥ depth: a document
    /// may have several chunks above its d-th neighbour).
    pub rerank_chunks_mean: Option<f64>,
}

/// Where a curve stops rising, and by which rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flattening {
    pub depth: Option<usize>,
    /// The curve the rule was applied to.
    pub metric: String,
    pub tolerance: f64,
    pub rule: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepthSweep {
    pub k: usize,
    pub rrf_k: f32,
    /// Whether a reranker ran (otherwise every `rerank_*` is `None`).
    pub reranked: bool,
    pub points: Vec<DepthPoint>,
    pub flattening: Flattening,
}

/// The hybrid list at the main depth with another RRF constant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RrfPoint {
    pub rrf_k: f32,
    pub ndcg_at_10: f64,
    pub mrr_at_10: f64,
    pub recall_at_k: f64,
    pub recall_at_depth: f64,
}

/// The hybrid list at the main depth when each retriever contributes its
/// top `retriever_depth` documents.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrieverDepthPoint {
    pub retriever_depth: usize,
    pub ndcg_at_10: f64,
    pub recall_at_k: f64,
    pub recall_at_depth: f64,
}

/// Every sweep that ran; written as `sweep.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sweeps {
    pub depth: Option<DepthSweep>,
    pub rrf_k: Vec<RrfPoint>,
    pub retriever_depth: Vec<RetrieverDepthPoint>,
    /// Depth of the hybrid list in the RRF and retriever-depth sweeps.
    pub hybrid_depth: usize,
    pub k: usize,
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

impl Sweeps {
    pub fn is_empty(&self) -> bool {
        self.depth.is_none() && self.rrf_k.is_empty() && self.retriever_depth.is_empty()
    }

    /// The sweeps as text tables, or Markdown (`sweep.md`).
    pub fn to_text(&self, markdown: bool) -> String {
        let table = |header: &[&str], rows: Vec<Vec<String>>| {
            let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
            if markdown {
                markdown_table(&header, &rows)
            } else {
                aligned(&header, &rows)
            }
        };
        let heading = |out: &mut String, text: &str| {
            if markdown {
                let _ = writeln!(out, "## {text}\n");
            } else {
                let _ = writeln!(out, "{text}");
            }
        };
        let mut out = String::new();
        let k = self.k;
        if let Some(sweep) = &self.depth {
            heading(
                &mut out,
                &format!("Depth sweep (k = {k}, RRF k = {})", sweep.rrf_k),
            );
            let rk = format!("R@{k}");
            let rows = sweep
                .points
                .iter()
                .map(|p| {
                    let lat = p.rerank_latency.as_ref();
                    vec![
                        p.depth.to_string(),
                        format!("{:.4}", p.hybrid_recall_at_depth),
                        format!("{:.4}", p.hybrid_recall_at_k),
                        format!("{:.4}", p.hybrid_ndcg_at_10),
                        format!("{:.4}", p.hybrid_mrr_at_10),
                        opt(p.rerank_recall_at_k),
                        opt(p.rerank_ndcg_at_10),
                        opt(p.rerank_mrr_at_10),
                        lat.map_or("-".into(), |l| format!("{:.1}", l.mean_ms)),
                        lat.map_or("-".into(), |l| format!("{:.1}", l.p95_ms)),
                        p.rerank_chunks_mean
                            .map_or("-".into(), |c| format!("{c:.1}")),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "depth",
                    "hybrid R@depth",
                    &format!("hybrid {rk}"),
                    "hybrid nDCG@10",
                    "hybrid MRR@10",
                    &format!("rerank {rk}"),
                    "rerank nDCG@10",
                    "rerank MRR@10",
                    "rerank mean ms",
                    "rerank p95 ms",
                    "chunks reranked",
                ],
                rows,
            ));
            if markdown {
                out.push('\n');
            }
            if !sweep.reranked {
                let _ = writeln!(
                    out,
                    "No reranker was available: the rerank columns are absent; hybrid figures only."
                );
            }
            let f = &sweep.flattening;
            let _ = writeln!(
                out,
                "Flattening depth: {} ({}; rule: {}).",
                f.depth.map_or("-".into(), |d| d.to_string()),
                f.metric,
                f.rule
            );
            out.push('\n');
        }
        if !self.rrf_k.is_empty() {
            heading(
                &mut out,
                &format!("RRF constant sweep (hybrid, depth {})", self.hybrid_depth),
            );
            let rows = self
                .rrf_k
                .iter()
                .map(|p| {
                    vec![
                        p.rrf_k.to_string(),
                        format!("{:.4}", p.ndcg_at_10),
                        format!("{:.4}", p.mrr_at_10),
                        format!("{:.4}", p.recall_at_k),
                        format!("{:.4}", p.recall_at_depth),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "rrf k",
                    "nDCG@10",
                    "MRR@10",
                    &format!("R@{k}"),
                    &format!("R@{}", self.hybrid_depth),
                ],
                rows,
            ));
            out.push('\n');
        }
        if !self.retriever_depth.is_empty() {
            heading(
                &mut out,
                &format!(
                    "Retriever depth sweep (documents each retriever contributes; hybrid depth {})",
                    self.hybrid_depth
                ),
            );
            let rows = self
                .retriever_depth
                .iter()
                .map(|p| {
                    vec![
                        p.retriever_depth.to_string(),
                        format!("{:.4}", p.ndcg_at_10),
                        format!("{:.4}", p.recall_at_k),
                        format!("{:.4}", p.recall_at_depth),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "retriever depth",
                    "nDCG@10",
                    &format!("R@{k}"),
                    &format!("R@{}", self.hybrid_depth),
                ],
                rows,
            ));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattening_is_the_smallest_depth_near_the_best() {
        let curve = [
            (10, 0.60),
            (20, 0.70),
            (30, 0.74),
            (50, 0.743),
            (75, 0.745),
            (100, 0.744),
        ];
        assert_eq!(flattening_depth(&curve, 0.005), Some(30));
        // A stricter tolerance moves it out.
        assert_eq!(flattening_depth(&curve, 0.002), Some(50));
        // Zero tolerance: where the best is first reached.
        assert_eq!(flattening_depth(&curve, 0.0), Some(75));
        // Order of the points does not matter.
        let mut shuffled = curve;
        shuffled.reverse();
        assert_eq!(flattening_depth(&shuffled, 0.005), Some(30));
        // A curve that still rises flattens at its end.
        let rising = [(10, 0.1), (20, 0.2), (30, 0.3)];
        assert_eq!(flattening_depth(&rising, 0.005), Some(30));
        // A flat curve flattens at once.
        assert_eq!(flattening_depth(&[(10, 0.5), (20, 0.5)], 0.005), Some(10));
        assert_eq!(flattening_depth(&[], 0.005), None);
    }
}
