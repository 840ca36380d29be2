//! The REST API under `/api/v1`, JSON in and out, described by the OpenAPI document at
//! `/api/v1/openapi.json` (a test checks it against these routes). One module per
//! concern; every error has the shape of [`error::ApiError`].

pub mod checks;
pub mod cluster;
pub mod error;
pub mod extract;
pub mod history;
pub mod incidents;
pub mod outbox;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;
use error::ApiError;

/// The OpenAPI 3.1 document, written by hand next to this file.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The routes, to be nested under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/checks", get(checks::list).post(checks::create))
        .route(
            "/checks/{name}",
            get(checks::get)
                .put(checks::replace)
                .patch(checks::patch)
                .delete(checks::delete),
        )
        .route("/checks/{name}/results", get(history::results))
        .route("/checks/{name}/uptime", get(history::uptime))
        .route("/checks/{name}/latency", get(history::latency))
        .route("/checks/{name}/incidents", get(history::incidents))
        .route("/checks/{name}/run", post(checks::run))
        .route(
            "/checks/{name}/silence",
            post(checks::silence).delete(checks::unsilence),
        )
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::get))
        .route("/incidents/{id}/updates", post(incidents::add_update))
        .route("/incidents/{id}/acknowledge", post(incidents::acknowledge))
        .route("/outbox", get(outbox::list))
        .route("/outbox/{id}/redeliver", post(outbox::redeliver))
        .route("/cluster", get(cluster::get))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::Extension(crate::auth::ApiRequest))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API route; the routes are listed in /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /api/v1/openapi.json",
    )
}
