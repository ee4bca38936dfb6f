//! The `sift score` command: evaluate a TREC run file against qrels.

use crate::metrics::{evaluate, Evaluation, Metric, MissingQueries};
use crate::{read_qrels, read_run, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The metrics `sift score` reports when none are named.
pub const DEFAULT_METRICS: &str = "ndcg@10,recall@5,recall@10,mrr@10,map";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned text table, one column per metric.
    #[default]
    Table,
    /// `{"mean": {...}, "num_queries": N, "missing_queries": "...",
    /// "per_query": {...}}` (`per_query` only when asked for).
    Json,
}

/// Everything `sift score` needs.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// Qrels, BEIR TSV or TREC format.
    pub qrels: PathBuf,
    /// TREC run file.
    pub run: PathBuf,
    pub metrics: Vec<Metric>,
    /// Also report each query's values.
    pub per_query: bool,
    pub missing: MissingQueries,
    pub format: OutputFormat,
}

/// Read the qrels and the run, evaluate, and render the result.
pub fn score_command(opts: &ScoreOptions) -> Result<String> {
    let qrels = read_qrels(&opts.qrels)?;
    let run = read_run(&opts.run)?;
    let eval = evaluate(&qrels, &run, &opts.metrics, opts.missing);
    tracing::debug!(
        queries = eval.num_queries,
        run_queries = run.len(),
        qrels_queries = qrels.len(),
        "scored run"
    );
    Ok(match opts.format {
        OutputFormat::Json => render_json(&eval, opts.missing, opts.per_query),
        OutputFormat::Table => render_table(&eval, &opts.metrics, opts.per_query),
    })
}

/// JSON rendering (values at full precision).
pub fn render_json(eval: &Evaluation, missing: MissingQueries, per_query: bool) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        mean: &'a BTreeMap<String, f64>,
        num_queries: usize,
        missing_queries: MissingQueries,
        #[serde(skip_serializing_if = "Option::is_none")]
        per_query: Option<&'a BTreeMap<String, BTreeMap<String, f64>>>,
    }
    let out = Out {
        mean: &eval.mean,
        num_queries: eval.num_queries,
        missing_queries: missing,
        per_query: per_query.then_some(&eval.per_query),
    };
    let mut text = serde_json::to_string_pretty(&out).expect("evaluation is serialisable");
    text.push('\n');
    text
}

/// A table with one column per metric (in the order given), a row per query
/// when `per_query`, and a final `mean` row; values to 4 decimals.
pub fn render_table(eval: &Evaluation, metrics: &[Metric], per_query: bool) -> String {
    let names: Vec<String> = metrics.iter().map(Metric::to_string).collect();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let cells = |values: &BTreeMap<String, f64>| -> Vec<String> {
        names
            .iter()
            .map(|n| values.get(n).map_or("-".into(), |v| format!("{v:.4}")))
            .collect()
    };
    if per_query {
        for (qid, values) in &eval.per_query {
            rows.push((qid.clone(), cells(values)));
        }
    }
    rows.push(("mean".into(), cells(&eval.mean)));

    let first = rows
        .iter()
        .map(|(q, _)| q.chars().count())
        .chain(["query".len()])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = names.iter().map(|n| n.len().max(6)).collect();
    let mut out = String::new();
    let mut line = |label: &str, values: &[String]| {
        let _ = write!(out, "{label:<first$}");
        for (v, w) in values.iter().zip(&widths) {
            let _ = write!(out, "  {v:>w$}");
        }
        out.push('\n');
    };
    line("query", &names);
    for (label, values) in &rows {
        line(label, values);
    }
    let _ = writeln!(out, "({} queries)", eval.num_queries);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_metrics;

    #[test]
    fn score_command_renders_json_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let qrels = dir.path().join("qrels.tsv");
        let run = dir.path().join("run.trec");
        std::fs::write(&qrels, "query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tb\t1\n").unwrap();
        std::fs::write(&run, "q1 Q0 a 1 2.5 t\nq1 Q0 c 2 1 t\nq3 Q0 a 1 1 t\n").unwrap();
        let mut opts = ScoreOptions {
            qrels,
            run,
            metrics: parse_metrics("ndcg@10,p@1,map").unwrap(),
            per_query: true,
            missing: MissingQueries::Skip,
            format: OutputFormat::Json,
        };
        let json: serde_json::Value = serde_json::from_str(&score_command(&opts).unwrap()).unwrap();
        assert_eq!(json["num_queries"], 1);
        assert_eq!(json["per_query"]["q1"]["p@1"], 1.0);
        assert_eq!(json["missing_queries"], "skip");

        opts.missing = MissingQueries::Zero;
        opts.per_query = false;
        let json: serde_json::Value = serde_json::from_str(&score_command(&opts).unwrap()).unwrap();
        assert_eq!(json["num_queries"], 2);
        assert_eq!(json["mean"]["map"], 0.5);
        assert!(json.get("per_query").is_none());

        opts.format = OutputFormat::Table;
        opts.per_query = true;
        let table = score_command(&opts).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[0].starts_with("query") && lines[0].ends_with("map"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("mean") && lines[3].contains("0.5000"),
            "{table}"
        );
        // Every row has the same width.
        assert!(
            lines[..4].iter().all(|l| l.len() == lines[0].len()),
            "{table}"
        );
    }
}
