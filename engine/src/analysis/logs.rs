//! A container's logs as docker kept them on disk: the `json-file` driver's
//! `<id>-json.log` (rotated `.N`, compressed `.N.gz`), the `local` driver's
//! `local-logs/container.log` and the dual-logging cache
//! `container-cached.log` (both framed protobuf records, rotated and
//! compressed the same way); for a container of another engine, the log
//! its driver's catalog names (podman's `k8s-file` `ctr.log`). Files are read beneath the root, streamed, and
//! every record is bounded; a damaged or truncated file gives a warning
//! naming it and the offset, and the records before it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::container::Container;
use crate::model::root::DockerRoot;
use crate::union::Time;
use docker_mount_core::error::{Error, Result};
use docker_mount_core::time::{format_rfc3339, parse_rfc3339};

/// Longest json-file line accepted (docker splits messages at 16 KiB; JSON
/// escaping can grow them several times).
pub const MAX_JSON_LINE: usize = 1 << 20;
/// Largest `local` record accepted (docker's own reader stops at 1 MB).
pub const MAX_RECORD: u32 = 4 << 20;
/// Most rotated files looked at per family.
const MAX_ROTATIONS: u32 = 10_000;

/// How a log file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One JSON object a line: `{"log","stream","time"}`.
    JsonFile,
    /// Length-framed protobuf `LogEntry` records (`local`, and the cache).
    Local,
    /// CRI lines `<RFC 3339 time> <stream> <F|P> <text>` (podman, conmon).
    K8sFile,
}

/// Which files a log is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogFamily {
    JsonFile,
    Local,
    /// Dual logging: what docker cached for a driver it cannot read back.
    Cache,
    /// podman's `k8s-file` driver.
    K8sFile,
}

/// One log file of a container.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LogFile {
    pub family: LogFamily,
    pub format: LogFormat,
    /// On the analyst's system.
    pub path: PathBuf,
    /// Beneath the root.
    #[serde(skip)]
    pub rel: PathBuf,
    /// 0 for the live file, N for `.N` (higher is older).
    pub rotation: u32,
    pub compressed: bool,
    pub size: u64,
}

/// One log message.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LogRecord {
    /// As docker formats it with `docker logs -t`.
    pub time: String,
    #[serde(skip)]
    pub timestamp: Option<Time>,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The bytes `docker logs` prints for it (a complete line ends in `\n`).
    #[serde(skip)]
    pub line: Vec<u8>,
    /// A piece of a longer line (docker splits at 16 KiB).
    pub partial: bool,
    pub attrs: BTreeMap<String, String>,
    /// The file it was read from.
    pub file: PathBuf,
}

impl LogRecord {
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.line)
    }
}

/// Which records to keep: docker's `--since` and `--until` (both inclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub since: Option<Time>,
    pub until: Option<Time>,
}

impl Filter {
    fn keeps(&self, t: Option<Time>) -> bool {
        let Some(t) = t else {
            return self.since.is_none() && self.until.is_none();
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// Parses a `--since` / `--until` value: RFC 3339 (`2024-01-02T03:04:05Z`,
/// fractions, offsets), a date and time without zone (UTC), a date, or
/// unix seconds (`1704164645`, `1704164645.5`).
pub fn parse_time_arg(s: &str) -> Option<Time> {
    let s = s.trim();
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if s.len() == 10 && s.as_bytes()[4] == b'-' {
        return parse_rfc3339(&format!("{s}T00:00:00Z"));
    }
    if s.get(19..)
        .is_some_and(|zone| !zone.contains(['Z', 'z', '+', '-']))
    {
        return parse_rfc3339(&format!("{s}Z"));
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let sec: i64 = whole.parse().ok()?;
        let nsec: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return Some(Time { sec, nsec });
    }
    None
}

/// `name`, `name.N` or `name.N.gz` → (rotation, compressed).
fn rotation_of(file: &str, base: &str) -> Option<(u32, bool)> {
    if file == base {
        return Some((0, false));
    }
    let rest = file.strip_prefix(base)?.strip_prefix('.')?;
    let (num, gz) = match rest.strip_suffix(".gz") {
        Some(n) => (n, true),
        None => (rest, false),
    };
    if num.is_empty() || num.len() > 9 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = num.parse().ok()?;
    (n > 0 && n <= MAX_ROTATIONS).then_some((n, gz))
}

/// The log files docker kept for a container, oldest first within each
/// family (json-file, local, cache); for a catalogued container, the log
/// its engine wrote (none when it is in a format not read here).
pub fn log_files(root: &DockerRoot, c: &Container) -> Result<Vec<LogFile>> {
    if let Some(record) = &c.catalog {
        let Some(log) = &record.log else {
            return Ok(Vec::new());
        };
        let (Some(sub), Some(base)) = (
            log.path.parent(),
            log.path.file_name().and_then(|n| n.to_str()),
        ) else {
            return Ok(Vec::new());
        };
        return match log.format.as_str() {
            "k8s-file" => family(root, LogFamily::K8sFile, LogFormat::K8sFile, sub, base),
            _ => Ok(Vec::new()),
        };
    }
    let dir = Path::new("containers").join(&c.id);
    let families: [(LogFamily, LogFormat, PathBuf, String); 3] = [
        (
            LogFamily::JsonFile,
            LogFormat::JsonFile,
            dir.clone(),
            format!("{}-json.log", c.id),
        ),
        (
            LogFamily::Local,
            LogFormat::Local,
            dir.join("local-logs"),
            "container.log".into(),
        ),
        (
            LogFamily::Cache,
            LogFormat::Local,
            dir.clone(),
            "container-cached.log".into(),
        ),
    ];
    let mut out = Vec::new();
    for (fam, format, sub, base) in families {
        out.extend(family(root, fam, format, &sub, &base)?);
    }
    Ok(out)
}

/// The files `sub/base` and its rotations (`base.N`, `base.N.gz`), oldest
/// first.
fn family(
    root: &DockerRoot,
    family: LogFamily,
    format: LogFormat,
    sub: &Path,
    base: &str,
) -> Result<Vec<LogFile>> {
    if !root.dir().is_dir(sub) {
        return Ok(Vec::new());
    }
    let names = root.dir().list(sub)?;
    let mut files: Vec<LogFile> = names
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter_map(|n| {
            let (rotation, compressed) = rotation_of(&n, base)?;
            let rel = sub.join(&n);
            // Kept whatever it is: `read` names a FIFO or a symlink
            // where a log should be rather than pass over it.
            let st = root.dir().lstat(&rel).ok()?;
            Some(LogFile {
                family,
                format,
                path: root.join(&rel),
                rel,
                rotation,
                compressed,
                size: st.st_size as u64,
            })
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.rotation));
    Ok(files)
}

/// Reads every record of `files` that `filter` keeps, in file order,
/// handing each to `sink`; returns the warnings (damaged records, named by
/// file and offset; files that are not regular files, skipped). A sink
/// error (the reader went away) stops the read, and so does a first file
/// that cannot be opened when none of the others can either.
pub fn read(
    root: &DockerRoot,
    files: &[LogFile],
    filter: &Filter,
    sink: &mut dyn FnMut(LogRecord) -> std::io::Result<()>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut unopened = Vec::new();
    for f in files {
        let fd = match root.dir().open_regular(&f.rel) {
            Ok(fd) => fd,
            Err(cause) => {
                unopened.push(root.dir().io_error(&f.rel, cause));
                continue;
            }
        };
        let file = std::fs::File::from(fd);
        let reader: Box<dyn Read> = if f.compressed {
            Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(file)
        };
        let reader = BufReader::with_capacity(1 << 16, reader);
        let result = match f.format {
            LogFormat::JsonFile => {
                read_lines(reader, f, filter, sink, &mut warnings, &json_file_line)
            }
            LogFormat::K8sFile => read_lines(reader, f, filter, sink, &mut warnings, &k8s_line),
            LogFormat::Local => read_local(reader, f, filter, sink, &mut warnings),
        };
        match result {
            Ok(()) => {}
            Err(ReadError::Sink(e)) => {
                return Err(Error::Io {
                    path: PathBuf::from("<output>"),
                    cause: e,
                })
            }
            Err(ReadError::Input(e)) => {
                warnings.push(format!("{}: read stopped: {e}", f.path.display()))
            }
        }
    }
    if unopened.len() == files.len() && !unopened.is_empty() {
        return Err(unopened.remove(0));
    }
    warnings.extend(unopened.iter().map(|e| format!("{e}; skipped")));
    Ok(warnings)
}

enum ReadError {
    /// Reading (or decompressing) the file failed.
    Input(std::io::Error),
    /// The sink refused a record.
    Sink(std::io::Error),
}

#[derive(serde::Deserialize)]
struct JsonLine {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    attrs: Option<BTreeMap<String, String>>,
}

/// One record of a line-based log: (time as written, stream, the bytes
/// the engine's `logs` prints, partial, attributes).
type Line = (String, String, Vec<u8>, bool, BTreeMap<String, String>);

/// A json-file line: `{"log","stream","time","attrs"}`.
fn json_file_line(text: &[u8]) -> std::result::Result<Line, String> {
    let j = serde_json::from_slice::<JsonLine>(text)
        .map_err(|e| format!("not a json-file record ({e})"))?;
    let partial = !j.log.ends_with('\n');
    Ok((
        j.time,
        j.stream,
        j.log.into_bytes(),
        partial,
        j.attrs.unwrap_or_default(),
    ))
}

/// A CRI (`k8s-file`) line: `<time> <stream> <tags> <text>`, the first
/// tag `F` for a full line (printed with a newline) or `P` for a piece.
fn k8s_line(text: &[u8]) -> std::result::Result<Line, String> {
    let mut parts = text.splitn(4, |&b| b == b' ');
    let mut field = |what: &str| {
        parts
            .next()
            .filter(|p| !p.is_empty())
            .and_then(|p| std::str::from_utf8(p).ok())
            .map(str::to_string)
            .ok_or_else(|| format!("not a k8s-file record (no {what})"))
    };
    let time = field("time")?;
    let stream = field("stream")?;
    let tags = field("tag")?;
    let mut line = parts.next().unwrap_or_default().to_vec();
    if !matches!(stream.as_str(), "stdout" | "stderr") {
        return Err(format!("not a k8s-file record (stream {stream:?})"));
    }
    let partial = match tags.split(':').next() {
        Some("F") => false,
        Some("P") => true,
        _ => return Err(format!("not a k8s-file record (tag {tags:?})")),
    };
    if !partial {
        line.push(b'\n');
    }
    Ok((time, stream, line, partial, BTreeMap::new()))
}

/// Reads a line-based log, each line parsed by `parse`.
fn read_lines(
    mut reader: impl BufRead,
    f: &LogFile,
    filter: &Filter,
    sink: &mut dyn FnMut(LogRecord) -> std::io::Result<()>,
    warnings: &mut Vec<String>,
    parse: &dyn Fn(&[u8]) -> std::result::Result<Line, String>,
) -> Result<(), ReadError> {
    let mut line = Vec::new();
    let mut offset: u64 = 0;
    let mut bad = 0usize;
    loop {
        line.clear();
        let (n, complete, too_long) = read_line_bounded(&mut reader, &mut line)?;
        if n == 0 {
            break;
        }
        let at = offset;
        offset += n as u64;
        if too_long {
            warnings.push(format!(
                "{}: line at byte {at} is longer than {MAX_JSON_LINE} bytes; skipped",
                f.path.display()
            ));
            continue;
        }
        let text = if complete {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse(text) {
            Ok((time, stream, bytes, partial, attrs)) => {
                let timestamp = parse_rfc3339(&time);
                if !filter.keeps(timestamp) {
                    continue;
                }
                sink(LogRecord {
                    time: timestamp.map(format_rfc3339).unwrap_or(time),
                    timestamp,
                    stream,
                    line: bytes,
                    partial,
                    attrs,
                    file: f.path.clone(),
                })
                .map_err(ReadError::Sink)?;
            }
            Err(e) => {
                bad += 1;
                if bad <= 20 {
                    let why = if complete {
                        e
                    } else {
                        "truncated last record (the host went down while writing?)".to_string()
                    };
                    warnings.push(format!("{}: byte {at}: {why}", f.path.display()));
                }
            }
        }
    }
    if bad > 20 {
        warnings.push(format!(
            "{}: {} unreadable lines in all",
            f.path.display(),
            bad
        ));
    }
    Ok(())
}

/// Reads one line (with its `\n`) into `buf`, keeping at most
/// [`MAX_JSON_LINE`] bytes: (bytes consumed, ends in `\n`, too long).
fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> Result<(usize, bool, bool), ReadError> {
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let chunk = reader.fill_buf().map_err(ReadError::Input)?;
        if chunk.is_empty() {
            return Ok((consumed, false, too_long));
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_JSON_LINE {
            too_long = true;
            buf.clear();
        } else if !too_long {
            buf.extend_from_slice(&chunk[..take]);
        }
        reader.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, true, too_long));
        }
    }
}

/// Reads as many bytes as there are, up to `buf.len()`: the count read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, ReadError> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Input(e)),
        }
    }
    Ok(n)
}

fn read_local(
    mut reader: impl Read,
    f: &LogFile,
    filter: &Filter,
    sink: &mut dyn FnMut(LogRecord) -> std::io::Result<()>,
    warnings: &mut Vec<String>,
) -> Result<(), ReadError> {
    let mut offset: u64 = 0;
    let mut body = Vec::new();
    loop {
        let mut len_buf = [0u8; 4];
        let n = read_full(&mut reader, &mut len_buf)?;
        if n == 0 {
            return Ok(());
        }
        let truncated = |what: &str| {
            format!(
                "{}: byte {offset}: truncated {what} (the host went down while writing?)",
                f.path.display()
            )
        };
        if n < 4 {
            warnings.push(truncated("record header"));
            return Ok(());
        }
        let len = u32::from_be_bytes(len_buf);
        if len > MAX_RECORD {
            warnings.push(format!(
                "{}: byte {offset}: record of {len} bytes is larger than the {MAX_RECORD}-byte limit: not a local log, or damaged; the rest of the file is skipped",
                f.path.display()
            ));
            return Ok(());
        }
        body.resize(len as usize + 4, 0);
        let got = read_full(&mut reader, &mut body)?;
        if got < body.len() {
            warnings.push(truncated("record"));
            return Ok(());
        }
        let suffix = u32::from_be_bytes([
            body[len as usize],
            body[len as usize + 1],
            body[len as usize + 2],
            body[len as usize + 3],
        ]);
        if suffix != len {
            warnings.push(format!(
                "{}: byte {offset}: record length {len} and its trailer {suffix} differ: damaged; the rest of the file is skipped",
                f.path.display()
            ));
            return Ok(());
        }
        let at = offset;
        offset += u64::from(len) + 8;
        match decode_entry(&body[..len as usize]) {
            Ok(e) => {
                let timestamp = Some(Time {
                    sec: e.time_nano.div_euclid(1_000_000_000),
                    nsec: e.time_nano.rem_euclid(1_000_000_000),
                });
                if !filter.keeps(timestamp) {
                    continue;
                }
                let mut line = e.line;
                // As docker's reader: a whole line, or the last piece of one, ends in a newline.
                let partial = e.partial && !e.partial_last;
                if !partial {
                    line.push(b'\n');
                }
                sink(LogRecord {
                    time: timestamp.map(format_rfc3339).unwrap_or_default(),
                    timestamp,
                    stream: e.source,
                    line,
                    partial,
                    attrs: e.attrs,
                    file: f.path.clone(),
                })
                .map_err(ReadError::Sink)?;
            }
            Err(why) => warnings.push(format!(
                "{}: byte {at}: record is not a LogEntry ({why}); skipped",
                f.path.display()
            )),
        }
    }
}

/// The fields of docker's `LogEntry` protobuf message.
#[derive(Debug, Default, PartialEq)]
pub struct Entry {
    pub source: String,
    pub time_nano: i64,
    pub line: Vec<u8>,
    pub partial: bool,
    pub partial_last: bool,
    pub attrs: BTreeMap<String, String>,
}

fn varint(buf: &[u8], pos: &mut usize) -> std::result::Result<u64, &'static str> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes")
}

/// A protobuf message as (field number, wire type, varint value or bytes).
/// One field of a protobuf message: number, wire type, raw value bytes.
type Field<'a> = (u64, u64, &'a [u8]);

fn fields(buf: &[u8]) -> std::result::Result<Vec<Field<'_>>, &'static str> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let start = pos;
        match wire {
            0 => {
                // Keep the varint's own bytes; `varint_of` reads them.
                varint(buf, &mut pos)?;
                out.push((field, wire, &buf[start..pos]));
                continue;
            }
            1 => pos += 8,
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length too big")?;
                let start = pos;
                pos = pos.checked_add(len).ok_or("length too big")?;
                if pos > buf.len() {
                    return Err("field runs past the record");
                }
                out.push((field, wire, &buf[start..pos]));
                continue;
            }
            5 => pos += 4,
            _ => return Err("unknown wire type"),
        }
        if pos > buf.len() {
            return Err("field runs past the record");
        }
        out.push((field, wire, &buf[start..pos]));
    }
    Ok(out)
}

fn varint_of(bytes: &[u8]) -> u64 {
    let mut pos = 0;
    varint(bytes, &mut pos).unwrap_or(0)
}

/// Decodes one `LogEntry {source=1, time_nano=2, line=3, partial=4,
/// partial_log_metadata=5 {last=1, id=2, ordinal=3}, attrs=6 {key=1, value=2}}`.
pub fn decode_entry(buf: &[u8]) -> std::result::Result<Entry, &'static str> {
    let mut e = Entry::default();
    for (field, wire, bytes) in fields(buf)? {
        match (field, wire) {
            (1, 2) => e.source = String::from_utf8_lossy(bytes).into_owned(),
            (2, 0) => e.time_nano = varint_of(bytes) as i64,
            (3, 2) => e.line = bytes.to_vec(),
            (4, 0) => e.partial = varint_of(bytes) != 0,
            (5, 2) => {
                for (f, w, b) in fields(bytes)? {
                    if (f, w) == (1, 0) {
                        e.partial_last = varint_of(b) != 0;
                    }
                }
            }
            (6, 2) => {
                let (mut k, mut v) = (String::new(), String::new());
                for (f, w, b) in fields(bytes)? {
                    match (f, w) {
                        (1, 2) => k = String::from_utf8_lossy(b).into_owned(),
                        (2, 2) => v = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
                e.attrs.insert(k, v);
            }
            _ => {}
        }
    }
    Ok(e)
}

/// Encodes a `LogEntry` record as docker's `local` driver writes it,
/// length prefix and trailer included (for tests and fixtures).
pub fn encode_record(source: &str, time_nano: i64, line: &[u8], partial: bool) -> Vec<u8> {
    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let mut msg = Vec::new();
    if !source.is_empty() {
        msg.push(0x0a);
        put_varint(&mut msg, source.len() as u64);
        msg.extend_from_slice(source.as_bytes());
    }
    if time_nano != 0 {
        msg.push(0x10);
        put_varint(&mut msg, time_nano as u64);
    }
    if !line.is_empty() {
        msg.push(0x1a);
        put_varint(&mut msg, line.len() as u64);
        msg.extend_from_slice(line);
    }
    if partial {
        msg.extend_from_slice(&[0x20, 1]);
    }
    let len = (msg.len() as u32).to_be_bytes();
    let mut out = Vec::with_capacity(msg.len() + 8);
    out.extend_from_slice(&len);
    out.extend_from_slice(&msg);
    out.extend_from_slice(&len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let rec = encode_record("stderr", 1_700_000_000_123_456_789, b"boom", false);
        let len = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
        assert_eq!(rec.len(), len + 8);
        let e = decode_entry(&rec[4..4 + len]).unwrap();
        assert_eq!(e.source, "stderr");
        assert_eq!(e.time_nano, 1_700_000_000_123_456_789);
        assert_eq!(e.line, b"boom");
        assert!(!e.partial);
        assert!(decode_entry(&[0x0a, 0x05, b'a']).is_err());
        assert!(decode_entry(&[0x0f]).is_err());
    }

    #[test]
    fn time_arguments() {
        let t = parse_time_arg("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(parse_time_arg("2024-01-02T03:04:05"), Some(t));
        assert_eq!(parse_time_arg(&t.sec.to_string()), Some(t));
        assert_eq!(
            parse_time_arg(&format!("{}.5", t.sec)),
            Some(Time {
                sec: t.sec,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_time_arg("2024-01-02").unwrap().sec,
            t.sec - 3 * 3600 - 4 * 60 - 5
        );
        assert_eq!(parse_time_arg("yesterday"), None);
    }

    #[test]
    fn k8s_file_lines() {
        let (time, stream, line, partial, _) =
            k8s_line(b"2024-01-02T03:04:05.123456789+00:00 stderr F boom bang").unwrap();
        assert_eq!(time, "2024-01-02T03:04:05.123456789+00:00");
        assert_eq!(stream, "stderr");
        assert_eq!(line, b"boom bang\n");
        assert!(!partial);
        let (_, _, line, partial, _) = k8s_line(b"2024-01-02T03:04:05Z stdout P abc").unwrap();
        assert_eq!(line, b"abc");
        assert!(partial);
        // An empty line is written without its text.
        assert_eq!(k8s_line(b"2024-01-02T03:04:05Z stdout F").unwrap().2, b"\n");
        for bad in [
            &b"2024-01-02T03:04:05Z"[..],
            b"2024-01-02T03:04:05Z stdin F x",
            b"2024-01-02T03:04:05Z stdout X x",
            b"\xff stdout F x",
        ] {
            assert!(k8s_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rotations() {
        let base = "abc-json.log";
        assert_eq!(rotation_of("abc-json.log", base), Some((0, false)));
        assert_eq!(rotation_of("abc-json.log.3", base), Some((3, false)));
        assert_eq!(rotation_of("abc-json.log.2.gz", base), Some((2, true)));
        for bad in [
            "abc-json.log.",
            "abc-json.log.x",
            "abc-json.log.0",
            "abc-json.logs",
        ] {
            assert_eq!(rotation_of(bad, base), None, "{bad}");
        }
    }
}
