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
    pub reranker: Option<String>,
    /// Local folder holding the cross-encoder (instead of the hub).
    #[arg(
        long,
        global = true,
        env = "SIFT_RERANKER_PATH",
        help_heading = "Models"
    )]
    pub reranker_path: Option<PathBuf>,
    /// Bi-encoder truncation length in tokens.
    #[arg(long, global = true, help_heading = "Models")]
    pub embed_max_tokens: Option<usize>,
    /// Texts per bi-encoder batch.
    #[arg(long, global = true, help_heading = "Models")]
    pub embed_batch_size: Option<usize>,

    /// Body tokens per chunk (used when an index is created).
    #[arg(long, global = true, help_heading = "Chunking")]
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by consecutive chunks.
    #[arg(long, global = true, help_heading = "Chunking")]
    pub chunk_overlap: Option<usize>,

    /// Chunks written between index commits (a crash loses at most this many).
    #[arg(long, global = true, help_heading = "Indexing")]
    pub commit_every: Option<usize>,

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
        if let Some(repo) = &self.reranker {
            m.cross_encoder = ModelSource::hub(repo);
        }
        if let Some(path) = &self.reranker_path {
            m.cross_encoder.path = Some(path.clone());
        }
        set(&mut m.embed_max_tokens, self.embed_max_tokens);
        set(&mut m.embed_batch_size, self.embed_batch_size);
        set(&mut config.chunking.max_tokens, self.chunk_tokens);
        set(&mut config.chunking.overlap_tokens, self.chunk_overlap);
        set(&mut config.index.commit_every_chunks, self.commit_every);
        set(&mut config.hnsw.m, self.hnsw_m);
        set(&mut config.hnsw.ef_construction, self.hnsw_ef_construction);
        set(&mut config.hnsw.ef_search, self.hnsw_ef_search);
        set(&mut config.rerank.max_length, self.rerank_max_length);
        set(&mut config.rerank.batch_size, self.rerank_batch_size);
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
