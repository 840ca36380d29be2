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

    let table = run(&[&sim.url("/ok"), &sim.url("/status/503"), "--format", "table"]).await;
    let text = String::from_utf8(table.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("TARGET"));
    assert!(rows[1].contains("down status"), "down first: {text}");
    assert!(rows[2].contains("up"));
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
