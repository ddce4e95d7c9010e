//! The oracle comparison: a manifest (type, mode, owner, size, content hash,
//! mtime, link target, device numbers) of a tar such as `docker export`
//! writes, or of a directory such as a mounted container view, and a
//! field-by-field comparison of two manifests.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use sha2::{Digest, Sha256};

use crate::integrity::{self, show};

/// File type of an [`Entry`]. Hard links are resolved to [`Kind::File`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

/// One path of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, no leading `./` or `/`, no trailing `/`.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Content size (files only, else 0).
    pub size: u64,
    /// Hex sha256 of the content (files only).
    pub sha256: Option<String>,
    /// Modification time, whole seconds (floor).
    pub mtime: i64,
    /// Symlink target.
    pub link_target: Option<Vec<u8>>,
    /// `(major, minor)` of device nodes.
    pub rdev: Option<(u64, u64)>,
}

/// Entries keyed by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

impl Manifest {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.get(path)
    }
}

/// Normalizes a tar member name or a walk path: strips leading `./` and `/`
/// and trailing `/`.
fn normalize(mut p: &[u8]) -> Vec<u8> {
    loop {
        if let Some(rest) = p.strip_prefix(b"./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix(b"/") {
            p = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    if p == b"." {
        p = b"";
    }
    p.to_vec()
}

fn parse_pax_int(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    // PAX times may be fractional ("1700000000.123456789"): floor them.
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let n: i64 = int.parse().ok()?;
    if n < 0 && frac.bytes().any(|b| b != b'0') {
        Some(n - 1)
    } else {
        Some(n)
    }
}

/// Reads the manifest of a tar file. Hard-link members become files with
/// their target's size and hash, as a directory walk would see them.
///
/// Panics (test support) if the tar cannot be read.
pub fn from_tar(path: &Path) -> Manifest {
    let file = File::open(path).unwrap_or_else(|e| panic!("open tar {}: {e}", path.display()));
    let mut ar = tar::Archive::new(io::BufReader::new(file));
    let mut m = Manifest::default();
    let entries = ar
        .entries()
        .unwrap_or_else(|e| panic!("read tar {}: {e}", path.display()));
    for ent in entries {
        let mut ent = ent.unwrap_or_else(|e| panic!("read tar entry in {}: {e}", path.display()));
        let name = normalize(&ent.path_bytes());
        let link = ent.link_name_bytes().map(|l| l.into_owned());
        let h = ent.header().clone();
        let mut mtime = h
            .mtime()
            .unwrap_or_else(|e| panic!("{}: mtime of {}: {e}", path.display(), show(&name)))
            as i64;
        let mut uid = h
            .uid()
            .unwrap_or_else(|e| panic!("{}: uid: {e}", path.display()));
        let mut gid = h
            .gid()
            .unwrap_or_else(|e| panic!("{}: gid: {e}", path.display()));
        if let Ok(Some(pax)) = ent.pax_extensions() {
            for ext in pax.flatten() {
                let v = parse_pax_int(ext.value_bytes());
                match (ext.key_bytes(), v) {
                    (b"mtime", Some(v)) => mtime = v,
                    (b"uid", Some(v)) => uid = v as u64,
                    (b"gid", Some(v)) => gid = v as u64,
                    _ => {}
                }
            }
        }
        let mode = h
            .mode()
            .unwrap_or_else(|e| panic!("{}: mode: {e}", path.display()))
            & 0o7777;
        let mut e = Entry {
            path: name.clone(),
            kind: Kind::File,
            mode,
            uid,
            gid,
            size: 0,
            sha256: None,
            mtime,
            link_target: None,
            rdev: None,
        };
        let et = h.entry_type();
        use tar::EntryType as T;
        match et {
            T::Regular | T::Continuous | T::GNUSparse => {
                let mut hasher = Sha256::new();
                let n = io::copy(&mut ent, &mut HashWriter(&mut hasher)).unwrap_or_else(|err| {
                    panic!("{}: read {}: {err}", path.display(), show(&name))
                });
                e.size = n;
                e.sha256 = Some(hex::encode(hasher.finalize()));
            }
            T::Link => {
                let target = normalize(&link.unwrap_or_default());
                match m.entries.get(&target) {
                    Some(t) => {
                        e.size = t.size;
                        e.sha256.clone_from(&t.sha256);
                    }
                    None => {
                        e.sha256 = Some(format!("<unresolved hard link to {}>", show(&target)));
                    }
                }
            }
            T::Directory => e.kind = Kind::Dir,
            T::Symlink => {
                e.kind = Kind::Symlink;
                e.link_target = link;
            }
            T::Fifo => e.kind = Kind::Fifo,
            T::Char | T::Block => {
                e.kind = if et == T::Char {
                    Kind::CharDev
                } else {
                    Kind::BlockDev
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                e.rdev = Some((u64::from(major), u64::from(minor)));
            }
            // Metadata-only members (PAX/GNU headers) are folded into the
            // next entry by the tar crate; anything else is skipped.
            _ => continue,
        }
        if name.is_empty() {
            continue;
        }
        m.entries.insert(name, e);
    }
    m
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Walks a directory (e.g. a mounted container view) with lstat, never
/// following symlinks. The directory itself is not an entry. As root it
/// walks a private read-only noatime clone of the mount (as
/// [`crate::integrity::snapshot`] does), so evidence atimes stay put.
///
/// Panics (test support) on any I/O error.
pub fn from_dir(dir: &Path) -> Manifest {
    let tree = integrity::noatime_tree(dir).ok();
    let open = |flags: OFlag| match &tree {
        Some(fd) => Dir::openat(Some(fd.as_raw_fd()), ".", flags, Mode::empty()),
        None => Dir::openat(None, dir, flags, Mode::empty()),
    };
    let d = match open(integrity::dir_flags()) {
        Err(nix::errno::Errno::EPERM) => open(integrity::dir_flags() - OFlag::O_NOATIME),
        r => r,
    }
    .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let mut m = Manifest::default();
    walk(d, &[], dir, &mut m);
    m
}

fn walk(mut dir: Dir, prefix: &[u8], top: &Path, m: &mut Manifest) {
    let fd = dir.as_raw_fd();
    let what = |p: &[u8]| format!("{}/{}", top.display(), show(p));
    let mut names = Vec::new();
    for ent in dir.iter() {
        let ent = ent.unwrap_or_else(|e| panic!("readdir {}: {e}", what(prefix)));
        let name = ent.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    for name in names {
        let rel = normalize(&[prefix, b"/", &name].concat());
        let cname = OsStr::from_bytes(&name);
        let st = fstatat(Some(fd), cname, AtFlags::AT_SYMLINK_NOFOLLOW)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", what(&rel)));
        let fmt = st.st_mode & SFlag::S_IFMT.bits();
        let mut e = Entry {
            path: rel.clone(),
            kind: Kind::File,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            size: 0,
            sha256: None,
            mtime: st.st_mtime,
            link_target: None,
            rdev: None,
        };
        let mut sub = None;
        match SFlag::from_bits_truncate(fmt) {
            SFlag::S_IFREG => {
                e.size = u64::try_from(st.st_size).unwrap_or(0);
                let h = hash_path(&integrity::proc_path(fd, Some(&name)))
                    .unwrap_or_else(|err| panic!("read {}: {err}", what(&rel)));
                e.sha256 = Some(h);
            }
            SFlag::S_IFDIR => {
                e.kind = Kind::Dir;
                let flags = integrity::dir_flags();
                let d = match Dir::openat(Some(fd), cname, flags, Mode::empty()) {
                    Err(nix::errno::Errno::EPERM) => {
                        Dir::openat(Some(fd), cname, flags - OFlag::O_NOATIME, Mode::empty())
                    }
                    r => r,
                };
                sub = Some(d.unwrap_or_else(|err| panic!("opendir {}: {err}", what(&rel))));
            }
            SFlag::S_IFLNK => {
                e.kind = Kind::Symlink;
                let t = readlinkat(Some(fd), cname)
                    .unwrap_or_else(|err| panic!("readlink {}: {err}", what(&rel)));
                e.link_target = Some(t.as_bytes().to_vec());
            }
            SFlag::S_IFIFO => e.kind = Kind::Fifo,
            SFlag::S_IFSOCK => e.kind = Kind::Socket,
            k @ (SFlag::S_IFCHR | SFlag::S_IFBLK) => {
                e.kind = if k == SFlag::S_IFCHR {
                    Kind::CharDev
                } else {
                    Kind::BlockDev
                };
                e.rdev = Some((
                    libc::major(st.st_rdev).into(),
                    libc::minor(st.st_rdev).into(),
                ));
            }
            _ => {}
        }
        m.entries.insert(rel.clone(), e);
        if let Some(d) = sub {
            walk(d, &rel, top, m);
        }
    }
}

/// Hashes a file, with `O_NOATIME` where permitted (not to disturb evidence).
fn hash_path(p: &Path) -> io::Result<String> {
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(p)
    };
    let mut f = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        r => r?,
    };
    let mut h = Sha256::new();
    io::copy(&mut f, &mut HashWriter(&mut h))?;
    Ok(hex::encode(h.finalize()))
}

fn ignored(path: &[u8], ignore: &[Vec<u8>]) -> bool {
    ignore.iter().any(|i| {
        i.is_empty()
            || path == i.as_slice()
            || (path.starts_with(i) && path.get(i.len()) == Some(&b'/'))
    })
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Fifo => "fifo",
        Kind::CharDev => "char device",
        Kind::BlockDev => "block device",
        Kind::Socket => "socket",
    }
}

/// Differences between an `expected` manifest (the oracle) and an `actual`
/// one: missing and extra paths and mismatching fields. `ignore` lists paths
/// skipped on both sides together with everything below them (`"proc"`
/// skips `proc` and `proc/...`, not `procfoo`; a leading `/` or `./` is
/// allowed). Directories are compared without size; sizes and hashes only
/// for files, link targets only for symlinks, device numbers only for
/// devices.
pub fn compare(expected: &Manifest, actual: &Manifest, ignore: &[&str]) -> Vec<String> {
    let ignore: Vec<Vec<u8>> = ignore.iter().map(|i| normalize(i.as_bytes())).collect();
    let mut out = Vec::new();
    for (path, e) in &expected.entries {
        if ignored(path, &ignore) {
            continue;
        }
        let Some(a) = actual.entries.get(path) else {
            out.push(format!("missing: {} ({})", show(path), kind_name(e.kind)));
            continue;
        };
        let p = show(path);
        let mut field = |name: &str, x: String, y: String| {
            if x != y {
                out.push(format!("{p}: {name} expected {x}, actual {y}"));
            }
        };
        field("kind", kind_name(e.kind).into(), kind_name(a.kind).into());
        field("mode", format!("{:04o}", e.mode), format!("{:04o}", a.mode));
        field("uid", e.uid.to_string(), a.uid.to_string());
        field("gid", e.gid.to_string(), a.gid.to_string());
        field("mtime", e.mtime.to_string(), a.mtime.to_string());
        if e.kind != a.kind {
            continue;
        }
        match e.kind {
            Kind::File => {
                field("size", e.size.to_string(), a.size.to_string());
                let h = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                field("sha256", h(&e.sha256), h(&a.sha256));
            }
            Kind::Symlink => {
                let t = |v: &Option<Vec<u8>>| v.as_deref().map_or("-".into(), show);
                field("link target", t(&e.link_target), t(&a.link_target));
            }
            Kind::CharDev | Kind::BlockDev => {
                field("rdev", format!("{:?}", e.rdev), format!("{:?}", a.rdev));
            }
            _ => {}
        }
    }
    for (path, a) in &actual.entries {
        if !ignored(path, &ignore) && !expected.entries.contains_key(path) {
            out.push(format!("extra: {} ({})", show(path), kind_name(a.kind)));
        }
    }
    out
}

/// `path` as an `&OsStr` (for joining manifest paths onto a directory).
pub fn os(path: &[u8]) -> &OsStr {
    OsStr::from_bytes(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::process::Command;

    fn make_tree(r: &Path) {
        fs::create_dir_all(r.join("d/empty")).expect("mkdir");
        fs::write(r.join("d/file"), b"hello").expect("write");
        fs::write(r.join(os(b"name with spaces\nand \\ and \xff")), b"odd").expect("write");
        fs::hard_link(r.join("d/file"), r.join("hard")).expect("link");
        symlink("/etc/shadow", r.join("abs")).expect("symlink");
        symlink("../../../../etc/shadow", r.join("d/rel")).expect("symlink");
        fs::write(r.join("suid"), b"#!").expect("write");
        fs::set_permissions(r.join("suid"), fs::Permissions::from_mode(0o4755)).expect("chmod");
        fs::set_permissions(r.join("d/empty"), fs::Permissions::from_mode(0o1777)).expect("chmod");
        nix::unistd::mkfifo(
            &r.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let long = "l".repeat(150);
        fs::create_dir_all(r.join(&long).join(&long)).expect("mkdir long");
        fs::write(r.join(&long).join(&long).join("f"), vec![7u8; 100_000]).expect("write");
    }

    fn tar_of(dir: &Path, out: &Path, extra: &[&str]) {
        let st = Command::new("tar")
            .args(extra)
            .arg("-C")
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg(".")
            .status()
            .expect("run tar");
        assert!(st.success(), "tar failed");
    }

    #[test]
    fn tar_and_dir_agree() {
        let t = tempfile::tempdir().expect("tempdir");
        let tree = t.path().join("tree");
        make_tree(&tree);
        for (name, fmt) in [("gnu.tar", "--format=gnu"), ("pax.tar", "--format=pax")] {
            let tarp = t.path().join(name);
            tar_of(&tree, &tarp, &[fmt]);
            let a = from_tar(&tarp);
            let b = from_dir(&tree);
            assert_eq!(
                a.len(),
                12,
                "{:?}",
                a.entries.keys().map(|k| show(k)).collect::<Vec<_>>()
            );
            assert!(
                compare(&a, &b, &[]).is_empty(),
                "{fmt}: {:?}",
                compare(&a, &b, &[])
            );
            let hard = a.get(b"hard").expect("hard link entry");
            assert_eq!(hard.kind, Kind::File);
            assert_eq!(hard.sha256, a.get(b"d/file").and_then(|e| e.sha256.clone()));
            assert_eq!(a.get(b"suid").map(|e| e.mode), Some(0o4755));
            assert_eq!(
                a.get(b"d/rel").and_then(|e| e.link_target.clone()),
                Some(b"../../../../etc/shadow".to_vec())
            );
            assert!(a.get(b"name with spaces\nand \\ and \xff").is_some());
        }
    }

    #[test]
    fn compare_reports_fields_missing_extra_and_ignores() {
        let t = tempfile::tempdir().expect("tempdir");
        make_tree(t.path());
        let a = from_dir(t.path());
        fs::write(t.path().join("d/file"), b"HELLO").expect("write");
        fs::set_permissions(t.path().join("suid"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::remove_file(t.path().join("fifo")).expect("rm");
        fs::write(t.path().join("new"), b"").expect("write");
        let b = from_dir(t.path());
        let d = compare(&a, &b, &[]);
        assert!(
            d.iter().any(|l| l.starts_with("d/file: sha256 expected")),
            "{d:?}"
        );
        assert!(
            d.contains(&"suid: mode expected 4755, actual 0755".to_string()),
            "{d:?}"
        );
        assert!(d.contains(&"missing: fifo (fifo)".to_string()), "{d:?}");
        assert!(d.contains(&"extra: new (file)".to_string()), "{d:?}");
        let d = compare(&a, &b, &["/d", "./suid", "fifo", "new", "hard"]);
        assert!(d.is_empty(), "{d:?}");
        // Prefixes are whole components.
        assert!(!compare(&a, &b, &["su", "d", "fifo", "new", "hard"]).is_empty());
    }

    #[test]
    fn pax_times_floor() {
        assert_eq!(parse_pax_int(b"1700000000.999"), Some(1_700_000_000));
        assert_eq!(parse_pax_int(b"-5.5"), Some(-6));
        assert_eq!(parse_pax_int(b"42"), Some(42));
    }
}
