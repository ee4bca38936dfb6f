//! Ranking metrics with trec_eval semantics (as computed by pytrec_eval).
//!
//! For each evaluated query:
//!
//! * the run's documents are ranked by score descending, ties broken by
//!   document id descending ([`crate::trec_order`]); the order the run gives
//!   is ignored, as in trec_eval. Like trec_eval, scores are compared as
//!   `f32`: scores that differ only beyond `f32` precision tie. A document
//!   listed twice keeps its best rank;
//! * a document is relevant when its qrels grade is at least 1
//!   ([`RELEVANCE_LEVEL`]); unjudged documents have grade 0;
//! * nDCG uses the grade as a linear gain (negative grades gain 0), discount
//!   `log2(rank + 1)`, and the ideal DCG of the query's qrels grades sorted
//!   descending and cut at the same k;
//! * `p@k` divides by k even when fewer documents were retrieved; `recall@k`
//!   and `map` divide by the number of relevant documents in the qrels (a
//!   query without relevant documents scores 0 on every metric).
//!
//! | name       | trec_eval measure | value                                        |
//! |------------|-------------------|----------------------------------------------|
//! | `ndcg@k`   | `ndcg_cut_k`      | DCG@k / ideal DCG@k                          |
//! | `ndcg`     | `ndcg`            | nDCG over the whole ranking                  |
//! | `recall@k` | `recall_k`        | relevant in top k / relevant                 |
//! | `p@k`      | `P_k`             | relevant in top k / k                        |
//! | `mrr@k`    | —                 | 1 / rank of the first relevant, 0 beyond k   |
//! | `mrr`      | `recip_rank`      | uncut reciprocal rank                        |
//! | `map`      | `map`             | mean of precision at each relevant / relevant|
//! | `map@k`    | `map_cut_k`       | the same, counting only ranks ≤ k            |

use crate::beir::Qrels;
use crate::trec::{trec_cmp, Run};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// Lowest grade that makes a document relevant (trec_eval's default
/// `relevance_level`).
pub const RELEVANCE_LEVEL: i32 = 1;

/// The families of metrics; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    Ndcg,
    Recall,
    Precision,
    Mrr,
    Map,
}

impl MetricKind {
    fn name(self) -> &'static str {
        match self {
            MetricKind::Ndcg => "ndcg",
            MetricKind::Recall => "recall",
            MetricKind::Precision => "p",
            MetricKind::Mrr => "mrr",
            MetricKind::Map => "map",
        }
    }

    /// Whether the metric needs a cutoff (`recall@k`, `p@k`).
    pub fn needs_cutoff(self) -> bool {
        matches!(self, MetricKind::Recall | MetricKind::Precision)
    }
}

/// One metric, optionally cut at rank `k`.
///
/// Parsed from and displayed as `ndcg@10`, `recall@5`, `p@5`, `mrr@10`,
/// `map`, `ndcg`, `mrr`, `map@100`. Parsing is case-insensitive and also
/// accepts trec_eval's names (`ndcg_cut_10`, `recall_5`, `P_5`,
/// `recip_rank`, `map_cut_100`) and `precision@k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metric {
    kind: MetricKind,
    k: Option<usize>,
}

impl Metric {
    /// `k` must be at least 1; recall and precision need one.
    pub fn new(kind: MetricKind, k: Option<usize>) -> Result<Metric> {
        let metric = Metric { kind, k };
        if k == Some(0) {
            return Err(metric.invalid("the cutoff must be at least 1"));
        }
        if k.is_none() && kind.needs_cutoff() {
            return Err(metric.invalid("needs a cutoff, e.g. @10"));
        }
        Ok(metric)
    }

    pub fn ndcg(k: usize) -> Metric {
        Metric::new(MetricKind::Ndcg, Some(k)).expect("k >= 1")
    }
    pub fn recall(k: usize) -> Metric {
        Metric::new(MetricKind::Recall, Some(k)).expect("k >= 1")
    }
    pub fn precision(k: usize) -> Metric {
        Metric::new(MetricKind::Precision, Some(k)).expect("k >= 1")
    }
    pub fn mrr(k: usize) -> Metric {
        Metric::new(MetricKind::Mrr, Some(k)).expect("k >= 1")
    }
    /// Uncut MAP (trec_eval's `map`).
    pub fn map() -> Metric {
        Metric {
            kind: MetricKind::Map,
            k: None,
        }
    }

    pub fn kind(&self) -> MetricKind {
        self.kind
    }
    pub fn k(&self) -> Option<usize> {
        self.k
    }

    fn invalid(&self, message: &str) -> Error {
        Error::InvalidMetric {
            name: self.to_string(),
            message: message.into(),
        }
    }

    /// The metric's value for one query, given the grades of its ranked
    /// documents (rank order) and its qrels.
    fn compute(&self, ranked: &[i32], judged: &JudgedQuery) -> f64 {
        let k = self.k.unwrap_or(usize::MAX);
        let top = &ranked[..ranked.len().min(k)];
        let relevant = |g: &&i32| **g >= RELEVANCE_LEVEL;
        match self.kind {
            MetricKind::Ndcg => {
                let ideal = dcg(&judged.ideal_gains[..judged.ideal_gains.len().min(k)]);
                if ideal > 0.0 {
                    let gains: Vec<i32> = top.iter().map(|&g| g.max(0)).collect();
                    dcg(&gains) / ideal
                } else {
                    0.0
                }
            }
            MetricKind::Recall => {
                if judged.num_rel == 0 {
                    0.0
                } else {
                    top.iter().filter(relevant).count() as f64 / judged.num_rel as f64
                }
            }
            MetricKind::Precision => top.iter().filter(relevant).count() as f64 / k as f64,
            MetricKind::Mrr => top
                .iter()
                .position(|&g| g >= RELEVANCE_LEVEL)
                .map_or(0.0, |i| 1.0 / (i + 1) as f64),
            MetricKind::Map => {
                if judged.num_rel == 0 {
                    return 0.0;
                }
                let mut found = 0usize;
                let mut sum = 0.0;
                for (i, &g) in top.iter().enumerate() {
                    if g >= RELEVANCE_LEVEL {
                        found += 1;
                        sum += found as f64 / (i + 1) as f64;
                    }
                }
                sum / judged.num_rel as f64
            }
        }
    }
}

/// Discounted cumulative gain of gains in rank order: Σ gain / log2(rank + 1).
fn dcg(gains: &[i32]) -> f64 {
    gains
        .iter()
        .enumerate()
        .filter(|(_, &g)| g != 0)
        .map(|(i, &g)| g as f64 / ((i + 2) as f64).log2())
        .sum()
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.k {
            Some(k) => write!(f, "{}@{k}", self.kind.name()),
            None => f.write_str(self.kind.name()),
        }
    }
}

impl FromStr for Metric {
    type Err = Error;

    fn from_str(name: &str) -> Result<Metric> {
        let invalid = |message: &str| Error::InvalidMetric {
            name: name.to_owned(),
            message: message.to_owned(),
        };
        let lower = name.trim().to_ascii_lowercase();
        let (base, k) = match lower.split_once('@') {
            Some((base, k)) => (base.to_owned(), Some(k)),
            None => match lower.rsplit_once('_') {
                Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => (
                    base.strip_suffix("_cut").unwrap_or(base).to_owned(),
                    Some(k),
                ),
                _ => (lower.clone(), None),
            },
        };
        let k = k
            .map(|k| {
                k.parse::<usize>()
                    .map_err(|_| invalid("the cutoff must be a positive integer"))
            })
            .transpose()?;
        let kind = match base.as_str() {
            "ndcg" => MetricKind::Ndcg,
            "recall" | "r" => MetricKind::Recall,
            "p" | "precision" => MetricKind::Precision,
            "mrr" | "rr" | "recip_rank" => MetricKind::Mrr,
            "map" => MetricKind::Map,
            _ => {
                return Err(invalid(
                    "unknown metric; expected ndcg, recall, p, mrr or map (e.g. ndcg@10)",
                ))
            }
        };
        Metric::new(kind, k).map_err(|e| match e {
            Error::InvalidMetric { message, .. } => invalid(&message),
            other => other,
        })
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parse a comma-separated list such as `ndcg@10,recall@5,map`; blanks are
/// skipped and repeats dropped (first occurrence kept).
pub fn parse_metrics(list: &str) -> Result<Vec<Metric>> {
    let mut out: Vec<Metric> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let metric: Metric = name.parse()?;
        if !out.contains(&metric) {
            out.push(metric);
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidMetric {
            name: list.to_owned(),
            message: "no metric given".into(),
        });
    }
    Ok(out)
}

/// Which queries are evaluated (queries of the run that are not in the
/// qrels are never evaluated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingQueries {
    /// Every query of the qrels is evaluated; one the run lacks scores 0 on
    /// every metric (trec_eval's `-c`). The fair choice for judging an
    /// engine: a query it failed to answer cannot raise its mean.
    #[default]
    Zero,
    /// Only queries in both the qrels and the run are evaluated: what
    /// pytrec_eval and plain trec_eval do. Means are then over fewer
    /// queries when the run lacks some. A query the run holds with an empty
    /// list is evaluated (scoring 0), as pytrec_eval does with `{}`.
    Skip,
}

/// The result of [`evaluate`]. Keys are the metrics' display names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Query id → metric → value.
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
    /// Metric → mean over the evaluated queries (0 when there are none).
    pub mean: BTreeMap<String, f64>,
    /// How many queries were evaluated.
    pub num_queries: usize,
}

/// What the metrics need from one query's qrels.
struct JudgedQuery {
    num_rel: usize,
    /// Non-negative gains of all judged documents, descending.
    ideal_gains: Vec<i32>,
}

impl JudgedQuery {
    fn new(judgements: &BTreeMap<String, i32>) -> Self {
        let num_rel = judgements
            .values()
            .filter(|&&g| g >= RELEVANCE_LEVEL)
            .count();
        let mut ideal_gains: Vec<i32> = judgements
            .values()
            .map(|&g| g.max(0))
            .filter(|&g| g > 0)
            .collect();
        ideal_gains.sort_unstable_by(|a, b| b.cmp(a));
        JudgedQuery {
            num_rel,
            ideal_gains,
        }
    }
}

/// The grades of a query's retrieved documents in trec_eval rank order.
fn ranked_grades(docs: &[(String, f64)], judgements: &BTreeMap<String, i32>) -> Vec<i32> {
    let mut ranked: Vec<&(String, f64)> = docs.iter().collect();
    ranked.sort_by(|a, b| trec_cmp(a, b));
    let mut seen = HashSet::with_capacity(ranked.len());
    ranked
        .into_iter()
        .filter(|(id, _)| seen.insert(id.as_str()))
        .map(|(id, _)| judgements.get(id).copied().unwrap_or(0))
        .collect()
}

/// Score `run` against `qrels` on every metric, per query and on average.
/// See [`MissingQueries`] for which queries count.
pub fn evaluate(
    qrels: &Qrels,
    run: &Run,
    metrics: &[Metric],
    missing: MissingQueries,
) -> Evaluation {
    let mut eval = Evaluation::default();
    let mut sums: BTreeMap<String, f64> = metrics.iter().map(|m| (m.to_string(), 0.0)).collect();
    for (qid, judgements) in qrels {
        let docs = match (run.get(qid), missing) {
            (Some(docs), _) => docs.as_slice(),
            (None, MissingQueries::Zero) => &[],
            (None, MissingQueries::Skip) => continue,
        };
        let judged = JudgedQuery::new(judgements);
        let ranked = ranked_grades(docs, judgements);
        let values: BTreeMap<String, f64> = metrics
            .iter()
            .map(|m| (m.to_string(), m.compute(&ranked, &judged)))
            .collect();
        for (name, v) in &values {
            *sums.get_mut(name).expect("same metrics") += v;
        }
        eval.per_query.insert(qid.clone(), values);
    }
    eval.num_queries = eval.per_query.len();
    let n = eval.num_queries;
    eval.mean = sums
        .into_iter()
        .map(|(name, sum)| (name, if n == 0 { 0.0 } else { sum / n as f64 }))
        .collect();
    eval
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    fn qrels(entries: &[(&str, &[(&str, i32)])]) -> Qrels {
        entries
            .iter()
            .map(|(q, docs)| {
                (
                    q.to_string(),
                    docs.iter().map(|(d, g)| (d.to_string(), *g)).collect(),
                )
            })
            .collect()
    }

    fn run(entries: &[(&str, &[(&str, f64)])]) -> Run {
        entries
            .iter()
            .map(|(q, docs)| {
                (
                    q.to_string(),
                    docs.iter().map(|(d, s)| (d.to_string(), *s)).collect(),
                )
            })
            .collect()
    }

    fn metrics(list: &str) -> Vec<Metric> {
        parse_metrics(list).unwrap()
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        assert!(
            (actual - expected).abs() < EPS,
            "{what}: got {actual}, expected {expected}"
        );
    }

    fn check(eval: &Evaluation, qid: &str, expected: &[(&str, f64)]) {
        for (name, value) in expected {
            assert_close(eval.per_query[qid][*name], *value, &format!("{qid} {name}"));
        }
    }

    #[test]
    fn names_parse_and_display() {
        for (name, shown) in [
            ("ndcg@10", "ndcg@10"),
            ("NDCG_cut_10", "ndcg@10"),
            ("recall@5", "recall@5"),
            ("recall_5", "recall@5"),
            ("P@5", "p@5"),
            ("P_5", "p@5"),
            ("precision@3", "p@3"),
            ("mrr@10", "mrr@10"),
            ("recip_rank", "mrr"),
            ("mrr", "mrr"),
            ("map", "map"),
            ("map_cut_100", "map@100"),
            (" ndcg ", "ndcg"),
        ] {
            let m: Metric = name.parse().unwrap();
            assert_eq!(m.to_string(), shown, "{name}");
            assert_eq!(shown.parse::<Metric>().unwrap(), m);
        }
        for bad in ["recall", "p", "ndcg@0", "ndcg@x", "bleu@4", "", "ndcg@-1"] {
            assert!(
                matches!(bad.parse::<Metric>(), Err(Error::InvalidMetric { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            metrics("ndcg@10, map,,ndcg_cut_10"),
            vec![Metric::ndcg(10), Metric::map()]
        );
        assert!(parse_metrics(" , ").is_err());
        assert_eq!(
            serde_json::to_string(&Metric::recall(5)).unwrap(),
            "\"recall@5\""
        );
    }

    #[test]
    fn ties_are_broken_by_docid_descending() {
        // Given order a, b, c, d; scores tie for a, b, c. trec_eval ranks
        // d (2.0), then c, b, a (1.0 each, id descending).
        let q = qrels(&[("q", &[("a", 1)])]);
        let r = run(&[("q", &[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 2.0)])]);
        let e = evaluate(
            &q,
            &r,
            &metrics("mrr,mrr@3,p@1,recall@3,recall@4,map"),
            MissingQueries::Skip,
        );
        check(
            &e,
            "q",
            &[
                ("mrr", 0.25),
                ("mrr@3", 0.0),
                ("p@1", 0.0),
                ("recall@3", 0.0),
                ("recall@4", 1.0),
                ("map", 0.25),
            ],
        );
    }

    #[test]
    fn graded_ndcg() {
        // Ranking: d1 (grade 0), d2 (2), d3 (not judged), d4 (1), d5 (-1).
        // Qrels also hold d6 (3), never retrieved.
        let q = qrels(&[(
            "q",
            &[("d1", 0), ("d2", 2), ("d4", 1), ("d5", -1), ("d6", 3)],
        )]);
        let r = run(&[(
            "q",
            &[
                ("d1", 5.0),
                ("d2", 4.0),
                ("d3", 3.0),
                ("d4", 2.0),
                ("d5", 1.0),
            ],
        )]);
        let e = evaluate(
            &q,
            &r,
            &metrics("ndcg@1,ndcg@3,ndcg@5,ndcg,p@5,recall@5,map,mrr@10"),
            MissingQueries::Skip,
        );
        let l = |rank: f64| (rank + 1.0).log2();
        let dcg3 = 2.0 / l(2.0);
        let dcg5 = dcg3 + 1.0 / l(4.0);
        let idcg3 = 3.0 / l(1.0) + 2.0 / l(2.0) + 1.0 / l(3.0);
        check(
            &e,
            "q",
            &[
                ("ndcg@1", 0.0),
                ("ndcg@3", dcg3 / idcg3),
                ("ndcg@5", dcg5 / idcg3),
                ("ndcg", dcg5 / idcg3),
                ("p@5", 2.0 / 5.0),
                ("recall@5", 2.0 / 3.0),
                ("map", (1.0 / 2.0 + 2.0 / 4.0) / 3.0),
                ("mrr@10", 0.5),
            ],
        );
    }

    #[test]
    fn cutoff_beyond_run_length() {
        let q = qrels(&[("q", &[("a", 1), ("b", 1), ("z", 1)])]);
        let r = run(&[("q", &[("a", 0.9), ("b", 0.8)])]);
        let e = evaluate(
            &q,
            &r,
            &metrics("p@10,recall@100,ndcg@100,mrr@1000,map@50"),
            MissingQueries::Skip,
        );
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        check(
            &e,
            "q",
            &[
                ("p@10", 0.2),
                ("recall@100", 2.0 / 3.0),
                ("ndcg@100", (1.0 + 1.0 / 3f64.log2()) / idcg),
                ("mrr@1000", 1.0),
                ("map@50", 2.0 / 3.0),
            ],
        );
    }

    #[test]
    fn empty_runs_and_missing_queries() {
        let q = qrels(&[
            ("q1", &[("a", 1)]),
            ("q2", &[("a", 2)]),
            ("q3", &[("a", 0)]),
        ]);
        // q1 answered perfectly, q2 has an empty list, q3 has no relevant

        let r = run(&[
            ("q1", &[("a", 1.0)]),
            ("q2", &[]),
            ("q3", &[("a", 1.0)]),
            ("q4", &[("a", 1.0)]),
        ]);
        let m = metrics("ndcg@10,recall@5,p@5,mrr@10,map");
        let e = evaluate(&q, &r, &m, MissingQueries::Skip);
        assert_eq!(e.num_queries, 3);
        assert!(!e.per_query.contains_key("q4"));
        for name in ["ndcg@10", "recall@5", "mrr@10", "map"] {
            assert_close(e.per_query["q2"][name], 0.0, name);
            assert_close(e.per_query["q3"][name], 0.0, name);
            assert_close(e.mean[name], 1.0 / 3.0, name);
        }
        assert_close(e.mean["p@5"], 0.2 / 3.0, "p@5");

        // Drop q1 from the run: Skip evaluates q2, q3 only; Zero keeps q1 as 0.
        let mut r2 = r.clone();
        r2.remove("q1");
        let skip = evaluate(&q, &r2, &m, MissingQueries::Skip);
        assert_eq!(skip.num_queries, 2);
        assert!(!skip.per_query.contains_key("q1"));
        let zero = evaluate(&q, &r2, &m, MissingQueries::Zero);
        assert_eq!(zero.num_queries, 3);
        assert_close(zero.per_query["q1"]["ndcg@10"], 0.0, "q1");
        // With a complete run the two modes agree.
        assert_eq!(evaluate(&q, &r, &m, MissingQueries::Zero), e);
        // Nothing to evaluate: means are 0.
        let none = evaluate(&q, &Run::new(), &m, MissingQueries::Skip);
        assert_eq!(none.num_queries, 0);
        assert_close(none.mean["map"], 0.0, "map");
    }

    #[test]
    fn duplicate_documents_keep_their_best_rank() {
        let q = qrels(&[("q", &[("a", 1)])]);
        let r = run(&[("q", &[("b", 3.0), ("a", 2.0), ("b", 1.0)])]);
        let e = evaluate(&q, &r, &metrics("p@3,mrr"), MissingQueries::Skip);
        check(&e, "q", &[("p@3", 1.0 / 3.0), ("mrr", 0.5)]);
    }

    #[test]
    fn evaluation_serialises_with_metric_names() {
        let q = qrels(&[("q", &[("a", 1)])]);
        let r = run(&[("q", &[("a", 1.0)])]);
        let e = evaluate(&q, &r, &metrics("ndcg@10,map"), MissingQueries::Zero);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["per_query"]["q"]["ndcg@10"], 1.0);
        assert_eq!(json["mean"]["map"], 1.0);
        assert_eq!(json["num_queries"], 1);
    }
}
