//! `sift`: the command-line face of the sift retrieval engine.

mod eval;
mod output;
mod score;
mod serve;
mod settings;
mod train;

use anyhow::Context;
use clap::{Parser, Subcommand};
use settings::Settings;
use sift_core::rescore::{Rescore, Rule};
use sift_core::{Config, Document, SearchOptions};
use sift_engine::{ingest::Source, Engine};
use std::path::PathBuf;

/// Two-stage retrieval: BM25 + dense (HNSW) fused by RRF, then a
/// cross-encoder rerank.
#[derive(Parser)]
#[command(name = "sift", version, about)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    /// More logging (-v info, -vv debug); SIFT_LOG takes a tracing filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Index a folder of .txt/.md files (recursively) or a BEIR corpus.jsonl.
    Index {
        /// Folder or .jsonl file.
        path: PathBuf,
    },
    /// Remove a document (all its chunks) from the index.
    Delete {
        /// Document id (for folders: the path under the indexed folder).
        doc_id: String,
    },
    /// Answer a query.
    Search(SearchArgs),
    /// Counts and sizes of the index.
    Stats,
    /// Rebuild the HNSW graph without the points of replaced and deleted
    /// chunks (from the stored vectors; nothing is re-embedded). `sift
    /// serve` and `sift index` do it on their own past
    /// `index.compact_dead_ratio`; this does it now, at any ratio.
    Compact,
    /// Measure HNSW recall@k against exact search.
    CheckHnsw {
        /// Queries to embed (a BEIR queries.jsonl); without it, stored chunk
        /// vectors are used as queries.
        #[arg(long)]
        queries: Option<PathBuf>,
        /// Number of sampled queries when no file is given.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
    },
    /// Score a TREC run against qrels (trec_eval-compatible metrics).
    Score(score::ScoreArgs),
    /// Evaluate every stage on a BEIR dataset: metrics, latency, sweeps, plots.
    Eval(eval::EvalArgs),
    /// Train the cross-encoder reranker from a dataset's judgements.
    TrainReranker(train::TrainArgs),
    /// Serve the HTTP API (crates/server/README.md) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Print the effective configuration as TOML.
    Config,
}

#[derive(clap::Args)]
struct SearchArgs {
    query: String,
    /// Candidates retrieved for the reranker [default: config search.depth].
    #[arg(long)]
    depth: Option<usize>,
    /// Hits returned [default: config search.k].
    #[arg(long)]
    k: Option<usize>,
    /// Skip stage 2; return the fused stage-1 order.
    #[arg(long)]
    no_rerank: bool,
    /// Stage-2 reranker: cross-encoder, llm (pointwise P(yes)) or listwise
    /// (RankGPT windows) [default: config search.reranker].
    #[arg(long, value_name = "KIND")]
    reranker: Option<sift_core::RerankerKind>,
    /// An instruction, e.g. "prefer recent documents": read as text by the
    /// llm/listwise rerankers; for the cross-encoder (or --no-rerank)
    /// mapped to rescoring rules (recent/newer, older, official, source X),
    /// saying what it did not understand [default: config search.instruction].
    #[arg(long)]
    instruction: Option<String>,
    /// Prefer newer documents by their `date` metadata: exponential decay
    /// from now with this half-life (90d, 12w, 6mo, 1y), at weight 0.5.
    #[arg(long, value_name = "SCALE")]
    prefer_recent: Option<String>,
    /// Multiply the score of hits whose metadata matches:
    /// FIELD=VALUE[|VALUE…]:FACTOR, e.g. 'source=official:1.5' (a trailing
    /// * matches a prefix). Repeatable.
    #[arg(long, value_name = "RULE")]
    boost: Vec<String>,
    /// Rescoring rules from a JSON or TOML file (the `search.rescore` table:
    /// rules, basis, combine), in place of the configured ones; --prefer-recent
    /// and --boost add to them.
    #[arg(long, value_name = "FILE")]
    rescore: Option<PathBuf>,
    /// Keep only hits whose metadata has KEY equal to VALUE (a JSON value,
    /// else a string). Repeatable; all must hold.
    #[arg(long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Reciprocal rank fusion constant.
    #[arg(long)]
    rrf_k: Option<f32>,
    /// Weight of the stage-1 order in the final order, 0 to 1 (rank blend)
    /// [default: config search.stage1_weight, else the reranker's own].
    #[arg(long, value_name = "W")]
    stage1_weight: Option<f32>,
    /// Hits each retriever contributes to fusion [default: depth].
    #[arg(long)]
    retriever_depth: Option<usize>,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
    /// Show every score with its provenance.
    #[arg(long)]
    explain: bool,
    /// Print per-stage timings.
    #[arg(long)]
    timings: bool,
}

impl SearchArgs {
    fn options(&self, config: &Config) -> anyhow::Result<SearchOptions> {
        let d = &config.search;
        let mut rescore = match &self.rescore {
            Some(path) => read_rescore(path)?,
            None => d.rescore.clone(),
        };
        if let Some(scale) = &self.prefer_recent {
            rescore.rules.push(Rule::prefer_recent(scale)?);
        }
        for spec in &self.boost {
            rescore.rules.push(Rule::parse_boost(spec)?);
        }
        let mut filter = d.filter.clone();
        for spec in &self.filter {
            let (key, value) = spec
                .split_once('=')
                .with_context(|| format!("--filter {spec:?}: expected KEY=VALUE"))?;
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            filter.insert(key.trim().to_string(), value);
        }
        Ok(SearchOptions::default()
            .depth(self.depth.unwrap_or(d.depth))
            .k(self.k.unwrap_or(d.k))
            .rerank(d.rerank && !self.no_rerank)
            .reranker(self.reranker.unwrap_or(d.reranker))
            .instruction(self.instruction.clone().or_else(|| d.instruction.clone()))
            .rrf_k(self.rrf_k.unwrap_or(d.rrf_k))
            .retriever_depth(self.retriever_depth.or(d.retriever_depth))
            .stage1_weight(self.stage1_weight.or(d.stage1_weight))
            .filter(filter)
            .rescore(rescore))
    }
}

/// A rescoring rule file: JSON for `.json`, else TOML.
fn read_rescore(path: &std::path::Path) -> anyhow::Result<Rescore> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the rescoring rules {}", path.display()))?;
    let rescore: Rescore = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .with_context(|| format!("invalid rescoring rules {}", path.display()))?
    } else {
        toml::from_str(&text)
            .with_context(|| format!("invalid rescoring rules {}", path.display()))?
    };
    rescore
        .validate()
        .with_context(|| format!("invalid rescoring rules {}", path.display()))?;
    Ok(rescore)
}

fn main() {
    single_threaded_kernels();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Run each model batch on one core and batches side by side (see
/// `sift_bert`'s batch workers): candle's per-operation threading mostly
/// waits on 2 cores. Set before any thread starts; an explicit setting wins.
fn single_threaded_kernels() {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Index { path } => index(&settings, &path),
        Command::Delete { doc_id } => {
            let engine = Engine::builder(settings.index())
                .config(settings.load()?)
                .writable(true)
                .load_reranker(false)
                .open()?;
            if engine.delete(&doc_id)? {
                println!("deleted {doc_id}");
                Ok(())
            } else {
                anyhow::bail!("no document {doc_id:?} in {}", settings.index().display())
            }
        }
        Command::Search(args) => {
            let config = settings.load()?;
            let options = args.options(&config)?;
            options.validate()?;
            let engine = Engine::builder(settings.index())
                .config(config)
                .load_reranker(options.rerank && !options.reranker.uses_llm())
                .open()?;
            let response = engine.search(&args.query, &options)?;
            output::print_search(&response, args.json, args.explain, args.timings)
        }
        Command::Stats => {
            let engine = Engine::builder(settings.index())
                .config(settings.load()?)
                .load_reranker(false)
                .open()?;
            println!("{}", serde_json::to_string_pretty(&engine.stats()?)?);
            Ok(())
        }
        Command::Compact => compact(&settings),
        Command::CheckHnsw { queries, sample, k } => {
            let engine = open(&settings, false)?;
            let texts: Vec<String> = match &queries {
                Some(path) => sift_metrics::read_queries(path)?
                    .into_iter()
                    .map(|q| q.text)
                    .collect(),
                None => Vec::new(),
            };
            let started = std::time::Instant::now();
            let recall = engine.vector_recall(&texts, sample, k)?;
            let stats = engine.stats()?;
            let source = if texts.is_empty() {
                format!("{} sampled chunk vectors", sample.min(stats.vector_points))
            } else {
                format!("{} queries", texts.len())
            };
            println!(
                "HNSW recall@{k} vs exact search: {recall:.4} ({source}; {} chunks; m={} ef_construction={} ef_search={}; {:.1}s)",
                stats.chunks,
                engine.config().hnsw.m,
                engine.config().hnsw.ef_construction,
                engine.config().hnsw.ef_search,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Score(args) => score::run(args),
        Command::Eval(args) => eval::run(&settings, args),
        Command::Serve(args) => serve::run(&settings, args),
        Command::TrainReranker(args) => train::run(&settings, args),
        Command::Config => {
            print!("{}", settings.load()?.to_toml());
            Ok(())
        }
    }
}

fn open(settings: &Settings, reranker: bool) -> anyhow::Result<Engine> {
    Ok(Engine::builder(settings.index())
        .config(settings.load()?)
        .load_reranker(reranker)
        .open()?)
}

fn index(settings: &Settings, path: &std::path::Path) -> anyhow::Result<()> {
    let mut source = Source::open(path)?;
    let documents: Vec<Document> = source
        .by_ref()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    for skipped in source.skipped() {
        eprintln!(
            "warning: skipped {}: {}",
            skipped.path.display(),
            skipped.reason
        );
    }
    let engine = Engine::builder(settings.index())
        .config(settings.load()?)
        .create_if_missing(true)
        .load_reranker(false)
        .open()?;
    let started = std::time::Instant::now();
    let bar = output::progress_bar("embedding");
    let report = engine.index(&documents, |p| {
        bar.set_length(p.chunks_total as u64);
        bar.set_position(p.chunks_done as u64);
    })?;
    bar.finish_and_clear();
    if engine.needs_compaction() {
        let report = compact_with_spinner(&engine)?;
        println!(
            "compacted the vector index (dead points past index.compact_dead_ratio = {}): {}",
            engine.config().index.compact_dead_ratio,
            describe_compaction(&report)
        );
    }
    let stats = engine.stats()?;
    println!(
        "indexed {} documents ({} new or changed, {} unchanged, {} empty) into {} chunks in {:.1}s; index holds {} documents, {} chunks",
        documents.len(),
        report.documents_written,
        report.documents_unchanged,
        report.documents_empty,
        report.chunks_written,
        started.elapsed().as_secs_f64(),
        stats.documents,
        stats.chunks
    );
    if !report.failed.is_empty() {
        for failed in &report.failed {
            eprintln!("error: not indexed {:?}: {}", failed.id, failed.reason);
        }
        anyhow::bail!(
            "{} of {} documents could not be indexed (listed above); the others are indexed and committed",
            report.failed.len(),
            documents.len()
        );
    }
    Ok(())
}

fn compact(settings: &Settings) -> anyhow::Result<()> {
    let engine = Engine::builder(settings.index())
        .config(settings.load()?)
        .writable(true)
        .load_reranker(false)
        .open()?;
    let report = compact_with_spinner(&engine)?;
    let stats = engine.stats()?;
    println!(
        "compacted {}: {}; {} live chunks",
        settings.index().display(),
        describe_compaction(&report),
        stats.chunks
    );
    Ok(())
}

/// Compact with a spinner on the terminal: a large graph takes minutes.
fn compact_with_spinner(engine: &Engine) -> anyhow::Result<sift_engine::CompactionReport> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("rebuilding the vector index from the stored vectors");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = engine.compact();
    spinner.finish_and_clear();
    Ok(report?)
}

fn describe_compaction(r: &sift_engine::CompactionReport) -> String {
    format!(
        "{} → {} graph points, dead {:.1}% → {:.1}%, in {:.1}s (build {:.1}s, catch-up + save + swap {:.2}s)",
        r.points_before,
        r.points_after,
        r.dead_ratio_before * 100.0,
        r.dead_ratio_after * 100.0,
        (r.build + r.swap).as_secs_f64(),
        r.build.as_secs_f64(),
        r.swap.as_secs_f64()
    )
}
