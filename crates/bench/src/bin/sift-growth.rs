//! `sift-growth` (`just bench-growth`): how index time, disk, resident
//! memory and stage-1 latency grow with the number of chunks.
//!
//! The chunks of an existing index (`--index`, e.g. SciFact's) are
//! replicated past their end with fresh ids until the largest `--sizes`
//! count: replica 0 is the original chunk with its stored embedding;
//! replica `r` carries the same text under the document id `DOC~rR` and the
//! original's embedding moved by a small deterministic perturbation
//! (`--noise`, cosine ≈ 0.995 to the original at 0.1), **not** a model
//! embedding: embedding 200 K chunks takes hours on 2 cores. The embedding
//! part of index time is therefore *extrapolated* as chunks ÷ the
//! bi-encoder's throughput measured here on `--embed-sample` passages;
//! everything else (tantivy writes and commits, HNSW inserts, saving) is
//! measured through `Engine::index_embedded`.
//!
//! Each size is indexed into a fresh folder under `--work`, then a child
//! process (this binary with `--probe`) opens it as `sift search` / `sift
//! serve` would and reports its resident memory and the stage-1 latency of
//! `--queries` judged queries at `--depth` (BM25 + embed query + HNSW + RRF,
//! and the chunk fetch apart), so each size's memory is that of a fresh
//! process. Table on stdout, JSON in `--out`/growth.json.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use sift_bench::growth::{dir_bytes, replica, Memory};
use sift_core::{Chunk, ChunkId, Config, ModelSource, Precision, SearchOptions, Stage};
use sift_engine::Engine;
use sift_eval::{progress_bar, Latency};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Index time, disk, memory and stage-1 latency from 5 K to 200 K+ chunks")]
struct Args {
    /// The index whose chunks and stored embeddings are replicated.
    #[arg(long, default_value = "indexes/scifact")]
    index: PathBuf,
    /// BEIR dataset whose queries are timed (queries.jsonl, qrels/).
    #[arg(long, default_value = "../shared/datasets/scifact")]
    dataset: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// Bi-encoder folder (the one the index was built with).
    #[arg(long, default_value = "data/models/all-MiniLM-L6-v2")]
    bi_encoder: PathBuf,
    /// Corpus sizes in chunks, comma-separated.
    #[arg(long, default_value = "5000,50000,200000", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Timed queries per size (the first N of the split), after one
    /// untimed pass over the first 10.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// Stage-1 depth (fused candidates kept).
    #[arg(long, default_value_t = 50)]
    depth: usize,
    /// Perturbation of replicas' embeddings (0 = exact copies).
    #[arg(long, default_value_t = 0.1)]
    noise: f32,
    /// Passages embedded to measure the bi-encoder's throughput (0: skip).
    #[arg(long, default_value_t = 128)]
    embed_sample: usize,
    /// Where the replicated indexes are built (each size's folder is
    /// replaced; removed afterwards unless --keep).
    #[arg(long, default_value = "target/bench/growth")]
    work: PathBuf,
    #[arg(long)]
    keep: bool,
    /// Cross-encoder folder: the source index's probe also times whole
    /// searches (stage 1 at --depth, then rerank) on the first
    /// --rerank-queries queries, for the query path's breakdown.
    #[arg(long)]
    cross_encoder: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    rerank_queries: usize,
    /// Arithmetic of the models (f32, fast or int8), as `sift --precision`.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Where growth.json goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Internal: open the index in DIR, time the queries, print JSON.
    #[arg(long, hide = true)]
    probe: Option<PathBuf>,
}

/// What a probe of one index measured.
#[derive(Debug, Serialize, Deserialize)]
struct Probe {
    open_seconds: f64,
    memory_after_open: Memory,
    memory_after_queries: Memory,
    /// BM25 + tokenise + embed query + HNSW + RRF (no fetch).
    stage1: Latency,
    /// `Engine::retrieve` as a whole: stage 1 and the fetch of `depth` chunks.
    retrieve: Latency,
    /// Mean milliseconds per stage.
    stage_mean_ms: HashMap<String, f64>,
    /// Whole searches with the cross-encoder, when one was given.
    full: Option<FullQuery>,
}

/// Whole searches (stage 1, fetch, rerank) on the source index.
#[derive(Debug, Serialize, Deserialize)]
struct FullQuery {
    queries: usize,
    reranker: String,
    total: Latency,
    /// Mean milliseconds per stage, rerank included.
    stage_mean_ms: HashMap<String, f64>,
}

#[derive(Debug, Serialize)]
struct SizeReport {
    chunks: usize,
    documents: u64,
    replicas: usize,
    /// Writes, commits, HNSW inserts and saves (measured).
    index_seconds_measured: f64,
    /// chunks ÷ the measured bi-encoder throughput (extrapolated).
    embed_seconds_extrapolated: Option<f64>,
    disk_bytes: u64,
    lexical_bytes: u64,
    vector_bytes: u64,
    probe: Probe,
}

fn main() -> Result<()> {
    sift_bench::run_as_sift_does();
    let args = Args::parse();
    if let Some(dir) = &args.probe {
        let probe = probe(&args, dir)?;
        println!("{}", serde_json::to_string(&probe)?);
        return Ok(());
    }
    run(&args)
}

fn config(args: &Args) -> Config {
    let mut config = Config::default();
    config.models.bi_encoder = ModelSource::local(&args.bi_encoder);
    config.models.precision = args.precision;
    if let Some(dir) = &args.cross_encoder {
        config.models.cross_encoder = ModelSource::local(dir);
    }
    config
}

fn open(args: &Args, dir: &Path, create: bool, reranker: bool) -> Result<Engine> {
    Engine::builder(dir)
        .config(config(args))
        .create_if_missing(create)
        .load_reranker(reranker)
        .open()
        .with_context(|| format!("opening {}", dir.display()))
}

fn run(args: &Args) -> Result<()> {
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() || sizes[0] == 0 {
        bail!("--sizes needs positive chunk counts");
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::create_dir_all(&args.work)?;

    // ---- the originals: chunks in document order, with stored vectors ----
    eprintln!(
        "reading chunks and embeddings of {} …",
        args.index.display()
    );
    let source = open(args, &args.index, false, false)?;
    let mut vectors: HashMap<ChunkId, Vec<f32>> = HashMap::new();
    source.for_each_stored_vector(|id, v| {
        vectors.insert(id, v);
    })?;
    let mut originals: Vec<(Chunk, Vec<f32>)> = Vec::with_capacity(vectors.len());
    for doc_id in source.document_ids()? {
        for chunk in source.document_chunks(&doc_id)? {
            let v = vectors
                .remove(&chunk.id)
                .with_context(|| format!("chunk {} has no stored vector", chunk.id))?;
            originals.push((chunk, v));
        }
    }
    if originals.is_empty() {
        bail!("{} holds no chunks", args.index.display());
    }

    // ---- the bi-encoder's throughput, for the extrapolated embedding time ----
    let embed_rate = if args.embed_sample > 0 {
        let step = originals
            .len()
            .checked_div(args.embed_sample)
            .unwrap_or(1)
            .max(1);
        let sample: Vec<String> = originals
            .iter()
            .step_by(step)
            .take(args.embed_sample)
            .map(|(c, _)| c.passage())
            .collect();
        eprintln!(
            "measuring the bi-encoder on {} passages ({}, as `sift index --precision {}`) …",
            sample.len(),
            args.precision,
            args.precision
        );
        let t = Instant::now();
        std::hint::black_box(source.bi_encoder().embed(&sample)?);
        Some(sample.len() as f64 / t.elapsed().as_secs_f64())
    } else {
        None
    };
    drop(source);
    // The source index itself, as `sift serve` would hold it.
    eprintln!("probing the source index …");
    let mut source_probe = spawn_probe(args, &args.index, false)?;
    if args.cross_encoder.is_some() {
        // Apart, so the memory above is without the cross-encoder.
        eprintln!("timing whole searches with the cross-encoder …");
        source_probe.full = spawn_probe(args, &args.index, true)?.full;
    }

    // ---- each size ----
    let mut reports = Vec::new();
    for &size in &sizes {
        let dir = args.work.join(format!("{size}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let chunks: Vec<(Chunk, Vec<f32>)> = (0..size)
            .map(|i| replica(&originals, i, args.noise))
            .collect();
        let bar = progress_bar(true, size, &format!("index {size}"));
        let t = Instant::now();
        let engine = open(args, &dir, true, false)?;
        let report = engine.index_embedded(chunks, |p| bar.set_position(p.chunks_done as u64))?;
        let documents = engine.stats()?.documents;
        drop(engine);
        let index_seconds = t.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if report.chunks_written != size {
            bail!("{size} chunks given, {} written", report.chunks_written);
        }
        eprintln!("{size} chunks indexed in {index_seconds:.1} s; probing …");
        let lexical_bytes = dir_bytes(&dir.join("lexical"))?;
        let vector_bytes = dir_bytes(&dir.join("vectors"))?;
        let probe = spawn_probe(args, &dir, false)?;
        reports.push(SizeReport {
            chunks: size,
            documents,
            replicas: size.div_ceil(originals.len()),
            index_seconds_measured: index_seconds,
            embed_seconds_extrapolated: embed_rate.map(|r| size as f64 / r),
            disk_bytes: dir_bytes(&dir)?,
            lexical_bytes,
            vector_bytes,
            probe,
        });
        if !args.keep {
            std::fs::remove_dir_all(&dir)?;
        }
    }

    let json = serde_json::json!({
        "source_index": args.index,
        "source_chunks": originals.len(),
        "source_probe": source_probe,
        "noise": args.noise,
        "replicas_note": "replica r > 0 of a chunk: same text, document id DOC~rR, the original's stored embedding perturbed (not a model embedding)",
        "embed_passages_per_second": embed_rate,
        "embed_seconds_note": "extrapolated: chunks / embed_passages_per_second, measured on this run's sample",
        "queries": args.queries,
        "depth": args.depth,
        "precision": args.precision.name(),
        "rayon_threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "sizes": reports,
    });
    let path = args.out.join("growth.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    print_tables(args, originals.len(), &source_probe, embed_rate, &reports);
    println!("\nJSON: {}", path.display());
    Ok(())
}

fn spawn_probe(args: &Args, dir: &Path, with_reranker: bool) -> Result<Probe> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    if let (true, Some(cross)) = (with_reranker, &args.cross_encoder) {
        command
            .arg("--cross-encoder")
            .arg(cross)
            .arg("--rerank-queries")
            .arg(args.rerank_queries.to_string());
    }
    let output = command
        .arg("--probe")
        .arg(dir)
        .arg("--dataset")
        .arg(&args.dataset)
        .arg("--split")
        .arg(&args.split)
        .arg("--bi-encoder")
        .arg(&args.bi_encoder)
        .arg("--queries")
        .arg(args.queries.to_string())
        .arg("--depth")
        .arg(args.depth.to_string())
        .arg("--precision")
        .arg(args.precision.name())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting the probe")?;
    if !output.status.success() {
        bail!("the probe of {} failed", dir.display());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).with_context(|| format!("the probe said {text:?}"))
}

/// Child: open the index as `sift serve` does (no reranker: stage 1 only),
/// time the queries.
fn probe(args: &Args, dir: &Path) -> Result<Probe> {
    let dataset = sift_metrics::Dataset::open(&args.dataset, &args.split)?;
    let queries: Vec<&str> = dataset
        .queries
        .iter()
        .take(args.queries.max(1))
        .map(|q| q.text.as_str())
        .collect();
    let t = Instant::now();
    let engine = open(args, dir, false, args.cross_encoder.is_some())?;
    let open_seconds = t.elapsed().as_secs_f64();
    let memory_after_open = Memory::of_self()?;
    let options = SearchOptions::default().depth(args.depth).rerank(false);
    for q in queries.iter().take(10) {
        engine.retrieve(q, &options)?;
    }
    let mut stage1 = Vec::new();
    let mut retrieve = Vec::new();
    let mut sums: HashMap<String, Duration> = HashMap::new();
    for q in &queries {
        let r = engine.retrieve(q, &options)?;
        stage1.push(r.timings.first_stage() - r.timings.get(Stage::Fetch));
        retrieve.push(r.timings.total);
        for stage in Stage::ALL {
            *sums.entry(stage.name().into()).or_default() += r.timings.get(stage);
        }
    }
    let n = queries.len() as f64;
    let memory_after_queries = Memory::of_self()?;
    let full = match engine.reranker_status() {
        Ok(reranker) if args.cross_encoder.is_some() => {
            let options = options.clone().rerank(true);
            let picked: Vec<&str> = queries
                .iter()
                .take(args.rerank_queries.max(1))
                .copied()
                .collect();
            let mut totals = Vec::new();
            let mut sums: HashMap<String, Duration> = HashMap::new();
            for q in &picked {
                let r = engine.search(q, &options)?;
                if r.reranked_by.is_none() {
                    bail!("not reranked: {:?}", r.notice);
                }
                totals.push(r.timings.total);
                for stage in Stage::ALL {
                    *sums.entry(stage.name().into()).or_default() += r.timings.get(stage);
                }
            }
            let m = picked.len() as f64;
            Some(FullQuery {
                queries: picked.len(),
                reranker,
                total: Latency::of(&totals),
                stage_mean_ms: sums
                    .into_iter()
                    .map(|(k, d)| (k, d.as_secs_f64() * 1e3 / m))
                    .collect(),
            })
        }
        Ok(_) => None,
        Err(why) if args.cross_encoder.is_some() => bail!("no reranker: {why}"),
        Err(_) => None,
    };
    Ok(Probe {
        open_seconds,
        memory_after_open,
        memory_after_queries,
        stage1: Latency::of(&stage1),
        retrieve: Latency::of(&retrieve),
        stage_mean_ms: sums
            .into_iter()
            .filter(|(k, _)| k != "rerank")
            .map(|(k, d)| (k, d.as_secs_f64() * 1e3 / n))
            .collect(),
        full,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_tables(
    args: &Args,
    originals: usize,
    source: &Probe,
    embed_rate: Option<f64>,
    reports: &[SizeReport],
) {
    println!(
        "\nsource index {} ({originals} chunks): RSS {:.0} MiB after open, {:.0} MiB after {} queries (anon {:.0}, file {:.0}); stage 1 p50 {:.1} ms, p95 {:.1} ms",
        args.index.display(),
        mib(source.memory_after_open.rss),
        mib(source.memory_after_queries.rss),
        args.queries,
        mib(source.memory_after_queries.anon),
        mib(source.memory_after_queries.file),
        source.stage1.p50_ms,
        source.stage1.p95_ms,
    );
    if let Some(r) = embed_rate {
        println!(
            "bi-encoder ({}, this run): {r:.1} passages/s; the embed column is extrapolated from it",
            args.precision
        );
    }
    println!(
        "\nreplicas beyond the originals carry perturbed copies of the stored embeddings (noise {}), not model embeddings",
        args.noise
    );
    println!("| chunks | index s (measured, no embedding) | embed s (extrapolated) | disk bytes/chunk (lexical + vectors) | RSS MiB after open | RSS MiB after queries (anon / file) | stage 1 p50 / p95 ms | + fetch p50 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in reports {
        let p = &r.probe;
        let n = r.chunks as f64;
        println!(
            "| {} | {:.1} | {} | {:.0} ({:.0} + {:.0}) | {:.0} | {:.0} ({:.0} / {:.0}) | {:.2} / {:.2} | {:.2} |",
            r.chunks,
            r.index_seconds_measured,
            r.embed_seconds_extrapolated
                .map_or("-".into(), |s| format!("{s:.0}")),
            r.disk_bytes as f64 / n,
            r.lexical_bytes as f64 / n,
            r.vector_bytes as f64 / n,
            mib(p.memory_after_open.rss),
            mib(p.memory_after_queries.rss),
            mib(p.memory_after_queries.anon),
            mib(p.memory_after_queries.file),
            p.stage1.p50_ms,
            p.stage1.p95_ms,
            p.retrieve.p50_ms,
        );
    }
    for w in reports.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dn = (b.chunks - a.chunks) as f64;
        let d = |f: fn(&Memory) -> u64| {
            (f(&b.probe.memory_after_queries) as f64 - f(&a.probe.memory_after_queries) as f64) / dn
        };
        println!(
            "{} → {} chunks: {:.0} bytes of RSS per added chunk (anon {:.0}, file {:.0})",
            a.chunks,
            b.chunks,
            d(|m| m.rss),
            d(|m| m.anon),
            d(|m| m.file)
        );
    }
    println!(
        "\nmean ms per stage at depth {} ({} queries):",
        args.depth, args.queries
    );
    println!("| chunks | tokenize | bm25 | embed | hnsw | fuse | fetch |");
    println!("|---|---|---|---|---|---|---|");
    let row = |label: String, p: &Probe| {
        let g = |s: &str| p.stage_mean_ms.get(s).copied().unwrap_or(0.0);
        println!(
            "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            g("tokenize"),
            g("bm25"),
            g("embed"),
            g("hnsw"),
            g("fuse"),
            g("fetch")
        );
    };
    row(format!("{originals} (source)"), source);
    for r in reports {
        row(r.chunks.to_string(), &r.probe);
    }
    if let Some(full) = &source.full {
        let total: f64 = full.stage_mean_ms.values().sum();
        println!(
            "\nwhole searches on the source index ({} queries, depth {}, reranker {}): total p50 {:.0} ms; share of the summed stage time:",
            full.queries, args.depth, full.reranker, full.total.p50_ms
        );
        println!("| stage | mean ms | share |");
        println!("|---|---|---|");
        for stage in Stage::ALL {
            let ms = full.stage_mean_ms.get(stage.name()).copied().unwrap_or(0.0);
            println!(
                "| {} | {ms:.3} | {:.2} % |",
                stage.name(),
                100.0 * ms / total
            );
        }
    }
}
