//! Plain aligned columns for the store commands (`history`, `incidents`): every column
//! padded to its widest cell, the last one cut to the terminal's width.

use std::io::{self, Write};

use crate::exit::Exit;
use crate::output::cut;

/// The header and rows as aligned text; with `width` (a terminal), the last column is
/// cut so that lines do not wrap.
pub fn columns<const N: usize>(headers: &[&str; N], rows: &mut [[String; N]], width: Option<usize>) -> String {
    let mut widths = headers.map(str::len);
    for row in rows.iter() {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(N - 1) {
            *w = (*w).max(cell.chars().count());
        }
    }
    if let Some(width) = width {
        let before_last: usize = widths.iter().take(N - 1).map(|w| w + 2).sum();
        let room = width.saturating_sub(before_last).max(16);
        for row in rows.iter_mut() {
            row[N - 1] = cut(&row[N - 1], room);
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String; N]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers.map(str::to_owned));
    for row in rows.iter() {
        line(row);
    }
    out
}

/// Writes `text` to stdout: exit 0, or 3 when stdout fails for another reason than a
/// reader that left (`| head`).
pub fn print_stdout(text: &str) -> Exit {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Exit::AllUp,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Exit::AllUp,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            Exit::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_one_fits_the_width() {
        let mut rows = [
            ["a".to_owned(), "x".repeat(40)],
            ["longer".to_owned(), "short".to_owned()],
        ];
        let text = columns(&["NAME", "DETAIL"], &mut rows, Some(30));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME    DETAIL");
        assert_eq!(lines[2], "longer  short");
        assert_eq!(lines[1].chars().count(), 30);
        assert!(lines[1].ends_with('…'));
    }
}
