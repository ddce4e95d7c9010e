//! Reading evidence without following it anywhere.
//!
//! Every path inside the docker root is untrusted: it is opened relative to
//! a directory fd with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//! (or, on kernels without openat2, one `O_NOFOLLOW` component at a time),
//! always with `O_NOATIME` where the kernel allows it, and never for
//! writing. Reads are bounded.

use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A trusted directory (the docker root, or one layer) whose contents are not.
#[derive(Debug)]
pub struct Beneath {
    path: PathBuf,
    fd: OwnedFd,
    mount: Mount,
}

/// What the mount a directory lies on lets a read skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    /// Device nodes on it could be opened: every file is probed first.
    Devices,
    /// `nodev`: opening a device node fails (`EACCES`) before any device
    /// driver sees it, so files on this mount are opened without a probe.
    NoDev,
    /// A private read-only, noatime, nodev view ([`Beneath::noatime_clone`]),
    /// with the filesystems mounted below it when `recursive`.
    View { recursive: bool },
}

/// `openat2` resolution: beneath the directory, no symlink followed.
const RESOLVE_BENEATH: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
/// [`RESOLVE_BENEATH`], never leaving the directory's mount.
const RESOLVE_SAME_MOUNT: u64 = RESOLVE_BENEATH | libc::RESOLVE_NO_XDEV;

/// Opens `path` relative to `dirfd` (or the cwd for an absolute `path`):
/// with `openat2` and these `resolve` flags, or a plain `openat` for 0.
fn open_raw(
    dirfd: libc::c_int,
    path: &Path,
    flags: libc::c_int,
    resolve: u64,
) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // O_NONBLOCK: opening a FIFO must not wait for a writer that never
    // comes. It is cleared again once open (reads then behave as asked).
    // Not needed for O_PATH, nor for O_DIRECTORY: a FIFO then fails with
    // ENOTDIR before anything is opened.
    let nonblock = if flags & (libc::O_PATH | libc::O_DIRECTORY) == 0 {
        libc::O_NONBLOCK
    } else {
        0
    };
    let base = flags | nonblock | libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // O_PATH takes no other access flags (openat2 refuses them).
    let first = if flags & libc::O_PATH != 0 {
        0
    } else {
        libc::O_NOATIME
    };
    for noatime in [first, 0] {
        let fd = if resolve != 0 {
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = (base | noatime) as u64;
            how.resolve = resolve;
            // SAFETY: valid C string and open_how of the size passed.
            unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dirfd,
                    c.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                ) as libc::c_int
            }
        } else {
            // SAFETY: valid C string.
            unsafe { libc::openat(dirfd, c.as_ptr(), base | noatime) }
        };
        if fd >= 0 {
            // SAFETY: fd was just returned to us and is owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if nonblock != 0 && flags & libc::O_NONBLOCK == 0 {
                // SAFETY: plain fcntl on a valid fd.
                let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
                // SAFETY: plain fcntl on a valid fd.
                if fl < 0
                    || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK) }
                        < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            return Ok(fd);
        }
        let err = std::io::Error::last_os_error();
        // O_NOATIME needs ownership or CAP_FOWNER; retry without it.
        if err.raw_os_error() != Some(libc::EPERM) || noatime == 0 {
            return Err(err);
        }
    }
    unreachable!("the loop returns on its last pass")
}

/// Refuses, without opening it, anything that is not a regular file.
fn not_regular(st: &libc::stat) -> std::io::Result<()> {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symlink",
        _ => "of an unknown type",
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("is {kind}, not a regular file"),
    ))
}

/// `fstat` of an open file.
fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// `fd` with its `fstat`, refused unless it is a regular file.
fn checked_regular(fd: OwnedFd) -> std::io::Result<(OwnedFd, libc::stat)> {
    let st = fstat(&fd)?;
    not_regular(&st)?;
    Ok((fd, st))
}

/// Bytes asked by [`first_read`]: more than most configs and layer records.
const FIRST_READ: usize = 16 * 1024;

/// The whole of `fd` (opened where no device can be) when one `pread` of
/// [`FIRST_READ`] bytes (at most `limit + 1`) comes back short; `None`
/// when it filled the buffer (read on the usual way, size first).
///
/// The `pread` is also the type check: a FIFO refuses it (`ESPIPE`), a
/// directory too (`EISDIR`), and no device opens there; only a regular
/// file reads. A Linux read of a regular file returns less than asked only
/// at its end (or on a fatal signal), so a short one is the whole file.
fn first_read(fd: &OwnedFd, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let cap = FIRST_READ.min(usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX));
    // On the stack: a heap buffer per file costs more than the file.
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); FIRST_READ];
    let n = loop {
        // SAFETY: valid fd; the buffer has room for `cap <= FIRST_READ` bytes.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), cap, 0) };
        if let Ok(n) = usize::try_from(n) {
            break n;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Words what it is ("is a FIFO, not a regular file").
            Some(libc::ESPIPE | libc::EISDIR) => not_regular(&fstat(fd)?)?,
            _ => {}
        }
        return Err(e);
    };
    if n == cap {
        return Ok(None);
    }
    // SAFETY: `pread` initialised the first `n <= cap` bytes.
    let read = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
    Ok(Some(read.to_vec()))
}

/// Whether the mount holding `fd` is `nodev`.
fn on_nodev_mount(fd: &OwnedFd) -> bool {
    // SAFETY: zeroed statvfs is a valid buffer for fstatvfs to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) == 0 && st.f_flag & libc::ST_NODEV != 0 }
}

/// `fstatat` of `name` in the directory `at`, the name not followed.
fn fstatat_nofollow(at: libc::c_int, name: &OsStr) -> std::io::Result<libc::stat> {
    let c = CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: zeroed stat is a valid buffer for fstatat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and stat buffer.
    let rc = unsafe {
        libc::fstatat(
            at,
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
        )
    };
    if rc == 0 {
        Ok(st)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads a regular file of `len` bytes (its size when opened), and more if
/// it grew, up to `limit + 1` bytes. A read shorter than asked once `len`
/// bytes are in is the end: no extra read to see it (listings read
/// thousands of small files, and the extra read was one system call in
/// seven).
fn read_sized(file: std::fs::File, len: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    let cap = usize::try_from(len.min(limit) + 1).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; cap];
    let mut done = 0;
    let mut file = file.take(limit + 1);
    loop {
        if done == buf.len() {
            let more = buf.len().min(1 << 20);
            buf.resize(buf.len() + more, 0);
        }
        let asked = buf.len() - done;
        let n = match file.read(&mut buf[done..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        done += n;
        if n == 0 || (n < asked && done as u64 >= len) {
            buf.truncate(done);
            return Ok(buf);
        }
    }
}

/// [`RESOLVE_BENEATH`] where `openat2` exists, else 0 (a plain `openat`).
fn beneath_resolve() -> u64 {
    if openat2_supported() {
        RESOLVE_BENEATH
    } else {
        0
    }
}

fn openat2_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        match open_raw(
            libc::AT_FDCWD,
            Path::new("/"),
            libc::O_DIRECTORY,
            RESOLVE_BENEATH,
        ) {
            Ok(_) => true,
            Err(e) => e.raw_os_error() != Some(libc::ENOSYS),
        }
    })
}

/// Checks that `rel` is a plain relative path: no `..`, no root, no `.`.
pub fn check_relative(rel: &Path) -> std::io::Result<()> {
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if plain && !rel.as_os_str().is_empty() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path escapes the directory",
        ))
    }
}

/// Whether `name` can serve as one path component taken from the evidence
/// (an id, a link name): non-empty, no `/`, no NUL, not `.` or `..`.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= 255
}

/// `opened`, with a directory that is missing (or not a directory) taken
/// as absent: what a layer lacks is no error.
pub fn absent_if_missing<T>(opened: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match opened {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens directory `name` (one path component) inside `dir`, a directory
/// opened beneath a trusted one, without following a symlink: one step of
/// a walk that keeps the directories on its way open, so that each step
/// costs one name however deep the walk is.
pub fn open_child_dir(dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<OwnedFd> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let name = Path::new(std::ffi::OsStr::from_bytes(name));
    open_raw(dir.as_raw_fd(), name, libc::O_DIRECTORY, beneath_resolve())
}

impl Beneath {
    /// Opens a trusted directory (symlinks in `path` itself are followed:
    /// the analyst chose it).
    pub fn open(path: &Path) -> Result<Beneath> {
        let fd = open_raw(libc::AT_FDCWD, path, libc::O_DIRECTORY, 0)
            .or_else(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    // The analyst's own path may be a symlink: resolve it once.
                    let real = std::fs::canonicalize(path)?;
                    open_raw(libc::AT_FDCWD, &real, libc::O_DIRECTORY, 0)
                } else {
                    Err(e)
                }
            })
            .map_err(|cause| Error::Io {
                path: path.to_path_buf(),
                cause,
            })?;
        let mount = if on_nodev_mount(&fd) {
            Mount::NoDev
        } else {
            Mount::Devices
        };
        Ok(Beneath {
            path: path.to_path_buf(),
            fd,
            mount,
        })
    }

    /// [`Beneath::open`], then, where the process may make one, its
    /// [`noatime_clone_recursive`](Beneath::noatime_clone_recursive): what
    /// is read through it can touch no atime and open no device, and its
    /// files need no probe before they are opened (listings read thousands).
    pub fn open_view(path: &Path) -> Result<Beneath> {
        let dir = Beneath::open(path)?;
        Ok(dir.noatime_clone_recursive().unwrap_or(dir))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same directory seen through a private, detached mount that is
    /// read-only and never updates atimes (`open_tree` + `mount_setattr`),
    /// so that even reads the kernel cannot do without touching atimes
    /// (`readlink`) leave the evidence as it was. Needs CAP_SYS_ADMIN and
    /// Linux >= 5.12; `None` otherwise. Filesystems mounted below the
    /// directory are not part of the clone (their mount points show as
    /// they are on the evidence itself). A directory already seen through
    /// such a view is its own clone.
    pub fn noatime_clone(&self) -> Option<Beneath> {
        match self.mount {
            Mount::View { .. } => self.same_view(),
            _ => self.clone_view(false),
        }
    }

    /// [`Beneath::noatime_clone`] with the filesystems mounted below the
    /// directory, each read-only and noatime too: a host tree whose
    /// `/home` or `/var` partition the analyst mounted inside it.
    pub fn noatime_clone_recursive(&self) -> Option<Beneath> {
        match self.mount {
            Mount::View { recursive: true } => self.same_view(),
            _ => self.clone_view(true),
        }
    }

    /// This view again, on a duplicate of its descriptor (which keeps the
    /// view's mounts alive).
    fn same_view(&self) -> Option<Beneath> {
        // SAFETY: dup of our own valid fd.
        let dup = unsafe { libc::fcntl(self.fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return None;
        }
        // SAFETY: dup is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(dup) };
        Some(Beneath {
            path: self.path.clone(),
            fd,
            mount: self.mount,
        })
    }

    fn clone_view(&self, recursive: bool) -> Option<Beneath> {
        const OPEN_TREE_CLONE: libc::c_uint = 1;
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        const MOUNT_ATTR_RDONLY: u64 = 0x1;
        const MOUNT_ATTR_NOSUID: u64 = 0x2;
        const MOUNT_ATTR_NODEV: u64 = 0x4;
        const MOUNT_ATTR_NOEXEC: u64 = 0x8;
        const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
        const MOUNT_ATTR_NOATIME: u64 = 0x10;
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let empty = CString::default();
        // SAFETY: valid fd and empty C string with AT_EMPTY_PATH.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                self.fd(),
                empty.as_ptr(),
                OPEN_TREE_CLONE
                    | libc::O_CLOEXEC as libc::c_uint
                    | libc::AT_EMPTY_PATH as libc::c_uint
                    | if recursive { AT_RECURSIVE } else { 0 },
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: open_tree returned a new fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY
                | MOUNT_ATTR_NOSUID
                | MOUNT_ATTR_NODEV
                | MOUNT_ATTR_NOEXEC
                | MOUNT_ATTR_NOATIME,
            attr_clr: MOUNT_ATTR_ATIME_MASK,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr struct of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 },
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        (rc == 0).then(|| Beneath {
            path: self.path.clone(),
            fd,
            mount: Mount::View { recursive },
        })
    }

    /// The directory's descriptor, for `*at` calls (a view's is `O_PATH`).
    pub fn fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    /// Opens `rel` beneath this directory without following any symlink.
    pub fn open_fd(&self, rel: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
        check_relative(rel)?;
        if openat2_supported() {
            return open_raw(self.fd(), rel, flags, RESOLVE_BENEATH);
        }
        let mut components = rel.components().peekable();
        let mut dir: Option<OwnedFd> = None;
        while let Some(c) = components.next() {
            let name = Path::new(c.as_os_str());
            let at = dir.as_ref().map_or(self.fd(), |d| d.as_raw_fd());
            let last = components.peek().is_none();
            let f = if last { flags } else { libc::O_DIRECTORY };
            dir = Some(open_raw(at, name, f, 0)?);
        }
        dir.ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Opens the regular file `rel` for reading. Anything else is refused
    /// without being opened: a FIFO would wait for a writer, and opening a
    /// device can act on the analyst's machine (a watchdog, a tape).
    pub fn open_regular(&self, rel: &Path) -> std::io::Result<OwnedFd> {
        self.open_regular_stat(rel).map(|(fd, _)| fd)
    }

    /// [`Beneath::open_regular`], with the opened file's `fstat`.
    ///
    /// The directory holding the file is opened beneath this one without
    /// following any symlink; there, an `fstatat` of the name (not
    /// followed) refuses anything but a regular file before it is opened,
    /// the open itself is `O_NOFOLLOW`, and `fstat` of the opened file
    /// checks it is the file probed. `O_NONBLOCK` stays set: it changes
    /// nothing for regular files.
    ///
    /// Where no device can be opened (a `nodev` mount, a noatime view),
    /// one `openat2` that stays on this mount opens the file without the
    /// probe (listings read thousands): a FIFO then opens without waiting
    /// (`O_NONBLOCK`) and is refused by the `fstat` after, like anything
    /// that is not a regular file. Another mount on the way, or any error
    /// but a missing file, takes the probing way, which words it best.
    pub fn open_regular_stat(&self, rel: &Path) -> std::io::Result<(OwnedFd, libc::stat)> {
        match self.open_unprobed(rel)? {
            Some(fd) => checked_regular(fd),
            None => self.open_probed(rel),
        }
    }

    /// Where no device can be opened, `rel` opened by one `openat2` that
    /// stays on this mount, not yet checked: `None` on another mount, or
    /// on an error the probing way words best.
    fn open_unprobed(&self, rel: &Path) -> std::io::Result<Option<OwnedFd>> {
        if self.mount == Mount::Devices || !openat2_supported() {
            return Ok(None);
        }
        check_relative(rel)?;
        match open_raw(self.fd(), rel, libc::O_NONBLOCK, RESOLVE_SAME_MOUNT) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Opens the regular file `rel` after an `fstatat` probe of its name.
    fn open_probed(&self, rel: &Path) -> std::io::Result<(OwnedFd, libc::stat)> {
        let (parent_fd, name) = self.parent_of(rel)?;
        let at = parent_fd.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
        let probe = fstatat_nofollow(at.as_raw_fd(), name)?;
        not_regular(&probe)?;
        Beneath::open_listed(at, name, probe.st_dev, probe.st_ino)
    }

    /// Opens the regular file `name` of directory `dir` (a descriptor from
    /// [`Beneath::open_fd`] of a directory beneath this one) that a listing
    /// of `dir` (or an `fstatat` probe of the name) found as `(dev, ino)`:
    /// no `fstatat` comes first. The open is `O_NOFOLLOW | O_NONBLOCK`, and
    /// `fstat` of the opened file checks it is still that regular file.
    pub fn open_listed(
        dir: BorrowedFd<'_>,
        name: &OsStr,
        dev: u64,
        ino: u64,
    ) -> std::io::Result<(OwnedFd, libc::stat)> {
        check_relative(Path::new(name))?;
        if Path::new(name).components().count() != 1 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let fd = open_raw(dir.as_raw_fd(), Path::new(name), libc::O_NONBLOCK, 0)?;
        let st = fstat(&fd)?;
        if (st.st_dev, st.st_ino) != (dev, ino) {
            return Err(std::io::Error::other("changed since it was probed"));
        }
        not_regular(&st)?;
        Ok((fd, st))
    }

    /// Opens a subdirectory as a new trusted base (in the same view, or
    /// on the same `nodev` mount, when this one is).
    pub fn subdir(&self, rel: &Path) -> Result<Beneath> {
        let (fd, mount) = self
            .open_subdir(rel)
            .map_err(|source| self.io_error(rel, source))?;
        Ok(Beneath {
            path: self.path.join(rel),
            fd,
            mount,
        })
    }

    fn open_subdir(&self, rel: &Path) -> std::io::Result<(OwnedFd, Mount)> {
        // Every mount below a view is part of it (or hidden by it).
        if let Mount::View { .. } = self.mount {
            return Ok((self.open_fd(rel, libc::O_DIRECTORY)?, self.mount));
        }
        if self.mount == Mount::NoDev && openat2_supported() {
            check_relative(rel)?;
            match open_raw(self.fd(), rel, libc::O_DIRECTORY, RESOLVE_SAME_MOUNT) {
                Ok(fd) => return Ok((fd, Mount::NoDev)),
                Err(e) if e.raw_os_error() != Some(libc::EXDEV) => return Err(e),
                Err(_) => {}
            }
        }
        Ok((self.open_fd(rel, libc::O_DIRECTORY)?, Mount::Devices))
    }

    pub fn io_error(&self, rel: &Path, cause: std::io::Error) -> Error {
        Error::Io {
            path: self.path.join(rel),
            cause,
        }
    }

    /// Reads a whole regular file of at most `limit` bytes.
    ///
    /// Where no device can be opened, a file shorter than [`FIRST_READ`]
    /// costs one `openat2`, one `pread` and a `close` (see [`first_read`]).
    pub fn read(&self, rel: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
        let io = |source| self.io_error(rel, source);
        let (fd, st) = match self.open_unprobed(rel).map_err(io)? {
            Some(fd) => match first_read(&fd, limit).map_err(io)? {
                Some(whole) => return Ok(whole),
                None => checked_regular(fd).map_err(io)?,
            },
            None => self.open_probed(rel).map_err(io)?,
        };
        let len = u64::try_from(st.st_size).unwrap_or(0);
        if len > limit {
            return Err(Error::TooLarge {
                path: self.path.join(rel),
                what,
                limit,
            });
        }
        let file = std::fs::File::from(fd);
        let buf = read_sized(file, len, limit).map_err(|source| self.io_error(rel, source))?;
        if buf.len() as u64 > limit {
            return Err(Error::TooLarge {
                path: self.path.join(rel),
                what,
                limit,
            });
        }
        Ok(buf)
    }

    /// Reads a small text file (an id, a link) and trims surrounding whitespace.
    pub fn read_small_text(&self, rel: &Path, what: &'static str) -> Result<String> {
        let bytes = self.read(rel, 64 * 1024, what)?;
        String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| Error::invalid(self.path.join(rel), format!("{what} is not UTF-8 text")))
    }

    /// Parses a JSON file of at most `limit` bytes.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        rel: &Path,
        limit: u64,
        what: &'static str,
    ) -> Result<T> {
        let bytes = self.read(rel, limit, what)?;
        serde_json::from_slice(&bytes).map_err(|cause| Error::Json {
            path: self.path.join(rel),
            what,
            cause,
        })
    }

    /// Opens directory `rel` (`""` for this directory itself) without following symlinks.
    pub fn open_dir(&self, rel: &Path) -> std::io::Result<OwnedFd> {
        if !rel.as_os_str().is_empty() {
            return self.open_fd(rel, libc::O_DIRECTORY);
        }
        if let Mount::View { .. } = self.mount {
            // A view's own descriptor is `open_tree`'s `O_PATH` one.
            return open_raw(self.fd(), Path::new("."), libc::O_DIRECTORY, 0);
        }
        // SAFETY: dup of our own valid fd.
        let dup = unsafe { libc::fcntl(self.fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: dup is a fresh fd we own.
        Ok(unsafe { OwnedFd::from_raw_fd(dup) })
    }

    /// Names in a directory (not `.`/`..`), sorted; no symlink is followed.
    pub fn list(&self, rel: &Path) -> Result<Vec<OsString>> {
        let fd = self
            .open_dir(rel)
            .map_err(|source| self.io_error(rel, source))?;
        let mut dir = nix::dir::Dir::from(fd).map_err(|e| self.io_error(rel, e.into()))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| self.io_error(rel, e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from(std::ffi::OsStr::from_bytes(name)));
            }
        }
        names.sort();
        Ok(names)
    }

    /// `lstat` of `rel` (the final component is not followed).
    pub fn lstat(&self, rel: &Path) -> std::io::Result<libc::stat> {
        let (parent_fd, name) = self.parent_of(rel)?;
        let at = parent_fd.as_ref().map_or(self.fd(), |f| f.as_raw_fd());
        fstatat_nofollow(at, name)
    }

    /// The directory holding `rel`, opened `O_PATH` beneath this one
    /// without following symlinks (`None`: this directory itself), and
    /// `rel`'s last component, to be used relative to it without following
    /// it: so that no symlink on the way is ever followed (following one
    /// updates its atime).
    fn parent_of<'r>(&self, rel: &'r Path) -> std::io::Result<(Option<OwnedFd>, &'r OsStr)> {
        check_relative(rel)?;
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => (Some(p), n),
            (_, Some(n)) => (None, n),
            _ => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let parent_fd = parent
            .map(|p| self.open_fd(p, libc::O_DIRECTORY | libc::O_PATH))
            .transpose()?;
        Ok((parent_fd, name))
    }

    /// The target of the symlink `rel` (which is read, never followed).
    pub fn readlink(&self, rel: &Path) -> std::io::Result<PathBuf> {
        check_relative(rel)?;
        let fd = self.open_fd(rel, libc::O_PATH)?;
        let empty = CString::default();
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: an O_PATH fd of the link itself, an empty path and a buffer of the given size.
        let n = unsafe {
            libc::readlinkat(
                fd.as_raw_fd(),
                empty.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(PathBuf::from(OsString::from(std::ffi::OsStr::from_bytes(
            &buf,
        ))))
    }

    /// Whether `rel` is a real directory (a symlink to one is not).
    pub fn is_dir(&self, rel: &Path) -> bool {
        self.lstat(rel)
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    /// Whether `rel` exists (as anything, symlinks not followed).
    pub fn exists(&self, rel: &Path) -> bool {
        self.lstat(rel).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_reads_take_what_is_there_whatever_the_size_said() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("f");
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let open = || std::fs::File::open(&path).unwrap();
        // The size as stat said, smaller (the file grew), zero (procfs-like).
        for len in [3000, 10, 0] {
            assert_eq!(read_sized(open(), len, 1 << 20).unwrap(), data, "len {len}");
        }
        // Past the limit: limit + 1 bytes, for the caller to refuse.
        assert_eq!(read_sized(open(), 3000, 100).unwrap().len(), 101);
        assert_eq!(read_sized(open(), 10, 100).unwrap().len(), 101);
    }

    /// Files around the one-`pread` size read whole, and the limit holds,
    /// on the probing way and (as root) through a view, where a short
    /// first read ends the file.
    #[test]
    fn reads_whole_files_around_the_first_read_size() {
        whole_files_read(Beneath::open);
        if nix::unistd::geteuid().is_root() {
            whole_files_read(Beneath::open_view);
        }
    }

    fn whole_files_read(open: fn(&Path) -> Result<Beneath>) {
        let t = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            661,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            3 * FIRST_READ,
        ];
        for len in sizes {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            std::fs::write(t.path().join(format!("f{len}")), &data).unwrap();
        }
        std::fs::create_dir(t.path().join("d")).unwrap();
        let b = open(t.path()).unwrap();
        for len in sizes {
            let rel = PathBuf::from(format!("f{len}"));
            let read = b.read(&rel, 1 << 20, "test").unwrap();
            assert_eq!(read.len(), len, "f{len}");
            assert!(read.iter().enumerate().all(|(i, &c)| c == (i % 253) as u8));
            if len > 0 {
                assert!(
                    b.read(&rel, len as u64, "test").is_ok(),
                    "f{len} at its limit"
                );
                assert!(
                    matches!(
                        b.read(&rel, len as u64 - 1, "test"),
                        Err(Error::TooLarge { .. })
                    ),
                    "f{len} past its limit"
                );
            }
        }
        let err = b.read(Path::new("d"), 10, "test").unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn reading_through_a_symlinked_directory_fails_without_touching_the_link() {
        symlinked_directory_refused(Beneath::open);
        symlinked_directory_refused(Beneath::open_view);
    }

    fn symlinked_directory_refused(open: fn(&Path) -> Result<Beneath>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::fs::write(t.path().join("real/f"), b"x").unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        let link = CString::new(t.path().join("link").as_os_str().as_bytes()).unwrap();
        let old = [libc::timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        }; 2];
        // SAFETY: valid C string and two timespecs.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                link.as_ptr(),
                old.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(rc, 0);
        let b = open(t.path()).unwrap();
        assert!(b.read(Path::new("link/f"), 10, "f").is_err());
        assert!(b.open_regular(Path::new("link/f")).is_err());
        assert_eq!(b.read(Path::new("real/f"), 10, "f").unwrap(), b"x");
        let st = b.lstat(Path::new("link")).unwrap();
        assert_eq!(
            st.st_atime, 1_000_000,
            "following the link updated its atime"
        );
    }

    #[test]
    fn refuses_symlinks_and_dotdot() {
        symlinks_and_dotdot_refused(Beneath::open);
        symlinks_and_dotdot_refused(Beneath::open_view);
    }

    fn symlinks_and_dotdot_refused(open: fn(&Path) -> Result<Beneath>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("d/abs")).unwrap();
        std::os::unix::fs::symlink("f", t.path().join("d/rel")).unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("link")).unwrap();
        let b = open(t.path()).unwrap();
        assert_eq!(b.read(Path::new("d/f"), 10, "test").unwrap(), b"hello");
        assert!(b.read(Path::new("d/abs"), 10_000, "test").is_err());
        assert!(b.read(Path::new("d/rel"), 10, "test").is_err());
        assert!(b.read(Path::new("link/passwd"), 10_000, "test").is_err());
        assert!(b.read(Path::new("../etc/passwd"), 10_000, "test").is_err());
        assert!(b.read(Path::new("/etc/passwd"), 10_000, "test").is_err());
        assert!(matches!(
            b.read(Path::new("d/f"), 2, "test"),
            Err(Error::TooLarge { .. })
        ));
        assert_eq!(b.list(Path::new("d")).unwrap(), vec!["abs", "f", "rel"]);
        assert_eq!(b.list(Path::new("")).unwrap(), vec!["d", "link"]);
        assert!(b.list(Path::new("link")).is_err());
        assert!(b.lstat(Path::new("link")).is_ok());
    }

    /// Issue 9: a FIFO where a file is expected made every command hang.
    /// Checked on the probing way and, as root, through a view (no probe).
    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        fifos_and_devices_refused(Beneath::open);
        if nix::unistd::geteuid().is_root() {
            let view = |p: &Path| {
                let b = Beneath::open_view(p)?;
                assert!(matches!(b.mount, Mount::View { .. }), "no view as root");
                Ok(b)
            };
            fifos_and_devices_refused(view);
        }
    }

    fn fifos_and_devices_refused(open: fn(&Path) -> Result<Beneath>) {
        let t = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &t.path().join("config.v2.json"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        let b = open(t.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = t.path().to_path_buf();
        std::thread::spawn(move || {
            let b = open(&dir).unwrap();
            let read = b.read(Path::new("config.v2.json"), 100, "test");
            let fd = b.open_fd(Path::new("config.v2.json"), 0);
            let _ = tx.send((read.map_err(|e| e.to_string()), fd.is_ok()));
        });
        let (read, opened) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO blocked");
        let err = read.unwrap_err();
        assert!(
            err.contains("config.v2.json") && err.contains("FIFO"),
            "{err}"
        );
        // A raw open does not wait for a writer either.
        assert!(opened);
        assert_eq!(b.read(Path::new("f"), 10, "test").unwrap(), b"x");
        std::fs::create_dir(t.path().join("d")).unwrap();
        let err = b.open_regular(Path::new("d")).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
        if nix::unistd::geteuid().is_root() {
            // /dev/null's numbers: a device is never opened, only refused.
            nix::sys::stat::mknod(
                &t.path().join("dev"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                nix::sys::stat::makedev(1, 3),
            )
            .unwrap();
            let err = b
                .read(Path::new("dev"), 10, "test")
                .unwrap_err()
                .to_string();
            assert!(err.contains("character device"), "{err}");
        }
    }

    #[test]
    fn safe_components() {
        assert!(is_safe_component("abc-init"));
        for bad in ["", ".", "..", "../../etc", "a/b", "a\0b"] {
            assert!(!is_safe_component(bad), "{bad:?}");
        }
    }
}
