//! `sift score`: evaluate a TREC run file against qrels with
//! trec_eval-compatible metrics (see `sift_metrics::metrics`).

use anyhow::Context;
use sift_metrics::{parse_metrics, score_command, MissingQueries, OutputFormat, ScoreOptions};
use std::io::Write;
use std::path::PathBuf;

/// Score a TREC run (`qid Q0 docid rank score tag`) against relevance
/// judgements.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Qrels file: BEIR TSV (`query-id corpus-id score`) or TREC
    /// (`qid 0 docid rel`); the format is detected.
    #[arg(long)]
    pub qrels: PathBuf,
    /// Run file in TREC format.
    #[arg(long)]
    pub run: PathBuf,
    /// Comma-separated metrics: ndcg@K, recall@K, p@K, mrr@K, map, map@K,
    /// ndcg, mrr (trec_eval names such as ndcg_cut_10 are accepted too).
    #[arg(long, default_value = sift_metrics::DEFAULT_METRICS)]
    pub metrics: String,
    /// Also report every query's values.
    #[arg(long)]
    pub per_query: bool,
    /// Evaluate only the queries present in both the run and the qrels, as
    /// pytrec_eval / trec_eval do. By default every qrels query counts and
    /// one missing from the run scores 0.
    #[arg(long)]
    pub pytrec_compatible: bool,
    /// Print JSON (`{"mean", "num_queries", "missing_queries", "per_query"?}`)
    /// instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let metrics = parse_metrics(&args.metrics)?;
    let opts = ScoreOptions {
        qrels: args.qrels,
        run: args.run,
        metrics,
        per_query: args.per_query,
        missing: if args.pytrec_compatible {
            MissingQueries::Skip
        } else {
            MissingQueries::Zero
        },
        format: if args.json {
            OutputFormat::Json
        } else {
            OutputFormat::Table
        },
    };
    let text = score_command(&opts).with_context(|| {
        format!(
            "scoring {} against {}",
            opts.run.display(),
            opts.qrels.display()
        )
    })?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
