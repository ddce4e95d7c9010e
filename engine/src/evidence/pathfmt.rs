//! Paths from the evidence as text: UTF-8 stays as it is, every byte that
//! is not valid UTF-8 becomes `\xNN`, and a backslash becomes `\\` so the
//! text maps back to exactly one byte string. Used for JSON and tables.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The escaped text of a path.
pub fn escape(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    // Most paths need no escape: one check, one copy.
    if let Ok(text) = std::str::from_utf8(bytes) {
        if !text.contains('\\') {
            return text.to_string();
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `#[serde(serialize_with = "crate::evidence::pathfmt::serialize")]` for paths.
pub fn serialize<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&escape(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn escapes_only_what_is_ambiguous() {
        let p = Path::new(OsStr::from_bytes(b"/a b/\xe9t\xe9\\x\n"));
        assert_eq!(escape(p), "/a b/\\xe9t\\xe9\\\\x\n");
        assert_eq!(escape(Path::new("/caf\u{e9}")), "/caf\u{e9}");
    }
}
