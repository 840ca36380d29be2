//! CSV: a header row, then one row per result as it arrives. Times are milliseconds.

use std::io::{self, Write};

use pulsecheck_core::CheckResult;

use super::ms;

const HEADER: [&str; 19] = [
    "target",
    "outcome",
    "reason",
    "http_status",
    "duration_ms",
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "transfer_ms",
    "queue_ms",
    "probe",
    "ip",
    "http_version",
    "redirects",
    "cert_days_left",
    "line",
    "started_at",
    "error",
];

pub struct CsvWriter {
    out: csv::Writer<Box<dyn Write + Send>>,
}

impl CsvWriter {
    pub fn new(out: Box<dyn Write + Send>) -> io::Result<CsvWriter> {
        let mut out = csv::Writer::from_writer(out);
        out.write_record(HEADER)?;
        Ok(CsvWriter { out })
    }

    pub fn write(&mut self, r: &CheckResult) -> io::Result<()> {
        let t = &r.timings;
        let opt = |v: Option<String>| v.unwrap_or_default();
        self.out.write_record([
            r.target.clone(),
            r.outcome.to_string(),
            opt(r.reason.map(|x| x.to_string())),
            opt(r.http_status.map(|x| x.to_string())),
            ms(Some(r.duration_ms)),
            ms(t.dns_ms),
            ms(t.connect_ms),
            ms(t.tls_ms),
            ms(t.ttfb_ms),
            ms(t.transfer_ms),
            ms(Some(r.queue_ms)),
            serde_json::to_value(r.probe)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            opt(r.ip.map(|x| x.to_string())),
            opt(r.http_version.clone()),
            r.redirects.to_string(),
            opt(r.certificate.as_ref().map(|c| c.days_left.to_string())),
            opt(r.line.map(|x| x.to_string())),
            r.started_at.to_string(),
            opt(r.error.clone()),
        ])?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
