//! Request and response bodies of every endpoint, with their OpenAPI schemas.
//!
//! Requests reject unknown fields (a typo such as `"detph"` is an error, not
//! a silently ignored option); responses always carry every field, `null`
//! where a stage did not apply, so clients need no existence checks.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sift_core::rescore::{Rescore, Rescored};
use sift_core::{Candidate, Metadata, RerankerKind, Stage, StageTimings};
use std::collections::BTreeMap;
use utoipa::ToSchema;

// ---------------------------------------------------------------- /search

/// `POST /search`. Omitted knobs take the server's configured defaults
/// (`search.*` in the config; depth 50, k 5, rerank on, rrf_k 60).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question; 1 to 2048 characters.
    #[schema(example = "what happens to my data if I close my account")]
    pub query: String,
    /// Candidates retrieved (fused) and handed to the reranker; 1 to 1000.
    #[schema(example = 50)]
    pub depth: Option<usize>,
    /// Hits returned; 1 to `depth` (default: the configured k, at most `depth`).
    #[schema(example = 5)]
    pub k: Option<usize>,
    /// Run stage 2 (default: the configured `search.rerank`, on).
    pub rerank: Option<bool>,
    /// Which reranker: `cross-encoder` (default), `llm` (pointwise P(yes)
    /// from the language model) or `listwise` (RankGPT sliding windows).
    #[schema(value_type = Option<String>, example = "llm")]
    pub reranker: Option<RerankerKind>,
    /// An instruction the `llm` and `listwise` rerankers read, e.g.
    /// "prefer recent documents"; at most 500 characters.
    #[schema(example = "prefer recent documents")]
    pub instruction: Option<String>,
    /// Reciprocal-rank-fusion constant: score = Σ 1 / (rrf_k + rank).
    pub rrf_k: Option<f32>,
    /// Hits each retriever (BM25, dense) contributes to fusion; default `depth`.
    pub retriever_depth: Option<usize>,
    /// Weight of the stage-1 order in the final order, 0 to 1 (a rank
    /// blend); default: the configured one, else the reranker's own (0, or
    /// what a trained checkpoint chose on its validation queries).
    #[schema(example = 0.5)]
    pub stage1_weight: Option<f32>,
    /// Metadata equality filter: keep only chunks whose metadata has every
    /// key given here with an equal JSON value (`{"source": "faq"}`). A key
    /// the chunk lacks does not match. Applied to the fused candidates; see
    /// the README for how the candidate pool is widened.
    #[schema(value_type = Option<Object>, example = json!({"source": "faq"}))]
    pub filter: Option<BTreeMap<String, Value>>,
    /// Rules applied after stage 2 (after fusion when `rerank` is off):
    /// `{"rules": [{"kind": "decay", "field": "date", "scale": "90d",
    /// "weight": 0.5}, {"kind": "boost", "field": "source", "equals":
    /// "official", "factor": 1.5}], "basis": "score", "combine":
    /// "multiply"}`. Each hit's `scores.rescore` shows its base and every
    /// rule's factor. Default: the configured `search.rescore` (none).
    #[schema(value_type = Option<Object>, example = json!({"rules": [{"kind": "decay", "field": "date", "scale": "90d", "weight": 0.5}]}))]
    pub rescore: Option<Rescore>,
}

/// `POST /search` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponseBody {
    /// Best first.
    pub hits: Vec<Hit>,
    /// Milliseconds per stage.
    pub timings: TimingsMs,
    /// The reranker that ordered the hits; `null` for stage-1 (fused) order.
    pub reranked_by: Option<String>,
    /// Set when the query was answered differently than asked, e.g.
    /// rerank requested but no reranker is loaded.
    pub notice: Option<String>,
}

/// One retrieved chunk, with what a citation needs and every score.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    /// Position in the answer, from 1.
    pub rank: usize,
    /// Stable chunk id (16 hex digits).
    #[schema(example = "9f1c2a7b3e4d5f60")]
    pub chunk_id: String,
    /// Id of the document the chunk belongs to.
    pub doc_id: String,
    /// Position of the chunk within its document, from 0.
    pub ordinal: u32,
    /// Title of the document.
    pub title: String,
    /// The headings the chunk sits under, outermost first (the document's
    /// title excluded): cite it as `title › section…`.
    pub section: Vec<String>,
    /// The chunk's text.
    pub text: String,
    /// Character offsets (Unicode scalar values, end exclusive) of `text`
    /// in the document's text.
    pub char_start: usize,
    pub char_end: usize,
    /// The document's metadata.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// The score the hit is ordered by: the rescore when rules ran, else
    /// the rerank logit (or blend) when reranked, else the fused score.
    pub score: f32,
    pub scores: HitScores,
}

/// Every score a hit collected; `null` where a stage did not see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitScores {
    /// BM25 rank (from 1) and score.
    pub bm25: Option<Bm25Score>,
    /// Dense (HNSW) rank (from 1) and cosine similarity.
    pub dense: Option<DenseScore>,
    /// Reciprocal-rank-fusion score.
    pub fused: Option<f32>,
    /// Rank (from 1) in the fused stage-1 list, before stage 2 moved it.
    pub stage1_rank: Option<u32>,
    /// Stage-2 score (comparable within one query only): the cross-encoder
    /// logit, the LLM's P(yes), or listwise 1/rank.
    pub rerank: Option<f32>,
    /// The rank blend of stage 2 with stage 1 that ordered the hits, when
    /// a stage-1 weight is in force.
    pub blended: Option<f32>,
    /// When rescoring rules ran: `base` (the stage score on 0..1 over the
    /// candidates), `factors` (each rule, the metadata value it read and
    /// its factor) and `score`, which orders the hits.
    #[schema(value_type = Option<Object>)]
    pub rescore: Option<Rescored>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Bm25Score {
    pub rank: u32,
    pub score: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DenseScore {
    pub rank: u32,
    pub similarity: f32,
}

/// Milliseconds spent per stage of one query.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimingsMs {
    pub tokenize: f64,
    pub bm25: f64,
    pub embed: f64,
    pub hnsw: f64,
    pub fuse: f64,
    pub fetch: f64,
    pub rerank: f64,
    pub rescore: f64,
    /// The whole query (stages, filter and bookkeeping), queueing excluded.
    pub total: f64,
    /// Time the request waited for a slot on the inference pool.
    pub queue: f64,
}

impl TimingsMs {
    pub fn new(t: &StageTimings, queue: std::time::Duration) -> Self {
        let ms = |s: Stage| t.get(s).as_secs_f64() * 1e3;
        TimingsMs {
            tokenize: ms(Stage::Tokenize),
            bm25: ms(Stage::Bm25),
            embed: ms(Stage::Embed),
            hnsw: ms(Stage::Hnsw),
            fuse: ms(Stage::Fuse),
            fetch: ms(Stage::Fetch),
            rerank: ms(Stage::Rerank),
            rescore: ms(Stage::Rescore),
            total: t.total.as_secs_f64() * 1e3,
            queue: queue.as_secs_f64() * 1e3,
        }
    }
}

impl Hit {
    pub fn new(rank: usize, c: Candidate) -> Self {
        let s = c.scores;
        let score = s.final_score();
        Hit {
            rank,
            chunk_id: c.chunk.id.to_string(),
            doc_id: c.chunk.doc_id,
            ordinal: c.chunk.ordinal,
            title: c.chunk.title,
            section: c.chunk.section,
            text: c.chunk.text,
            char_start: c.chunk.char_start,
            char_end: c.chunk.char_end,
            metadata: c.chunk.metadata,
            score,
            scores: HitScores {
                bm25: s.bm25.map(|r| Bm25Score {
                    rank: r.rank,
                    score: r.score,
                }),
                dense: s.dense.map(|r| DenseScore {
                    rank: r.rank,
                    similarity: r.score,
                }),
                fused: s.fused,
                stage1_rank: s.stage1_rank,
                rerank: s.rerank,
                blended: s.blended,
                rescore: s.rescore,
            },
        }
    }
}

// ---------------------------------------------------------------- /rerank

/// `POST /rerank` takes either shape (a body with `documents` is Cohere's,
/// otherwise TEI's); the answer comes in the same shape.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Describes the API only; bodies are dispatched by hand.
pub enum RerankRequest {
    Tei(TeiRerankRequest),
    Cohere(CohereRerankRequest),
}

/// text-embeddings-inference's `/rerank` request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeiRerankRequest {
    pub query: String,
    /// Passages to score against the query; 1 to the server's limit (1000).
    pub texts: Vec<String>,
    /// Return raw logits instead of sigmoid(logit) in 0..1.
    #[serde(default)]
    pub raw_scores: bool,
    /// Echo each text in the answer.
    #[serde(default)]
    pub return_text: bool,
    /// Accepted for compatibility: sift always truncates the passage so the
    /// pair fits the cross-encoder (`rerank.max_length` tokens).
    #[serde(default)]
    #[allow(dead_code)] // accepted so that clients that send it work
    pub truncate: Option<bool>,
    /// Accepted for compatibility; passages are truncated on the right.
    #[serde(default)]
    #[allow(dead_code)] // accepted so that clients that send it work
    pub truncation_direction: Option<String>,
}

/// One scored text of a TEI-shaped answer (the answer is an array, best first).
#[derive(Debug, Serialize, ToSchema)]
pub struct TeiRank {
    /// Position of the text in the request.
    pub index: usize,
    /// sigmoid(logit), or the raw logit with `raw_scores`.
    pub score: f32,
    /// The text, with `return_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Cohere's rerank request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CohereRerankRequest {
    pub query: String,
    /// Strings, or objects with a `text` field.
    #[schema(value_type = Vec<Object>)]
    pub documents: Vec<CohereDocument>,
    /// Results returned (best first); default all.
    pub top_n: Option<usize>,
    /// Include each document's text in the answer (default false).
    #[serde(default)]
    pub return_documents: bool,
    /// Accepted and ignored: the server has one reranker.
    #[allow(dead_code)] // accepted so that clients that send it work
    pub model: Option<String>,
    /// Accepted and ignored (documents are truncated, not split).
    #[allow(dead_code)] // accepted so that clients that send it work
    pub max_chunks_per_doc: Option<usize>,
    /// Accepted and ignored.
    #[allow(dead_code)] // accepted so that clients that send it work
    pub max_tokens_per_doc: Option<usize>,
}

/// A Cohere document: a string or `{"text": "…"}`.
#[derive(Debug)]
pub struct CohereDocument(pub String);

impl<'de> Deserialize<'de> for CohereDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(CohereDocument(s)),
            Value::Object(mut o) => match o.remove("text") {
                Some(Value::String(s)) => Ok(CohereDocument(s)),
                _ => Err(serde::de::Error::custom(
                    "a document object needs a string field `text`",
                )),
            },
            _ => Err(serde::de::Error::custom(
                "a document is a string or an object with a `text` field",
            )),
        }
    }
}

/// Cohere's rerank answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CohereRerankResponse {
    pub id: String,
    /// Best first, at most `top_n`.
    pub results: Vec<CohereResult>,
    pub meta: CohereMeta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereResult {
    /// Position of the document in the request.
    pub index: usize,
    /// sigmoid(logit), in 0..1.
    pub relevance_score: f32,
    /// With `return_documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<CohereDocumentOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereDocumentOut {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereMeta {
    pub api_version: CohereApiVersion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereApiVersion {
    pub version: String,
}

/// The two answer shapes of `/rerank` (for the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Describes the API only; each shape is answered directly.
pub enum RerankResponse {
    Tei(Vec<TeiRank>),
    Cohere(CohereRerankResponse),
}

// ---------------------------------------------------------------- /v1/embeddings

/// OpenAI's embeddings request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// A string or an array of strings (token arrays are not supported).
    #[schema(value_type = Object)]
    pub input: EmbeddingInput,
    /// Accepted and ignored: the server has one bi-encoder.
    #[allow(dead_code)] // accepted so that clients that send it work
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32, what OpenAI's
    /// Python client asks for).
    pub encoding_format: Option<String>,
    /// Must equal the model's dimension (384) when given.
    pub dimensions: Option<usize>,
    /// Accepted and ignored.
    #[allow(dead_code)] // accepted so that clients that send it work
    pub user: Option<String>,
}

/// `input`: one string or several.
#[derive(Debug)]
pub struct EmbeddingInput(pub Vec<String>);

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let unsupported = || {
            serde::de::Error::custom(
                "input must be a string or an array of strings (token arrays are not supported)",
            )
        };
        match Value::deserialize(d)? {
            Value::String(s) => Ok(EmbeddingInput(vec![s])),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(unsupported()),
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput),
            _ => Err(unsupported()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    /// Unit-length vector, or its base64 little-endian f32 bytes.
    #[schema(value_type = Object)]
    pub embedding: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Tokens read (after truncation to the model's window).
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

// ---------------------------------------------------------------- /documents

/// `POST /documents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentsRequest {
    /// 1 to the server's limit (1000). A document whose id is indexed
    /// already replaces it; within one request the last one with an id wins.
    pub documents: Vec<DocumentIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// Caller-chosen id; non-empty.
    #[schema(example = "faq/close-account.md")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
    /// Free-form JSON object kept with every chunk (filterable in /search).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

/// What a `POST /documents` did; the change is committed and searchable.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentsResponse {
    /// Documents new or changed, whose chunks were (re)written.
    pub documents_written: usize,
    /// Documents identical to what is indexed (nothing re-embedded).
    pub documents_unchanged: usize,
    /// Documents with no text and no title (nothing indexed).
    pub documents_empty: usize,
    pub chunks_written: usize,
    pub commits: usize,
    /// Documents that could not be indexed (the answer is then a 422); the
    /// others of the request were indexed and committed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedDocumentOut>,
    /// Present with `failed`: the error envelope every 4xx carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorDetail>,
}

/// A document of a `POST /documents` that was not indexed, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedDocumentOut {
    pub id: String,
    pub reason: String,
}

/// `DELETE /documents/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    pub id: String,
    /// Always true (an unknown id is a 404).
    pub deleted: bool,
}

// ---------------------------------------------------------------- /health

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    pub status: &'static str,
    pub version: &'static str,
    pub documents: u64,
    pub chunks: u64,
    pub bi_encoder: String,
    /// The loaded reranker, or `null`.
    pub reranker: Option<String>,
    /// Why no reranker is loaded, or `null`.
    pub reranker_unavailable: Option<String>,
}

// ---------------------------------------------------------------- /stats

/// `GET /stats`: the index, the models, and the defaults a search gets.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub documents: u64,
    pub chunks: u64,
    /// Points in the HNSW graph, including those of replaced or deleted
    /// chunks (until a compaction drops them).
    pub vector_points: usize,
    /// Size of the tantivy index (BM25 and stored chunks) on disk.
    pub lexical_bytes: u64,
    pub embedding_dim: usize,
    pub bi_encoder: String,
    /// The loaded cross-encoder, or `null`.
    pub reranker: Option<String>,
    /// Why no cross-encoder is loaded, or `null`.
    pub reranker_unavailable: Option<String>,
    /// Points of replaced or deleted chunks among `vector_points`.
    pub dead_points: usize,
    /// `dead_points / vector_points` (0 for an empty graph).
    pub dead_ratio: f64,
    /// Background compaction, which rebuilds the graph without the dead
    /// points once `dead_ratio` reaches the threshold.
    pub compaction: CompactionStatus,
    /// What `POST /search` uses for the knobs a request leaves out.
    pub defaults: SearchDefaults,
    /// Whether `GET /eval/runs` has a folder to list (`--eval-dir`).
    pub eval_dir: bool,
}

/// The last background compaction, as `GET /stats` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LastCompaction {
    /// Graph points before and after (`null` after when it failed).
    pub points_before: usize,
    pub points_after: Option<usize>,
    pub seconds: f64,
    /// When it finished, in seconds since the Unix epoch.
    pub finished_unix: u64,
    /// Why it failed, or `null`.
    pub error: Option<String>,
}

/// `GET /stats`' view of background compaction.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CompactionStatus {
    /// `index.compact_dead_ratio` (0: never compacts on its own).
    pub dead_ratio_threshold: f64,
    pub running: bool,
    /// Background compactions finished since the server started.
    pub completed: u64,
    pub failed: u64,
    pub last: Option<LastCompaction>,
}

/// The server's search defaults (config `search.*`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchDefaults {
    pub depth: usize,
    pub k: usize,
    pub rerank: bool,
    /// `cross-encoder`, `llm` or `listwise`.
    pub reranker: String,
    pub rrf_k: f32,
    /// `null`: the reranker's own weight (see `SearchRequest.stage1_weight`).
    pub stage1_weight: Option<f32>,
}

// ---------------------------------------------------------------- /eval

/// `GET /eval/runs`: the `sift eval --out` folders under the server's
/// `--eval-dir`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvalRunsResponse {
    /// The folder, as given to the server.
    pub dir: String,
    /// `.` (the folder itself, when it holds a report) first, then its
    /// sub-folders with a `report.json`, by name.
    pub runs: Vec<EvalRun>,
}

/// One evaluation run, summarised from its `report.json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvalRun {
    /// What `GET /eval/file` takes as `run`.
    #[schema(example = "helpcentre")]
    pub name: String,
    /// Files of the run that `GET /eval/file` serves.
    pub files: Vec<String>,
    pub dataset: Option<String>,
    pub split: Option<String>,
    pub queries: Option<u64>,
    pub depth: Option<u64>,
    pub k: Option<u64>,
    pub reranker: Option<String>,
    /// Where the depth sweep's curve flattens (`sweeps.depth.flattening`),
    /// when a depth sweep ran.
    pub recommended_depth: Option<u64>,
    /// Why `report.json` could not be read, if it could not.
    pub error: Option<String>,
}

/// `GET /eval/file` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EvalFileQuery {
    /// A run name from `GET /eval/runs`.
    pub run: String,
    /// `report.json`, `report.md`, `sweep.json`, `sweep.md`, `sweep.svg` or `sweep.png`.
    pub file: String,
}

// ---------------------------------------------------------------- /v1/chat/completions

/// OpenAI's chat-completions request, served by the in-process GGUF model
/// (`rerank.llm.gguf`). The model is a base model: the messages' contents
/// are joined by blank lines into one plain-text prompt (no chat template).
/// Decoding is always greedy; `temperature` and `top_p` are accepted and
/// have no effect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// Accepted; answered by the server's one model.
    #[allow(dead_code)] // accepted so that clients that send it work
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// Tokens to generate, 1 to 512 (default 16).
    pub max_tokens: Option<usize>,
    /// Newer name of `max_tokens`.
    pub max_completion_tokens: Option<usize>,
    /// Return each generated token's log-probability.
    #[serde(default)]
    pub logprobs: bool,
    /// With `logprobs`: the most likely tokens at each position, 0 to 20.
    pub top_logprobs: Option<usize>,
    /// Accepted; decoding is greedy.
    #[allow(dead_code)] // accepted so that clients that send it work
    pub temperature: Option<f32>,
    #[allow(dead_code)] // accepted so that clients that send it work
    pub top_p: Option<f32>,
    #[allow(dead_code)] // accepted so that clients that send it work
    pub seed: Option<i64>,
    #[allow(dead_code)] // accepted so that clients that send it work
    pub user: Option<String>,
    /// Must be 1 when given.
    pub n: Option<usize>,
    /// Must be false when given (no streaming).
    pub stream: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: ChatUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: ChatMessage,
    /// With `logprobs`: one entry per generated token.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop` (the model ended) or `length` (`max_tokens` reached).
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatLogprobs {
    pub content: Vec<TokenLogprob>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenLogprob {
    pub token: String,
    /// Natural log of the token's probability (softmax over the vocabulary).
    pub logprob: f32,
    pub bytes: Vec<u8>,
    /// The most likely tokens at this position, best first.
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}
