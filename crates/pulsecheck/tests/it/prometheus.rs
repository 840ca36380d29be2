//! A real Prometheus scraping a real `pulsecheck serve`: `/metrics` as a plain job and
//! `/probe` with blackbox_exporter's standard relabelling, asserted through Prometheus's
//! query API. Skipped only when `CI` is unset and `prometheus` is not installed
//! (`.ci/run` installs Debian's package); with `CI=true` a missing binary fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pulsecheck_sim::SimConfig;
use tokio::process::{Child, Command};

use crate::daemon::{eventually, listening, Daemon};

/// The `prometheus` binary, or `None` (and a note) when the test may be skipped.
fn prometheus_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file());
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    match found {
        Some(path) => Some(path),
        None if in_ci => panic!("CI is set but `prometheus` is not installed: .ci/run installs Debian's package"),
        None => {
            eprintln!("skipped: `prometheus` is not installed (apt-get install prometheus); CI runs this test");
            None
        }
    }
}

/// A child process stopped by its PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        // kill_on_drop sends SIGKILL to this child by its PID.
        let _ = self.0.start_kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The samples of an instant query: `(labels, value)`.
async fn query(prometheus: &str, promql: &str) -> Vec<(serde_json::Value, f64)> {
    let Ok(response) = client()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
    else {
        return Vec::new();
    };
    let Ok(body) = response.json::<serde_json::Value>().await else {
        return Vec::new();
    };
    body["data"]["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| {
                    let value = row["value"][1].as_str()?.parse().ok()?;
                    Some((row["metric"].clone(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The one value of `promql`, once Prometheus has it.
async fn one(prometheus: &str, promql: &str) -> f64 {
    eventually(Duration::from_secs(60), promql, || async {
        query(prometheus, promql).await.first().map(|(_, v)| *v)
    })
    .await
}

#[tokio::test]
async fn prometheus_scrapes_metrics_and_probes_through_the_blackbox_relabelling() {
    let Some(prometheus_bin) = prometheus_binary() else {
        return;
    };
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let refused = sim.info.refused;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pulsecheck.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
server:
  listen: 127.0.0.1:0
  allow: ["{http}"]
checks:
  - name: web
    group: front
    target: http://{http}/ok
    interval: 1s
    timeout: 500ms
  - name: db
    target: tcp://{refused}
    interval: 1s
    timeout: 500ms
    failure_threshold: 1
"#
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let daemon = Daemon::start(&config, &dir.path().join("p.db"), &log, &[]);
    let pulsecheck = listening(&log).await;

    let ok = format!("http://{http}/ok");
    let failing = format!("http://{http}/status/503");
    let denied = format!("http://127.0.0.2:{}/ok", http.port());
    // blackbox_exporter's documented multi-target scrape config, pointed at pulsecheck.
    let scrape_config = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pulsecheck
    static_configs:
      - targets: ["{pulsecheck}"]
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: ["{ok}", "{failing}", "{denied}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {pulsecheck}
"#
    );
    let prometheus_yml = dir.path().join("prometheus.yml");
    std::fs::write(&prometheus_yml, scrape_config).unwrap();
    let port = free_port();
    let prometheus_log = dir.path().join("prometheus.log");
    let _prometheus = Process(
        Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", prometheus_yml.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prometheus_log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts"),
    );
    let api = format!("http://127.0.0.1:{port}");

    // Two scrapes of every target.
    for job in ["pulsecheck", "blackbox"] {
        let promql = format!("min(count_over_time(up{{job=\"{job}\"}}[5m]))");
        eventually(Duration::from_secs(90), &format!("two scrapes of {job}"), || async {
            query(&api, &promql)
                .await
                .first()
                .filter(|(_, n)| *n >= 2.0)
                .map(|_| ())
        })
        .await;
    }
    assert_eq!(one(&api, "min(up)").await, 1.0, "every scrape succeeds");

    // /probe, through the relabelling: one series per target.
    assert_eq!(
        one(&api, &format!("probe_success{{job=\"blackbox\",instance=\"{ok}\"}}")).await,
        1.0
    );
    assert_eq!(
        one(
            &api,
            &format!("probe_success{{job=\"blackbox\",instance=\"{failing}\"}}")
        )
        .await,
        0.0
    );
    assert_eq!(
        one(
            &api,
            &format!("probe_failure_reason{{job=\"blackbox\",instance=\"{failing}\",reason=\"status\"}}")
        )
        .await,
        1.0
    );
    assert_eq!(
        one(
            &api,
            &format!("probe_failure_reason{{job=\"blackbox\",instance=\"{denied}\",reason=\"denied\"}}")
        )
        .await,
        1.0,
        "the allow-list holds through Prometheus too"
    );
    let phases = query(
        &api,
        &format!("probe_http_duration_seconds{{job=\"blackbox\",instance=\"{ok}\"}}"),
    )
    .await;
    let mut names: Vec<String> = phases
        .iter()
        .filter_map(|(labels, _)| labels["phase"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, ["connect", "processing", "resolve", "tls", "transfer"]);
    assert!(
        phases
            .iter()
            .any(|(labels, v)| labels["phase"] == "processing" && *v > 0.0),
        "{phases:?}"
    );

    // /metrics: the scheduled checks and the engine's health.
    assert_eq!(
        one(&api, "probe_success{job=\"pulsecheck\",check=\"web\",group=\"front\"}").await,
        1.0
    );
    assert_eq!(
        one(
            &api,
            "probe_failure_reason{job=\"pulsecheck\",check=\"db\",reason=\"refused\"}"
        )
        .await,
        1.0
    );
    assert_eq!(one(&api, "pulsecheck_check_up{check=\"db\"}").await, 0.0);
    assert_eq!(one(&api, "pulsecheck_check_up{check=\"web\"}").await, 1.0);
    assert!(one(&api, "pulsecheck_ledger_finished_total").await >= 2.0);
    assert!(one(&api, "sum(pulsecheck_probes_total)").await >= 2.0);
    assert!(one(&api, "pulsecheck_schedule_lag_seconds_count").await >= 1.0);

    drop(_prometheus);
    // SIGTERM: the listener closes on the daemon's shutdown path, which exits cleanly.
    daemon.stop(&log).await;
    assert!(
        std::net::TcpStream::connect(&pulsecheck).is_err(),
        "the listener is closed"
    );
    sim.shutdown().await;
}

/// The value of the sample `name{labels…}` whose labels include every one of `labels`.
fn sample(page: &str, name: &str, labels: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Uptime over 24 h and 30 d continues across a restart: the runs stored before it
/// count, so a check that was down and is now up shows less than 100 %.
#[tokio::test]
async fn uptime_on_metrics_continues_from_the_store_after_a_restart() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let config = dir.path().join("pulsecheck.yaml");
    let write_config = |path: &str| {
        std::fs::write(
            &config,
            format!(
                "server:\n  listen: 127.0.0.1:0\nchecks:\n  - name: web\n    target: http://{http}{path}\n    interval: 1s\n    timeout: 500ms\n"
            ),
        )
        .unwrap();
    };
    let start = |log: &Path| Daemon::start(&config, &db, log, &[]);
    let metrics = |addr: String| async move {
        let response = client().get(format!("http://{addr}/metrics")).send().await.ok()?;
        response.text().await.ok()
    };

    // First life: every run is down.
    write_config("/status/500");
    let first_log = dir.path().join("first.log");
    let first = start(&first_log);
    let addr = listening(&first_log).await;
    eventually(Duration::from_secs(60), "two down runs on /metrics", || async {
        let page = metrics(addr.clone()).await?;
        let down = sample(
            &page,
            "pulsecheck_check_uptime_ratio",
            &["check=\"web\"", "window=\"24h\""],
        )?;
        // Two runs at least, so the second life's one up run cannot reach 50 %.
        let runs: f64 = page
            .lines()
            .filter(|l| l.starts_with("pulsecheck_checks_total{") && l.contains("outcome=\"down\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (down == 0.0 && runs >= 2.0).then_some(())
    })
    .await;
    first.stop(&first_log).await;

    // Second life: every run is up, yet the day still holds the down runs.
    write_config("/ok");
    let second_log = dir.path().join("second.log");
    let _second = start(&second_log);
    let addr = listening(&second_log).await;
    let (day, month) = eventually(Duration::from_secs(60), "an up run after the restart", || async {
        let page = metrics(addr.clone()).await?;
        let up = sample(&page, "probe_success", &["check=\"web\""])?;
        let day = sample(
            &page,
            "pulsecheck_check_uptime_ratio",
            &["check=\"web\"", "window=\"24h\""],
        )?;
        let month = sample(
            &page,
            "pulsecheck_check_uptime_ratio",
            &["check=\"web\"", "window=\"30d\""],
        )?;
        (up == 1.0 && day > 0.0).then_some((day, month))
    })
    .await;
    assert!(day < 1.0, "24 h uptime {day} forgot the runs before the restart");
    assert!(month < 1.0, "30 d uptime {month} forgot the runs before the restart");
}
