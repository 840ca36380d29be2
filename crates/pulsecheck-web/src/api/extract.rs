//! Extractors that answer in the API's error shape: a JSON body (size-limited by the
//! router; bad JSON, wrong types and unknown fields are 400 with the field named),
//! query parameters and paging.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Items per page when `limit` is not given, and the most a page may hold.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// A JSON body as a `serde_json::Value` first (so syntax errors say where), then `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!(
                        "the request body is larger than {} KiB; send a smaller one",
                        MAX_BODY_BYTES / 1024
                    ),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {}", rejection.body_text()))
            }
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!(
                    "the body is not valid JSON (line {}, column {}): {e}; send a JSON object",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        from_value(value).map(JsonBody)
    }
}

/// `T` from a JSON value, with serde's message and the field at fault: the path of a
/// bad value, or the name of an unknown field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let unknown = message.starts_with("unknown field");
        // The path ends at the unknown field, or at the object missing one.
        let field = if message.starts_with("missing field") {
            backticked(&message).map(|name| if path == "." { name } else { format!("{path}.{name}") })
        } else {
            Some(path).filter(|p| p != ".")
        };
        let mut error = ApiError::new(
            StatusCode::BAD_REQUEST,
            if unknown { "unknown_field" } else { "invalid" },
            format!("{message}; fix the request body"),
        );
        if let Some(field) = field {
            error = error.field(field);
        }
        error
    })
}

/// The first `name` in backticks of a serde message (`unknown field `x``).
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Query parameters; a bad one is 400 in the API's shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let mut error = ApiError::bad_request(format!("{text}; fix the query string"));
                if let Some(field) = backticked(&text) {
                    error = error.field(field);
                }
                error
            })
    }
}

/// A path segment; a bad one is 400 in the API's shape.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection| ApiError::bad_request(format!("{}; fix the URL", rejection.body_text())))
    }
}

/// `limit` checked against [`MAX_LIMIT`].
pub fn limit(given: Option<usize>) -> Result<usize, ApiError> {
    match given {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => {
            Err(ApiError::bad_request(format!("limit {n} is out of range; use 1 to {MAX_LIMIT}")).field("limit"))
        }
    }
}

/// A timestamp parameter (RFC 3339).
pub fn timestamp(field: &str, text: &str) -> Result<jiff::Timestamp, ApiError> {
    text.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "{field} {text:?} is not a timestamp ({e}); write RFC 3339, e.g. 2026-03-01T12:00:00Z"
        ))
        .field(field)
    })
}
