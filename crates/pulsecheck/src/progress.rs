//! The scan's progress bar on stderr. It redraws on a timer, not only when a check
//! finishes, so a batch waiting on slow targets shows its clock and the checks still in
//! flight moving instead of looking hung.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often the bar redraws while nothing finishes (at most 200 ms, as promised).
pub const REDRAW_EVERY: Duration = Duration::from_millis(100);

const TEMPLATE: &str = "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} done · {in_flight} in flight · {msg}";

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar that draws nothing (stderr is not a terminal, or `--no-progress`).
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// A bar for `total` checks drawn to `target`; `in_flight` is read at every redraw.
    pub fn new<F>(total: usize, target: ProgressDrawTarget, in_flight: F) -> Progress
    where
        F: Fn() -> u64 + Send + Sync + Clone + 'static,
    {
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        let in_flight_key = move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = out.write_fmt(format_args!("{}", in_flight()));
        };
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.with_key("in_flight", in_flight_key).progress_chars("=> "));
        }
        bar.enable_steady_tick(REDRAW_EVERY);
        Progress { bar }
    }

    /// One more check finished; `up` and `down` so far.
    pub fn finished_one(&self, up: usize, down: usize) {
        self.bar.inc(1);
        self.bar.set_message(format!("{up} up · {down} down"));
    }

    /// Removes the bar, before the table and the summary print.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use indicatif::TermLike;

    use super::*;

    /// A terminal that records what is drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Recorder {
        fn frames(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
        fn push(&self, text: String) -> std::io::Result<()> {
            self.0.lock().unwrap().push(text);
            Ok(())
        }
    }

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(s.to_owned())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.push(s.to_owned())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push("<clear>".into())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Waits until `done` holds, polling, for a generous minute at most.
    async fn wait_until(what: &str, recorder: &Recorder, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&recorder.frames()) {
            assert!(Instant::now() < deadline, "{what}; drawn: {:?}", recorder.frames());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_bar_redraws_while_no_check_finishes_and_shows_the_checks_in_flight() {
        let recorder = Recorder::default();
        let in_flight = Arc::new(AtomicU64::new(3));
        let count = in_flight.clone();
        let progress = Progress::new(
            10,
            ProgressDrawTarget::term_like(Box::new(recorder.clone())),
            move || count.load(Ordering::Relaxed),
        );
        // No check finishes: only the timer can redraw. Several frames, with the clock.
        wait_until("five redraws with 3 in flight", &recorder, |frames| {
            frames.iter().filter(|f| f.contains("0/10 done · 3 in flight")).count() >= 5
        })
        .await;
        assert!(recorder.frames().iter().any(|f| f.contains("00:00:0")), "elapsed time");
        // The count in flight is read afresh at each redraw.
        in_flight.store(1, Ordering::Relaxed);
        wait_until("a redraw with 1 in flight", &recorder, |frames| {
            frames.iter().any(|f| f.contains("1 in flight"))
        })
        .await;
        progress.finished_one(1, 0);
        progress.clear();
        let frames = recorder.frames();
        let last_bar = frames.iter().rposition(|f| f.contains("in flight")).unwrap();
        assert!(frames[last_bar..].iter().any(|f| f == "<clear>"), "cleared: {frames:?}");
    }
}
