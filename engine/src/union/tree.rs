//! One layer's directory, read raw: entries with their metadata, whiteout
//! markers and opaque directories recognised by the layer's whiteout style.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use docker_mount_core::beneath::{absent_if_missing, Beneath};
use docker_mount_core::driver::WhiteoutStyle;
use docker_mount_core::stat::{FileKind, Stat};

/// aufs: prefix of whiteouts and bookkeeping entries.
const AUFS_WH: &[u8] = b".wh.";
/// aufs: marks its directory opaque.
const AUFS_OPAQUE: &[u8] = b".wh..wh..opq";
/// aufs: prefix of the bookkeeping entries (`.wh..wh.aufs`, `.wh..wh.plnk`, ...).
const AUFS_META: &[u8] = b".wh..wh.";
/// overlay: the opaque markers, root's and rootless docker's.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// One name in a layer directory.
#[derive(Debug, Clone)]
pub enum Raw {
    Entry(Stat),
    /// Hides the name in lower layers.
    Whiteout,
}

/// A directory of one layer, classified.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: BTreeMap<Vec<u8>, Raw>,
    /// The directory hides everything below it in lower layers.
    pub opaque: bool,
}

/// One layer of a union.
#[derive(Debug)]
pub struct Tree {
    /// The driver's id of the layer, for reports.
    pub id: String,
    dir: Beneath,
    /// `None` for full trees, which hold no whiteouts.
    style: Option<WhiteoutStyle>,
    /// Opaque directories known from elsewhere (tar-split), for callers
    /// that cannot read `trusted.*` xattrs.
    opaque_hint: HashSet<Vec<u8>>,
    /// The directory of the last file opened by [`Tree::open_listed`]:
    /// walks open files directory by directory.
    last_dir: Mutex<Option<(PathBuf, Arc<OwnedFd>)>>,
}

fn cstr(b: &[u8]) -> std::io::Result<CString> {
    CString::new(b).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// The metadata of `name` in `dirfd`, never following a symlink: statx
/// (which also gives the birth time), or fstatat where the kernel has none.
fn fstatat(dirfd: libc::c_int, name: &[u8]) -> std::io::Result<Stat> {
    fstatat_c(dirfd, &cstr(name)?)
}

/// [`fstatat`] of a name already NUL-terminated (a listing's: no copy).
fn fstatat_c(dirfd: libc::c_int, c: &std::ffi::CStr) -> std::io::Result<Stat> {
    static NO_STATX: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !NO_STATX.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: zeroed statx is a valid buffer for statx to fill.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
        // SAFETY: valid fd, C string and buffer.
        let rc =
            unsafe { libc::statx(dirfd, c.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, mask, &mut stx) };
        if rc == 0 {
            return Ok(Stat::from_statx(&stx));
        }
        let e = std::io::Error::last_os_error();
        // Old kernels, and seccomp filters that predate statx.
        if !matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
            return Err(e);
        }
        NO_STATX.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: zeroed stat is a valid buffer for fstatat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and buffer.
    let rc = unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc == 0 {
        Ok(Stat::from_libc(&st))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The value of one xattr of an open file, `None` when absent.
fn fgetxattr(fd: libc::c_int, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let c = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: valid fd, C string and buffer of the given length.
        let n = unsafe { libc::fgetxattr(fd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 16, 0),
            _ => return Err(e),
        }
    }
}

fn flistxattr(fd: libc::c_int) -> std::io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: valid fd and buffer of the given length.
        let n = unsafe { libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
                .collect());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 16, 0),
            _ => return Err(e),
        }
    }
}

/// The extended attributes of an open file or directory, without overlay's own.
pub fn fd_xattrs(fd: libc::c_int) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in flistxattr(fd)? {
        if is_overlay_xattr(&name) {
            continue;
        }
        let Ok(key) = std::str::from_utf8(&name) else {
            continue;
        };
        if let Some(value) = fgetxattr(fd, key)? {
            out.push((name, value));
        }
    }
    Ok(out)
}

/// Whether an xattr is overlay's own bookkeeping, never part of a view.
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn join(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

impl Tree {
    /// A layer whose files are in `rel` beneath `base`.
    pub fn open(
        base: &Beneath,
        rel: &Path,
        style: Option<WhiteoutStyle>,
        id: &str,
    ) -> crate::Result<Tree> {
        Ok(Tree {
            id: id.to_string(),
            dir: base.subdir(rel)?,
            style,
            opaque_hint: HashSet::new(),
            last_dir: Mutex::default(),
        })
    }

    /// A layer whose files are the whole of `dir` (a served dataset).
    pub fn whole(dir: Beneath, style: Option<WhiteoutStyle>, id: &str) -> Tree {
        Tree {
            id: id.to_string(),
            dir,
            style,
            opaque_hint: HashSet::new(),
            last_dir: Mutex::default(),
        }
    }

    /// Adds opaque directories known from elsewhere (relative paths, "" = root).
    pub fn add_opaque_hints(&mut self, dirs: impl IntoIterator<Item = Vec<u8>>) {
        self.opaque_hint.extend(dirs);
    }

    /// The layer's directory, for messages.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn style(&self) -> Option<WhiteoutStyle> {
        self.style
    }

    /// Opens directory `rel` of this layer (`""` for its top), for walks
    /// that go on one name at a time ([`Tree::probe_at`],
    /// [`docker_mount_core::beneath::open_child_dir`]).
    pub fn open_dir(&self, rel: &Path) -> std::io::Result<OwnedFd> {
        self.dir.open_dir(rel)
    }

    /// The metadata of the layer's own top directory.
    pub fn list_self_stat(&self) -> std::io::Result<Stat> {
        let fd = self.open_dir(Path::new(""))?;
        // SAFETY: zeroed stat is a valid buffer for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and buffer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Stat::from_libc(&st))
    }

    /// The entries of directory `rel` of this layer, classified. A missing
    /// directory is an empty, non-opaque listing.
    pub fn list(&self, rel: &Path) -> std::io::Result<Listing> {
        let Some(fd) = absent_if_missing(self.open_dir(rel))? else {
            return Ok(Listing::default());
        };
        self.list_fd(fd, rel)
    }

    /// [`Tree::list`] of directory `rel` of this layer, already open as
    /// `fd` (which stays open: walks open the subdirectories from it).
    pub fn list_at(&self, fd: &OwnedFd, rel: &Path) -> std::io::Result<Listing> {
        self.list_fd(fd.try_clone()?, rel)
    }

    fn list_fd(&self, fd: OwnedFd, rel: &Path) -> std::io::Result<Listing> {
        let raw = fd.as_raw_fd();
        let mut listing = Listing {
            opaque: self.is_opaque_fd(raw, rel)?,
            ..Listing::default()
        };
        let mut dir = nix::dir::Dir::from(fd).map_err(std::io::Error::from)?;
        let names: Vec<CString> = dir
            .iter()
            .map(|e| e.map(|e| e.file_name().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::from)?;
        for c_name in names {
            let name = c_name.as_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if self.style == Some(WhiteoutStyle::Aufs) && name.starts_with(AUFS_WH) {
                if name == AUFS_OPAQUE {
                    listing.opaque = true;
                } else if !name.starts_with(AUFS_META) {
                    listing
                        .entries
                        .entry(name[AUFS_WH.len()..].to_vec())
                        .or_insert(Raw::Whiteout);
                }
                continue;
            }
            let st = fstatat_c(raw, &c_name)?;
            let whiteout = self.style == Some(WhiteoutStyle::Overlay)
                && st.kind == FileKind::CharDev
                && st.rdev == 0;
            listing.entries.insert(
                c_name.into_bytes(),
                if whiteout {
                    Raw::Whiteout
                } else {
                    Raw::Entry(st)
                },
            );
        }
        Ok(listing)
    }

    fn is_opaque_fd(&self, fd: libc::c_int, rel: &Path) -> std::io::Result<bool> {
        // A full tree is complete: nothing below it shows through anywhere.
        if self.style.is_none() || self.opaque_hint.contains(rel.as_os_str().as_bytes()) {
            return Ok(true);
        }
        if self.style != Some(WhiteoutStyle::Overlay) {
            return Ok(false);
        }
        for name in OPAQUE_XATTRS {
            if fgetxattr(fd, name)?.as_deref() == Some(b"y") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What `name` in directory `dir` is in this layer, and whether `dir`
    /// is opaque here: the single-name form of [`Tree::list`].
    pub fn probe(&self, dir: &Path, name: &[u8]) -> std::io::Result<(Option<Raw>, bool)> {
        match absent_if_missing(self.open_dir(dir))? {
            Some(fd) => self.probe_at(&fd, dir, name),
            None => Ok((None, false)),
        }
    }

    /// [`Tree::probe`] in directory `dir` of this layer, already open as `fd`.
    pub fn probe_at(
        &self,
        fd: &OwnedFd,
        dir: &Path,
        name: &[u8],
    ) -> std::io::Result<(Option<Raw>, bool)> {
        let fd = fd.as_raw_fd();
        let mut opaque = self.is_opaque_fd(fd, dir)?;
        if self.style == Some(WhiteoutStyle::Aufs) {
            opaque |= fstatat(fd, AUFS_OPAQUE).is_ok();
            if name.starts_with(AUFS_WH) {
                return Ok((None, opaque));
            }
            if fstatat(fd, &[AUFS_WH, name].concat()).is_ok() {
                return Ok((Some(Raw::Whiteout), opaque));
            }
        }
        let raw = match fstatat(fd, name) {
            Ok(st)
                if self.style == Some(WhiteoutStyle::Overlay)
                    && st.kind == FileKind::CharDev
                    && st.rdev == 0 =>
            {
                Some(Raw::Whiteout)
            }
            Ok(st) => Some(Raw::Entry(st)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        Ok((raw, opaque))
    }

    /// Opens a regular file of this layer for reading (never following a symlink).
    pub fn open_file(&self, rel: &Path) -> std::io::Result<File> {
        self.dir.open_regular(rel).map(File::from)
    }

    /// Opens the regular file `rel` that a listing of this layer found as
    /// `st` ([`Beneath::open_listed`]: the listing was the probe), its
    /// directory kept open for the next file.
    pub fn open_listed(&self, rel: &Path, st: &Stat) -> std::io::Result<File> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        let cached = {
            let last = self.last_dir.lock().unwrap_or_else(|p| p.into_inner());
            last.as_ref()
                .filter(|(p, _)| p == parent)
                .map(|(_, fd)| fd.clone())
        };
        let dir = match cached {
            Some(fd) => fd,
            None => {
                let fd = Arc::new(self.dir.open_dir(parent)?);
                *self.last_dir.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((parent.to_path_buf(), fd.clone()));
                fd
            }
        };
        Beneath::open_listed(dir.as_fd(), name, st.dev, st.ino).map(|(fd, _)| File::from(fd))
    }

    /// The hex sha256 of a regular file of this layer, streamed.
    pub fn sha256(&self, rel: &Path) -> std::io::Result<String> {
        thread_local! {
            /// One read buffer per thread: zeroing a fresh one per file
            /// costs more than hashing a small file.
            static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHUNK]);
        }
        let mut file = self.open_file(rel)?;
        let mut hasher = Sha256::new();
        BUF.with_borrow_mut(|buf| loop {
            match file.read(buf) {
                Ok(0) => return Ok(hex::encode(hasher.finalize())),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        })
    }

    /// Whether regular file `rel` has the same bytes here and in `other`,
    /// read side by side and stopping at the first difference. Errors name
    /// the file that failed.
    pub fn same_content(&self, other: &Tree, rel: &Path) -> std::io::Result<bool> {
        let mut a = self.open_file(rel).map_err(|e| self.named(rel, e))?;
        let mut b = other.open_file(rel).map_err(|e| other.named(rel, e))?;
        let (mut buf_a, mut buf_b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        loop {
            let n = read_full(&mut a, &mut buf_a).map_err(|e| self.named(rel, e))?;
            let m = read_full(&mut b, &mut buf_b).map_err(|e| other.named(rel, e))?;
            if n != m || buf_a[..n] != buf_b[..n] {
                return Ok(false);
            }
            if n < CHUNK {
                return Ok(true);
            }
        }
    }

    /// `e` with the path of `rel` in this layer prefixed to its message.
    pub fn named(&self, rel: &Path, e: std::io::Error) -> std::io::Error {
        let path = self.path().join(rel);
        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    }

    /// The target of a symlink of this layer.
    pub fn readlink(&self, rel: &Path) -> std::io::Result<Vec<u8>> {
        self.dir
            .readlink(rel)
            .map(|p| p.into_os_string().into_vec())
    }

    /// Extended attributes of a file or directory, without overlay's own.
    /// Other kinds (symlinks, devices, fifos) report none: opening them to
    /// ask could block (fifos) or follow them (symlinks).
    pub fn xattrs(&self, rel: &Path, kind: FileKind) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let fd = match kind {
            FileKind::File => self.dir.open_fd(rel, 0)?,
            FileKind::Dir => self.open_dir(rel)?,
            _ => return Ok(Vec::new()),
        };
        fd_xattrs(fd.as_raw_fd())
    }

    /// The path of `name` inside `dir`, for messages.
    pub fn display_path(&self, dir: &Path, name: &[u8]) -> PathBuf {
        join(&self.dir.path().join(dir), name)
    }
}

/// Read size when hashing or comparing contents.
const CHUNK: usize = 1 << 16;

/// Fills `buf` as far as the file goes: short only at its end.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

use std::os::unix::ffi::OsStringExt;
