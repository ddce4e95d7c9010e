//! Datasets read in userspace (zfs) served as directories.
//!
//! A [`TreeSource`] (a filesystem read object by object, such as a ZFS
//! dataset read from the pool's disks) is served read-only by a FUSE
//! filesystem of this process, mounted in a private temporary directory,
//! opened, and at once detached (`MNT_DETACH` as root, `fusermount3 -u -z`
//! otherwise): nothing stays in the mount table, the filesystem lives as
//! long as its directory descriptor and goes with this process, even on
//! `kill -9`. The rest of the engine then reads it like any layer
//! directory, through `/proc/self/fd/<n>/.` (valid in this process; driver
//! plugins run in it too).
//!
//! Inode numbers are the source's object numbers (the root's swapped with
//! 1, FUSE's root inode), so hard links keep their identity. Only the
//! mounting user may enter (no `allow_other`), and every permission check
//! is ours: the analyst reads every file, whatever its mode. Nothing can
//! be written: every such request fails, the mount is `ro,nosuid,nodev,
//! noexec`, and the source has no write path.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request, Session, SessionACL,
};
use nix::mount::{umount2, MntFlags};

use crate::mounts::fuse::{mount_fuse_as_root, reply_xattr, reply_xattr_names};
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};
use docker_mount_core::stat::{FileKind, Stat, Time};

/// A directory's entries: name, object, kind.
pub type DirEntries = Vec<(Vec<u8>, u64, FileKind)>;
/// Extended attributes: names and values.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// A filesystem read object by object: what a dataset of a pool is.
/// Object numbers are inode numbers.
pub trait TreeSource: Send + Sync + 'static {
    /// The object of the top directory.
    fn root(&self) -> u64;
    /// The entries of directory `dir`: name, object, kind.
    fn read_dir(&self, dir: u64) -> std::io::Result<DirEntries>;
    /// The object named `name` in `dir`, if any.
    fn lookup(&self, dir: u64, name: &[u8]) -> std::io::Result<Option<u64>>;
    fn stat(&self, obj: u64) -> std::io::Result<Stat>;
    fn read_at(&self, obj: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
    fn read_link(&self, obj: u64) -> std::io::Result<Vec<u8>>;
    fn xattrs(&self, obj: u64) -> std::io::Result<Xattrs>;
}

/// What mountinfo would call the server, were it still attached.
const FUSE_SOURCE: &str = "docker-mount-dataset";
/// Datasets read from evidence do not change: the kernel may cache long.
const TTL: Duration = Duration::from_secs(3600);
/// Largest read the kernel is told to ask for.
const MAX_READ: u32 = 1 << 20;
/// FUSE's root inode.
const ROOT_INO: u64 = 1;

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    }
}

fn system_time(t: Time) -> SystemTime {
    let nsec = t.nsec.clamp(0, 999_999_999) as u32;
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + Duration::from_nanos(nsec.into())
    }
}

/// The error a request gets from a source failure (logged: it names the object).
fn eio(what: &str, obj: u64, e: std::io::Error) -> Errno {
    match e.raw_os_error() {
        Some(n) => Errno::from_i32(n),
        None => {
            tracing::warn!("dataset object {obj}: {what}: {e}");
            Errno::EIO
        }
    }
}

/// The FUSE filesystem over one source.
struct SourceFs {
    source: Arc<dyn TreeSource>,
    root_obj: u64,
    /// Directory listings of open directory handles.
    dirs: Mutex<HashMap<u64, Arc<DirEntries>>>,
    next_fh: AtomicU64,
}

impl SourceFs {
    fn new(source: Arc<dyn TreeSource>) -> SourceFs {
        SourceFs {
            root_obj: source.root(),
            source,
            dirs: Mutex::default(),
            next_fh: AtomicU64::new(1),
        }
    }

    /// Inode ↔ object: the root's object and 1 swap places.
    fn obj(&self, ino: u64) -> u64 {
        if ino == ROOT_INO {
            self.root_obj
        } else if ino == self.root_obj {
            ROOT_INO
        } else {
            ino
        }
    }

    fn ino(&self, obj: u64) -> u64 {
        // The swap is its own inverse.
        self.obj(obj)
    }

    fn attr(&self, ino: u64) -> std::result::Result<FileAttr, Errno> {
        let obj = self.obj(ino);
        let st = self.source.stat(obj).map_err(|e| eio("stat", obj, e))?;
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: st.size,
            blocks: st.size.div_ceil(512),
            atime: system_time(st.atime),
            mtime: system_time(st.mtime),
            ctime: system_time(st.ctime),
            crtime: st.btime.map_or(UNIX_EPOCH, system_time),
            kind: file_type(st.kind),
            perm: (st.mode & 0o7777) as u16,
            nlink: u32::try_from(st.nlink).unwrap_or(u32::MAX),
            uid: st.uid,
            gid: st.gid,
            rdev: {
                let (major, minor) = st.rdev_parts();
                // The kernel's new_encode_dev.
                ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u32
            },
            blksize: 128 * 1024,
            flags: 0,
        })
    }

    fn xattrs(&self, ino: u64) -> std::result::Result<Xattrs, Errno> {
        let obj = self.obj(ino);
        self.source
            .xattrs(obj)
            .map_err(|e| eio("extended attributes", obj, e))
    }
}

impl Filesystem for SourceFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let dir = self.obj(parent.0);
        let found = self
            .source
            .lookup(dir, name.as_bytes())
            .map_err(|e| eio("lookup", dir, e))
            .and_then(|o| o.ok_or(Errno::ENOENT))
            .and_then(|obj| self.attr(self.ino(obj)));
        match found {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let obj = self.obj(ino.0);
        match self.source.read_link(obj) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(eio("symlink target", obj, e)),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let obj = self.obj(ino.0);
        let mut buf = vec![0u8; size.min(MAX_READ) as usize];
        let mut done = 0;
        // A short read means end of file to the kernel: fill the buffer.
        while done < buf.len() {
            match self
                .source
                .read_at(obj, offset + done as u64, &mut buf[done..])
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => return reply.error(eio("read", obj, e)),
            }
        }
        reply.data(&buf[..done])
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let obj = self.obj(ino.0);
        match self.source.read_dir(obj) {
            Ok(list) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.dirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(fh, Arc::new(list));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Err(e) => reply.error(eio("directory listing", obj, e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(list) = list else {
            return reply.error(Errno::EBADF);
        };
        let dots = [
            (b".".as_slice(), ino.0, FileKind::Dir),
            (b"..".as_slice(), ino.0, FileKind::Dir),
        ];
        let entries = dots.into_iter().chain(
            list.iter()
                .map(|(n, obj, kind)| (n.as_slice(), self.ino(*obj), *kind)),
        );
        for (i, (name, child, kind)) in entries.enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(child),
                i as u64 + 1,
                file_type(kind),
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(self.xattrs(ino.0), name, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr_names(self.xattrs(ino.0), size, reply);
    }
}

/// A served source, held by a descriptor of its detached mount.
#[derive(Debug)]
pub struct Served {
    /// Holds the filesystem (and names it: `/proc/self/fd/<n>/.`).
    anchor: OwnedFd,
    /// What it serves, for messages.
    pub label: String,
}

impl Served {
    /// The served directory as a path valid in this process.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/.", self.anchor.as_raw_fd()))
    }

    /// The served directory, opened anew.
    pub fn open(&self) -> Result<Beneath> {
        Beneath::open(&self.path())
    }
}

/// Serves `source` read-only and returns its detached directory. As root
/// with `mount(2)`; otherwise through `fusermount3`.
pub fn serve(source: Arc<dyn TreeSource>, label: &str) -> Result<Served> {
    let scratch = tempfile::Builder::new()
        .prefix("docker-mount-ds-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let dir = scratch.path().join("m");
    std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let root = nix::unistd::geteuid().is_root();
    let fd = if root {
        mount_fuse_as_root(
            &dir,
            FUSE_SOURCE,
            &format!("max_read={MAX_READ}"),
            "a dataset",
        )?
    } else {
        crate::mounts::fuse::fusermount_ro(&dir, FUSE_SOURCE).map_err(|e| {
            Error::io(
                &dir,
                std::io::Error::other(format!("FUSE mount of dataset {label}: {e}")),
            )
        })?
    };
    let detach = |dir: &Path| -> std::io::Result<()> {
        if root {
            umount2(dir, MntFlags::MNT_DETACH).map_err(std::io::Error::from)
        } else {
            crate::mounts::fuse::fusermount_lazy_unmount(dir)
        }
    };
    let mut config = Config::default();
    config.n_threads = Some(2);
    let session = match Session::from_fd(SourceFs::new(source), fd, SessionACL::Owner, config) {
        Ok(s) => s,
        Err(e) => {
            let _ = detach(&dir);
            return Err(Error::io(&dir, e));
        }
    };
    let name = format!("dataset {label}");
    let spawned = std::thread::Builder::new()
        .name("dataset-fs".into())
        .spawn(move || {
            if let Err(e) = session.run() {
                tracing::warn!("{name} server: {e}");
            }
        });
    if let Err(e) = spawned {
        let _ = detach(&dir);
        return Err(Error::io(&dir, e));
    }
    let opened = std::fs::File::open(&dir).map(OwnedFd::from);
    let detached = detach(&dir);
    let anchor = opened.map_err(|e| Error::io(&dir, e))?;
    detached.map_err(|e| Error::io(&dir, e))?;
    drop(scratch);
    Ok(Served {
        anchor,
        label: label.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// An in-memory tree: objects 2 (root), 5 (file), 6 (link to 5), 7
    /// (symlink), 9 (dir), 1 (a file numbered like FUSE's root).
    struct Mem;

    fn st(kind: FileKind, mode: u32, size: u64, nlink: u64) -> Stat {
        let t = Time {
            sec: 1_700_000_000,
            nsec: 5,
        };
        Stat {
            kind,
            mode,
            uid: 1234,
            gid: 4321,
            size,
            rdev: 0,
            dev: 0,
            ino: 0,
            nlink,
            atime: t,
            mtime: t,
            ctime: t,
            btime: Some(t),
        }
    }

    const DATA: &[u8] = b"hello from the pool\n";

    impl TreeSource for Mem {
        fn root(&self) -> u64 {
            2
        }
        fn read_dir(&self, dir: u64) -> std::io::Result<DirEntries> {
            match dir {
                2 => Ok(vec![
                    (b"file".to_vec(), 5, FileKind::File),
                    (b"hard".to_vec(), 5, FileKind::File),
                    (b"sym".to_vec(), 7, FileKind::Symlink),
                    (b"dir".to_vec(), 9, FileKind::Dir),
                    (b"one".to_vec(), 1, FileKind::File),
                ]),
                9 => Ok(vec![]),
                _ => Err(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        fn lookup(&self, dir: u64, name: &[u8]) -> std::io::Result<Option<u64>> {
            Ok(self
                .read_dir(dir)?
                .into_iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, o, _)| o))
        }
        fn stat(&self, obj: u64) -> std::io::Result<Stat> {
            match obj {
                2 | 9 => Ok(st(FileKind::Dir, 0o700, 4, 2)),
                5 => Ok(st(FileKind::File, 0o600, DATA.len() as u64, 2)),
                1 => Ok(st(FileKind::File, 0o4755, 0, 1)),
                7 => Ok(st(FileKind::Symlink, 0o777, 4, 1)),
                _ => Err(std::io::Error::other("no such object")),
            }
        }
        fn read_at(&self, obj: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
            if obj != 5 {
                return Ok(0);
            }
            let data = DATA.get(offset as usize..).unwrap_or_default();
            let n = data.len().min(buf.len()).min(7); // short reads, as a pool's blocks
            buf[..n].copy_from_slice(&data[..n]);
            Ok(n)
        }
        fn read_link(&self, _obj: u64) -> std::io::Result<Vec<u8>> {
            Ok(b"file".to_vec())
        }
        fn xattrs(&self, obj: u64) -> std::io::Result<Xattrs> {
            Ok(if obj == 5 {
                vec![(b"user.k".to_vec(), b"v".to_vec())]
            } else {
                vec![]
            })
        }
    }

    #[test]
    fn serves_a_source_read_only_and_detached() {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("no /dev/fuse");
            return;
        }
        let served = serve(Arc::new(Mem), "mem").expect("serve");
        let p = served.path();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mountinfo.contains(FUSE_SOURCE), "still in the mount table");
        let mut names: Vec<String> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dir", "file", "hard", "one", "sym"]);
        assert_eq!(std::fs::read(p.join("file")).unwrap(), DATA);
        let a = std::fs::symlink_metadata(p.join("file")).unwrap();
        let b = std::fs::symlink_metadata(p.join("hard")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!((a.uid(), a.gid(), a.mode() & 0o7777), (1234, 4321, 0o600));
        assert_eq!(a.mtime(), 1_700_000_000);
        let one = std::fs::symlink_metadata(p.join("one")).unwrap();
        assert_eq!(one.mode() & 0o7777, 0o4755);
        assert_ne!(one.ino(), 1);
        assert_eq!(
            std::fs::read_link(p.join("sym")).unwrap(),
            Path::new("file")
        );
        assert_eq!(
            xattr_get(&p.join("file"), "user.k").as_deref(),
            Some(b"v".as_slice())
        );
        let w = std::fs::OpenOptions::new().write(true).open(p.join("file"));
        assert!(w.is_err(), "opened for writing");
        assert!(std::fs::create_dir(p.join("new")).is_err());
        // The engine's own way in works too.
        let dir = served.open().unwrap();
        assert!(dir.exists(Path::new("dir")));
    }

    fn xattr_get(path: &Path, name: &str) -> Option<Vec<u8>> {
        let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let n = std::ffi::CString::new(name).ok()?;
        let mut buf = vec![0u8; 256];
        // SAFETY: valid C strings and a buffer of the size passed.
        let r =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        (r >= 0).then(|| {
            buf.truncate(r as usize);
            buf
        })
    }
}
