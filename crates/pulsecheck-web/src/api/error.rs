//! The API's one error shape, for every 4xx and 5xx:
//! `{"error": {"code": "conflict", "message": "what happened and what to do", "field": "name"}}`,
//! with `errors` listing every problem when a check definition has several.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulsecheck_core::storage::StorageError;
use serde::Serialize;

use crate::control::ControlError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    body: ErrorBody,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldProblem>,
}

/// One of several problems with a request body.
#[derive(Debug, Serialize)]
pub struct FieldProblem {
    pub field: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                field: None,
                errors: Vec::new(),
            },
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.body.field = Some(field.into());
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> ApiError {
        self.body.errors = errors;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// No store behind this listener (only in tests of /metrics alone).
    pub fn no_store() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this listener has no store; the API runs inside `pulsecheck serve`",
        )
    }

    /// No daemon behind this listener to run or change checks.
    pub fn no_daemon() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this listener cannot run or change checks; the API runs inside `pulsecheck serve`",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.body }))).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        if e.transient {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the store is busy ({}); retry in a moment", e.message),
            )
        } else {
            tracing::error!("API: store error: {}", e.message);
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the store failed: {}; see the daemon's log", e.message),
            )
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::NotRunning(name) => ApiError::not_found(format!(
                "check '{name}' is not running; list running checks with GET /api/v1/checks"
            )),
            ControlError::Stopping => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the daemon is shutting down; retry once it has restarted",
            ),
            ControlError::NotOwned { check, owner } => ApiError::conflict(match owner {
                Some(owner) => format!("check '{check}' is owned by node {owner}; ask that node"),
                None => format!("check '{check}' is owned by another node; ask that node"),
            }),
        }
    }
}
