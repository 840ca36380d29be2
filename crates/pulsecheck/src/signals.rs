//! One shutdown path for every command: the first SIGINT/SIGTERM cancels the root
//! token; a second one exits at once with 130.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::exit::Exit;

/// Watches for SIGINT and SIGTERM on a tracked task: the first prints `first_message`
/// and cancels `shutdown`, the second exits the process. The watch ends when `finished`
/// is cancelled.
pub fn watch(
    shutdown: CancellationToken,
    finished: CancellationToken,
    tasks: &TaskTracker,
    first_message: &'static str,
) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tasks.spawn(async move {
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = finished.cancelled() => return,
            }
            signals += 1;
            // Cancel before printing: a stderr that is not read must not hold up the stop.
            if signals == 1 {
                shutdown.cancel();
                crate::logging::note(first_message);
            } else {
                crate::logging::note("second signal: exiting now");
                std::process::exit(Exit::Interrupted as i32);
            }
        }
    });
    Ok(())
}
