//! `pulsecheck demo` beyond its scan: it runs the daemon against the simulator, prints
//! the status page's URL, serves it until interrupted, then stops the daemon and exits 0.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");

/// The demo in a process group of its own, as a terminal would run it; the group (the
/// demo and its daemon) is killed when this is dropped, so a failing test leaves
/// nothing behind.
struct Group(u32);

impl Group {
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: a signal to the process group this test started, by its id.
        unsafe {
            libc::kill(-(self.0 as libc::pid_t), signal);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_status_page_until_interrupted() {
    let mut demo = Command::new(BIN)
        .arg("demo")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let group = Group(demo.id().unwrap());
    let mut lines = BufReader::new(demo.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if let Some(url) = line.trim().strip_prefix("Status page:") {
                return url.trim().to_owned();
            }
        }
        panic!("the demo ended without a status page URL:\n{log}");
    })
    .await
    .expect("the demo prints its status page's URL");
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
    // The rest of the log is read (and kept) while the test goes on, so the demo never
    // blocks on a full pipe.
    let mut reader = tokio::task::JoinSet::new();
    reader.spawn(async move {
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
        }
        log
    });

    // The checks are listed once the daemon has registered them, and the ones meant to
    // be down are down.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = std::time::Instant::now();
    loop {
        let page = client.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        let listed = ["checkout", "payments", "search", "legacy-api", "db", "dns"]
            .iter()
            .all(|check| page.contains(&format!(">{check}</a>")));
        let down = ["legacy-api", "db", "search"]
            .iter()
            .all(|check| page.contains(&format!("<a href=\"/checks/{check}\"><strong>{check}</strong></a>")));
        if listed && down {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo's checks never showed:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Ctrl+C as a terminal sends it, to the whole group: the daemon stops gracefully,
    // the demo waits for it and exits 0.
    group.signal(libc::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait())
        .await
        .expect("the demo exits after Ctrl+C")
        .unwrap();
    let rest = reader.join_next().await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(
        rest.contains("stopping the daemon") && rest.contains("stopped cleanly"),
        "{rest}"
    );
    assert!(
        client.get(&url).send().await.is_err(),
        "nothing listens once the demo is gone"
    );
}
