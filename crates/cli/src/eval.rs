//! `sift eval`: measure every stage on a relevance-judged dataset, and
//! optionally sweep depth, the RRF constant and the per-retriever depth
//! (see `sift_eval`).

use crate::settings::Settings;
use anyhow::Context;
use sift_eval::{EvalOptions, EvalRun};
use std::path::{Path, PathBuf};

/// Evaluate BM25, dense, hybrid and hybrid + rerank on a BEIR dataset:
/// metrics, latency, the recall-at-depth diagnosis, sweeps and plots.
///
/// The index is `--index` when given (flag or SIFT_INDEX), otherwise
/// `indexes/<dataset folder name>`; it is built on first use and reused
/// while it holds as many documents as the corpus.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// BEIR dataset folder: queries.jsonl, qrels/SPLIT.tsv and (unless
    /// --corpus names one) corpus.jsonl.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Qrels split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Corpus to index instead of DATASET/corpus.jsonl: a .jsonl file, or a
    /// folder of .txt/.md files whose paths under it are the document ids.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Output folder [default: eval/out/<dataset folder name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Documents handed to the reranker (distinct documents).
    #[arg(long, default_value_t = 50)]
    pub depth: usize,
    /// Documents the user sees (distinct documents).
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Recall cutoffs to report (k and depth are always added).
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    pub metrics_k: Vec<usize>,
    /// Rerank at each of these depths, holding k; plots sweep.png/svg.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub sweep_depth: Vec<usize>,
    /// Compare these RRF constants on the hybrid list.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub sweep_rrf_k: Vec<f32>,
    /// Compare these numbers of documents each retriever contributes.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub sweep_retriever_depth: Vec<usize>,
    /// RRF constant [default: config search.rrf_k].
    #[arg(long)]
    pub rrf_k: Option<f32>,
    /// Delete the index and build it again.
    #[arg(long)]
    pub reindex: bool,
    /// Reranker of the rerank stage: cross-encoder, llm or listwise
    /// [default: config search.reranker].
    #[arg(long, value_name = "KIND")]
    pub reranker: Option<sift_core::RerankerKind>,
    /// Instruction for the llm/listwise rerankers.
    #[arg(long)]
    pub instruction: Option<String>,
    /// Weight of the stage-1 order in the reranked order, 0 to 1
    /// [default: config search.stage1_weight, else the reranker's own].
    #[arg(long, value_name = "W")]
    pub stage1_weight: Option<f32>,
    /// Evaluate only the first N queries (a quick look).
    #[arg(long, value_name = "N")]
    pub max_queries: Option<usize>,
}

pub fn run(settings: &Settings, args: EvalArgs) -> anyhow::Result<()> {
    let name = dataset_name(&args.dataset);
    let mut settings = settings.clone();
    if !index_given() {
        settings.index = Path::new("indexes").join(&name);
    }
    let mut config = settings.load()?;
    if let Some(rrf_k) = args.rrf_k {
        config.search.rrf_k = rrf_k;
    }
    if let Some(kind) = args.reranker {
        config.search.reranker = kind;
    }
    if args.instruction.is_some() {
        config.search.instruction = args.instruction.clone();
    }
    if args.stage1_weight.is_some() {
        config.search.stage1_weight = args.stage1_weight;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("eval/out").join(&name));
    let mut options = EvalOptions::new(&args.dataset, settings.index(), &out);
    options.split = args.split;
    options.corpus = args.corpus;
    options.config = config;
    options.depth = args.depth;
    options.k = args.k;
    options.recall_at = args.metrics_k;
    options.sweep_depth = args.sweep_depth;
    options.sweep_rrf_k = args.sweep_rrf_k;
    options.sweep_retriever_depth = args.sweep_retriever_depth;
    options.reindex = args.reindex;
    options.max_queries = args.max_queries;
    options.progress = true;

    eprintln!(
        "evaluating {} ({} split) with the index {}",
        args.dataset.display(),
        options.split,
        settings.index().display()
    );
    let run = EvalRun::open(options)
        .with_context(|| format!("preparing the evaluation of {}", args.dataset.display()))?;
    let report = run.run()?;
    print!("{}", report.to_table());
    println!("\nwrote {} to {}", report.files.join(", "), out.display());
    Ok(())
}

/// The dataset folder's name (`scifact`), for default paths.
fn dataset_name(dir: &Path) -> String {
    dir.canonicalize()
        .unwrap_or_else(|_| dir.to_owned())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}

/// Whether the user named the index: `--index` has a default value, so
/// clap cannot tell us; look at the arguments and the environment.
fn index_given() -> bool {
    std::env::var_os("SIFT_INDEX").is_some()
        || std::env::args_os().any(|a| {
            let a = a.to_string_lossy();
            a == "--index" || a.starts_with("--index=")
        })
}
