//! `pulsecheck validate FILE`: reports every error in a config file, with its file,
//! line and column and a hint; exit 2 when there is any.

use crate::cli::ValidateArgs;
use crate::config_file;
use crate::exit::Exit;

pub fn run(args: ValidateArgs) -> Exit {
    match config_file::load_or_report(&args.config) {
        Ok(loaded) => {
            let config = &loaded.config;
            println!(
                "{}: ok ({} checks, {} channels, {} maintenance windows)",
                args.config.display(),
                config.checks.len(),
                config.channels.len(),
                config.maintenance.len()
            );
            Exit::AllUp
        }
        Err(exit) => exit,
    }
}
