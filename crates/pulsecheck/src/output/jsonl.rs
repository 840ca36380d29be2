//! JSON Lines: one object per result, written as each result arrives.

use std::io::{self, BufWriter, Write};

use pulsecheck_core::CheckResult;

pub struct JsonLines {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl JsonLines {
    pub fn new(out: Box<dyn Write + Send>) -> JsonLines {
        JsonLines {
            out: BufWriter::with_capacity(64 * 1024, out),
        }
    }

    pub fn write(&mut self, result: &CheckResult) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, result).map_err(io::Error::from)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
