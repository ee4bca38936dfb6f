//! A JSON body extractor whose failures are JSON errors with the right status.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but:
/// * a missing or wrong `Content-Type` is tolerated (curl users forget it, and
///   the body is JSON or nothing);
/// * malformed JSON is 400 `invalid_json`; well-formed JSON of the wrong
///   shape (unknown or missing fields, wrong types) is 422 `invalid_request`
///   with the path of the offending field, e.g. `documents[0]: unknown field `txt``;
/// * a body over the limit is 413 `payload_too_large`.
pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(
                    "the request body is larger than the server's limit (--max-body-bytes)",
                )
            } else {
                ApiError::new(status, ApiError::code_for(status), rejection.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Deserialize JSON, classifying failures as [`ApiJson`] documents.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, inner),
            _ => syntax_error(inner),
        }
    })?;
    // Trailing garbage after the value is a syntax error too.
    de.end().map_err(syntax_error)?;
    Ok(value)
}

fn syntax_error(e: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!("the body is not valid JSON: {e}"),
    )
}

fn data_error(path: &str, e: impl std::fmt::Display) -> ApiError {
    if path == "." {
        ApiError::invalid(e.to_string())
    } else {
        ApiError::invalid(format!("{path}: {e}"))
    }
}

/// Deserialize an already-parsed value (for bodies that come in several
/// shapes), with the same 422 classification.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        data_error(&path, e.into_inner())
    })
}
