//! The status page in a real browser: the real `pulsecheck serve` watching the
//! simulator, headless Chromium loading `/` (with the page's own script run by virtual
//! time, so its live update happens), the DOM checked for the down check and its reason,
//! the link to its check page followed, and a screenshot saved (to
//! `PULSECHECK_SCREENSHOT` too when set: the README's picture comes from here).
//! Skipped only when `CI` is unset and Chromium is not installed (`.ci/run` installs
//! Debian's package); with `CI=true` a missing binary fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pulsecheck_sim::SimConfig;
use tokio::process::Command;

use crate::daemon::{eventually, listening, Daemon};

/// How long one Chromium run may take before it is killed.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);

/// Flags that work headless as root on a machine without a display or D-Bus.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// The Chromium binary, or `None` (and a note) when the test may be skipped.
fn chromium_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file());
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    match found {
        Some(path) => Some(path),
        None if in_ci => panic!("CI is set but Chromium is not installed: .ci/run installs Debian's `chromium`"),
        None => {
            eprintln!("skipped: Chromium is not installed (apt-get install chromium); CI runs this test");
            None
        }
    }
}

/// SIGKILL to the process group `pgid` (a Chromium this test started in a group of its
/// own, with its renderer and utility processes); nothing when the group is gone.
fn kill_group(pgid: u32) {
    // SAFETY: a signal to the process group of a child this test started, by its id.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

/// Runs Chromium once on `url` with `args` and a fresh profile; its stdout. Killed with
/// its whole process group at the deadline, and its group cleaned up after it exits.
async fn chromium(bin: &Path, dir: &Path, args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let child = Command::new(bin)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    let pid = child.id().expect("chromium has a pid");
    let output = tokio::time::timeout(CHROMIUM_DEADLINE, child.wait_with_output()).await;
    kill_group(pid);
    let output = match output {
        Ok(output) => output.unwrap(),
        Err(_) => panic!("chromium did not finish {url} within {CHROMIUM_DEADLINE:?}; killed"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The part of `dom` from the element with `id` to the end of that element's tag
/// name's next closing tag (enough for the flat lists and headings checked here).
fn element<'a>(dom: &'a str, id: &str, closing: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM:\n{dom}"));
    let rest = &dom[start..];
    let end = rest.find(closing).map_or(rest.len(), |i| i + closing.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_chromium_shows_a_down_check_and_links_to_it() {
    let Some(chromium_bin) = chromium_binary() else {
        return;
    };
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let http = sim.info.http[0];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pulsecheck.yaml");
    // The demo's kind of setup: groups, a flapping check, a slow one, two down ones.
    std::fs::write(
        &config,
        format!(
            r#"
defaults:
  interval: 1s
  timeout: 800ms
checks:
  - name: home
    group: web
    target: http://{http}/ok
  - name: catalog
    group: web
    target: http://{http}/delay/150
  - name: checkout
    group: shop
    target: http://{http}/flap/6000
  - name: legacy-api
    group: api
    target: http://{http}/status/503
    failure_threshold: 1
  - name: inventory
    group: api
    target: http://{http}/json
  - name: db
    group: data
    target: tcp://{refused}
    failure_threshold: 1
server:
  listen: 127.0.0.1:0
"#,
            refused = sim.info.refused
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let _daemon = Daemon::start(&config, &dir.path().join("p.db"), &log, &[]);
    let addr = listening(&log).await;
    let base = format!("http://{addr}");

    // Down in the store (what the page reads), and every check has a verdict.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    eventually(
        Duration::from_secs(60),
        "legacy-api and db down on /status.json",
        || async {
            let status: serde_json::Value = client
                .get(format!("{base}/status.json"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let down: Vec<&str> = status["down"]
                .as_array()?
                .iter()
                .filter_map(|d| d["name"].as_str())
                .collect();
            (down.contains(&"legacy-api") && down.contains(&"db") && status["counts"]["unknown"] == 0).then_some(())
        },
    )
    .await;

    // The list, after its script has polled /status.json once (virtual time runs the
    // 10 s timer at once).
    let dom = chromium(
        &chromium_bin,
        dir.path(),
        &["--virtual-time-budget=15000".into(), "--dump-dom".into()],
        &format!("{base}/"),
    )
    .await;
    assert!(dom.contains("<h1 id=\"headline\">"), "{dom}");
    let updated = dom
        .split("data-updated=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page's script did not refresh it from /status.json:\n{dom}"));
    assert!(updated.parse::<jiff::Timestamp>().is_ok(), "{updated}");
    let down = element(&dom, "down-list", "</ul>");
    assert!(down.contains(">legacy-api<"), "{down}");
    assert!(
        down.contains("reason: <strong class=\"reason\">status</strong>"),
        "{down}"
    );
    assert!(down.contains("503"), "the error names the status: {down}");
    assert!(down.contains(">db<") && down.contains(">refused<"), "{down}");
    let table = element(&dom, "checks", "</table>");
    for check in ["home", "catalog", "checkout", "inventory"] {
        assert!(table.contains(&format!(">{check}</a>")), "{check} in {table}");
    }

    // Follow the down check's link as the DOM has it.
    let href = down
        .split("<a href=\"")
        .skip(1)
        .filter_map(|part| part.split_once('"'))
        .find(|(_, rest)| rest.starts_with("><strong>legacy-api<"))
        .map(|(href, _)| href.to_owned())
        .unwrap_or_else(|| panic!("no link to legacy-api in {down}"));
    assert_eq!(href, "/checks/legacy-api");
    let page = chromium(
        &chromium_bin,
        dir.path(),
        &["--dump-dom".into()],
        &format!("{base}{href}"),
    )
    .await;
    let h1 = element(&page, "main", "</h1>");
    assert!(h1.contains("legacy-api <span class=\"st st-down\">Down</span>"), "{h1}");
    assert!(page.contains("<strong class=\"reason\">status</strong>"), "{page}");
    for section in [
        "Uptime",
        "Daily uptime, last 90 days",
        "Latency by phase",
        "Recent results",
        "Incidents",
    ] {
        assert!(page.contains(&format!("\">{section}</h2>")), "no {section} section");
    }
    let results = element(&page, "results", "</table>");
    assert!(results.matches("<tr>").count() >= 2, "{results}");
    assert!(
        results.contains("st-down\">Down</span> <span class=\"reason\">status</span>"),
        "{results}"
    );
    assert!(page.contains("<li class=\"open\">"), "an open incident: {page}");

    // A screenshot of the list, for people (and the README).
    let shot = dir.path().join("status-page.png");
    chromium(
        &chromium_bin,
        dir.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,900".into(),
            "--force-device-scale-factor=1".into(),
        ],
        &format!("{base}/"),
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium saved the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(path) = std::env::var_os("PULSECHECK_SCREENSHOT") {
        std::fs::write(&path, &png).unwrap();
        eprintln!(
            "screenshot saved to {} ({} bytes)",
            Path::new(&path).display(),
            png.len()
        );
    }
    sim.shutdown().await;
}
