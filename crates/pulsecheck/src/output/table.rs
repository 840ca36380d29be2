//! The human table: aligned columns, down targets last (nearest the prompt) by default,
//! colour on a terminal, details cut to the terminal's width (JSON and CSV keep the full
//! text), and past a size only the targets that are not up.

use std::io::{self, BufWriter, Write};

use pulsecheck_core::{CheckResult, Outcome};

use crate::cli::Order;

/// Which rows the table lists, once `--show auto` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    All,
    /// Down, invalid and cancelled targets; a line says how many up ones were left out.
    NotUp,
}

#[derive(Clone, Copy, Debug)]
pub struct TableStyle {
    pub color: bool,
    pub order: Order,
    pub rows: Rows,
    /// The terminal's width in columns: DETAIL is cut to fit it. `None` (a pipe, a
    /// file) keeps every line whole.
    pub width: Option<usize>,
}

pub struct Table {
    out: BufWriter<Box<dyn Write + Send>>,
    style: TableStyle,
}

const HEADERS: [&str; 5] = ["TARGET", "RESULT", "STATUS", "TIME", "DETAIL"];
/// DETAIL keeps at least this many characters however narrow the terminal.
const MIN_DETAIL: usize = 16;

impl Table {
    pub fn new(out: Box<dyn Write + Send>, style: TableStyle) -> Table {
        Table {
            out: BufWriter::new(out),
            style,
        }
    }

    pub fn print(&mut self, results: &[&CheckResult]) -> io::Result<()> {
        let mut rows: Vec<&CheckResult> = results.to_vec();
        if self.style.rows == Rows::NotUp {
            rows.retain(|r| r.outcome != Outcome::Up);
            let hidden = results.len() - rows.len();
            if hidden > 0 {
                writeln!(
                    self.out,
                    "{hidden} up targets not listed (--show all lists them); the summary counts every target"
                )?;
            }
        }
        // Stable sorts keep input order within each group.
        match self.style.order {
            Order::DownFirst => rows.sort_by_key(|r| match r.outcome {
                Outcome::Down => 0,
                Outcome::Cancelled => 1,
                Outcome::Up => 2,
            }),
            Order::DownLast => rows.sort_by_key(|r| match r.outcome {
                Outcome::Up => 0,
                Outcome::Cancelled => 1,
                Outcome::Down => 2,
            }),
            Order::Input => {}
        }
        let mut cells: Vec<[String; 5]> = rows.iter().map(|r| row(r)).collect();
        let mut widths = HEADERS.map(str::len);
        for cell in &cells {
            for (width, text) in widths.iter_mut().zip(cell.iter()).take(4) {
                *width = (*width).max(text.chars().count());
            }
        }
        if let Some(width) = self.style.width {
            let before_detail: usize = widths.iter().take(4).map(|w| w + 2).sum();
            let room = width.saturating_sub(before_detail).max(MIN_DETAIL);
            for cell in &mut cells {
                cell[4] = cut(&cell[4], room);
            }
        }
        self.line(&HEADERS.map(str::to_owned), &widths, None)?;
        for (cell, result) in cells.iter().zip(rows) {
            self.line(cell, &widths, Some(result.outcome))?;
        }
        self.out.flush()
    }

    fn line(&mut self, cells: &[String; 5], widths: &[usize; 5], outcome: Option<Outcome>) -> io::Result<()> {
        let color = match (self.style.color, outcome) {
            (true, Some(Outcome::Up)) => "\x1b[32m",
            (true, Some(Outcome::Down)) => "\x1b[31m",
            (true, Some(Outcome::Cancelled)) => "\x1b[33m",
            (true, None) => "\x1b[1m",
            (false, _) => "",
        };
        let reset = if color.is_empty() { "" } else { "\x1b[0m" };
        let [target, result, status, time, detail] = cells;
        let line = format!(
            "{target:<w0$}  {color}{result:<w1$}{reset}  {status:>w2$}  {time:>w3$}  {detail}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        // No trailing spaces when DETAIL is empty: they are noise in diffs and pipes.
        writeln!(self.out, "{}", line.trim_end())
    }
}

/// `text` in at most `room` characters, an ellipsis marking a cut, on one line.
pub(crate) fn cut(text: &str, room: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= room {
        return one_line;
    }
    let mut kept: String = one_line.chars().take(room.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

fn row(r: &CheckResult) -> [String; 5] {
    let result = match r.reason {
        Some(reason) => format!("{} {}", r.outcome, reason),
        None => r.outcome.to_string(),
    };
    let status = r.http_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let time = format!("{}ms", super::ms(Some(r.duration_ms)));
    let mut detail = r.error.clone().unwrap_or_default();
    if detail.is_empty() {
        if let Some(cert) = &r.certificate {
            detail = format!("certificate expires in {} days", cert.days_left);
        }
    }
    [r.target.clone(), result, status, time, detail]
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use pulsecheck_core::{ProbeKind, Reason};

    use super::*;

    /// A `Write` whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn result(target: &str, outcome: Outcome, error: Option<&str>) -> CheckResult {
        let mut r = CheckResult::new(target, None, ProbeKind::Http, outcome);
        if outcome == Outcome::Down {
            r.reason = Some(Reason::Timeout);
        }
        r.error = error.map(str::to_owned);
        r
    }

    fn print(style: TableStyle, results: &[CheckResult]) -> Vec<String> {
        let captured = Captured::default();
        let mut table = Table::new(Box::new(captured.clone()), style);
        table.print(&results.iter().collect::<Vec<_>>()).unwrap();
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(str::to_owned).collect()
    }

    fn style(order: Order, rows: Rows, width: Option<usize>) -> TableStyle {
        TableStyle {
            color: false,
            order,
            rows,
            width,
        }
    }

    fn batch() -> Vec<CheckResult> {
        let long = "connect timed out after 5 s while waiting for the server to accept the connection, \
                    which it never did; the host may be down or a firewall may drop packets";
        vec![
            result("http://a.test/", Outcome::Down, Some(long)),
            result("http://b.test/", Outcome::Up, None),
            result("http://c.test/", Outcome::Cancelled, None),
            result("http://d.test/", Outcome::Up, None),
            result("http://e.test/", Outcome::Down, Some("refused")),
        ]
    }

    fn targets(lines: &[String]) -> Vec<&str> {
        lines
            .iter()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect()
    }

    #[test]
    fn down_rows_come_last_by_default_nearest_the_prompt() {
        let lines = print(style(Order::DownLast, Rows::All, None), &batch());
        assert!(lines[0].starts_with("TARGET"));
        assert_eq!(
            targets(&lines),
            [
                "http://b.test/",
                "http://d.test/",
                "http://c.test/",
                "http://a.test/",
                "http://e.test/"
            ]
        );
        let lines = print(style(Order::DownFirst, Rows::All, None), &batch());
        assert_eq!(targets(&lines)[..2], ["http://a.test/", "http://e.test/"]);
    }

    #[test]
    fn only_targets_that_are_not_up_with_a_count_of_the_others() {
        let lines = print(style(Order::DownLast, Rows::NotUp, None), &batch());
        assert!(lines[0].starts_with("2 up targets not listed (--show all"), "{lines:?}");
        assert_eq!(
            targets(&lines[1..]),
            ["http://c.test/", "http://a.test/", "http://e.test/"]
        );
    }

    #[test]
    fn details_are_cut_to_the_terminal_width_and_kept_whole_elsewhere() {
        let lines = print(style(Order::Input, Rows::All, Some(80)), &batch());
        for line in &lines {
            assert!(line.chars().count() <= 80, "{} columns: {line}", line.chars().count());
        }
        assert!(lines[1].ends_with('…'), "{}", lines[1]);
        assert!(lines[5].ends_with("refused"), "short details stay whole");
        let whole = print(style(Order::Input, Rows::All, None), &batch());
        assert!(whole[1].ends_with("a firewall may drop packets"), "{}", whole[1]);
        // However narrow the terminal, some of the detail shows.
        let narrow = print(style(Order::Input, Rows::All, Some(20)), &batch());
        assert_eq!(narrow[1].split("  ").last().unwrap().chars().count(), MIN_DETAIL);
    }

    #[test]
    fn cut_keeps_one_line() {
        assert_eq!(cut("a\nb", 10), "a b");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abcd", 4), "abcd");
    }
}
