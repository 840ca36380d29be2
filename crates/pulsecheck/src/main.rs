fn main() -> std::process::ExitCode {
    pulsecheck::run(std::env::args_os()).into()
}
