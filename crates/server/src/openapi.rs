use crate::api::*;
use crate::error::{ErrorBody, ErrorDetail};
use crate::handlers;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sift",
        description = "Two-stage retrieval over HTTP: BM25 + dense (HNSW) fused by RRF, then a rerank (cross-encoder, LLM pointwise or LLM listwise). \
                       Every error is `{\"error\": {\"code\", \"message\"}}`. The web page at / is a client of this API. When the server has an API key, \
                       every route but /health and the page's own files needs `Authorization: Bearer KEY`."
    ),
    paths(
        handlers::search,
        handlers::rerank,
        handlers::embeddings,
        handlers::chat_completions,
        handlers::add_documents,
        handlers::delete_document,
        handlers::stats,
        handlers::eval_runs,
        handlers::eval_file,
        handlers::health,
        handlers::metrics,
        handlers::openapi,
    ),
    components(schemas(
        SearchRequest, SearchResponseBody, Hit, HitScores, Bm25Score, DenseScore, TimingsMs,
        RerankRequest, TeiRerankRequest, TeiRank, CohereRerankRequest, CohereRerankResponse,
        CohereResult, CohereDocumentOut, CohereMeta, CohereApiVersion, RerankResponse,
        EmbeddingsRequest, EmbeddingsResponse, Embedding, Usage,
        ChatRequest, ChatMessage, ChatResponse, ChatChoice, ChatLogprobs, TokenLogprob, TopLogprob, ChatUsage,
        DocumentsRequest, DocumentIn, DocumentsResponse, FailedDocumentOut, DeleteResponse, HealthResponse,
        StatsResponse, CompactionStatus, LastCompaction, SearchDefaults, EvalRunsResponse, EvalRun,
        ErrorBody, ErrorDetail,
    )),
    modifiers(&BearerAuth),
    security((), ("bearer" = [])),
    tags(
        (name = "retrieval", description = "Two-stage search"),
        (name = "models", description = "The models on their own, in the shapes of TEI, Cohere and OpenAI"),
        (name = "documents", description = "Writes; each is committed before it is answered"),
        (name = "operations", description = "Health, index statistics, metrics, this document"),
        (name = "eval", description = "Reports of `sift eval` runs in the folder the server was given (`--eval-dir`), for the page at /"),
    )
)]
pub(crate) struct ApiDoc;

/// Declares the optional bearer token.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, rendered with the crate's version.
pub(crate) fn render() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json()
        .expect("the OpenAPI document serialises")
}
