//! Documented exit codes (README, "Exit codes").

use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    AllUp = 0,
    SomeDown = 1,
    BadInput = 2,
    Internal = 3,
    /// `status`: results are too old to trust (the daemon is not running, or a check
    /// has not run for two intervals).
    Stale = 4,
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}
