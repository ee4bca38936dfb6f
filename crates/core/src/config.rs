//! The one configuration type, [`Config`], read from TOML with defaults for
//! every key; the CLI maps each key to a flag.

use crate::rescore::Rescore;
use crate::{Error, Precision, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest query accepted, in characters. Far beyond any question a person
/// types; it bounds the work one request can cause.
pub const MAX_QUERY_CHARS: usize = 2048;

/// Every setting of the engine. Unknown keys in a file are an error, so a
/// typo never silently falls back to a default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub models: ModelsConfig,
    pub chunking: ChunkingConfig,
    pub index: IndexingConfig,
    pub hnsw: HnswConfig,
    pub rerank: RerankConfig,
    /// Defaults for each query; a query may override them.
    pub search: SearchOptions,
}

impl Config {
    /// Read a TOML file; missing keys take their defaults.
    pub fn from_toml_file(path: &Path) -> Result<Config> {
        let bytes = std::fs::read(path).map_err(|source| Error::ConfigIo {
            path: path.to_owned(),
            source,
        })?;
        // Say where the file stops being text, as a TOML error would.
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
            let column = 1 + good.iter().rev().take_while(|&&b| b != b'\n').count();
            Error::ConfigParse {
                path: path.to_owned(),
                message: format!(
                    "not UTF-8 text at line {line}, column {column} (byte {})",
                    good.len()
                ),
            }
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| Error::ConfigParse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config is always serialisable")
    }

    pub fn validate(&self) -> Result<()> {
        // The bi-encoder keeps [CLS] and [SEP] when it truncates: fewer
        // than 2 tokens made every embedding panic (found by fuzzing).
        if self.models.embed_max_tokens < 2 {
            return Err(Error::InvalidSetting(format!(
                "models.embed_max_tokens must be at least 2 ([CLS] and [SEP]), got {}",
                self.models.embed_max_tokens
            )));
        }
        self.chunking.validate()?;
        self.index.validate()?;
        self.hnsw.validate()?;
        self.search.validate()?;
        self.rerank.llm.validate()?;
        if self.rerank.max_length < 16 {
            return Err(Error::InvalidSetting(
                "rerank.max_length must be at least 16".into(),
            ));
        }
        Ok(())
    }
}

/// Where a model's files come from: a local folder when one is named,
/// otherwise the Hugging Face hub (standard cache).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSource {
    /// Hub repository id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub repo: String,
    pub revision: String,
    /// A folder with `config.json`, `tokenizer.json` and `model.safetensors`;
    /// takes precedence over the hub.
    pub path: Option<PathBuf>,
}

impl ModelSource {
    pub fn hub(repo: impl Into<String>) -> Self {
        ModelSource {
            repo: repo.into(),
            revision: "main".into(),
            path: None,
        }
    }

    pub fn local(path: impl Into<PathBuf>) -> Self {
        ModelSource {
            path: Some(path.into()),
            ..ModelSource::hub("")
        }
    }

    /// Where the model comes from, as logs and responses name it: the
    /// folder, or `hf://repo@revision`.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => format!("hf://{}@{}", self.repo, self.revision),
        }
    }
}

impl Default for ModelSource {
    fn default() -> Self {
        ModelSource::hub("")
    }
}

/// The general cross-encoder `sift train-reranker` trained on SQuAD v1.1 and
/// MS MARCO, committed with its model card (`just train-reranker-general`
/// reproduces it): the reranker asked to stand in when the hub's cannot be
/// had (`models.cross_encoder_fallback = true`). A relative
/// path, looked for under the working folder, then above the running
/// binary, then in the checkout the binary was built from.
pub const BUNDLED_RERANKER: &str = "data/rerankers/sift-minilm-l6-general";

/// The SciFact-only cross-encoder (`just train-reranker`), kept as a worked
/// example of training on one's own judgements; never a default: it lowers
/// nDCG@10 out of its domain.
pub const SCIFACT_RERANKER: &str = "data/rerankers/sift-minilm-l6-scifact";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    pub bi_encoder: ModelSource,
    pub cross_encoder: ModelSource,
    /// Used when `cross_encoder` is a hub model that cannot be had (e.g.
    /// offline); never in place of a folder the user named. Off by default
    /// (`false`): the committed general [`BUNDLED_RERANKER`], though better
    /// out of domain than the SciFact one, still lowers nDCG@10 against
    /// hybrid stage 1 (demo −0.016, SciFact −0.019, SQuAD dev −0.005 at
    /// depth 20; its card), and a default must not make results worse.
    /// `true` names it; a table names another.
    #[serde(with = "model_or_false")]
    pub cross_encoder_fallback: Option<ModelSource>,
    /// Truncation length of the bi-encoder, in tokens (sentence-transformers'
    /// `max_seq_length` for all-MiniLM-L6-v2).
    pub embed_max_tokens: usize,
    pub embed_batch_size: usize,
    /// Arithmetic of both BERT models' matrix products: `f32` (exact, the
    /// default), `fast` (bf16 operands on AMX / AVX-512 BF16 CPUs: the
    /// rerank about twice as fast) or `int8` (8-bit linear layers on
    /// AVX-512 VNNI: about three times; see eval/README.md).
    pub precision: Precision,
}

impl ModelsConfig {
    /// A caller's word on the fallback reranker over the config's: `true`
    /// asks for one (the config's, else the committed
    /// [`BUNDLED_RERANKER`]), `false` for none, `None` leaves the config's
    /// choice. The CLI's flags and Python's keyword both come here.
    pub fn ask_for_fallback(&mut self, wanted: Option<bool>) {
        match wanted {
            Some(true) => {
                self.cross_encoder_fallback
                    .get_or_insert_with(|| ModelSource::local(BUNDLED_RERANKER));
            }
            Some(false) => self.cross_encoder_fallback = None,
            None => {}
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            bi_encoder: ModelSource::hub("sentence-transformers/all-MiniLM-L6-v2"),
            cross_encoder: ModelSource::hub("cross-encoder/ms-marco-MiniLM-L-6-v2"),
            cross_encoder_fallback: None,
            embed_max_tokens: 256,
            embed_batch_size: 32,
            precision: Precision::F32,
        }
    }
}

/// A model that may be switched off: a [`ModelSource`] table, or `false`.
mod model_or_false {
    use super::ModelSource;
    use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
    use serde::{Deserialize, Serialize, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(model: &Option<ModelSource>, s: S) -> Result<S::Ok, S::Error> {
        match model {
            Some(model) => model.serialize(s),
            None => false.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ModelSource>, D::Error> {
        d.deserialize_any(ModelOrFalse)
    }

    /// A visitor rather than an untagged enum, so that a mistyped key in
    /// the table is reported as such.
    struct ModelOrFalse;

    impl<'de> Visitor<'de> for ModelOrFalse {
        type Value = Option<ModelSource>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(
                "a model table (`path` or `repo`), `true` for the committed reranker, or `false` for none",
            )
        }

        fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
            Ok(on.then(|| ModelSource::local(super::BUNDLED_RERANKER)))
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            ModelSource::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
}

/// How documents are cut into chunks, in tokens of the bi-encoder's tokenizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Body tokens per chunk. With the title and special tokens a chunk still
    /// fits the bi-encoder's 256-token window, so nothing is truncated away.
    pub max_tokens: usize,
    /// Tokens shared by consecutive chunks, so a sentence cut at a boundary is
    /// whole in at least one of them.
    pub overlap_tokens: usize,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        ChunkingConfig {
            max_tokens: 200,
            overlap_tokens: 40,
        }
    }
}

impl ChunkingConfig {
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens == 0 || self.overlap_tokens >= self.max_tokens {
            return Err(Error::InvalidSetting(format!(
                "chunking needs 0 <= overlap_tokens < max_tokens (got {} and {})",
                self.overlap_tokens, self.max_tokens
            )));
        }
        Ok(())
    }
}

/// How indexing runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexingConfig {
    /// Chunks written between commits (at document boundaries). A crash
    /// loses at most this much work; the index stays at its last commit.
    pub commit_every_chunks: usize,
    /// Rebuild the HNSW graph from the stored vectors once this share of
    /// its points belongs to replaced or deleted chunks (hnsw_rs cannot
    /// remove a point, so they pile up with every rewrite). Checked by
    /// `sift serve` after each write and by `sift index` when it is done;
    /// `sift compact` runs it by hand at any ratio. `0` turns the automatic
    /// compaction off. Dead points cost memory, disk and search time (the
    /// graph walk steps over them), a rebuild costs the CPU of indexing the
    /// live vectors again (no re-embedding).
    pub compact_dead_ratio: f64,
    /// A document whose text is longer than this many bytes is not indexed
    /// (it is reported, and the rest of the job goes on): a log file or a
    /// dump given by mistake would otherwise be cut into tens of thousands
    /// of chunks. `0` lifts the limit.
    pub max_document_bytes: usize,
}

/// 16 MiB: about 4,000 pages of text.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 16 << 20;

/// Dead points may make up to 30 % of the graph before it is rebuilt: the
/// graph is then at most ~1.4× its compacted size.
pub const DEFAULT_COMPACT_DEAD_RATIO: f64 = 0.3;

impl Default for IndexingConfig {
    fn default() -> Self {
        IndexingConfig {
            commit_every_chunks: 4096,
            compact_dead_ratio: DEFAULT_COMPACT_DEAD_RATIO,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

impl IndexingConfig {
    pub fn validate(&self) -> Result<()> {
        if self.commit_every_chunks == 0 {
            return Err(Error::InvalidSetting(
                "index.commit_every_chunks must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.compact_dead_ratio) {
            return Err(Error::InvalidSetting(format!(
                "index.compact_dead_ratio must be at least 0 (0: never compact automatically) and below 1 (got {})",
                self.compact_dead_ratio
            )));
        }
        Ok(())
    }
}

/// HNSW graph parameters (hnsw_rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswConfig {
    /// Links per node.
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 200,
            ef_search: 128,
        }
    }
}

impl HnswConfig {
    pub fn validate(&self) -> Result<()> {
        if self.m < 2 || self.m > 256 || self.ef_construction == 0 || self.ef_search == 0 {
            return Err(Error::InvalidSetting(
                "hnsw needs 2 <= m <= 256 and ef_construction, ef_search > 0".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankConfig {
    /// Longest (query, chunk) pair in tokens; only the chunk is truncated.
    pub max_length: usize,
    pub batch_size: usize,
    /// The language model of the `llm` and `listwise` rerankers.
    pub llm: LlmConfig,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            max_length: 512,
            batch_size: 16,
            llm: LlmConfig::default(),
        }
    }
}

/// Which stage-2 reranker orders a query's candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RerankerKind {
    /// BERT cross-encoder: one relevance logit per (query, chunk) pair.
    #[default]
    CrossEncoder,
    /// LLM pointwise: P("yes") that the chunk is relevant, one prompt per
    /// candidate with its metadata and the optional instruction.
    Llm,
    /// LLM listwise (RankGPT): the model orders windows of candidates,
    /// sliding from the back of the list to the front.
    Listwise,
}

impl RerankerKind {
    pub const ALL: [RerankerKind; 3] = [
        RerankerKind::CrossEncoder,
        RerankerKind::Llm,
        RerankerKind::Listwise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RerankerKind::CrossEncoder => "cross-encoder",
            RerankerKind::Llm => "llm",
            RerankerKind::Listwise => "listwise",
        }
    }

    /// Whether this reranker runs the language model.
    pub fn uses_llm(self) -> bool {
        !matches!(self, RerankerKind::CrossEncoder)
    }
}

impl std::fmt::Display for RerankerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RerankerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RerankerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidSetting(format!(
                    "unknown reranker {s:?}; choose cross-encoder, llm or listwise"
                ))
            })
    }
}

/// Where the LLM rerankers' model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LlmBackend {
    /// In process: a quantised Gemma 3 GGUF file run by candle.
    #[default]
    Gguf,
    /// An OpenAI-compatible chat-completions endpoint.
    Http,
}

impl std::str::FromStr for LlmBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gguf" => Ok(LlmBackend::Gguf),
            "http" => Ok(LlmBackend::Http),
            _ => Err(Error::InvalidSetting(format!(
                "unknown LLM back end {s:?}; choose gguf or http"
            ))),
        }
    }
}

/// The language model of the LLM rerankers, and how they prompt it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    pub backend: LlmBackend,
    /// The GGUF file of the `gguf` back end (`just fetch-llm` puts Gemma 3
    /// 270M here). The `serve` chat route runs it too.
    pub gguf: PathBuf,
    /// Base URL of the `http` back end's OpenAI-compatible API
    /// (`…/v1`; `/chat/completions` is appended).
    pub url: String,
    /// Model name sent to the endpoint.
    pub model: String,
    /// Environment variable holding the endpoint's API key (sent as a
    /// bearer token when set).
    pub api_key_env: String,
    /// Longest wait for one HTTP request, in seconds.
    pub timeout_secs: f64,
    /// Further tries after a connection error, timeout, 429 or 5xx.
    pub retries: u32,
    /// Requests in flight at once (pointwise over HTTP).
    pub concurrency: usize,
    /// Time allowed for all LLM calls of one query, in seconds; past it the
    /// query fails with a clear error rather than hang.
    pub budget_secs: f64,
    /// Chunk text shown to the model per candidate, in characters.
    pub max_passage_chars: usize,
    /// Listwise: candidates the model orders at once.
    pub window: usize,
    /// Listwise: how far the window moves towards the front each time.
    pub step: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            backend: LlmBackend::Gguf,
            gguf: PathBuf::from("data/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"),
            url: "http://127.0.0.1:8080/v1".into(),
            model: "gemma-3-270m".into(),
            api_key_env: "SIFT_LLM_API_KEY".into(),
            timeout_secs: 30.0,
            retries: 2,
            concurrency: 4,
            budget_secs: 300.0,
            max_passage_chars: 600,
            window: 10,
            step: 5,
        }
    }
}

impl LlmConfig {
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.timeout_secs) || !positive(self.budget_secs) {
            return Err(Error::InvalidSetting(
                "rerank.llm.timeout_secs and budget_secs must be positive".into(),
            ));
        }
        if self.window < 2 || self.step == 0 || self.step >= self.window {
            return Err(Error::InvalidSetting(format!(
                "rerank.llm needs window >= 2 and 0 < step < window (got {} and {})",
                self.window, self.step
            )));
        }
        if self.max_passage_chars < 20 {
            return Err(Error::InvalidSetting(
                "rerank.llm.max_passage_chars must be at least 20".into(),
            ));
        }
        Ok(())
    }
}

/// Per-query knobs. [`Config::search`] holds their defaults.
///
/// ```
/// use sift_core::SearchOptions;
/// let opts = SearchOptions::default().depth(30).k(3).rerank(false);
/// assert_eq!((opts.depth, opts.k, opts.rerank), (30, 3, false));
/// opts.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchOptions {
    /// Candidates handed from retrieval to the reranker.
    pub depth: usize,
    /// Hits returned.
    pub k: usize,
    /// Run stage 2 (the reranker named by `reranker`).
    pub rerank: bool,
    /// Which reranker: the cross-encoder, the LLM pointwise or the LLM
    /// listwise one.
    pub reranker: RerankerKind,
    /// A standing instruction for the LLM rerankers ("prefer recent
    /// documents"); the cross-encoder cannot read one.
    pub instruction: Option<String>,
    /// Reciprocal rank fusion constant: score = Σ 1 / (rrf_k + rank).
    pub rrf_k: f32,
    /// How many hits each retriever contributes to fusion; `None` = `depth`.
    pub retriever_depth: Option<usize>,
    /// Weight of the stage-1 order in the final order, 0..=1 (a rank blend,
    /// `sift_rerank::blend`): 0 trusts the reranker alone, 1 keeps stage 1.
    /// `None` takes the reranker's own: 0, or what a checkpoint from
    /// `sift train-reranker` chose on its validation queries.
    pub stage1_weight: Option<f32>,
    /// Keep only candidates whose metadata has each of these keys with an
    /// equal JSON value (applied to the fused list, before the rerank).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, serde_json::Value>,
    /// Rules applied after stage 2 (after fusion when stage 2 is off):
    /// decays over dates or numbers, boosts for metadata values
    /// ([`crate::rescore`]).
    #[serde(skip_serializing_if = "Rescore::is_empty")]
    pub rescore: Rescore,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            depth: 50,
            k: 5,
            rerank: true,
            reranker: RerankerKind::CrossEncoder,
            instruction: None,
            rrf_k: 60.0,
            retriever_depth: None,
            stage1_weight: None,
            filter: BTreeMap::new(),
            rescore: Rescore::default(),
        }
    }
}

/// Longest reranker instruction accepted, in characters.
pub const MAX_INSTRUCTION_CHARS: usize = 500;

/// Upper bound for depth and per-retriever depth: beyond this a cross-encoder
/// on a CPU takes tens of seconds per query.
pub const MAX_DEPTH: usize = 1000;

impl SearchOptions {
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
    pub fn rerank(mut self, rerank: bool) -> Self {
        self.rerank = rerank;
        self
    }
    pub fn reranker(mut self, reranker: RerankerKind) -> Self {
        self.reranker = reranker;
        self
    }
    /// An instruction for the LLM rerankers; blank is none.
    pub fn instruction(mut self, instruction: Option<String>) -> Self {
        self.instruction = instruction.filter(|i| !i.trim().is_empty());
        self
    }
    pub fn rrf_k(mut self, rrf_k: f32) -> Self {
        self.rrf_k = rrf_k;
        self
    }
    pub fn retriever_depth(mut self, retriever_depth: Option<usize>) -> Self {
        self.retriever_depth = retriever_depth;
        self
    }

    pub fn stage1_weight(mut self, stage1_weight: Option<f32>) -> Self {
        self.stage1_weight = stage1_weight;
        self
    }

    /// Metadata equality filter (see [`filter`](Self::filter)).
    pub fn filter(mut self, filter: BTreeMap<String, serde_json::Value>) -> Self {
        self.filter = filter;
        self
    }

    /// Rescoring rules (see [`rescore`](Self::rescore)).
    pub fn rescore(mut self, rescore: Rescore) -> Self {
        self.rescore = rescore;
        self
    }

    /// Hits each retriever contributes to fusion.
    pub fn effective_retriever_depth(&self) -> usize {
        self.retriever_depth.unwrap_or(self.depth)
    }

    pub fn validate(&self) -> Result<()> {
        if self.depth == 0 || self.depth > MAX_DEPTH {
            return Err(Error::InvalidSetting(format!(
                "depth must be in 1..={MAX_DEPTH}, got {}",
                self.depth
            )));
        }
        if self.k == 0 || self.k > self.depth {
            return Err(Error::InvalidSetting(format!(
                "k must be in 1..=depth ({}), got {}",
                self.depth, self.k
            )));
        }
        if !(self.rrf_k.is_finite() && self.rrf_k >= 0.0) {
            return Err(Error::InvalidSetting(format!(
                "rrf_k must be a finite number >= 0, got {}",
                self.rrf_k
            )));
        }
        if let Some(i) = &self.instruction {
            if i.chars().count() > MAX_INSTRUCTION_CHARS {
                return Err(Error::InvalidSetting(format!(
                    "the instruction is {} characters long; the limit is {MAX_INSTRUCTION_CHARS}",
                    i.chars().count()
                )));
            }
        }
        if let Some(w) = self.stage1_weight {
            if !(0.0..=1.0).contains(&w) {
                return Err(Error::InvalidSetting(format!(
                    "stage1_weight must be in 0..=1, got {w}"
                )));
            }
        }
        if let Some(d) = self.retriever_depth {
            if d == 0 || d > MAX_DEPTH {
                return Err(Error::InvalidSetting(format!(
                    "retriever_depth must be in 1..={MAX_DEPTH}, got {d}"
                )));
            }
        }
        self.rescore.validate()
    }
}

/// Check a query before any work is spent on it.
pub fn validate_query(query: &str) -> Result<()> {
    if query.trim().is_empty() {
        return Err(Error::InvalidQuery("the query is empty".into()));
    }
    let chars = query.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(Error::InvalidQuery(format!(
            "the query is {chars} characters long; the limit is {MAX_QUERY_CHARS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_partial_files() {
        let config = Config::default();
        let back: Config = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(back, config);
        let partial: Config = toml::from_str("[search]\ndepth = 20\n").unwrap();
        assert_eq!(partial.search.depth, 20);
        assert_eq!(partial.search.k, 5);
    }

    /// The fallback reranker is off by default; `true` is the committed
    /// general one, a table another, `false` none; each survives a round
    /// trip through TOML.
    #[test]
    fn the_fallback_reranker_is_a_model_true_or_false() {
        assert_eq!(Config::default().models.cross_encoder_fallback, None);
        assert_ne!(BUNDLED_RERANKER, SCIFACT_RERANKER);
        let on: Config = toml::from_str("[models]\ncross_encoder_fallback = true\n").unwrap();
        assert_eq!(
            on.models.cross_encoder_fallback,
            Some(ModelSource::local(BUNDLED_RERANKER))
        );
        let off: Config = toml::from_str("[models]\ncross_encoder_fallback = false\n").unwrap();
        assert_eq!(off.models.cross_encoder_fallback, None);
        let other: Config =
            toml::from_str("[models.cross_encoder_fallback]\npath = \"my/reranker\"\n").unwrap();
        assert_eq!(
            other.models.cross_encoder_fallback,
            Some(ModelSource::local("my/reranker"))
        );
        // A caller's word: true keeps the configured one, else the committed one.
        let mut asked = other.models.clone();
        asked.ask_for_fallback(Some(true));
        assert_eq!(
            asked.cross_encoder_fallback,
            Some(ModelSource::local("my/reranker"))
        );
        asked.ask_for_fallback(None);
        assert_eq!(
            asked.cross_encoder_fallback,
            Some(ModelSource::local("my/reranker"))
        );
        asked.ask_for_fallback(Some(false));
        assert_eq!(asked.cross_encoder_fallback, None);
        asked.ask_for_fallback(Some(true));
        assert_eq!(
            asked.cross_encoder_fallback,
            Some(ModelSource::local(BUNDLED_RERANKER))
        );
        for config in [on, off, other] {
            let back: Config = toml::from_str(&config.to_toml()).unwrap();
            assert_eq!(back, config);
        }
        let typo = toml::from_str::<Config>("[models.cross_encoder_fallback]\npth = \"x\"\n");
        assert!(typo
            .unwrap_err()
            .to_string()
            .contains("unknown field `pth`"));
    }

    #[test]
    fn reranker_kinds_parse_and_serialise_alike() {
        for kind in RerankerKind::ALL {
            assert_eq!(kind.as_str().parse::<RerankerKind>().unwrap(), kind);
            let toml = format!("[search]\nreranker = \"{kind}\"\n");
            assert_eq!(
                toml::from_str::<Config>(&toml).unwrap().search.reranker,
                kind
            );
        }
        assert!("bm25".parse::<RerankerKind>().is_err());
        let c: Config =
            toml::from_str("[rerank.llm]\nbackend = \"http\"\nwindow = 4\nstep = 2\n").unwrap();
        assert_eq!(c.rerank.llm.backend, LlmBackend::Http);
        c.validate().unwrap();
        let bad: Config = toml::from_str("[rerank.llm]\nwindow = 4\nstep = 4\n").unwrap();
        assert!(bad.validate().is_err());
        let long =
            SearchOptions::default().instruction(Some("x".repeat(MAX_INSTRUCTION_CHARS + 1)));
        assert!(long.validate().is_err());
        assert_eq!(
            SearchOptions::default()
                .instruction(Some("  ".into()))
                .instruction,
            None
        );
    }

    #[test]
    fn precision_reads_from_toml_and_flags_alike() {
        assert_eq!(Config::default().models.precision, Precision::F32);
        for (text, want) in [
            ("fast", Precision::Fast),
            ("bf16", Precision::Fast),
            ("int8", Precision::Int8),
            ("f32", Precision::F32),
            ("exact", Precision::F32),
        ] {
            let config: Config =
                toml::from_str(&format!("[models]\nprecision = \"{text}\"\n")).unwrap();
            assert_eq!(config.models.precision, want, "{text}");
            assert_eq!(text.parse::<Precision>().unwrap(), want, "{text}");
        }
        assert!(toml::from_str::<Config>("[models]\nprecision = \"int4\"\n").is_err());
        assert!("int4".parse::<Precision>().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("[search]\ndepht = 20\n").unwrap_err();
        assert!(err.to_string().contains("depht"), "{err}");
    }

    #[test]
    fn bounds_are_checked() {
        assert!(SearchOptions::default().k(0).validate().is_err());
        assert!(SearchOptions::default().depth(10).k(11).validate().is_err());
        assert!(SearchOptions::default()
            .depth(MAX_DEPTH + 1)
            .validate()
            .is_err());
        assert!(SearchOptions::default().rrf_k(f32::NAN).validate().is_err());
        assert!(validate_query("   ").is_err());
        assert!(validate_query(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(validate_query("what happens to my data").is_ok());
    }

    /// 0 (off) and ratios below 1 are accepted; a negative, NaN or ≥ 1
    /// ratio is refused with the key's name.
    #[test]
    fn compact_dead_ratio_is_checked() {
        assert_eq!(
            Config::default().index.compact_dead_ratio,
            DEFAULT_COMPACT_DEAD_RATIO
        );
        for ok in ["0", "0.0", "0.5", "0.99"] {
            let config: Config =
                toml::from_str(&format!("[index]\ncompact_dead_ratio = {ok}\n")).unwrap();
            config.validate().unwrap();
        }
        for bad in ["-0.1", "1.0", "2", "nan"] {
            let config: Config =
                toml::from_str(&format!("[index]\ncompact_dead_ratio = {bad}\n")).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("index.compact_dead_ratio"), "{bad}: {err}");
        }
    }
}
