//! `sift-speed` (`just bench`): how fast the engine embeds and reranks on
//! this CPU, side by side with PyTorch and ONNX Runtime on the same inputs.
//!
//! Inputs are drawn deterministically from a BEIR corpus: documents are cut
//! into chunks by the engine's own chunker (so passages are what an index
//! holds), the first `--quality-queries` judged queries bring the chunks of
//! their relevant documents, and evenly spaced chunks fill the pool up to
//! `--passages`. Each quality query's candidates are its `--pairs` nearest
//! pool chunks by the f32 bi-encoder; the first query's candidates are the
//! timed rerank workload.
//!
//! Each round times, one after another on the same machine: the engine's
//! `embed` and `score` in every `--modes` precision, then every peer
//! (`eval/bench_peers.py`, a child process that keeps its models loaded).
//! Ratios are taken within the run, because the machine is shared and moves
//! by 10 % between runs. The figures go to stdout as a table and to
//! `--out` as JSON.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use sift_bert::{BiEncoder, CrossEncoder, ModelFiles, Precision};
use sift_core::{Chunk, ChunkingConfig};
use sift_engine::Chunker;
use sift_metrics::{evaluate, Dataset, Metric, MissingQueries, Run};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Time embed and rerank against PyTorch and ONNX Runtime on the same inputs")]
struct Args {
    /// BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).
    #[arg(long, default_value = "../shared/datasets/scifact")]
    dataset: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// Bi-encoder folder (config.json, tokenizer.json, model.safetensors).
    #[arg(long, default_value = "data/models/all-MiniLM-L6-v2")]
    bi_encoder: PathBuf,
    /// Cross-encoder folder (BertForSequenceClassification layout). Default:
    /// the first folder under data/rerankers/ with a model.safetensors, else
    /// the parity-test construction (MiniLM body + a deterministic head).
    #[arg(long)]
    cross_encoder: Option<PathBuf>,
    /// Passages to embed (the embed workload).
    #[arg(long, default_value_t = 2000)]
    passages: usize,
    /// Query–chunk pairs per rerank.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Judged queries whose reranked lists measure nDCG@10 per precision.
    #[arg(long, default_value_t = 20)]
    quality_queries: usize,
    /// Timed rounds (each: every engine mode, then every peer).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Engine precisions to time, comma-separated (f32, fast).
    #[arg(long, default_value = "f32,fast", value_delimiter = ',')]
    modes: Vec<Precision>,
    /// Embedding batch size (the engine's default).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Rerank batch size for the engine; the peers score all pairs as one
    /// padded batch, as the issue measured them.
    #[arg(long, default_value_t = 16)]
    rerank_batch_size: usize,
    /// Python with torch, sentence-transformers, transformers, onnxruntime
    /// and onnx (`just bench-peers-setup`); peers are skipped without it.
    #[arg(long, default_value = "eval/.venv/bin/python")]
    python: PathBuf,
    #[arg(long)]
    no_peers: bool,
    /// Skip the embed or the rerank workload.
    #[arg(long)]
    skip_embed: bool,
    #[arg(long)]
    skip_rerank: bool,
    /// Where the JSON report and the peers' files go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Machine peak in f32 GFLOP/s, to report efficiency against. Default:
    /// cores × the clock in /proc/cpuinfo × 64 FLOPs per cycle (two
    /// AVX-512 FMA ports × 16 lanes × 2), or × 32 without AVX-512.
    #[arg(long)]
    peak_gflops: Option<f64>,
}

fn main() -> Result<()> {
    sift_bench::run_as_sift_does();
    let mut args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    if args.peak_gflops.is_none() {
        let (peak, how) = machine_peak_gflops();
        eprintln!("peak: {peak:.0} GFLOP/s ({how})");
        args.peak_gflops = Some(peak);
    }

    // ---- inputs ----
    let bi_files = ModelFiles::from_dir(&args.bi_encoder).with_context(|| {
        format!(
            "bi-encoder {} (run `just fetch-models`)",
            args.bi_encoder.display()
        )
    })?;
    let cross_dir = match &args.cross_encoder {
        Some(dir) => dir.clone(),
        None => default_cross_encoder(&args)?,
    };
    let cross_files = ModelFiles::from_dir(&cross_dir)?;
    let dataset = Dataset::open(&args.dataset, &args.split)?;
    let corpus = dataset
        .corpus
        .as_ref()
        .with_context(|| format!("{} has no corpus.jsonl", args.dataset.display()))?;
    eprintln!("loading models and chunking {} …", corpus.display());
    let reference_bi = BiEncoder::load(&bi_files, 256, args.batch_size)?;
    let chunker = Chunker::new(reference_bi.tokenizer(), &ChunkingConfig::default());
    let mut chunks: Vec<Chunk> = Vec::new();
    for doc in sift_metrics::corpus_iter(corpus)? {
        chunks.extend(chunker.chunk(&doc?)?);
    }
    let queries: Vec<_> = dataset
        .queries
        .iter()
        .take(args.quality_queries.max(1))
        .cloned()
        .collect();
    let relevant: BTreeSet<&str> = queries
        .iter()
        .flat_map(|q| {
            dataset.qrels[&q.id]
                .iter()
                .filter(|(_, &g)| g > 0)
                .map(|(d, _)| d.as_str())
        })
        .collect();
    let mut pool: Vec<usize> = (0..chunks.len())
        .filter(|&i| relevant.contains(chunks[i].doc_id.as_str()))
        .collect();
    if pool.len() > args.passages {
        pool.truncate(args.passages);
    }
    let chosen: BTreeSet<usize> = pool.iter().copied().collect();
    let rest: Vec<usize> = (0..chunks.len()).filter(|i| !chosen.contains(i)).collect();
    let need = args.passages.saturating_sub(pool.len());
    if need > rest.len() {
        bail!(
            "the corpus has {} chunks; asked for {}",
            chunks.len(),
            args.passages
        );
    }
    for k in 0..need {
        pool.push(rest[k * rest.len() / need]);
    }
    let passages: Vec<String> = pool.iter().map(|&i| chunks[i].passage()).collect();
    let passage_docs: Vec<&str> = pool.iter().map(|&i| chunks[i].doc_id.as_str()).collect();

    // Reference f32 embeddings choose the rerank candidates. Without the
    // rerank workload they are the first timed f32 round's output instead
    // (an untimed extra pass over 2,000 passages costs minutes here).
    let mut reference_vectors: Option<Vec<Vec<f32>>> = None;
    let candidates: Vec<Vec<usize>> = if args.skip_rerank {
        vec![Vec::new(); queries.len()]
    } else {
        let t = Instant::now();
        let vectors = reference_bi.embed(&passages)?;
        eprintln!(
            "reference f32 embedding: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let query_texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        let query_vectors = reference_bi.embed(&query_texts)?;
        let candidates = query_vectors
            .iter()
            .map(|qv| {
                let mut scored: Vec<(f32, usize)> = vectors
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (dot(qv, v), i))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                scored.iter().take(args.pairs).map(|&(_, i)| i).collect()
            })
            .collect();
        reference_vectors = Some(vectors);
        candidates
    };
    let rerank_query = &queries[0].text;
    let rerank_passages: Vec<&str> = candidates[0]
        .iter()
        .map(|&i| passages[i].as_str())
        .collect();

    // Token counts for useful FLOPs.
    let embed_lengths: Vec<usize> = passages
        .iter()
        .map(|p| {
            reference_bi
                .tokenizer()
                .encode(p.as_str(), true)
                .map(|e| e.len().min(256))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reference_cross = CrossEncoder::load(&cross_files, 512, args.rerank_batch_size)?;
    let rerank_lengths: Vec<usize> = rerank_passages
        .iter()
        .map(|p| reference_cross.pair_length(rerank_query, p))
        .collect::<sift_bert::Result<_>>()?;
    let embed_gflop = bert_flops(&embed_lengths) / 1e9;
    let rerank_gflop = bert_flops(&rerank_lengths) / 1e9;
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    eprintln!(
        "embed: {} passages, {:.0} tokens on average, {:.1} GFLOP; rerank: {} pairs, {:.0} tokens on average (max {}), {:.1} GFLOP",
        passages.len(),
        mean(&embed_lengths),
        embed_gflop,
        rerank_passages.len(),
        mean(&rerank_lengths),
        rerank_lengths.iter().max().unwrap_or(&0),
        rerank_gflop
    );

    // ---- peers ----
    let mut peers = if args.no_peers {
        None
    } else {
        Peers::start(
            &args,
            &bi_files,
            &cross_dir,
            &passages,
            rerank_query,
            &rerank_passages,
            reference_cross.max_length(),
        )?
    };

    // ---- engine models ----
    let mut engines = Vec::new();
    for &mode in &args.modes {
        let bi = BiEncoder::load_with(&bi_files, 256, args.batch_size, mode)?;
        let cross = CrossEncoder::load_with(&cross_files, 512, args.rerank_batch_size, mode)?;
        engines.push((mode, bi, cross));
    }

    // ---- rerank accuracy and quality (untimed) ----
    let reference_logits: Vec<Vec<f32>> = if args.skip_rerank {
        Vec::new()
    } else {
        queries
            .iter()
            .zip(&candidates)
            .map(|(q, c)| {
                let ps: Vec<&str> = c.iter().map(|&i| passages[i].as_str()).collect();
                reference_cross.score(&q.text, &ps)
            })
            .collect::<sift_bert::Result<_>>()?
    };
    let ndcg = |logits: &[Vec<f32>]| -> f64 {
        let mut run: Run = BTreeMap::new();
        for ((q, c), l) in queries.iter().zip(&candidates).zip(logits) {
            let mut best: HashMap<&str, f64> = HashMap::new();
            for (&i, &s) in c.iter().zip(l) {
                let e = best.entry(passage_docs[i]).or_insert(f64::NEG_INFINITY);
                *e = e.max(s as f64);
            }
            run.insert(
                q.id.clone(),
                best.into_iter().map(|(d, s)| (d.to_owned(), s)).collect(),
            );
        }
        let metric = Metric::ndcg(10);
        let eval = evaluate(
            &dataset.qrels,
            &run,
            std::slice::from_ref(&metric),
            MissingQueries::Skip,
        );
        eval.mean[&metric.to_string()]
    };
    let reference_ndcg = (!args.skip_rerank).then(|| ndcg(&reference_logits));
    let mut accuracy: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for (mode, _, cross) in &engines {
        let mut entry = serde_json::Map::new();
        if let Some(reference_ndcg) = reference_ndcg {
            let logits: Vec<Vec<f32>> = queries
                .iter()
                .zip(&candidates)
                .map(|(q, c)| {
                    let ps: Vec<&str> = c.iter().map(|&i| passages[i].as_str()).collect();
                    cross.score(&q.text, &ps)
                })
                .collect::<sift_bert::Result<_>>()?;
            entry.insert(
                "rerank_max_logit_diff_to_f32".into(),
                json!(max_diff(&logits, &reference_logits)),
            );
            entry.insert("ndcg10".into(), json!(ndcg(&logits)));
            entry.insert(
                "ndcg10_minus_f32".into(),
                json!(ndcg(&logits) - reference_ndcg),
            );
        }
        accuracy.insert(format!("engine-{mode}"), entry);
    }

    // ---- timed rounds ----
    let mut embed_times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut rerank_times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // Each mode's embeddings from its first timed round, for the accuracy.
    let mut first_vectors: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    for round in 0..args.runs {
        for (mode, bi, cross) in &engines {
            if !args.skip_embed {
                let t = Instant::now();
                let v = bi.embed(&passages)?;
                let seconds = t.elapsed().as_secs_f64();
                first_vectors.entry(format!("engine-{mode}")).or_insert(v);
                push(&mut embed_times, format!("engine-{mode}"), seconds);
            }
            if !args.skip_rerank {
                let t = Instant::now();
                let l = cross.score(rerank_query, &rerank_passages)?;
                std::hint::black_box(l);
                push(
                    &mut rerank_times,
                    format!("engine-{mode}"),
                    t.elapsed().as_secs_f64(),
                );
            }
        }
        if let Some(p) = peers.as_mut() {
            if !args.skip_embed {
                for (name, s) in p.run("embed")? {
                    push(&mut embed_times, name, s);
                }
            }
            if !args.skip_rerank {
                for (name, s) in p.run("rerank")? {
                    push(&mut rerank_times, name, s);
                }
            }
        }
        eprintln!("round {}/{} done", round + 1, args.runs);
    }
    if !args.skip_embed {
        let reference = match reference_vectors.take() {
            Some(v) => v,
            None => match first_vectors.get("engine-f32") {
                Some(v) => v.clone(),
                None => reference_bi.embed(&passages)?,
            },
        };
        for (name, v) in &first_vectors {
            accuracy.entry(name.clone()).or_default().insert(
                "embed_min_cosine_to_f32".into(),
                json!(min_cosine(v, &reference)),
            );
        }
        reference_vectors = Some(reference);
    }
    if let Some(p) = peers.take() {
        let out_dir = p.out_dir.clone();
        p.finish()?;
        for name in ["pytorch", "ort-fp32", "ort-int8"] {
            let mut entry = serde_json::Map::new();
            if let (Some(v), Some(reference)) = (
                read_f32(&out_dir.join(format!("{name}.embed.f32")))?,
                &reference_vectors,
            ) {
                let rows: Vec<Vec<f32>> = v.chunks(384).map(|c| c.to_vec()).collect();
                entry.insert(
                    "embed_min_cosine_to_engine_f32".into(),
                    json!(min_cosine(&rows, reference)),
                );
            }
            if let Some(v) = read_f32(&out_dir.join(format!("{name}.rerank.f32")))? {
                entry.insert(
                    "rerank_max_logit_diff_to_engine_f32".into(),
                    json!(max_diff(&[v], &reference_logits[..1])),
                );
            }
            accuracy.insert(name.to_owned(), entry);
        }
    }

    // ---- report ----
    let report = json!({
        "dataset": args.dataset,
        "bi_encoder": args.bi_encoder,
        "cross_encoder": cross_dir,
        "runs": args.runs,
        "embed": {
            "passages": passages.len(),
            "mean_tokens": mean(&embed_lengths),
            "batch_size": args.batch_size,
            "useful_gflop": embed_gflop,
            "seconds": summarize(&embed_times),
        },
        "rerank": {
            "pairs": rerank_passages.len(),
            "mean_tokens": mean(&rerank_lengths),
            "max_tokens": rerank_lengths.iter().max(),
            "useful_gflop": rerank_gflop,
            "seconds": summarize(&rerank_times),
        },
        "quality": {
            "queries": queries.len(),
            "f32_ndcg10": reference_ndcg,
        },
        "accuracy": accuracy,
        "peak_gflops": args.peak_gflops,
        "machine_peak_rule": machine_peak_gflops().1,
    });
    let path = args.out.join("speed.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    print_table(
        &args,
        &embed_times,
        &rerank_times,
        passages.len(),
        embed_gflop,
        rerank_gflop,
    );
    match reference_ndcg {
        Some(n) => println!(
            "\naccuracy (nDCG@10 of f32 on {} queries: {n:.4}):",
            queries.len()
        ),
        None => println!("\naccuracy:"),
    }
    for (name, v) in &accuracy {
        println!("  {name:<12} {}", Value::Object(v.clone()));
    }
    println!("\nJSON: {}", path.display());
    Ok(())
}

fn push(map: &mut BTreeMap<String, Vec<f64>>, key: String, v: f64) {
    map.entry(key).or_default().push(v);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
            let nx: f64 = x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            d / (nx * ny)
        })
        .fold(1.0, f64::min)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (*p as f64 - *q as f64).abs()))
        .fold(0.0, f64::max)
}

/// Useful FLOPs of a 6-layer, 384-wide, 1536-intermediate BERT (MiniLM-L6)
/// over unpadded sequences: 2 per multiply–add in the six projections per
/// layer and in QKᵀ and AV. Embeddings, norms and heads are noise.
fn bert_flops(lengths: &[usize]) -> f64 {
    let (layers, h, i) = (6.0, 384.0, 1536.0);
    lengths
        .iter()
        .map(|&l| {
            let l = l as f64;
            layers * (2.0 * l * (4.0 * h * h + 2.0 * h * i) + 4.0 * l * l * h)
        })
        .sum()
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let median = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (s[0], median, s[s.len() - 1])
}

fn summarize(times: &BTreeMap<String, Vec<f64>>) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in times {
        let (min, median, max) = stats(v);
        out.insert(
            k.clone(),
            json!({"min": min, "median": median, "max": max, "all": v}),
        );
    }
    Value::Object(out)
}

fn print_table(
    args: &Args,
    embed: &BTreeMap<String, Vec<f64>>,
    rerank: &BTreeMap<String, Vec<f64>>,
    passages: usize,
    embed_gflop: f64,
    rerank_gflop: f64,
) {
    let ort = |m: &BTreeMap<String, Vec<f64>>| m.get("ort-fp32").map(|v| stats(v).1);
    if !rerank.is_empty() {
        println!(
            "\nrerank {} pairs: seconds min / median / max over {} runs",
            args.pairs, args.runs
        );
        println!("| runner | min s | median s | max s | × ORT fp32 time | useful GFLOP/s | % of {:.0} peak |", peak(args));
        println!("|---|---|---|---|---|---|---|");
        for (name, v) in rerank {
            let (min, med, max) = stats(v);
            let ratio = ort(rerank).map_or("-".into(), |o| format!("{:.2}", med / o));
            let gf = rerank_gflop / med;
            println!(
                "| {name} | {min:.3} | {med:.3} | {max:.3} | {ratio} | {gf:.1} | {:.0} % |",
                100.0 * gf / peak(args)
            );
        }
    }
    if !embed.is_empty() {
        println!("\nembed {passages} passages: passages/s (from min / median / max seconds) over {} runs", args.runs);
        println!("| runner | best /s | median /s | worst /s | × ORT fp32 speed | useful GFLOP/s | % of {:.0} peak |", peak(args));
        println!("|---|---|---|---|---|---|---|");
        for (name, v) in embed {
            let (min, med, max) = stats(v);
            let n = passages as f64;
            let ratio = ort(embed).map_or("-".into(), |o| format!("{:.2}", o / med));
            let gf = embed_gflop / med;
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} | {ratio} | {gf:.1} | {:.0} % |",
                n / min,
                n / med,
                n / max,
                100.0 * gf / peak(args)
            );
        }
    }
}

fn peak(args: &Args) -> f64 {
    args.peak_gflops.unwrap_or(f64::NAN)
}

/// The machine's f32 peak and how it was derived: cores (those this
/// process may use) × the nominal clock × FLOPs per cycle per core.
fn machine_peak_gflops() -> (f64, String) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mhz = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(2600.0);
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let per_cycle = if avx512 { 64.0 } else { 32.0 };
    let peak = cores as f64 * mhz / 1e3 * per_cycle;
    (
        peak,
        format!(
            "{cores} cores × {:.2} GHz × {per_cycle} FLOP/cycle ({})",
            mhz / 1e3,
            if avx512 {
                "2 AVX-512 FMA ports × 16 lanes × 2"
            } else {
                "2 AVX2 FMA ports × 8 lanes × 2"
            }
        ),
    )
}

fn read_f32(path: &Path) -> Result<Option<Vec<f32>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path)?;
    Ok(Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    ))
}

/// The committed cross-encoder under data/rerankers/, or else the parity
/// construction written to `OUT/parity-cross-encoder`.
fn default_cross_encoder(args: &Args) -> Result<PathBuf> {
    if let Ok(entries) = std::fs::read_dir("data/rerankers") {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("model.safetensors").is_file() && p.join("config.json").is_file())
            .collect();
        dirs.sort();
        if let Some(dir) = dirs.into_iter().next() {
            eprintln!("cross-encoder: {}", dir.display());
            return Ok(dir);
        }
    }
    let dir = args.out.join("parity-cross-encoder");
    write_parity_checkpoint(&args.bi_encoder, &dir)?;
    eprintln!(
        "cross-encoder: none committed; the parity construction in {}",
        dir.display()
    );
    Ok(dir)
}

/// The checkpoint of crates/bert/tests/parity.rs: the MiniLM body under
/// `bert.`, its pooler, and a head `w[i] = 0.1 sin(i + 1)`, `b = 0.25`.
fn write_parity_checkpoint(src: &Path, dir: &Path) -> Result<()> {
    use candle_core::{safetensors, Device, Tensor};
    std::fs::create_dir_all(dir)?;
    let body = safetensors::load(src.join("model.safetensors"), &Device::Cpu)?;
    let mut tensors: HashMap<String, Tensor> = body
        .into_iter()
        .filter(|(name, _)| !name.ends_with("position_ids"))
        .map(|(name, t)| (format!("bert.{name}"), t))
        .collect();
    let weight: Vec<f32> = (0..384)
        .map(|i| (0.1 * ((i + 1) as f64).sin()) as f32)
        .collect();
    tensors.insert(
        "classifier.weight".into(),
        Tensor::from_vec(weight, (1, 384), &Device::Cpu)?,
    );
    tensors.insert(
        "classifier.bias".into(),
        Tensor::new(&[0.25f32], &Device::Cpu)?,
    );
    safetensors::save(&tensors, dir.join("model.safetensors"))?;
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json"))?)?;
    config["num_labels"] = json!(1);
    config["architectures"] = json!(["BertForSequenceClassification"]);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), dir.join(f))?;
        }
    }
    Ok(())
}

/// The Python peers, loaded once and driven one workload at a time.
struct Peers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    out_dir: PathBuf,
}

impl Peers {
    fn start(
        args: &Args,
        bi: &ModelFiles,
        cross_dir: &Path,
        passages: &[String],
        query: &str,
        candidates: &[&str],
        // The engine's pair length (a trained checkpoint caps it at its
        // trained length): the peers must truncate alike to get the same inputs.
        max_length: usize,
    ) -> Result<Option<Peers>> {
        let ok = Command::new(&args.python)
            .args([
                "-c",
                "import torch, transformers, sentence_transformers, onnxruntime, onnx",
            ])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!(
                "peers skipped: {} cannot import torch, transformers, sentence_transformers, onnxruntime, onnx (run `just bench-peers-setup`)",
                args.python.display()
            );
            return Ok(None);
        }
        let out_dir = args.out.join("peers");
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir)?;
        let spec = json!({
            "bi_encoder": bi.weights.parent().unwrap_or(Path::new(".")),
            "cross_encoder": cross_dir,
            "cache_dir": args.out.join("onnx"),
            "out_dir": out_dir,
            "passages": passages,
            "query": query,
            "candidates": candidates,
            "batch_size": args.batch_size,
            "max_seq_length": 256,
            "max_length": max_length,
            "threads": std::thread::available_parallelism().map_or(2, |n| n.get()),
        });
        let spec_path = args.out.join("peers-spec.json");
        std::fs::write(&spec_path, serde_json::to_string(&spec)?)?;
        eprintln!(
            "starting peers (the first run exports ONNX files into {}) …",
            args.out.join("onnx").display()
        );
        let mut child = Command::new(&args.python)
            .arg("eval/bench_peers.py")
            .arg(&spec_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("PYTHONWARNINGS", "ignore")
            .spawn()
            .context("starting eval/bench_peers.py")?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let ready: Value =
            serde_json::from_str(&line).with_context(|| format!("peers said {line:?}"))?;
        if ready.get("ready").is_none() {
            bail!("peers did not start: {line}");
        }
        Ok(Some(Peers {
            child,
            stdin,
            stdout,
            out_dir,
        }))
    }

    fn run(&mut self, workload: &str) -> Result<Vec<(String, f64)>> {
        writeln!(self.stdin, "{workload}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("peers said {line:?}"))?;
        let times = v
            .get(workload)
            .and_then(Value::as_object)
            .with_context(|| format!("peers said {line}"))?;
        Ok(times
            .iter()
            .map(|(k, s)| (k.clone(), s.as_f64().unwrap_or(f64::NAN)))
            .collect())
    }

    fn finish(mut self) -> Result<()> {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        self.child.wait()?;
        Ok(())
    }
}
