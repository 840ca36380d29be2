//! The README's command-line reference is the binary's `--help`, word for word, for the
//! top level and every subcommand, so the docs cannot drift from the flags.
//!
//! Each block in README.md sits under a marker naming its command:
//!
//! ````text
//! <!-- usage: pulsecheck scan --help -->
//! ```text
//! …the output of `pulsecheck scan --help`…
//! ```
//! ````
//!
//! After changing a flag or its help, refresh every block with
//! `UPDATE_README=1 cargo test -p pulsecheck --test it usage`.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pulsecheck");
const UPDATE: &str = "UPDATE_README=1 cargo test -p pulsecheck --test it usage";

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

/// `pulsecheck [SUBCOMMAND] --help`, as it prints when stdout is not a terminal (clap
/// then wraps at 100 columns).
fn help(subcommand: Option<&str>) -> String {
    let output = Command::new(BIN)
        .args(subcommand)
        .arg("--help")
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .output()
        .expect("pulsecheck runs");
    assert!(output.status.success(), "{subcommand:?} --help failed: {output:?}");
    let text = String::from_utf8(output.stdout).expect("help is UTF-8");
    // Markdown editors strip trailing spaces; so does the comparison.
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_owned()
}

/// The subcommands listed by the top-level help, except `help` itself.
fn subcommands(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

fn marker(command: &str) -> String {
    format!("<!-- usage: {command} --help -->")
}

/// The line range (start, end) of the block's contents under `marker`: from the line
/// after the opening fence to the closing fence, exclusive.
fn block(lines: &[&str], marker: &str) -> Result<(usize, usize), String> {
    let at = lines
        .iter()
        .position(|line| line.trim() == marker)
        .ok_or_else(|| format!("README.md has no `{marker}` line; add it, followed by an empty ```text block"))?;
    if lines.get(at + 1).map(|l| l.trim()) != Some("```text") {
        return Err(format!("`{marker}` in README.md must be followed by a ```text line"));
    }
    let end = lines[at + 2..]
        .iter()
        .position(|line| line.trim() == "```")
        .ok_or_else(|| format!("the block under `{marker}` in README.md is not closed"))?;
    Ok((at + 2, at + 2 + end))
}

/// A line diff (longest common subsequence), `-` for the README, `+` for `--help`, with
/// up to `CONTEXT` unchanged lines around each change.
fn diff(old: &[&str], new: &[&str]) -> String {
    const CONTEXT: usize = 2;
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            ops.push((' ', old[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', old[i]));
            i += 1;
        } else {
            ops.push(('+', new[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (mark, line)) in ops.iter().enumerate() {
        if near(k) {
            out.push_str(&format!("{mark} {line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("  …\n");
            skipped = true;
        }
    }
    out
}

#[test]
fn readme_usage_blocks_match_help() {
    let top = help(None);
    let mut commands = vec![("pulsecheck".to_owned(), top.clone())];
    let names = subcommands(&top);
    assert!(names.iter().any(|n| n == "scan"), "no subcommands found in:\n{top}");
    for name in names {
        let text = help(Some(&name));
        commands.push((format!("pulsecheck {name}"), text));
    }

    let path = readme_path();
    let readme = std::fs::read_to_string(&path).expect("README.md is readable");
    let mut lines: Vec<&str> = readme.lines().collect();
    let update = std::env::var_os("UPDATE_README").is_some();
    let mut problems = Vec::new();
    for (command, help) in &commands {
        let marker = marker(command);
        let (start, end) = match block(&lines, &marker) {
            Ok(range) => range,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let documented: Vec<&str> = lines[start..end].iter().map(|l| l.trim_end()).collect();
        let actual: Vec<&str> = help.lines().collect();
        if documented == actual {
            continue;
        }
        if update {
            lines.splice(start..end, actual);
        } else {
            problems.push(format!(
                "README.md's `{command} --help` block differs from the binary (- README, + --help):\n{}",
                diff(&documented, &actual)
            ));
        }
    }
    if update && problems.is_empty() {
        let mut text = lines.join("\n");
        text.push('\n');
        if text != readme {
            std::fs::write(&path, text).expect("README.md is writable");
            eprintln!("README.md: usage blocks updated");
        }
        return;
    }
    assert!(
        problems.is_empty(),
        "{}\n\nTo refresh the blocks from the binary, run:\n    {UPDATE}\n",
        problems.join("\n\n")
    );
}

#[test]
fn diff_marks_added_and_removed_lines() {
    let old = ["a", "b", "c"];
    let new = ["a", "x", "c", "d"];
    assert_eq!(diff(&old, &new), "  a\n- b\n+ x\n  c\n+ d\n");
    // Far from a change, unchanged lines collapse.
    let old = ["1", "2", "3", "4", "5", "6", "7", "8"];
    let new = ["1", "2", "3", "4", "5", "6", "7", "9"];
    assert_eq!(diff(&old, &new), "  …\n  6\n  7\n- 8\n+ 9\n");
}

#[test]
fn a_block_is_found_by_its_marker() {
    let lines = [
        "intro",
        "<!-- usage: pulsecheck --help -->",
        "```text",
        "one",
        "two",
        "```",
        "after",
    ];
    assert_eq!(block(&lines, &marker("pulsecheck")), Ok((3, 5)));
    assert!(block(&lines, &marker("pulsecheck scan"))
        .unwrap_err()
        .contains("has no"));
    let open = ["<!-- usage: pulsecheck --help -->", "```text", "one"];
    assert!(block(&open, &marker("pulsecheck")).unwrap_err().contains("not closed"));
}
