//! One function per endpoint. Each validates its input before any model
//! work, runs inference on the bounded pool and writes behind the write gate.

use crate::api::*;
use crate::error::{ApiError, ErrorBody};
use crate::json::{self, ApiJson};
use crate::pool::blocking;
use crate::state::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::Value;
use sift_core::{
    validate_query, Candidate, Chunk, ChunkId, Document, Metadata, SearchOptions, StageTimings,
};
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// Retrieve, filter and rerank.
#[utoipa::path(
    post,
    path = "/search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Hits, best first, with provenance and timings", body = SearchResponseBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Unknown field, empty or over-long query, depth/k out of bounds", body = ErrorBody),
        (status = 503, description = "Overloaded or timed out", body = ErrorBody),
    ),
    tag = "retrieval"
)]
pub(crate) async fn search(
    State(state): Shared,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponseBody>, ApiError> {
    let defaults = &state.engine.config().search;
    let depth = req.depth.unwrap_or(defaults.depth);
    let options = SearchOptions::default()
        .depth(depth)
        // A small depth with the default k asks for "at most depth hits",
        // not for an error.
        .k(req.k.unwrap_or(defaults.k.min(depth.max(1))))
        .rerank(req.rerank.unwrap_or(defaults.rerank))
        .reranker(req.reranker.unwrap_or(defaults.reranker))
        .instruction(req.instruction.or_else(|| defaults.instruction.clone()))
        .rrf_k(req.rrf_k.unwrap_or(defaults.rrf_k))
        .retriever_depth(req.retriever_depth.or(defaults.retriever_depth))
        .stage1_weight(req.stage1_weight.or(defaults.stage1_weight))
        .filter(req.filter.unwrap_or_else(|| defaults.filter.clone()))
        .rescore(req.rescore.unwrap_or_else(|| defaults.rescore.clone()));
    validate_query(&req.query)?;
    options.validate()?;
    let engine = state.engine.clone();
    let query = req.query;
    let (response, queued) = state
        .pool
        .run(move || engine.search(&query, &options))
        .await?;
    let response = response?;
    state.metrics.observe_search(&response);
    Ok(Json(SearchResponseBody {
        timings: TimingsMs::new(&response.timings, queued),
        hits: response
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, c)| Hit::new(i + 1, c))
            .collect(),
        reranked_by: response.reranked_by,
        notice: response.notice,
    }))
}

/// Score texts against a query with the cross-encoder.
///
/// Takes text-embeddings-inference's request (`texts`) or Cohere's
/// (`documents`) and answers in the same shape, best first.
#[utoipa::path(
    post,
    path = "/rerank",
    request_body = RerankRequest,
    responses(
        (status = 200, description = "TEI: an array of {index, score, text?}; Cohere: {id, results: [{index, relevance_score, document?}], meta}", body = RerankResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "More texts than the server's limit", body = ErrorBody),
        (status = 422, description = "Unknown field, empty query or no texts", body = ErrorBody),
        (status = 503, description = "No reranker is loaded, or overloaded", body = ErrorBody),
    ),
    tag = "models"
)]
pub(crate) async fn rerank(
    State(state): Shared,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let has = |field: &str| body.as_object().is_some_and(|o| o.contains_key(field));
    let is_cohere = has("documents");
    // Without either list the shape is unknown: say so, rather than call
    // a Cohere body that lost its `documents` a TEI body without `texts`.
    if body.is_object() && !is_cohere && !has("texts") {
        return Err(ApiError::invalid(
            "the body needs `texts` (text-embeddings-inference's shape) or `documents` (Cohere's)",
        ));
    }
    let (query, texts, cohere, tei) = if is_cohere {
        let r: CohereRerankRequest = json::from_value(body)?;
        let texts = r.documents.iter().map(|d| d.0.clone()).collect::<Vec<_>>();
        (r.query.clone(), texts, Some(r), None)
    } else {
        let r: TeiRerankRequest = json::from_value(body)?;
        (r.query.clone(), r.texts.clone(), None, Some(r))
    };
    validate_query(&query)?;
    // Errors name the field of the shape the client used.
    let field = if is_cohere { "documents" } else { "texts" };
    if texts.is_empty() {
        return Err(ApiError::invalid(format!(
            "{field} is empty: there is nothing to rerank"
        )));
    }
    let limit = state.options.max_batch;
    if texts.len() > limit {
        return Err(ApiError::too_large(format!(
            "{} {field} in one rerank call; the limit is {limit}",
            texts.len()
        )));
    }
    if let Some(top_n) = cohere.as_ref().and_then(|c| c.top_n) {
        if top_n == 0 {
            return Err(ApiError::invalid("top_n must be at least 1"));
        }
    }
    if let Err(why) = state.engine.reranker_status() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reranker_unavailable",
            format!(
                "no reranker is loaded ({why}); restart the server with --reranker-path DIR \
                 (or SIFT_RERANKER_PATH, or models.cross_encoder.path in the config) naming a \
                 cross-encoder folder with config.json, tokenizer.json and model.safetensors"
            ),
        ));
    }

    // Texts become candidates whose chunk id is their request index, so the
    // engine's reranker (which sorts and keeps the scores) can be reused.
    let candidates: Vec<Candidate> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| Candidate {
            chunk: Chunk {
                id: ChunkId(i as u64),
                doc_id: String::new(),
                ordinal: 0,
                title: String::new(),
                section: Vec::new(),
                text: text.clone(),
                char_start: 0,
                char_end: 0,
                metadata: Metadata::new(),
            },
            scores: Default::default(),
        })
        .collect();
    let n = candidates.len();
    let engine = state.engine.clone();
    let (ranked, _queued) = state
        .pool
        .run(move || {
            let mut timings = StageTimings::default();
            engine.rerank(&query, candidates, n, &mut timings)
        })
        .await?;
    let (ranked, _) = ranked?;
    let scored = ranked
        .into_iter()
        .map(|c| (c.chunk.id.0 as usize, c.scores.rerank.unwrap_or(f32::MIN)));

    if let Some(c) = cohere {
        let id = state.next_id();
        let results = scored
            .take(c.top_n.unwrap_or(usize::MAX))
            .map(|(index, logit)| CohereResult {
                index,
                relevance_score: sigmoid(logit),
                document: c.return_documents.then(|| CohereDocumentOut {
                    text: texts[index].clone(),
                }),
            })
            .collect();
        return Ok(Json(CohereRerankResponse {
            id,
            results,
            meta: CohereMeta {
                api_version: CohereApiVersion {
                    version: "2".into(),
                },
            },
        })
        .into_response());
    }
    let t = tei.expect("one of the two shapes");
    let ranks: Vec<TeiRank> = scored
        .map(|(index, logit)| TeiRank {
            index,
            score: if t.raw_scores { logit } else { sigmoid(logit) },
            text: t.return_text.then(|| texts[index].clone()),
        })
        .collect();
    Ok(Json(ranks).into_response())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// OpenAI-compatible embeddings from the bi-encoder.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "One unit-length vector per input, in input order", body = EmbeddingsResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "More inputs than the server's limit", body = ErrorBody),
        (status = 422, description = "Unknown field, no input, token arrays, unsupported encoding_format or dimensions", body = ErrorBody),
    ),
    tag = "models"
)]
pub(crate) async fn embeddings(
    State(state): Shared,
    ApiJson(req): ApiJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let inputs = req.input.0;
    if inputs.is_empty() {
        return Err(ApiError::invalid("input is an empty array"));
    }
    let limit = state.options.max_batch;
    if inputs.len() > limit {
        return Err(ApiError::too_large(format!(
            "{} inputs in one call; the limit is {limit}",
            inputs.len()
        )));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding_format must be `float` or `base64`, got `{other}`"
            )))
        }
    };
    let dim = state.engine.bi_encoder().dim();
    if let Some(d) = req.dimensions {
        if d != dim {
            return Err(ApiError::invalid(format!(
                "dimensions: this model makes {dim}-dimensional vectors and cannot shorten them, got {d}"
            )));
        }
    }
    let engine = state.engine.clone();
    let (out, _queued) = state
        .pool
        .run(move || {
            let encoder = engine.bi_encoder();
            let tokens: usize = inputs
                .iter()
                .map(|t| {
                    encoder
                        .tokenizer()
                        .encode(t.as_str(), true)
                        .map(|e| e.len().min(encoder.max_tokens()))
                        .unwrap_or(0)
                })
                .sum();
            encoder.embed(&inputs).map(|v| (v, tokens))
        })
        .await?;
    let (vectors, tokens) = out.map_err(|e| ApiError::internal(e.to_string()))?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Embedding {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(v)
            },
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: state.engine.bi_encoder().origin().to_string(),
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// Add or replace documents; answers once the change is committed (and so
/// visible to every later search).
#[utoipa::path(
    post,
    path = "/documents",
    request_body = DocumentsRequest,
    responses(
        (status = 200, description = "Committed", body = DocumentsResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body or document count over the limit", body = ErrorBody),
        (status = 422, description = "Unknown field, no documents, empty id (nothing written, body ErrorBody); or some documents could not be indexed: `failed` names them, the others were committed (body DocumentsResponse)", body = DocumentsResponse),
    ),
    tag = "documents"
)]
pub(crate) async fn add_documents(
    State(state): Shared,
    ApiJson(req): ApiJson<DocumentsRequest>,
) -> Result<(StatusCode, Json<DocumentsResponse>), ApiError> {
    let docs = req.documents;
    if docs.is_empty() {
        return Err(ApiError::invalid("documents is empty"));
    }
    let limit = state.options.max_batch;
    if docs.len() > limit {
        return Err(ApiError::too_large(format!(
            "{} documents in one request; the limit is {limit}",
            docs.len()
        )));
    }
    if let Some(i) = docs.iter().position(|d| d.id.trim().is_empty()) {
        return Err(ApiError::invalid(format!("documents[{i}].id is empty")));
    }
    let total = docs.len();
    let documents: Vec<Document> = docs
        .into_iter()
        .map(|d| Document {
            id: d.id,
            title: d.title,
            text: d.text,
            metadata: d.metadata,
        })
        .collect();
    // One write at a time (the engine serialises writers anyway); the others
    // wait here, as futures. The gate's guard moves into the job: it is
    // released when the engine's write has finished, even if this request
    // is dropped, and shutdown waits on it.
    let gate = state.writes.clone().lock_owned().await;
    let engine = state.engine.clone();
    let report = state
        .pool
        .run_write(move || {
            let _gate = gate;
            engine.index(&documents, |_| {})
        })
        .await??;
    state
        .metrics
        .documents_written
        .inc_by(report.documents_written as u64);
    if report.documents_written > 0 {
        state.compact_if_needed();
    }
    let (status, error) = match report.failed.as_slice() {
        [] => (StatusCode::OK, None),
        failed => {
            let named: Vec<String> = failed
                .iter()
                .map(|f| format!("{:?}: {}", f.id, f.reason))
                .collect();
            let message = format!(
                "{} of {} documents could not be indexed (the others were committed): {}",
                failed.len(),
                total,
                named.join("; ")
            );
            let detail = crate::error::ErrorDetail {
                code: "documents_failed".into(),
                message,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, Some(detail))
        }
    };
    let failed = report
        .failed
        .into_iter()
        .map(|f| FailedDocumentOut {
            id: f.id,
            reason: f.reason,
        })
        .collect();
    Ok((
        status,
        Json(DocumentsResponse {
            documents_written: report.documents_written,
            documents_unchanged: report.documents_unchanged,
            documents_empty: report.documents_empty,
            chunks_written: report.chunks_written,
            commits: report.commits,
            failed,
            error,
        }),
    ))
}

/// Delete a document and all its chunks. Ids containing `/` may be sent as
/// they are or percent-encoded (`%2F`).
#[utoipa::path(
    delete,
    path = "/documents/{id}",
    params(("id" = String, Path, description = "Document id")),
    responses(
        (status = 200, description = "Deleted and committed", body = DeleteResponse),
        (status = 400, description = "An id that is not UTF-8 once percent-decoded (`invalid_id`)", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
    tag = "documents"
)]
pub(crate) async fn delete_document(
    State(state): Shared,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<DeleteResponse>, ApiError> {
    // axum's rejection is a bare 400 that the error layer would call
    // `invalid_json`; a path that is not UTF-8 once decoded is a bad id.
    let Path(id) = id.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!(
                "the document id in the path cannot be read: {}",
                e.body_text()
            ),
        )
    })?;
    let gate = state.writes.clone().lock_owned().await;
    let engine = state.engine.clone();
    let doc_id = id.clone();
    let deleted = blocking(move || {
        let _gate = gate;
        engine.delete(&doc_id)
    })
    .await??;
    if !deleted {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "document_not_found",
            format!("no document {id:?} in the index"),
        ));
    }
    state.metrics.documents_deleted.inc();
    state.compact_if_needed();
    Ok(Json(DeleteResponse { id, deleted: true }))
}

/// Liveness and what is loaded; never needs the API key.
#[utoipa::path(
    get,
    path = "/health",
    responses((status = 200, description = "Serving", body = HealthResponse)),
    tag = "operations"
)]
pub(crate) async fn health(State(state): Shared) -> Result<Json<HealthResponse>, ApiError> {
    let engine = state.engine.clone();
    let stats = blocking(move || engine.stats()).await??;
    state.metrics.set_index(&stats);
    let reranker = state.engine.reranker_status();
    Ok(Json(HealthResponse {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        documents: stats.documents,
        chunks: stats.chunks,
        bi_encoder: stats.bi_encoder,
        reranker: reranker.clone().ok(),
        reranker_unavailable: reranker.err(),
    }))
}

/// The index's size, the models loaded and the search defaults: what the
/// page shows beside the documents.
#[utoipa::path(
    get,
    path = "/stats",
    responses((status = 200, description = "Index statistics", body = StatsResponse)),
    tag = "operations"
)]
pub(crate) async fn stats(State(state): Shared) -> Result<Json<StatsResponse>, ApiError> {
    let engine = state.engine.clone();
    let stats = blocking(move || engine.stats()).await??;
    state.metrics.set_index(&stats);
    let reranker = state.engine.reranker_status();
    let d = &state.engine.config().search;
    Ok(Json(StatsResponse {
        documents: stats.documents,
        chunks: stats.chunks,
        vector_points: stats.vector_points,
        dead_points: stats.dead_points,
        dead_ratio: stats.dead_ratio,
        compaction: state.compactor.status(&state.engine),
        lexical_bytes: stats.lexical_bytes,
        embedding_dim: stats.embedding_dim,
        bi_encoder: stats.bi_encoder,
        reranker: reranker.clone().ok(),
        reranker_unavailable: reranker.err(),
        defaults: SearchDefaults {
            depth: d.depth,
            k: d.k,
            rerank: d.rerank,
            reranker: d.reranker.as_str().to_string(),
            rrf_k: d.rrf_k,
            stage1_weight: d.stage1_weight,
        },
        eval_dir: state.options.eval_dir.is_some(),
    }))
}

/// The `sift eval --out` folders in the server's eval folder (`--eval-dir`).
#[utoipa::path(
    get,
    path = "/eval/runs",
    responses(
        (status = 200, description = "The runs, with their headline figures", body = EvalRunsResponse),
        (status = 404, description = "No eval folder was given (`eval_dir_not_set`) or it cannot be read (`eval_dir_missing`)", body = ErrorBody),
    ),
    tag = "eval"
)]
pub(crate) async fn eval_runs(State(state): Shared) -> Result<Json<EvalRunsResponse>, ApiError> {
    let dir = state.options.eval_dir.clone();
    blocking(move || crate::eval_runs::list(dir.as_deref()))
        .await?
        .map(Json)
}

/// One file of an eval run: its report (JSON or Markdown), its sweep
/// table, or its depth-sweep plot. Only runs that `GET /eval/runs` lists
/// and the files `sift eval` writes can be read.
#[utoipa::path(
    get,
    path = "/eval/file",
    params(EvalFileQuery),
    responses(
        (status = 200, description = "The file, with its content type: application/json (report.json, sweep.json), text/markdown (report.md, sweep.md), image/svg+xml (sweep.svg), image/png (sweep.png)"),
        (status = 404, description = "No such run or file, or no eval folder", body = ErrorBody),
        (status = 422, description = "A file name that `sift eval` does not write", body = ErrorBody),
    ),
    tag = "eval"
)]
pub(crate) async fn eval_file(
    State(state): Shared,
    query: Result<Query<EvalFileQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    // axum's own rejection is a bare 400; a missing `file` is the same
    // kind of mistake as an unknown one, so it gets the same 422.
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let dir = state.options.eval_dir.clone();
    let (content_type, bytes) =
        blocking(move || crate::eval_runs::read(dir.as_deref(), &q.run, &q.file)).await??;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)),
    tag = "operations"
)]
pub(crate) async fn metrics(State(state): Shared) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let stats = blocking(move || engine.stats()).await??;
    state.metrics.set_index(&stats);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response())
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "OpenAPI 3.1 description of the API", content_type = "application/json", body = Object)),
    tag = "operations"
)]
pub(crate) async fn openapi(State(state): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
        .into_response()
}

/// Any path that is not an endpoint.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; GET /openapi.json lists them",
    )
}

/// The longest completion `/v1/chat/completions` generates.
const MAX_CHAT_TOKENS: usize = 512;

/// OpenAI-compatible chat completions from the in-process GGUF model
/// (greedy decoding; `logprobs` and `top_logprobs` supported), so that the
/// LLM rerankers' `http` back end can be pointed at a sift server.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "One greedy completion", body = ChatResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Unknown field, no messages, n != 1, stream, max_tokens or top_logprobs out of bounds, prompt too long", body = ErrorBody),
        (status = 503, description = "No GGUF model can be loaded, or overloaded", body = ErrorBody),
    ),
    tag = "models"
)]
pub(crate) async fn chat_completions(
    State(state): Shared,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Json<ChatResponse>, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages is empty"));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("only n = 1 is supported"));
    }
    if req.stream == Some(true) {
        return Err(ApiError::invalid("stream: streaming is not supported"));
    }
    // The error names the field the client sent, not its older synonym.
    let (field, max_tokens) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => ("max_completion_tokens", n),
        (None, Some(n)) => ("max_tokens", n),
        (None, None) => ("max_tokens", 16),
    };
    if max_tokens == 0 || max_tokens > MAX_CHAT_TOKENS {
        return Err(ApiError::invalid(format!(
            "{field} must be in 1..={MAX_CHAT_TOKENS}, got {max_tokens}"
        )));
    }
    let top = req.top_logprobs.unwrap_or(0);
    if top > 20 {
        return Err(ApiError::invalid(format!(
            "top_logprobs must be in 0..=20, got {top}"
        )));
    }
    let prompt = req
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    let engine = state.engine.clone();
    let (out, _queued) = state
        .pool
        .run(move || {
            let model = engine.gguf_model().map_err(|why| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "llm_unavailable",
                    format!("no GGUF model: {why}"),
                )
            })?;
            let generation = model
                .generate(&prompt, max_tokens, top, None)
                .map_err(crate::error::llm_error)?;
            Ok::<_, ApiError>((model, generation))
        })
        .await?;
    let (model, generation) = out?;
    let tokenizer = model.tokenizer();
    let logprobs = req.logprobs.then(|| ChatLogprobs {
        content: generation
            .steps
            .iter()
            .map(|step| {
                let token = tokenizer.token_text(step.token);
                TokenLogprob {
                    bytes: token.as_bytes().to_vec(),
                    token,
                    logprob: step.logprob,
                    top_logprobs: step
                        .top
                        .iter()
                        .map(|&(id, logprob)| {
                            let token = tokenizer.token_text(id);
                            TopLogprob {
                                bytes: token.as_bytes().to_vec(),
                                token,
                                logprob,
                            }
                        })
                        .collect(),
                }
            })
            .collect(),
    });
    let completion_tokens = generation.steps.len();
    Ok(Json(ChatResponse {
        id: state.next_id(),
        object: "chat.completion",
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        model: model
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        choices: vec![ChatChoice {
            index: 0,
            message: ChatMessage {
                role: "assistant".into(),
                content: generation.text,
            },
            logprobs,
            finish_reason: if generation.finished {
                "stop"
            } else {
                "length"
            },
        }],
        usage: ChatUsage {
            prompt_tokens: generation.prompt_tokens,
            completion_tokens,
            total_tokens: generation.prompt_tokens + completion_tokens,
        },
    }))
}
