//! The human table: aligned columns, down targets first by default, colour on a terminal.

use std::io::{self, BufWriter, Write};

use pulsecheck_core::{CheckResult, Outcome};

use crate::cli::Order;

#[derive(Clone, Copy, Debug)]
pub struct TableStyle {
    pub color: bool,
    pub order: Order,
}

pub struct Table {
    out: BufWriter<Box<dyn Write + Send>>,
    style: TableStyle,
}

const HEADERS: [&str; 5] = ["TARGET", "RESULT", "STATUS", "TIME", "DETAIL"];

impl Table {
    pub fn new(out: Box<dyn Write + Send>, style: TableStyle) -> Table {
        Table {
            out: BufWriter::new(out),
            style,
        }
    }

    pub fn print(&mut self, results: &[&CheckResult]) -> io::Result<()> {
        let mut rows: Vec<&CheckResult> = results.to_vec();
        if self.style.order == Order::DownFirst {
            // Stable sort keeps input order within each group.
            rows.sort_by_key(|r| match r.outcome {
                Outcome::Down => 0,
                Outcome::Cancelled => 1,
                Outcome::Up => 2,
            });
        }
        let cells: Vec<[String; 5]> = rows.iter().map(|r| row(r)).collect();
        let mut widths = HEADERS.map(str::len);
        for cell in &cells {
            for (width, text) in widths.iter_mut().zip(cell.iter()).take(4) {
                *width = (*width).max(text.chars().count());
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
