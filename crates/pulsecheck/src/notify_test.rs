//! `pulsecheck notify-test CHANNEL`: sends one test message through a configured channel
//! and says whether it was accepted.

use crate::cli::NotifyTestArgs;
use crate::exit::Exit;

pub fn run(args: NotifyTestArgs) -> Exit {
    let channels = match crate::config_file::load_or_report(&args.config) {
        Ok(loaded) => loaded.channels,
        Err(exit) => return exit,
    };
    let Some(channel) = channels.get(&args.channel) else {
        let mut names: Vec<&str> = channels.keys().map(String::as_str).collect();
        names.sort_unstable();
        eprintln!(
            "error: no channel '{}' in {}; channels: {}",
            args.channel,
            args.config.display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        return Exit::BadInput;
    };
    let runtime = match crate::runtime::build(crate::runtime::Threads::One) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    match runtime.block_on(pulsecheck_notify::send_test(channel, "pulsecheck-notify-test")) {
        Ok(()) => {
            println!("sent a test message through '{}' ({})", args.channel, channel.kind());
            Exit::AllUp
        }
        Err(e) => {
            eprintln!("error: '{}' did not accept the test message: {e}", args.channel);
            Exit::SomeDown
        }
    }
}
