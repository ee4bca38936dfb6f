//! The training loop: mine, tokenise, cache the frozen layers, train the
//! top layers with a listwise softmax loss, validate, stop early, save.

use crate::data::{self, MiningSummary, Passage, ValidationQuery, WeakQuery};
use crate::model::CrossEncoderNet;
use crate::pairs::{pad_hidden, Pair, PairTokenizer};
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use serde::Serialize;
use sift_bert::{BertBody, ModelFiles, ModelRole, Precision};
use sift_core::{Config, ModelSource};
use sift_eval::progress_bar;
use sift_metrics::{evaluate, Dataset, Metric, MissingQueries, Qrels, Run};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything a training run needs. [`TrainOptions::new`] fills in the
/// recipe of the committed checkpoint; the fields document each knob.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOptions {
    /// A BEIR folder: `queries.jsonl`, `qrels/SPLIT.tsv`, `corpus.jsonl`.
    pub dataset: PathBuf,
    /// The judged split to learn from (never the test split).
    pub split: String,
    /// The corpus, when not `DATASET/corpus.jsonl`.
    pub corpus: Option<PathBuf>,
    /// The index stage 1 mines negatives from (built if missing).
    pub index: PathBuf,
    /// Where the checkpoint and `training.json` are written.
    pub out: PathBuf,
    /// Engine configuration of the index.
    #[serde(skip)]
    pub config: Config,
    /// The BERT to start from; its classifier head is drawn fresh.
    pub base_model: ModelSource,
    pub seed: u64,
    /// Longest (query, passage) pair in tokens during training.
    pub max_length: usize,
    /// Top encoder layers trained (with pooler and head); the rest and the
    /// embeddings are frozen and run once per pair.
    pub trainable_layers: usize,
    /// Hard negatives beside each positive in a softmax group.
    pub negatives: usize,
    /// Hard negatives mined per query, sampled from each epoch.
    pub negative_pool: usize,
    /// Stage-1 chunks looked at when mining.
    pub mining_depth: usize,
    /// Queries (softmax groups) per optimiser step.
    pub queries_per_step: usize,
    pub epochs: usize,
    /// Peak learning rate of the encoder layers and pooler.
    pub learning_rate: f64,
    /// Peak learning rate of the fresh classifier.
    pub head_learning_rate: f64,
    /// Share of the steps with a linear warm-up; then linear decay to 0.
    pub warmup_fraction: f64,
    /// Share of the split's queries held out for validation.
    pub validation_fraction: f64,
    /// Stage-1 chunks reranked per validation query.
    pub validation_depth: usize,
    pub evaluations_per_epoch: usize,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// Weak examples from the corpus (a title or a sentence as the query
    /// for its own text), beside the judged ones.
    pub weak_examples: usize,
    /// What weak examples ask with.
    pub weak_query: WeakQuery,
    /// Weight of the distillation term: the softmax of the bi-encoder's
    /// cosines over each group as a soft target beside the judged positive
    /// (0: off). The bi-encoder saw a billion general sentence pairs; the
    /// judgements are few and of one domain.
    pub distill_weight: f64,
    /// Temperature of the bi-encoder's cosines in the soft target.
    pub distill_temperature: f64,
    /// Train on only the first N queries of the split (for quick runs).
    pub max_queries: Option<usize>,
    /// Store the weights as f16 (half the size, same rankings).
    pub half_precision: bool,
    #[serde(skip)]
    pub progress: bool,
}

impl TrainOptions {
    pub fn new(
        dataset: impl Into<PathBuf>,
        index: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
    ) -> Self {
        TrainOptions {
            dataset: dataset.into(),
            split: "train".into(),
            corpus: None,
            index: index.into(),
            out: out.into(),
            config: Config::default(),
            base_model: Config::default().models.bi_encoder,
            seed: 17,
            max_length: 128,
            trainable_layers: 2,
            negatives: 5,
            negative_pool: 15,
            mining_depth: 40,
            queries_per_step: 8,
            epochs: 2,
            learning_rate: 2e-4,
            head_learning_rate: 2e-3,
            warmup_fraction: 0.1,
            validation_fraction: 0.1,
            validation_depth: 30,
            evaluations_per_epoch: 2,
            patience: 2,
            weak_examples: 700,
            weak_query: WeakQuery::Sentence,
            distill_weight: 0.0,
            distill_temperature: 0.05,
            max_queries: None,
            half_precision: true,
            progress: false,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidOption(m.to_owned()));
        if self.split == "test" {
            return bad("refusing to train on the test split: train on `train` (or a dev split) and evaluate on `test`");
        }
        if self.max_length < 16 || self.max_length > 512 {
            return bad("max_length must be within 16..=512 tokens");
        }
        if self.negatives == 0 || self.negative_pool < self.negatives {
            return bad("need 1 <= negatives <= negative_pool");
        }
        if self.queries_per_step == 0 || self.epochs == 0 || self.evaluations_per_epoch == 0 {
            return bad("queries_per_step, epochs and evaluations_per_epoch must be positive");
        }
        if self.trainable_layers == 0 {
            return bad("train at least one layer");
        }
        if !(0.0..0.9).contains(&self.validation_fraction) {
            return bad("validation_fraction must be within [0, 0.9)");
        }
        if !(self.distill_weight >= 0.0 && self.distill_temperature > 0.0) {
            return bad("distill_weight must be >= 0 and distill_temperature > 0");
        }
        if !(self.learning_rate > 0.0 && self.head_learning_rate > 0.0) {
            return bad("learning rates must be positive");
        }
        Ok(())
    }
}

/// One validation of the model during training.
#[derive(Clone, Debug, Serialize)]
pub struct ValidationPoint {
    pub step: usize,
    pub epoch: f64,
    /// Mean training loss since the previous validation.
    pub train_loss: f64,
    pub ndcg_at_10: f64,
}

/// Validation nDCG@10 at one stage-1 weight of the blend.
#[derive(Clone, Debug, Serialize)]
pub struct BlendPoint {
    pub stage1_weight: f32,
    pub ndcg_at_10: f64,
}

/// Stage-1 weights tried on the validation queries: 0, 0.1, ..., 1.
const BLEND_WEIGHTS: usize = 11;

/// Wall-clock seconds per phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseSeconds {
    pub index_and_mine: f64,
    pub tokenize: f64,
    /// The bi-encoder's scores of every training pair (distillation only).
    pub teacher: f64,
    pub frozen_layers: f64,
    pub train_steps: f64,
    pub validation: f64,
    pub save: f64,
    pub total: f64,
}

/// What a training run did and measured; written as `training.json`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub options: TrainOptions,
    pub base_model: String,
    pub train_queries: usize,
    pub validation_queries: usize,
    pub mining: MiningSummary,
    pub pairs_cached: usize,
    pub mean_pair_tokens: f64,
    pub steps: usize,
    /// nDCG@10 of the validation queries in stage-1 (hybrid) order.
    pub validation_stage1_ndcg_at_10: f64,
    pub validation: Vec<ValidationPoint>,
    pub best_ndcg_at_10: f64,
    pub best_step: usize,
    /// Validation nDCG@10 of the best weights blended with the stage-1
    /// order (`sift_rerank::blend`), per stage-1 weight tried.
    pub validation_blend: Vec<BlendPoint>,
    /// The weight with the best validation nDCG@10 (the smallest of equals),
    /// written into the checkpoint's config.json as the engine's default.
    pub stage1_weight: f32,
    /// The validation queries' ids, so their scores can be checked apart.
    pub validation_query_ids: Vec<String>,
    pub stopped_early: bool,
    pub seconds: PhaseSeconds,
    /// Useful (unpadded) GFLOP per second of the training steps, forward
    /// and backward counted as 3 forward passes of the trained layers.
    pub train_gflops_per_second: f64,
    pub checkpoint: PathBuf,
}

/// A tokenised pair and, once computed, the hidden states the frozen
/// layers give it: `[len, hidden]`.
struct CachedPair {
    pair: Pair,
    hidden: Option<Tensor>,
}

/// Pair indices of one training example.
struct ExamplePairs {
    positives: Vec<usize>,
    negatives: Vec<usize>,
}

/// Train a cross-encoder as `options` say; returns the report (also
/// written to `OUT/training.json`) after writing the checkpoint to `OUT`.
pub fn train(options: &TrainOptions) -> Result<TrainReport> {
    options.validate()?;
    let started = Instant::now();
    let mut seconds = PhaseSeconds::default();

    let base = ModelFiles::resolve(&options.base_model, ModelRole::BiEncoder)
        .map_err(|e| Error::BaseModel(e.to_string()))?;
    let net = CrossEncoderNet::load(&base, options.seed)?;
    let body = BertBody::load(&base, Precision::F32)?;
    let trainable = options.trainable_layers.min(net.num_layers());
    let frozen = net.num_layers() - trainable;

    // Stage 1 over the corpus: the index is built (or completed) here.
    let phase = Instant::now();
    let mut eval_options =
        sift_eval::EvalOptions::new(&options.dataset, &options.index, &options.out);
    eval_options.split = options.split.clone();
    eval_options.corpus = options.corpus.clone();
    eval_options.config = options.config.clone();
    // Mining needs stage 1 only: no cross-encoder is fetched or loaded.
    eval_options.config.search.rerank = false;
    eval_options.progress = options.progress;
    eval_options.depth = 1;
    eval_options.k = 1;
    let run = sift_eval::EvalRun::open(eval_options)?;
    let engine = run.engine();
    let qrels = Dataset::open(&options.dataset, &options.split)?.qrels;
    let mut queries = run.queries().to_vec();
    if let Some(n) = options.max_queries {
        queries.truncate(n);
    }
    if queries.is_empty() {
        return Err(Error::NoData(format!(
            "the {} split of {} has no judged queries",
            options.split,
            options.dataset.display()
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.shuffle(&mut rng);
    let held_out = ((queries.len() as f64) * options.validation_fraction).round() as usize;
    let mut validation_ids: Vec<usize> = order[..held_out].to_vec();
    let mut train_ids: Vec<usize> = order[held_out..].to_vec();
    validation_ids.sort_unstable();
    train_ids.sort_unstable();
    let train_queries: Vec<_> = train_ids.iter().map(|&i| queries[i].clone()).collect();
    let validation_queries: Vec<_> = validation_ids.iter().map(|&i| queries[i].clone()).collect();

    let mut mining = MiningSummary::default();
    let bar = progress_bar(
        options.progress,
        train_queries.len(),
        "mining hard negatives",
    );
    let mut examples = data::mine_examples(
        engine,
        &train_queries,
        &qrels,
        options.mining_depth,
        options.negative_pool,
        &mut mining,
        || bar.inc(1),
    )?;
    bar.finish_and_clear();
    if examples.is_empty() {
        return Err(Error::NoData(
            "no training query has both a positive and a negative".into(),
        ));
    }
    if options.weak_examples > 0 {
        // Titles of documents judged for validation queries would leak them.
        let exclude: HashSet<String> = validation_queries
            .iter()
            .flat_map(|q| qrels.get(&q.id).into_iter().flat_map(|j| j.keys().cloned()))
            .collect();
        let corpus_ids = engine.document_ids()?;
        let bar = progress_bar(
            options.progress,
            options.weak_examples,
            "mining weak examples",
        );
        let weak = data::mine_weak_examples(
            engine,
            &corpus_ids,
            &exclude,
            options.weak_query,
            options.weak_examples,
            options.mining_depth,
            options.negative_pool,
            options.seed,
            || bar.inc(1),
        )?;
        bar.finish_and_clear();
        mining.weak_examples = weak.len();
        examples.extend(weak);
    }
    let validation =
        data::validation_queries(engine, &validation_queries, options.validation_depth)?;
    let validation_qrels: Qrels = validation
        .iter()
        .filter_map(|v| qrels.get(&v.id).map(|j| (v.id.clone(), j.clone())))
        .collect();
    seconds.index_and_mine = phase.elapsed().as_secs_f64();
    tracing::info!(
        examples = examples.len(),
        validation = validation.len(),
        "mined in {:.1}s",
        seconds.index_and_mine
    );

    // Tokenise every pair once.
    let phase = Instant::now();
    let tokenizer = PairTokenizer::load(&base.tokenizer, options.max_length)?;
    let mut pairs: Vec<CachedPair> = Vec::new();
    let mut add = |query: &str, p: &Passage| -> Result<usize> {
        pairs.push(CachedPair {
            pair: tokenizer.encode(query, &p.text)?,
            hidden: None,
        });
        Ok(pairs.len() - 1)
    };
    let mut example_pairs = Vec::with_capacity(examples.len());
    for e in &examples {
        example_pairs.push(ExamplePairs {
            positives: e
                .positives
                .iter()
                .map(|p| add(&e.query, p))
                .collect::<Result<_>>()?,
            negatives: e
                .negatives
                .iter()
                .map(|p| add(&e.query, p))
                .collect::<Result<_>>()?,
        });
    }
    let validation_pairs: Vec<Vec<usize>> = validation
        .iter()
        .map(|v| v.candidates.iter().map(|p| add(&v.query, p)).collect())
        .collect::<Result<_>>()?;
    seconds.tokenize = phase.elapsed().as_secs_f64();
    let phase = Instant::now();
    let teacher = if options.distill_weight > 0.0 {
        let bar = progress_bar(options.progress, 1, "bi-encoder scores (distillation)");
        let scores = teacher_scores(engine.bi_encoder(), &examples, &example_pairs, pairs.len())?;
        bar.finish_and_clear();
        Some(scores)
    } else {
        None
    };
    seconds.teacher = phase.elapsed().as_secs_f64();
    let total_tokens: usize = pairs.iter().map(|p| p.pair.ids.len()).sum();
    let mean_pair_tokens = total_tokens as f64 / pairs.len().max(1) as f64;

    // The frozen layers run once per pair; training reads their output.
    let phase = Instant::now();
    cache_frozen_layers(&body, frozen, &mut pairs, options.progress)?;
    drop(body);
    seconds.frozen_layers = phase.elapsed().as_secs_f64();
    tracing::info!(
        pairs = pairs.len(),
        mean_pair_tokens,
        "frozen layers cached in {:.1}s",
        seconds.frozen_layers
    );

    // Validation nDCG@10 of the reranked order blended with stage 1 at each
    // weight (candidates are in stage-1 order); `&[0.0]` is the reranker alone.
    let validate_blends = |net: &CrossEncoderNet, weights: &[f32]| -> Result<Vec<f64>> {
        let scores = score_cached(net, frozen, &pairs, &validation_pairs.concat())?;
        let mut per_query = Vec::with_capacity(validation.len());
        let mut at = 0;
        for ids in &validation_pairs {
            per_query.push(&scores[at..at + ids.len()]);
            at += ids.len();
        }
        Ok(weights
            .iter()
            .map(|&w| {
                let run: Run = validation
                    .iter()
                    .zip(&per_query)
                    .map(|(v, s)| {
                        let order = sift_rerank::blend(s, w);
                        (v.id.clone(), document_run(v, &order))
                    })
                    .collect();
                ndcg_at_10(&validation_qrels, &run)
            })
            .collect())
    };
    let validate = |net: &CrossEncoderNet| -> Result<f64> { Ok(validate_blends(net, &[0.0])?[0]) };
    let stage1_run: Run = validation
        .iter()
        .map(|v| {
            let ranks: Vec<f32> = (0..v.candidates.len()).map(|i| -(i as f32)).collect();
            (v.id.clone(), document_run(v, &ranks))
        })
        .collect();
    let validation_stage1 = ndcg_at_10(&validation_qrels, &stage1_run);

    // Train.
    let (body_vars, head_vars) = net.trainable_vars(trainable);
    let adam = |lr: f64| ParamsAdamW {
        lr,
        weight_decay: 0.01,
        ..ParamsAdamW::default()
    };
    let mut body_opt = AdamW::new(body_vars, adam(options.learning_rate))?;
    let mut head_opt = AdamW::new(head_vars, adam(options.head_learning_rate))?;
    let steps_per_epoch = examples.len().div_ceil(options.queries_per_step);
    let total_steps = steps_per_epoch * options.epochs;
    let warmup = ((total_steps as f64) * options.warmup_fraction).ceil() as usize;
    let evaluate_every = steps_per_epoch
        .div_ceil(options.evaluations_per_epoch)
        .max(1);

    let mut history = Vec::new();
    let mut best = (f64::NEG_INFINITY, 0usize);
    let mut best_weights = None;
    let mut bad_evaluations = 0;
    let mut stopped_early = false;
    let mut loss_sum = 0.0;
    let mut loss_steps = 0usize;
    let mut step = 0usize;
    let mut train_seconds = 0.0;
    let mut validation_seconds = 0.0;
    let mut trained_tokens = 0usize;

    let phase = Instant::now();
    let first = validate(&net)?;
    validation_seconds += phase.elapsed().as_secs_f64();
    tracing::info!(
        stage1 = validation_stage1,
        untrained = first,
        "validation nDCG@10 before training"
    );

    let bar = progress_bar(options.progress, total_steps, "training");
    'epochs: for epoch in 0..options.epochs {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.shuffle(&mut rng);
        for batch in order.chunks(options.queries_per_step) {
            let phase = Instant::now();
            let groups: Vec<Vec<usize>> = batch
                .iter()
                .map(|&e| {
                    let ex = &example_pairs[e];
                    let positive = ex.positives[epoch % ex.positives.len()];
                    let take = options.negatives.min(ex.negatives.len());
                    let mut group = vec![positive];
                    group.extend(ex.negatives.choose_multiple(&mut rng, take).copied());
                    group
                })
                .collect();
            trained_tokens += groups
                .iter()
                .flatten()
                .map(|&p| pairs[p].pair.ids.len())
                .sum::<usize>();
            let soft = teacher.as_ref().map(|t| SoftTargets {
                groups: groups
                    .iter()
                    .map(|g| g.iter().map(|&p| t[p]).collect())
                    .collect(),
                temperature: options.distill_temperature,
                weight: options.distill_weight,
            });
            let (loss, grads) = loss_and_gradients(&net, frozen, &pairs, &groups, soft.as_ref())?;
            let scale = learning_rate_scale(step, warmup, total_steps);
            body_opt.set_learning_rate(options.learning_rate * scale);
            head_opt.set_learning_rate(options.head_learning_rate * scale);
            body_opt.step(&grads)?;
            head_opt.step(&grads)?;
            step += 1;
            loss_sum += loss;
            loss_steps += 1;
            train_seconds += phase.elapsed().as_secs_f64();
            bar.inc(1);
            bar.set_message(format!("loss {:.3}", loss_sum / loss_steps as f64));

            // Evaluate every `evaluate_every` steps of the run and at each
            // epoch's end (the recipe of the committed checkpoint).
            let epoch_end = step.is_multiple_of(steps_per_epoch);
            if step.is_multiple_of(evaluate_every) || epoch_end {
                let phase = Instant::now();
                let ndcg = validate(&net)?;
                validation_seconds += phase.elapsed().as_secs_f64();
                let point = ValidationPoint {
                    step,
                    epoch: step as f64 / steps_per_epoch as f64,
                    train_loss: loss_sum / loss_steps.max(1) as f64,
                    ndcg_at_10: ndcg,
                };
                tracing::info!(
                    step,
                    epoch = point.epoch,
                    loss = point.train_loss,
                    ndcg,
                    "validation"
                );
                bar.println(format!(
                    "step {step:>5}  epoch {:.2}  loss {:.4}  validation nDCG@10 {ndcg:.4} (stage 1 {validation_stage1:.4})",
                    point.epoch, point.train_loss
                ));
                history.push(point);
                loss_sum = 0.0;
                loss_steps = 0;
                if ndcg > best.0 {
                    best = (ndcg, step);
                    best_weights = Some(net.snapshot()?);
                    bad_evaluations = 0;
                } else {
                    bad_evaluations += 1;
                    if bad_evaluations >= options.patience {
                        stopped_early = true;
                        break 'epochs;
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    seconds.train_steps = train_seconds;
    seconds.validation = validation_seconds;

    // Keep the best validated weights; the untrained model if none was better.
    let phase = Instant::now();
    if let Some(weights) = &best_weights {
        net.restore(weights)?;
    }
    let weights: Vec<f32> = (0..BLEND_WEIGHTS)
        .map(|i| i as f32 / (BLEND_WEIGHTS - 1) as f32)
        .collect();
    let validation_blend: Vec<BlendPoint> = weights
        .iter()
        .zip(validate_blends(&net, &weights)?)
        .map(|(&stage1_weight, ndcg_at_10)| BlendPoint {
            stage1_weight,
            ndcg_at_10,
        })
        .collect();
    // Strictly better only, so equals keep the smaller weight.
    let stage1_weight = validation_blend
        .iter()
        .fold(&validation_blend[0], |best, p| {
            if p.ndcg_at_10 > best.ndcg_at_10 {
                p
            } else {
                best
            }
        })
        .stage1_weight;
    tracing::info!(stage1_weight, "stage-1 weight chosen on validation");
    let trained_with = sift_bert::TrainedWith {
        seed: options.seed,
        max_length: options.max_length,
        stage1_weight: Some(stage1_weight),
    };
    let dtype = if options.half_precision {
        DType::F16
    } else {
        DType::F32
    };
    net.save(
        &options.out,
        dtype,
        serde_json::json!({ "sift_trained": trained_with }),
    )?;
    copy_tokenizer_files(&base, &options.out)?;
    seconds.save = phase.elapsed().as_secs_f64();
    seconds.total = started.elapsed().as_secs_f64();

    let shape = &net.shape;
    let flops_per_token_per_layer = 2.0
        * (4 * shape.hidden_size * shape.hidden_size
            + 2 * shape.hidden_size * shape.intermediate_size) as f64;
    let train_flops = 3.0 * flops_per_token_per_layer * trainable as f64 * trained_tokens as f64;
    let report = TrainReport {
        options: options.clone(),
        base_model: base.origin.clone(),
        train_queries: train_queries.len(),
        validation_queries: validation.len(),
        mining,
        pairs_cached: pairs.len(),
        mean_pair_tokens,
        steps: step,
        validation_stage1_ndcg_at_10: validation_stage1,
        validation: history,
        best_ndcg_at_10: best.0.max(first),
        best_step: if best.0 > first { best.1 } else { 0 },
        validation_blend,
        stage1_weight,
        validation_query_ids: validation.iter().map(|v| v.id.clone()).collect(),
        stopped_early,
        seconds,
        train_gflops_per_second: train_flops / 1e9 / train_seconds.max(1e-9),
        checkpoint: options.out.clone(),
    };
    let path = options.out.join("training.json");
    let text = serde_json::to_string_pretty(&report).expect("the report serialises");
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    Ok(report)
}

/// Warm up linearly over `warmup` steps, then decay linearly to 0.
fn learning_rate_scale(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        (step + 1) as f64 / warmup as f64
    } else {
        let left = total.saturating_sub(step) as f64;
        let span = total.saturating_sub(warmup).max(1) as f64;
        (left / span).clamp(0.0, 1.0)
    }
}

/// Threads that run batches side by side: both cores when candle runs
/// each operation on one thread (as the `sift` binary sets it up).
fn workers() -> usize {
    if candle_core::utils::get_num_threads() == 1 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

/// Run `f` over `items` split into `workers()` contiguous parts, in
/// parallel, and return the parts' results in order.
fn split_work<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&[T]) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let parts = workers().min(items.len()).max(1);
    let size = items.len().div_ceil(parts);
    if parts == 1 {
        return Ok(vec![f(items)?]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(size)
            .map(|part| scope.spawn(|| f(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("training worker panicked"))
            .collect()
    })
}

/// Run the embeddings and the first `frozen` layers over every pair and
/// keep each pair's hidden states (`[len, hidden]`). This is inference, so
/// it runs on sift-bert's packed f32 kernels (no padding, one batch per
/// core), several times faster than the differentiable layers.
fn cache_frozen_layers(
    body: &BertBody,
    frozen: usize,
    pairs: &mut [CachedPair],
    progress: bool,
) -> Result<()> {
    const BATCH: usize = 32;
    // Slices between progress-bar updates; each is spread over the cores.
    const SLICE: usize = 1024;
    let bar = progress_bar(progress, pairs.len(), "running the frozen layers");
    let hidden = body.hidden_size();
    for slice in pairs.chunks_mut(SLICE) {
        let inputs: Vec<(&[u32], &[u32])> = slice
            .iter()
            .map(|p| (p.pair.ids.as_slice(), p.pair.type_ids.as_slice()))
            .collect();
        let states = body.hidden_states(&inputs, frozen, BATCH)?;
        for (pair, rows) in slice.iter_mut().zip(states) {
            let len = rows.len() / hidden;
            pair.hidden = Some(Tensor::from_vec(rows, (len, hidden), &Device::Cpu)?);
        }
        bar.inc(slice.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn cached<'a>(pairs: &'a [CachedPair], ids: &[usize]) -> Vec<&'a Tensor> {
    ids.iter()
        .map(|&i| pairs[i].hidden.as_ref().expect("every pair is cached"))
        .collect()
}

/// Logits of the given pairs from their cached states, in order.
fn score_cached(
    net: &CrossEncoderNet,
    frozen: usize,
    pairs: &[CachedPair],
    ids: &[usize],
) -> Result<Vec<f32>> {
    const BATCH: usize = 32;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[ids[i]].pair.ids.len()));
    let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
    let parts = split_work(&batches, |part| {
        let mut out = Vec::new();
        for batch in part {
            let members: Vec<usize> = batch.iter().map(|&i| ids[i]).collect();
            let (x, mask) = pad_hidden(&cached(pairs, &members))?;
            let logits = net
                .score_from(frozen, &x, &mask)?
                .detach()
                .to_vec1::<f32>()?;
            out.extend(batch.iter().copied().zip(logits));
        }
        Ok(out)
    })?;
    let mut scores = vec![0f32; ids.len()];
    for (i, s) in parts.into_iter().flatten() {
        scores[i] = s;
    }
    Ok(scores)
}

/// The bi-encoder's cosines of each group's pairs, turned into a target
/// distribution by a softmax at `temperature`.
struct SoftTargets {
    groups: Vec<Vec<f32>>,
    temperature: f64,
    weight: f64,
}

/// The bi-encoder's cosine of each training pair, indexed like the pairs
/// (`pairs` of them; pairs of no example, the validation ones, get 0);
/// texts are embedded once each.
fn teacher_scores(
    encoder: &sift_bert::BiEncoder,
    examples: &[data::Example],
    example_pairs: &[ExamplePairs],
    pairs: usize,
) -> Result<Vec<f32>> {
    let mut texts: Vec<&str> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = Default::default();
    for e in examples {
        for t in std::iter::once(e.query.as_str()).chain(
            e.positives
                .iter()
                .chain(&e.negatives)
                .map(|p| p.text.as_str()),
        ) {
            index.entry(t).or_insert_with(|| {
                texts.push(t);
                texts.len() - 1
            });
        }
    }
    let vectors = encoder.embed(&texts)?;
    let cosine = |a: &str, b: &str| -> f32 {
        let (a, b) = (&vectors[index[a]], &vectors[index[b]]);
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    };
    let mut scores = vec![0f32; pairs];
    for (e, ids) in examples.iter().zip(example_pairs) {
        let passages = e.positives.iter().zip(&ids.positives);
        for (p, &id) in passages.chain(e.negatives.iter().zip(&ids.negatives)) {
            scores[id] = cosine(&e.query, &p.text);
        }
    }
    Ok(scores)
}

/// Mean softmax cross-entropy of the groups (positive first), plus
/// `soft.weight` times the cross-entropy against the soft targets, and its
/// gradients; the groups are split over the workers and the gradients summed.
fn loss_and_gradients(
    net: &CrossEncoderNet,
    frozen: usize,
    pairs: &[CachedPair],
    groups: &[Vec<usize>],
    soft: Option<&SoftTargets>,
) -> Result<(f64, GradStore)> {
    let total = groups.len() as f64;
    let indexed: Vec<(usize, &Vec<usize>)> = groups.iter().enumerate().collect();
    let parts = split_work(&indexed, |part| {
        let members: Vec<usize> = part.iter().flat_map(|(_, g)| g.iter()).copied().collect();
        let (x, mask) = pad_hidden(&cached(pairs, &members))?;
        let logits = net.score_from(frozen, &x, &mask)?;
        let mut losses = Vec::with_capacity(part.len());
        let mut at = 0;
        for &(g, group) in part {
            let scores = logits.narrow(0, at, group.len())?;
            let log_probs = candle_nn::ops::log_softmax(&scores, 0)?;
            let mut loss = log_probs.get(0)?.neg()?;
            if let Some(soft) = soft {
                let target = Tensor::new(soft.groups[g].as_slice(), &Device::Cpu)?;
                let target = candle_nn::ops::softmax(&(target / soft.temperature)?, 0)?;
                let cross = (target * &log_probs)?.sum_all()?.neg()?;
                loss = (loss + (cross * soft.weight)?)?;
            }
            losses.push(loss);
            at += group.len();
        }
        let loss = (Tensor::stack(&losses, 0)?.sum_all()? / total)?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        Ok((value, loss.backward()?))
    })?;
    let mut parts = parts.into_iter();
    let (mut loss, mut grads) = parts.next().expect("at least one part");
    for (l, g) in parts {
        loss += l;
        grads.extend(g)?;
    }
    Ok((loss, grads))
}

/// A query's documents ranked by their best chunk's score.
fn document_run(query: &ValidationQuery, chunk_scores: &[f32]) -> Vec<(String, f64)> {
    let mut best: BTreeMap<&str, f32> = BTreeMap::new();
    for (p, &s) in query.candidates.iter().zip(chunk_scores) {
        let e = best.entry(p.doc_id.as_str()).or_insert(f32::MIN);
        *e = e.max(s);
    }
    best.into_iter()
        .map(|(d, s)| (d.to_owned(), f64::from(s)))
        .collect()
}

fn ndcg_at_10(qrels: &Qrels, run: &Run) -> f64 {
    let metric = Metric::ndcg(10);
    let eval = evaluate(
        qrels,
        run,
        std::slice::from_ref(&metric),
        MissingQueries::Zero,
    );
    eval.mean.get(&metric.to_string()).copied().unwrap_or(0.0)
}

/// Copy the base model's tokenizer files, so the checkpoint is whole.
fn copy_tokenizer_files(base: &ModelFiles, out: &Path) -> Result<()> {
    let dir = base.tokenizer.parent().unwrap_or(Path::new("."));
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ] {
        let from = dir.join(name);
        if from.is_file() {
            let to = out.join(name);
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::pad_pairs;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .unwrap()
    }

    fn base_model() -> ModelFiles {
        ModelFiles::from_dir(&crate::model::tests::minilm_dir()).expect("run `just fetch-models`")
    }

    /// (query, passage) pairs tokenised at 64 tokens, their first `frozen`
    /// layers run and cached, as training sees them.
    fn cached_pairs(files: &ModelFiles, items: &[(&str, &str)], frozen: usize) -> Vec<CachedPair> {
        let tokenizer = PairTokenizer::load(&files.tokenizer, 64).unwrap();
        let mut pairs: Vec<CachedPair> = items
            .iter()
            .map(|(q, p)| CachedPair {
                pair: tokenizer.encode(q, p).unwrap(),
                hidden: None,
            })
            .collect();
        let body = BertBody::load(files, Precision::F32).unwrap();
        cache_frozen_layers(&body, frozen, &mut pairs, false).unwrap();
        pairs
    }

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let s: Vec<f64> = (0..10).map(|i| learning_rate_scale(i, 2, 10)).collect();
        assert_eq!(s[0], 0.5);
        assert_eq!(s[1], 1.0);
        assert_eq!(s[2], 1.0);
        assert!(s.windows(2).skip(2).all(|w| w[1] < w[0]));
        assert!(s[9] > 0.0 && s[9] <= 0.125 + 1e-12);
    }

    /// Gradients flow through the trained layers and the optimiser moves
    /// only them: a few steps on two tiny groups make the positives win.
    #[test]
    fn a_few_steps_learn_a_tiny_set_and_leave_frozen_layers_alone() {
        let files = base_model();
        let net = CrossEncoderNet::load(&files, 5).unwrap();
        let pairs = cached_pairs(
            &files,
            &[
                ("close my account", "how to close your account"),
                ("close my account", "export your notes"),
                ("close my account", "change the theme"),
                (
                    "reset my password",
                    "reset a password from the sign-in page",
                ),
                ("reset my password", "billing plans"),
                ("reset my password", "close your account"),
            ],
            4,
        );
        let groups = vec![vec![0, 1, 2], vec![3, 4, 5]];
        let (body, head) = net.trainable_vars(2);
        assert_eq!((body.len(), head.len()), (2 * 16 + 2, 2));
        let frozen_before = net
            .weight("encoder.layer.3.output.dense.weight")
            .unwrap()
            .copy()
            .unwrap();
        let trained_before = net
            .weight("encoder.layer.5.output.dense.weight")
            .unwrap()
            .copy()
            .unwrap();
        let mut body_opt = AdamW::new_lr(body, 1e-4).unwrap();
        let mut head_opt = AdamW::new_lr(head, 1e-2).unwrap();
        let (first, _) = loss_and_gradients(&net, 4, &pairs, &groups, None).unwrap();
        let mut last = first;
        for _ in 0..12 {
            let (loss, grads) = loss_and_gradients(&net, 4, &pairs, &groups, None).unwrap();
            body_opt.step(&grads).unwrap();
            head_opt.step(&grads).unwrap();
            last = loss;
        }
        assert!(first > 0.5 && last < 0.5 * first, "loss {first} -> {last}");
        let moved = |before: &Tensor, name: &str| max_abs_diff(before, &net.weight(name).unwrap());
        assert_eq!(
            moved(&frozen_before, "encoder.layer.3.output.dense.weight"),
            0.0
        );
        assert!(moved(&trained_before, "encoder.layer.5.output.dense.weight") > 0.0);
    }

    /// The soft target orders what the judgements leave open: with the
    /// positive fixed, the teacher's order of the two negatives is learnt,
    /// whichever way round it is.
    #[test]
    fn soft_targets_teach_the_teachers_order_of_the_negatives() {
        let files = base_model();
        let pairs = cached_pairs(
            &files,
            &[
                ("close my account", "how to close your account"),
                ("close my account", "export your notes before you leave"),
                ("close my account", "change the colour theme"),
            ],
            4,
        );
        let groups = vec![vec![0, 1, 2]];
        let trained_scores = |teacher: [f32; 3]| {
            let net = CrossEncoderNet::load(&files, 5).unwrap();
            let (body_vars, head_vars) = net.trainable_vars(2);
            let mut body_opt = AdamW::new_lr(body_vars, 1e-4).unwrap();
            let mut head_opt = AdamW::new_lr(head_vars, 1e-2).unwrap();
            let soft = SoftTargets {
                groups: vec![teacher.to_vec()],
                temperature: 0.05,
                weight: 2.0,
            };
            for _ in 0..15 {
                let (_, grads) = loss_and_gradients(&net, 4, &pairs, &groups, Some(&soft)).unwrap();
                body_opt.step(&grads).unwrap();
                head_opt.step(&grads).unwrap();
            }
            score_cached(&net, 4, &pairs, &[0, 1, 2]).unwrap()
        };
        let one_first = trained_scores([0.9, 0.6, 0.2]);
        let two_first = trained_scores([0.9, 0.2, 0.6]);
        assert!(
            one_first[0] > one_first[1] && one_first[1] > one_first[2],
            "{one_first:?}"
        );
        assert!(
            two_first[0] > two_first[2] && two_first[2] > two_first[1],
            "{two_first:?}"
        );
    }

    /// The frozen layers run on sift-bert's packed kernels and the trained
    /// layers read their output, so it must be what the differentiable
    /// layers compute (here over a padded batch of unequal lengths).
    #[test]
    fn cached_states_are_what_the_differentiable_layers_compute() {
        let files = base_model();
        let net = CrossEncoderNet::load(&files, 5).unwrap();
        let items = [
            ("close my account", "how to close your account for good"),
            ("reset my password", "billing"),
            (
                "vitamin D and bone density",
                "Vitamin D supplements did not change bone mineral density in adults over two years.",
            ),
        ];
        for frozen in [0, 3] {
            let pairs = cached_pairs(&files, &items, frozen);
            let items: Vec<&Pair> = pairs.iter().map(|p| &p.pair).collect();
            let (ids, type_ids, mask) = pad_pairs(&items).unwrap();
            let mut x = net.embed(&ids, &type_ids).unwrap();
            for layer in 0..frozen {
                x = net.layer(layer, &x, &mask).unwrap();
            }
            for (row, p) in pairs.iter().enumerate() {
                let cached = p.hidden.as_ref().unwrap();
                let len = p.pair.ids.len();
                assert_eq!(cached.dims(), &[len, net.shape.hidden_size]);
                let expected = x.get(row).unwrap().narrow(0, 0, len).unwrap();
                let diff = max_abs_diff(cached, &expected);
                assert!(diff < 1e-4, "{frozen} frozen layers, pair {row}: {diff}");
            }
        }
    }

    #[test]
    fn documents_take_their_best_chunk_score() {
        let p = |d: &str| Passage {
            doc_id: d.into(),
            text: String::new(),
        };
        let q = ValidationQuery {
            id: "q".into(),
            query: "x".into(),
            candidates: vec![p("a"), p("b"), p("a")],
        };
        let mut run = document_run(&q, &[0.1, 0.5, 0.9]);
        run.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            run,
            vec![
                ("a".into(), f64::from(0.9f32)),
                ("b".into(), f64::from(0.5f32))
            ]
        );
    }
}
