//! A read-only FUSE filesystem over the union engine: what `mount` uses
//! where the kernel cannot mount a stack (aufs layers, no root), and what
//! `mount --fuse` asks for.
//!
//! The view is the [`Union`]'s, entry for entry: owners, modes, times,
//! device numbers, symlink targets and xattrs (never overlay's own) as the
//! layers hold them, hard links of one layer sharing one inode. Inode
//! numbers are handed out as entries are first listed and never reused,
//! so a path keeps its inode for the life of the mount; listings carry the
//! entries' attributes (readdirplus), so the kernel looks nothing up one by
//! one. File contents are read with `pread` from descriptors opened
//! read-only, `O_NOATIME`, never following a symlink; nothing is buffered
//! beyond one request. The kernel skips open, flush and release (reads
//! come by inode, served from a small cache of open descriptors) and keeps
//! pages and attributes: reading a file again costs no round trip.
//! Passthrough (the kernel reading the layer's file itself) was tried and
//! left out: it needs an open round trip per file, which made reading many
//! small files several times slower, and it cannot be mixed with skipped
//! opens on one mount. As root the mount's read-ahead is widened, so that
//! big files come in large requests. Every operation that
//! would change anything answers `EROFS`, and the mount itself is
//! `ro,nosuid,nodev,noexec` with the kernel checking permissions.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BsdFileFlags, Config, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, Session,
    SessionACL, TimeOrNow, WriteFlags,
};
use nix::mount::{umount2, MntFlags};
use serde::{Deserialize, Serialize};

use crate::model::root::DockerRoot;
use crate::mounts::kernel::{mountinfo, MountInfo, MOUNT_SOURCE};
use crate::union::{FileKind, Node, Stat, Time, Union};
use docker_mount_core::error::{Error, Result};

/// The `subtype` of our FUSE mounts: mountinfo shows `fuse.docker-mount`.
pub const SUBTYPE: &str = "docker-mount";
/// The setuid helper that mounts and unmounts FUSE without root.
pub const FUSERMOUNT: &str = "fusermount3";
/// How long the kernel may cache entries and attributes: the evidence does not change.
const TTL: Duration = Duration::from_secs(3600);
/// Largest xattr list or value passed on (the kernel's own limit is 64 KiB).
const XATTR_MAX: usize = 64 * 1024;

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct FuseOptions {
    /// Let other users in (`allow_other`; without root, needs
    /// `user_allow_other` in /etc/fuse.conf). Permissions are still checked.
    pub allow_other: bool,
    /// Threads answering the kernel (0: one per core, at most 4).
    pub threads: usize,
}

/// What was mounted.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FuseReport {
    pub target: PathBuf,
    /// Always `fuse`.
    pub method: String,
    pub layers: usize,
    pub options: String,
    /// The process serving the mount.
    pub pid: u32,
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `fusermount3` on `PATH`, if there is one (mounting without root needs it).
pub fn fusermount_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(FUSERMOUNT))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// The inode table.

/// A listed directory: its entries' names and inodes, sorted by name.
type Entries = Arc<Vec<(Vec<u8>, u64)>>;
/// Extended attributes: names and values.
type Xattrs = Arc<Vec<(Vec<u8>, Vec<u8>)>>;
/// What a request gets: a value or an errno.
type Answer<T> = std::result::Result<T, Errno>;

/// One inode of the mount.
#[derive(Debug)]
struct Inode {
    /// The entry it was first found as (hard links: any of its names).
    node: Node,
    /// The directory it was found in (the root's is itself).
    parent: u64,
    /// Directories, once listed: the entries' names and inodes, sorted by name.
    children: Option<Entries>,
    /// Extended attributes, once read.
    xattrs: Option<Xattrs>,
}

/// Inode `n` is `inodes[n - 1]`; inode 1 is the root.
#[derive(Debug, Default)]
struct Table {
    inodes: Vec<Inode>,
    /// Multiply-linked non-directories: (layer, dev, ino) → inode.
    links: HashMap<(usize, u64, u64), u64>,
}

impl Table {
    fn get(&self, ino: u64) -> Answer<&Inode> {
        usize::try_from(ino)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.inodes.get(i))
            .ok_or(Errno::ENOENT)
    }

    fn get_mut(&mut self, ino: u64) -> Answer<&mut Inode> {
        usize::try_from(ino)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.inodes.get_mut(i))
            .ok_or(Errno::ENOENT)
    }

    /// The inode of `node`, found in directory `parent`: a new one, or the
    /// one of a hard link of it already seen.
    fn assign(&mut self, node: Node, parent: u64) -> u64 {
        let st = &node.stat;
        let link_key = (!st.is_dir() && st.nlink > 1).then_some((node.layer, st.dev, st.ino));
        if let Some(&ino) = link_key.as_ref().and_then(|k| self.links.get(k)) {
            return ino;
        }
        self.inodes.push(Inode {
            node,
            parent,
            children: None,
            xattrs: None,
        });
        let ino = self.inodes.len() as u64;
        if let Some(k) = link_key {
            self.links.insert(k, ino);
        }
        ino
    }
}

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
    let nsec = u32::try_from(t.nsec.clamp(0, 999_999_999)).unwrap_or(0);
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec.unsigned_abs(), nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + Duration::new(0, nsec)
    }
}

/// A device number in the kernel's 32-bit encoding (`new_encode_dev`),
/// which FUSE carries; numbers beyond it are cut.
fn fuse_rdev(st: &Stat) -> u32 {
    let (major, minor) = st.rdev_parts();
    let (major, minor) = (major as u32 & 0xfff, minor as u32 & 0xf_ffff);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn attr(ino: u64, st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.size,
        blocks: st.size.div_ceil(512),
        atime: system_time(st.atime),
        mtime: system_time(st.mtime),
        ctime: system_time(st.ctime),
        crtime: system_time(st.ctime),
        kind: file_type(st.kind),
        perm: (st.mode & 0o7777) as u16,
        nlink: u32::try_from(st.nlink).unwrap_or(u32::MAX),
        uid: st.uid,
        gid: st.gid,
        rdev: fuse_rdev(st),
        blksize: 4096,
        flags: 0,
    }
}

fn eio(what: &str, e: impl std::fmt::Display) -> Errno {
    tracing::warn!("fuse: {what}: {e}");
    Errno::EIO
}

// ---------------------------------------------------------------------------
// The filesystem.

/// The [`Union`] as a FUSE filesystem.
#[derive(Debug)]
pub struct UnionFs {
    union: Union,
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<File>>>,
    next_fh: AtomicU64,
    /// Whether the kernel skips open/release for files (`FUSE_NO_OPEN_SUPPORT`):
    /// reads then come by inode, served from `by_inode`.
    no_open: AtomicBool,
    /// Whether the kernel skips opendir/releasedir too.
    no_opendir: AtomicBool,
    by_inode: Mutex<HashMap<u64, Arc<File>>>,
}

/// Files kept open for reads by inode; the cache empties when it fills.
const OPEN_FILES: usize = 1024;

impl UnionFs {
    pub fn new(union: Union) -> Result<UnionFs> {
        let root = union.root()?;
        let table = Table {
            inodes: vec![Inode {
                node: root,
                parent: 1,
                children: None,
                xattrs: None,
            }],
            links: HashMap::new(),
        };
        Ok(UnionFs {
            union,
            table: Mutex::new(table),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            no_open: AtomicBool::new(false),
            no_opendir: AtomicBool::new(false),
            by_inode: Mutex::new(HashMap::new()),
        })
    }

    /// The open file behind `ino` for a read without a handle (no-open mode).
    fn file_by_inode(&self, ino: u64) -> Answer<Arc<File>> {
        let cached = |s: &Self| {
            let map = s.by_inode.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&ino).cloned()
        };
        if let Some(f) = cached(self) {
            return Ok(f);
        }
        let file = Arc::new(self.open_checked(ino, OpenFlags(libc::O_RDONLY))?);
        let mut map = self.by_inode.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= OPEN_FILES {
            map.clear();
        }
        Ok(map.entry(ino).or_insert(file).clone())
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panicking request thread cannot leave the table half-changed.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handles(&self) -> MutexGuard<'_, HashMap<u64, Arc<File>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, ino: u64) -> Answer<Node> {
        self.table().get(ino).map(|i| i.node.clone())
    }

    /// The entries of directory `ino`, listed once.
    fn children(&self, ino: u64) -> Answer<Entries> {
        let node = {
            let table = self.table();
            let inode = table.get(ino)?;
            if let Some(c) = &inode.children {
                return Ok(c.clone());
            }
            if !inode.node.stat.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            inode.node.clone()
        };
        let kids = self
            .union
            .children(&node)
            .map_err(|e| eio("listing a directory", e))?;
        let mut table = self.table();
        if let Some(c) = &table.get(ino)?.children {
            return Ok(c.clone());
        }
        let list: Vec<(Vec<u8>, u64)> = kids
            .into_iter()
            .map(|kid| {
                let name = kid.name().to_vec();
                (name, table.assign(kid, ino))
            })
            .collect();
        let list = Arc::new(list);
        table.get_mut(ino)?.children = Some(list.clone());
        Ok(list)
    }

    /// Calls `add(name, inode, next offset, node)` for the entries of
    /// directory `ino` from `offset` on (`.` and `..` first), until it
    /// answers that the reply is full.
    fn each_entry(
        &self,
        ino: u64,
        offset: u64,
        mut add: impl FnMut(&[u8], u64, u64, Option<&Node>) -> bool,
    ) -> Answer<()> {
        let list = self.children(ino)?;
        let table = self.table();
        let parent = table.get(ino).map_or(1, |i| i.parent);
        let dots = [(b".".as_slice(), ino), (b"..".as_slice(), parent)];
        let entries = dots
            .into_iter()
            .chain(list.iter().map(|(n, i)| (n.as_slice(), *i)));
        for (i, (name, child)) in entries.enumerate().skip(offset as usize) {
            if add(
                name,
                child,
                i as u64 + 1,
                table.get(child).ok().map(|c| &c.node),
            ) {
                break;
            }
        }
        Ok(())
    }

    fn xattrs(&self, ino: u64) -> Answer<Xattrs> {
        let node = {
            let table = self.table();
            let inode = table.get(ino)?;
            if let Some(x) = &inode.xattrs {
                return Ok(x.clone());
            }
            inode.node.clone()
        };
        let tree = self.union.tree(&node);
        let list = tree
            .xattrs(&node.path, node.stat.kind)
            .map_err(|e| eio("reading xattrs", e))?;
        let list = Arc::new(list);
        self.table().get_mut(ino)?.xattrs = Some(list.clone());
        Ok(list)
    }

    fn open_file(&self, ino: u64, flags: OpenFlags) -> Answer<u64> {
        let file = self.open_checked(ino, flags)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles().insert(fh, Arc::new(file));
        Ok(fh)
    }

    /// Opens the layer file behind `ino` read-only, checking it is still
    /// the regular file that was listed.
    fn open_checked(&self, ino: u64, flags: OpenFlags) -> Answer<File> {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_APPEND) != 0
        {
            return Err(Errno::EROFS);
        }
        let node = self.node(ino)?;
        match node.stat.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(Errno::EISDIR),
            _ => return Err(Errno::EACCES),
        }
        // The file must be the one that was listed, not something put there since.
        self.union
            .tree(&node)
            .open_listed(&node.path, &node.stat)
            .map_err(|e| eio("opening a file", format!("{}: {e}", node.path.display())))
    }

    fn read_at(&self, ino: u64, fh: u64, offset: u64, size: u32) -> Answer<Vec<u8>> {
        let file = match self.handles().get(&fh).cloned() {
            Some(f) => f,
            None if fh == 0 && self.no_open.load(Ordering::Relaxed) => self.file_by_inode(ino)?,
            None => return Err(Errno::EBADF),
        };
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset.saturating_add(done as u64)) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(eio("reading a file", e)),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }
}

/// Answers `getxattr` of `name` from a file's extended attributes.
pub(crate) fn reply_xattr(
    list: Answer<impl AsRef<Vec<(Vec<u8>, Vec<u8>)>>>,
    name: &OsStr,
    size: u32,
    reply: ReplyXattr,
) {
    match list {
        Ok(list) => match list
            .as_ref()
            .iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
        {
            Some((_, value)) => reply_sized(reply, value, size),
            None => reply.error(Errno::NO_XATTR),
        },
        Err(e) => reply.error(e),
    }
}

/// Answers `listxattr` from a file's extended attributes: their names,
/// each ended by a NUL.
pub(crate) fn reply_xattr_names(
    list: Answer<impl AsRef<Vec<(Vec<u8>, Vec<u8>)>>>,
    size: u32,
    reply: ReplyXattr,
) {
    match list {
        Ok(list) => {
            let mut names = Vec::new();
            for (n, _) in list.as_ref() {
                names.extend_from_slice(n);
                names.push(0);
            }
            reply_sized(reply, &names, size);
        }
        Err(e) => reply.error(e),
    }
}

/// Answers a request for `size` bytes of `data`: its size when `size` is 0.
pub(crate) fn reply_sized(reply: ReplyXattr, data: &[u8], size: u32) {
    if data.len() > XATTR_MAX {
        reply.error(Errno::E2BIG);
    } else if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for UnionFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.children(parent.0).and_then(|list| {
            let i = list
                .binary_search_by(|(n, _)| n.as_slice().cmp(name.as_bytes()))
                .map_err(|_| Errno::ENOENT)?;
            let ino = list[i].1;
            Ok(attr(ino, &self.node(ino)?.stat))
        });
        match found {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino.0) {
            Ok(node) => reply.attr(&TTL, &attr(ino.0, &node.stat)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let target = self.node(ino.0).and_then(|node| {
            if node.stat.kind != FileKind::Symlink {
                return Err(Errno::EINVAL);
            }
            self.union
                .tree(&node)
                .readlink(&node.path)
                .map_err(|e| eio("reading a symlink", e))
        });
        match target {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Opening a read-only file needs nothing from us: let the kernel skip
        // the open, flush and release round trips where it can.
        let caps = config.capabilities();
        self.no_open.store(
            caps.contains(InitFlags::FUSE_NO_OPEN_SUPPORT),
            Ordering::Relaxed,
        );
        self.no_opendir.store(
            caps.contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT),
            Ordering::Relaxed,
        );
        // Listings carry the entries' attributes: no lookup of each entry.
        if caps.contains(InitFlags::FUSE_DO_READDIRPLUS) {
            let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        }
        Ok(())
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.no_open.load(Ordering::Relaxed) {
            // The mount is read-only: the kernel refuses writes before asking.
            return reply.error(Errno::ENOSYS);
        }
        match self.open_file(ino.0, flags) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_at(ino.0, fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles().remove(&fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush on a read-only view; ENOSYS stops further flushes.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if self.no_opendir.load(Ordering::Relaxed) {
            return reply.error(Errno::ENOSYS);
        }
        match self.children(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_CACHE_DIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.each_entry(ino.0, offset, |name, child, next, node| {
            let kind = node.map_or(FileType::RegularFile, |n| file_type(n.stat.kind));
            reply.add(INodeNo(child), next, kind, OsStr::from_bytes(name))
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Entries with their attributes: the kernel then needs no lookup of each.
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listed = self.each_entry(ino.0, offset, |name, child, next, node| match node {
            Some(n) => reply.add(
                INodeNo(child),
                next,
                OsStr::from_bytes(name),
                &TTL,
                &attr(child, &n.stat),
                Generation(0),
            ),
            None => false,
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.table().inodes.len() as u64;
        reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(self.xattrs(ino.0), name, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr_names(self.xattrs(ino.0), size, reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.node(ino.0) {
            Ok(_) if mask.contains(AccessFlags::W_OK) => reply.error(Errno::EROFS),
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    // Everything that would write: refused.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

// ---------------------------------------------------------------------------
// Mounting, serving, unmounting.

/// The mount options, as `fusermount3 -o` and mountinfo spell them.
fn mount_options() -> Vec<MountOption> {
    vec![
        MountOption::FSName(MOUNT_SOURCE.into()),
        // A kernel option (not fuser's fusermount-only `Subtype`), so that
        // mount(2) as root sets it too.
        MountOption::CUSTOM(format!("subtype={SUBTYPE}")),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        MountOption::DefaultPermissions,
    ]
}

/// Mounts `target` through `fusermount3`, which passes back the
/// `/dev/fuse` descriptor over a socket (`_FUSE_COMMFD`).
fn fusermount(target: &Path, opts: &FuseOptions) -> std::io::Result<OwnedFd> {
    let mut options = format!(
        "ro,nosuid,nodev,noexec,default_permissions,fsname={MOUNT_SOURCE},subtype={SUBTYPE}"
    );
    if opts.allow_other {
        options.push_str(",allow_other");
    }
    fusermount_with(target, &options)
}

/// Mounts a FUSE filesystem of this process on `dir` as root, with our own
/// `mount(2)` (so that we decide when it is detached): read-only, nosuid,
/// nodev, noexec, noatime, type `fuse.<source>`; `options` are added to
/// the FUSE ones. Returns the `/dev/fuse` descriptor to serve it from;
/// `what` names the filesystem in errors.
pub(crate) fn mount_fuse_as_root(
    dir: &Path,
    source: &str,
    options: &str,
    what: &str,
) -> Result<OwnedFd> {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| Error::io(Path::new("/dev/fuse"), e))?;
    let fd = OwnedFd::from(dev);
    let options = format!(
        "fd={},rootmode=40000,user_id={},group_id={},{options}",
        fd.as_raw_fd(),
        nix::unistd::geteuid(),
        nix::unistd::getegid()
    );
    nix::mount::mount(
        Some(source),
        dir,
        Some(format!("fuse.{source}").as_str()),
        nix::mount::MsFlags::MS_RDONLY
            | nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC
            | nix::mount::MsFlags::MS_NOATIME,
        Some(options.as_str()),
    )
    .map_err(|e| {
        Error::io(
            dir,
            std::io::Error::other(format!("FUSE mount of {what}: {e}")),
        )
    })?;
    Ok(fd)
}

/// Mounts `target` read-only through `fusermount3` for this user alone,
/// permissions checked by the server (the dataset server's mounts).
pub(crate) fn fusermount_ro(target: &Path, fsname: &str) -> std::io::Result<OwnedFd> {
    fusermount_with(
        target,
        &format!("ro,nosuid,nodev,noexec,fsname={fsname},subtype={fsname}"),
    )
}

/// Detaches a FUSE mount of this user at once (`fusermount3 -u -z`): it
/// stays usable through open descriptors until the last one goes.
pub(crate) fn fusermount_lazy_unmount(target: &Path) -> std::io::Result<()> {
    let out = std::process::Command::new(FUSERMOUNT)
        .arg("-u")
        .arg("-z")
        .arg("--")
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{FUSERMOUNT} -u -z: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn fusermount_with(target: &Path, options: &str) -> std::io::Result<OwnedFd> {
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new(FUSERMOUNT);
    cmd.arg("-o")
        .arg(options)
        .arg("--")
        .arg(target)
        .env("_FUSE_COMMFD", fd.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: fcntl is async-signal-safe; it only lets the socket survive exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    let received = receive_fd(&ours);
    drop(ours);
    let out = child.wait_with_output()?;
    match received {
        Ok(Some(fd)) if out.status.success() => Ok(fd),
        Ok(_) | Err(_) => Err(std::io::Error::other(format!(
            "{FUSERMOUNT}: {}",
            match String::from_utf8_lossy(&out.stderr).trim() {
                "" => format!("{}", out.status),
                e => e.to_string(),
            }
        ))),
    }
}

/// One descriptor passed with `SCM_RIGHTS` over `sock`, if any came.
fn receive_fd(sock: &UnixStream) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr with one int, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; the pointers set below outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: a valid socket and a msghdr whose buffers are live and sized.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: msg was filled by recvmsg; CMSG_* walk within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                if fd >= 0 {
                    return Ok(Some(OwnedFd::from_raw_fd(fd)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(None)
}

/// A FUSE mount served by threads of this process.
#[derive(Debug)]
pub struct FuseMount {
    report: FuseReport,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// How serving a mount ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Unmounted from outside (`docker-mount umount`, `umount`, `fusermount3 -u`).
    Unmounted,
    /// A signal arrived and the mount was unmounted.
    Signal(i32),
    /// A signal arrived while the mount was busy: it was detached, and
    /// goes away when its last user leaves (they get errors once this
    /// process exits).
    Detached(i32),
}

/// Mounts `union` read-only on `target` with FUSE and serves it from
/// threads of this process (block the signals meant for [`FuseMount::serve`]
/// with [`Signals::block`] first: the threads inherit the mask).
pub fn mount(
    root: &DockerRoot,
    union: Union,
    target: &Path,
    opts: &FuseOptions,
) -> Result<FuseMount> {
    let target = crate::mounts::kernel::check_target(root, target)?;
    if !is_root() && fusermount_path().is_none() {
        return Err(Error::Usage(format!(
            "mounting with FUSE without root needs {FUSERMOUNT} (Debian's fuse3 package); as root it is not needed"
        )));
    }
    let layers = union.trees.len();
    let fs = UnionFs::new(union)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
    } else {
        opts.threads
    };
    let mut config = Config::default();
    config.mount_options = mount_options();
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(threads);
    let session = if is_root() {
        Session::new(fs, &target, &config)
    } else {
        // fuser would open /dev/fuse itself first, which fails where it is
        // not world-accessible; fusermount3 (setuid) opens and mounts it.
        fusermount(&target, opts).and_then(|fd| Session::from_fd(fs, fd, config.acl, config))
    };
    let session = session.map_err(|e| {
        let hint = if opts.allow_other && !is_root() {
            " (allow_other without root needs user_allow_other in /etc/fuse.conf)"
        } else {
            ""
        };
        Error::io(
            &target,
            std::io::Error::new(e.kind(), format!("FUSE mount failed: {e}{hint}")),
        )
    })?;
    let thread = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || session.run())
        .map_err(|e| Error::io(&target, e))?;
    if is_root() {
        widen_readahead(&target);
    }
    let mut options = String::from("ro,nosuid,nodev,noexec,default_permissions");
    if opts.allow_other {
        options.push_str(",allow_other");
    }
    Ok(FuseMount {
        report: FuseReport {
            target,
            method: "fuse".into(),
            layers,
            options,
            pid: std::process::id(),
        },
        thread: Some(thread),
    })
}

/// Read-ahead of our FUSE mounts, in KiB: reads come to us in requests of
/// up to 1 MiB, several in flight, instead of the kernel's 128 KiB default.
const READ_AHEAD_KIB: u32 = 4096;

/// Sets the read-ahead of the FUSE mount on `target` (its own backing
/// device info, gone with the mount; root only). Best effort: reads are
/// only slower without it.
fn widen_readahead(target: &Path) {
    let Ok(mounts) = mountinfo() else { return };
    let Some(m) = mounts.iter().rev().find(|m| m.mount_point == target) else {
        return;
    };
    let knob = Path::new("/sys/class/bdi")
        .join(&m.device)
        .join("read_ahead_kb");
    if m.device.starts_with("0:") && m.fs_type.starts_with("fuse") {
        if let Err(e) = std::fs::write(&knob, format!("{READ_AHEAD_KIB}\n")) {
            tracing::debug!("{}: {e}", knob.display());
        }
    }
}

impl FuseMount {
    pub fn report(&self) -> &FuseReport {
        &self.report
    }

    /// Whether the session has ended (the filesystem was unmounted).
    pub fn is_finished(&self) -> bool {
        match &self.thread {
            Some(t) => t.is_finished(),
            None => true,
        }
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => Err(Error::io(&self.report.target, e)),
            Some(Err(_)) => Err(Error::Usage("the FUSE session thread panicked".into())),
            _ => Ok(()),
        }
    }

    /// Serves until the filesystem is unmounted, or one of `signals`
    /// arrives, which unmounts it (lazily if it is busy).
    pub fn serve(mut self, signals: &Signals) -> Result<Ended> {
        loop {
            if self.is_finished() {
                self.join()?;
                return Ok(Ended::Unmounted);
            }
            let Some(sig) = signals.wait(Duration::from_millis(200)) else {
                continue;
            };
            if self.is_finished() {
                self.join()?;
                return Ok(Ended::Unmounted);
            }
            let target = self.report.target.clone();
            let lazy = match unmount(&target, false) {
                Ok(()) => false,
                Err(e) => {
                    tracing::info!("{}: {e}; detaching it", target.display());
                    unmount(&target, true)?;
                    true
                }
            };
            // The session ends once the kernel lets go of the filesystem.
            let deadline = Instant::now() + Duration::from_secs(if lazy { 1 } else { 10 });
            while !self.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.is_finished() {
                self.join()?;
                return Ok(Ended::Signal(sig));
            }
            return Ok(Ended::Detached(sig));
        }
    }
}

/// Whether a mount is a FUSE mount of docker-mount.
pub fn is_ours(m: &MountInfo) -> bool {
    m.fs_type == format!("fuse.{SUBTYPE}") || (m.fs_type == "fuse" && m.source == MOUNT_SOURCE)
}

/// Whether a mount looks like one docker-mount made (kernel or FUSE):
/// read-only, nosuid, nodev and noexec, as `mount::unmount` requires.
pub fn is_read_only_mount(m: &MountInfo) -> bool {
    ["ro", "nosuid", "nodev", "noexec"]
        .iter()
        .all(|o| m.options.iter().any(|x| x == o))
}

/// Unmounts what `docker-mount mount` mounted, kernel or FUSE: as root
/// with `umount2`, without root a FUSE mount through `fusermount3 -u`.
pub fn unmount(target: &Path, lazy: bool) -> Result<()> {
    let canonical = std::fs::canonicalize(target).map_err(|e| Error::io(target, e))?;
    let mounts = mountinfo()?;
    let top = mounts.iter().rev().find(|m| m.mount_point == canonical);
    match top {
        Some(m) if is_ours(m) && !is_root() => {
            if !is_read_only_mount(m) {
                return Err(Error::Usage(format!(
                    "{} is a FUSE mount that is not ro,nosuid,nodev,noexec: not docker-mount's",
                    target.display()
                )));
            }
            let mut cmd = std::process::Command::new(FUSERMOUNT);
            cmd.arg("-u").arg("-q");
            if lazy {
                cmd.arg("-z");
            }
            let out = cmd
                .arg("--")
                .arg(&canonical)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| Error::io(Path::new(FUSERMOUNT), e))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(Error::Usage(format!(
                    "{FUSERMOUNT} -u {} failed: {}",
                    target.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        }
        _ => crate::mounts::kernel::unmount(target, lazy),
    }
}

/// Unmounts `target` as a last resort, without checks (undoing our own
/// mount of a moment ago).
pub fn detach(target: &Path) {
    if umount2(target, MntFlags::MNT_DETACH).is_err() && !is_root() {
        let _ = std::process::Command::new(FUSERMOUNT)
            .args(["-u", "-q", "-z", "--"])
            .arg(target)
            .stdin(std::process::Stdio::null())
            .output();
    }
}

// ---------------------------------------------------------------------------
// Signals and detaching, for the processes that serve mounts.

/// SIGINT, SIGTERM and SIGHUP, blocked in this thread (and the threads it
/// starts afterwards) so they can be waited for, and acted on, in one place.
pub struct Signals {
    set: libc::sigset_t,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals(SIGINT, SIGTERM, SIGHUP)")
    }
}

impl Signals {
    pub fn block() -> Result<Signals> {
        // SAFETY: zeroed memory is a valid sigset_t for sigemptyset to initialise.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid sigset_t and valid signal numbers; a null old-mask pointer is allowed.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(Error::io(
                Path::new("pthread_sigmask"),
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(Signals { set })
    }

    /// Waits up to `timeout` for one of the signals; `None` if none came.
    pub fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: a valid signal set, a null siginfo pointer (allowed) and a valid timespec.
        let rc = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (rc > 0).then_some(rc)
    }

    /// A signal that has arrived, if any (without waiting).
    pub fn pending(&self) -> Option<i32> {
        self.wait(Duration::ZERO)
    }
}

/// A command run in a new session (`setsid`), so that the terminal's
/// Ctrl-C and hangup do not reach it: for processes that keep serving a
/// mount after the command that started them has returned.
pub fn detached_command(program: &Path) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Lets go of the terminal or pipes this process was started with (stdin,
/// stdout and stderr become /dev/null) and of its working directory: what
/// a mount server does once it has told its parent the mount is up.
pub fn detach_stdio() -> Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io(Path::new("/dev/null"), e))?;
    for fd in 0..=2 {
        nix::unistd::dup2(null.as_raw_fd(), fd)
            .map_err(|e| Error::io(Path::new("/dev/null"), e))?;
    }
    std::env::set_current_dir("/").map_err(|e| Error::io(Path::new("/"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(kind: FileKind, rdev: u64) -> Stat {
        let t = Time { sec: -5, nsec: 7 };
        Stat {
            kind,
            mode: 0o4755,
            uid: 1,
            gid: 2,
            size: 1025,
            rdev,
            dev: 1,
            ino: 2,
            nlink: u64::MAX,
            atime: t,
            mtime: t,
            ctime: t,
            btime: None,
        }
    }

    #[test]
    fn attributes_follow_the_view() {
        let a = attr(9, &stat(FileKind::CharDev, libc::makedev(4, 300)));
        assert_eq!(a.ino, INodeNo(9));
        assert_eq!(a.perm, 0o4755);
        assert_eq!(a.blocks, 3);
        assert_eq!(a.nlink, u32::MAX);
        assert_eq!(a.kind, FileType::CharDevice);
        // The kernel's new_encode_dev, which glibc's dev_t agrees with in its low 32 bits.
        assert_eq!(u64::from(a.rdev), libc::makedev(4, 300) & 0xffff_ffff);
        assert!(a.mtime < UNIX_EPOCH);
    }

    #[test]
    fn hard_links_of_one_layer_share_an_inode() {
        let t = tempfile::tempdir().expect("tempdir");
        let layer = t.path().join("layer");
        std::fs::create_dir(&layer).expect("mkdir");
        std::fs::write(layer.join("a"), b"x").expect("write");
        std::fs::hard_link(layer.join("a"), layer.join("b")).expect("link");
        std::fs::write(layer.join("c"), b"y").expect("write");
        let base = docker_mount_core::beneath::Beneath::open(t.path()).expect("open");
        let tree = crate::union::Tree::open(&base, Path::new("layer"), None, "l").expect("tree");
        let fs = UnionFs::new(Union::new(vec![tree])).expect("fs");
        let list = fs.children(1).expect("list");
        let names: Vec<&[u8]> = list.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, [b"a".as_slice(), b"b", b"c"]);
        assert_eq!(list[0].1, list[1].1);
        assert_ne!(list[0].1, list[2].1);
        // Listing again hands out the same inodes.
        assert_eq!(fs.children(1).expect("list").as_slice(), list.as_slice());
        assert_eq!(fs.children(list[2].1), Err(Errno::ENOTDIR));
        let fh = fs
            .open_file(list[0].1, OpenFlags(libc::O_RDONLY))
            .expect("open");
        assert_eq!(fs.read_at(list[0].1, fh, 0, 10).expect("read"), b"x");
        assert_eq!(fs.read_at(list[0].1, fh, 5, 10).expect("read"), b"");
        // Without a handle (the kernel skipped the open), reads go by inode.
        assert_eq!(fs.read_at(list[2].1, 0, 0, 10), Err(Errno::EBADF));
        fs.no_open.store(true, Ordering::Relaxed);
        assert_eq!(fs.read_at(list[2].1, 0, 0, 10).expect("read"), b"y");
        assert_eq!(fs.read_at(1, 0, 0, 10), Err(Errno::EISDIR));
        assert_eq!(
            fs.open_file(list[0].1, OpenFlags(libc::O_RDWR)),
            Err(Errno::EROFS)
        );
    }
}
