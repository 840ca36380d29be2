//! One shutdown path: the first SIGINT/SIGTERM cancels the root token; a second one
//! exits at once with 130.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::exit::Exit;

/// Watches for SIGINT and SIGTERM on a tracked task until `token` is cancelled by
/// someone else or a second signal arrives.
pub fn watch(token: CancellationToken, tasks: &TaskTracker) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let done = token.clone();
    tasks.spawn(async move {
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = done.cancelled(), if signals == 0 => return,
            }
            signals += 1;
            if signals == 1 {
                eprintln!("\ninterrupted: cancelling checks in flight (press Ctrl+C again to exit now)");
                token.cancel();
            } else {
                std::process::exit(Exit::Interrupted as i32);
            }
        }
    });
    Ok(())
}
