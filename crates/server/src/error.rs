use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Errors of starting and running the server (not of single requests:
/// those are [`ApiError`]s, answered to the client).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The body of every error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `payload_too_large`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// What went wrong and, where it helps, what to do about it.
    pub message: String,
}

/// A failed request: a status, a stable code and a human message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra header, e.g. `Retry-After` or `WWW-Authenticate`.
    pub header: Option<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            header: None,
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.header = Some((name, HeaderValue::from_static(value)));
        self
    }

    /// Well-formed JSON that breaks a rule (bounds, empty lists, unknown fields).
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The code used for a bare status produced outside the handlers
    /// (the router's 404 and 405, the body limit's 413, a panic's 500).
    pub fn code_for(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "invalid_json",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_client_error() => "bad_request",
            _ => "internal",
        }
    }
}

impl From<sift_core::Error> for ApiError {
    fn from(e: sift_core::Error) -> Self {
        match e {
            sift_core::Error::InvalidQuery(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", m)
            }
            sift_core::Error::InvalidSetting(m) => ApiError::invalid(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<sift_engine::Error> for ApiError {
    fn from(e: sift_engine::Error) -> Self {
        match e {
            sift_engine::Error::Core(core) => core.into(),
            e @ sift_engine::Error::RerankerUnavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reranker_unavailable",
                e.to_string(),
            ),
            sift_engine::Error::Rerank(sift_rerank::Error::Llm(e)) => llm_error(e),
            other => {
                tracing::error!("engine error: {other}");
                ApiError::internal(other.to_string())
            }
        }
    }
}

/// A language model's failure: its endpoint down or slow (502/504), the
/// query's budget spent (504), a prompt too long (422).
pub(crate) fn llm_error(e: sift_llm::Error) -> ApiError {
    use sift_llm::Error as E;
    let (status, code) = match &e {
        E::Http { .. } | E::BadResponse { .. } => (StatusCode::BAD_GATEWAY, "llm_failed"),
        E::BudgetExhausted => (StatusCode::GATEWAY_TIMEOUT, "llm_budget_exhausted"),
        E::PromptTooLong { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "prompt_too_long"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "llm_failed"),
    };
    ApiError::new(status, code, e.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.code != "reranker_unavailable" {
            tracing::warn!(status = %self.status, code = self.code, "{}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
