//! Noticing that nobody reads stdout any more (`| head` exited), without writing to it:
//! a pipe's write end reports an error condition (`POLLERR`) once its read end is
//! closed, so a scan whose next result is minutes away still stops at once.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};

/// Resolves when stdout is a pipe whose reader has gone. Never resolves for a terminal
/// or a file (they have no reader to lose), or when the watch cannot be set up.
pub async fn stdout_reader_gone() {
    let Some(fd) = stdout_pipe() else {
        return std::future::pending().await;
    };
    let (gone, wait) = tokio::sync::oneshot::channel();
    // A plain thread, not a blocking task: it may wait for the whole run, and the
    // runtime must not wait for it on shutdown; it ends with the process.
    let spawned = std::thread::Builder::new().name("stdout-reader".into()).spawn(move || {
        if wait_for_reader_to_leave(&fd) {
            let _ = gone.send(());
        }
    });
    if spawned.is_err() || wait.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A duplicate of stdout's descriptor when it is a pipe.
fn stdout_pipe() -> Option<OwnedFd> {
    use std::os::unix::fs::FileTypeExt;
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    let file = std::fs::File::from(fd);
    file.metadata().ok()?.file_type().is_fifo().then(|| file.into())
}

/// Blocks until the pipe reports an error or hang-up (its reader closed); false when
/// poll itself fails.
fn wait_for_reader_to_leave(fd: &OwnedFd) -> bool {
    loop {
        // No events asked for: POLLERR and POLLHUP are always reported.
        let mut fds = [PollFd::new(fd, PollFlags::empty())];
        match poll(&mut fds, None) {
            Ok(_) if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => return true,
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}
