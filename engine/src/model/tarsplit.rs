//! docker's `layerdb/sha256/<chain>/tar-split.json.gz`: the layer tar's
//! headers as vbatts/tar-split stored them.
//!
//! The file is a gzip of newline-separated JSON entries. A FileType entry
//! (`{"type":1,"name":..,"name_raw":..,"size":..,"payload":<crc64>}`) stands
//! for one tar header of any kind, with its path (`name`, or base64
//! `name_raw` when the path is not UTF-8) and content size (0 for
//! directories, links and whiteouts). SegmentType entries (`"type":2`) hold
//! raw header and padding bytes and are skipped here. It tells what a layer
//! *originally* held, whiteouts and opaque markers included, whatever
//! happened to the driver's files since.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;

use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

/// Largest compressed file read.
pub const MAX_COMPRESSED: u64 = 256 << 20;
/// Largest decompressed stream, counted while reading.
pub const MAX_DECOMPRESSED: u64 = 4 << 30;
/// Most FileType entries kept.
pub const MAX_ENTRIES: usize = 10_000_000;
/// Longest JSON line (without its newline).
pub const MAX_LINE: usize = 64 << 20;

const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// One tar header of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarSplitEntry {
    /// The path, normalised: no leading `/` or `./`, no trailing `/`, no
    /// empty or `.` components (`""` is the root). `..` is kept as written:
    /// callers must refuse it.
    pub name: Vec<u8>,
    /// Content size in the tar (0 for all but regular files).
    pub size: u64,
}

/// The FileType entries of one layer's tar-split, in tar order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarSplit {
    pub entries: Vec<TarSplitEntry>,
}

/// The fields of a tar-split entry that matter here; others are ignored.
#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<i64>,
}

impl TarSplit {
    /// Reads and parses `rel` beneath `layer_dir` (no symlinks, `O_NOATIME`),
    /// bounded by [`MAX_COMPRESSED`], [`MAX_DECOMPRESSED`], [`MAX_ENTRIES`]
    /// and [`MAX_LINE`].
    pub fn read(layer_dir: &Beneath, rel: &Path) -> Result<TarSplit> {
        let path = layer_dir.path().join(rel);
        let fd = layer_dir
            .open_regular(rel)
            .map_err(|cause| layer_dir.io_error(rel, cause))?;
        let file = std::fs::File::from(fd);
        let meta = file
            .metadata()
            .map_err(|cause| layer_dir.io_error(rel, cause))?;
        if !meta.is_file() {
            return Err(Error::invalid(path, "tar-split is not a regular file"));
        }
        if meta.len() > MAX_COMPRESSED {
            return Err(Error::TooLarge {
                path,
                what: "tar-split",
                limit: MAX_COMPRESSED,
            });
        }
        // A file growing after the check is cut; the gzip then fails.
        TarSplit::parse(file.take(MAX_COMPRESSED), &path)
    }

    /// Parses a gzipped tar-split stream; errors name `path_for_errors`.
    pub fn parse(reader: impl Read, path_for_errors: &Path) -> Result<TarSplit> {
        let path = path_for_errors;
        let mut input = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(reader));
        let mut line = Vec::new();
        let mut total = 0u64;
        let mut line_no = 0u64;
        let mut entries = Vec::new();
        loop {
            line.clear();
            if !read_line(&mut input, &mut line, &mut total, path)? {
                break;
            }
            line_no += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let raw: RawEntry = serde_json::from_slice(text).map_err(|e| {
                Error::invalid(
                    path,
                    format!("tar-split line {line_no} is not valid JSON: {e}"),
                )
            })?;
            match raw.kind {
                1 => {
                    if entries.len() >= MAX_ENTRIES {
                        return Err(Error::invalid(
                            path,
                            format!("tar-split has more than {MAX_ENTRIES} entries"),
                        ));
                    }
                    entries.push(file_entry(raw).map_err(|problem| {
                        Error::invalid(path, format!("tar-split line {line_no}: {problem}"))
                    })?);
                }
                2 => {}
                other => {
                    return Err(Error::invalid(
                        path,
                        format!("tar-split line {line_no}: unknown entry type {other}"),
                    ))
                }
            }
        }
        Ok(TarSplit { entries })
    }

    /// Directories marked opaque (an entry `<dir>/.wh..wh..opq`), `""` for
    /// the root; in tar order, without repeats.
    pub fn opaque_dirs(&self) -> Vec<Vec<u8>> {
        self.collect(|dir, base| (base == OPAQUE).then(|| dir.to_vec()))
    }

    /// Paths whited out (an entry `<dir>/.wh.<name>`, aufs `.wh..wh.*`
    /// bookkeeping excluded), as the deleted path `<dir>/<name>`; in tar
    /// order, without repeats.
    pub fn whiteouts(&self) -> Vec<Vec<u8>> {
        self.collect(|dir, base| {
            if base.starts_with(WHITEOUT_META_PREFIX) {
                return None;
            }
            let name = base.strip_prefix(WHITEOUT_PREFIX)?;
            if name.is_empty() || name == b"." || name == b".." {
                return None;
            }
            Some(join(dir, name))
        })
    }

    fn collect(&self, pick: impl Fn(&[u8], &[u8]) -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for entry in &self.entries {
            let (dir, base) = split_last(&entry.name);
            if let Some(path) = pick(dir, base) {
                if seen.insert(path.clone()) {
                    out.push(path);
                }
            }
        }
        out
    }
}

/// Appends the next line (newline included) to `line`; false at the end of
/// the stream with nothing read.
fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    total: &mut u64,
    path: &Path,
) -> Result<bool> {
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(cause) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    cause,
                })
            }
        };
        if buf.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        *total += take as u64;
        if *total > MAX_DECOMPRESSED {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                what: "decompressed tar-split",
                limit: MAX_DECOMPRESSED,
            });
        }
        if line.len() + take - usize::from(done) > MAX_LINE {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                what: "one tar-split line",
                limit: MAX_LINE as u64,
            });
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if done {
            return Ok(true);
        }
    }
}

/// A FileType entry's name (`name_raw` wins when non-empty, as in
/// tar-split's `GetNameBytes`) and size.
fn file_entry(raw: RawEntry) -> std::result::Result<TarSplitEntry, String> {
    let decoded = match raw.name_raw.as_deref() {
        Some(text) => decode_base64(text).ok_or("name_raw is not valid base64")?,
        None => Vec::new(),
    };
    let name = if decoded.is_empty() {
        raw.name.unwrap_or_default().into_bytes()
    } else {
        decoded
    };
    if name.contains(&0) {
        return Err("name contains a NUL byte".into());
    }
    let size = u64::try_from(raw.size.unwrap_or(0)).map_err(|_| "negative size")?;
    Ok(TarSplitEntry {
        name: normalise(&name),
        size,
    })
}

/// Drops empty and `.` components (so leading `/`, `./` and trailing `/`).
fn normalise(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for part in name.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." {
            continue;
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    out
}

/// `(dir, base)` of a normalised path; `dir` is `""` at the top.
fn split_last(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (&[], name),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Standard-alphabet base64 (what Go's `encoding/json` writes for `[]byte`),
/// padding optional; `None` on any other byte.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let data = match bytes {
        // Padding only completes a 4-character group.
        [rest @ .., b'=', b'='] if rest.len() % 4 == 2 => rest,
        [rest @ .., b'='] if rest.len() % 4 == 3 => rest,
        [.., b'='] => return None,
        _ => bytes,
    };
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        // Segments hold raw header bytes; file entries the names and sizes.
        let lines = [
            r#"{"type":2,"payload":"AAAA","position":0}"#,
            r#"{"type":1,"name":"./etc/hosts","size":12,"payload":"YUNsP1gnQAA=","position":1}"#,
            r#"{"type":2,"payload":"","position":2}"#,
            // "awk/non-utf8-\xff\xfe"
            r#"{"type":1,"name_raw":"YXdrL25vbi11dGY4Lf/+","size":7,"payload":null,"position":3}"#,
            r#"{"type":1,"name":"./dir/","payload":null,"position":4}"#,
            r#"{"type":1,"name":"./dir/.wh..wh..opq","payload":null,"position":5}"#,
            r#"{"type":1,"name":".wh.gone","payload":null,"position":6}"#,
            r#"{"type":1,"name":"dir/sub/.wh.old\u003cx\u003e","position":7}"#,
            r#"{"type":1,"name":"./.wh..wh..opq","payload":null,"position":8}"#,
            r#"{"type":1,"name":"dir/.wh..wh.plnk/","payload":null,"position":9}"#,
            r#"{"type":1,"name":"./","payload":null,"position":10}"#,
            r#"{"type":2,"payload":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","position":11}"#,
        ];
        lines.join("\n").into_bytes()
    }

    #[test]
    fn parses_entries_opaques_and_whiteouts() {
        let ts = TarSplit::parse(&gzip(&sample())[..], Path::new("t.json.gz")).unwrap();
        let names: Vec<&[u8]> = ts.entries.iter().map(|e| &e.name[..]).collect();
        assert_eq!(
            names,
            [
                &b"etc/hosts"[..],
                b"awk/non-utf8-\xff\xfe",
                b"dir",
                b"dir/.wh..wh..opq",
                b".wh.gone",
                b"dir/sub/.wh.old<x>",
                b".wh..wh..opq",
                b"dir/.wh..wh.plnk",
                b"",
            ]
        );
        assert_eq!(ts.entries[0].size, 12);
        assert_eq!(ts.entries[1].size, 7);
        assert_eq!(ts.entries[2].size, 0);
        assert_eq!(ts.opaque_dirs(), [b"dir".to_vec(), Vec::new()]);
        assert_eq!(
            ts.whiteouts(),
            [b"gone".to_vec(), b"dir/sub/old<x>".to_vec()]
        );
    }

    #[test]
    fn bad_input_is_an_error_naming_the_file() {
        let path = Path::new("/evidence/layer/tar-split.json.gz");
        let full = gzip(&sample());
        let mut garbage = sample();
        garbage.extend_from_slice(b"\n{\"type\":1,\"name\":");
        let oversized = {
            let mut line = b"{\"type\":2,\"payload\":\"".to_vec();
            line.resize(MAX_LINE + 10, b'A');
            line
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated gzip", full[..full.len() / 2].to_vec()),
            ("truncated trailer", full[..full.len() - 3].to_vec()),
            ("not gzip", sample()),
            ("garbage json", gzip(&garbage)),
            ("not json", gzip(b"hello\n")),
            ("bad base64", gzip(br#"{"type":1,"name_raw":"@@@@"}"#)),
            ("negative size", gzip(br#"{"type":1,"name":"a","size":-1}"#)),
            ("nul", gzip(br#"{"type":1,"name":"a\u0000b"}"#)),
            ("unknown type", gzip(br#"{"type":7}"#)),
            ("oversized line", gzip(&oversized)),
        ];
        for (what, data) in cases {
            let err = TarSplit::parse(&data[..], path).expect_err(what);
            let text = err.to_string();
            assert!(
                text.contains("/evidence/layer/tar-split.json.gz"),
                "{what}: {text}"
            );
            if what.starts_with("truncated") || what == "not gzip" {
                assert!(matches!(err, Error::Io { .. }), "{what}: {text}");
            }
        }
    }

    #[test]
    fn empty_stream_has_no_entries() {
        let ts = TarSplit::parse(&gzip(b"")[..], Path::new("x")).unwrap();
        assert!(ts.entries.is_empty());
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert_eq!(decode_base64("/+8=").unwrap(), [0xff, 0xef]);
        for bad in ["Y", "YQ=", "Y===", "YQ==YQ==", "YW-j", "=", "===="] {
            assert!(decode_base64(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn read_goes_through_beneath() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("tar-split.json.gz"), gzip(&sample())).unwrap();
        std::os::unix::fs::symlink("tar-split.json.gz", t.path().join("link")).unwrap();
        let dir = Beneath::open(t.path()).unwrap();
        let ts = TarSplit::read(&dir, Path::new("tar-split.json.gz")).unwrap();
        assert_eq!(ts.entries.len(), 9);
        assert!(TarSplit::read(&dir, Path::new("link")).is_err());
        let err = TarSplit::read(&dir, Path::new("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"));
    }

    /// Layer directories of the roots a real dockerd made, if any were built.
    fn real_layer_dirs() -> Vec<PathBuf> {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/real-roots");
        let mut levels = vec![base];
        for _ in 0..3 {
            levels = levels
                .iter()
                .filter_map(|d| std::fs::read_dir(d).ok())
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
        }
        let mut layers: Vec<PathBuf> = levels
            .iter()
            .map(|d| d.join("docker/image/overlay2/layerdb/sha256"))
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("tar-split.json.gz").is_file())
            .collect();
        layers.sort();
        layers
    }

    #[test]
    fn real_dockerd_layers() {
        let layers = real_layer_dirs();
        if layers.is_empty() {
            eprintln!("no real roots built; skipping");
            return;
        }
        let (mut opaque, mut whiteouts, mut names) = (Vec::new(), Vec::new(), Vec::new());
        for layer in &layers {
            let dir = Beneath::open(layer).unwrap();
            let ts = TarSplit::read(&dir, Path::new("tar-split.json.gz"))
                .unwrap_or_else(|e| panic!("{e}"));
            opaque.extend(ts.opaque_dirs());
            whiteouts.extend(ts.whiteouts());
            names.extend(ts.entries.into_iter().map(|e| e.name));
        }
        assert!(opaque.contains(&b"awk/opaque".to_vec()), "{opaque:?}");
        assert!(whiteouts.contains(&b"awk/doomed-dir".to_vec()));
        assert!(whiteouts.contains(&b"bin/head".to_vec()));
        assert!(names.contains(&b"awk/non-utf8-\xff\xfe".to_vec()));
        assert!(names.contains(&b"awk/new\nline".to_vec()));
        assert!(names
            .iter()
            .all(|n| !n.starts_with(b"/") && !n.ends_with(b"/")));
    }
}
