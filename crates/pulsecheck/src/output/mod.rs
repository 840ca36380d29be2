//! Result output: JSON Lines and CSV stream as results arrive; the table is printed at
//! the end, sorted. A closed pipe (`| head`) stops output quietly, not with an error.

mod csv;
mod jsonl;
mod reader;
mod table;

use std::io::{self, Write};

use pulsecheck_core::CheckResult;

pub use reader::stdout_reader_gone;
pub use table::{Rows, TableStyle};

/// Where results go, in one of the formats.
pub enum ResultWriter {
    Json(jsonl::JsonLines),
    Csv(Box<csv::CsvWriter>),
    Table(table::Table),
}

impl ResultWriter {
    pub fn json(out: Box<dyn Write + Send>) -> ResultWriter {
        ResultWriter::Json(jsonl::JsonLines::new(out))
    }

    pub fn csv(out: Box<dyn Write + Send>) -> io::Result<ResultWriter> {
        Ok(ResultWriter::Csv(Box::new(csv::CsvWriter::new(out)?)))
    }

    pub fn table(out: Box<dyn Write + Send>, style: TableStyle) -> ResultWriter {
        ResultWriter::Table(table::Table::new(out, style))
    }

    /// Whether [`ResultWriter::finish`] needs every result (the table sorts them).
    pub fn needs_all_results(&self) -> bool {
        matches!(self, ResultWriter::Table(_))
    }

    /// Called once per result, as it arrives.
    pub fn result(&mut self, result: &CheckResult) -> io::Result<()> {
        match self {
            ResultWriter::Json(w) => w.write(result),
            ResultWriter::Csv(w) => w.write(result),
            ResultWriter::Table(_) => Ok(()),
        }
    }

    /// Lets streamed output reach a pipe when no more results are waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            ResultWriter::Json(w) => w.flush(),
            ResultWriter::Csv(w) => w.flush(),
            ResultWriter::Table(_) => Ok(()),
        }
    }

    /// Called once at the end with every result in input order.
    pub fn finish(&mut self, results: &[&CheckResult]) -> io::Result<()> {
        match self {
            ResultWriter::Json(w) => w.flush(),
            ResultWriter::Csv(w) => w.flush(),
            ResultWriter::Table(w) => w.print(results),
        }
    }
}

pub(crate) use table::cut;

/// Milliseconds with one decimal for humans, or empty.
pub(crate) fn ms(duration: Option<std::time::Duration>) -> String {
    duration.map_or_else(String::new, |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}
