//! Who may do what: a mutation always needs one of `server.tokens` (as
//! `Authorization: Bearer TOKEN`); a read (`/metrics`, `/probe`, status pages) needs one
//! only when `server.public_reads` is off.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AppState;

/// Proof that the request may read.
pub struct ReadAccess;

/// Proof that the request may change something (for the API's mutations).
pub struct MutationAccess;

/// Why a request was refused.
pub struct Refused(&'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{}\n", self.0),
        )
            .into_response()
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares in constant time with every token, so timing does not reveal a prefix.
fn token_matches(app: &AppState, parts: &Parts) -> bool {
    let Some(given) = bearer(parts) else { return false };
    let server = app.server();
    server.tokens.iter().fold(false, |found, token| {
        found | bool::from(token.as_bytes().ct_eq(given.as_bytes()))
    })
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        if app.server().public_reads || token_matches(app, parts) {
            Ok(ReadAccess)
        } else {
            Err(Refused(
                "reads need a token here: send Authorization: Bearer TOKEN (server.tokens)",
            ))
        }
    }
}

impl FromRequestParts<AppState> for MutationAccess {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        if token_matches(app, parts) {
            Ok(MutationAccess)
        } else {
            Err(Refused(
                "changes need a token: send Authorization: Bearer TOKEN (server.tokens)",
            ))
        }
    }
}
