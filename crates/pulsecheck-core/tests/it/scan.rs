//! Batch behaviour of `Engine::scan`: exactly one result per target, deadlines that hold
//! for the whole batch, prompt cancellation.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsecheck_core::{CheckOptions, CheckResult, Engine, EngineSetup, Outcome, Reason, Target};
use pulsecheck_sim::SimConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn run_scan(
    engine: Arc<Engine>,
    targets: Vec<Target>,
    options: CheckOptions,
    cancel: CancellationToken,
) -> Vec<(usize, CheckResult)> {
    let (sender, mut receiver) = mpsc::channel(256);
    let scan = engine.scan(targets, Arc::new(options), cancel, sender);
    let collect = async {
        let mut all = Vec::new();
        while let Some(item) = receiver.recv().await {
            all.push(item);
        }
        all
    };
    let ((), all) = tokio::join!(scan, collect);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_mixed_targets_one_result_each() {
    let bind: Vec<IpAddr> = (1..=10).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))).collect();
    let sim = pulsecheck_sim::start(SimConfig {
        bind,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let info = &sim.info;
    let mut targets = Vec::new();
    let mut expected = Vec::new();
    for i in 0..5000 {
        let http = info.http[i % info.http.len()];
        let (target, want) = match i % 20 {
            0 => (
                format!("http://{http}/status/500?i={i}"),
                (Outcome::Down, Some(Reason::Status)),
            ),
            1 => (
                format!("http://{}/?i={i}", info.refused),
                (Outcome::Down, Some(Reason::Refused)),
            ),
            2 => (
                format!("http://{}/?i={i}", info.reset),
                (Outcome::Down, Some(Reason::Reset)),
            ),
            3 => (
                format!("http://{}/?i={i}", info.blackhole),
                (Outcome::Down, Some(Reason::Timeout)),
            ),
            4 => (format!("tcp://{http}"), (Outcome::Up, None)),
            5 => ("not a target".to_owned(), (Outcome::Down, Some(Reason::InvalidTarget))),
            _ => (format!("http://{http}/delay/20?i={i}"), (Outcome::Up, None)),
        };
        targets.push(Target::parse(&target, Some(i + 1)));
        expected.push(want);
    }
    let engine = Arc::new(Engine::new(EngineSetup::default()).unwrap());
    // The deadline wins: a quick check that a loaded machine only gets to finish after
    // it is a timeout. 5,000 checks on 2 workers can take a few seconds to get through.
    let options = CheckOptions {
        timeout: Duration::from_secs(5),
        ..CheckOptions::default()
    };
    let started = Instant::now();
    let results = run_scan(engine.clone(), targets, options, CancellationToken::new()).await;
    let elapsed = started.elapsed();

    let mut seen: HashMap<usize, CheckResult> = HashMap::new();
    for (index, result) in results {
        assert!(seen.insert(index, result).is_none(), "target {index} got two results");
    }
    assert_eq!(seen.len(), 5000, "every target has a result");
    let mut wrong = Vec::new();
    for (index, want) in expected.iter().enumerate() {
        let got = &seen[&index];
        if (got.outcome, got.reason) != *want {
            wrong.push(format!(
                "{}: {:?}/{:?} {:?}",
                got.target, got.outcome, got.reason, got.error
            ));
        }
        assert_eq!(got.line, Some(index + 1));
    }
    assert!(
        wrong.is_empty(),
        "{} misclassified, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let ledger = engine.ledger();
    assert!(ledger.balanced(), "{ledger:?}");
    assert_eq!(ledger.started, 5000);
    // Blackholes hold their slot for the whole 5 s timeout; everything else is quick.
    assert!(elapsed < Duration::from_secs(15), "batch took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_batch_finishes_within_its_timeout() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let targets: Vec<Target> = (0..500)
        .map(|i| Target::parse(&format!("http://{}/?i={i}", sim.info.blackhole), None))
        .collect();
    let engine = Arc::new(
        Engine::new(EngineSetup {
            limits: pulsecheck_core::EngineOptions {
                concurrency: 1000,
                per_host: 1000,
            },
            ..EngineSetup::default()
        })
        .unwrap(),
    );
    let options = CheckOptions {
        timeout: Duration::from_secs(1),
        ..CheckOptions::default()
    };
    let started = Instant::now();
    let results = run_scan(engine, targets, options, CancellationToken::new()).await;
    let elapsed = started.elapsed();
    assert_eq!(results.len(), 500);
    assert!(results.iter().all(|(_, r)| r.reason == Some(Reason::Timeout)));
    assert!(elapsed >= Duration::from_secs(1));
    assert!(
        elapsed < Duration::from_secs(4),
        "500 blackholes at 1 s took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_ends_the_scan_promptly_and_keeps_every_target() {
    // The quick targets are on a second address, so the hanging ones (on the first)
    // cannot hold their per-host slots.
    let sim = pulsecheck_sim::start(SimConfig {
        bind: vec![
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        ],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // 20 quick targets, then 2,000 that hang; per-host 50 keeps most of them queued.
    let mut targets: Vec<Target> = (0..20)
        .map(|i| Target::parse(&format!("http://{}/ok?i={i}", sim.info.http[1]), None))
        .collect();
    targets.extend((0..2000).map(|i| Target::parse(&format!("http://{}/?i={i}", sim.info.blackhole), None)));
    let engine = Arc::new(
        Engine::new(EngineSetup {
            limits: pulsecheck_core::EngineOptions {
                concurrency: 100,
                per_host: 50,
            },
            ..EngineSetup::default()
        })
        .unwrap(),
    );
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let ledger = engine.clone();
    // Cancel once the 20 quick checks have finished (the blackholed ones never do), so
    // the count of finished results does not depend on how fast this machine is.
    let stop = async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ledger.ledger().finished < 20 {
            assert!(Instant::now() < deadline, "the quick checks never finished");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        canceller.cancel();
        Instant::now()
    };
    let options = CheckOptions {
        timeout: Duration::from_secs(60),
        ..CheckOptions::default()
    };
    let (results, cancelled_at) = tokio::join!(run_scan(engine.clone(), targets, options, cancel), stop);
    let after_cancel = cancelled_at.elapsed();
    // Prompt: far below the 60 s check timeout, with room for a loaded machine.
    assert!(
        after_cancel < Duration::from_secs(5),
        "scan ended {after_cancel:?} after cancellation"
    );
    assert_eq!(results.len(), 2020);
    let up = results.iter().filter(|(_, r)| r.outcome == Outcome::Up).count();
    let cancelled = results.iter().filter(|(_, r)| r.outcome == Outcome::Cancelled).count();
    assert_eq!(up, 20, "finished results are kept");
    assert_eq!(cancelled, 2000);
    assert!(engine.ledger().balanced());
}

/// With connection reuse, concurrent checks share pooled connections: every target
/// still gets exactly one result, and with at most 4 checks per host in flight only a
/// handful of connections are ever opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_connections_serve_a_whole_batch() {
    let sim = pulsecheck_sim::start(SimConfig::default()).await.unwrap();
    let engine = Arc::new(
        Engine::new(EngineSetup {
            limits: pulsecheck_core::EngineOptions {
                concurrency: 100,
                per_host: 4,
            },
            ..EngineSetup::default()
        })
        .unwrap(),
    );
    let options = CheckOptions {
        timeout: Duration::from_secs(5),
        reuse_connections: true,
        ..CheckOptions::default()
    };
    let targets: Vec<Target> = (0..300)
        .map(|i| Target::parse(&format!("http://{}/delay/5?i={i}", sim.info.http[0]), None))
        .collect();
    let results = run_scan(engine, targets, options, CancellationToken::new()).await;
    let mut seen = vec![0u32; 300];
    for (index, result) in &results {
        assert_eq!(result.outcome, Outcome::Up, "{result:#?}");
        seen[*index] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "exactly one result per target");
    let connected = results.iter().filter(|(_, r)| r.timings.connect_ms.is_some()).count();
    assert!(
        (1..=8).contains(&connected),
        "{connected} of 300 checks opened a connection"
    );
}
