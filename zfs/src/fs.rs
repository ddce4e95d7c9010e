//! The read-only POSIX view of one filesystem or snapshot: object numbers
//! are inode numbers; names are bytes.

use crate::error::{Error, Result};
use crate::pool::DatasetInfo;

/// What a directory entry or object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
    Unknown,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub obj: u64,
    pub kind: FileKind,
}

/// A time: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timespec {
    pub secs: i64,
    pub nanos: u32,
}

/// An object's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZStat {
    /// Type and permission bits, as `st_mode`.
    pub mode: u32,
    pub kind: FileKind,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub nlink: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub crtime: Timespec,
    /// Device numbers of a character or block device.
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// The znode generation (the txg the object was created in).
    pub gen: u64,
    /// Birth txg of the meta-dnode block holding the object's dnode: an
    /// object of a clone born at or before its origin's txg is unchanged.
    pub birth_txg: u64,
    /// The parent directory's object.
    pub parent: u64,
}

/// A filesystem or snapshot, opened read-only. `Send + Sync`, cheap to
/// clone, usable from many threads.
#[derive(Clone)]
pub struct Fs {
    info: DatasetInfo,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("dataset", &self.info.name)
            .finish()
    }
}

fn todo_err(what: &str) -> Error {
    Error::unsupported(what, "not implemented yet")
}

impl Fs {
    /// The dataset this is a view of.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// The root directory's object number.
    pub fn root(&self) -> u64 {
        0
    }

    /// The object `name` names in directory `dir`, if any.
    pub fn lookup(&self, dir: u64, name: &[u8]) -> Result<Option<u64>> {
        let _ = (dir, name);
        Err(todo_err("lookup"))
    }

    /// The entries of directory `dir` (without "." and "..").
    pub fn read_dir(&self, dir: u64) -> Result<Vec<DirEntry>> {
        let _ = dir;
        Err(todo_err("read_dir"))
    }

    /// The attributes of `obj`.
    pub fn stat(&self, obj: u64) -> Result<ZStat> {
        let _ = obj;
        Err(todo_err("stat"))
    }

    /// Reads file content at `off` into `buf`; returns the bytes read (0 at
    /// or past the end). Holes read as zeros.
    pub fn read_at(&self, obj: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        let _ = (obj, off, buf);
        Err(todo_err("read_at"))
    }

    /// The target of symlink `obj`.
    pub fn read_link(&self, obj: u64) -> Result<Vec<u8>> {
        let _ = obj;
        Err(todo_err("read_link"))
    }

    /// The extended attributes of `obj` (xattr=sa and xattr=dir), names as
    /// Linux sees them ("user.x", "security.capability").
    pub fn xattrs(&self, obj: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let _ = obj;
        Err(todo_err("xattrs"))
    }

    /// Birth txg of the meta-dnode block holding `obj` (see
    /// [`ZStat::birth_txg`]).
    pub fn object_birth_txg(&self, obj: u64) -> Result<u64> {
        let _ = obj;
        Err(todo_err("object_birth_txg"))
    }
}
