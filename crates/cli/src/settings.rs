//! Every configuration key as a flag, layered over the TOML file.

use anyhow::Context;
use sift_core::{Config, ModelSource};
use std::path::{Path, PathBuf};

/// Where the index lives and how the engine is configured. Flags win over
/// the config file, which wins over the defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Index directory.
    #[arg(long, global = true, env = "SIFT_INDEX", default_value = "sift-index")]
    pub index: PathBuf,
    /// TOML config file [default: INDEX/sift.toml when it exists].
    #[arg(long, global = true, env = "SIFT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Hugging Face hub id of the bi-encoder.
    #[arg(long, global = true, help_heading = "Models")]
    pub bi_encoder: Option<String>,
    /// Local folder holding the bi-encoder (instead of the hub).
    #[arg(
        long,
        global = true,
        env = "SIFT_BI_ENCODER_PATH",
        help_heading = "Models"
    )]
    pub bi_encoder_path: Option<PathBuf>,
    /// Hugging Face hub id of the cross-encoder.
    #[arg(long, global = true, help_heading = "Models")]
    pub cross_encoder: Option<String>,
    /// Local folder holding the cross-encoder (instead of the hub).
    #[arg(
        long,
        global = true,
        env = "SIFT_RERANKER_PATH",
        help_heading = "Models"
    )]
    pub reranker_path: Option<PathBuf>,
    /// When the hub cross-encoder cannot be had, rerank with the committed
    /// general one (data/rerankers/sift-minilm-l6-general, or the config's
    /// `models.cross_encoder_fallback`). Off by default: it still ranks
    /// below hybrid stage 1 on the collections measured (its card).
    #[arg(long, global = true, help_heading = "Models")]
    pub reranker_fallback: bool,
    /// Never fall back to another reranker: stage 1 only when the hub
    /// cross-encoder cannot be had (overrides the config file;
    /// --reranker-fallback overrides this).
    #[arg(
        long,
        global = true,
        env = "SIFT_NO_RERANKER_FALLBACK",
        help_heading = "Models"
    )]
    pub no_reranker_fallback: bool,
    /// Bi-encoder truncation length in tokens.
    #[arg(long, global = true, help_heading = "Models")]
    pub embed_max_tokens: Option<usize>,
    /// Texts per bi-encoder batch.
    #[arg(long, global = true, help_heading = "Models")]
    pub embed_batch_size: Option<usize>,
    /// Arithmetic of both models: f32 (exact, the default), fast (bf16 on
    /// AMX / AVX-512 BF16 CPUs) or int8 (linear layers on AVX-512 VNNI);
    /// fast and int8 run as f32 on CPUs without those instructions, and
    /// the log says so.
    #[arg(long, global = true, env = "SIFT_PRECISION", help_heading = "Models")]
    pub precision: Option<sift_core::Precision>,

    /// Body tokens per chunk (used when an index is created).
    #[arg(long, global = true, help_heading = "Chunking")]
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by consecutive chunks.
    #[arg(long, global = true, help_heading = "Chunking")]
    pub chunk_overlap: Option<usize>,

    /// Chunks written between index commits (a crash loses at most this many).
    #[arg(long, global = true, help_heading = "Indexing")]
    pub commit_every: Option<usize>,
    /// Rebuild the HNSW graph once this share of its points is dead
    /// (replaced or deleted chunks), after `sift index` and each write to
    /// `sift serve`; 0 never does it on its own (`sift compact` does it by
    /// hand) [default: config index.compact_dead_ratio, 0.3].
    #[arg(long, global = true, value_name = "RATIO", help_heading = "Indexing")]
    pub compact_dead_ratio: Option<f64>,

    /// HNSW links per node.
    #[arg(long, global = true, help_heading = "HNSW")]
    pub hnsw_m: Option<usize>,
    #[arg(long, global = true, help_heading = "HNSW")]
    pub hnsw_ef_construction: Option<usize>,
    #[arg(long, global = true, help_heading = "HNSW")]
    pub hnsw_ef_search: Option<usize>,

    /// Longest (query, chunk) pair the reranker reads, in tokens.
    #[arg(long, global = true, help_heading = "Rerank")]
    pub rerank_max_length: Option<usize>,
    /// Pairs per reranker batch.
    #[arg(long, global = true, help_heading = "Rerank")]
    pub rerank_batch_size: Option<usize>,

    /// Where the llm/listwise rerankers' model runs: gguf (in process) or
    /// http (an OpenAI-compatible endpoint).
    #[arg(
        long,
        global = true,
        env = "SIFT_LLM_BACKEND",
        help_heading = "LLM rerankers"
    )]
    pub llm_backend: Option<sift_core::LlmBackend>,
    /// GGUF file of the in-process model (`just fetch-llm`).
    #[arg(
        long,
        global = true,
        env = "SIFT_LLM_GGUF",
        help_heading = "LLM rerankers"
    )]
    pub llm_gguf: Option<PathBuf>,
    /// Base URL of the OpenAI-compatible API (`http://host:port/v1`).
    #[arg(
        long,
        global = true,
        env = "SIFT_LLM_URL",
        help_heading = "LLM rerankers"
    )]
    pub llm_url: Option<String>,
    /// Model name sent to the endpoint.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_model: Option<String>,
    /// Seconds allowed for one query's LLM calls.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_budget_secs: Option<f64>,
    /// Seconds allowed for one HTTP request.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_timeout_secs: Option<f64>,
    /// Further tries of a failed HTTP request.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_retries: Option<u32>,
    /// Chunk characters shown to the model per candidate.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_max_passage_chars: Option<usize>,
    /// Listwise: candidates ordered per model call.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_window: Option<usize>,
    /// Listwise: how far the window slides each time.
    #[arg(long, global = true, help_heading = "LLM rerankers")]
    pub llm_step: Option<usize>,
}

impl Settings {
    /// The effective configuration.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = match self.config_file() {
            Some(path) => Config::from_toml_file(&path)?,
            None => Config::default(),
        };
        let m = &mut config.models;
        if let Some(repo) = &self.bi_encoder {
            m.bi_encoder = ModelSource::hub(repo);
        }
        if let Some(path) = &self.bi_encoder_path {
            m.bi_encoder.path = Some(path.clone());
        }
        if let Some(repo) = &self.cross_encoder {
            m.cross_encoder = ModelSource::hub(repo);
        }
        if let Some(path) = &self.reranker_path {
            m.cross_encoder.path = Some(path.clone());
        }
        // --reranker-fallback wins over SIFT_NO_RERANKER_FALLBACK.
        m.ask_for_fallback(if self.reranker_fallback {
            Some(true)
        } else if self.no_reranker_fallback {
            Some(false)
        } else {
            None
        });
        set(&mut m.embed_max_tokens, self.embed_max_tokens);
        set(&mut m.embed_batch_size, self.embed_batch_size);
        set(&mut m.precision, self.precision);
        set(&mut config.chunking.max_tokens, self.chunk_tokens);
        set(&mut config.chunking.overlap_tokens, self.chunk_overlap);
        set(&mut config.index.commit_every_chunks, self.commit_every);
        set(
            &mut config.index.compact_dead_ratio,
            self.compact_dead_ratio,
        );
        set(&mut config.hnsw.m, self.hnsw_m);
        set(&mut config.hnsw.ef_construction, self.hnsw_ef_construction);
        set(&mut config.hnsw.ef_search, self.hnsw_ef_search);
        set(&mut config.rerank.max_length, self.rerank_max_length);
        set(&mut config.rerank.batch_size, self.rerank_batch_size);
        let llm = &mut config.rerank.llm;
        set(&mut llm.backend, self.llm_backend);
        set(&mut llm.gguf, self.llm_gguf.clone());
        set(&mut llm.url, self.llm_url.clone());
        set(&mut llm.model, self.llm_model.clone());
        set(&mut llm.budget_secs, self.llm_budget_secs);
        set(&mut llm.timeout_secs, self.llm_timeout_secs);
        set(&mut llm.retries, self.llm_retries);
        set(&mut llm.max_passage_chars, self.llm_max_passage_chars);
        set(&mut llm.window, self.llm_window);
        set(&mut llm.step, self.llm_step);
        config.validate().context("invalid settings")?;
        Ok(config)
    }

    fn config_file(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = self.index.join("sift.toml");
            default.is_file().then_some(default)
        })
    }

    pub fn index(&self) -> &Path {
        &self.index
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
