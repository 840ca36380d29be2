//! The `pulsecheck` command: parses arguments, runs the engine, maps the outcome to a
//! documented exit code. The work itself is in `pulsecheck-core`.

pub mod cli;
pub mod columns;
pub mod config_file;
pub mod database;
pub mod demo;
pub mod exit;
pub mod history;
pub mod incidents;
pub mod inputs;
pub mod logging;
pub mod notify_test;
pub mod output;
pub mod progress;
pub mod runtime;
pub mod scan;
pub mod serve;
pub mod setup;
pub mod signals;
pub mod status;
pub mod summary;
pub mod uptime;
pub mod validate;
pub mod when;

use clap::Parser;

pub use exit::Exit;

/// Runs the command line `args` (including the program name).
pub fn run<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() { Exit::BadInput } else { Exit::AllUp };
        }
    };
    match cli.command {
        cli::Command::Scan(args) => scan::run(*args),
        cli::Command::Demo(args) => demo::run(args),
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Validate(args) => validate::run(args),
        cli::Command::Status(args) => status::run(args),
        cli::Command::History(args) => history::run(args),
        cli::Command::Incidents(args) => incidents::run(args),
        cli::Command::NotifyTest(args) => notify_test::run(args),
    }
}
