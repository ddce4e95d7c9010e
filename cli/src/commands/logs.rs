//! `logs`: a container's logs from docker's files (json-file, local, the
//! dual-logging cache), with stream and timestamp.

use std::io::Write;

use anyhow::{bail, Result};
use docker_mount_engine::analysis::logs::{self, Filter, LogRecord};

use crate::context;
use crate::Cli;

/// What `logs` was asked.
pub struct LogsArgs<'a> {
    pub container: &'a str,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub raw: bool,
    pub timestamps: bool,
    pub files: bool,
}

fn time_arg(flag: &str, v: Option<&str>) -> Result<Option<docker_mount_engine::union::Time>> {
    match v {
        None => Ok(None),
        Some(s) => match logs::parse_time_arg(s) {
            Some(t) => Ok(Some(t)),
            None => bail!(
                "{flag} {s:?}: give an RFC 3339 time (2024-01-02T03:04:05Z), a date (2024-01-02) or unix seconds"
            ),
        },
    }
}

/// A line made safe for a terminal: control characters and invalid UTF-8
/// as escapes, the final newline dropped.
fn printable(line: &[u8]) -> String {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut out = String::with_capacity(body.len());
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push('\t'),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// One record of `logs --json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct LogLine {
    /// As docker formats it with `docker logs -t`.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The message, invalid UTF-8 replaced (then `line_hex` holds its bytes).
    pub line: String,
    /// A piece of a longer line (docker splits at 16 KiB).
    pub partial: bool,
    pub attrs: std::collections::BTreeMap<String, String>,
    /// The file it was read from.
    pub file: String,
    /// The message's bytes in hex, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_hex: Option<String>,
}

fn json_record(r: &LogRecord) -> LogLine {
    LogLine {
        time: r.time.clone(),
        stream: r.stream.clone(),
        line: r.text().into_owned(),
        partial: r.partial,
        attrs: r.attrs.clone(),
        file: r.file.display().to_string(),
        line_hex: std::str::from_utf8(&r.line)
            .is_err()
            .then(|| hex_string(&r.line)),
    }
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn run(cli: &Cli, args: &LogsArgs) -> Result<()> {
    let filter = Filter {
        since: time_arg("--since", args.since)?,
        until: time_arg("--until", args.until)?,
    };
    let ctx = context::open(cli)?;
    let c = ctx.root.find_container(args.container)?;
    let files = logs::log_files(&ctx.root, &c)?;
    if args.files {
        if cli.json {
            return context::print_json(&files);
        }
        for f in &files {
            println!(
                "{}\t{:?}\t{} bytes{}",
                f.path.display(),
                f.family,
                f.size,
                if f.compressed { "\tgzip" } else { "" }
            );
        }
        return Ok(());
    }
    if files.is_empty() {
        match &c.catalog {
            Some(record) => eprintln!(
                "docker-mount: no log files for container {}: {} kept none in the root (never started, a log driver such as journald, or removed)",
                c.name(),
                record.engine
            ),
            None => eprintln!(
                "docker-mount: no log files for container {} in {}: its log driver kept none on disk (journald, syslog, ... without dual logging), or they were removed",
                c.name(),
                ctx.root.join("containers").join(&c.id).display()
            ),
        }
        if cli.json {
            println!("[]");
        }
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stderr = std::io::stderr();
    // The JSON array opens with its first record: a read that fails before
    // any leaves no half array.
    let mut first = true;
    let mut sink = |r: LogRecord| -> std::io::Result<()> {
        if cli.json {
            out.write_all(if first { b"[\n" } else { b",\n" })?;
            first = false;
            serde_json::to_writer(&mut out, &json_record(&r))?;
        } else if args.raw {
            let prefix = if args.timestamps {
                format!("{} ", r.time)
            } else {
                String::new()
            };
            if r.stream == "stderr" {
                out.flush()?;
                let mut e = stderr.lock();
                e.write_all(prefix.as_bytes())?;
                e.write_all(&r.line)?;
            } else {
                out.write_all(prefix.as_bytes())?;
                out.write_all(&r.line)?;
            }
        } else {
            let stream = if r.partial {
                format!("{} (partial)", r.stream)
            } else {
                r.stream.clone()
            };
            writeln!(out, "{} {stream} {}", r.time, printable(&r.line))?;
        }
        Ok(())
    };
    let read = logs::read(&ctx.root, &files, &filter, &mut sink);
    if cli.json && (read.is_ok() || !first) {
        // Closed after an error too, once opened: stdout is nothing or
        // one JSON document.
        out.write_all(if first { b"[\n]\n" } else { b"\n]\n" })?;
    }
    out.flush()?;
    let warnings = read?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes() {
        assert_eq!(printable(b"a\tb\x1b[31m\n"), "a\tb\\u{1b}[31m");
        assert_eq!(printable(b"\xff\\"), "\\xff\\\\");
    }
}
