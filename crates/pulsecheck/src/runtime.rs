//! The tokio runtime each command runs on.

use tokio::runtime::{Builder, Runtime};

use crate::exit::Exit;

/// Which runtime a command needs: the engine wants every core; one-shot store or
/// delivery commands need one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    All,
    One,
}

/// Builds the runtime, or says why not (exit code 3).
pub fn build(threads: Threads) -> Result<Runtime, Exit> {
    let mut builder = match threads {
        Threads::All => Builder::new_multi_thread(),
        Threads::One => Builder::new_current_thread(),
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the tokio runtime: {e}");
        Exit::Internal
    })
}
