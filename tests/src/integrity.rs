//! Evidence integrity harness: a complete metadata + content snapshot of a
//! tree, taken without changing it (no symlink is followed, every file and
//! directory is opened with `O_NOATIME`), and a diff of two snapshots.
//!
//! ```no_run
//! # use std::path::Path;
//! let root = Path::new("/evidence/docker");
//! let before = docker_mount_tests::integrity::snapshot(root);
//! // ... read the evidence ...
//! before.assert_unchanged(&docker_mount_tests::integrity::snapshot(root));
//! ```

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use sha2::{Digest, Sha256};

/// One entry of a [`Snapshot`]: everything that can change about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `S_IFMT` bits of the mode, as a letter: `f d l p c b s ?`.
    pub kind: char,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: i64,
    pub rdev: u64,
    pub nlink: u64,
    pub ino: u64,
    /// `(seconds, nanoseconds)`.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub atime: (i64, i64),
    /// Symlink target (symlinks only).
    pub target: Option<Vec<u8>>,
    /// Hex sha256 of the content (regular files only).
    pub sha256: Option<String>,
    /// Extended attributes, name → value.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Directory on another filesystem (a mount point): not descended.
    pub other_fs: bool,
    /// Anything that could not be read (recorded, not fatal).
    pub errors: Vec<String>,
}

/// A snapshot of a whole tree, keyed by path relative to its root (the root
/// itself is the empty path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    root: PathBuf,
    records: BTreeMap<Vec<u8>, Record>,
    /// Taken through a private noatime mount (root only). Without it,
    /// `readlink` may move a symlink's atime, so symlink atimes are not
    /// compared unless both snapshots had it.
    atime_safe: bool,
}

/// Snapshots the tree at `root` (which must be a directory).
///
/// Panics if `root` cannot be opened; unreadable entries below it are
/// recorded in [`Record::errors`] instead.
pub fn snapshot(root: &Path) -> Snapshot {
    let (tree, atime_safe) = match noatime_tree(root) {
        Ok(fd) => (Some(fd), true),
        Err(_) => (None, false),
    };
    let dir = match &tree {
        Some(fd) => Dir::openat(Some(fd.as_raw_fd()), ".", dir_flags(), Mode::empty()),
        None => Dir::openat(None, root, dir_flags(), Mode::empty()),
    }
    .unwrap_or_else(|e| panic!("integrity: cannot open root {}: {e}", root.display()));
    let st = fstatat(Some(dir.as_raw_fd()), ".", AtFlags::AT_SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("integrity: cannot stat root {}: {e}", root.display()));
    let mut records = BTreeMap::new();
    let mut rec = record_from_stat(&st);
    rec.xattrs = read_xattrs(&proc_path(dir.as_raw_fd(), None), &mut rec.errors);
    records.insert(Vec::new(), rec);
    walk(dir, st.st_dev, &mut records);
    Snapshot {
        root: root.to_path_buf(),
        records,
        atime_safe,
    }
}

/// A private, detached, read-only `noatime` clone of the mount at `root`
/// (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr`): invisible to other
/// processes, gone when the fd closes. Through it not even `readlink`
/// (which has no `O_NOATIME`) can touch an atime. Needs CAP_SYS_ADMIN.
pub(crate) fn noatime_tree(root: &Path) -> std::io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOATIME: u64 = 0x10;
    const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: plain syscall with a valid NUL-terminated path.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: open_tree returned a fresh descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME,
        attr_clr: MOUNT_ATTR_ATIME_MASK,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr points to a
    // properly sized struct mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

impl Snapshot {
    /// Number of entries, the root included.
    pub fn entries(&self) -> usize {
        self.records.len()
    }

    /// The tree this snapshot was taken of.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The record of one path (relative, `b""` for the root).
    pub fn get(&self, path: &[u8]) -> Option<&Record> {
        self.records.get(path)
    }

    /// Human-readable differences from `self` to `after`; empty = identical.
    pub fn diff(&self, after: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (path, a) in &self.records {
            match after.records.get(path) {
                None => out.push(format!("removed: {}", show(path))),
                Some(b) => {
                    let link_atime = self.atime_safe && after.atime_safe;
                    diff_record(path, a, b, link_atime, &mut out);
                }
            }
        }
        for path in after.records.keys() {
            if !self.records.contains_key(path) {
                out.push(format!("added: {}", show(path)));
            }
        }
        out
    }

    /// Panics, listing up to 50 differences, if `after` differs from `self`.
    pub fn assert_unchanged(&self, after: &Snapshot) {
        let diff = self.diff(after);
        if diff.is_empty() {
            return;
        }
        let mut msg = format!(
            "evidence under {} was modified: {} difference(s)\n",
            self.root.display(),
            diff.len()
        );
        for line in diff.iter().take(50) {
            let _ = writeln!(msg, "  {line}");
        }
        if diff.len() > 50 {
            let _ = writeln!(msg, "  ... and {} more", diff.len() - 50);
        }
        panic!("{msg}");
    }
}

pub(crate) fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOATIME | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// `/proc/self/fd/<dirfd>[/name]`: a path that reaches an entry through an
/// open directory, immune to PATH_MAX, whose last component is not followed
/// by the l* xattr calls or by `O_NOFOLLOW`.
pub(crate) fn proc_path(dirfd: i32, name: Option<&[u8]>) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{dirfd}"));
    if let Some(name) = name {
        p.push(OsStr::from_bytes(name));
    }
    p
}

/// A directory being walked: its fd, path, and the names not yet recorded.
struct Frame {
    dir: Dir,
    prefix: Vec<u8>,
    names: std::vec::IntoIter<Vec<u8>>,
}

/// Reads the names of `dir` (sorted), noting read errors on its record.
fn frame(mut dir: Dir, prefix: Vec<u8>, records: &mut BTreeMap<Vec<u8>, Record>) -> Frame {
    let mut names = Vec::new();
    let mut dir_errors = Vec::new();
    for ent in dir.iter() {
        match ent {
            Ok(ent) => {
                let name = ent.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(name.to_vec());
                }
            }
            Err(e) => dir_errors.push(format!("readdir: {e}")),
        }
    }
    if !dir_errors.is_empty() {
        if let Some(r) = records.get_mut(&prefix) {
            r.errors.extend(dir_errors);
        }
    }
    names.sort();
    Frame {
        dir,
        prefix,
        names: names.into_iter(),
    }
}

/// Records everything below the open directory `top`. A loop over a stack
/// of open directories (one per level: a path may be longer than
/// PATH_MAX, so each is reached from its parent's fd), not recursion:
/// evidence nests directories as deep as a path allows.
fn walk(top: Dir, dev: u64, records: &mut BTreeMap<Vec<u8>, Record>) {
    let mut stack = vec![frame(top, Vec::new(), records)];
    while let Some(current) = stack.last_mut() {
        let Some(name) = current.names.next() else {
            stack.pop();
            continue;
        };
        let fd = current.dir.as_raw_fd();
        let path = join(&current.prefix, &name);
        let cname = OsStr::from_bytes(&name);
        let st = match fstatat(Some(fd), cname, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => {
                records.insert(path, error_record(format!("lstat: {e}")));
                continue;
            }
        };
        let mut rec = record_from_stat(&st);
        let ppath = proc_path(fd, Some(&name));
        rec.xattrs = read_xattrs(&ppath, &mut rec.errors);
        let mut subdir = None;
        match rec.kind {
            'l' => match readlinkat(Some(fd), cname) {
                Ok(t) => rec.target = Some(t.as_bytes().to_vec()),
                Err(e) => rec.errors.push(format!("readlink: {e}")),
            },
            'f' => match hash_file(&ppath) {
                Ok(h) => rec.sha256 = Some(h),
                Err(e) => rec.errors.push(format!("read: {e}")),
            },
            'd' if st.st_dev != dev => rec.other_fs = true,
            'd' => match Dir::openat(Some(fd), cname, dir_flags(), Mode::empty()) {
                Ok(d) => subdir = Some(d),
                Err(e) => rec.errors.push(format!("opendir: {e}")),
            },
            _ => {}
        }
        records.insert(path.clone(), rec);
        if let Some(d) = subdir {
            let next = frame(d, path, records);
            stack.push(next);
        }
    }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "{e} (O_NOATIME needs ownership or CAP_FOWNER; refusing to change atime)"
                    ),
                )
            } else {
                e
            }
        })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn read_xattrs(path: &Path, errors: &mut Vec<String>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) => {
            if e.raw_os_error() != Some(libc::ENOTSUP) {
                errors.push(format!("listxattr: {e}"));
            }
            return out;
        }
    };
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(v)) => {
                out.insert(name.as_bytes().to_vec(), v);
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("getxattr {}: {e}", name.to_string_lossy())),
        }
    }
    out
}

/// Reads a whole file without changing its atime (for tests that read
/// evidence: they share cached roots with tests checking its integrity).
/// Falls back to a plain read where `O_NOATIME` is not permitted.
pub fn read_noatime(path: &Path) -> std::io::Result<Vec<u8>> {
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_CLOEXEC)
            .open(path)
    };
    let mut f = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        r => r?,
    };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

fn kind_of(mode: u32) -> char {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => 'f',
        SFlag::S_IFDIR => 'd',
        SFlag::S_IFLNK => 'l',
        SFlag::S_IFIFO => 'p',
        SFlag::S_IFCHR => 'c',
        SFlag::S_IFBLK => 'b',
        SFlag::S_IFSOCK => 's',
        _ => '?',
    }
}

fn record_from_stat(st: &FileStat) -> Record {
    Record {
        kind: kind_of(st.st_mode),
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size,
        rdev: st.st_rdev,
        nlink: st.st_nlink,
        ino: st.st_ino,
        mtime: (st.st_mtime, st.st_mtime_nsec),
        ctime: (st.st_ctime, st.st_ctime_nsec),
        atime: (st.st_atime, st.st_atime_nsec),
        target: None,
        sha256: None,
        xattrs: BTreeMap::new(),
        other_fs: false,
        errors: Vec::new(),
    }
}

fn error_record(err: String) -> Record {
    Record {
        kind: '?',
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        rdev: 0,
        nlink: 0,
        ino: 0,
        mtime: (0, 0),
        ctime: (0, 0),
        atime: (0, 0),
        target: None,
        sha256: None,
        xattrs: BTreeMap::new(),
        other_fs: false,
        errors: vec![err],
    }
}

/// A path for humans: printable ASCII as is, everything else escaped.
pub fn show(path: &[u8]) -> String {
    if path.is_empty() {
        return "<root>".into();
    }
    path.iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

fn show_time(t: (i64, i64)) -> String {
    format!("{}.{:09}", t.0, t.1)
}

fn diff_record(path: &[u8], a: &Record, b: &Record, link_atime: bool, out: &mut Vec<String>) {
    let p = show(path);
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{p}: {name} {x} -> {y}"));
        }
    };
    field("kind", a.kind.to_string(), b.kind.to_string());
    field("mode", format!("{:o}", a.mode), format!("{:o}", b.mode));
    field("uid", a.uid.to_string(), b.uid.to_string());
    field("gid", a.gid.to_string(), b.gid.to_string());
    field("size", a.size.to_string(), b.size.to_string());
    field("rdev", a.rdev.to_string(), b.rdev.to_string());
    field("nlink", a.nlink.to_string(), b.nlink.to_string());
    field("inode", a.ino.to_string(), b.ino.to_string());
    field("mtime", show_time(a.mtime), show_time(b.mtime));
    field("ctime", show_time(a.ctime), show_time(b.ctime));
    if link_atime || a.kind != 'l' || b.kind != 'l' {
        field("atime", show_time(a.atime), show_time(b.atime));
    }
    let opt = |v: &Option<Vec<u8>>| v.as_deref().map_or("-".to_string(), show);
    field("symlink target", opt(&a.target), opt(&b.target));
    let hash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    field("sha256", hash(&a.sha256), hash(&b.sha256));
    field(
        "mount point",
        a.other_fs.to_string(),
        b.other_fs.to_string(),
    );
    field(
        "errors",
        format!("{:?}", a.errors),
        format!("{:?}", b.errors),
    );
    for (name, va) in &a.xattrs {
        match b.xattrs.get(name) {
            None => out.push(format!("{p}: xattr {} removed", show(name))),
            Some(vb) if vb != va => out.push(format!(
                "{p}: xattr {} {} -> {}",
                show(name),
                show(va),
                show(vb)
            )),
            Some(_) => {}
        }
    }
    for name in b.xattrs.keys() {
        if !a.xattrs.contains_key(name) {
            out.push(format!("{p}: xattr {} added", show(name)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A small tree whose atimes are all old (before mtime), so that under
    /// `relatime` any ordinary read or readdir would update them.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        fs::create_dir_all(r.join("d/e")).expect("mkdir");
        fs::write(r.join("d/file"), b"hello").expect("write");
        fs::write(r.join(OsStr::from_bytes(b"top \xff")), b"x").expect("write");
        symlink("../nowhere", r.join("d/link")).expect("symlink");
        nix::unistd::mkfifo(&r.join("fifo"), Mode::from_bits_truncate(0o644)).expect("mkfifo");
        let old = TimeSpec::new(1_000_000, 5);
        for p in ["", "d", "d/e", "d/file", "d/link", "fifo"] {
            let st = fstatat(None, &r.join(p), AtFlags::AT_SYMLINK_NOFOLLOW).expect("stat");
            let m = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
            utimensat(None, &r.join(p), &old, &m, UtimensatFlags::NoFollowSymlink)
                .expect("utimensat");
        }
        t
    }

    #[test]
    fn untouched_tree_is_identical_including_atime() {
        let t = tree();
        let a = snapshot(t.path());
        let b = snapshot(t.path());
        assert_eq!(a.entries(), 7, "{:?}", a.records.keys().collect::<Vec<_>>());
        assert!(a.diff(&b).is_empty(), "{:?}", a.diff(&b));
        a.assert_unchanged(&b);
        assert_eq!(
            a.get(b"d/file")
                .and_then(|r| r.sha256.clone())
                .map(|h| h.len()),
            Some(64)
        );
        assert_eq!(
            a.get(b"d/link").and_then(|r| r.target.clone()),
            Some(b"../nowhere".to_vec())
        );
        assert_eq!(a.get(b"").map(|r| r.atime), Some((1_000_000, 5)));
        // Sanity: an ordinary read does move the atime here (relatime), so
        // the equality above really proves O_NOATIME is used.
        fs::read(t.path().join("d/file")).expect("read");
        let c = snapshot(t.path());
        let moved = a.get(b"d/file").map(|r| r.atime) != c.get(b"d/file").map(|r| r.atime);
        if moved {
            assert!(
                a.diff(&c).iter().any(|l| l.starts_with("d/file: atime")),
                "{:?}",
                a.diff(&c)
            );
        } else {
            eprintln!("note: filesystem does not update atime on read (noatime?)");
        }
    }

    #[test]
    fn detects_content_change() {
        let t = tree();
        let a = snapshot(t.path());
        fs::write(t.path().join("d/file"), b"hellO").expect("write");
        let d = a.diff(&snapshot(t.path()));
        assert!(d.iter().any(|l| l.starts_with("d/file: sha256")), "{d:?}");
    }

    #[test]
    fn detects_chmod() {
        let t = tree();
        let a = snapshot(t.path());
        fs::set_permissions(t.path().join("d/e"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let d = a.diff(&snapshot(t.path()));
        assert!(d.iter().any(|l| l.starts_with("d/e: mode")), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("d/e: ctime")), "{d:?}");
    }

    #[test]
    fn detects_atime_change() {
        let t = tree();
        let a = snapshot(t.path());
        for p in ["d/file", "d/link"] {
            let p = t.path().join(p);
            let st = fstatat(None, &p, AtFlags::AT_SYMLINK_NOFOLLOW).expect("stat");
            let m = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
            utimensat(
                None,
                &p,
                &TimeSpec::new(1_000_000, 6),
                &m,
                UtimensatFlags::NoFollowSymlink,
            )
            .expect("utimensat");
        }
        let d = a.diff(&snapshot(t.path()));
        let line = |p: &str| format!("{p}: atime 1000000.000000005 -> 1000000.000000006");
        assert!(d.contains(&line("d/file")), "{d:?}");
        // Symlink atimes are only reliable through the private noatime mount.
        if a.atime_safe {
            assert!(d.contains(&line("d/link")), "{d:?}");
        }
    }

    #[test]
    fn root_snapshots_use_a_private_noatime_mount() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: not root");
            return;
        }
        let t = tree();
        assert!(
            snapshot(t.path()).atime_safe,
            "open_tree/mount_setattr failed as root"
        );
    }

    #[test]
    fn detects_xattr_added() {
        let t = tree();
        let a = snapshot(t.path());
        let p = t.path().join("d/file");
        if let Err(e) = xattr::set(&p, "user.evidence", b"tampered") {
            panic!(
                "setting a user xattr under {} failed: {e}",
                t.path().display()
            );
        }
        let d = a.diff(&snapshot(t.path()));
        assert!(
            d.contains(&"d/file: xattr user.evidence added".to_string()),
            "{d:?}"
        );
    }

    #[test]
    fn detects_added_and_removed_entries() {
        let t = tree();
        let a = snapshot(t.path());
        fs::remove_file(t.path().join("fifo")).expect("rm");
        fs::write(t.path().join("d/e/new"), b"").expect("write");
        let d = a.diff(&snapshot(t.path()));
        assert!(d.contains(&"removed: fifo".to_string()), "{d:?}");
        assert!(d.contains(&"added: d/e/new".to_string()), "{d:?}");
    }

    #[test]
    #[should_panic(expected = "evidence under")]
    fn assert_unchanged_panics() {
        let t = tree();
        let a = snapshot(t.path());
        fs::write(t.path().join("d/file"), b"changed").expect("write");
        a.assert_unchanged(&snapshot(t.path()));
    }
}
