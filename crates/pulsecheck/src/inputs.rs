//! Gathering targets from arguments, files and stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use pulsecheck_core::Target;

/// A targets source that cannot be read: the scan does not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot read targets from {source_name}: {message}")]
pub struct InputError {
    pub source_name: String,
    pub message: String,
}

/// Where targets come from, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Literal(String),
    File(PathBuf),
    Stdin,
}

/// Sorts positional arguments: `-` is stdin, anything with `://` is a target, an existing
/// path is a file, and anything else is a bare target (`example.com`, `host:22`).
pub fn classify(inputs: &[String], files: &[PathBuf]) -> Vec<Source> {
    let mut sources: Vec<Source> = inputs
        .iter()
        .map(|input| {
            if input == "-" {
                Source::Stdin
            } else if input.contains("://") {
                Source::Literal(input.clone())
            } else if Path::new(input).is_file() || looks_like_a_path(input) {
                Source::File(PathBuf::from(input))
            } else {
                Source::Literal(input.clone())
            }
        })
        .collect();
    sources.extend(files.iter().map(|f| {
        if f.as_os_str() == "-" {
            Source::Stdin
        } else {
            Source::File(f.clone())
        }
    }));
    sources
}

/// `./x`, `/x`, `~/x` or `x.txt` is meant as a file even when it does not exist, so a
/// typo in a file name is an error rather than a check of a host called `definitely`.
fn looks_like_a_path(input: &str) -> bool {
    const FILE_EXTENSIONS: [&str; 5] = [".txt", ".list", ".lst", ".csv", ".conf"];
    input.starts_with(['/', '.', '~']) || FILE_EXTENSIONS.iter().any(|ext| input.ends_with(ext))
}

/// Reads every source. Lines keep their 1-based line numbers; a line that does not
/// parse becomes an invalid target (reported as a result), never an abort.
pub fn read_targets(sources: &[Source]) -> Result<Vec<Target>, InputError> {
    let mut targets = Vec::new();
    let mut stdin_read = false;
    for source in sources {
        match source {
            Source::Literal(text) => targets.push(Target::parse(text, None)),
            Source::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| InputError {
                    source_name: format!("'{}'", path.display()),
                    message: match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            "no such file; pass a targets file, targets, or - for stdin".into()
                        }
                        _ => e.to_string(),
                    },
                })?;
                parse_lines(&bytes, &mut targets);
            }
            Source::Stdin => {
                if stdin_read {
                    continue;
                }
                stdin_read = true;
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).map_err(|e| InputError {
                    source_name: "stdin".into(),
                    message: e.to_string(),
                })?;
                parse_lines(&bytes, &mut targets);
            }
        }
    }
    Ok(targets)
}

/// One target per line; blank lines and `#` comment lines are skipped, and so is a
/// UTF-8 byte-order mark at the start (some editors on Windows write one).
pub fn parse_lines(bytes: &[u8], targets: &mut Vec<Target>) {
    const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";
    let bytes = bytes.strip_prefix(BYTE_ORDER_MARK).unwrap_or(bytes);
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text.trim(),
            Err(_) => {
                let lossy = String::from_utf8_lossy(raw).trim().to_owned();
                let mut target = Target::parse(&lossy, Some(line));
                target.spec = Err(pulsecheck_core::InvalidTarget {
                    message: "not valid UTF-8; save the file as UTF-8".into(),
                });
                targets.push(target);
                continue;
            }
        };
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        targets.push(Target::parse(text, Some(line)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_comments_and_numbers_lines() {
        let mut targets = Vec::new();
        parse_lines(
            b"# header\n\nhttp://127.0.0.1:1/ok\r\n  tcp://nope\n\xff\xfe\n",
            &mut targets,
        );
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0].line, Some(3));
        assert!(targets[0].spec.is_ok());
        assert_eq!(targets[1].line, Some(4));
        assert!(targets[1].spec.is_err());
        assert!(targets[2].spec.as_ref().unwrap_err().message.contains("UTF-8"));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_target() {
        let mut targets = Vec::new();
        parse_lines(
            b"\xEF\xBB\xBFhttp://127.0.0.1:1/ok\r\n\xEF\xBB\xBFtcp://x:1\n",
            &mut targets,
        );
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].input, "http://127.0.0.1:1/ok");
        assert_eq!(targets[0].line, Some(1));
        assert!(targets[0].spec.is_ok(), "{:?}", targets[0].spec);
        // Only at the start of the file: elsewhere it is part of the line.
        assert!(targets[1].spec.is_err(), "{:?}", targets[1].spec);
    }

    #[test]
    fn classifies_arguments() {
        let sources = classify(&["-".into(), "http://x".into(), "example.com".into()], &[]);
        assert_eq!(
            sources,
            vec![
                Source::Stdin,
                Source::Literal("http://x".into()),
                Source::Literal("example.com".into())
            ]
        );
    }
}
