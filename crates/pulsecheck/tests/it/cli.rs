//! The real `pulsecheck` binary against the real simulator: inputs, formats, exit codes,
//! errors, the JSON schema, and Ctrl+C.

use std::io::Write as _;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use pulsecheck_sim::{SimConfig, SimHandle};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");

async fn sim() -> SimHandle {
    pulsecheck_sim::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

fn pulsecheck(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("scan")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run(args: &[&str]) -> Output {
    pulsecheck(args).output().await.expect("pulsecheck runs")
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn targets_file(dir: &tempfile::TempDir, lines: &[String]) -> String {
    let path = dir.path().join("targets.txt");
    let mut file = std::fs::File::create(&path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targets_file_with_a_bad_line_checks_the_rest_and_exits_2() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let file = targets_file(
        &dir,
        &[
            "# comment".into(),
            String::new(),
            sim.url("/ok"),
            sim.url("/status/500"),
            "tcp://missing-port".into(),
            format!("tcp://{}", sim.info.http[0]),
        ],
    );
    let output = run(&[&file, "--format", "json"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let results = json_lines(&output);
    assert_eq!(results.len(), 4, "comments and blank lines are skipped");
    let invalid = results
        .iter()
        .find(|r| r["reason"] == "invalid_target")
        .expect("the bad line is a result");
    assert_eq!(invalid["line"], 5);
    assert_eq!(invalid["target"], "tcp://missing-port");
    assert!(invalid["error"].as_str().unwrap().contains("line 5"));
    assert!(results
        .iter()
        .any(|r| r["reason"] == "status" && r["http_status"] == 500));
    assert_eq!(results.iter().filter(|r| r["outcome"] == "up").count(), 2);
    let summary = stderr(&output);
    assert!(summary.contains("4 targets"), "{summary}");
    assert!(summary.contains("balanced"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_up_or_down() {
    let sim = sim().await;
    let up = run(&[&sim.url("/ok"), &sim.url("/json"), "--format", "json"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    let down = run(&[&sim.url("/ok"), &sim.url("/status/404"), "--format", "json"]).await;
    assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_from_stdin() {
    let sim = sim().await;
    let mut child = pulsecheck(&["-", "--format", "json"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = format!("{}\n\n# skip\n{}\n", sim.url("/ok"), sim.url("/delay/10"));
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let results = json_lines(&output);
    assert_eq!(results.len(), 2);
    assert!(results.iter().any(|r| r["line"] == 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_table_and_output_file() {
    let sim = sim().await;
    let csv = run(&[&sim.url("/ok"), &sim.url("/status/503"), "--format", "csv"]).await;
    let text = String::from_utf8(csv.stdout).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("target,outcome,reason,http_status,duration_ms,dns_ms"));
    assert_eq!(lines.count(), 2);
    assert!(text.contains(",down,status,503,"));

    let table = run(&[&sim.url("/status/503"), &sim.url("/ok"), "--format", "table"]).await;
    let text = String::from_utf8(table.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("TARGET"));
    assert!(rows[1].contains("up"), "down last, nearest the prompt: {text}");
    assert!(rows[2].contains("down status"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when not on a terminal");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.jsonl");
    let written = run(&[&sim.url("/ok"), "--format", "json", "-o", out.to_str().unwrap()]).await;
    assert_eq!(written.status.code(), Some(0));
    assert!(written.stdout.is_empty());
    let saved = std::fs::read_to_string(&out).unwrap();
    assert_eq!(saved.lines().count(), 1);
}

#[tokio::test]
async fn bad_usage_gets_a_clear_error_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag", "http://127.0.0.1:1/"], "--no-such-flag"),
        (&[], "no targets given"),
        (&["/definitely/missing/targets.txt"], "/definitely/missing/targets.txt"),
        (
            &["-f", "/definitely/missing/targets.txt"],
            "/definitely/missing/targets.txt",
        ),
        (&["http://127.0.0.1:1/", "--timeout", "soon"], "not a duration"),
        (&["http://127.0.0.1:1/", "--expect-status", "7xx"], "--expect-status"),
        (&["http://127.0.0.1:1/", "-H", "no-colon"], "Name: value"),
        (&["http://127.0.0.1:1/", "--body-regex", "("], "--body-regex"),
        (&["http://127.0.0.1:1/", "--nameserver", "dns.example"], "--nameserver"),
        (
            &["http://127.0.0.1:1/", "--cacert", "/definitely/missing.pem"],
            "missing.pem",
        ),
        // The judging flags: the error names the flag and the value, and says what to write.
        (&["http://127.0.0.1:1/", "--json-path", "$["], "--json-path"),
        (&["http://127.0.0.1:1/", "--json-path", "status=UP"], "EXPR=VALUE"),
        (
            &["http://127.0.0.1:1/", "--expect-header", "content-type"],
            "--expect-header",
        ),
        (&["http://127.0.0.1:1/", "--expect-header", "x~("], "NAME~REGEX"),
        (&["http://127.0.0.1:1/", "--dns-rcode", "NOPE"], "--dns-rcode"),
        (&["http://127.0.0.1:1/", "--dns-rcode", "NOPE"], "NXDOMAIN"),
        (
            &["http://127.0.0.1:1/", "--dns-answer-contains", ""],
            "--dns-answer-contains",
        ),
        (&["http://127.0.0.1:1/", "--expect-status", "7xx"], "'7xx'"),
    ];
    for (args, needle) in cases {
        let output = run(args).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr should mention {needle:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Pins the JSON Lines schema: field names, order and types. Values that vary between
/// runs (times, ports, dates) are replaced by their type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_snapshot() {
    let sim = sim().await;
    let output = run(&[
        &sim.url("/ok"),
        &sim.url("/status/500"),
        "--format",
        "json",
        "--order",
        "input",
    ])
    .await;
    let mut results = json_lines(&output);
    results.sort_by_key(|r| r["outcome"].as_str().unwrap().to_owned());
    let port = sim.info.http[0].port().to_string();
    let normalized: Vec<Value> = results.into_iter().map(|r| normalize(r, &port)).collect();
    insta::assert_json_snapshot!("scan_json_lines", normalized);
}

fn normalize(value: Value, port: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let v = match key.as_str() {
                        "duration_ms" | "queue_ms" | "dns_ms" | "connect_ms" | "tls_ms" | "ttfb_ms" | "transfer_ms"
                            if v.is_number() =>
                        {
                            Value::String("<ms>".into())
                        }
                        "started_at" => Value::String("<timestamp>".into()),
                        _ => normalize(v, port),
                    };
                    (key, v)
                })
                .collect(),
        ),
        Value::String(s) => Value::String(s.replace(port, "<port>")),
        other => other,
    }
}

/// Ctrl+C stops new checks, cancels those in flight, prints every result and exits 130
/// promptly. SIGTERM does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_prints_everything_and_exits_130() {
    // The quick targets live on a second address, so their host slots are not taken
    // by the blackholes (the per-host limit counts by host).
    let sim = pulsecheck_sim::start(SimConfig {
        bind: vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let quick = sim.info.http[1];
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let dir = tempfile::tempdir().unwrap();
        let mut lines: Vec<String> = (0..5).map(|i| format!("http://{quick}/ok?i={i}")).collect();
        lines.extend((0..300).map(|i| format!("http://{}/?i={i}", sim.info.blackhole)));
        let file = targets_file(&dir, &lines);
        let mut child = pulsecheck(&[&file, "--format", "json", "--timeout", "60s", "--per-host", "50"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap() as libc::pid_t;
        // Results stream out as they finish: signal once the 5 quick ones are out (the
        // blackholed ones never finish by themselves).
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut lines = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            let mut up = 0;
            while up < 5 {
                let line = stdout.next_line().await.unwrap().expect("pulsecheck is still running");
                let result: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                up += usize::from(result["outcome"] == "up");
                lines.push(line);
            }
        })
        .await
        .expect("the quick targets are reported before the signal");
        // SAFETY: signalling the child this test started, by its PID.
        unsafe {
            libc::kill(pid, signal);
        }
        let sent = Instant::now();
        let rest = async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                lines.push(line);
            }
            child.wait_with_output().await.unwrap()
        };
        let output = tokio::time::timeout(Duration::from_secs(20), rest)
            .await
            .expect("pulsecheck exits after the signal");
        let took = sent.elapsed();
        // Prompt: far below the 60 s check timeout, with room for a loaded machine.
        assert!(took < Duration::from_secs(5), "exited {took:?} after signal {signal}");
        assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
        let results: Vec<Value> = lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect();
        assert_eq!(results.len(), 305, "every target has a result");
        let up = results.iter().filter(|r| r["outcome"] == "up").count();
        assert_eq!(up, 5, "signal {signal}: {}\n{:?}", stderr(&output), &results[..3]);
        assert_eq!(results.iter().filter(|r| r["outcome"] == "cancelled").count(), 300);
        assert!(stderr(&output).contains("interrupted"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_connections_flag_keeps_connections_between_checks() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..50).map(|i| sim.url(&format!("/ok?i={i}"))).collect();
    let file = targets_file(&dir, &lines);
    let output = run(&[&file, "--format", "json", "--per-host", "2", "--reuse-connections"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let results = json_lines(&output);
    assert_eq!(results.len(), 50);
    let connected = results.iter().filter(|r| !r["timings"]["connect_ms"].is_null()).count();
    assert!((1..=4).contains(&connected), "{connected} of 50 checks connected");
    assert!(
        results.iter().all(|r| r["ip"].is_string()),
        "reused checks still name the IP"
    );
}

/// One run of the binary: the exit code and each result's target, reason and error.
async fn verdicts(args: &[&str]) -> (Option<i32>, Vec<(String, Value, Value)>) {
    let mut all = vec!["--format", "json", "--order", "input"];
    all.extend_from_slice(args);
    let output = run(&all).await;
    let results = json_lines(&output)
        .into_iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap_or_default().to_owned(),
                r["reason"].clone(),
                r["error"].clone(),
            )
        })
        .collect();
    (output.status.code(), results)
}

/// Every judging flag against the real simulator, up and down, with the reason it gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judging_flags_against_the_simulator() {
    let sim = sim().await;
    let json = sim.url("/json");
    let dns = |name: &str| format!("dns://{name}.pulsecheck.test?server={}", sim.info.dns);
    let cases: &[(Vec<String>, i32, Option<&str>, &str)] = &[
        (
            vec![json.clone(), "--json-path".into(), "$.status=UP".into()],
            0,
            None,
            "",
        ),
        (
            vec![
                json.clone(),
                "--json-path".into(),
                "$.checks.db".into(),
                "--json-path".into(),
                "$.version=\"1.0\"".into(),
            ],
            0,
            None,
            "",
        ),
        (
            vec![json.clone(), "--json-path".into(), "$.status=DOWN".into()],
            1,
            Some("body"),
            "condition `$.status == \"DOWN\"` failed: got \"UP\"",
        ),
        (
            vec![
                json.clone(),
                "--expect-header".into(),
                "Content-Type~^application/json".into(),
            ],
            0,
            None,
            "",
        ),
        (
            vec![json.clone(), "--expect-header".into(), "content-type=text/plain".into()],
            1,
            Some("body"),
            "condition `header content-type == \"text/plain\"` failed: got \"application/json\"",
        ),
        (vec![dns("nx"), "--dns-rcode".into(), "NXDOMAIN".into()], 0, None, ""),
        (
            vec![dns("ok"), "--dns-rcode".into(), "nxdomain".into()],
            1,
            Some("dns"),
            "condition `dns rcode == NXDOMAIN` failed: got NOERROR",
        ),
        (
            vec![dns("ok"), "--dns-answer-contains".into(), "127.0.0.1".into()],
            0,
            None,
            "",
        ),
        (
            vec![dns("ok"), "--dns-answer-contains".into(), "10.9.9.9".into()],
            1,
            Some("dns"),
            "condition `dns answer contains \"10.9.9.9\"` failed: got \"A 127.0.0.1\"",
        ),
        // The old flags are conditions too, in the documented order: status comes first.
        (
            vec![
                sim.url("/status/500"),
                "--body-contains".into(),
                "nowhere".into(),
                "--expect-status".into(),
                "200".into(),
            ],
            1,
            Some("status"),
            "expected 200",
        ),
        (
            vec![sim.url("/status/500"), "--expect-status".into(), "5xx".into()],
            0,
            None,
            "",
        ),
        (
            vec![
                json.clone(),
                "--body-contains".into(),
                "UP".into(),
                "--body-contains".into(),
                "nowhere".into(),
            ],
            1,
            Some("body"),
            "condition `body contains \"nowhere\"` failed",
        ),
        (
            vec![sim.url("/delay/300"), "--max-latency".into(), "50ms".into()],
            1,
            Some("latency"),
            "condition `latency < 50ms` failed: took",
        ),
    ];
    for (args, code, reason, error) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (exit, results) = verdicts(&args).await;
        assert_eq!(exit, Some(*code), "{args:?}: {results:?}");
        assert_eq!(results.len(), 1, "{args:?}");
        let (_, got_reason, got_error) = &results[0];
        assert_eq!(got_reason.as_str(), *reason, "{args:?}: {results:?}");
        if !error.is_empty() {
            let got_error = got_error.as_str().unwrap_or_default();
            assert!(got_error.contains(error), "{args:?}: {got_error}");
        }
    }
}

/// In a mixed targets file each condition judges only the targets it fits: a JSONPath
/// condition does not make a `tcp://` target down, nor a DNS condition an HTTP one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judging_flags_skip_targets_they_do_not_fit() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let file = targets_file(
        &dir,
        &[
            sim.url("/json"),
            format!("tcp://{}", sim.info.http[0]),
            format!("dns://ok.pulsecheck.test?server={}", sim.info.dns),
        ],
    );
    let flags = [
        "--json-path",
        "$.status=UP",
        "--expect-header",
        "content-type~json",
        "--dns-rcode",
        "NOERROR",
        "--dns-answer-contains",
        "127.0.0.1",
        "--min-cert-days",
        "1000",
    ];
    for (latency, code) in [("10s", 0), ("1us", 1)] {
        let mut args = vec![file.as_str(), "--max-latency", latency];
        args.extend(flags);
        let (exit, results) = verdicts(&args).await;
        assert_eq!(exit, Some(code), "{results:?}");
        assert_eq!(results.len(), 3);
        if code == 1 {
            // --max-latency fits every target.
            assert!(results.iter().all(|(_, reason, _)| reason == "latency"), "{results:?}");
        }
    }
}

/// A serve config's conditions and the scan flags that say the same thing are one list,
/// and the engine gives the same verdict, reason and message for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_conditions_and_scan_flags_give_the_same_verdict() {
    use pulsecheck_core::{CheckOptions, Engine, EngineSetup, Target};

    let sim = sim().await;
    let scan_options = |flags: &[&str]| -> CheckOptions {
        let mut argv = vec!["pulsecheck", "scan", "x"];
        argv.extend_from_slice(flags);
        match <pulsecheck::cli::Cli as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .command
        {
            pulsecheck::cli::Command::Scan(args) => pulsecheck::scan::check_options(&args).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let serve_options = |target: &str, conditions: &str| -> CheckOptions {
        let yaml = format!("checks:\n  - name: a\n    target: {target}\n    conditions:\n{conditions}");
        let config = pulsecheck_config::load_str(&yaml, std::path::Path::new("t.yaml"), &|_: &str| None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        config.checks[0].options.clone()
    };
    let engine = Engine::new(EngineSetup {
        nameserver: Some(sim.info.dns),
        ..EngineSetup::default()
    })
    .unwrap();
    let dns = |name: &str| format!("dns://{name}.pulsecheck.test?server={}", sim.info.dns);
    let http_conditions = "      - status: 200\n      - header: { name: content-type, matches: json }\n      - body_contains: UP\n      - json_path: $.status\n        equals: UP\n      - json_path: $.checks.db\n        exists: true\n      - latency_under: 5s\n";
    let http_flags: &[&str] = &[
        "--expect-status",
        "200",
        "--expect-header",
        "content-type~json",
        "--body-contains",
        "UP",
        "--json-path",
        "$.status=UP",
        "--json-path",
        "$.checks.db",
        "--max-latency",
        "5s",
    ];
    let dns_conditions = "      - dns_rcode: NXDOMAIN\n      - dns_answer_contains: 127.0.0.1\n";
    let dns_flags: &[&str] = &["--dns-rcode", "NXDOMAIN", "--dns-answer-contains", "127.0.0.1"];
    let cases = [
        (
            sim.url("/json"),
            http_conditions,
            http_flags,
            vec![
                sim.url("/json"),
                sim.url("/ok"),
                sim.url("/status/500"),
                sim.url("/headers"),
            ],
        ),
        (
            dns("ok"),
            dns_conditions,
            dns_flags,
            vec![dns("ok"), dns("nx"), dns("empty")],
        ),
    ];
    for (config_target, conditions, flags, targets) in cases {
        let from_config = serve_options(&config_target, conditions);
        let from_flags = scan_options(flags);
        assert_eq!(
            *from_config.conditions, *from_flags.conditions,
            "one list, in one order"
        );
        for target in targets {
            let target = Target::parse(&target, None);
            let cancel = tokio_util::sync::CancellationToken::new();
            let a = engine.check(&target, &from_config, &cancel).await;
            let b = engine.check(&target, &from_flags, &cancel).await;
            assert_eq!(
                (a.outcome, a.reason, &a.error),
                (b.outcome, b.reason, &b.error),
                "{}",
                target.input
            );
            assert!(a.response.is_none() && b.response.is_none());
        }
    }
}

/// `pulsecheck scan … | head -1`: once the reader of stdout is gone, no new check starts
/// and the scan ends, rather than after every slow target timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_scan_promptly() {
    let sim = pulsecheck_sim::start(SimConfig {
        bind: vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let quick = sim.info.http[1];
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..3).map(|i| format!("http://{quick}/ok?i={i}")).collect();
    // Blackholes never answer: on their own they would take 60 s a batch of 50.
    lines.extend((0..300).map(|i| format!("http://{}/?i={i}", sim.info.blackhole)));
    let file = targets_file(&dir, &lines);
    for format in ["json", "table"] {
        let mut child = pulsecheck(&[&file, "--format", format, "--timeout", "60s", "--per-host", "50"])
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        if format == "json" {
            // Like `head -1`: read one line, then close the pipe.
            let mut stdout = BufReader::new(stdout).lines();
            let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
                .await
                .expect("the first result streams out");
            assert!(first.unwrap().is_some());
            drop(stdout);
        } else {
            // The table prints at the end; the reader leaves before it does.
            drop(stdout);
        }
        let closed = Instant::now();
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{format}: pulsecheck is still running 30 s after its reader left"))
            .unwrap();
        let took = closed.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{format}: exited {took:?} after the pipe closed"
        );
        let err = stderr(&output);
        assert!(err.contains("output closed: the scan stopped"), "{format}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `demo` covers every probe, as the README says, and names no file it deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_covers_every_probe_and_names_no_file_it_deletes() {
    let output = Command::new(BIN)
        .args(["demo", "--scan-only", "--format", "json"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let results = json_lines(&output);
    let mut probes: Vec<String> = results
        .iter()
        .map(|r| r["probe"].as_str().unwrap().to_owned())
        .collect();
    probes.sort();
    probes.dedup();
    assert_eq!(probes, ["dns", "http", "icmp", "none", "tcp", "tls"], "{err}");
    assert!(!err.contains("demo-targets") && !err.contains("/tmp"), "{err}");
    assert!(err.contains("1 invalid line"), "{err}");
}
