//! `sift train-reranker`: fine-tune a cross-encoder on judged datasets
//! (see `sift_train`).

use crate::settings::Settings;
use anyhow::Context;
use sift_core::ModelSource;
use sift_train::{train, TrainOptions, TrainingSet, Validation, WeakQuery};
use std::path::PathBuf;
use std::time::Duration;

/// Train the reranker from BEIR datasets' judgements, with hard negatives
/// mined by the engine's own stage 1; writes a Hugging Face
/// BertForSequenceClassification checkpoint that `--reranker-path` loads.
///
/// Several datasets are mixed by weight, each validated on its own held
/// back queries. A checkpoint is written every --checkpoint-every steps to
/// OUT/resume/; run the same command again after an interruption (or a
/// --time-budget) and it goes on from there.
///
/// The base model is the bi-encoder of the settings (`--bi-encoder-path`
/// or the hub) unless `--base` names another BERT folder (a checkpoint
/// this command wrote, to train it further on your own data).
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// A BEIR dataset folder (queries.jsonl, qrels/SPLIT.tsv, corpus.jsonl)
    /// and its options: DIR[,weight=W][,split=S][,validate=SPLIT|SHARE]
    /// [,max-queries=N][,validation-queries=N][,corpus=FILE][,index=DIR].
    /// Repeat for several; with several, each gets its own index under
    /// --index (INDEX/<folder name>) unless it names one.
    #[arg(long = "dataset", required = true, value_name = "SPEC")]
    pub datasets: Vec<TrainingSet>,
    /// Judged split to learn from, for a single --dataset (the test split
    /// is refused).
    #[arg(long)]
    pub split: Option<String>,
    /// Corpus to index instead of DATASET/corpus.jsonl, for a single --dataset.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where to write the checkpoint.
    #[arg(long)]
    pub out: PathBuf,
    /// A BERT checkpoint folder to start from [default: the bi-encoder].
    #[arg(long, visible_alias = "base")]
    pub base_model: Option<PathBuf>,
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Longest (query, passage) pair read in training, in tokens.
    #[arg(long, default_value_t = 128)]
    pub max_length: usize,
    /// Top encoder layers trained; the lower ones are frozen.
    #[arg(long, default_value_t = 2)]
    pub trainable_layers: usize,
    /// Hard negatives per positive in each softmax group.
    #[arg(long, default_value_t = 5)]
    pub negatives: usize,
    /// Hard negatives mined per query (each use samples from them).
    #[arg(long, default_value_t = 15)]
    pub negative_pool: usize,
    /// Stage-1 chunks looked at when mining.
    #[arg(long, default_value_t = 40)]
    pub mining_depth: usize,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// The schedule's length in steps, instead of --epochs' worth.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Queries per optimiser step.
    #[arg(long, default_value_t = 8)]
    pub queries_per_step: usize,
    /// Peak learning rate of the trained encoder layers and pooler.
    #[arg(long, default_value_t = 2e-4)]
    pub learning_rate: f64,
    /// Peak learning rate of the classifier head.
    #[arg(long, default_value_t = 2e-3)]
    pub head_learning_rate: f64,
    /// Share of the split's queries held out for validation, for a single
    /// --dataset (validate=SHARE in its spec).
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Stage-1 chunks reranked per validation query.
    #[arg(long, default_value_t = 30)]
    pub validation_depth: usize,
    /// Validate every N steps [default: twice an epoch].
    #[arg(long)]
    pub evaluate_every: Option<usize>,
    /// Validations without improvement before stopping.
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Weak examples from each corpus: a document's title or one of its
    /// sentences (--weak-query) as the query for its own text.
    #[arg(long, default_value_t = 700)]
    pub weak_examples: usize,
    /// What weak examples ask with: title, or sentence (the sentence is
    /// taken out of the passage, the inverse cloze task).
    #[arg(long, default_value = "sentence")]
    pub weak_query: WeakQuery,
    /// Weight of distilling the bi-encoder: the softmax of its cosines over
    /// each group as a soft target beside the judged positive (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub distill_weight: f64,
    /// Temperature of the bi-encoder's cosines in that soft target.
    #[arg(long, default_value_t = 0.05)]
    pub distill_temperature: f64,
    /// Use only the first N queries of the split, for a single --dataset.
    #[arg(long, value_name = "N")]
    pub max_queries: Option<usize>,
    /// Write a checkpoint to resume from every N steps.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub checkpoint_every: usize,
    /// Train for at most this long in this run (e.g. 90m, 2h): the model so
    /// far is written, and running the command again goes on.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub time_budget: Option<Duration>,
    /// Take at most N steps in this run, then stop as --time-budget does.
    #[arg(long, value_name = "N")]
    pub pause_after_steps: Option<usize>,
    /// Throw away OUT/resume/ and start over.
    #[arg(long)]
    pub restart: bool,
    /// What the training data are and their terms of use, recorded in the
    /// checkpoint (e.g. "SQuAD v1.1, CC BY-SA 4.0"); the engine names them
    /// beside the reranker in every result it ranks.
    #[arg(long, value_name = "TEXT")]
    pub data_terms: Option<String>,
    /// Store f32 weights instead of f16.
    #[arg(long)]
    pub full_precision: bool,
}

pub fn run(settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    let config = settings.load()?;
    let mut options = TrainOptions::new(".", settings.index(), &args.out);
    options.sets = args.datasets.clone();
    let single = [
        ("--split", args.split.is_some()),
        ("--corpus", args.corpus.is_some()),
        ("--validation-fraction", args.validation_fraction.is_some()),
        ("--max-queries", args.max_queries.is_some()),
    ];
    if let [set] = options.sets.as_mut_slice() {
        if let Some(split) = &args.split {
            set.split = split.clone();
        }
        if let Some(corpus) = &args.corpus {
            set.corpus = Some(corpus.clone());
        }
        if let Some(share) = args.validation_fraction {
            set.validation = Validation::HeldOut(share);
        }
        if let Some(n) = args.max_queries {
            set.max_queries = Some(n);
        }
    }
    if options.sets.len() > 1 {
        if let Some((flag, _)) = single.iter().find(|(_, given)| *given) {
            anyhow::bail!(
                "{flag} is for a single --dataset: with several, put it in each one's spec (e.g. --dataset DIR,max-queries=1000)"
            );
        }
    }
    options.base_model = match args.base_model {
        Some(dir) => ModelSource::local(dir),
        None => config.models.bi_encoder.clone(),
    };
    options.config = config;
    options.seed = args.seed;
    options.max_length = args.max_length;
    options.trainable_layers = args.trainable_layers;
    options.negatives = args.negatives;
    options.negative_pool = args.negative_pool;
    options.mining_depth = args.mining_depth;
    options.epochs = args.epochs;
    options.max_steps = args.max_steps;
    options.queries_per_step = args.queries_per_step;
    options.learning_rate = args.learning_rate;
    options.head_learning_rate = args.head_learning_rate;
    options.validation_depth = args.validation_depth;
    options.evaluate_every = args.evaluate_every;
    options.patience = args.patience;
    options.weak_examples = args.weak_examples;
    options.weak_query = args.weak_query;
    options.distill_weight = args.distill_weight;
    options.distill_temperature = args.distill_temperature;
    options.checkpoint_every = args.checkpoint_every;
    options.time_budget = args.time_budget;
    options.step_budget = args.pause_after_steps;
    options.restart = args.restart;
    options.half_precision = !args.full_precision;
    options.data_terms = args.data_terms.clone();
    options.progress = true;

    let names: Vec<String> = options
        .sets
        .iter()
        .map(|s| {
            format!(
                "{} ({} split, weight {})",
                s.dataset.display(),
                s.split,
                s.weight
            )
        })
        .collect();
    eprintln!("training a reranker on {}", names.join(" + "));
    let report = train(&options).with_context(|| format!("training on {}", names.join(" + ")))?;
    let s = &report.seconds;
    for set in &report.sets {
        println!(
            "{}: {} training queries ({} examples, {} weak), {} validation queries; validation nDCG@10 stage 1 {:.4}, reranked {:.4}",
            set.name,
            set.train_queries,
            set.examples,
            set.mining.weak_examples,
            set.validation_queries,
            set.validation_stage1_ndcg_at_10,
            set.best_ndcg_at_10
        );
    }
    println!(
        "validation nDCG@10 (mean over sets): stage 1 {:.4}, best {:.4} at step {} of {}{}; {:.0} tokens a pair on average",
        report.validation_stage1_ndcg_at_10,
        report.best_ndcg_at_10,
        report.best_step,
        report.steps,
        if report.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        report.mean_pair_tokens
    );
    println!(
        "time: mining {:.0}s, tokenise {:.0}s, frozen layers {:.0}s, training {:.0}s ({:.1} GFLOP/s), validation {:.0}s, total {:.0}s",
        s.index_and_mine,
        s.tokenize,
        s.frozen_layers,
        s.train_steps,
        report.train_gflops_per_second,
        s.validation,
        s.total
    );
    if !report.finished {
        println!(
            "paused at step {} of {}: run the same command again to go on (the checkpoint so far is in {})",
            report.steps,
            report.total_steps,
            report.checkpoint.display()
        );
    }
    println!(
        "wrote {} (use it with --reranker-path {})",
        report.checkpoint.display(),
        report.checkpoint.display()
    );
    Ok(())
}
