//! The training loop: mine each dataset, tokenise, train the top layers
//! with a listwise softmax loss over batches drawn from the datasets by
//! weight, validate on each, checkpoint, stop early or at the budget,
//! resume, save.

use crate::data::{self, Example, MiningSummary, Passage, ValidationQuery, WeakQuery};
use crate::model::CrossEncoderNet;
use crate::optimizer::AdamW;
use crate::pairs::{pad_hidden, Pair, PairTokenizer};
use crate::sets::{TrainingSet, Validation};
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use rand::distr::{weighted::WeightedIndex, Distribution};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sift_bert::{BertBody, ModelFiles, ModelRole, Precision};
use sift_core::{Config, ModelSource};
use sift_engine::Engine;
use sift_eval::progress_bar;
use sift_metrics::{evaluate, Dataset, Metric, MissingQueries, Qrels, Query, Run};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything a training run needs. [`TrainOptions::new`] fills in the
/// recipe of the committed checkpoint; the fields document each knob.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOptions {
    /// The datasets learnt from, each with its weight and validation.
    pub sets: Vec<TrainingSet>,
    /// The index stage 1 mines negatives from (built if missing); with
    /// several sets, the folder of one index per set (see
    /// [`TrainingSet::index`]).
    pub index: PathBuf,
    /// Where the checkpoint and `training.json` are written; `OUT/resume/`
    /// holds what an interrupted run resumes from.
    pub out: PathBuf,
    /// Engine configuration of the index.
    #[serde(skip)]
    pub config: Config,
    /// The BERT to start from: a bi-encoder (its classifier head is drawn
    /// fresh) or a cross-encoder checkpoint (its head is trained on).
    pub base_model: ModelSource,
    pub seed: u64,
    /// Longest (query, passage) pair in tokens during training.
    pub max_length: usize,
    /// Top encoder layers trained (with pooler and head); the rest and the
    /// embeddings are frozen and run on the inference kernels.
    pub trainable_layers: usize,
    /// Hard negatives beside each positive in a softmax group.
    pub negatives: usize,
    /// Hard negatives mined per query, sampled from at each use.
    pub negative_pool: usize,
    /// Stage-1 chunks looked at when mining.
    pub mining_depth: usize,
    /// Queries (softmax groups) per optimiser step.
    pub queries_per_step: usize,
    /// Passes over the examples of all sets (the schedule's length unless
    /// `max_steps` is given).
    pub epochs: usize,
    /// The schedule's length in steps, instead of `epochs`' worth.
    pub max_steps: Option<usize>,
    /// Peak learning rate of the encoder layers and pooler.
    pub learning_rate: f64,
    /// Peak learning rate of the classifier.
    pub head_learning_rate: f64,
    /// Share of the steps with a linear warm-up; then linear decay to 0.
    pub warmup_fraction: f64,
    /// Stage-1 chunks reranked per validation query.
    pub validation_depth: usize,
    /// Validations per epoch (unless `evaluate_every` is given).
    pub evaluations_per_epoch: usize,
    /// Validate every N steps.
    pub evaluate_every: Option<usize>,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// Weak examples from each set's corpus (a title or a sentence as the
    /// query for its own text), beside the judged ones.
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
    /// Store the weights as f16 (half the size, same rankings).
    pub half_precision: bool,
    /// The training data and their terms, recorded in the checkpoint's
    /// `config.json` (see [`sift_bert::TrainedWith::data_terms`]). Not part
    /// of what a resumed run must match: it changes no weight.
    #[serde(skip)]
    pub data_terms: Option<String>,
    /// Write a checkpoint to resume from every N steps (and when stopped
    /// by the budget).
    #[serde(skip)]
    pub checkpoint_every: usize,
    /// Stop this invocation after this much training time; the next one
    /// resumes. The model so far (best validated weights) is written.
    #[serde(skip)]
    pub time_budget: Option<Duration>,
    /// Stop this invocation after this many steps (as `time_budget`).
    #[serde(skip)]
    pub step_budget: Option<usize>,
    /// Throw away `OUT/resume/` and start over.
    #[serde(skip)]
    pub restart: bool,
    #[serde(skip)]
    pub progress: bool,
}

impl TrainOptions {
    /// One dataset (its train split, 10 % of its queries held out).
    pub fn new(
        dataset: impl Into<PathBuf>,
        index: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
    ) -> Self {
        TrainOptions {
            sets: vec![TrainingSet::new(dataset)],
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
            max_steps: None,
            learning_rate: 2e-4,
            head_learning_rate: 2e-3,
            warmup_fraction: 0.1,
            validation_depth: 30,
            evaluations_per_epoch: 2,
            evaluate_every: None,
            patience: 2,
            weak_examples: 700,
            weak_query: WeakQuery::Sentence,
            distill_weight: 0.0,
            distill_temperature: 0.05,
            half_precision: true,
            data_terms: None,
            checkpoint_every: 50,
            time_budget: None,
            step_budget: None,
            restart: false,
            progress: false,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidOption(m.to_owned()));
        if self.sets.is_empty() {
            return bad("give at least one dataset to train on");
        }
        for set in &self.sets {
            set.validate()?;
        }
        let names: HashSet<String> = self.sets.iter().map(TrainingSet::name).collect();
        if names.len() < self.sets.len() && self.sets.iter().any(|s| s.index.is_none()) {
            return bad("two datasets have the same folder name: give each its own index=DIR");
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
        if self.max_steps == Some(0) || self.evaluate_every == Some(0) || self.checkpoint_every == 0
        {
            return bad("max_steps, evaluate_every and checkpoint_every must be positive");
        }
        if self.trainable_layers == 0 {
            return bad("train at least one layer");
        }
        if !(self.distill_weight >= 0.0 && self.distill_temperature > 0.0) {
            return bad("distill_weight must be >= 0 and distill_temperature > 0");
        }
        if !(self.learning_rate > 0.0 && self.head_learning_rate > 0.0) {
            return bad("learning rates must be positive");
        }
        Ok(())
    }

    /// What makes two invocations one run: everything but the budgets,
    /// the checkpoint interval and the output's precision.
    fn identity(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("options serialise");
        if let Some(map) = value.as_object_mut() {
            map.remove("half_precision");
        }
        value
    }
}

/// One validation of the model during training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub step: usize,
    pub epoch: f64,
    /// Mean training loss since the previous validation.
    pub train_loss: f64,
    /// The mean of the sets' nDCG@10 (what selects the weights).
    pub ndcg_at_10: f64,
    /// Each set's validation nDCG@10, in the order of the sets.
    pub per_set: Vec<f64>,
}

/// Validation nDCG@10 at one stage-1 weight of the blend.
#[derive(Clone, Debug, Serialize)]
pub struct BlendPoint {
    pub stage1_weight: f32,
    /// The mean over the sets.
    pub ndcg_at_10: f64,
    pub per_set: Vec<f64>,
}

/// Stage-1 weights tried on the validation queries: 0, 0.1, ..., 1.
const BLEND_WEIGHTS: usize = 11;

/// Wall-clock seconds per phase, summed over the invocations of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PhaseSeconds {
    pub index_and_mine: f64,
    pub tokenize: f64,
    /// The frozen layers of the validation pairs (run once per invocation).
    pub frozen_layers: f64,
    pub train_steps: f64,
    pub validation: f64,
    pub save: f64,
    pub total: f64,
}

/// What one set gave the run and how the run did on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetReport {
    pub name: String,
    pub dataset: PathBuf,
    pub weight: f64,
    pub train_queries: usize,
    /// Judged and weak examples.
    pub examples: usize,
    pub validation_queries: usize,
    pub mining: MiningSummary,
    /// Validation nDCG@10 in stage-1 (hybrid) order.
    pub validation_stage1_ndcg_at_10: f64,
    /// Validation nDCG@10 of the kept weights, reranker alone.
    pub best_ndcg_at_10: f64,
    /// The validation queries' ids, so their scores can be checked apart.
    pub validation_query_ids: Vec<String>,
}

/// What a training run did and measured; written as `training.json`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub options: TrainOptions,
    pub base_model: String,
    pub sets: Vec<SetReport>,
    /// Over all sets.
    pub train_queries: usize,
    pub validation_queries: usize,
    pub mining: MiningSummary,
    pub mean_pair_tokens: f64,
    /// Steps taken so far, and the schedule's length.
    pub steps: usize,
    pub total_steps: usize,
    /// The step this invocation resumed from (`None`: it started the run).
    pub resumed_from_step: Option<usize>,
    /// The run is over (all steps, or stopped early); `false`: a budget
    /// stopped this invocation and the next one resumes.
    pub finished: bool,
    /// Mean of the sets' stage-1 validation nDCG@10.
    pub validation_stage1_ndcg_at_10: f64,
    pub validation: Vec<ValidationPoint>,
    pub best_ndcg_at_10: f64,
    pub best_step: usize,
    /// Validation nDCG@10 of the kept weights blended with the stage-1
    /// order (`sift_rerank::blend`), per stage-1 weight tried.
    pub validation_blend: Vec<BlendPoint>,
    /// The weight with the best validation nDCG@10 (the smallest of equals),
    /// written into the checkpoint's config.json as the engine's default.
    pub stage1_weight: f32,
    pub stopped_early: bool,
    pub seconds: PhaseSeconds,
    /// Useful (unpadded) GFLOP per second of the training steps (frozen
    /// layers included), forward and backward counted as 3 forward passes
    /// of the trained layers.
    pub train_gflops_per_second: f64,
    pub checkpoint: PathBuf,
}

/// A tokenised pair and, where computed, the hidden states the frozen
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

/// A set's mined data: what `OUT/resume/examples.json` keeps, so a resumed
/// run trains on exactly the examples it started with.
#[derive(Serialize, Deserialize)]
struct MinedSet {
    train_queries: usize,
    examples: Vec<Example>,
    validation: Vec<ValidationQuery>,
    validation_qrels: Qrels,
    mining: MiningSummary,
}

#[derive(Serialize, Deserialize)]
struct MinedRun {
    identity: serde_json::Value,
    sets: Vec<MinedSet>,
}

/// Where a run stands; `OUT/resume/state.json`, beside the tensors in
/// `OUT/resume/{weights_file}`.
#[derive(Clone, Serialize, Deserialize)]
struct RunState {
    identity: serde_json::Value,
    step: usize,
    /// Examples of each set used so far (epoch = cursor / examples).
    cursors: Vec<usize>,
    history: Vec<ValidationPoint>,
    untrained_ndcg: f64,
    best_ndcg: f64,
    best_step: usize,
    /// The best weights are in the tensors file (`best.*`).
    has_best: bool,
    bad_evaluations: usize,
    loss_sum: f64,
    loss_steps: usize,
    trained_tokens: usize,
    stopped_early: bool,
    seconds: PhaseSeconds,
    weights_file: String,
}

/// Train a cross-encoder as `options` say; returns the report (also
/// written to `OUT/training.json`) after writing the checkpoint to `OUT`.
///
/// A run interrupted (killed, or stopped by a budget) resumes from its
/// last checkpoint in `OUT/resume/` when called again with the same
/// options: the same examples, weights, optimiser moments and place in the
/// data, so it ends with the weights an uninterrupted run would have.
pub fn train(options: &TrainOptions) -> Result<TrainReport> {
    options.validate()?;
    let started = Instant::now();
    let resume_dir = options.out.join("resume");
    if options.restart && resume_dir.exists() {
        std::fs::remove_dir_all(&resume_dir).map_err(|e| Error::io(&resume_dir, e))?;
    }
    std::fs::create_dir_all(&resume_dir).map_err(|e| Error::io(&resume_dir, e))?;
    let identity = options.identity();
    let saved_state = read_state(&resume_dir, &identity)?;

    let base = ModelFiles::resolve(&options.base_model, ModelRole::BiEncoder)
        .map_err(|e| Error::BaseModel(e.to_string()))?;
    let net = CrossEncoderNet::load(&base, options.seed)?;
    let body = BertBody::load(&base, Precision::F32)?;
    let trainable = options.trainable_layers.min(net.num_layers());
    let frozen = net.num_layers() - trainable;

    // Mine each set with the engine's own stage 1, or read what was mined.
    let phase = Instant::now();
    let mined = match read_mined(&resume_dir, &identity)? {
        Some(sets) => sets,
        None => {
            let several = options.sets.len() > 1;
            let sets = options
                .sets
                .iter()
                .map(|set| mine_set(options, set, several))
                .collect::<Result<Vec<_>>>()?;
            let run = MinedRun {
                identity: identity.clone(),
                sets,
            };
            write_json(&resume_dir.join("examples.json"), &run)?;
            run.sets
        }
    };
    let mut seconds = match &saved_state {
        Some(state) => state.seconds.clone(),
        None => PhaseSeconds {
            index_and_mine: phase.elapsed().as_secs_f64(),
            ..PhaseSeconds::default()
        },
    };
    let seconds_before = seconds.total;
    for (set, m) in options.sets.iter().zip(&mined) {
        if m.examples.is_empty() {
            return Err(Error::NoData(format!(
                "{}: no training query has both a positive and a negative",
                set.dataset.display()
            )));
        }
    }

    // Tokenise every pair once.
    let phase = Instant::now();
    let tokenizer = PairTokenizer::load(&base.tokenizer, options.max_length)?;
    let mut pairs: Vec<CachedPair> = Vec::new();
    // (query, passage) of each training pair, for the teacher.
    let mut pair_texts: Vec<(String, String)> = Vec::new();
    let distill = options.distill_weight > 0.0;
    let mut add = |query: &str, p: &Passage, training: bool| -> Result<usize> {
        pairs.push(CachedPair {
            pair: tokenizer.encode(query, &p.text)?,
            hidden: None,
        });
        if distill && training {
            pair_texts.push((query.to_owned(), p.text.clone()));
        } else if distill {
            pair_texts.push(Default::default());
        }
        Ok(pairs.len() - 1)
    };
    let mut example_pairs: Vec<Vec<ExamplePairs>> = Vec::with_capacity(mined.len());
    for m in &mined {
        let mut set_pairs = Vec::with_capacity(m.examples.len());
        for e in &m.examples {
            set_pairs.push(ExamplePairs {
                positives: e
                    .positives
                    .iter()
                    .map(|p| add(&e.query, p, true))
                    .collect::<Result<_>>()?,
                negatives: e
                    .negatives
                    .iter()
                    .map(|p| add(&e.query, p, true))
                    .collect::<Result<_>>()?,
            });
        }
        example_pairs.push(set_pairs);
    }
    let validation_pairs: Vec<Vec<Vec<usize>>> = mined
        .iter()
        .map(|m| {
            m.validation
                .iter()
                .map(|v| {
                    v.candidates
                        .iter()
                        .map(|p| add(&v.query, p, false))
                        .collect()
                })
                .collect::<Result<Vec<Vec<usize>>>>()
        })
        .collect::<Result<_>>()?;
    seconds.tokenize += phase.elapsed().as_secs_f64();
    let total_tokens: usize = pairs.iter().map(|p| p.pair.ids.len()).sum();
    let mean_pair_tokens = total_tokens as f64 / pairs.len().max(1) as f64;
    let teacher = if distill {
        let files = ModelFiles::resolve(&options.config.models.bi_encoder, ModelRole::BiEncoder)?;
        Some(sift_bert::BiEncoder::load(&files, 256, 32)?)
    } else {
        None
    };

    // The validation pairs' frozen layers run once; training pairs' at
    // each step (on the inference kernels, a small share of a step).
    let phase = Instant::now();
    let all_validation: Vec<usize> = validation_pairs
        .iter()
        .flatten()
        .flatten()
        .copied()
        .collect();
    cache_frozen_layers(&body, frozen, &mut pairs, &all_validation, options.progress)?;
    seconds.frozen_layers += phase.elapsed().as_secs_f64();

    let validator = Validator {
        frozen,
        all: &all_validation,
        mined: &mined,
        pairs: &validation_pairs,
    };
    let stage1: Vec<f64> = mined
        .iter()
        .map(|m| {
            let run: Run = m
                .validation
                .iter()
                .map(|v| {
                    let ranks: Vec<f32> = (0..v.candidates.len()).map(|i| -(i as f32)).collect();
                    (v.id.clone(), document_run(v, &ranks))
                })
                .collect();
            ndcg_at_10(&m.validation_qrels, &run)
        })
        .collect();

    // The schedule.
    let (body_vars, head_vars) = net.trainable_vars(trainable);
    let trained_vars: Vec<Var> = body_vars.iter().chain(&head_vars).cloned().collect();
    let mut body_opt = AdamW::new(body_vars, options.learning_rate)?;
    let mut head_opt = AdamW::new(head_vars, options.head_learning_rate)?;
    let examples_per_set: Vec<usize> = mined.iter().map(|m| m.examples.len()).collect();
    let steps_per_epoch = examples_per_set
        .iter()
        .sum::<usize>()
        .div_ceil(options.queries_per_step);
    let total_steps = options
        .max_steps
        .unwrap_or(steps_per_epoch * options.epochs);
    let warmup = ((total_steps as f64) * options.warmup_fraction).ceil() as usize;
    let evaluate_every = options
        .evaluate_every
        .unwrap_or_else(|| steps_per_epoch.div_ceil(options.evaluations_per_epoch))
        .clamp(1, total_steps);
    let pick_set = WeightedIndex::new(options.sets.iter().map(|s| s.weight))
        .map_err(|e| Error::InvalidOption(format!("dataset weights: {e}")))?;

    // Where the run stands: fresh, or as the last checkpoint left it.
    let mut best_weights: Option<Vec<Tensor>> = None;
    let resumed_from_step = saved_state.as_ref().map(|s| s.step);
    let mut state = match saved_state {
        Some(state) => {
            let file = resume_dir.join(&state.weights_file);
            let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
                .map_err(|e| Error::model(&file, e.to_string()))?;
            for (i, var) in trained_vars.iter().enumerate() {
                var.set(saved_tensor(&tensors, &format!("weight.{i}"), &file)?)?;
            }
            if state.has_best {
                best_weights = Some(
                    (0..trained_vars.len())
                        .map(|i| saved_tensor(&tensors, &format!("best.{i}"), &file).cloned())
                        .collect::<Result<_>>()?,
                );
            }
            body_opt.load_state("body", &tensors, state.step as u64, &file)?;
            head_opt.load_state("head", &tensors, state.step as u64, &file)?;
            tracing::info!(
                step = state.step,
                total_steps,
                "resuming from {}",
                file.display()
            );
            state
        }
        None => {
            let phase = Instant::now();
            let untrained = mean(&validator.reranked(&net, &pairs)?);
            seconds.validation += phase.elapsed().as_secs_f64();
            tracing::info!(
                stage1 = mean(&stage1),
                untrained,
                "validation nDCG@10 before training"
            );
            RunState {
                identity: identity.clone(),
                step: 0,
                cursors: vec![0; mined.len()],
                history: Vec::new(),
                untrained_ndcg: untrained,
                best_ndcg: f64::NEG_INFINITY,
                best_step: 0,
                has_best: false,
                bad_evaluations: 0,
                loss_sum: 0.0,
                loss_steps: 0,
                trained_tokens: 0,
                stopped_early: false,
                seconds: PhaseSeconds::default(),
                weights_file: String::new(),
            }
        }
    };

    let loop_started = Instant::now();
    let mut steps_this_run = 0usize;
    let mut budget_spent = false;
    let mut orders = SetOrders::new(options.seed, &examples_per_set);
    let bar = progress_bar(options.progress, total_steps, "training");
    bar.set_position(state.step as u64);
    bar.reset_eta();
    while state.step < total_steps && !state.stopped_early {
        if options.step_budget.is_some_and(|n| steps_this_run >= n)
            || options
                .time_budget
                .is_some_and(|t| loop_started.elapsed() >= t)
        {
            budget_spent = true;
            break;
        }
        let phase = Instant::now();
        let step = state.step;
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(mix(options.seed, 0x57e9, step as u64));
        let groups: Vec<Vec<usize>> = (0..options.queries_per_step)
            .map(|_| {
                let set = pick_set.sample(&mut rng);
                let (example, epoch) = orders.next(set, &mut state.cursors);
                let ex = &example_pairs[set][example];
                let positive = ex.positives[epoch % ex.positives.len()];
                let take = options.negatives.min(ex.negatives.len());
                let mut group = vec![positive];
                group.extend(ex.negatives.choose_multiple(&mut rng, take).copied());
                group
            })
            .collect();
        let members: Vec<usize> = {
            let mut m: Vec<usize> = groups.iter().flatten().copied().collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        cache_frozen_layers(&body, frozen, &mut pairs, &members, false)?;
        state.trained_tokens += groups
            .iter()
            .flatten()
            .map(|&p| pairs[p].pair.ids.len())
            .sum::<usize>();
        let soft = match &teacher {
            Some(encoder) => Some(SoftTargets {
                groups: teacher_scores(encoder, &pair_texts, &groups)?,
                temperature: options.distill_temperature,
                weight: options.distill_weight,
            }),
            None => None,
        };
        let (loss, grads) = loss_and_gradients(&net, frozen, &pairs, &groups, soft.as_ref())?;
        for &p in &members {
            pairs[p].hidden = None;
        }
        let scale = learning_rate_scale(step, warmup, total_steps);
        body_opt.learning_rate = options.learning_rate * scale;
        head_opt.learning_rate = options.head_learning_rate * scale;
        body_opt.step(&grads)?;
        head_opt.step(&grads)?;
        state.step += 1;
        steps_this_run += 1;
        state.loss_sum += loss;
        state.loss_steps += 1;
        seconds.train_steps += phase.elapsed().as_secs_f64();
        bar.inc(1);
        bar.set_message(format!(
            "loss {:.3}",
            state.loss_sum / state.loss_steps as f64
        ));

        let step = state.step;
        if step.is_multiple_of(evaluate_every) || step == total_steps {
            let phase = Instant::now();
            let per_set = validator.reranked(&net, &pairs)?;
            seconds.validation += phase.elapsed().as_secs_f64();
            let ndcg = mean(&per_set);
            let point = ValidationPoint {
                step,
                epoch: step as f64 / steps_per_epoch as f64,
                train_loss: state.loss_sum / state.loss_steps.max(1) as f64,
                ndcg_at_10: ndcg,
                per_set: per_set.clone(),
            };
            let line = format!(
                "step {step:>5}/{total_steps}  epoch {:.2}  loss {:.4}  validation nDCG@10 {ndcg:.4} {per_set:.4?} (stage 1 {:.4} {stage1:.4?})",
                point.epoch,
                point.train_loss,
                mean(&stage1),
            );
            tracing::info!("{line}");
            bar.println(line);
            state.history.push(point);
            state.loss_sum = 0.0;
            state.loss_steps = 0;
            if ndcg > state.best_ndcg {
                state.best_ndcg = ndcg;
                state.best_step = step;
                state.has_best = true;
                best_weights = Some(
                    trained_vars
                        .iter()
                        .map(|v| v.as_tensor().copy())
                        .collect::<candle_core::Result<_>>()?,
                );
                state.bad_evaluations = 0;
            } else {
                state.bad_evaluations += 1;
                if state.bad_evaluations >= options.patience {
                    state.stopped_early = true;
                }
            }
        }
        if step.is_multiple_of(options.checkpoint_every) {
            let phase = Instant::now();
            seconds.total = seconds_before + started.elapsed().as_secs_f64();
            state.seconds = seconds.clone();
            save_checkpoint(
                &resume_dir,
                &mut state,
                &trained_vars,
                best_weights.as_deref(),
                &body_opt,
                &head_opt,
            )?;
            seconds.save += phase.elapsed().as_secs_f64();
        }
    }
    bar.finish_and_clear();
    let finished = !budget_spent;
    // The state the next invocation starts from (or the finished run's).
    seconds.total = seconds_before + started.elapsed().as_secs_f64();
    state.seconds = seconds.clone();
    save_checkpoint(
        &resume_dir,
        &mut state,
        &trained_vars,
        best_weights.as_deref(),
        &body_opt,
        &head_opt,
    )?;

    // Keep the best validated weights; the untrained model if none was better.
    let phase = Instant::now();
    let improved = state.has_best && state.best_ndcg > state.untrained_ndcg;
    if let Some(weights) = &best_weights {
        for (var, t) in trained_vars.iter().zip(weights) {
            var.set(t)?;
        }
    }
    let blend_weights: Vec<f32> = (0..BLEND_WEIGHTS)
        .map(|i| i as f32 / (BLEND_WEIGHTS - 1) as f32)
        .collect();
    let blends = validator.blends(&net, &pairs, &blend_weights)?;
    let validation_blend: Vec<BlendPoint> = blend_weights
        .iter()
        .zip(blends)
        .map(|(&stage1_weight, per_set)| BlendPoint {
            stage1_weight,
            ndcg_at_10: mean(&per_set),
            per_set,
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
    let kept = &validation_blend[0].per_set;
    let trained_with = sift_bert::TrainedWith {
        seed: options.seed,
        max_length: options.max_length,
        stage1_weight: Some(stage1_weight),
        data_terms: options.data_terms.clone(),
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
    seconds.save += phase.elapsed().as_secs_f64();
    seconds.total = seconds_before + started.elapsed().as_secs_f64();

    let shape = &net.shape;
    let flops_per_token_per_layer = 2.0
        * (4 * shape.hidden_size * shape.hidden_size
            + 2 * shape.hidden_size * shape.intermediate_size) as f64;
    let train_flops =
        3.0 * flops_per_token_per_layer * trainable as f64 * state.trained_tokens as f64;
    let sets: Vec<SetReport> = options
        .sets
        .iter()
        .zip(&mined)
        .enumerate()
        .map(|(i, (set, m))| SetReport {
            name: set.name(),
            dataset: set.dataset.clone(),
            weight: set.weight,
            train_queries: m.train_queries,
            examples: m.examples.len(),
            validation_queries: m.validation.len(),
            mining: m.mining.clone(),
            validation_stage1_ndcg_at_10: stage1[i],
            best_ndcg_at_10: kept[i],
            validation_query_ids: m.validation.iter().map(|v| v.id.clone()).collect(),
        })
        .collect();
    let report = TrainReport {
        options: options.clone(),
        base_model: base.origin.clone(),
        train_queries: sets.iter().map(|s| s.train_queries).sum(),
        validation_queries: sets.iter().map(|s| s.validation_queries).sum(),
        mining: mined
            .iter()
            .fold(MiningSummary::default(), |sum, m| sum.plus(&m.mining)),
        sets,
        mean_pair_tokens,
        steps: state.step,
        total_steps,
        resumed_from_step,
        finished,
        validation_stage1_ndcg_at_10: mean(&stage1),
        validation: state.history.clone(),
        best_ndcg_at_10: mean(kept),
        best_step: if improved { state.best_step } else { 0 },
        validation_blend,
        stage1_weight,
        stopped_early: state.stopped_early,
        seconds,
        train_gflops_per_second: train_flops / 1e9 / state.seconds.train_steps.max(1e-9),
        checkpoint: options.out.clone(),
    };
    write_json(&options.out.join("training.json"), &report)?;
    Ok(report)
}

/// Validation of the sets' held-back queries, from their cached pairs.
struct Validator<'a> {
    frozen: usize,
    /// Every validation pair, set after set, query after query.
    all: &'a [usize],
    mined: &'a [MinedSet],
    /// Per set, per query: its candidates' pairs.
    pairs: &'a [Vec<Vec<usize>>],
}

impl Validator<'_> {
    /// Each set's nDCG@10 (`[weight][set]`) with the reranked order
    /// blended with stage 1 at each weight (candidates are in stage-1
    /// order).
    fn blends(
        &self,
        net: &CrossEncoderNet,
        pairs: &[CachedPair],
        weights: &[f32],
    ) -> Result<Vec<Vec<f64>>> {
        let scores = score_cached(net, self.frozen, pairs, self.all)?;
        let mut at = 0;
        let mut per_set = Vec::with_capacity(self.mined.len());
        for (m, set_pairs) in self.mined.iter().zip(self.pairs) {
            let mut per_query = Vec::with_capacity(set_pairs.len());
            for ids in set_pairs {
                per_query.push(&scores[at..at + ids.len()]);
                at += ids.len();
            }
            per_set.push(
                weights
                    .iter()
                    .map(|&w| {
                        let run: Run = m
                            .validation
                            .iter()
                            .zip(&per_query)
                            .map(|(v, s)| {
                                let order = sift_rerank::blend(s, w);
                                (v.id.clone(), document_run(v, &order))
                            })
                            .collect();
                        ndcg_at_10(&m.validation_qrels, &run)
                    })
                    .collect::<Vec<f64>>(),
            );
        }
        Ok((0..weights.len())
            .map(|w| per_set.iter().map(|s| s[w]).collect())
            .collect())
    }

    /// Each set's nDCG@10 in the reranker's order alone.
    fn reranked(&self, net: &CrossEncoderNet, pairs: &[CachedPair]) -> Result<Vec<f64>> {
        Ok(self.blends(net, pairs, &[0.0])?.remove(0))
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// A 64-bit seed for one use of the run's seed (a SplitMix64 round).
fn mix(seed: u64, purpose: u64, n: u64) -> u64 {
    let mut z = seed
        .wrapping_add(purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Each set's examples in a fresh shuffled order per epoch, a function of
/// the seed, the set and the epoch alone, so a resumed run (which knows
/// only the cursors) draws what the uninterrupted one would.
struct SetOrders {
    seed: u64,
    sizes: Vec<usize>,
    /// (epoch, order) last used per set.
    current: Vec<Option<(usize, Vec<usize>)>>,
}

impl SetOrders {
    fn new(seed: u64, sizes: &[usize]) -> SetOrders {
        SetOrders {
            seed,
            sizes: sizes.to_vec(),
            current: vec![None; sizes.len()],
        }
    }

    /// The set's next example and the epoch it belongs to; moves the cursor.
    fn next(&mut self, set: usize, cursors: &mut [usize]) -> (usize, usize) {
        let n = self.sizes[set];
        let (epoch, at) = (cursors[set] / n, cursors[set] % n);
        cursors[set] += 1;
        let stale = !matches!(&self.current[set], Some((e, _)) if *e == epoch);
        if stale {
            let mut order: Vec<usize> = (0..n).collect();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(
                self.seed,
                0x00bd_e5e7 + set as u64,
                epoch as u64,
            ));
            order.shuffle(&mut rng);
            self.current[set] = Some((epoch, order));
        }
        let (_, order) = self.current[set].as_ref().expect("just set");
        (order[at], epoch)
    }
}

/// Mine one set: index its corpus (or reuse the index), hold back its
/// validation queries, mine hard negatives for the rest with stage 1, add
/// weak examples, and take stage 1's candidates for the validation queries.
fn mine_set(options: &TrainOptions, set: &TrainingSet, several: bool) -> Result<MinedSet> {
    let name = set.name();
    let mut eval_options = sift_eval::EvalOptions::new(
        &set.dataset,
        set.index_in(&options.index, several),
        &options.out,
    );
    eval_options.split = set.split.clone();
    eval_options.corpus = set.corpus.clone();
    eval_options.config = options.config.clone();
    // Mining needs stage 1 only: no cross-encoder is fetched or loaded.
    eval_options.config.search.rerank = false;
    eval_options.progress = options.progress;
    eval_options.depth = 1;
    eval_options.k = 1;
    let run = sift_eval::EvalRun::open(eval_options)?;
    let engine = run.engine();
    let qrels = Dataset::open(&set.dataset, &set.split)?.qrels;
    // Queries with a judged document in this corpus: a sampled corpus
    // leaves the others nothing to learn from.
    let queries = with_indexed_judgements(engine, &qrels, run.queries())?;
    let queries = sample(queries, set.max_queries, options.seed);
    if queries.is_empty() {
        return Err(Error::NoData(format!(
            "the {} split of {} has no judged queries",
            set.split,
            set.dataset.display()
        )));
    }
    let (train_queries, validation_queries, validation_qrels_all): (Vec<Query>, Vec<Query>, Qrels) =
        match &set.validation {
            Validation::HeldOut(share) => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
                let mut order: Vec<usize> = (0..queries.len()).collect();
                order.shuffle(&mut rng);
                let held_out =
                    (((queries.len() as f64) * share).round() as usize).min(set.validation_queries);
                let mut validation_ids: Vec<usize> = order[..held_out].to_vec();
                let mut train_ids: Vec<usize> = order[held_out..].to_vec();
                validation_ids.sort_unstable();
                train_ids.sort_unstable();
                (
                    train_ids.iter().map(|&i| queries[i].clone()).collect(),
                    validation_ids.iter().map(|&i| queries[i].clone()).collect(),
                    qrels.clone(),
                )
            }
            Validation::Split(split) => {
                let held = Dataset::open(&set.dataset, split)?;
                let mut validation = with_indexed_judgements(engine, &held.qrels, &held.queries)?;
                // The last queries of the split, so that its first ones (where
                // an eval with --max-queries reads) never chose a weight.
                let skip = validation.len().saturating_sub(set.validation_queries);
                validation.drain(..skip);
                (queries, validation, held.qrels)
            }
        };

    let mut mining = MiningSummary::default();
    let bar = progress_bar(
        options.progress,
        train_queries.len(),
        &format!("{name}: mining hard negatives"),
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
    if options.weak_examples > 0 {
        // Documents judged for validation queries would leak them.
        let exclude: HashSet<String> = validation_queries
            .iter()
            .flat_map(|q| {
                validation_qrels_all
                    .get(&q.id)
                    .into_iter()
                    .flat_map(|j| j.keys().cloned())
            })
            .collect();
        let corpus_ids = engine.document_ids()?;
        let bar = progress_bar(
            options.progress,
            options.weak_examples,
            &format!("{name}: mining weak examples"),
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
    let bar = progress_bar(
        options.progress,
        validation_queries.len(),
        &format!("{name}: validation candidates"),
    );
    let validation = data::validation_queries(
        engine,
        &validation_queries,
        options.validation_depth,
        || bar.inc(1),
    )?;
    bar.finish_and_clear();
    let validation_qrels: Qrels = validation
        .iter()
        .filter_map(|v| {
            validation_qrels_all
                .get(&v.id)
                .map(|j| (v.id.clone(), j.clone()))
        })
        .collect();
    tracing::info!(
        set = name,
        examples = examples.len(),
        validation = validation.len(),
        "mined"
    );
    Ok(MinedSet {
        train_queries: train_queries.len(),
        examples,
        validation,
        validation_qrels,
        mining,
    })
}

/// The queries with at least one relevant document in the engine's index.
fn with_indexed_judgements(
    engine: &Engine,
    qrels: &Qrels,
    queries: &[Query],
) -> Result<Vec<Query>> {
    let mut kept = Vec::with_capacity(queries.len());
    for q in queries {
        let Some(judged) = qrels.get(&q.id) else {
            continue;
        };
        for (doc, &grade) in judged {
            if grade >= 1 && !engine.document_chunks(doc)?.is_empty() {
                kept.push(q.clone());
                break;
            }
        }
    }
    Ok(kept)
}

/// `n` of the queries drawn with the seed (all of them without `n`), in
/// their order: the first queries of a file are often all of one topic
/// (SQuAD's are grouped by article).
fn sample(queries: Vec<Query>, n: Option<usize>, seed: u64) -> Vec<Query> {
    let Some(n) = n.filter(|&n| n < queries.len()) else {
        return queries;
    };
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix(
        seed, 0x5a3, 0,
    )));
    let mut chosen = order[..n].to_vec();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| queries[i].clone()).collect()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("the value serialises");
    write_atomically(path, (text + "\n").as_bytes())
}

/// Write to a temporary file beside `path`, then rename it over `path`: a
/// crash leaves the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `resume/state.json` of a run with these options; an error when the
/// folder holds a run with other options (it is not silently thrown away).
fn read_state(dir: &Path, identity: &serde_json::Value) -> Result<Option<RunState>> {
    let path = dir.join("state.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let state: RunState = serde_json::from_str(&text)
        .map_err(|e| Error::model(&path, format!("not a training state: {e}")))?;
    same_run(&path, &state.identity, identity)?;
    Ok(Some(state))
}

fn read_mined(dir: &Path, identity: &serde_json::Value) -> Result<Option<Vec<MinedSet>>> {
    let path = dir.join("examples.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let run: MinedRun = serde_json::from_str(&text)
        .map_err(|e| Error::model(&path, format!("not a file of mined examples: {e}")))?;
    same_run(&path, &run.identity, identity)?;
    Ok(Some(run.sets))
}

fn same_run(path: &Path, saved: &serde_json::Value, now: &serde_json::Value) -> Result<()> {
    if saved == now {
        return Ok(());
    }
    let differ: Vec<String> = match (saved.as_object(), now.as_object()) {
        (Some(a), Some(b)) => b
            .iter()
            .filter(|(k, v)| a.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Vec::new(),
    };
    Err(Error::InvalidOption(format!(
        "{} belongs to a run with other options ({}): give the same options to resume it, --restart to start over, or another --out",
        path.display(),
        differ.join(", ")
    )))
}

fn saved_tensor<'a>(
    tensors: &'a HashMap<String, Tensor>,
    name: &str,
    file: &Path,
) -> Result<&'a Tensor> {
    tensors
        .get(name)
        .ok_or_else(|| Error::model(file, format!("the training state has no {name}")))
}

/// Write the trained weights, the best ones and the optimisers' moments to
/// a new tensors file, then the state naming it, then remove the old file:
/// a crash at any point leaves a whole checkpoint.
fn save_checkpoint(
    dir: &Path,
    state: &mut RunState,
    vars: &[Var],
    best: Option<&[Tensor]>,
    body_opt: &AdamW,
    head_opt: &AdamW,
) -> Result<()> {
    let mut tensors = HashMap::new();
    for (i, var) in vars.iter().enumerate() {
        tensors.insert(format!("weight.{i}"), var.as_tensor().clone());
    }
    if let Some(best) = best {
        for (i, t) in best.iter().enumerate() {
            tensors.insert(format!("best.{i}"), t.clone());
        }
    }
    body_opt.state("body", &mut tensors);
    head_opt.state("head", &mut tensors);
    let file = format!("state-{:07}.safetensors", state.step);
    let path = dir.join(&file);
    let tmp = path.with_extension("tmp");
    candle_core::safetensors::save(&tensors, &tmp)
        .map_err(|e| Error::model(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    let previous = std::mem::replace(&mut state.weights_file, file);
    write_json(&dir.join("state.json"), state)?;
    if !previous.is_empty() && previous != state.weights_file {
        let old = dir.join(previous);
        std::fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
    }
    tracing::debug!(step = state.step, "checkpoint written");
    Ok(())
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

/// Run the embeddings and the first `frozen` layers over the pairs `ids`
/// and keep each one's hidden states (`[len, hidden]`). This is inference,
/// so it runs on sift-bert's packed f32 kernels (no padding, one batch per
/// core), several times faster than the differentiable layers.
fn cache_frozen_layers(
    body: &BertBody,
    frozen: usize,
    pairs: &mut [CachedPair],
    ids: &[usize],
    progress: bool,
) -> Result<()> {
    const BATCH: usize = 32;
    // Pairs between progress-bar updates; each slice is spread over the cores.
    const SLICE: usize = 1024;
    let bar = progress_bar(progress, ids.len(), "running the frozen layers");
    let hidden = body.hidden_size();
    for slice in ids.chunks(SLICE) {
        let inputs: Vec<(&[u32], &[u32])> = slice
            .iter()
            .map(|&i| {
                (
                    pairs[i].pair.ids.as_slice(),
                    pairs[i].pair.type_ids.as_slice(),
                )
            })
            .collect();
        let states = body.hidden_states(&inputs, frozen, BATCH)?;
        for (&i, rows) in slice.iter().zip(states) {
            let len = rows.len() / hidden;
            pairs[i].hidden = Some(Tensor::from_vec(rows, (len, hidden), &Device::Cpu)?);
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

/// The bi-encoder's cosine of each pair of each group, from the pairs'
/// (query, passage) texts; each distinct text is embedded once.
fn teacher_scores(
    encoder: &sift_bert::BiEncoder,
    pair_texts: &[(String, String)],
    groups: &[Vec<usize>],
) -> Result<Vec<Vec<f32>>> {
    let mut texts: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for &p in groups.iter().flatten() {
        let (query, passage) = &pair_texts[p];
        for t in [query.as_str(), passage.as_str()] {
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
    Ok(groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|&p| cosine(&pair_texts[p].0, &pair_texts[p].1))
                .collect()
        })
        .collect())
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
        let all: Vec<usize> = (0..pairs.len()).collect();
        cache_frozen_layers(&body, frozen, &mut pairs, &all, false).unwrap();
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
        let mut body_opt = AdamW::new(body, 1e-4).unwrap();
        let mut head_opt = AdamW::new(head, 1e-2).unwrap();
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
            let mut body_opt = AdamW::new(body_vars, 1e-4).unwrap();
            let mut head_opt = AdamW::new(head_vars, 1e-2).unwrap();
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
