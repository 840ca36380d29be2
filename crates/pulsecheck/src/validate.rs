//! `pulsecheck validate FILE`: reports every error in a config file, with its file,
//! line and column and a hint; exit 2 when there is any.

use pulsecheck_core::config;

use crate::cli::ValidateArgs;
use crate::exit::Exit;

pub fn run(args: ValidateArgs) -> Exit {
    match config::load(&args.config) {
        Ok(config) => match crate::serve::build_channels(&config) {
            Ok(_) => {
                println!(
                    "{}: ok ({} checks, {} channels, {} maintenance windows)",
                    args.config.display(),
                    config.checks.len(),
                    config.channels.len(),
                    config.maintenance.len()
                );
                Exit::AllUp
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("{} error(s)", errors.len());
                Exit::BadInput
            }
        },
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!("{} error(s)", errors.len());
            Exit::BadInput
        }
    }
}
