//! The read-only POSIX view of one filesystem or snapshot: object numbers
//! are inode numbers; names are bytes.

use std::sync::Arc;

use crate::dnode::{Dnode, Objset};
use crate::dsl;
use crate::error::{Error, Result, ResultExt};
use crate::limits::{MAX_SYMLINK, MAX_XATTR, MAX_XATTRS};
use crate::nvlist::{self, Value};
use crate::pool::{DatasetInfo, Pool};
use crate::zap;
use crate::zpl::{self, Attr, Attrs, SaTables};

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
    pool: Pool,
    info: DatasetInfo,
    os: Arc<Objset>,
    sa: Arc<SaTables>,
    root: u64,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("dataset", &self.info.name)
            .finish()
    }
}

/// The master node: object 1 of a ZPL object set.
const MASTER_NODE: u64 = 1;

impl FileKind {
    /// The kind `st_mode`'s type bits say.
    pub fn from_mode(mode: u64) -> FileKind {
        match mode & 0o170000 {
            0o100000 => FileKind::File,
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o020000 => FileKind::CharDev,
            0o060000 => FileKind::BlockDev,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            _ => FileKind::Unknown,
        }
    }

    /// The kind a directory entry's type (DT_*) says.
    fn from_dirent(t: u64) -> FileKind {
        match t {
            1 => FileKind::Fifo,
            2 => FileKind::CharDev,
            4 => FileKind::Dir,
            6 => FileKind::BlockDev,
            8 => FileKind::File,
            10 => FileKind::Symlink,
            12 => FileKind::Socket,
            _ => FileKind::Unknown,
        }
    }
}

impl Fs {
    /// Opens the ZPL object set of `info` on `pool`.
    pub(crate) fn open(pool: Pool, info: DatasetInfo) -> Result<Fs> {
        let what = format!("dataset {}", info.name);
        if info.encrypted {
            return Err(Error::Encrypted { what });
        }
        let spa = &pool.inner.spa;
        let ds = dsl::dataset(spa, &pool.inner.mos, info.objsetid).ctx(|| what.clone())?;
        let os = Objset::read(spa, &ds.bp).ctx(|| what.clone())?;
        if os.typ != 2 {
            return Err(Error::unsupported(
                what,
                format!("object set type {} (not a filesystem)", os.typ),
            ));
        }
        let master =
            zap::list(spa, &os.dnode(spa, MASTER_NODE)?).ctx(|| format!("{what}: master node"))?;
        let get = |n: &[u8]| master.iter().find(|e| e.name == n).and_then(|e| e.u64());
        let root = get(b"ROOT").ok_or_else(|| Error::not_found(format!("{what}: ROOT")))?;
        let sa = match get(b"SA_ATTRS") {
            Some(o) => SaTables::read(spa, &os, o).ctx(|| what.clone())?,
            None => SaTables::default(),
        };
        Ok(Fs {
            pool,
            info,
            os: Arc::new(os),
            sa: Arc::new(sa),
            root,
        })
    }

    /// The dataset this is a view of.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// The root directory's object number.
    pub fn root(&self) -> u64 {
        self.root
    }

    fn spa(&self) -> &crate::pool::Spa {
        &self.pool.inner.spa
    }

    fn ctx(&self, obj: u64) -> String {
        format!("dataset {}: object {obj}", self.info.name)
    }

    fn node(&self, obj: u64) -> Result<(Dnode, u64, Attrs)> {
        let (dn, birth) = self.os.dnode_block(self.spa(), obj).ctx(|| self.ctx(obj))?;
        let a = zpl::attrs(self.spa(), &self.sa, &dn).ctx(|| self.ctx(obj))?;
        Ok((dn, birth, a))
    }

    /// The object `name` names in directory `dir`, if any.
    pub fn lookup(&self, dir: u64, name: &[u8]) -> Result<Option<u64>> {
        let (dn, _) = self.os.dnode_block(self.spa(), dir).ctx(|| self.ctx(dir))?;
        let e =
            zap::lookup(self.spa(), &dn, name).ctx(|| format!("{}: directory", self.ctx(dir)))?;
        Ok(e.and_then(|e| e.u64()).map(|v| v & ((1 << 48) - 1)))
    }

    /// The object at `path` ("a/b/c", relative to the root; empty: the
    /// root), following no symlinks; `None` when a component is missing.
    pub fn resolve(&self, path: &[u8]) -> Result<Option<u64>> {
        let mut obj = self.root;
        for name in path
            .split(|&c| c == b'/')
            .filter(|n| !n.is_empty() && *n != b".")
        {
            match self.lookup(obj, name)? {
                Some(o) => obj = o,
                None => return Ok(None),
            }
        }
        Ok(Some(obj))
    }

    /// The entries of directory `dir` (without "." and "..").
    pub fn read_dir(&self, dir: u64) -> Result<Vec<DirEntry>> {
        let (dn, _) = self.os.dnode_block(self.spa(), dir).ctx(|| self.ctx(dir))?;
        let es = zap::list(self.spa(), &dn).ctx(|| format!("{}: directory", self.ctx(dir)))?;
        Ok(es
            .into_iter()
            .filter_map(|e| {
                let v = e.u64()?;
                Some(DirEntry {
                    obj: v & ((1 << 48) - 1),
                    kind: FileKind::from_dirent(v >> 60),
                    name: e.name,
                })
            })
            .collect())
    }

    /// The attributes of `obj`.
    pub fn stat(&self, obj: u64) -> Result<ZStat> {
        let (_, birth, a) = self.node(obj)?;
        Ok(stat_of(&a, birth))
    }

    /// Reads file content at `off` into `buf`; returns the bytes read (0 at
    /// or past the end). Holes read as zeros.
    pub fn read_at(&self, obj: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        let (dn, _, a) = self.node(obj)?;
        let size = zpl::u64_of(&a, Attr::Size);
        if off >= size {
            return Ok(0);
        }
        let n = ((size - off).min(buf.len() as u64)) as usize;
        dn.read(self.spa(), off, &mut buf[..n])
            .ctx(|| self.ctx(obj))?;
        Ok(n)
    }

    /// The target of symlink `obj`.
    pub fn read_link(&self, obj: u64) -> Result<Vec<u8>> {
        let (dn, _, a) = self.node(obj)?;
        if FileKind::from_mode(zpl::u64_of(&a, Attr::Mode)) != FileKind::Symlink {
            return Err(Error::corrupt(self.ctx(obj), "not a symlink"));
        }
        if let Some(t) = a.get(&Attr::Symlink) {
            return Ok(t.clone());
        }
        // Long targets live in the object's data.
        let size = zpl::u64_of(&a, Attr::Size);
        if size > MAX_SYMLINK {
            return Err(Error::limit(self.ctx(obj), MAX_SYMLINK));
        }
        let mut b = vec![0u8; size as usize];
        dn.read(self.spa(), 0, &mut b).ctx(|| self.ctx(obj))?;
        Ok(b)
    }

    /// The extended attributes of `obj` (xattr=sa and xattr=dir), names as
    /// Linux sees them ("user.x", "security.capability").
    pub fn xattrs(&self, obj: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (_, _, a) = self.node(obj)?;
        let mut out = Vec::new();
        if let Some(packed) = a.get(&Attr::Dxattr) {
            let nv = nvlist::unpack(packed).ctx(|| format!("{}: xattr=sa", self.ctx(obj)))?;
            for (name, v) in nv.pairs {
                if let Value::Bytes(b) = v {
                    out.push((linux_name(name), b));
                }
            }
        }
        let xdir = zpl::u64_of(&a, Attr::Xattr);
        if xdir != 0 {
            let ctx = || format!("{}: xattr directory {xdir}", self.ctx(obj));
            let ents = self.read_dir(xdir).ctx(ctx)?;
            if ents.len() > MAX_XATTRS {
                return Err(Error::limit(ctx(), MAX_XATTRS as u64));
            }
            for e in ents {
                let size = self.stat(e.obj)?.size;
                if size > MAX_XATTR {
                    return Err(Error::limit(ctx(), MAX_XATTR));
                }
                let mut v = vec![0u8; size as usize];
                let n = self.read_at(e.obj, 0, &mut v)?;
                v.truncate(n);
                out.push((linux_name(e.name), v));
            }
        }
        Ok(out)
    }

    /// Objects whose dnode may have changed after `txg` (those in
    /// meta-dnode blocks born later; `zfs diff`'s shortcut): each with
    /// whether it is allocated now. An object of a clone not listed for its
    /// origin's txg is unchanged since the origin. Freed ranges list every
    /// slot (bounded by [`crate::limits::MAX_CHANGED`]).
    pub fn changed_since(&self, txg: u64) -> Result<Vec<(u64, bool)>> {
        let per = self.os.meta.datablksz / crate::dnode::SLOT as u64;
        if per == 0 {
            return Err(Error::corrupt(self.ctx(0), "dnode block size"));
        }
        let mut out = Vec::new();
        let spa = self.spa();
        self.os
            .meta
            .born_after(spa, txg, &mut |first, n, bp| {
                let slots = n.saturating_mul(per);
                if out.len() as u64 + slots > crate::limits::MAX_CHANGED {
                    return Err(Error::limit("changed objects", crate::limits::MAX_CHANGED));
                }
                if bp.is_hole() {
                    out.extend(
                        (0..slots).map(|i| (first.saturating_mul(per).saturating_add(i), false)),
                    );
                    return Ok(());
                }
                let b = spa.read_bp(bp)?;
                let mut i = 0u64;
                while i < per {
                    let at = (i as usize) * crate::dnode::SLOT;
                    let Some(slot) = b.get(at..) else { break };
                    let obj = first.saturating_mul(per).saturating_add(i);
                    let typ = slot.first().copied().unwrap_or(0);
                    out.push((obj, typ != 0));
                    // A large dnode's extra slots are part of it.
                    let extra = if typ != 0 {
                        slot.get(12).copied().unwrap_or(0)
                    } else {
                        0
                    };
                    i += 1 + extra as u64;
                }
                Ok(())
            })
            .ctx(|| format!("dataset {}: meta-dnode", self.info.name))?;
        Ok(out)
    }

    /// Birth txg of the meta-dnode block holding `obj` (see
    /// [`ZStat::birth_txg`]).
    pub fn object_birth_txg(&self, obj: u64) -> Result<u64> {
        let (_, birth) = self.os.dnode_block(self.spa(), obj).ctx(|| self.ctx(obj))?;
        Ok(birth)
    }
}

/// An xattr name as Linux shows it: names stored without a namespace are
/// user attributes.
fn linux_name(n: Vec<u8>) -> Vec<u8> {
    const NS: [&[u8]; 4] = [b"user.", b"system.", b"security.", b"trusted."];
    if NS.iter().any(|p| n.starts_with(p)) {
        n
    } else {
        [b"user.".as_slice(), &n].concat()
    }
}

/// Device numbers of a stored rdev: Linux stores the kernel's `dev_t`
/// (major above bit 20); illumos and FreeBSD a 64-bit one (major above
/// bit 32).
fn rdev_split(rdev: u64) -> (u32, u32) {
    if rdev >> 32 != 0 {
        ((rdev >> 32) as u32, rdev as u32)
    } else {
        ((rdev >> 20) as u32, (rdev & 0xf_ffff) as u32)
    }
}

fn stat_of(a: &Attrs, birth: u64) -> ZStat {
    let t = |w| {
        let (secs, nanos) = zpl::time_of(a, w);
        Timespec { secs, nanos }
    };
    let mode = zpl::u64_of(a, Attr::Mode);
    let rdev = zpl::u64_of(a, Attr::Rdev);
    ZStat {
        mode: (mode & 0o177777) as u32,
        kind: FileKind::from_mode(mode),
        uid: zpl::u64_of(a, Attr::Uid),
        gid: zpl::u64_of(a, Attr::Gid),
        size: zpl::u64_of(a, Attr::Size),
        nlink: zpl::u64_of(a, Attr::Links),
        atime: t(Attr::Atime),
        mtime: t(Attr::Mtime),
        ctime: t(Attr::Ctime),
        crtime: t(Attr::Crtime),
        rdev_major: rdev_split(rdev).0,
        rdev_minor: rdev_split(rdev).1,
        gen: zpl::u64_of(a, Attr::Gen),
        birth_txg: birth,
        parent: zpl::u64_of(a, Attr::Parent),
    }
}
