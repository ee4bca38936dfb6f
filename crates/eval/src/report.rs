//! What an evaluation found, as data ([`Report`], serialised to
//! `report.json`), as a terminal table and as Markdown.

use crate::latency::Latency;
use crate::sweep::Sweeps;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sift_metrics::{Qrels, Run, RELEVANCE_LEVEL};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub const STAGE_BM25: &str = "bm25";
pub const STAGE_DENSE: &str = "dense";
pub const STAGE_HYBRID: &str = "hybrid";
pub const STAGE_RERANK: &str = "rerank";

/// Said in every output: what depth and k mean here.
pub const DOCUMENT_LEVEL_NOTE: &str = "Evaluation is per document: the engine ranks chunks, a document takes the rank of its best chunk, and depth and k count distinct documents.";

/// How stage 1 was asked for enough chunks; said in every output.
pub const RETRIEVAL_RULE: &str = "Stage 1 runs once per query. Each retriever is asked for 3 chunks per document of depth and, while its list is full but holds fewer than depth distinct documents, for twice as many (up to 1000). Each retriever then contributes its top `depth` documents (every chunk of its list down to its depth-th document) to RRF fusion at chunk level; the fused chunks are collapsed to documents. BM25 and dense are the retrievers' own lists collapsed the same way. The reranker reads every fused chunk down to the depth-th document.";

/// How the latency columns are measured.
pub const LATENCY_NOTE: &str = "Latency per query: BM25 = the BM25 search; dense = query tokenisation + embedding + HNSW search; hybrid = all of stage 1 (both retrievers, fusion, chunk fetch); rerank = the time the cross-encoder adds on top of hybrid. Stage 1 is timed with the chunk depth the evaluation asks for (3 × depth per retriever), after one warm-up query. In the depth sweep each chunk is scored once per query: depths run in ascending order, a deeper list reuses the scores of a shallower one, and a depth's rerank latency is the cross-encoder time spent on all of its candidates.";

/// One stage's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageReport {
    /// `bm25`, `dense`, `hybrid` or `rerank`.
    pub name: String,
    /// Metric name (`ndcg@10`, `recall@5`…) → mean over the queries.
    pub metrics: BTreeMap<String, f64>,
    pub latency: Latency,
    /// The TREC run file, relative to the output folder.
    pub run_file: String,
}

/// The index evaluated.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexSummary {
    pub path: String,
    /// Used as found: every document of the corpus was already indexed
    /// with the same chunks.
    pub reused: bool,
    pub documents: u64,
    pub chunks: u64,
    pub bi_encoder: String,
    /// Time spent checking the index against the corpus and indexing what
    /// was missing or changed.
    pub indexing_seconds: f64,
    /// Documents (re)indexed in this run.
    pub documents_written: usize,
}

/// How deep stage 1 had to go.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RetrievalSummary {
    pub chunks_per_document: usize,
    /// Largest number of chunks asked of a retriever for the main figures.
    pub chunk_depth_max: usize,
    /// Queries for which the first chunk depth held too few documents.
    pub queries_retried: usize,
    /// Queries where a retriever's list stayed below depth documents
    /// although it was full (the 1000-chunk limit was reached).
    pub queries_short: usize,
    /// The same for the deeper stage-1 pass of the sweeps.
    pub sweep_chunk_depth_max: usize,
    pub sweep_queries_short: usize,
    /// Queries rejected before retrieval (empty or too long); they score 0.
    pub invalid_queries: usize,
}

/// What reranking did to the hybrid list's top k.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RerankEffect {
    pub reranker: String,
    pub recall_at_k: f64,
    pub queries_hit_at_k: usize,
    /// Gap queries (relevant in top depth, not in top k) that reranking
    /// brought a relevant document into the top k for.
    pub queries_recovered: usize,
    /// Queries with a relevant document in the hybrid top k that
    /// reranking pushed out of it.
    pub queries_lost: usize,
    /// (rerank recall@k − hybrid recall@k) / (recall@depth − hybrid recall@k).
    pub recall_gap_closed: Option<f64>,
    /// The metrics (`ndcg@10`, `recall@k`, `mrr@10`) that reranking made
    /// worse than hybrid's, with hybrid's and the reranked value: a
    /// reranker out of its domain can lose to stage 1, and a user must see
    /// it rather than assume stage 2 helps.
    #[serde(default)]
    pub lowered: Vec<MetricChange>,
}

/// One metric before and after reranking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    pub metric: String,
    pub hybrid: f64,
    pub rerank: f64,
}

/// The seed's diagnosis: stage 1 finds (recall@depth), the order decides
/// what the user sees (recall@k); the difference is the reranker's room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Diagnosis {
    pub depth: usize,
    pub k: usize,
    pub queries: usize,
    pub hybrid_recall_at_depth: f64,
    pub hybrid_recall_at_k: f64,
    pub recall_gap: f64,
    /// Queries with at least one relevant document in the hybrid top depth.
    pub queries_hit_at_depth: usize,
    /// … in the hybrid top k.
    pub queries_hit_at_k: usize,
    /// Queries with a relevant document in the top depth but none in the
    /// top k: what a reranker can at most recover.
    pub gap_queries: usize,
    pub gap_fraction: f64,
    pub rerank: Option<RerankEffect>,
    /// The same in sentences.
    pub summary: Vec<String>,
}

fn hit(qrels: &BTreeMap<String, i32>, docs: Option<&Vec<(String, f64)>>, n: usize) -> bool {
    docs.is_some_and(|docs| {
        docs.iter()
            .take(n)
            .any(|(d, _)| qrels.get(d).is_some_and(|&g| g >= RELEVANCE_LEVEL))
    })
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl Diagnosis {
    /// From the hybrid run (and the reranked one), both in rank order.
    pub(crate) fn compute(
        qrels: &Qrels,
        hybrid: &Run,
        rerank: Option<&Run>,
        stages: &[StageReport],
        depth: usize,
        k: usize,
        reranker: Option<String>,
    ) -> Diagnosis {
        let metric = |stage: &str, name: String| {
            stages
                .iter()
                .find(|s| s.name == stage)
                .and_then(|s| s.metrics.get(&name).copied())
                .unwrap_or(0.0)
        };
        let r_depth = metric(STAGE_HYBRID, format!("recall@{depth}"));
        let r_k = metric(STAGE_HYBRID, format!("recall@{k}"));
        let (mut at_depth, mut at_k, mut gap) = (0, 0, 0);
        let (mut rr_at_k, mut recovered, mut lost) = (0, 0, 0);
        for (qid, judged) in qrels {
            let d = hit(judged, hybrid.get(qid), depth);
            let h = hit(judged, hybrid.get(qid), k);
            at_depth += usize::from(d);
            at_k += usize::from(h);
            gap += usize::from(d && !h);
            if let Some(rerank) = rerank {
                let r = hit(judged, rerank.get(qid), k);
                rr_at_k += usize::from(r);
                recovered += usize::from(d && !h && r);
                lost += usize::from(h && !r);
            }
        }
        let n = qrels.len();
        let mut summary = vec![
            format!(
                "Hybrid without reranking: recall@{depth} = {r_depth:.4}, recall@{k} = {r_k:.4} (gap {:.4}).",
                r_depth - r_k
            ),
            format!(
                "{:.1}% of queries ({gap} of {n}) have a relevant document in the top {depth} but none in the top {k}: that is what a reranker can at most recover. {:.1}% ({at_depth}) have one in the top {depth}, {:.1}% ({at_k}) in the top {k}.",
                pct(gap, n),
                pct(at_depth, n),
                pct(at_k, n)
            ),
        ];
        let rerank = match (rerank, reranker) {
            (Some(_), Some(reranker)) => {
                let rr_k = metric(STAGE_RERANK, format!("recall@{k}"));
                let room = r_depth - r_k;
                let closed = (room > 1e-12).then(|| (rr_k - r_k) / room);
                summary.push(format!(
                    "With reranking ({reranker}): recall@{k} = {rr_k:.4}{}. Reranking brought a relevant document into the top {k} for {recovered} of the {gap} gap queries and pushed one out for {lost}; {rr_at_k} of {n} queries now have one in the top {k}.",
                    closed.map_or(String::new(), |c| format!(", closing {:.1}% of the recall gap", 100.0 * c))
                ));
                let lowered: Vec<MetricChange> = [
                    "ndcg@10".to_string(),
                    format!("recall@{k}"),
                    "mrr@10".into(),
                ]
                .into_iter()
                .filter_map(|name| {
                    let (hybrid, rerank) = (
                        metric(STAGE_HYBRID, name.clone()),
                        metric(STAGE_RERANK, name.clone()),
                    );
                    // Below the fourth decimal is below what a report shows.
                    (rerank < hybrid - 5e-5).then_some(MetricChange {
                        metric: name,
                        hybrid,
                        rerank,
                    })
                })
                .collect();
                if !lowered.is_empty() {
                    let changes: Vec<String> = lowered
                        .iter()
                        .map(|c| {
                            format!(
                                "{} from {:.4} to {:.4} ({:+.4})",
                                label(&c.metric),
                                c.hybrid,
                                c.rerank,
                                c.rerank - c.hybrid
                            )
                        })
                        .collect();
                    summary.push(format!(
                        "The reranker LOWERED {}: on these queries stage 1's order is better than the reranker's; rerank with a model that knows the domain (or one trained on it with `sift train-reranker`), or search without it (--no-rerank).",
                        changes.join(", ")
                    ));
                }
                Some(RerankEffect {
                    reranker,
                    recall_at_k: rr_k,
                    queries_hit_at_k: rr_at_k,
                    queries_recovered: recovered,
                    queries_lost: lost,
                    recall_gap_closed: closed,
                    lowered,
                })
            }
            _ => {
                summary.push(
                    "No reranker was available, so how much of the gap reranking closes is not measured."
                        .into(),
                );
                None
            }
        };
        Diagnosis {
            depth,
            k,
            queries: n,
            hybrid_recall_at_depth: r_depth,
            hybrid_recall_at_k: r_k,
            recall_gap: r_depth - r_k,
            queries_hit_at_depth: at_depth,
            queries_hit_at_k: at_k,
            gap_queries: gap,
            gap_fraction: if n == 0 { 0.0 } else { gap as f64 / n as f64 },
            rerank,
            summary,
        }
    }
}

/// Everything `sift eval` measured; written as `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The dataset folder's name.
    pub dataset: String,
    pub dataset_dir: String,
    pub split: String,
    pub corpus: String,
    pub index: IndexSummary,
    /// Queries evaluated.
    pub queries: usize,
    pub depth: usize,
    pub k: usize,
    pub rrf_k: f32,
    /// The metrics of each stage, in display order.
    pub metrics: Vec<String>,
    /// The reranker that ran, or…
    pub reranker: Option<String>,
    /// … why none did.
    pub no_reranker: Option<String>,
    /// `bm25`, `dense`, `hybrid`, and `rerank` when a reranker ran.
    pub stages: Vec<StageReport>,
    pub diagnosis: Diagnosis,
    pub retrieval: RetrievalSummary,
    pub notes: Vec<String>,
    pub sweeps: Sweeps,
    /// Files written to the output folder.
    pub files: Vec<String>,
}

/// A metric's short column label: `recall@5` → `R@5`.
fn label(metric: &str) -> String {
    metric
        .replace("ndcg@", "nDCG@")
        .replace("mrr@", "MRR@")
        .replace("recall@", "R@")
        .replace("p@", "P@")
        .replace("map", "MAP")
}

impl Report {
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }

    fn stage_label(&self, name: &str) -> String {
        match name {
            STAGE_BM25 => "BM25".into(),
            STAGE_DENSE => "dense".into(),
            STAGE_HYBRID => format!("hybrid (RRF k={})", self.rrf_k),
            STAGE_RERANK => "hybrid + rerank".into(),
            other => other.into(),
        }
    }

    fn heading(&self) -> String {
        format!(
            "{} ({} split, {} queries; {} documents in {} chunks; depth {}, k {})",
            self.dataset,
            self.split,
            self.queries,
            self.index.documents,
            self.index.chunks,
            self.depth,
            self.k
        )
    }

    /// Rows of the stage table: label, metric cells, latency cells.
    fn rows(&self, metrics: &[String]) -> Vec<Vec<String>> {
        self.stages
            .iter()
            .map(|s| {
                let mut row = vec![self.stage_label(&s.name)];
                row.extend(
                    metrics
                        .iter()
                        .map(|m| s.metrics.get(m).map_or("-".into(), |v| format!("{v:.4}"))),
                );
                let plus = if s.name == STAGE_RERANK { "+" } else { "" };
                let l = &s.latency;
                row.extend([l.mean_ms, l.p50_ms, l.p95_ms].map(|v| format!("{plus}{v:.1}")));
                row
            })
            .collect()
    }

    fn no_reranker_line(&self) -> Option<String> {
        self.no_reranker.as_ref().map(|why| {
            let why = why.strip_prefix("no reranker available: ").unwrap_or(why);
            format!("No reranker was available ({why}); the hybrid + rerank row and every rerank figure are absent.")
        })
    }

    /// The report as aligned text for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.heading());
        let _ = writeln!(out, "{DOCUMENT_LEVEL_NOTE}\n");
        // Precision and MAP are in the JSON and Markdown reports; the
        // terminal keeps to what fits a line.
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .filter(|m| !m.starts_with("p@") && *m != "map")
            .cloned()
            .collect();
        let mut header = vec!["stage".to_string()];
        header.extend(metrics.iter().map(|m| label(m)));
        header.extend(["mean ms", "p50 ms", "p95 ms"].map(String::from));
        out.push_str(&aligned(&header, &self.rows(&metrics)));
        out.push('\n');
        if let Some(line) = self.no_reranker_line() {
            let _ = writeln!(out, "{line}");
        }
        for line in &self.diagnosis.summary {
            let _ = writeln!(out, "{line}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if self.retrieval.queries_short > 0 {
            let _ = writeln!(
                out,
                "note: for {} queries a retriever's list held fewer than {} documents at 1000 chunks",
                self.retrieval.queries_short, self.depth
            );
        }
        let sweeps = self.sweeps.to_text(false);
        if !sweeps.is_empty() {
            let _ = write!(out, "\n{sweeps}");
        }
        out
    }

    /// The report as Markdown (`report.md`).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# sift eval: {}\n", self.heading());
        let _ = writeln!(
            out,
            "Dataset `{}`, corpus `{}`, index `{}` ({}; bi-encoder {}).\n",
            self.dataset_dir,
            self.corpus,
            self.index.path,
            if self.index.reused {
                "reused as it was".to_string()
            } else {
                format!(
                    "{} documents indexed in this run, {:.0} s",
                    self.index.documents_written, self.index.indexing_seconds
                )
            },
            self.index.bi_encoder
        );
        let _ = writeln!(out, "{DOCUMENT_LEVEL_NOTE}\n");
        let mut header = vec!["stage".to_string()];
        header.extend(self.metrics.iter().map(|m| label(m)));
        header.extend(["mean ms", "p50 ms", "p95 ms"].map(String::from));
        out.push_str(&markdown_table(&header, &self.rows(&self.metrics)));
        out.push('\n');
        if let Some(line) = self.no_reranker_line() {
            let _ = writeln!(out, "**{line}**\n");
        }
        let _ = writeln!(out, "## Diagnosis\n");
        for line in &self.diagnosis.summary {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(out, "\n## How it was measured\n");
        let _ = writeln!(out, "- {RETRIEVAL_RULE}");
        let _ = writeln!(out, "- {LATENCY_NOTE}");
        let _ = writeln!(
            out,
            "- Metrics are trec_eval's (sift_metrics), every judged query counted (a query with nothing retrieved scores 0). Run files list each stage's documents with score `n - rank + 1`, so any TREC tool ranks them as the engine did."
        );
        let _ = writeln!(
            out,
            "- MAP is computed on each stage's list as evaluated, i.e. cut at depth ({}); P@{} divides by {} even when fewer documents were retrieved.",
            self.depth, self.k, self.k
        );
        let r = &self.retrieval;
        let sweeps = if r.sweep_chunk_depth_max > 0 {
            format!(
                "; for the sweeps at most {} (lists short of the deepest sweep: {})",
                r.sweep_chunk_depth_max, r.sweep_queries_short
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "- Chunks asked of each retriever: at most {}; queries retried deeper: {}; queries whose list stayed short of depth: {}{sweeps}.",
            r.chunk_depth_max, r.queries_retried, r.queries_short
        );
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        let sweeps = self.sweeps.to_text(true);
        if !sweeps.is_empty() {
            let _ = write!(out, "\n{sweeps}");
        }
        out
    }

    /// Write `report.json`, `report.md` and, when a sweep ran, `sweep.json`,
    /// `sweep.md` and the depth-sweep plot (`sweep.png`, `sweep.svg`).
    pub(crate) fn write(&mut self, out: &Path) -> Result<()> {
        if !self.sweeps.is_empty() {
            let json = serde_json::to_string_pretty(&self.sweeps).expect("serialisable") + "\n";
            write_file(&out.join("sweep.json"), &json)?;
            write_file(&out.join("sweep.md"), &self.sweeps.to_text(true))?;
            self.files.extend(["sweep.json".into(), "sweep.md".into()]);
            if let Some(depth) = &self.sweeps.depth {
                let title = format!("{} ({} queries)", self.dataset, self.queries);
                crate::plot::plot_depth_sweep(depth, &title, &out.join("sweep.png"))?;
                crate::plot::plot_depth_sweep(depth, &title, &out.join("sweep.svg"))?;
                self.files.extend(["sweep.png".into(), "sweep.svg".into()]);
            }
        }
        self.files
            .extend(["report.json".into(), "report.md".into()]);
        let json = serde_json::to_string_pretty(self).expect("serialisable") + "\n";
        write_file(&out.join("report.json"), &json)?;
        write_file(&out.join("report.md"), &self.to_markdown())
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A text table: the first column left-aligned, the others right-aligned.
pub(crate) fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(line, "{cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A Markdown table, numbers right-aligned.
pub(crate) fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "| {} |", align.join(" | "));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(entries: &[(&str, &[&str])]) -> Run {
        entries
            .iter()
            .map(|(q, docs)| {
                let n = docs.len();
                (
                    q.to_string(),
                    docs.iter()
                        .enumerate()
                        .map(|(i, d)| (d.to_string(), (n - i) as f64))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn diagnosis_counts_gap_queries_and_what_reranking_closed() {
        let qrels: Qrels = [
            ("q1", "a"), // in top 1 of hybrid
            ("q2", "c"), // at rank 3: in depth, not in k
            ("q3", "z"), // not retrieved
            ("q4", "d"), // at rank 2: in k
        ]
        .iter()
        .map(|(q, d)| (q.to_string(), BTreeMap::from([(d.to_string(), 1)])))
        .collect();
        let hybrid = run(&[
            ("q1", &["a", "b", "c"]),
            ("q2", &["a", "b", "c"]),
            ("q3", &["a", "b", "c"]),
            ("q4", &["a", "d", "c"]),
        ]);
        // Reranking moves c up for q2 and d down for q4.
        let rerank = run(&[
            ("q1", &["a", "b", "c"]),
            ("q2", &["c", "a", "b"]),
            ("q3", &["a", "b", "c"]),
            ("q4", &["a", "c", "d"]),
        ]);
        let stage = |name: &str, r_k: f64, r_d: f64| StageReport {
            name: name.into(),
            metrics: BTreeMap::from([("recall@2".into(), r_k), ("recall@3".into(), r_d)]),
            latency: Latency::default(),
            run_file: String::new(),
        };
        let stages = [
            stage(STAGE_HYBRID, 0.5, 0.75),
            stage(STAGE_RERANK, 0.5, 0.75),
        ];
        let d = Diagnosis::compute(
            &qrels,
            &hybrid,
            Some(&rerank),
            &stages,
            3,
            2,
            Some("ce".into()),
        );
        assert_eq!(
            (d.queries_hit_at_depth, d.queries_hit_at_k, d.gap_queries),
            (3, 2, 1)
        );
        assert!((d.gap_fraction - 0.25).abs() < 1e-12);
        assert!((d.recall_gap - 0.25).abs() < 1e-12);
        let r = d.rerank.as_ref().unwrap();
        assert_eq!(
            (r.queries_recovered, r.queries_lost, r.queries_hit_at_k),
            (1, 1, 2)
        );
        assert_eq!(r.recall_gap_closed, Some(0.0));
        assert!(
            d.summary[1].starts_with("25.0% of queries (1 of 4)"),
            "{}",
            d.summary[1]
        );

        // Same recall on both sides: nothing is said to have been lowered.
        assert!(r.lowered.is_empty(), "{:?}", r.lowered);
        assert!(!d.summary.iter().any(|l| l.contains("LOWERED")));

        // A reranker that loses nDCG@10 to hybrid is called out, by how much.
        let mut worse = stages.clone();
        worse[0].metrics.insert("ndcg@10".into(), 0.8493);
        worse[1].metrics.insert("ndcg@10".into(), 0.7865);
        let d = Diagnosis::compute(
            &qrels,
            &hybrid,
            Some(&rerank),
            &worse,
            3,
            2,
            Some("ce".into()),
        );
        let lowered = &d.rerank.as_ref().unwrap().lowered;
        assert_eq!(lowered.len(), 1);
        assert_eq!(lowered[0].metric, "ndcg@10");
        let line = d.summary.last().unwrap();
        assert!(
            line.contains("LOWERED nDCG@10 from 0.8493 to 0.7865 (-0.0628)"),
            "{line}"
        );

        let d = Diagnosis::compute(&qrels, &hybrid, None, &stages[..1], 3, 2, None);
        assert!(d.rerank.is_none());
        assert!(d.summary.last().unwrap().contains("No reranker"));
    }

    #[test]
    fn tables_align() {
        let header = vec!["stage".to_string(), "R@5".into()];
        let rows = vec![
            vec!["BM25".to_string(), "0.5000".into()],
            vec!["hybrid (RRF k=60)".into(), "1.0000".into()],
        ];
        let text = aligned(&header, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
        let md = markdown_table(&header, &rows);
        assert!(md.starts_with("| stage | R@5 |\n| --- | ---: |\n"), "{md}");
        assert_eq!(label("recall@50"), "R@50");
        assert_eq!(label("ndcg@10"), "nDCG@10");
    }
}
