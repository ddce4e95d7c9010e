//! What a directory of the evidence holds, like `du`: entries, bytes and
//! the span of their modification times. Walked beneath the root without
//! following symlinks, with `O_NOATIME`, bounded in entries and depth.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::union::Time;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::time::format_rfc3339;

/// Most entries counted in one directory tree.
pub const MAX_ENTRIES: u64 = 10_000_000;
/// Deepest directory descended into.
const MAX_DEPTH: usize = 4096;

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Usage {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, devices, fifos, sockets.
    pub other: u64,
    /// Sum of regular files' sizes.
    pub bytes: u64,
    /// Bytes allocated on disk (`st_blocks * 512`), hard links counted once each time.
    pub allocated: u64,
    /// Oldest and newest mtime of the entries (the directory itself included).
    pub oldest_mtime: Option<String>,
    pub newest_mtime: Option<String>,
    /// The entry limit was reached or something could not be read.
    pub incomplete: bool,
    pub errors: Vec<String>,
}

fn mtime(st: &libc::stat) -> Time {
    Time {
        sec: st.st_mtime,
        nsec: st.st_mtime_nsec,
    }
}

/// Measures `rel` (a directory; `""`: `base` itself) beneath `base`.
pub fn measure(base: &Beneath, rel: &Path) -> Usage {
    let mut u = Usage::default();
    let (mut oldest, mut newest): (Option<Time>, Option<Time>) = (None, None);
    let mut note = |t: Time| {
        oldest = Some(oldest.map_or(t, |o| o.min(t)));
        newest = Some(newest.map_or(t, |n| n.max(t)));
    };
    // `""`: `base` itself (a served dataset's top).
    let top = if rel.as_os_str().is_empty() {
        nix::sys::stat::fstat(base.fd()).map_err(std::io::Error::from)
    } else {
        base.lstat(rel)
    };
    match top {
        Ok(st) => note(mtime(&st)),
        Err(e) => {
            u.incomplete = true;
            u.errors
                .push(format!("{}: {e}", base.path().join(rel).display()));
            return u;
        }
    }
    let mut stack: Vec<(PathBuf, usize)> = vec![(rel.to_path_buf(), 0)];
    let mut seen: u64 = 0;
    while let Some((dir, depth)) = stack.pop() {
        u.dirs += 1;
        let names = match base.list(&dir) {
            Ok(n) => n,
            Err(e) => {
                u.incomplete = true;
                if u.errors.len() < 20 {
                    u.errors.push(e.to_string());
                }
                continue;
            }
        };
        for name in names {
            seen += 1;
            if seen > MAX_ENTRIES {
                u.incomplete = true;
                u.errors
                    .push(format!("stopped after {MAX_ENTRIES} entries"));
                stack.clear();
                break;
            }
            let path = dir.join(OsStr::from_bytes(name.as_bytes()));
            let st = match base.lstat(&path) {
                Ok(st) => st,
                Err(e) => {
                    u.incomplete = true;
                    if u.errors.len() < 20 {
                        u.errors
                            .push(format!("{}: {e}", base.path().join(&path).display()));
                    }
                    continue;
                }
            };
            note(mtime(&st));
            u.allocated += st.st_blocks as u64 * 512;
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR if depth < MAX_DEPTH => stack.push((path, depth + 1)),
                libc::S_IFDIR => {
                    u.incomplete = true;
                    u.dirs += 1;
                }
                libc::S_IFREG => {
                    u.files += 1;
                    u.bytes += st.st_size as u64;
                }
                _ => u.other += 1,
            }
        }
    }
    u.oldest_mtime = oldest.map(format_rfc3339);
    u.newest_mtime = newest.map(format_rfc3339);
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), b"12345").unwrap();
        std::fs::write(d.join("sub/b"), b"123").unwrap();
        std::os::unix::fs::symlink("/etc", d.join("l")).unwrap();
        let b = Beneath::open(t.path()).unwrap();
        let u = measure(&b, Path::new("d"));
        assert_eq!((u.files, u.dirs, u.other, u.bytes), (2, 2, 1, 8));
        assert!(!u.incomplete);
        assert!(u.newest_mtime.is_some());
    }
}
