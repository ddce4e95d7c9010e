//! Kernel mounts of a layer stack, read-only by construction.
//!
//! The evidence is reached only through a private "shield": a bind mount of
//! the docker root made `ro,noatime,nosuid,nodev,noexec`, so nothing the
//! kernel does below our mount can write to it or update its atimes. Every
//! layer directory is opened beneath the shield without following symlinks
//! and handed to the kernel as `/proc/self/fd/N`, so a crafted symlink
//! cannot redirect a lowerdir, and the option string stays short whatever
//! the root path or the depth of the image. Overlay mounts get lowerdirs
//! only: never an upperdir or a workdir.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::Serialize;

use crate::model::root::DockerRoot;
use crate::model::stack::Stack;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::LayerSource;
use docker_mount_core::error::{Error, Result};

/// The `source` our overlay mounts carry, so `umount` can recognise them.
pub const MOUNT_SOURCE: &str = "docker-mount";

/// The longest legacy `mount(2)` option string (one page, with its NUL).
const PAGE_LIMIT: usize = 4095;

/// How to ask the kernel for an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MountApi {
    /// The new mount API when the kernel has it, else `mount(2)`.
    #[default]
    Auto,
    /// fsopen/fsconfig with one `lowerdir+` per layer (Linux >= 6.8).
    New,
    /// `mount(2)` with one `lowerdir=` option string.
    Legacy,
}

/// What was mounted, and how.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MountReport {
    pub target: PathBuf,
    /// `overlay (new mount API)`, `overlay (mount(2))` or `bind`.
    pub method: String,
    pub layers: usize,
    pub options: String,
}

const RO_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

fn sys(what: &str, rc: libc::c_long) -> std::io::Result<libc::c_long> {
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(rc)
    }
}

/// A private read-only, noatime bind of the docker root, removed on drop.
struct Shield {
    dir: tempfile::TempDir,
}

impl Shield {
    fn new(evidence: &Beneath) -> Result<Shield> {
        let dir = tempfile::Builder::new()
            .prefix("docker-mount-shield-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let canonical_root =
            std::fs::canonicalize(evidence.path()).map_err(|e| Error::io(evidence.path(), e))?;
        if dir.path().starts_with(&canonical_root) {
            return Err(Error::Usage(format!(
                "the temporary directory {} lies inside the evidence; set TMPDIR elsewhere",
                dir.path().display()
            )));
        }
        let source = PathBuf::from(format!("/proc/self/fd/{}", evidence.fd()));
        mount(
            Some(&source),
            dir.path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| Error::io(evidence.path(), e))?;
        let shield = Shield { dir };
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOATIME | RO_FLAGS;
        mount(
            None::<&str>,
            shield.dir.path(),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| Error::io(shield.dir.path(), e))?;
        mount(
            None::<&str>,
            shield.dir.path(),
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| Error::io(shield.dir.path(), e))?;
        Ok(shield)
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        // Our mounts hold their own private clones of the shield.
        let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
    }
}

/// The directories to stack, top first: Diff layers down to (and
/// including) the first Full layer.
fn lower_dirs<'a>(root: &DockerRoot, stack: &'a Stack) -> Result<Vec<&'a Path>> {
    let mut dirs = Vec::new();
    for layer in &stack.layers {
        match &layer.source {
            LayerSource::Diff { dir, .. } => dirs.push(root.locate(dir)?.1),
            LayerSource::Full { dir } => {
                dirs.push(root.locate(dir)?.1);
                break;
            }
            other => {
                return Err(Error::Usage(format!(
                    "layer {} is a {:?} layer, which this version cannot mount; use `docker-mount export`",
                    layer.driver_id,
                    std::mem::discriminant(other)
                )))
            }
        }
    }
    if dirs.is_empty() {
        return Err(Error::Usage("the stack has no layers to mount".into()));
    }
    Ok(dirs)
}

/// Checks a mount point: an existing directory outside the evidence.
pub fn check_target(root: &DockerRoot, target: &Path) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Usage(format!(
                "the mount point {} does not exist; create it (mkdir) outside the evidence",
                target.display()
            ))
        } else {
            Error::io(target, e)
        }
    })?;
    if !canonical.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory; mount onto an empty directory outside the evidence",
            target.display()
        )));
    }
    let inside = root
        .evidence_dirs()
        .filter(|d| !crate::evidence::pool::is_served_path(d.path()))
        .any(|d| std::fs::canonicalize(d.path()).is_ok_and(|d| canonical.starts_with(d)));
    if inside {
        return Err(Error::Usage(format!(
            "refusing to mount onto {}: it is inside the evidence; choose a directory outside it",
            target.display()
        )));
    }
    Ok(canonical)
}

/// Mounts `stack` read-only on `target`.
pub fn mount_stack(
    root: &DockerRoot,
    stack: &Stack,
    target: &Path,
    api: MountApi,
) -> Result<MountReport> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Usage(
            "mounting needs root (CAP_SYS_ADMIN); without root use `docker-mount export`".into(),
        ));
    }
    let target = check_target(root, target)?;
    let dirs = lower_dirs(root, stack)?;
    let shield = Shield::new(crate::union::view::stack_base(root, stack)?)?;
    let base = Beneath::open(shield.dir.path())?;
    let fds = dirs
        .iter()
        .map(|rel| {
            base.open_fd(rel, libc::O_DIRECTORY)
                .map_err(|e| base.io_error(rel, e))
        })
        .collect::<Result<Vec<OwnedFd>>>()?;
    let report = if fds.len() == 1 {
        bind(&fds[0], &target)?
    } else {
        let user = uses_user_xattrs(&base, &dirs);
        match api {
            MountApi::Legacy => overlay_legacy(&fds, &target, user)?,
            MountApi::New => overlay_new(&fds, &target, user).map_err(|e| Error::io(&target, e))?,
            MountApi::Auto => match overlay_new(&fds, &target, user) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("new mount API unavailable ({e}); using mount(2)");
                    overlay_legacy(&fds, &target, user)?
                }
            },
        }
    };
    drop(shield);
    Ok(MountReport {
        layers: dirs.len(),
        ..report
    })
}

/// Most directories [`uses_user_xattrs`] looks at.
const XATTR_PROBE_DIRS: usize = 100_000;

/// The names of an open file's xattrs (none when it has none or the
/// filesystem keeps none).
fn xattr_names(fd: &OwnedFd) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: valid fd and buffer of the given length.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return buf
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 16, 0),
            _ => return Vec::new(),
        }
    }
}

/// Whether the layers keep overlay's markers in `user.overlay.*` xattrs,
/// as a rootless daemon's kernel wrote them (`userxattr`): the kernel
/// honours their opaque directories only when mounted with `userxattr`
/// (and then ignores `trusted.overlay.*`). The first overlay xattr met
/// decides, looking at the layers' top directories first (a container's
/// rw and init layers carry one there), then breadth first below them, at
/// most [`XATTR_PROBE_DIRS`] directories; none found: `trusted`.
fn uses_user_xattrs(base: &Beneath, dirs: &[&Path]) -> bool {
    let mut queue: std::collections::VecDeque<PathBuf> =
        dirs.iter().map(|d| d.to_path_buf()).collect();
    let mut seen = 0;
    while let Some(rel) = queue.pop_front() {
        if seen == XATTR_PROBE_DIRS {
            break;
        }
        seen += 1;
        let Ok(fd) = base.open_fd(&rel, libc::O_DIRECTORY) else {
            continue;
        };
        for name in xattr_names(&fd) {
            if name.starts_with(b"user.overlay.") {
                return true;
            }
            if name.starts_with(b"trusted.overlay.") {
                return false;
            }
        }
        let Ok(mut dir) = nix::dir::Dir::from(fd) else {
            continue;
        };
        for entry in dir.iter().flatten() {
            let name = entry.file_name().to_bytes();
            // An unknown type (no d_type) is tried: opening a non-directory fails.
            let dir_or_unknown = entry
                .file_type()
                .is_none_or(|t| t == nix::dir::Type::Directory);
            if name != b"." && name != b".." && dir_or_unknown {
                queue.push_back(rel.join(std::ffi::OsStr::from_bytes(name)));
            }
        }
    }
    false
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn bind(fd: &OwnedFd, target: &Path) -> Result<MountReport> {
    mount(
        Some(fd_path(fd).as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| Error::io(target, e))?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOATIME | RO_FLAGS;
    if let Err(e) = mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
        let _ = umount2(target, MntFlags::MNT_DETACH);
        return Err(Error::io(target, e));
    }
    Ok(MountReport {
        target: target.to_path_buf(),
        method: "bind".into(),
        layers: 1,
        options: "ro,nosuid,nodev,noexec,noatime".into(),
    })
}

fn overlay_legacy(fds: &[OwnedFd], target: &Path, user_xattrs: bool) -> Result<MountReport> {
    let lower: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
    let user = if user_xattrs { "userxattr," } else { "" };
    let options = format!("{user}lowerdir={}", lower.join(":"));
    if options.len() > PAGE_LIMIT {
        return Err(Error::Usage(format!(
            "{} layers do not fit mount(2)'s one-page option string; a kernel >= 6.8 mounts them with --mount-api new",
            fds.len()
        )));
    }
    // Relative lowerdirs resolve against the cwd: stand in /proc/self/fd
    // for the mount call, then go back.
    let cwd = std::fs::File::open(".").map_err(|e| Error::io(Path::new("."), e))?;
    std::env::set_current_dir("/proc/self/fd")
        .map_err(|e| Error::io(Path::new("/proc/self/fd"), e))?;
    let result = mount(
        Some(MOUNT_SOURCE),
        target,
        Some("overlay"),
        RO_FLAGS,
        Some(options.as_str()),
    );
    nix::unistd::fchdir(cwd.as_raw_fd()).map_err(|e| Error::io(Path::new("."), e))?;
    result.map_err(|e| Error::io(target, e))?;
    Ok(MountReport {
        target: target.to_path_buf(),
        method: "overlay (mount(2))".into(),
        layers: fds.len(),
        options: format!("ro,nosuid,nodev,noexec,{options}"),
    })
}

const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cstr(s: &str) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn fsconfig(
    fs: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&str>,
) -> std::io::Result<()> {
    let key = key.map(cstr).transpose()?;
    let value = value.map(cstr).transpose()?;
    let what = format!(
        "fsconfig {}",
        key.as_ref()
            .map(|k| k.to_string_lossy())
            .unwrap_or_default()
    );
    // SAFETY: valid fd and NUL-terminated strings (or null) that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()),
            value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            0,
        )
    };
    sys(&what, rc).map(drop)
}

/// A new overlay filesystem context (`fsopen`); nothing exists until
/// `FSCONFIG_CMD_CREATE`, and closing it creates nothing.
fn fsopen_overlay() -> std::io::Result<OwnedFd> {
    let name = cstr("overlay")?;
    // SAFETY: valid C string.
    let fs = sys("fsopen overlay", unsafe {
        libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC)
    })?;
    // SAFETY: fsopen returned a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fs as libc::c_int) })
}

/// Whether the kernel's overlay takes `lowerdir+` (the new mount API,
/// Linux >= 6.8): opens an overlay context, hands it `dir` (a directory of
/// the caller's own, never evidence) and closes it without creating a
/// filesystem or a mount. Needs CAP_SYS_ADMIN; `EINVAL` from `fsconfig`
/// means the option is unknown.
pub fn probe_lowerdir_plus(dir: &Path) -> std::io::Result<()> {
    let fs = fsopen_overlay()?;
    let dir = dir
        .to_str()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    fsconfig(&fs, FSCONFIG_SET_STRING, Some("lowerdir+"), Some(dir))
}

fn overlay_new(fds: &[OwnedFd], target: &Path, user_xattrs: bool) -> std::io::Result<MountReport> {
    let fs = fsopen_overlay()?;
    fsconfig(&fs, FSCONFIG_SET_STRING, Some("source"), Some(MOUNT_SOURCE))?;
    if user_xattrs {
        fsconfig(&fs, FSCONFIG_SET_FLAG, Some("userxattr"), None)?;
    }
    for fd in fds {
        fsconfig(
            &fs,
            FSCONFIG_SET_STRING,
            Some("lowerdir+"),
            Some(&fd_path(fd)),
        )?;
    }
    fsconfig(&fs, FSCONFIG_SET_FLAG, Some("ro"), None)?;
    fsconfig(&fs, FSCONFIG_CMD_CREATE, None, None)?;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: valid fs context fd.
    let mnt = sys("fsmount", unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
    })?;
    // SAFETY: fsmount returned a new fd we own.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as libc::c_int) };
    let empty = cstr("")?;
    let to = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid fds and C strings.
    sys("move_mount", unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(MountReport {
        target: target.to_path_buf(),
        method: "overlay (new mount API)".into(),
        layers: fds.len(),
        options: format!(
            "ro,nosuid,nodev,noexec,{}lowerdir+ per layer",
            if user_xattrs { "userxattr," } else { "" }
        ),
    })
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    /// The filesystem's device, `major:minor`.
    pub device: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub options: Vec<String>,
}

/// Decodes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The current process's mounts.
pub fn mountinfo() -> Result<Vec<MountInfo>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io(Path::new("/proc/self/mountinfo"), e))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let mount_point = PathBuf::from(std::ffi::OsStr::from_bytes(&unescape(left.get(4)?)));
            let mut options: Vec<String> = left.get(5)?.split(',').map(String::from).collect();
            options.extend(
                right
                    .get(2)
                    .map(|o| o.split(',').map(String::from))
                    .into_iter()
                    .flatten(),
            );
            Some(MountInfo {
                device: left.get(2)?.to_string(),
                mount_point,
                fs_type: right.first()?.to_string(),
                source: String::from_utf8_lossy(&unescape(right.get(1)?)).into_owned(),
                options,
            })
        })
        .collect())
}

/// Unmounts a docker-mount mount. Refuses mounts that are not read-only
/// nosuid/nodev/noexec, so it cannot be used to take down other mounts.
pub fn unmount(target: &Path, lazy: bool) -> Result<()> {
    let canonical = std::fs::canonicalize(target).map_err(|e| Error::io(target, e))?;
    let mounts = mountinfo()?;
    let Some(m) = mounts.iter().rev().find(|m| m.mount_point == canonical) else {
        return Err(Error::Usage(format!(
            "nothing is mounted on {} (`findmnt` lists the mounts)",
            target.display()
        )));
    };
    let ours = ["ro", "nosuid", "nodev", "noexec"]
        .iter()
        .all(|o| m.options.iter().any(|x| x == o));
    if !ours {
        return Err(Error::Usage(format!(
            "{} is a {} mount that docker-mount did not make (not ro,nosuid,nodev,noexec); use umount(8)",
            target.display(),
            m.fs_type
        )));
    }
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    umount2(&canonical, flags).map_err(|e| {
        if e == nix::errno::Errno::EBUSY {
            Error::Usage(format!(
                "{} is busy: leave it and close files in it, or use `umount --lazy`",
                target.display()
            ))
        } else {
            Error::io(target, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape(r"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape(r"/x\011"), b"/x\t");
    }
}
