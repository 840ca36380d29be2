//! minijinja templates for channels, the context they see, and the default texts.
//!
//! Every template is compiled when the channel is built and rendered against sample
//! events of every kind with undefined variables treated as errors, so a typo such as
//! `{{ chek }}` is a configuration error. At send time rendering is lenient, so a value
//! that happens to be missing for one event prints as empty instead of dead-lettering
//! the alert.

use std::fmt::Write as _;

use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use pulsecheck_core::outbox::{AlertEvent, AlertKind, CauseResult};
use pulsecheck_core::{Outcome, Reason};
use serde::Serialize;

/// What a template sees: every field of the [`AlertEvent`] at the top level
/// (`idempotency_key`, `kind`, `check`, `group`, `target`, `from`, `to`, `at`, `reason`,
/// `error`, `cause`), the whole event as `event` (for `{{ event|tojson }}`), the channel
/// name as `channel`, the default one-line `summary` ("api is DOWN — timeout: …") and
/// `detail` ("timeout: …", empty when there is no reason).
#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    fields: &'a AlertEvent,
    event: &'a AlertEvent,
    channel: &'a str,
    summary: String,
    detail: String,
}

fn context(event: &AlertEvent, channel: &str) -> Value {
    Value::from(Serde(Context {
        fields: event,
        event,
        channel,
        summary: summary(event),
        detail: detail(event),
    }))
}

fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    // Output goes into JSON, Slack mrkdwn or plain-text mail, never HTML; JSON templates
    // use `|tojson` for values that may contain quotes.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// Checks a channel template: it must compile, and render for sample events of every
/// kind without referring to a variable that does not exist. Returns a message that
/// names the problem (and the line, for syntax errors). Pure: no I/O.
pub fn check_template(source: &str) -> Result<(), String> {
    sample_renders(source).map(|_| ())
}

/// Like [`check_template`], and the rendering must also be valid JSON (a webhook body).
pub fn check_json_template(source: &str) -> Result<(), String> {
    for (kind, text) in sample_renders(source)? {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
            return Err(format!(
                "renders to invalid JSON for a {} event ({e}); use `|tojson` for values, e.g. {{\"check\": {{{{ check|tojson }}}}}}",
                kind.as_str()
            ));
        }
    }
    Ok(())
}

fn sample_renders(source: &str) -> Result<Vec<(AlertKind, String)>, String> {
    let env = environment(UndefinedBehavior::SemiStrict);
    let template = env.template_from_str(source).map_err(|e| describe(&e))?;
    sample_events()
        .iter()
        .map(|event| {
            template
                .render(context(event, "sample"))
                .map(|text| (event.kind, text))
                .map_err(|e| format!("{} (rendering a sample {} event)", describe(&e), event.kind.as_str()))
        })
        .collect()
}

fn describe(error: &minijinja::Error) -> String {
    // minijinja names an ad-hoc template "<string>"; say where in the template instead.
    let mut text = error.to_string().replace("(in <string>:", "(template line ");
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let _ = write!(text, ": {inner}");
        source = inner.source();
    }
    text
}

/// A channel's compiled templates, by name (`template`, `subject`, `body`).
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub(crate) fn new() -> Templates {
        Templates {
            env: environment(UndefinedBehavior::Lenient),
        }
    }

    /// Compiles `source` under `name` after [`check_template`] (or
    /// [`check_json_template`] when `json`) accepted it.
    pub(crate) fn add(&mut self, name: &'static str, source: &str, json: bool) -> Result<(), String> {
        if json {
            check_json_template(source)?;
        } else {
            check_template(source)?;
        }
        self.env
            .add_template_owned(name, source.to_owned())
            .map_err(|e| describe(&e))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    pub(crate) fn render(&self, name: &str, event: &AlertEvent, channel: &str) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|e| describe(&e))?;
        template.render(context(event, channel)).map_err(|e| describe(&e))
    }
}

/// "timeout: no verdict within 5s", "timeout", or "" when the event has no reason.
pub fn detail(event: &AlertEvent) -> String {
    match (event.reason, event.error.as_deref()) {
        (Some(reason), Some(error)) if !error.is_empty() => format!("{reason}: {error}"),
        (Some(reason), _) => reason.to_string(),
        (None, Some(error)) => error.to_owned(),
        (None, None) => String::new(),
    }
}

/// The default one-line plain-text summary: "api is DOWN — timeout: no verdict within 5s".
pub fn summary(event: &AlertEvent) -> String {
    let detail = detail(event);
    let suffix = if detail.is_empty() {
        String::new()
    } else {
        format!(" — {detail}")
    };
    match event.kind {
        AlertKind::Down => format!("{} is DOWN{suffix}", event.check),
        AlertKind::Reminder => format!("{} is still DOWN{suffix}", event.check),
        AlertKind::Resolved => format!("{} is UP again", event.check),
        AlertKind::Test => format!("test notification from pulsecheck for {}", event.check),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The default Slack message: ":red_circle: *api* is DOWN — timeout: no verdict within 5s".
pub fn slack_text(event: &AlertEvent) -> String {
    let check = slack_escape(&event.check);
    let detail = slack_escape(&detail(event));
    let suffix = if detail.is_empty() {
        String::new()
    } else {
        format!(" — {detail}")
    };
    match event.kind {
        AlertKind::Down => format!(":red_circle: *{check}* is DOWN{suffix}"),
        AlertKind::Reminder => format!(":red_circle: *{check}* is still DOWN{suffix}"),
        AlertKind::Resolved => format!(":large_green_circle: *{check}* is UP again"),
        AlertKind::Test => format!(":white_check_mark: pulsecheck test notification for *{check}*"),
    }
}

/// The default email subject: "[pulsecheck] api is DOWN — timeout: no verdict within 5s".
pub fn email_subject(event: &AlertEvent) -> String {
    format!("[pulsecheck] {}", summary(event))
}

/// The default plain-text email body.
pub fn email_body(event: &AlertEvent) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "{}\n", summary(event));
    let _ = writeln!(body, "Check:   {}", event.check);
    if let Some(group) = &event.group {
        let _ = writeln!(body, "Group:   {group}");
    }
    if !event.target.is_empty() {
        let _ = writeln!(body, "Target:  {}", event.target);
    }
    let _ = writeln!(body, "State:   {} -> {}", event.from, event.to);
    let _ = writeln!(body, "At:      {}", event.at);
    let detail = detail(event);
    if !detail.is_empty() {
        let _ = writeln!(body, "Reason:  {detail}");
    }
    if !event.cause.is_empty() {
        let _ = writeln!(body, "\nResults that caused this (oldest first):");
        for result in &event.cause {
            let _ = write!(body, "  {}  {:<9}", result.at, result.outcome.as_str());
            if let Some(reason) = result.reason {
                let _ = write!(body, " {reason}");
            }
            let _ = write!(body, "  {:.0} ms", result.duration_ms);
            if let Some(error) = &result.error {
                let _ = write!(body, "  {error}");
            }
            body.push('\n');
        }
    }
    let _ = writeln!(body, "\nIdempotency key: {}", event.idempotency_key);
    body.push_str("-- \npulsecheck\n");
    body
}

/// Events of every kind with every optional field filled, for checking templates.
fn sample_events() -> Vec<AlertEvent> {
    let at: jiff::Timestamp = "2026-01-01T03:00:00Z".parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let down = CauseResult {
        at,
        outcome: Outcome::Down,
        reason: Some(Reason::Timeout),
        error: Some("no verdict within 5s".into()),
        duration_ms: 5000.0,
    };
    let up = CauseResult {
        at,
        outcome: Outcome::Up,
        reason: None,
        error: None,
        duration_ms: 42.0,
    };
    let base = AlertEvent {
        idempotency_key: "api:1:sample".into(),
        kind: AlertKind::Down,
        check: "api".into(),
        group: Some("web".into()),
        target: "https://api.example.com/health".into(),
        from: "up".into(),
        to: "down".into(),
        at,
        reason: Some(Reason::Timeout),
        error: Some("no verdict within 5s".into()),
        cause: vec![down.clone(), down.clone()],
    };
    vec![
        base.clone(),
        AlertEvent {
            kind: AlertKind::Reminder,
            from: "down".into(),
            ..base.clone()
        },
        AlertEvent {
            kind: AlertKind::Resolved,
            from: "down".into(),
            to: "up".into(),
            reason: None,
            error: None,
            cause: vec![up.clone(), up],
            ..base.clone()
        },
        AlertEvent {
            kind: AlertKind::Test,
            from: "unknown".into(),
            to: "unknown".into(),
            reason: None,
            error: None,
            cause: Vec::new(),
            ..base
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_templates_pass() {
        assert_eq!(
            check_template("{{ check }} is {{ to }} ({{ idempotency_key }})"),
            Ok(())
        );
        assert_eq!(check_template("{% if reason %}{{ reason }}{% endif %}"), Ok(()));
        assert_eq!(check_template("{{ event.cause|length }} {{ summary }}"), Ok(()));
        assert_eq!(check_json_template("{{ event|tojson }}"), Ok(()));
        assert_eq!(
            check_json_template(r#"{"text": {{ summary|tojson }}, "key": {{ idempotency_key|tojson }}}"#),
            Ok(())
        );
    }

    #[test]
    fn bad_templates_are_reported() {
        let err = check_template("{{ check }").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        assert!(err.contains("(template line 1)"), "{err}");
        let err = check_template("{{ chek }}").unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let err = check_json_template("{\"check\": {{ check }}}").unwrap_err();
        assert!(err.contains("invalid JSON"), "{err}");
    }

    #[test]
    fn default_texts() {
        let events = sample_events();
        assert_eq!(summary(&events[0]), "api is DOWN — timeout: no verdict within 5s");
        assert_eq!(
            slack_text(&events[0]),
            ":red_circle: *api* is DOWN — timeout: no verdict within 5s"
        );
        assert_eq!(slack_text(&events[2]), ":large_green_circle: *api* is UP again");
        assert_eq!(
            email_subject(&events[1]),
            "[pulsecheck] api is still DOWN — timeout: no verdict within 5s"
        );
        let body = email_body(&events[0]);
        assert!(body.contains("Idempotency key: api:1:sample"), "{body}");
        assert!(body.contains("Target:  https://api.example.com/health"), "{body}");
    }

    #[test]
    fn slack_text_escapes_control_characters() {
        let mut event = sample_events().remove(0);
        event.check = "a<b>&c".into();
        assert!(slack_text(&event).contains("*a&lt;b&gt;&amp;c*"));
    }
}
