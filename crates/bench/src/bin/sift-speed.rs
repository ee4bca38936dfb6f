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
//! The long rerank workload (rerank-long) is that query against its
//! `--pairs` nearest documents, each read whole (title and abstract, up to
//! 512 tokens), as a hub ms-marco MiniLM-L6 cross-encoder reads them. It
//! runs on the parity construction (MiniLM body + a deterministic head):
//! the same architecture without a trained length, so nothing caps it at
//! 128 tokens as the committed reranker is capped.
//!
//! Each round times, one after another on the same machine: the engine's
//! `embed`, `score` and long `score` in every `--modes` precision, then
//! every peer (`eval/bench_peers.py`, a child process that keeps its models
//! loaded). Ratios are taken within the run, because the machine is shared
//! and moves by 10 % between runs. After the rounds, one untimed pass per
//! mode and workload runs under `sift_bert::profile` to show where the time
//! goes, and a targets block holds the run's medians against the issue's
//! targets. The figures go to stdout as tables and to `--out` as JSON.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use sift_bert::kernels::{peak::Peak, Matmul};
use sift_bert::profile::{self, OpTime};
use sift_bert::{BiEncoder, CrossEncoder, ModelFiles, Precision};
use sift_core::{Chunk, ChunkId, ChunkingConfig, Document};
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
    /// Cross-encoder folder (BertForSequenceClassification layout) of the
    /// rerank workload. Default: the first folder under data/rerankers/
    /// with a model.safetensors, else the parity-test construction (MiniLM
    /// body + a deterministic head). The long workload always runs on the
    /// parity construction.
    #[arg(long)]
    cross_encoder: Option<PathBuf>,
    /// Passages to embed (the embed workload).
    #[arg(long, default_value_t = 2000)]
    passages: usize,
    /// Query–passage pairs per rerank: chunks in the rerank workload, whole
    /// documents in rerank-long.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Judged queries whose reranked lists measure nDCG@10 per precision.
    #[arg(long, default_value_t = 20)]
    quality_queries: usize,
    /// Timed rounds (each: every engine mode, then every peer).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Engine precisions to time, comma-separated (f32, fast).
    #[arg(long, default_value = "f32,fast,int8", value_delimiter = ',')]
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
    /// Skip the embed, the rerank or the long rerank workload.
    #[arg(long)]
    skip_embed: bool,
    #[arg(long)]
    skip_rerank: bool,
    #[arg(long)]
    skip_rerank_long: bool,
    /// Where the JSON report and the peers' files go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

/// The long workload's pair length: all BERT's positions, which is what a
/// hub ms-marco MiniLM cross-encoder reads.
const LONG_MAX_LENGTH: usize = 512;

/// Passages of the embed workload's profiled pass: enough batches to keep
/// both workers busy, a quarter of the timed workload's cost.
const PROFILE_EMBED_PASSAGES: usize = 500;

/// The long rerank workload: the first query against whole documents.
struct LongRerank {
    files: ModelFiles,
    passages: Vec<String>,
    lengths: Vec<usize>,
    /// The pair length the engine reads at: 512, unless the model has fewer
    /// positions.
    max_length: usize,
    /// The f32 logits that the other runners' are compared with.
    reference_logits: Vec<f32>,
}

/// One engine precision with its models loaded.
struct Engine {
    mode: Precision,
    /// Its runner name in tables and JSON (`engine-f32`, `engine-fast`).
    key: String,
    bi: BiEncoder,
    cross: CrossEncoder,
    long: Option<CrossEncoder>,
}

fn engine_key(mode: Precision) -> String {
    format!("engine-{mode}")
}

fn main() -> Result<()> {
    sift_bench::run_as_sift_does();
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let peaks = Peaks::measure();
    eprintln!("{}", peaks.describe());

    // ---- inputs ----
    let bi_files = ModelFiles::from_dir(&args.bi_encoder).with_context(|| {
        format!(
            "bi-encoder {} (run `just fetch-models`)",
            args.bi_encoder.display()
        )
    })?;
    let parity_dir = args.out.join("parity-cross-encoder");
    let cross_dir = match &args.cross_encoder {
        Some(dir) => dir.clone(),
        None => committed_cross_encoder().unwrap_or_else(|| parity_dir.clone()),
    };
    if cross_dir == parity_dir || !args.skip_rerank_long {
        write_parity_checkpoint(&args.bi_encoder, &parity_dir)?;
    }
    if cross_dir == parity_dir {
        eprintln!(
            "cross-encoder: none committed; the parity construction in {}",
            parity_dir.display()
        );
    } else {
        eprintln!("cross-encoder: {}", cross_dir.display());
    }
    let cross_files = ModelFiles::from_dir(&cross_dir)?;
    let dataset = Dataset::open(&args.dataset, &args.split)?;
    let corpus = dataset
        .corpus
        .as_ref()
        .with_context(|| format!("{} has no corpus.jsonl", args.dataset.display()))?;
    eprintln!("loading models and chunking {} …", corpus.display());
    let reference_bi = BiEncoder::load(&bi_files, 256, args.batch_size)?;
    let chunker = Chunker::new(reference_bi.tokenizer(), &ChunkingConfig::default());
    let docs: Vec<Document> =
        sift_metrics::corpus_iter(corpus)?.collect::<sift_metrics::Result<_>>()?;
    let mut chunks: Vec<Chunk> = Vec::new();
    for doc in &docs {
        chunks.extend(chunker.chunk(doc)?);
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

    // Reference f32 embeddings rank the pool for both rerank workloads.
    // Without either, they are the first timed f32 round's output instead
    // (an untimed extra pass over 2,000 passages costs minutes here).
    let mut reference_vectors: Option<Vec<Vec<f32>>> = None;
    // Each quality query's pool passages, nearest first.
    let ranked: Vec<Vec<usize>> = if args.skip_rerank && args.skip_rerank_long {
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
        let ranked = query_vectors
            .iter()
            .map(|qv| {
                let mut scored: Vec<(f32, usize)> = vectors
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (dot(qv, v), i))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                scored.into_iter().map(|(_, i)| i).collect()
            })
            .collect();
        reference_vectors = Some(vectors);
        ranked
    };
    let candidates: Vec<Vec<usize>> = ranked
        .iter()
        .map(|r| r.iter().take(args.pairs).copied().collect())
        .collect();
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

    // rerank-long: the same query against its nearest documents, read whole
    // by a cross-encoder without a trained length (so up to 512 tokens).
    let long = if args.skip_rerank_long {
        None
    } else {
        let files = ModelFiles::from_dir(&parity_dir)?;
        let reference = CrossEncoder::load(&files, LONG_MAX_LENGTH, args.rerank_batch_size)?;
        let passages: Vec<String> = nearest_documents(&ranked[0], &passage_docs, &docs, args.pairs)
            .into_iter()
            .map(|d| whole_passage(&docs[d]))
            .collect();
        let lengths: Vec<usize> = passages
            .iter()
            .map(|p| reference.pair_length(rerank_query, p))
            .collect::<sift_bert::Result<_>>()?;
        let t = Instant::now();
        let reference_logits = reference.score(rerank_query, &passages)?;
        eprintln!(
            "rerank-long: {} documents, {:.0} tokens on average (max {}, {} at the {} cap), {:.1} GFLOP; reference f32 pass {:.1} s",
            passages.len(),
            mean(&lengths),
            lengths.iter().max().unwrap_or(&0),
            lengths.iter().filter(|&&l| l >= reference.max_length()).count(),
            reference.max_length(),
            bert_flops(&lengths) / 1e9,
            t.elapsed().as_secs_f64()
        );
        Some(LongRerank {
            files,
            passages,
            lengths,
            max_length: reference.max_length(),
            reference_logits,
        })
    };
    let long_passages: Vec<&str> = long.as_ref().map_or(Vec::new(), |l| {
        l.passages.iter().map(String::as_str).collect()
    });
    let long_gflop = long.as_ref().map_or(0.0, |l| bert_flops(&l.lengths) / 1e9);

    // ---- peers ----
    let mut peers = if args.no_peers {
        None
    } else {
        Peers::start(
            &args,
            &bi_files,
            &passages,
            rerank_query,
            RerankInput {
                model: &cross_dir,
                passages: &rerank_passages,
                max_length: reference_cross.max_length(),
            },
            long.as_ref().map(|l| RerankInput {
                model: &parity_dir,
                passages: &long_passages,
                max_length: l.max_length,
            }),
        )?
    };

    // ---- engine models ----
    let mut engines = Vec::new();
    for &mode in &args.modes {
        let long_cross = match &long {
            Some(l) => Some(CrossEncoder::load_with(
                &l.files,
                LONG_MAX_LENGTH,
                args.rerank_batch_size,
                mode,
            )?),
            None => None,
        };
        engines.push(Engine {
            mode,
            key: engine_key(mode),
            bi: BiEncoder::load_with(&bi_files, 256, args.batch_size, mode)?,
            cross: CrossEncoder::load_with(&cross_files, 512, args.rerank_batch_size, mode)?,
            long: long_cross,
        });
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
    for engine in &engines {
        let mut entry = serde_json::Map::new();
        if let Some(reference_ndcg) = reference_ndcg {
            let logits: Vec<Vec<f32>> = queries
                .iter()
                .zip(&candidates)
                .map(|(q, c)| {
                    let ps: Vec<&str> = c.iter().map(|&i| passages[i].as_str()).collect();
                    engine.cross.score(&q.text, &ps)
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
        accuracy.insert(engine.key.clone(), entry);
    }

    // ---- timed rounds ----
    let mut embed_times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut rerank_times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut long_times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // Each mode's embeddings and long logits from its first timed round,
    // for the accuracy.
    let mut first_vectors: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let mut first_long_logits: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for round in 0..args.runs {
        for engine in &engines {
            if !args.skip_embed {
                let t = Instant::now();
                let v = engine.bi.embed(&passages)?;
                let seconds = t.elapsed().as_secs_f64();
                first_vectors.entry(engine.key.clone()).or_insert(v);
                push(&mut embed_times, engine.key.clone(), seconds);
            }
            if !args.skip_rerank {
                let t = Instant::now();
                let l = engine.cross.score(rerank_query, &rerank_passages)?;
                std::hint::black_box(l);
                push(
                    &mut rerank_times,
                    engine.key.clone(),
                    t.elapsed().as_secs_f64(),
                );
            }
            if let Some(cross) = &engine.long {
                let t = Instant::now();
                let l = cross.score(rerank_query, &long_passages)?;
                let seconds = t.elapsed().as_secs_f64();
                first_long_logits.entry(engine.key.clone()).or_insert(l);
                push(&mut long_times, engine.key.clone(), seconds);
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
            if long.is_some() {
                for (name, s) in p.run("rerank-long")? {
                    push(&mut long_times, name, s);
                }
            }
        }
        eprintln!("round {}/{} done", round + 1, args.runs);
    }
    if !args.skip_embed {
        let reference = match reference_vectors.take() {
            Some(v) => v,
            None => match first_vectors.get(&engine_key(Precision::F32)) {
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
    if let Some(long) = &long {
        for (name, l) in &first_long_logits {
            accuracy.entry(name.clone()).or_default().insert(
                "rerank_long_max_logit_diff_to_f32".into(),
                json!(max_diff(
                    std::slice::from_ref(l),
                    std::slice::from_ref(&long.reference_logits)
                )),
            );
        }
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
            if let (Some(v), Some(long)) = (
                read_f32(&out_dir.join(format!("{name}.rerank-long.f32")))?,
                &long,
            ) {
                entry.insert(
                    "rerank_long_max_logit_diff_to_engine_f32".into(),
                    json!(max_diff(&[v], std::slice::from_ref(&long.reference_logits))),
                );
            }
            accuracy.insert(name.to_owned(), entry);
        }
    }

    // ---- per-operation profile: one untimed pass per mode and workload ----
    let mut profiles = Vec::new();
    for engine in &engines {
        if !args.skip_embed {
            let n = passages.len().min(PROFILE_EMBED_PASSAGES);
            profiles.push(profile_pass(
                engine.mode,
                "embed",
                n,
                bert_flops(&embed_lengths[..n]),
                || engine.bi.embed(&passages[..n]).map(drop),
            )?);
        }
        if !args.skip_rerank {
            profiles.push(profile_pass(
                engine.mode,
                "rerank",
                rerank_passages.len(),
                bert_flops(&rerank_lengths),
                || engine.cross.score(rerank_query, &rerank_passages).map(drop),
            )?);
        }
        if let (Some(cross), Some(long)) = (&engine.long, &long) {
            profiles.push(profile_pass(
                engine.mode,
                "rerank-long",
                long_passages.len(),
                bert_flops(&long.lengths),
                || cross.score(rerank_query, &long_passages).map(drop),
            )?);
        }
    }

    // ---- targets (the issue's), from this run's medians ----
    let median_of =
        |times: &BTreeMap<String, Vec<f64>>, runner: &str| times.get(runner).map(|v| stats(v).1);
    let accuracy_of = |runner: &str, key: &str| {
        accuracy
            .get(runner)
            .and_then(|e| e.get(key))
            .and_then(Value::as_f64)
    };
    let (f32_key, fast_key) = (engine_key(Precision::F32), engine_key(Precision::Fast));
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    // The rerank time and its nDCG@10 budget against f32, per faster mode:
    // the for fast, its int8 condition for int8.
    let rerank_targets = [(Precision::Fast, 0.003), (Precision::Int8, 0.005)]
        .into_iter()
        .flat_map(|(mode, budget)| {
            let key = engine_key(mode);
            [
                Target {
                    what: format!("rerank {} pairs: {mode} median ms", rerank_passages.len()),
                    value: median_of(&rerank_times, &key).map(|s| s * 1e3),
                    goal: Goal::AtMost(80.0),
                    digits: 1,
                },
                Target {
                    what: format!(
                        "rerank: |{mode} − f32 nDCG@10| on {} queries",
                        queries.len()
                    ),
                    value: accuracy_of(&key, "ndcg10_minus_f32").map(f64::abs),
                    goal: Goal::AtMost(budget),
                    digits: 4,
                },
            ]
        });
    let targets: Vec<Target> = rerank_targets
        .chain([
            Target {
                what: "rerank-long: fast / ORT fp32 median time".into(),
                value: ratio(
                    median_of(&long_times, &fast_key),
                    median_of(&long_times, "ort-fp32"),
                ),
                goal: Goal::AtMost(0.2),
                digits: 3,
            },
            Target {
                what: "rerank-long: f32 / ORT fp32 median time".into(),
                value: ratio(
                    median_of(&long_times, &f32_key),
                    median_of(&long_times, "ort-fp32"),
                ),
                goal: Goal::AtMost(0.6),
                digits: 3,
            },
            Target {
                what: "embed: fast / ORT fp32 passages/s (median)".into(),
                // Passages per second are inverse to the seconds.
                value: ratio(
                    median_of(&embed_times, "ort-fp32"),
                    median_of(&embed_times, &fast_key),
                ),
                goal: Goal::AtLeast(5.0),
                digits: 2,
            },
            Target {
                what: "embed: fast min cosine to f32".into(),
                value: accuracy_of(&fast_key, "embed_min_cosine_to_f32"),
                goal: Goal::AtLeast(0.9999),
                digits: 6,
            },
        ])
        .collect();

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
            "useful_tflops_median": useful_tflops(&embed_times, embed_gflop),
        },
        "rerank": {
            "pairs": rerank_passages.len(),
            "max_length": reference_cross.max_length(),
            "mean_tokens": mean(&rerank_lengths),
            "max_tokens": rerank_lengths.iter().max(),
            "useful_gflop": rerank_gflop,
            "seconds": summarize(&rerank_times),
            "useful_tflops_median": useful_tflops(&rerank_times, rerank_gflop),
        },
        "rerank_long": long.as_ref().map(|l| json!({
            "cross_encoder": parity_dir,
            "documents": l.passages.len(),
            "max_length": l.max_length,
            "mean_tokens": mean(&l.lengths),
            "max_tokens": l.lengths.iter().max(),
            "at_max_length": l.lengths.iter().filter(|&&n| n >= l.max_length).count(),
            "useful_gflop": long_gflop,
            "seconds": summarize(&long_times),
            "useful_tflops_median": useful_tflops(&long_times, long_gflop),
        })),
        "quality": {
            "queries": queries.len(),
            "f32_ndcg10": reference_ndcg,
        },
        "accuracy": accuracy,
        "profile": profiles.iter().map(|p| p.to_json(&peaks)).collect::<Vec<_>>(),
        "targets": targets.iter().map(Target::to_json).collect::<Vec<_>>(),
        "peaks": peaks.to_json(),
    });
    let path = args.out.join("speed.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("\n{}", peaks.describe());
    if !rerank_times.is_empty() {
        print_rerank_table(
            &format!(
                "rerank {} pairs (read at {} tokens at most)",
                rerank_passages.len(),
                reference_cross.max_length()
            ),
            &rerank_times,
            rerank_gflop,
            args.runs,
            &peaks,
        );
    }
    if let (false, Some(long)) = (long_times.is_empty(), &long) {
        print_rerank_table(
            &format!(
                "rerank-long {} whole documents (read at {} tokens at most, parity cross-encoder)",
                long.passages.len(),
                long.max_length
            ),
            &long_times,
            long_gflop,
            args.runs,
            &peaks,
        );
    }
    if !embed_times.is_empty() {
        print_embed_table(&embed_times, passages.len(), embed_gflop, args.runs, &peaks);
    }
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
    for p in &profiles {
        p.print(&peaks);
    }
    println!("\nJSON: {}", path.display());
    println!("\ntargets (medians of this run):");
    for t in &targets {
        t.print();
    }
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
/// layer and in QKᵀ and AV. Embeddings, norms and heads are noise. Every
/// runner is credited with this work, whatever it skips (the engine's
/// cross-encoder runs its last layer for the [CLS] rows only; the profile
/// tables count what it computes).
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

/// The first `n` distinct documents of the ranked pool passages, as indices
/// into `docs`. A pool with fewer distinct documents is filled with the
/// corpus's documents in corpus order (skipping those taken): ranking the
/// rest by a document-level embedding would mean embedding the corpus, and
/// only pools far below the default size run short.
fn nearest_documents(
    ranked: &[usize],
    passage_docs: &[&str],
    docs: &[Document],
    n: usize,
) -> Vec<usize> {
    let index: HashMap<&str, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for d in ranked
        .iter()
        .map(|&p| index[passage_docs[p]])
        .chain(0..docs.len())
    {
        if out.len() == n {
            break;
        }
        if seen.insert(d) {
            out.push(d);
        }
    }
    out
}

/// A whole document as one passage, joined by `Chunk::passage` itself (the
/// title, then the text), so that it reads as the engine's chunks do. The
/// text keeps any heading lines: SciFact's abstracts have none.
fn whole_passage(doc: &Document) -> String {
    Chunk {
        id: ChunkId::derive(&doc.id, 0, &doc.text),
        doc_id: doc.id.clone(),
        ordinal: 0,
        title: doc.title.clone(),
        section: Vec::new(),
        text: doc.text.clone(),
        char_start: 0,
        char_end: doc.text.chars().count(),
        metadata: doc.metadata.clone(),
    }
    .passage()
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

/// Each runner's useful TFLOP/s end to end, at its median time.
fn useful_tflops(times: &BTreeMap<String, Vec<f64>>, gflop: f64) -> Value {
    times
        .iter()
        .map(|(k, v)| (k.clone(), json!(gflop / stats(v).1 / 1e3)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn print_rerank_table(
    title: &str,
    times: &BTreeMap<String, Vec<f64>>,
    gflop: f64,
    runs: usize,
    peaks: &Peaks,
) {
    let ort = times.get("ort-fp32").map(|v| stats(v).1);
    println!("\n{title}: seconds min / median / max over {runs} runs, {gflop:.1} useful GFLOP");
    println!(
        "| runner | min s | median s | max s | × ORT fp32 time | useful GFLOP/s | % of its peak |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, v) in times {
        let (min, med, max) = stats(v);
        let ratio = ort.map_or("-".into(), |o| format!("{:.2}", med / o));
        let gf = gflop / med;
        println!(
            "| {name} | {min:.3} | {med:.3} | {max:.3} | {ratio} | {gf:.1} | {:.0} % |",
            100.0 * gf / peaks.of(name).gflops
        );
    }
}

fn print_embed_table(
    times: &BTreeMap<String, Vec<f64>>,
    passages: usize,
    gflop: f64,
    runs: usize,
    peaks: &Peaks,
) {
    let ort = times.get("ort-fp32").map(|v| stats(v).1);
    println!(
        "\nembed {passages} passages: passages/s (from min / median / max seconds) over {runs} runs, {gflop:.1} useful GFLOP"
    );
    println!("| runner | best /s | median /s | worst /s | × ORT fp32 speed | useful GFLOP/s | % of its peak |");
    println!("|---|---|---|---|---|---|---|");
    for (name, v) in times {
        let (min, med, max) = stats(v);
        let n = passages as f64;
        let ratio = ort.map_or("-".into(), |o| format!("{:.2}", o / med));
        let gf = gflop / med;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {ratio} | {gf:.1} | {:.0} % |",
            n / min,
            n / med,
            n / max,
            100.0 * gf / peaks.of(name).gflops
        );
    }
}

/// What the "% of peak" figures divide by: the measured peak of the
/// instruction each runner's products run on (see
/// [`sift_bert::kernels::peak`]).
struct Peaks(sift_bert::kernels::peak::Peaks);

impl Peaks {
    fn measure() -> Peaks {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Peaks(sift_bert::kernels::peak::Peaks::measure(cores))
    }

    /// The engine's linear layers in `mode`.
    fn of_mode(&self, mode: Precision) -> Peak {
        self.0.of(Matmul::from(mode))
    }

    /// The machine peak a runner is held against: its precision's for the
    /// engine's modes; int8 (VNNI) for ONNX Runtime's int8, which runs
    /// `vpdpbusd` where the CPU has it; f32 for the fp32 peers.
    fn of(&self, runner: &str) -> Peak {
        for mode in [Precision::F32, Precision::Fast, Precision::Int8] {
            if runner == engine_key(mode) {
                return self.of_mode(mode);
            }
        }
        if runner.contains("int8") {
            self.0.of(Matmul::Int8)
        } else {
            self.0.f32
        }
    }

    /// One core's peak for an engine mode, and which instruction it is.
    fn per_core(&self, mode: Precision) -> (f64, &'static str) {
        let peak = self.of_mode(mode);
        (peak.gflops_per_core, peak.instruction)
    }

    /// One line per peak, for the log and the report.
    fn describe(&self) -> String {
        let p = &self.0;
        let line = |name: &str, peak: &Peak| {
            format!(
                "  {name:5} {:>8.0} GFLOP/s ({:.0} per core) {} ({})",
                peak.gflops,
                peak.gflops_per_core,
                peak.instruction,
                if peak.measured {
                    "measured"
                } else {
                    "clock × its published rate"
                }
            )
        };
        let mut text = format!(
            "peaks on {} cores at a measured {:.2} GHz:\n{}",
            p.cores,
            p.clock_ghz,
            line("f32", &p.f32)
        );
        for (name, peak) in [
            ("bf16", p.bf16_vector),
            ("tiles", p.bf16_tiles),
            ("int8", p.int8),
        ] {
            match peak {
                Some(peak) => text += &format!("\n{}", line(name, &peak)),
                None => text += &format!("\n  {name:5} none on this CPU"),
            }
        }
        text
    }

    fn to_json(&self) -> Value {
        let peak = |p: &Peak| {
            json!({
                "instruction": p.instruction,
                "gflops": p.gflops,
                "gflops_per_core": p.gflops_per_core,
                "measured": p.measured,
            })
        };
        json!({
            "cores": self.0.cores,
            "clock_ghz": self.0.clock_ghz,
            "f32": peak(&self.0.f32),
            "bf16_vector": self.0.bf16_vector.as_ref().map(peak),
            "bf16_tiles": self.0.bf16_tiles.as_ref().map(peak),
            "int8": self.0.int8.as_ref().map(peak),
        })
    }
}

/// One profiled pass of a workload in one engine mode.
struct Profile {
    mode: Precision,
    workload: &'static str,
    inputs: usize,
    wall: f64,
    useful_flops: f64,
    ops: Vec<OpTime>,
}

/// One operation's line of a profile table.
struct OpRow<'a> {
    time: &'a OpTime,
    /// Percent of the pass's thread time.
    share: f64,
    /// For the operations that count FLOPs: their rate, and that rate
    /// against one core's peak (each call runs on one thread).
    gflops: Option<f64>,
    percent_of_core_peak: Option<f64>,
}

/// Run `pass` once with the per-operation profile on.
fn profile_pass(
    mode: Precision,
    workload: &'static str,
    inputs: usize,
    useful_flops: f64,
    pass: impl FnOnce() -> sift_bert::Result<()>,
) -> Result<Profile> {
    profile::enable();
    let t = Instant::now();
    let result = pass();
    let wall = t.elapsed().as_secs_f64();
    profile::disable();
    let ops = profile::take();
    result?;
    Ok(Profile {
        mode,
        workload,
        inputs,
        wall,
        useful_flops,
        ops: ops.into_iter().filter(|o| o.calls > 0).collect(),
    })
}

impl Profile {
    fn thread_seconds(&self) -> f64 {
        self.ops.iter().map(|o| o.seconds).sum()
    }

    /// Each operation's share of the thread time and its rate.
    fn rows(&self, peaks: &Peaks) -> Vec<OpRow<'_>> {
        let total = self.thread_seconds();
        let (core_peak, _) = peaks.per_core(self.mode);
        self.ops
            .iter()
            .map(|o| {
                let gflops = (o.flops > 0.0 && o.seconds > 0.0).then(|| o.flops / o.seconds / 1e9);
                let peak = if o.op == profile::Op::Attention {
                    peaks
                        .0
                        .of_attention(Matmul::from(self.mode))
                        .gflops_per_core
                } else {
                    core_peak
                };
                OpRow {
                    time: o,
                    share: 100.0 * o.seconds / total,
                    gflops,
                    percent_of_core_peak: gflops.map(|g| 100.0 * g / peak),
                }
            })
            .collect()
    }

    fn print(&self, peaks: &Peaks) {
        let thread = self.thread_seconds();
        let counted: f64 = self.ops.iter().map(|o| o.flops).sum();
        let (core_peak, kind) = peaks.per_core(self.mode);
        let attention_peak = peaks.0.of_attention(Matmul::from(self.mode));
        let attention = attention_peak.gflops_per_core;
        println!(
            "\nprofile {} {} ({} inputs, one untimed pass): wall {:.3} s, thread time in the ops {:.3} s = {:.2} × wall; {:.3} useful TFLOP/s end to end ({:.1} useful GFLOP, the ops compute {:.1})",
            engine_key(self.mode),
            self.workload,
            self.inputs,
            self.wall,
            thread,
            thread / self.wall,
            self.useful_flops / self.wall / 1e12,
            self.useful_flops / 1e9,
            counted / 1e9
        );
        println!(
            "| op | calls | thread ms | % of thread time | GFLOP/s | % of per-core peak ({core_peak:.0} {kind}; attention {attention:.0} {}) |",
            attention_peak.instruction
        );
        println!("|---|---|---|---|---|---|");
        for row in self.rows(peaks) {
            let gflops = row.gflops.map_or("-".into(), |g| format!("{g:.1}"));
            let pct = row
                .percent_of_core_peak
                .map_or("-".into(), |p| format!("{p:.0} %"));
            println!(
                "| {} | {} | {:.1} | {:.1} % | {gflops} | {pct} |",
                row.time.op.name(),
                row.time.calls,
                row.time.seconds * 1e3,
                row.share
            );
        }
    }

    fn to_json(&self, peaks: &Peaks) -> Value {
        let (core_peak, kind) = peaks.per_core(self.mode);
        let ops: Vec<Value> = self
            .rows(peaks)
            .into_iter()
            .map(|row| {
                json!({
                    "op": row.time.op.name(),
                    "calls": row.time.calls,
                    "thread_ms": row.time.seconds * 1e3,
                    "percent_of_thread_time": row.share,
                    "flops": row.time.flops,
                    "gflops": row.gflops,
                    "percent_of_core_peak": row.percent_of_core_peak,
                })
            })
            .collect();
        json!({
            "mode": self.mode.name(),
            "workload": self.workload,
            "inputs": self.inputs,
            "wall_seconds": self.wall,
            "thread_seconds": self.thread_seconds(),
            "thread_over_wall": self.thread_seconds() / self.wall,
            "useful_gflop": self.useful_flops / 1e9,
            "useful_tflops": self.useful_flops / self.wall / 1e12,
            "core_peak_gflops": core_peak,
            "core_peak_kind": kind,
            "attention_core_peak_gflops": peaks.0.of_attention(Matmul::from(self.mode)).gflops_per_core,
            "ops": ops,
        })
    }
}

enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

/// One of the targets against this run's figure (`None`: a runner
/// or workload it needs did not run).
struct Target {
    what: String,
    value: Option<f64>,
    goal: Goal,
    /// Decimals to print the value with.
    digits: usize,
}

impl Target {
    /// `None` when met, else how far off.
    fn shortfall(&self, value: f64) -> Option<f64> {
        match self.goal {
            Goal::AtMost(bound) => (value > bound).then_some(value - bound),
            Goal::AtLeast(bound) => (value < bound).then_some(bound - value),
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::AtMost(b) => format!("≤ {b}"),
            Goal::AtLeast(b) => format!("≥ {b}"),
        }
    }

    fn verdict(&self) -> String {
        let d = self.digits;
        match self.value {
            None => "n/a".into(),
            Some(v) => match self.shortfall(v) {
                None => "met".into(),
                Some(x) => format!("missed by {x:.d$}"),
            },
        }
    }

    fn print(&self) {
        let d = self.digits;
        let value = self.value.map_or("n/a".into(), |v| format!("{v:.d$}"));
        println!(
            "  {:<50} {value:>10}  target {:<10} {}",
            self.what,
            self.goal_text(),
            self.verdict()
        );
    }

    fn to_json(&self) -> Value {
        json!({
            "target": self.what,
            "value": self.value,
            "goal": self.goal_text(),
            "verdict": self.verdict(),
        })
    }
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

/// The first committed cross-encoder under data/rerankers/, if any.
fn committed_cross_encoder() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("data/rerankers")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.safetensors").is_file() && p.join("config.json").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
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
    // Replaced only when the bytes change: the peers' ONNX files are
    // stamped with the weights' mtime, and exporting them again costs a
    // minute per run.
    let weights = dir.join("model.safetensors");
    let fresh = dir.join("model.safetensors.new");
    safetensors::save(&tensors, &fresh)?;
    if std::fs::read(&weights).ok() == Some(std::fs::read(&fresh)?) {
        std::fs::remove_file(&fresh)?;
    } else {
        std::fs::rename(&fresh, &weights)?;
    }
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

/// One rerank workload as the peers get it.
struct RerankInput<'a> {
    model: &'a Path,
    passages: &'a [&'a str],
    /// The engine's pair length (a trained checkpoint caps it at its
    /// trained length): the peers must truncate alike to get the same inputs.
    max_length: usize,
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
        passages: &[String],
        query: &str,
        rerank: RerankInput,
        long: Option<RerankInput>,
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
            "cross_encoder": rerank.model,
            "cache_dir": args.out.join("onnx"),
            "out_dir": out_dir,
            "passages": passages,
            "query": query,
            "candidates": rerank.passages,
            "batch_size": args.batch_size,
            "max_seq_length": 256,
            "max_length": rerank.max_length,
            "long": long.map(|l| json!({
                "cross_encoder": l.model,
                "candidates": l.passages,
                "max_length": l.max_length,
            })),
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
