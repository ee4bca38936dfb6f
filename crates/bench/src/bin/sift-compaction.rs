//! `sift-compaction` (`just bench-compaction`): what months of rewrites do to
//! the HNSW graph, and what `Engine::compact` gives back.
//!
//! A SciFact index (`--base`, built from the corpus on the first run and
//! reused after) is copied to `--work`; then `--rounds` rounds each rewrite
//! a different deterministic `--fraction` of the documents with a round
//! marker sentence appended (real SciFact text plus "Revision R.", so the
//! last chunk of each changes and every chunk of the document is embedded
//! again, through `Engine::index`). After the base and after every round it
//! reports live chunks, graph points, the dead share, the size of
//! `vectors/` and the stage-1 latency of the split's queries (the HNSW walk
//! alone and `Engine::retrieve` as a whole: BM25, query embedding, HNSW,
//! RRF, chunk fetch), plus the graph's recall@10 against exact search for
//! those queries; then it compacts and reports the same again.
//!
//! With `--auto-compact RATIO` each round ends with the check `sift serve`
//! makes after a write (`Engine::needs_compaction` at that
//! `index.compact_dead_ratio`), compacting when it passes. Table on stdout,
//! JSON in `--out`/compaction.json (or compaction-auto.json).

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use sift_bench::growth::dir_bytes;
use sift_core::{Config, Document, ModelSource, Precision, SearchOptions, Stage};
use sift_engine::{CompactionReport, Engine};
use sift_eval::{progress_bar, Latency};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    about = "Graph size and stage-1 latency over rounds of rewrites, before and after compaction"
)]
struct Args {
    /// BEIR dataset: corpus.jsonl is indexed, the split's queries timed.
    #[arg(long, default_value = "../shared/datasets/scifact")]
    dataset: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// Bi-encoder folder.
    #[arg(long, default_value = "data/models/all-MiniLM-L6-v2")]
    bi_encoder: PathBuf,
    /// The untouched index of the corpus, built here when missing.
    #[arg(long, default_value = "target/bench/compaction-base")]
    base: PathBuf,
    /// Where the copy that is rewritten lives (replaced at the start).
    #[arg(long, default_value = "target/bench/compaction-work")]
    work: PathBuf,
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Share of the documents rewritten per round.
    #[arg(long, default_value_t = 0.2)]
    fraction: f64,
    /// Timed queries (the first N of the split; 0: all), after one untimed
    /// pass over the first 10.
    #[arg(long, default_value_t = 0)]
    queries: usize,
    /// Stage-1 depth (fused candidates kept, each retriever's depth too).
    #[arg(long, default_value_t = 50)]
    depth: usize,
    /// Compact after a round when the dead share reaches this (the check of
    /// `sift serve`); without it, only once after the last round.
    #[arg(long, value_name = "RATIO")]
    auto_compact: Option<f64>,
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Where the JSON goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

/// The index's state and query latency at one point of the run.
#[derive(Debug, Serialize)]
struct Row {
    /// 0 is the base index; `after` marks the rows measured right after a
    /// compaction.
    round: u32,
    after: &'static str,
    documents_rewritten: usize,
    chunks_embedded: usize,
    live_chunks: u64,
    graph_points: usize,
    dead_ratio: f64,
    vectors_bytes: u64,
    /// The HNSW walk alone.
    hnsw: Latency,
    /// `Engine::retrieve`: BM25 + embed query + HNSW + RRF + fetch.
    stage1: Latency,
    recall_at_10: f64,
    compaction: Option<CompactionReport>,
}

fn main() -> Result<()> {
    sift_bench::run_as_sift_does();
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.fraction) {
        bail!("--fraction must be between 0 and 1");
    }
    if let Some(r) = args.auto_compact {
        if !(r > 0.0 && r < 1.0) {
            bail!("--auto-compact needs a ratio above 0 and below 1");
        }
    }
    run(&args)
}

fn config(args: &Args) -> Config {
    let mut config = Config::default();
    config.models.bi_encoder = ModelSource::local(&args.bi_encoder);
    config.models.cross_encoder = ModelSource::default();
    config.models.precision = args.precision;
    config.index.compact_dead_ratio = args.auto_compact.unwrap_or(0.0);
    config
}

fn open(args: &Args, dir: &Path) -> Result<Engine> {
    Engine::builder(dir)
        .config(config(args))
        .create_if_missing(true)
        .load_reranker(false)
        .open()
        .with_context(|| format!("opening {}", dir.display()))
}

fn run(args: &Args) -> Result<()> {
    let dataset = sift_metrics::Dataset::open(&args.dataset, &args.split)?;
    let corpus = dataset
        .corpus
        .as_ref()
        .with_context(|| format!("no corpus.jsonl in {}", args.dataset.display()))?;
    let documents = sift_metrics::read_corpus(corpus)?;
    let queries: Vec<String> = dataset
        .queries
        .iter()
        .take(if args.queries == 0 {
            usize::MAX
        } else {
            args.queries
        })
        .map(|q| q.text.clone())
        .collect();

    // ---- the base index, built once ----
    if !args.base.join("sift-index.json").is_file() {
        eprintln!(
            "indexing {} documents into {} …",
            documents.len(),
            args.base.display()
        );
        let engine = open(args, &args.base)?;
        let bar = progress_bar(true, 0, "embedding");
        let t = Instant::now();
        engine.index(&documents, |p| {
            bar.set_length(p.chunks_total as u64);
            bar.set_position(p.chunks_done as u64);
        })?;
        bar.finish_and_clear();
        eprintln!("indexed in {:.0} s", t.elapsed().as_secs_f64());
    }
    if args.work.exists() {
        std::fs::remove_dir_all(&args.work)?;
    }
    copy_dir(&args.base, &args.work)?;
    let engine = open(args, &args.work)?;
    let held = engine.stats()?.documents as usize;
    if held != documents.len() {
        bail!(
            "{} holds {held} documents, the corpus {}: remove it to rebuild",
            args.base.display(),
            documents.len()
        );
    }

    let mut rows = vec![measure(args, &engine, &queries, 0, "base", 0, 0, None)?];
    print_header();
    print_row(&rows[0]);
    for round in 1..=args.rounds {
        let rewritten: Vec<Document> = documents
            .iter()
            .enumerate()
            .filter(|(i, _)| picked(*i, round, args.fraction))
            .map(|(_, d)| Document {
                text: format!("{} Revision {round}.", d.text),
                ..d.clone()
            })
            .collect();
        let bar = progress_bar(true, 0, &format!("round {round}"));
        let report = engine.index(&rewritten, |p| {
            bar.set_length(p.chunks_total as u64);
            bar.set_position(p.chunks_done as u64);
        })?;
        bar.finish_and_clear();
        let row = measure(
            args,
            &engine,
            &queries,
            round,
            "rewrite",
            report.documents_written,
            report.chunks_written,
            None,
        )?;
        print_row(&row);
        rows.push(row);
        if args.auto_compact.is_some() && engine.needs_compaction() {
            let compaction = engine.compact()?;
            let row = measure(
                args,
                &engine,
                &queries,
                round,
                "compact",
                0,
                0,
                Some(compaction),
            )?;
            print_row(&row);
            rows.push(row);
        }
    }
    let compaction = engine.compact()?;
    let last = measure(
        args,
        &engine,
        &queries,
        args.rounds,
        "compact",
        0,
        0,
        Some(compaction),
    )?;
    print_row(&last);
    rows.push(last);

    let compactions: Vec<&CompactionReport> =
        rows.iter().filter_map(|r| r.compaction.as_ref()).collect();
    for (i, c) in compactions.iter().enumerate() {
        println!(
            "compaction {}: {} → {} points, build {:.1} s, catch-up + save + swap {:.2} s",
            i + 1,
            c.points_before,
            c.points_after,
            c.build.as_secs_f64(),
            c.swap.as_secs_f64()
        );
    }
    let json = serde_json::json!({
        "dataset": args.dataset,
        "split": args.split,
        "documents": documents.len(),
        "queries": queries.len(),
        "depth": args.depth,
        "fraction": args.fraction,
        "rounds": args.rounds,
        "auto_compact": args.auto_compact,
        "precision": args.precision.name(),
        "rayon_threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "hnsw": engine.config().hnsw,
        "rows": rows,
    });
    std::fs::create_dir_all(&args.out)?;
    let name = if args.auto_compact.is_some() {
        "compaction-auto.json"
    } else {
        "compaction.json"
    };
    let path = args.out.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("\nJSON: {}", path.display());
    Ok(())
}

/// Whether document `i` is rewritten in `round`: a hash of both (splitmix64),
/// so each round picks a different `fraction` of the corpus.
fn picked(i: usize, round: u32, fraction: f64) -> bool {
    let mut z = (i as u64) ^ (u64::from(round) << 40);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &Args,
    engine: &Engine,
    queries: &[String],
    round: u32,
    after: &'static str,
    documents_rewritten: usize,
    chunks_embedded: usize,
    compaction: Option<CompactionReport>,
) -> Result<Row> {
    let options = SearchOptions::default().depth(args.depth).rerank(false);
    for q in queries.iter().take(10) {
        engine.retrieve(q, &options)?;
    }
    let mut hnsw = Vec::with_capacity(queries.len());
    let mut total = Vec::with_capacity(queries.len());
    for q in queries {
        let r = engine.retrieve(q, &options)?;
        hnsw.push(r.timings.get(Stage::Hnsw));
        total.push(r.timings.total);
    }
    let stats = engine.stats()?;
    Ok(Row {
        round,
        after,
        documents_rewritten,
        chunks_embedded,
        live_chunks: stats.chunks,
        graph_points: stats.vector_points,
        dead_ratio: stats.dead_ratio,
        vectors_bytes: dir_bytes(&engine.dir().join("vectors"))?,
        hnsw: Latency::of(&hnsw),
        stage1: Latency::of(&total),
        recall_at_10: engine.vector_recall(queries, 0, 10)?,
        compaction,
    })
}

fn print_header() {
    println!(
        "{:>5} {:<8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "round",
        "after",
        "rewritten",
        "live",
        "points",
        "dead",
        "vec MiB",
        "hnsw p50",
        "hnsw p95",
        "stage1 p50",
        "stage1 p95",
        "recall@10"
    );
}

fn print_row(r: &Row) {
    println!(
        "{:>5} {:<8} {:>9} {:>8} {:>8} {:>5.1}% {:>8.1} {:>6.2} ms {:>6.2} ms {:>7.1} ms {:>7.1} ms {:>9.4}",
        r.round,
        r.after,
        r.documents_rewritten,
        r.live_chunks,
        r.graph_points,
        r.dead_ratio * 100.0,
        r.vectors_bytes as f64 / (1024.0 * 1024.0),
        r.hnsw.p50_ms,
        r.hnsw.p95_ms,
        r.stage1.p50_ms,
        r.stage1.p95_ms,
        r.recall_at_10
    );
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_name() != "sift-index.lock" {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
