//! The config file: the examples parse and use every key, invalid configs report every
//! error at its exact place, and no input makes the loader panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use pulsecheck_config::{self as config, ConfigError, MonitorConfig, Recurrence};
use pulsecheck_core::channel::{ChannelKind, SmtpSecurity};
use pulsecheck_core::conditions::Condition;

fn example(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// No variables set: every `${NAME:-default}` takes its default.
fn no_env(_: &str) -> Option<String> {
    None
}

fn load_yaml(text: &str) -> Result<MonitorConfig, Vec<ConfigError>> {
    config::load_str(text, Path::new("test.yaml"), &no_env)
}

fn load_ok(text: &str) -> MonitorConfig {
    load_yaml(text).unwrap_or_else(|errors| panic!("{}", render(&errors)))
}

fn render(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

/// `line:column: message` of every error.
fn positions(errors: &[ConfigError]) -> Vec<String> {
    errors
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
        .collect()
}

fn only_error(text: &str) -> ConfigError {
    let errors = load_yaml(text).expect_err("should not load");
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    errors.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------
// The examples

#[test]
fn the_yaml_example_loads() {
    let (path, text) = example("pulsecheck.yaml");
    let config = config::load_str(&text, &path, &no_env).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(config.checks.len(), 8);
    assert_eq!(config.channels.len(), 4);
    assert_eq!(config.maintenance.len(), 2);

    let api = config.check("api-health").unwrap();
    assert_eq!(api.target.input, "http://127.0.0.1:8080/json");
    assert_eq!(api.group.as_deref(), Some("api"));
    assert_eq!(
        (api.interval, api.options.timeout),
        (Duration::from_secs(10), Duration::from_secs(2))
    );
    assert_eq!(api.options.conditions.len(), 5);
    assert_eq!(api.options.conditions[2].to_string(), "$.status == \"UP\"");
    assert!(
        api.options.needs_response(),
        "JSONPath and header conditions need the response"
    );
    assert!(
        matches!(api.options.conditions[0], Condition::Status(_)),
        "the status condition is the check's own, in the order written"
    );
    assert_eq!(api.channels, ["ops", "slack"]);
    assert_eq!(api.reminder, Some(Duration::from_secs(1800)));
    let auth = api.options.headers.iter().find(|(n, _)| n == "authorization").unwrap();
    assert_eq!(auth.1, "Bearer example-token");

    // Inherited from defaults.
    let redirects = config.check("redirects").unwrap();
    assert_eq!(redirects.group.as_deref(), Some("sim"));
    assert_eq!(redirects.interval, Duration::from_secs(30));
    assert_eq!(redirects.options.max_redirects, 3);
    assert_eq!(redirects.options.max_body_bytes, 1024 * 1024);
    assert_eq!(redirects.options.user_agent, "pulsecheck-example/1.0");
    assert_eq!(redirects.channels, ["ops"]);
    assert!(!redirects.options.needs_response());

    // A TCP check keeps only what applies to it from defaults.
    let db = config.check("db-port").unwrap();
    assert_eq!(db.options.headers, Vec::new());
    assert_eq!(
        *db.options.conditions,
        [Condition::LatencyUnder(Duration::from_secs(2))]
    );
    assert_eq!((db.thresholds.failure, db.thresholds.success), (3, 2));

    let mail = config.channel("mail").unwrap();
    match &mail.kind {
        ChannelKind::Email { smtp, to, .. } => {
            assert_eq!(
                (smtp.host.as_str(), smtp.port, smtp.security),
                ("127.0.0.1", 2525, SmtpSecurity::None)
            );
            assert_eq!(smtp.password.as_deref(), Some("example-password"));
            assert_eq!(to, &["ops@example.com"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(config.store.path.as_deref(), Some(Path::new("/tmp/pulsecheck.db")));
    assert_eq!(
        (
            config.store.raw_days,
            config.store.raw_up_hours,
            config.store.hourly_days
        ),
        (7, 48, 90)
    );
    assert_eq!(config.store.max_size, 2 * 1024 * 1024 * 1024);
    assert_eq!((config.limits.concurrency, config.limits.per_host), (1000, 100));
    assert_eq!(config.delivery.workers, 4);
    assert_eq!(config.delivery.backoff_max, Duration::from_secs(300));
    assert_eq!(config.maintenance[1].every, Some(Recurrence::Daily));

    let nightly = &config.maintenance[1];
    let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
    assert!(nightly.covers(&db.name, db.group.as_deref(), at("2026-03-04T02:10:00Z")));
    assert!(!nightly.covers(&db.name, db.group.as_deref(), at("2026-03-04T02:30:00Z")));
    assert!(!nightly.covers(&api.name, api.group.as_deref(), at("2026-03-04T02:10:00Z")));
    assert_eq!(
        config.maintenance_for(db, at("2026-03-04T02:10:00Z")).unwrap().name,
        "nightly-backup"
    );
}

#[test]
fn the_example_takes_its_addresses_from_the_environment() {
    let (path, text) = example("pulsecheck.yaml");
    let env = |name: &str| match name {
        "SIM" => Some("127.0.0.1:41234".to_owned()),
        "HOOK_URL" => Some("http://127.0.0.1:45678/hook".to_owned()),
        "SMTP_PORT" => Some("1025".to_owned()),
        _ => None,
    };
    let config = config::load_str(&text, &path, &env).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(config.check("home").unwrap().target.input, "http://127.0.0.1:41234/ok");
    match &config.channel("ops").unwrap().kind {
        ChannelKind::Webhook { url, .. } => assert_eq!(url, "http://127.0.0.1:45678/hook"),
        other => panic!("{other:?}"),
    }
    match &config.channel("mail").unwrap().kind {
        ChannelKind::Email { smtp, .. } => assert_eq!(smtp.port, 1025),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_toml_example_is_the_yaml_example() {
    let (yaml_path, yaml) = example("pulsecheck.yaml");
    let (toml_path, toml) = example("pulsecheck.toml");
    let yaml = config::load_str(&yaml, &yaml_path, &no_env).unwrap_or_else(|e| panic!("{}", render(&e)));
    let toml = config::load_str(&toml, &toml_path, &no_env).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(yaml.checks, toml.checks);
    assert_eq!(yaml.channels, toml.channels);
    assert_eq!(yaml.store, toml.store);
    assert_eq!(yaml.maintenance, toml.maintenance);
    assert_eq!(yaml.delivery, toml.delivery);
    assert_eq!(yaml.server, toml.server);
    assert_eq!(yaml.modules, toml.modules);
    assert_eq!(
        (yaml.limits.concurrency, yaml.limits.per_host),
        (toml.limits.concurrency, toml.limits.per_host)
    );
}

/// Fails when a key is added to the schema (a field of a raw serde struct) and not to
/// the examples, or when a struct is added without listing it in the schema.
#[test]
fn the_examples_use_every_key_of_the_schema() {
    for name in ["pulsecheck.yaml", "pulsecheck.toml"] {
        let (path, text) = example(name);
        let sections = config::schema_coverage(&text, &path, &no_env).unwrap_or_else(|e| panic!("{}", render(&e)));
        assert!(sections.len() >= 11, "{sections:?}");
        // The cluster keys cannot share a file with an SQLite store: the cluster example
        // uses them.
        let (cluster_path, cluster_text) = example("pulsecheck-cluster.yaml");
        let cluster =
            config::schema_coverage(&cluster_text, &cluster_path, &no_env).unwrap_or_else(|e| panic!("{}", render(&e)));
        let mut missing = Vec::new();
        for section in &sections {
            assert!(!section.keys.is_empty(), "{}: no keys", section.section);
            let in_cluster = cluster.iter().find(|s| s.section == section.section);
            for key in section.unused() {
                if in_cluster.is_none_or(|c| c.unused().contains(&key)) {
                    missing.push(format!("{}: {key}", section.section));
                }
            }
        }
        assert!(missing.is_empty(), "{name} does not use: {missing:#?}");
        let unlisted: Vec<_> = sections.iter().filter(|s| s.section.starts_with("Raw")).collect();
        assert!(unlisted.is_empty(), "structs missing from raw::SCHEMA: {unlisted:?}");
    }
}

#[test]
fn the_coverage_check_notices_a_key_the_example_does_not_use() {
    let (path, text) = example("pulsecheck.yaml");
    let without = text.replace("  user_agent: pulsecheck-example/1.0\n", "");
    assert_ne!(without, text);
    let sections = config::schema_coverage(&without, &path, &no_env).unwrap();
    // Minus the keys only the cluster example can use.
    let unused: Vec<_> = sections
        .iter()
        .filter(|s| s.section != "cluster" && s.section != "checks[].quorum")
        .flat_map(|s| s.unused())
        .filter(|key| !["cluster", "url", "quorum"].contains(key))
        .collect();
    assert_eq!(unused, ["user_agent"]);
}

// ---------------------------------------------------------------------------------------
// Errors, all at once, each at its place

const MANY_MISTAKES: &str = "\
defaults:
  intervall: 30s
checks:
  - name: api
    target: http://127.0.0.1:8080/json
    interval: 2s
    timeout: 5s
    channels: [slak]
  - name: db
    target: tcp://db
    interval: fast
  - name: api
    target: http://127.0.0.1:8080/ok
    conditions:
      - json_path: \"$.status\"
      - status: 200
        body_contains: ok
channels:
  slack:
    type: slack
    webhook_url: ${SLACK_URL}
  ops:
    type: webhook
    url: not a url
";

#[test]
fn every_mistake_is_reported_at_once_with_its_place() {
    let errors = load_yaml(MANY_MISTAKES).expect_err("invalid");
    assert_eq!(
        positions(&errors),
        [
            "2:3: unknown key 'intervall'",
            "7:14: timeout (5.0s) must be shorter than the interval (2.0s)",
            "8:16: channel 'slak' is not defined",
            "10:13: invalid target: 'tcp://db' has no port; write tcp://db:PORT",
            "11:15: 'fast' is not a duration; write e.g. 5s, 250ms, 1.5s or 2m",
            "12:11: duplicate check name 'api'",
            "15:20: json_path needs 'equals' or 'exists'",
            "17:24: one condition per list item: 'body_contains' is a second condition here",
            "21:18: environment variable 'SLACK_URL' is not set",
            "24:10: 'not a url' is not a valid URL: relative URL without a base",
        ],
        "{}",
        render(&errors)
    );
    let hint = |line: usize| {
        errors
            .iter()
            .find(|e| e.line == line)
            .and_then(|e| e.hint.clone())
            .unwrap_or_default()
    };
    assert_eq!(hint(2), "did you mean 'interval'?");
    assert_eq!(hint(8), "did you mean 'slack'? defined channels: slack, ops");
    assert_eq!(
        hint(12),
        "first defined at line 4, column 11; names identify checks across reloads and must be unique"
    );
    assert_eq!(hint(21), "set SLACK_URL, or give a default: ${SLACK_URL:-VALUE}");
    assert!(hint(7).contains("lower 'timeout' or raise 'interval'"));
    assert_eq!(
        errors[0].to_string(),
        "test.yaml:2:3: unknown key 'intervall'\n  hint: did you mean 'interval'?"
    );
}

#[test]
fn toml_errors_have_places_too() {
    let text = "\
[defaults]
timeuot = \"1s\"

[[checks]]
name = \"a\"
target = \"tcp://127.0.0.1:1\"
channels = [\"nope\"]
";
    let errors = config::load_str(text, Path::new("c.toml"), &no_env).expect_err("invalid");
    assert_eq!(
        positions(&errors),
        ["2:1: unknown key 'timeuot'", "7:13: channel 'nope' is not defined"]
    );
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean 'timeout'?"));
    assert_eq!(
        errors[1].hint.as_deref(),
        Some("no channels are defined; define them under 'channels:'")
    );

    let syntax = config::load_str("[checks\n", Path::new("c.toml"), &no_env).expect_err("invalid");
    assert_eq!((syntax.len(), syntax[0].line), (1, 1));
    assert!(syntax[0].message.starts_with("invalid TOML"), "{}", syntax[0]);
}

#[test]
fn unknown_keys_suggest_the_right_one_or_list_them() {
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    timeuot: 1s\n");
    assert_eq!((e.line, e.column, e.message.as_str()), (4, 5, "unknown key 'timeuot'"));
    assert_eq!(e.hint.as_deref(), Some("did you mean 'timeout'?"));

    let e = only_error("colour: blue\n");
    assert_eq!(e.message, "unknown key 'colour'");
    assert_eq!(
        e.hint.as_deref(),
        Some("valid keys here: defaults, checks, channels, store, limits, maintenance, delivery, server, modules, cluster")
    );

    let e = only_error("delivery:\n  workers: 2\n  backof_max: 1m\n");
    assert_eq!((e.line, e.hint.as_deref()), (3, Some("did you mean 'backoff_max'?")));

    let e = only_error("channels:\n  a:\n    type: slak\n    webhook_url: http://x/\n");
    assert_eq!((e.line, e.column, e.message.as_str()), (3, 11, "unknown value 'slak'"));
    assert_eq!(e.hint.as_deref(), Some("did you mean 'slack'?"));
}

#[test]
fn a_misspelt_key_is_one_error_not_two() {
    let e = only_error("checks:\n  - nmae: a\n    target: tcp://127.0.0.1:1\n");
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 5, "unknown key 'nmae'"));
    let text = "checks:\n  - name: a\n    target: http://127.0.0.1:1/\n    conditions:\n      - statuss: 200\n";
    let e = only_error(text);
    assert_eq!(
        (e.line, e.column, e.hint.as_deref()),
        (5, 9, Some("did you mean 'status'?"))
    );
    let e = only_error("channels:\n  a:\n    tpye: slack\n    webhook_url: http://x/\n");
    assert_eq!((e.line, e.message.as_str()), (3, "unknown key 'tpye'"));
}

#[test]
fn a_missing_channel_names_the_defined_ones() {
    let e = only_error(
        "checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    channels: [ops, pager]\nchannels:\n  ops: {type: webhook, url: 'http://127.0.0.1:9/'}\n",
    );
    assert_eq!((e.line, e.column), (4, 21));
    assert_eq!(e.message, "channel 'pager' is not defined");
    assert_eq!(e.hint.as_deref(), Some("defined channels: ops"));
}

#[test]
fn the_timeout_must_be_shorter_than_the_interval() {
    // Set on the check: the error points at the check's timeout.
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    interval: 5s\n    timeout: 5s\n");
    assert_eq!((e.line, e.column), (5, 14));
    // Timeout from defaults, interval on the check: it points at the interval.
    let e = only_error(
        "defaults:\n  timeout: 10s\nchecks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    interval: 3s\n",
    );
    assert_eq!((e.line, e.column), (6, 15));
    assert_eq!(e.message, "timeout (10.0s) must be shorter than the interval (3.0s)");
    // The default timeout (5s) against a short interval.
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    interval: 2s\n");
    assert_eq!((e.line, e.column), (4, 15));
    let e =
        only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    interval: 500ms\n    timeout: 100ms\n");
    assert_eq!(e.message, "interval 500ms is too short");
}

#[test]
fn a_bad_target_is_an_error_at_the_target() {
    let e = only_error("checks:\n  - name: a\n    target: ftp://example.com\n");
    assert_eq!((e.line, e.column), (3, 13));
    assert!(e.message.starts_with("invalid target: unknown scheme 'ftp'"), "{e}");
    assert!(e.hint.unwrap().contains("tcp://HOST:PORT"));
    let e = only_error("checks:\n  - name: a\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (2, 11, "check 'a' has no 'target'")
    );
    let e = only_error("checks:\n  - target: tcp://127.0.0.1:1\n");
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 5, "check #1 has no 'name'"));
}

#[test]
fn bad_durations_and_types() {
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    interval: 5 parsecs\n");
    assert_eq!((e.line, e.column), (4, 15));
    assert_eq!(e.message, "unknown unit 'parsecs' in '5 parsecs'; use ms, s, m, h or d");
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    failure_threshold: two\n");
    assert_eq!((e.line, e.column), (4, 24));
    assert_eq!(e.message, "expected a whole number, found the string \"two\"");
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    success_threshold: -1\n");
    assert_eq!(e.message, "expected a whole number from 0 to 4294967295, found -1");
    let e = only_error("checks:\n  - name: 5\n    target: tcp://127.0.0.1:1\n");
    assert_eq!(e.hint.as_deref(), Some("put the value in quotes to make it a string"));
    let e = only_error("checks: {name: a}\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (1, 9, "expected a list, found a mapping")
    );
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    failure_threshold: 0\n");
    assert_eq!(e.message, "threshold 0 is out of range");
}

#[test]
fn unset_environment_variables_are_errors_at_their_place() {
    let text = "checks:\n  - name: a\n    target: \"http://${HOST}:${PORT:-80}/x\"\n    headers:\n      Authorization: Bearer ${TOKEN}\n";
    let errors = load_yaml(text).expect_err("unset");
    assert_eq!(
        positions(&errors),
        [
            "3:21: environment variable 'HOST' is not set",
            "5:29: environment variable 'TOKEN' is not set",
        ]
    );
    let env = |name: &str| (name != "PORT").then(|| "h".to_owned());
    let config = config::load_str(text, Path::new("a.yml"), &env).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(config.checks[0].target.input, "http://h:80/x");
    // A value from the environment is one string, whatever it contains.
    let env = |_: &str| Some("x\nchecks: []".to_owned());
    let text = "defaults:\n  group: ${G}\nchecks:\n  - {name: a, target: 'tcp://127.0.0.1:1'}\n";
    let e = config::load_str(text, Path::new("a.yaml"), &env).expect_err("control characters");
    assert_eq!((e.len(), e[0].line), (1, 2));
    assert!(e[0].message.contains("control characters"), "{}", e[0]);
}

#[test]
fn conditions_are_validated_against_the_target() {
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    conditions:\n      - status: 200\n");
    assert_eq!((e.line, e.column), (5, 9));
    assert_eq!(e.message, "condition `status == 200` cannot apply to this check");
    let e = only_error(
        "checks:\n  - name: a\n    target: http://x/\n    conditions:\n      - cert_expires_in_more_than: 3d\n",
    );
    assert!(e.hint.unwrap().contains("https:// or tls://"));
    let e = only_error("checks:\n  - name: a\n    target: http://x/\n    conditions:\n      - body_regex: '('\n");
    assert_eq!((e.line, e.column), (5, 21));
    assert!(e.message.contains("not a valid regular expression"), "{e}");
    let e = only_error(
        "checks:\n  - name: a\n    target: http://x/\n    conditions:\n      - json_path: '$['\n        exists: true\n",
    );
    assert!(e.message.contains("not a valid JSONPath"), "{e}");
    let e = only_error("checks:\n  - name: a\n    target: http://x/\n    conditions:\n      - status: 700\n");
    assert_eq!(e.message, "'700' is not an HTTP status code (100-599)");
    // The probe no longer judges the rcode, so any rcode can be expected.
    let config = load_ok("checks:\n  - name: a\n    target: dns://x\n    conditions:\n      - dns_rcode: NXDOMAIN\n");
    assert_eq!(
        config.checks[0].options.conditions[0].to_string(),
        "dns rcode == NXDOMAIN"
    );
    let e = only_error("checks:\n  - name: a\n    target: dns://x\n    conditions:\n      - dns_rcode: NOPE\n");
    assert!(e.message.contains("NXDOMAIN"), "{e}");
    let e = only_error("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    method: POST\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (4, "'method' applies to HTTP checks only")
    );
}

#[test]
fn channels_are_validated_by_type() {
    let text = "\
channels:
  hook:
    type: webhook
    webhook_url: http://x/
  mail:
    type: email
    smtp: {host: mail, username: u}
    from: nobody
    to: []
  bad name:
    type: slack
    webhook_url: ftp://x/
";
    let errors = load_yaml(text).expect_err("invalid");
    assert_eq!(
        positions(&errors),
        [
            "2:3: channel 'hook' has no 'url'",
            "4:18: 'webhook_url' does not apply to a webhook channel",
            "7:34: give both 'username' and 'password', or neither",
            "8:11: 'nobody' is not an email address",
            "9:9: 'to' is empty",
            "10:3: channel name \"bad name\" is not allowed",
            "12:18: 'ftp://x/' is not an http:// or https:// URL (scheme 'ftp')",
        ],
        "{}",
        render(&errors)
    );
    assert!(errors[1].hint.as_deref().unwrap().starts_with("did you mean 'url'?"));

    let config = load_ok("channels:\n  m:\n    type: email\n    smtp: smtps://me%40x:p%40ss@mail.example.com\n    from: a@b.c\n    to: [c@d.e]\n");
    match &config.channels[0].kind {
        ChannelKind::Email { smtp, .. } => {
            assert_eq!((smtp.port, smtp.security), (465, SmtpSecurity::Tls));
            assert_eq!(
                (smtp.username.as_deref(), smtp.password.as_deref()),
                (Some("me@x"), Some("p@ss"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn maintenance_windows_are_validated() {
    let text = "\
checks:
  - {name: a, target: 'tcp://127.0.0.1:1', group: g}
maintenance:
  - name: w
    start: tomorrow
    end: 2030-01-01T00:00:00Z
  - name: w2
    start: 2030-01-01T00:00:00Z
    duration: 2d
    every: daily
    checks: [b]
    groups: [gg]
";
    let errors = load_yaml(text).expect_err("invalid");
    assert_eq!(
        positions(&errors),
        [
            format!("5:12: {}", errors[0].message),
            "10:12: the window is as long as its period, so it never ends".into(),
            "11:14: check 'b' is not defined".into(),
            "12:14: group 'gg' is not defined".into(),
        ],
        "{}",
        render(&errors)
    );
    assert!(
        errors[0].message.starts_with("start 'tomorrow' is not a timestamp: "),
        "{}",
        errors[0]
    );
    assert_eq!(errors[2].hint.as_deref(), Some("defined checks: a"));
    assert_eq!(errors[3].hint.as_deref(), Some("did you mean 'g'? defined groups: g"));
}

#[test]
fn defaults_apply_and_checks_override() {
    let config = load_ok(
        "defaults:\n  interval: 20s\n  failure_threshold: 4\n  reminder: 1m\nchecks:\n  - {name: a, target: 'tcp://127.0.0.1:1'}\n  - {name: b, target: 'tcp://127.0.0.1:2', interval: 1m, reminder: 0s}\n",
    );
    let (a, b) = (&config.checks[0], &config.checks[1]);
    assert_eq!(
        (a.interval, a.thresholds.failure, a.reminder),
        (Duration::from_secs(20), 4, Some(Duration::from_secs(60)))
    );
    assert_eq!((b.interval, b.reminder), (Duration::from_secs(60), None));
    assert_eq!(a.options.timeout, Duration::from_secs(5));

    // Mistakes in defaults are found even when no check uses them, and reported once
    // however many checks do.
    let errors = load_yaml("defaults:\n  interval: 10s\n  reminder: 1s\n  conditions: [{json_path: '$.a'}]\n")
        .expect_err("invalid defaults");
    assert_eq!(
        positions(&errors),
        [
            "3:13: reminder (1.0s) is shorter than the interval (10.0s)",
            "4:28: json_path needs 'equals' or 'exists'"
        ]
    );
    let errors = load_yaml(
        "defaults:\n  timeout: 90s\nchecks:\n  - {name: a, target: 'tcp://127.0.0.1:1'}\n  - {name: b, target: 'tcp://127.0.0.1:2'}\n",
    )
    .expect_err("timeout");
    assert_eq!(
        positions(&errors),
        ["2:12: timeout (90.0s) must be shorter than the interval (60.0s)"]
    );
    let e = only_error("defaults:\n  name: x\n");
    assert_eq!((e.line, e.message.as_str()), (2, "'name' cannot be set in defaults"));
}

#[test]
fn empty_and_minimal_files() {
    let config = load_ok("");
    assert!(config.checks.is_empty());
    assert_eq!(config.store, Default::default());
    assert_eq!(config.delivery.workers, 4);
    assert_eq!(config.limits.concurrency, pulsecheck_core::options::DEFAULT_CONCURRENCY);
    let config = load_ok("checks:\n  - name: a\n    target: example.com/health\n");
    let a = &config.checks[0];
    assert_eq!(a.target.input, "example.com/health");
    assert_eq!(
        (a.interval, a.thresholds.failure, a.thresholds.success),
        (Duration::from_secs(60), 2, 1)
    );
    assert!(
        a.options.conditions.is_empty(),
        "no conditions: the HTTP default (2xx) judges"
    );
    let e = only_error("- a\n- b\n");
    assert_eq!(e.message, "the file must be a mapping of sections, found a list");
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let config = load_ok(
        "defaults: &http\n  interval: 15s\n  conditions: [{status: 200}]\nchecks:\n  - <<: *http\n    name: a\n    target: http://127.0.0.1:1/\n  - <<: *http\n    name: b\n    target: tcp://127.0.0.1:2\n    conditions: []\n",
    );
    assert_eq!(config.checks.len(), 2);
    assert!(config.checks.iter().all(|c| c.interval == Duration::from_secs(15)));
    assert_eq!(
        (
            config.checks[0].options.conditions.len(),
            config.checks[1].options.conditions.len()
        ),
        (1, 0)
    );
}

#[test]
fn relative_store_paths_are_relative_to_the_file() {
    let config = config::load_str(
        "store:\n  path: data/p.db\n",
        Path::new("/etc/pulsecheck/p.yaml"),
        &no_env,
    )
    .unwrap();
    assert_eq!(
        config.store.path.as_deref(),
        Some(Path::new("/etc/pulsecheck/data/p.db"))
    );
}

#[test]
fn load_reads_files_and_checks_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yml");
    std::fs::write(&path, "checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n").unwrap();
    let config = config::load(&path).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(config.source, path);

    let json = dir.path().join("p.json");
    std::fs::write(&json, "{}").unwrap();
    let e = config::load(&json).unwrap_err();
    assert_eq!(
        (e[0].line, e[0].message.as_str()),
        (0, "unsupported config file extension '.json'")
    );

    let missing = config::load(&dir.path().join("missing.yaml")).unwrap_err();
    assert!(
        missing[0].message.starts_with("cannot read the config file"),
        "{}",
        missing[0]
    );
    assert!(missing[0]
        .to_string()
        .starts_with(&format!("{}: cannot read", dir.path().join("missing.yaml").display())));
}

// ---------------------------------------------------------------------------------------
// Never a panic

fn mutate(text: &str, edits: &[(usize, u8, String)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (position, op, insert) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = position % bytes.len();
        match op % 4 {
            0 => {
                bytes.remove(at);
            }
            1 => {
                bytes.splice(at..at, insert.bytes());
            }
            2 => {
                // Swap two lines' worth of text: shuffles indentation and structure.
                let end = (at + insert.len() * 7).min(bytes.len());
                bytes[at..end].reverse();
            }
            _ => {
                let end = (at + insert.len()).min(bytes.len());
                bytes.splice(at..end, insert.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(": ".to_owned()),
        Just("\n  - ".to_owned()),
        Just("${".to_owned()),
        Just("${X:-".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("{".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("<<: ".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("\t".to_owned()),
        Just(" ".to_owned()),
        Just("é".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("~".to_owned()),
        Just("]]\n[[checks]]\n".to_owned()),
        Just("= ".to_owned()),
        "[a-z_]{1,12}",
        "\\PC{0,8}",
    ]
}

fn env_for_fuzz(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| format!("v{name}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}", toml in any::<bool>()) {
        let path = if toml { "fuzz.toml" } else { "fuzz.yaml" };
        let _ = config::load_str(&text, Path::new(path), &env_for_fuzz);
    }

    #[test]
    fn mutated_yaml_example_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>(), fragment()), 1..6)) {
        let (_, text) = example("pulsecheck.yaml");
        let mutated = mutate(&text, &edits);
        if let Err(errors) = config::load_str(&mutated, Path::new("fuzz.yaml"), &env_for_fuzz) {
            // Every error is located inside the text, or is about the file as a whole.
            let lines = mutated.lines().count() + 1;
            for e in &errors {
                prop_assert!(e.line <= lines, "{e} (the text has {lines} lines)");
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn mutated_toml_example_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>(), fragment()), 1..6)) {
        let (_, text) = example("pulsecheck.toml");
        let _ = config::load_str(&mutate(&text, &edits), Path::new("fuzz.toml"), &env_for_fuzz);
    }
}

#[test]
fn hostile_inputs_are_refused_without_a_panic() {
    let deep_yaml = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(load_yaml(&deep_yaml).is_err());
    let deep_toml = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(config::load_str(&deep_toml, Path::new("d.toml"), &no_env).is_err());
    let dotted = format!("{} = 1", vec!["a"; 5_000].join("."));
    assert!(config::load_str(&dotted, Path::new("d.toml"), &no_env).is_err());
    // Alias expansion ("billion laughs") is bounded by the YAML parser's budget.
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        laughs.push_str(&format!(
            "{}: &{} [{}]\n",
            (b'b' + i) as char,
            (b'b' + i) as char,
            vec![format!("*{}", (b'a' + i) as char); 10].join(", ")
        ));
    }
    let _ = load_yaml(&laughs);
}

#[test]
fn store_budget_and_up_window_are_checked() {
    const CHECK: &str = "checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n";
    let config = load_ok(&format!(
        "{CHECK}store:\n  max_size: 0\n  retention:\n    raw_days: 1\n"
    ));
    assert_eq!((config.store.max_size, config.store.raw_up_hours), (0, 24));
    let config = load_ok(&format!(
        "{CHECK}store:\n  max_size: 500MB\n  retention:\n    raw_up_hours: 6\n"
    ));
    assert_eq!((config.store.max_size, config.store.raw_up_hours), (500_000_000, 6));
    let e = only_error(&format!("{CHECK}store:\n  max_size: 1MiB\n"));
    assert_eq!((e.line, e.message.as_str()), (5, "max_size 1048576 bytes is too small"));
    let e = only_error(&format!(
        "{CHECK}store:\n  retention:\n    raw_days: 1\n    raw_up_hours: 25\n"
    ));
    assert_eq!((e.line, e.message.as_str()), (7, "raw_up_hours 25 is out of range"));
}

// ---------------------------------------------------------------------------------------
// server and modules

#[test]
fn server_defaults_to_loopback_and_public_reads() {
    assert!(load_ok("checks: []\n").server.is_none(), "no section, no listener");
    let config = load_ok("server: {}\n");
    let server = config.server.expect("a listener");
    assert_eq!(server.listen.to_string(), config::DEFAULT_LISTEN);
    assert!(server.listen.ip().is_loopback());
    assert!(server.public_reads);
    assert!(server.tokens.is_empty());
    assert!(server.allow.is_empty(), "/probe reaches nothing unless listed");
    let names: Vec<_> = config.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["http_2xx", "tcp_connect", "icmp", "dns"]);
}

#[test]
fn server_errors_point_at_the_value() {
    let errors =
        load_yaml("server:\n  listen: localhost\n  tokens: [short]\n  allow: [\"*.example.com\", \"10.0.0.0/33\"]\n")
            .unwrap_err();
    assert_eq!(
        positions(&errors),
        [
            "2:11: listen \"localhost\" is not an address and port",
            "3:12: a token must be at least 16 printable characters without spaces at the ends",
            "4:28: '10.0.0.0/33' is not a valid allow-list entry; write a host name (api.example.com), a wildcard domain (*.example.com), an address (10.0.0.5, [::1]) or a network (10.0.0.0/8), each optionally with :PORT",
        ],
        "{}",
        render(&errors)
    );
    assert!(errors[0].hint.as_deref().unwrap().contains("127.0.0.1:9417"));
    let error = only_error("server:\n  public_reads: false\n");
    assert_eq!(
        error.message,
        "public_reads is off but no token has the read scope, so nothing could be read"
    );
    assert_eq!((error.line, error.column), (2, 17));
}

#[test]
fn modules_take_a_checks_options_and_conditions() {
    let config = load_ok(
        "modules:\n  api:\n    prober: http\n    timeout: 2s\n    conditions:\n      - status: 204\n  http_2xx:\n    prober: http\n    method: HEAD\n  ns:\n    prober: dns\n    query_name: ok.pulsecheck.test\n    query_type: aaaa\n",
    );
    let api = config.module("api").unwrap();
    assert_eq!(api.options.timeout, std::time::Duration::from_secs(2));
    assert!(api.timeout_set);
    assert_eq!(api.options.conditions.len(), 1);
    assert_eq!(
        config.module("http_2xx").unwrap().options.method,
        http::Method::HEAD,
        "a built-in can be replaced"
    );
    assert_eq!(
        config.module("ns").unwrap().query_name.as_deref(),
        Some("ok.pulsecheck.test")
    );
    let errors = load_yaml(
        "modules:\n  a:\n    timeout: 1s\n  b:\n    prober: tcp\n    method: GET\n  c:\n    prober: dns\n    conditions:\n      - body_contains: x\n  d:\n    prober: smtp\n",
    )
    .unwrap_err();
    let found = positions(&errors);
    assert_eq!(found[0], "3:5: module 'a' has no 'prober'", "{}", render(&errors));
    assert_eq!(found[1], "6:13: 'method' applies to http modules only");
    assert!(found[2].starts_with("10:9: condition `"), "{found:?}");
    assert_eq!(found[3], "12:13: unknown value 'smtp'", "{found:?}");
    assert_eq!(found.len(), 4, "an invalid prober is not also a missing one: {found:?}");
}

// ---------------------------------------------------------------------------------------
// Token scopes and checks created through the API

#[test]
fn tokens_are_plain_for_read_and_write_or_scoped() {
    let env = |name: &str| match name {
        "FULL" => Some("a".repeat(20)),
        "READER" => Some("b".repeat(20)),
        _ => None,
    };
    let config = config::load_str(
        "server:\n  public_reads: false\n  tokens:\n    - \"${FULL}\"\n    - token: \"${READER}\"\n      scopes: [read]\n    - {token: cccccccccccccccccccc, scopes: [write]}\n",
        Path::new("t.yaml"),
        &env,
    )
    .unwrap_or_else(|e| panic!("{}", render(&e)));
    let tokens = config.server.unwrap().tokens;
    let scopes: Vec<(String, bool, bool)> = tokens.iter().map(|t| (t.secret.clone(), t.read, t.write)).collect();
    assert_eq!(
        scopes,
        [
            ("a".repeat(20), true, true),
            ("b".repeat(20), true, false),
            ("c".repeat(20), false, true)
        ]
    );
    assert!(!format!("{tokens:?}").contains("aaaa"), "Debug never prints a secret");

    let errors = load_yaml("server:\n  tokens:\n    - token: cccccccccccccccccccc\n    - scopes: [read]\n    - {token: dddddddddddddddddddd, scopes: [admin]}\n").unwrap_err();
    assert_eq!(
        positions(&errors),
        [
            "3:7: this token has no scopes, so it could do nothing",
            "4:7: this token has no 'token'",
            "5:46: unknown value 'admin'",
        ],
        "{}",
        render(&errors)
    );
    let error =
        only_error("server:\n  public_reads: false\n  tokens:\n    - {token: cccccccccccccccccccc, scopes: [write]}\n");
    assert!(error.message.contains("no token has the read scope"), "{error}");
}

const FILE: &str = "defaults:\n  interval: 30s\n  timeout: 2s\n  channels: [ops]\nchannels:\n  ops:\n    type: webhook\n    url: http://127.0.0.1:9/hook\nserver:\n  allow: [\"127.0.0.1\", \"*.example.com\"]\nchecks:\n  - name: web\n    target: http://127.0.0.1:8080/\n";

fn api_errors(json: serde_json::Value) -> Vec<(Option<String>, String)> {
    let file = load_ok(FILE);
    config::validate_api_check(&file, &json)
        .expect_err("should be refused")
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

#[test]
fn an_api_check_inherits_defaults_and_is_guarded() {
    let file = load_ok(FILE);
    let check = config::validate_api_check(
        &file,
        &serde_json::json!({"name": "api", "target": "https://api.example.com/health", "conditions": [{"status": 200}]}),
    )
    .unwrap();
    assert_eq!(check.interval, Duration::from_secs(30), "from defaults");
    assert_eq!(check.channels, ["ops"]);
    assert_eq!(check.origin, pulsecheck_core::storage::Origin::Api);
    assert!(
        check.options.address_policy.is_some(),
        "its probes enforce server.allow"
    );
    assert_eq!(check.options.conditions.len(), 1);
}

#[test]
fn api_check_errors_name_the_field_with_the_files_messages() {
    // The same mistakes in the file give the same messages.
    let in_file = load_yaml(&format!(
        "{FILE}  - name: bad\n    target: http://127.0.0.1:8080/\n    interval: 10s\n    timeout: 20s\n    channels: [opps]\n    conditions:\n      - statuz: 200\n"
    ))
    .unwrap_err();
    let file_messages: Vec<String> = in_file.iter().map(|e| e.message.clone()).collect();
    let errors = api_errors(serde_json::json!({
        "name": "bad", "target": "http://127.0.0.1:8080/", "interval": "10s", "timeout": "20s",
        "channels": ["opps"], "conditions": [{"statuz": 200}]
    }));
    let api_messages: Vec<String> = errors.iter().map(|(_, m)| m.clone()).collect();
    for message in &file_messages {
        assert!(
            api_messages.contains(message),
            "{message:?} missing from {api_messages:?}"
        );
    }
    let fields: Vec<Option<&str>> = errors.iter().map(|(f, _)| f.as_deref()).collect();
    assert!(fields.contains(&Some("conditions[0].statuz")), "{errors:?}");
    assert!(fields.contains(&Some("channels[0]")), "{errors:?}");
    assert!(fields.contains(&Some("timeout")), "{errors:?}");

    assert_eq!(
        api_errors(serde_json::json!({"name": "x"})),
        [(Some("target".to_owned()), "check 'x' has no 'target'".to_owned())]
    );
    assert_eq!(
        api_errors(serde_json::json!({"name": "web", "target": "http://127.0.0.1:8080/"})),
        [(Some("name".to_owned()), "duplicate check name 'web'".to_owned())]
    );
    assert_eq!(
        api_errors(serde_json::json!({"name": "x", "target": "http://10.1.1.1/"})),
        [(
            Some("target".to_owned()),
            "10.1.1.1:80 is not in the allow-list".to_owned()
        )]
    );
    assert_eq!(
        api_errors(serde_json::json!(["not", "an", "object"]))[0].1,
        "a check must be a JSON object, found a list"
    );
    // A value from ${ENV} is never substituted from a request.
    let errors = api_errors(serde_json::json!({"name": "x", "target": "http://${HOME}/", "interval": 5}));
    assert_eq!(errors[0].0.as_deref(), Some("target"), "{errors:?}");
}

// ---------------------------------------------------------------------------------------
// Several nodes: store.url and cluster:

#[test]
fn the_cluster_example_loads_with_its_defaults() {
    let (path, text) = example("pulsecheck-cluster.yaml");
    let env = |name: &str| (name == "PGPASSWORD").then(|| "s3cret".to_owned());
    let config = config::load_str(&text, &path, &env).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(
        config.store.url.as_deref(),
        Some("postgres://pulsecheck:s3cret@127.0.0.1:5432/pulsecheck")
    );
    assert_eq!(config.store.path, None);
    let cluster = config.cluster.unwrap();
    assert_eq!(cluster.node.as_deref(), Some("node-1"));
    assert_eq!(cluster.location.as_deref(), Some("eu"));
    assert_eq!(cluster.lease_ttl, std::time::Duration::from_secs(15));
    assert_eq!(cluster.heartbeat(), std::time::Duration::from_secs(5));

    let bare = load_ok("cluster: {}\nstore:\n  url: postgresql://db.internal/pulse\n");
    let cluster = bare.cluster.unwrap();
    assert_eq!(
        (cluster.node, cluster.location),
        (None, None),
        "the binary uses the host name"
    );
    assert_eq!(cluster.lease_ttl, config::DEFAULT_LEASE_TTL);
    assert!(load_ok("checks: []\n").cluster.is_none(), "one node by default");
}

#[test]
fn store_and_cluster_mistakes_are_reported_at_their_place() {
    let errors =
        load_yaml("store:\n  path: data.db\n  url: postgres://h/db\ncluster:\n  node: my node\n  lease_ttl: 1s\n")
            .unwrap_err();
    assert_eq!(
        positions(&errors),
        [
            "3:8: store.url and store.path (line 2) are both set",
            "5:3: cluster: needs a shared PostgreSQL store, but store.path (line 2) is an SQLite file",
            "5:9: cluster node \"my node\" is not a usable name",
            "6:14: lease_ttl 1s is out of range",
        ]
    );
    assert!(errors[0].hint.as_deref().unwrap().contains("keep one"));
    assert!(errors[1].hint.as_deref().unwrap().contains("store.url: postgres://"));
    assert!(errors[3].hint.as_deref().unwrap().contains("3s to 600s"));

    let errors = load_yaml("store:\n  url: mysql://h/db\n").unwrap_err();
    assert_eq!(positions(&errors), ["2:8: store.url is not a PostgreSQL URL"]);
    assert!(errors[0].hint.as_deref().unwrap().contains("store.path"));
    let errors = load_yaml("cluster:\n  lease_ttl: 15s\n  nodes: a\n").unwrap_err();
    assert!(errors[0].message.contains("unknown key 'nodes'"), "{}", render(&errors));
}

#[test]
fn the_claim_ttl_outlasts_every_channel_timeout() {
    let hook = "channels:\n  hook:\n    type: webhook\n    url: http://127.0.0.1:9/\n    timeout: 40s\n";
    let store = "store:\n  url: postgres://h/db\n";
    // Unset: two minutes, or twice the longest channel timeout when that is longer.
    let minutes = std::time::Duration::from_secs;
    assert_eq!(load_ok(&format!("{store}cluster: {{}}\n")).claim_ttl(), minutes(120));
    assert_eq!(load_ok(&format!("{store}{hook}")).claim_ttl(), minutes(120));
    let slow = hook.replace("40s", "90s");
    assert_eq!(load_ok(&format!("{store}{slow}")).claim_ttl(), minutes(180));
    // Set: taken as it is, when it outlasts the timeouts.
    let set = load_ok(&format!("{store}{hook}cluster:\n  claim_ttl: 45s\n"));
    assert_eq!(set.claim_ttl(), minutes(45));

    let errors = load_yaml(&format!("{store}{hook}cluster:\n  claim_ttl: 30s\n")).unwrap_err();
    assert_eq!(
        positions(&errors),
        ["9:14: claim_ttl 30s is too short for channel hook (timeout 40s)"]
    );
    assert!(
        errors[0].hint.as_deref().unwrap().contains("plus 5s"),
        "{}",
        render(&errors)
    );
    let errors = load_yaml(&format!("{store}cluster:\n  claim_ttl: 2s\n")).unwrap_err();
    assert_eq!(positions(&errors), ["4:14: claim_ttl 2s is out of range"]);
    assert!(errors[0].hint.as_deref().unwrap().contains("5s to 3600s"));
}

// ---------------------------------------------------------------------------------------
// Location quorum

#[test]
fn a_quorum_defaults_to_a_majority_and_the_example_has_one() {
    let (path, text) = example("pulsecheck-cluster.yaml");
    let config = config::load_str(&text, &path, &no_env).unwrap_or_else(|e| panic!("{}", render(&e)));
    let checkout = config.checks.iter().find(|c| c.name == "checkout").unwrap();
    let quorum = checkout.quorum.as_ref().unwrap();
    assert_eq!(
        (quorum.locations.as_slice(), quorum.min_down),
        (&["eu".to_owned(), "us".into(), "ap".into()][..], 2)
    );
    assert!(config.checks.iter().find(|c| c.name == "api").unwrap().quorum.is_none());
    assert_eq!(
        config.policy().check("checkout").unwrap().quorum.as_ref(),
        Some(quorum),
        "the monitor sees it"
    );

    let four = load_ok(
        "store: {url: postgres://h/db}\ncluster: {location: eu}\nchecks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    quorum: {locations: [eu, us, ap, sa]}\n",
    );
    assert_eq!(four.checks[0].quorum.as_ref().unwrap().min_down, 3);
}

#[test]
fn quorum_mistakes_are_reported_at_their_place() {
    let errors = load_yaml(
        "store: {url: postgres://h/db}\ncluster: {}\nchecks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    quorum:\n      locations: [eu, us, eu]\n      min_down: 4\n  - name: b\n    target: tcp://127.0.0.1:1\n    quorum: {locations: []}\n  - name: c\n    target: tcp://127.0.0.1:1\n    quorum: {min_down: 1}\n",
    )
    .unwrap_err();
    assert_eq!(
        positions(&errors),
        [
            "7:27: quorum location \"eu\" is listed twice",
            "8:17: min_down 4 is out of range for 3 location(s)",
            "11:25: quorum locations are empty",
            "14:13: quorum has no 'locations'",
        ]
    );
    let hints: Vec<String> = errors.iter().map(|e| e.hint.clone().unwrap_or_default()).collect();
    assert!(hints[0].contains("first listed at line 7, column 19"), "{hints:?}");
    assert!(hints[1].contains("use 1 to 3"), "{hints:?}");

    // Without cluster: (and a shared store) nobody could vote from elsewhere.
    let errors = load_yaml("checks:\n  - name: a\n    target: tcp://127.0.0.1:1\n    quorum: {locations: [eu, us]}\n")
        .unwrap_err();
    assert_eq!(
        positions(&errors),
        ["4:13: a location quorum needs several nodes on a shared PostgreSQL store"]
    );
    assert!(errors[0].hint.as_deref().unwrap().contains("cluster:"));
}
