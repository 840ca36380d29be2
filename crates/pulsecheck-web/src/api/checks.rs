//! `/api/v1/checks`: the list (filtered, keyset-paginated), one check, and the changes:
//! create, replace, patch and delete checks created through the API (checks of the
//! config file stay owned by the file: 409), run now, silence.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulsecheck_config::{CheckConfig, FieldError, MonitorConfig};
use pulsecheck_core::state::State as CheckStateKind;
use pulsecheck_core::storage::console::{ApiCheck, CheckFilter, CheckPage, Silence};
use pulsecheck_core::storage::Origin;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, FieldProblem};
use super::extract::{self, ApiPath, ApiQuery, JsonBody};
use crate::auth::{MutationAccess, ReadAccess};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    group: Option<String>,
    state: Option<CheckStateKind>,
    origin: Option<Origin>,
    /// Checks removed from the config (their history stays).
    retired: Option<bool>,
    after: Option<String>,
    limit: Option<usize>,
}

/// A page of items and the cursor of the next one (`null` on the last page).
#[derive(Serialize)]
pub struct Page<T: Serialize, C: Serialize> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

pub async fn list(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<pulsecheck_core::storage::console::CheckSummary, String>>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let limit = extract::limit(params.limit)?;
    let page = CheckPage {
        filter: CheckFilter {
            group: params.group,
            state: params.state,
            origin: params.origin,
            include_retired: params.retired.unwrap_or(false),
        },
        after: params.after,
        limit,
    };
    let items = console.check_page(&page).await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|c| c.name.clone()))
        .flatten();
    Ok(Json(Page { items, next }))
}

/// One check: where it is defined, how it runs, its state, and (for API checks) the
/// definition as accepted.
#[derive(Serialize)]
struct CheckView {
    name: String,
    origin: Origin,
    /// The config file that owns it, or `api`.
    defined_in: String,
    /// Whether it runs now (false once removed; its history stays).
    running: bool,
    group: Option<String>,
    target: Option<String>,
    interval_seconds: Option<f64>,
    channels: Vec<String>,
    /// State and latest result from the store; `null` until the store has seen it.
    status: Option<pulsecheck_core::storage::console::CheckSummary>,
    /// The JSON accepted for an API check.
    definition: Option<Value>,
}

fn view(
    config: &MonitorConfig,
    name: &str,
    status: Option<pulsecheck_core::storage::console::CheckSummary>,
    definition: Option<Value>,
) -> CheckView {
    let check = config.check(name);
    let origin = check
        .map(|c| c.origin)
        .or(status.as_ref().map(|s| s.origin))
        .unwrap_or_default();
    CheckView {
        name: name.to_owned(),
        origin,
        defined_in: match origin {
            Origin::File => config.source.display().to_string(),
            Origin::Api => "api".to_owned(),
        },
        running: check.is_some(),
        group: check
            .and_then(|c| c.group.clone())
            .or(status.as_ref().and_then(|s| s.group.clone())),
        target: check
            .map(|c| c.target.input.clone())
            .or(status.as_ref().map(|s| s.target.clone())),
        interval_seconds: check.map(|c| c.interval.as_secs_f64()),
        channels: check.map(|c| c.channels.clone()).unwrap_or_default(),
        status,
        definition,
    }
}

async fn definition(app: &AppState, name: &str) -> Result<Option<ApiCheck>, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    Ok(console.api_checks().await?.into_iter().find(|c| c.name == name))
}

pub async fn get(
    State(app): State<AppState>,
    _access: ReadAccess,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let config = app.config();
    let status = console.check_summary(&name).await?;
    if status.is_none() && config.check(&name).is_none() {
        return Err(not_found(&name));
    }
    let is_api = config.check(&name).map(|c| c.origin) == Some(Origin::Api);
    let definition = if is_api {
        definition(&app, &name).await?.map(|c| c.definition)
    } else {
        None
    };
    let locations = console.location_views(&name).await?;
    let mut body = serde_json::to_value(view(&config, &name, status, definition))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    if !locations.is_empty() {
        body["locations"] = Value::Array(locations.iter().map(location_json).collect());
    }
    Ok(Json(body).into_response())
}

/// One location of a quorum check, as the API shows it.
fn location_json(l: &pulsecheck_core::storage::console::LocationView) -> Value {
    serde_json::json!({
        "location": l.location,
        "state": l.state.as_str(),
        "since": l.since.map(|t| t.to_string()),
        "last_result_at": l.last_result_at.map(|t| t.to_string()),
        "last_outcome": l.last_outcome.map(|o| o.as_str()),
        "last_reason": l.last_reason.map(|r| r.as_str()),
        "last_error": l.last_error,
        "disagrees": l.disagrees,
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "there is no check '{name}'; list checks with GET /api/v1/checks"
    ))
}

/// 409 for a check the config file defines.
fn file_owned(config: &MonitorConfig, name: &str) -> Result<(), ApiError> {
    match config.check(name) {
        Some(check) if check.origin == Origin::File => Err(ApiError::conflict(format!(
            "check '{name}' is defined in the config file {} and is owned by it; change it there and reload \
             (SIGHUP), or create a check with another name through the API",
            config.source.display()
        ))
        .field("name")),
        _ => Ok(()),
    }
}

/// The validator's problems as one 400 that names the first field and lists them all.
fn invalid(errors: Vec<FieldError>) -> ApiError {
    let first = errors.first().cloned();
    let unknown = errors.iter().any(|e| e.unknown_key);
    let message = match (&first, errors.len()) {
        (Some(first), 1) => first.to_string(),
        (Some(first), n) => format!("{first} (and {} more problems, listed in errors)", n - 1),
        (None, _) => "the check definition is not valid".to_owned(),
    };
    let mut error = ApiError::new(
        StatusCode::BAD_REQUEST,
        if unknown { "unknown_field" } else { "invalid" },
        message,
    );
    if let Some(field) = first.and_then(|f| f.field) {
        error = error.field(field);
    }
    error.with_errors(
        errors
            .into_iter()
            .map(|e| FieldProblem {
                field: e.field,
                message: e.message,
                hint: e.hint,
            })
            .collect(),
    )
}

fn name_of(definition: &Value) -> Result<String, ApiError> {
    match definition.get("name") {
        Some(Value::String(name)) => Ok(name.clone()),
        Some(_) => Err(ApiError::bad_request("name must be a string").field("name")),
        None if definition.is_object() => {
            Err(ApiError::bad_request("the check has no 'name'; every check needs a unique name").field("name"))
        }
        None => Err(ApiError::bad_request(
            "a check must be a JSON object with a name and a target",
        )),
    }
}

/// Validates, persists and starts an API check; the caller holds the write lock.
async fn put(app: &AppState, definition: Value, created_at: Option<jiff::Timestamp>) -> Result<CheckConfig, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let control = app.control().ok_or_else(ApiError::no_daemon)?;
    let config = app.config();
    let check = pulsecheck_config::validate_api_check(&config, &definition).map_err(invalid)?;
    let now = jiff::Timestamp::now();
    console
        .put_api_check(&ApiCheck {
            name: check.name.clone(),
            definition: definition.clone(),
            created_at: created_at.unwrap_or(now),
            updated_at: now,
        })
        .await?;
    control.put_check(check.clone(), definition).await?;
    Ok(check)
}

async fn created(app: &AppState, name: &str, status: StatusCode) -> Result<Response, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let summary = console.check_summary(name).await?;
    let definition = definition(app, name).await?.map(|c| c.definition);
    Ok((status, Json(view(&app.config(), name, summary, definition))).into_response())
}

pub async fn create(
    State(app): State<AppState>,
    _access: MutationAccess,
    JsonBody(definition): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let _one_at_a_time = app.inner.check_writes.lock().await;
    let name = name_of(&definition)?;
    let config = app.config();
    file_owned(&config, &name)?;
    if config.check(&name).is_some() {
        return Err(ApiError::conflict(format!(
            "a check named '{name}' already exists; change it with PUT /api/v1/checks/{name}, or pick another name"
        ))
        .field("name"));
    }
    put(&app, definition, None).await?;
    created(&app, &name, StatusCode::CREATED).await
}

/// The definition with the path's name (a body may leave it out, not contradict it).
fn named(mut definition: Value, name: &str) -> Result<Value, ApiError> {
    let Some(object) = definition.as_object_mut() else {
        return Err(ApiError::bad_request(
            "a check must be a JSON object with the same keys as a check in the config file",
        ));
    };
    match object.get("name") {
        None => {
            object.insert("name".into(), Value::String(name.to_owned()));
        }
        Some(Value::String(given)) if given == name => {}
        Some(_) => {
            return Err(ApiError::bad_request(format!(
            "the body's name differs from the URL's '{name}'; a check cannot be renamed: delete it and create it anew"
        ))
            .field("name"))
        }
    }
    Ok(definition)
}

pub async fn replace(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(name): ApiPath<String>,
    JsonBody(definition): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let _one_at_a_time = app.inner.check_writes.lock().await;
    file_owned(&app.config(), &name)?;
    let definition = named(definition, &name)?;
    let existing = definition_of(&app, &name).await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    put(&app, definition, existing.map(|c| c.created_at)).await?;
    created(&app, &name, status).await
}

async fn definition_of(app: &AppState, name: &str) -> Result<Option<ApiCheck>, ApiError> {
    if app.config().check(name).is_some_and(|c| c.origin == Origin::Api) {
        definition(app, name).await
    } else {
        Ok(None)
    }
}

/// `PATCH`: the given keys replace the stored ones; a `null` removes one.
pub async fn patch(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(name): ApiPath<String>,
    JsonBody(changes): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let _one_at_a_time = app.inner.check_writes.lock().await;
    file_owned(&app.config(), &name)?;
    let Some(existing) = definition_of(&app, &name).await? else {
        return Err(not_found(&name));
    };
    let Value::Object(changes) = named(changes, &name)? else {
        return Err(ApiError::bad_request("send a JSON object of the keys to change"));
    };
    let mut definition = existing.definition.clone();
    if let Some(object) = definition.as_object_mut() {
        for (key, value) in changes {
            if value.is_null() {
                object.remove(&key);
            } else {
                object.insert(key, value);
            }
        }
    }
    put(&app, definition, Some(existing.created_at)).await?;
    created(&app, &name, StatusCode::OK).await
}

pub async fn delete(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let _one_at_a_time = app.inner.check_writes.lock().await;
    let config = app.config();
    file_owned(&config, &name)?;
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let control = app.control().ok_or_else(ApiError::no_daemon)?;
    // An API check a reload stopped (it no longer validates) is in the store only.
    if config.check(&name).is_none() && definition(&app, &name).await?.is_none() {
        return Err(not_found(&name));
    }
    console.delete_api_check(&name).await?;
    control.delete_check(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn run(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let control = app.control().ok_or_else(ApiError::no_daemon)?;
    if app.config().check(&name).is_none() {
        return Err(not_found(&name));
    }
    let result = control.run_now(&name).await?;
    Ok(Json(serde_json::json!({ "check": name, "result": result })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// When the silence ends (RFC 3339)…
    until: Option<String>,
    /// …or for how long (`30m`, `2h`, `1d`).
    duration: Option<String>,
    reason: Option<String>,
}

pub async fn silence(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody<SilenceBody>,
) -> Result<Response, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let control = app.control().ok_or_else(ApiError::no_daemon)?;
    if app.config().check(&name).is_none() {
        return Err(not_found(&name));
    }
    let now = jiff::Timestamp::now();
    let until = match (&body.until, &body.duration) {
        (Some(until), None) => extract::timestamp("until", until)?,
        (None, Some(duration)) => {
            let span = duration.parse::<jiff::SignedDuration>().map_err(|e| {
                ApiError::bad_request(format!(
                    "duration {duration:?} is not a duration ({e}); write e.g. 30m, 2h or 1d"
                ))
                .field("duration")
            })?;
            now.checked_add(span).map_err(|e| {
                ApiError::bad_request(format!("duration {duration:?} is too long: {e}")).field("duration")
            })?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either until (RFC 3339) or duration (e.g. 2h), not both or neither",
            )
            .field("until"))
        }
    };
    if until <= now {
        return Err(ApiError::bad_request(
            "until is in the past; to lift a silence, DELETE /api/v1/checks/NAME/silence",
        )
        .field("until"));
    }
    if body.reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
        return Err(ApiError::bad_request("reason is longer than 1000 characters").field("reason"));
    }
    let silence = Silence {
        check: name.clone(),
        until,
        reason: body.reason,
    };
    console.set_silence(&silence).await?;
    control.silence(&name, Some(until)).await?;
    Ok(Json(silence).into_response())
}

pub async fn unsilence(
    State(app): State<AppState>,
    _access: MutationAccess,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let console = app.console().ok_or_else(ApiError::no_store)?;
    let control = app.control().ok_or_else(ApiError::no_daemon)?;
    if app.config().check(&name).is_none() {
        return Err(not_found(&name));
    }
    // An `until` in the past lifts it.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    console
        .set_silence(&Silence {
            check: name.clone(),
            until: past,
            reason: None,
        })
        .await?;
    control.silence(&name, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
