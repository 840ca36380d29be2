//! Who may do what. Tokens come from `server.tokens`, each with the `read` and/or
//! `write` scope, and are compared in constant time.
//!
//! - A read (`/metrics`, `/probe`, the status page, `GET /api/v1/...`) needs a `read`
//!   token only when `server.public_reads` is off.
//! - A change (`POST`, `PUT`, `DELETE` under `/api/v1`) always needs a `write` token.
//!
//! The token is sent as `Authorization: Bearer TOKEN`. Browsers can instead open
//! `/login?token=TOKEN` once: it sets the `pulsecheck_token` cookie (HttpOnly,
//! SameSite=Strict) that reads accept. Changes never accept the cookie, so a page on
//! another site cannot make a logged-in browser change anything.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::AppState;

/// The cookie `/login` sets.
pub const COOKIE: &str = "pulsecheck_token";

/// Proof that the request may read.
pub struct ReadAccess;

/// Proof that the request may change something (a `write` token).
pub struct MutationAccess;

/// Why a request was refused; rendered as the API's JSON error under `/api/`, as text
/// elsewhere (Prometheus and browsers read those).
pub struct Refused {
    status: StatusCode,
    message: &'static str,
    json: bool,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        if self.json {
            let code = if self.status == StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "unauthorized"
            };
            let mut response = crate::api::error::ApiError::new(self.status, code, self.message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
        (
            self.status,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// What a given token may do: `(read, write)`, both false when it matches none. Every
/// token is compared, in constant time, so timing reveals neither a prefix nor which
/// token matched.
pub fn scopes(app: &AppState, given: &str) -> (bool, bool) {
    let server = app.server();
    server.tokens.iter().fold((false, false), |(read, write), token| {
        let matches = bool::from(token.secret.as_bytes().ct_eq(given.as_bytes()));
        (read | (matches & token.read), write | (matches & token.write))
    })
}

/// Marks requests routed to the API (nesting strips `/api/v1` from the URI).
#[derive(Clone, Copy)]
pub struct ApiRequest;

fn is_api(parts: &Parts) -> bool {
    parts.extensions.get::<ApiRequest>().is_some()
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        if app.server().public_reads {
            return Ok(ReadAccess);
        }
        let given = bearer(&parts.headers).or_else(|| cookie(&parts.headers));
        match given.map(|token| scopes(app, token)) {
            Some((true, _)) => Ok(ReadAccess),
            Some((false, true)) => Err(Refused {
                status: StatusCode::FORBIDDEN,
                message: "this token may not read: give it the read scope in server.tokens, or use another token",
                json: is_api(parts),
            }),
            _ => Err(Refused {
                status: StatusCode::UNAUTHORIZED,
                message: "reads need a token here: send Authorization: Bearer TOKEN (server.tokens), or open /login in a browser",
                json: is_api(parts),
            }),
        }
    }
}

impl FromRequestParts<AppState> for MutationAccess {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(&parts.headers).map(|token| scopes(app, token)) {
            Some((_, true)) => Ok(MutationAccess),
            Some((true, false)) => Err(Refused {
                status: StatusCode::FORBIDDEN,
                message: "this token may only read: changes need a token with the write scope (server.tokens)",
                json: is_api(parts),
            }),
            _ => Err(Refused {
                status: StatusCode::UNAUTHORIZED,
                message: "changes need a token with the write scope: send Authorization: Bearer TOKEN (server.tokens)",
                json: is_api(parts),
            }),
        }
    }
}

#[derive(Deserialize)]
pub struct LoginParams {
    token: Option<String>,
}

const LOGIN_FORM: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>pulsecheck: sign in</title></head>\
<body><main><h1>pulsecheck</h1><form method=\"get\" action=\"/login\">\
<label for=\"token\">Token (one of server.tokens with the read scope)</label> \
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required> \
<button type=\"submit\">Sign in</button></form>{error}</main></body></html>\n";

/// `GET /login`: a form; `GET /login?token=TOKEN`: with a token that may read, sets the
/// `pulsecheck_token` cookie and redirects to `/`.
pub async fn login(State(app): State<AppState>, Query(params): Query<LoginParams>) -> Response {
    let Some(token) = params.token.filter(|t| !t.is_empty()) else {
        return Html(LOGIN_FORM.replace("{error}", "")).into_response();
    };
    if !scopes(&app, &token).0 {
        let page = LOGIN_FORM.replace(
            "{error}",
            "<p role=\"alert\">That token is not one of server.tokens with the read scope.</p>",
        );
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    // Tokens are printable ASCII without ';' issues: the config refuses what a header
    // cannot carry, and a cookie value cannot hold ';' or spaces, so refuse those here.
    if token.contains([';', ' ', ',', '"', '\\']) {
        let page = LOGIN_FORM.replace(
            "{error}",
            "<p role=\"alert\">This token has characters a cookie cannot carry; send it as Authorization: Bearer instead.</p>",
        );
        return (StatusCode::BAD_REQUEST, Html(page)).into_response();
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
            ),
            (header::LOCATION, "/".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}
