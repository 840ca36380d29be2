//! Prometheus text format 0.0.4 and OpenMetrics 1.0, written straight into one buffer
//! (a scrape of 10,000 checks allocates the buffer and little else).

use std::fmt::Write;

/// Which text format a scrape asked for (by its `Accept` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the client lists it (Prometheus does, first), else the classic
    /// text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// Samples are written `NAME_total`; the family is `NAME`.
    Counter,
    Histogram,
}

/// A metrics page being written.
pub struct Exposition {
    buf: String,
    format: Format,
}

impl Exposition {
    pub fn new(format: Format, capacity: usize) -> Exposition {
        Exposition {
            buf: String::with_capacity(capacity),
            format,
        }
    }

    /// Starts a family. For a counter give the name without `_total`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let (shown, kind) = match (kind, self.format) {
            (Kind::Counter, Format::Prometheus) => (format!("{name}_total"), "counter"),
            (Kind::Counter, Format::OpenMetrics) => (name.to_owned(), "counter"),
            (Kind::Gauge, _) => (name.to_owned(), "gauge"),
            (Kind::Histogram, _) => (name.to_owned(), "histogram"),
        };
        let _ = writeln!(self.buf, "# HELP {shown} {}", escape_help(help));
        let _ = writeln!(self.buf, "# TYPE {shown} {kind}");
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.buf.push_str(name);
        if !labels.is_empty() {
            self.buf.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(',');
                }
                self.buf.push_str(key);
                self.buf.push_str("=\"");
                escape_label_into(&mut self.buf, value);
                self.buf.push('"');
            }
            self.buf.push('}');
        }
        self.buf.push(' ');
        write_value(&mut self.buf, value);
        self.buf.push('\n');
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The page; OpenMetrics ends with `# EOF`.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.buf.push_str("# EOF\n");
        }
        self.buf
    }
}

fn write_value(buf: &mut String, value: f64) {
    if value.is_nan() {
        buf.push_str("NaN");
    } else if value == f64::INFINITY {
        buf.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        buf.push_str("-Inf");
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(buf, "{}", value as i64);
    } else {
        let _ = write!(buf, "{value}");
    }
}

fn escape_label_into(buf: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '"' => buf.push_str("\\\""),
            '\n' => buf.push_str("\\n"),
            c => buf.push(c),
        }
    }
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats() {
        for (format, total, eof) in [
            (Format::Prometheus, "# TYPE c_total counter", false),
            (Format::OpenMetrics, "# TYPE c counter", true),
        ] {
            let mut page = Exposition::new(format, 64);
            page.family("c", Kind::Counter, "A counter");
            page.sample("c_total", &[("a", "x\"y\\z\nw")], 3.0);
            page.family("g", Kind::Gauge, "A gauge");
            page.sample("g", &[], 0.25);
            page.sample("g", &[], f64::NAN);
            let text = page.finish();
            assert!(text.contains(total), "{text}");
            assert!(text.contains("c_total{a=\"x\\\"y\\\\z\\nw\"} 3\n"), "{text}");
            assert!(text.contains("g 0.25\ng NaN\n"), "{text}");
            assert_eq!(text.ends_with("# EOF\n"), eof);
        }
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }
}
