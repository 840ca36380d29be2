//! `pulsecheck status`: the current state of every check, read from the store, as a
//! table or JSON. Works whether or not the daemon is running.

use std::io::{self, Write};

use pulsecheck_store::{CheckStatus, Store};

use crate::cli::{StatusArgs, StatusFormat};
use crate::exit::Exit;

pub fn run(args: StatusArgs) -> Exit {
    let configured = match &args.config {
        Some(path) => match crate::config_file::load_or_report(path) {
            Ok(loaded) => loaded.config.store.path,
            Err(exit) => return exit,
        },
        None => None,
    };
    let path = crate::serve::database_path(args.db.as_deref(), args.config.as_deref(), configured.as_deref());
    if !path.exists() {
        eprintln!(
            "error: no database at {}; start `pulsecheck serve` first, or pass --db PATH or --config FILE",
            path.display()
        );
        return Exit::BadInput;
    }
    let runtime = match crate::runtime::build(crate::runtime::Threads::One) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let rows = runtime.block_on(async {
        let store = Store::open_existing(&path).await?;
        let rows = store.status().await;
        store.close().await;
        rows
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    };
    let written = match args.format {
        StatusFormat::Json => print_json(&rows),
        StatusFormat::Table => print_table(&rows),
    };
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("error: {e}");
            return Exit::Internal;
        }
    }
    if rows
        .iter()
        .any(|r| r.active && r.state == pulsecheck_core::state::State::Down)
    {
        Exit::SomeDown
    } else {
        Exit::AllUp
    }
}

fn print_json(rows: &[CheckStatus]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for row in rows {
        serde_json::to_writer(&mut out, row)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn print_table(rows: &[CheckStatus]) -> io::Result<()> {
    let headers = ["CHECK", "GROUP", "STATE", "SINCE", "LAST RESULT", "ALERTS", "DETAIL"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .filter(|r| r.active)
        .map(|r| {
            let last = match (r.last_outcome, r.last_duration_ms) {
                (Some(outcome), Some(ms)) => format!("{outcome} {ms:.0}ms"),
                (Some(outcome), None) => outcome.to_string(),
                _ => "-".into(),
            };
            let alerts = match (r.pending_notifications, r.dead_notifications) {
                (0, 0) => "-".to_owned(),
                (pending, 0) => format!("{pending} pending"),
                (pending, dead) => format!("{pending} pending, {dead} dead"),
            };
            [
                r.name.clone(),
                r.group.clone().unwrap_or_else(|| "-".into()),
                r.state.to_string(),
                r.since
                    .map_or_else(|| "-".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()),
                last,
                alerts,
                r.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(6) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut line = |cells: &[String]| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i < 6 {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&headers.map(str::to_owned))?;
    for row in &cells {
        line(row)?;
    }
    out.flush()
}
