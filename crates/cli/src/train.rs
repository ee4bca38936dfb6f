//! `sift train-reranker`: fine-tune a cross-encoder on a judged split
//! (see `sift_train`).

use crate::settings::Settings;
use anyhow::Context;
use sift_core::ModelSource;
use sift_train::{train, TrainOptions, WeakQuery};
use std::path::PathBuf;

/// Train the reranker from a BEIR dataset's judgements, with hard negatives
/// mined by the engine's own stage 1; writes a Hugging Face
/// BertForSequenceClassification checkpoint that `--reranker-path` loads.
///
/// The base model is the bi-encoder of the settings (`--bi-encoder-path`
/// or the hub) unless `--base-model` names another BERT folder.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// BEIR dataset folder: queries.jsonl, qrels/SPLIT.tsv, corpus.jsonl.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Judged split to learn from (the test split is refused).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Corpus to index instead of DATASET/corpus.jsonl.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where to write the checkpoint.
    #[arg(long)]
    pub out: PathBuf,
    /// A BERT checkpoint folder to start from [default: the bi-encoder].
    #[arg(long)]
    pub base_model: Option<PathBuf>,
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Longest (query, passage) pair read in training, in tokens.
    #[arg(long, default_value_t = 128)]
    pub max_length: usize,
    /// Top encoder layers trained; the lower ones are frozen and cached.
    #[arg(long, default_value_t = 2)]
    pub trainable_layers: usize,
    /// Hard negatives per positive in each softmax group.
    #[arg(long, default_value_t = 5)]
    pub negatives: usize,
    /// Hard negatives mined per query (each epoch samples from them).
    #[arg(long, default_value_t = 15)]
    pub negative_pool: usize,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Queries per optimiser step.
    #[arg(long, default_value_t = 8)]
    pub queries_per_step: usize,
    /// Peak learning rate of the trained encoder layers and pooler.
    #[arg(long, default_value_t = 2e-4)]
    pub learning_rate: f64,
    /// Peak learning rate of the fresh classifier head.
    #[arg(long, default_value_t = 2e-3)]
    pub head_learning_rate: f64,
    /// Share of the split's queries held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Validations without improvement before stopping.
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Weak examples from the corpus: a document's title or one of its
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
    /// Use only the first N queries of the split (a quick run).
    #[arg(long, value_name = "N")]
    pub max_queries: Option<usize>,
    /// Store f32 weights instead of f16.
    #[arg(long)]
    pub full_precision: bool,
}

pub fn run(settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    let config = settings.load()?;
    let mut options = TrainOptions::new(&args.dataset, settings.index(), &args.out);
    options.split = args.split;
    options.corpus = args.corpus;
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
    options.epochs = args.epochs;
    options.queries_per_step = args.queries_per_step;
    options.learning_rate = args.learning_rate;
    options.head_learning_rate = args.head_learning_rate;
    options.validation_fraction = args.validation_fraction;
    options.patience = args.patience;
    options.weak_examples = args.weak_examples;
    options.weak_query = args.weak_query;
    options.distill_weight = args.distill_weight;
    options.distill_temperature = args.distill_temperature;
    options.max_queries = args.max_queries;
    options.half_precision = !args.full_precision;
    options.progress = true;

    eprintln!(
        "training a reranker on {} ({} split) with the index {}",
        args.dataset.display(),
        options.split,
        settings.index().display()
    );
    let report =
        train(&options).with_context(|| format!("training on {}", args.dataset.display()))?;
    let s = &report.seconds;
    println!(
        "{} training queries ({} examples, {} weak), {} validation queries; {} pairs of {:.0} tokens on average",
        report.train_queries,
        report.mining.queries + report.mining.weak_examples,
        report.mining.weak_examples,
        report.validation_queries,
        report.pairs_cached,
        report.mean_pair_tokens
    );
    println!(
        "validation nDCG@10: stage 1 {:.4}, best {:.4} at step {} of {}{}",
        report.validation_stage1_ndcg_at_10,
        report.best_ndcg_at_10,
        report.best_step,
        report.steps,
        if report.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    );
    println!(
        "time: mining {:.0}s, tokenise {:.0}s, bi-encoder scores {:.0}s, frozen layers {:.0}s, training {:.0}s ({:.1} GFLOP/s), validation {:.0}s, total {:.0}s",
        s.index_and_mine,
        s.tokenize,
        s.teacher,
        s.frozen_layers,
        s.train_steps,
        report.train_gflops_per_second,
        s.validation,
        s.total
    );
    println!(
        "wrote {} (use it with --reranker-path {})",
        report.checkpoint.display(),
        report.checkpoint.display()
    );
    Ok(())
}
