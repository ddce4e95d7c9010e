//! A read-only, bounds-checked reader of bbolt (boltdb) files, the
//! key/value store engines keep their own metadata in (containerd's
//! `meta.db` and its snapshotters' `metadata.db`, podman 4's
//! `libpod/bolt_state.db`). [`open`] opens one beneath a driver's store.
//!
//! The format (go.etcd.io/bbolt): a file of fixed-size pages. Pages 0 and 1
//! are meta pages (the one with a valid checksum and the higher transaction
//! id wins); each names the root bucket's root page. A bucket is a B+tree of
//! branch and leaf pages; a leaf element is a key/value pair or, flagged, a
//! nested bucket whose value is a bucket header (root page, sequence)
//! followed — when the root page is 0 — by an inline leaf page. A page may
//! span `overflow` further pages. The freelist is ignored: only what the
//! meta page reaches is read.
//!
//! Nothing here trusts the file: every offset and length is checked against
//! the page it lies in, page ids against the file and the meta page's
//! high-water mark, trees for depth and cycles, and the total work of one
//! reader is bounded, so a crafted file yields an error, never a panic, a
//! huge allocation or an endless loop. Little-endian files only (bbolt
//! writes native byte order; amd64 and arm64 hosts are little-endian).
//!
//! `writer` (tests, and feature `bolt-writer` for other crates' tests)
//! lays out such files for fixtures.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use crate::beneath::Beneath;
use crate::driver::{DriverError, ErrorKind};

#[cfg(any(test, feature = "bolt-writer"))]
pub mod writer;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const META_SIZE: usize = 64;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;

/// Page sizes bbolt may have used, tried for the second meta page when the
/// first is unreadable.
const PAGE_SIZES: [u32; 5] = [4096, 8192, 16384, 32768, 65536];
/// Deepest B+tree accepted (real ones are a handful of levels).
const MAX_TREE_DEPTH: usize = 64;
/// Largest page span (page plus overflow) read at once.
const MAX_SPAN: u64 = 256 << 20;
/// Page reads one reader may do in all (bounds the work a crafted file,
/// say buckets sharing pages, can cause).
const MAX_PAGE_READS: u64 = 4 << 20;
/// Pages are kept once read, up to this many bytes: a real file is then
/// read once however often its trees are searched.
const CACHE_BYTES: u64 = 256 << 20;
/// Bytes one reader may read from the file in all, past the cache:
/// this many times the file's length.
const READ_FACTOR: u64 = 16;

/// Why a bolt file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoltError(pub String);

impl fmt::Display for BoltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BoltError {}

impl BoltError {
    /// This error as a driver's error about bolt file `path`.
    pub fn at(&self, path: &Path) -> DriverError {
        DriverError::new(
            ErrorKind::Invalid,
            format!("corrupt bolt database: {self}"),
            Some(path),
        )
    }
}

pub type Result<T> = std::result::Result<T, BoltError>;

fn corrupt<T>(msg: impl Into<String>) -> Result<T> {
    Err(BoltError(msg.into()))
}

/// Opens the bolt file `rel` beneath `dir` (read-only, without updating
/// atimes) and reads its meta pages; pages are read on demand. A file
/// larger than `limit` bytes is refused. Errors name the file: `NotFound`
/// when it is missing, `Invalid` when it is too large or not a readable
/// bolt file (`corrupt bolt database: ...`).
pub fn open(dir: &Beneath, rel: &Path, limit: u64) -> std::result::Result<Db<File>, DriverError> {
    let path = dir.path().join(rel);
    let fd = dir.open_regular(rel).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        DriverError::new(kind, format!("cannot open: {e}"), Some(&path))
    })?;
    let file = File::from(fd);
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > limit {
        return Err(DriverError::new(
            ErrorKind::Invalid,
            format!("{len} bytes is too large"),
            Some(&path),
        ));
    }
    Db::open(file).map_err(|e| e.at(&path))
}

/// Where the bytes come from: an evidence file, or memory in tests.
pub trait Source {
    fn size(&self) -> u64;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl Source for File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl Source for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&e| e <= self.as_slice().len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta page checksum.
fn fnv1a64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A decoded meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// High-water mark: pages at or above it are not in use.
    pub pgid: u64,
    pub txid: u64,
}

fn parse_meta(page: &[u8]) -> Result<Meta> {
    let m = page
        .get(PAGE_HEADER..PAGE_HEADER + META_SIZE)
        .ok_or_else(|| BoltError("meta page is truncated".into()))?;
    let field = |at| u32_at(m, at).unwrap_or(0);
    let field64 = |at| u64_at(m, at).unwrap_or(0);
    if field(0) != MAGIC {
        return corrupt("not a bolt file (bad magic)");
    }
    if field(4) != VERSION {
        return corrupt(format!("unsupported bolt version {}", field(4)));
    }
    if fnv1a64(&m[..56]) != field64(56) {
        return corrupt("meta page checksum mismatch");
    }
    let meta = Meta {
        page_size: field(8),
        root: field64(16),
        freelist: field64(32),
        pgid: field64(40),
        txid: field64(48),
    };
    if !meta.page_size.is_power_of_two() || !(512..=(1 << 20)).contains(&meta.page_size) {
        return corrupt(format!("implausible page size {}", meta.page_size));
    }
    if meta.root < 2 || meta.root >= meta.pgid {
        return corrupt(format!(
            "root page {} outside the file's pages (high-water mark {})",
            meta.root, meta.pgid
        ));
    }
    Ok(meta)
}

/// One leaf entry of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Data(Vec<u8>),
    Bucket(Bucket),
}

/// A bucket: where its tree starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    root: Root,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    Page(u64),
    /// The bucket's single leaf page, stored in its parent's value.
    Inline(Vec<u8>),
}

/// An open bolt file.
pub struct Db<S: Source = File> {
    src: S,
    len: u64,
    meta: Meta,
    reads: Cell<u64>,
    bytes_read: Cell<u64>,
    cache: RefCell<HashMap<u64, Rc<[u8]>>>,
    cached: Cell<u64>,
}

impl<S: Source> fmt::Debug for Db<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("len", &self.len)
            .field("meta", &self.meta)
            .finish()
    }
}

/// A page's bytes (header included) and where they came from.
struct Page {
    bytes: Rc<[u8]>,
    /// 0 for an inline page.
    id: u64,
}

impl Page {
    fn flags(&self) -> u16 {
        u16_at(&self.bytes, 8).unwrap_or(0)
    }
    fn count(&self) -> usize {
        usize::from(u16_at(&self.bytes, 10).unwrap_or(0))
    }
    fn what(&self) -> String {
        if self.id == 0 {
            "inline page".into()
        } else {
            format!("page {}", self.id)
        }
    }
    /// The bytes `[off, off + len)`, checked to lie in the page.
    fn slice(&self, off: usize, len: usize) -> Result<&[u8]> {
        off.checked_add(len)
            .and_then(|end| self.bytes.get(off..end))
            .ok_or_else(|| {
                BoltError(format!(
                    "{}: element data at {off}+{len} lies outside the page ({} bytes)",
                    self.what(),
                    self.bytes.len()
                ))
            })
    }
    fn check_elements(&self) -> Result<()> {
        let need = PAGE_HEADER + self.count() * ELEMENT;
        if need > self.bytes.len() {
            return corrupt(format!(
                "{}: {} elements do not fit in {} bytes",
                self.what(),
                self.count(),
                self.bytes.len()
            ));
        }
        Ok(())
    }
    /// Leaf element `i`: (flags, key, value).
    fn leaf(&self, i: usize) -> Result<(u32, &[u8], &[u8])> {
        let at = PAGE_HEADER + i * ELEMENT;
        let e = self.slice(at, ELEMENT)?;
        let field = |o| u32_at(e, o).unwrap_or(0) as usize;
        let (flags, pos, ksize, vsize) = (field(0) as u32, field(4), field(8), field(12));
        let key = self.slice(at.saturating_add(pos), ksize)?;
        let value = self.slice(at.saturating_add(pos).saturating_add(ksize), vsize)?;
        Ok((flags, key, value))
    }
    /// Branch element `i`: (key, child page).
    fn branch(&self, i: usize) -> Result<(&[u8], u64)> {
        let at = PAGE_HEADER + i * ELEMENT;
        let e = self.slice(at, ELEMENT)?;
        let pos = u32_at(e, 0).unwrap_or(0) as usize;
        let ksize = u32_at(e, 4).unwrap_or(0) as usize;
        let child = u64_at(e, 8).unwrap_or(0);
        Ok((self.slice(at.saturating_add(pos), ksize)?, child))
    }
}

impl Db<File> {
    /// Opens a bolt file already opened (read-only) by the caller.
    pub fn open(file: File) -> Result<Db<File>> {
        Db::new(file)
    }
}

impl<S: Source> Db<S> {
    /// Reads the meta pages of `src`.
    pub fn new(src: S) -> Result<Db<S>> {
        let len = src.size();
        let read_meta = |off: u64| -> Result<Meta> {
            let mut b = vec![0u8; PAGE_HEADER + META_SIZE];
            src.read_at(off, &mut b)
                .map_err(|e| BoltError(format!("cannot read a meta page at {off}: {e}")))?;
            parse_meta(&b)
        };
        let m0 = read_meta(0);
        let mut sizes: Vec<u32> = m0.as_ref().map(|m| vec![m.page_size]).unwrap_or_default();
        sizes.extend(PAGE_SIZES);
        let m1 = sizes
            .iter()
            .map(|&s| read_meta(u64::from(s)).filter_size(s))
            .find(|m| m.is_ok())
            .unwrap_or_else(|| corrupt("no valid second meta page"));
        let meta = match (m0, m1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid && b.page_size == a.page_size {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(e),
        };
        let db = Db {
            src,
            len,
            meta,
            reads: Cell::new(0),
            bytes_read: Cell::new(0),
            cache: RefCell::new(HashMap::new()),
            cached: Cell::new(0),
        };
        Ok(db)
    }

    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// The root bucket (whose entries are the top-level buckets).
    pub fn root(&self) -> Bucket {
        Bucket {
            root: Root::Page(self.meta.root),
        }
    }

    fn read_page(&self, id: u64) -> Result<Page> {
        let n = self.reads.get() + 1;
        if n > MAX_PAGE_READS {
            return corrupt("too many page reads: the file's trees reference pages over and over");
        }
        self.reads.set(n);
        if let Some(bytes) = self.cache.borrow().get(&id) {
            return Ok(Page {
                bytes: bytes.clone(),
                id,
            });
        }
        let ps = u64::from(self.meta.page_size);
        if id < 2 || id >= self.meta.pgid {
            return corrupt(format!(
                "page {id} is not a data page below the high-water mark {}",
                self.meta.pgid
            ));
        }
        let off = id
            .checked_mul(ps)
            .filter(|o| o.saturating_add(ps) <= self.len)
            .ok_or_else(|| {
                BoltError(format!(
                    "page {id} lies beyond the end of the file ({} bytes)",
                    self.len
                ))
            })?;
        let mut head = vec![0u8; PAGE_HEADER];
        self.src
            .read_at(off, &mut head)
            .map_err(|e| BoltError(format!("cannot read page {id}: {e}")))?;
        let pid = u64_at(&head, 0).unwrap_or(0);
        if pid != id {
            return corrupt(format!("page {id} says it is page {pid}"));
        }
        let overflow = u64::from(u32_at(&head, 12).unwrap_or(0));
        let span = overflow
            .checked_add(1)
            .and_then(|p| p.checked_mul(ps))
            .filter(|&s| s <= MAX_SPAN && off.saturating_add(s) <= self.len)
            .filter(|_| id.saturating_add(overflow) < self.meta.pgid)
            .ok_or_else(|| {
                BoltError(format!(
                    "page {id}: {overflow} overflow pages run past the end of the file"
                ))
            })?;
        let total = self.bytes_read.get().saturating_add(span);
        if total > self.len.saturating_mul(READ_FACTOR) {
            return corrupt("too many bytes read: the file's trees reference pages over and over");
        }
        self.bytes_read.set(total);
        let mut bytes = vec![0u8; span as usize];
        self.src
            .read_at(off, &mut bytes)
            .map_err(|e| BoltError(format!("cannot read page {id}: {e}")))?;
        let bytes: Rc<[u8]> = bytes.into();
        if self.cached.get().saturating_add(span) <= CACHE_BYTES {
            self.cached.set(self.cached.get() + span);
            self.cache.borrow_mut().insert(id, bytes.clone());
        }
        Ok(Page { bytes, id })
    }

    /// Every entry of `bucket`, in key order.
    pub fn entries(&self, bucket: &Bucket) -> Result<Vec<(Vec<u8>, Value)>> {
        let mut out = Vec::new();
        match &bucket.root {
            Root::Inline(bytes) => {
                let page = Page {
                    bytes: bytes.as_slice().into(),
                    id: 0,
                };
                collect_leaf(&page, &mut out)?;
            }
            Root::Page(id) => {
                let mut seen = HashSet::new();
                self.walk(*id, 0, &mut seen, &mut out)?;
            }
        }
        Ok(out)
    }

    fn walk(
        &self,
        id: u64,
        depth: usize,
        seen: &mut HashSet<u64>,
        out: &mut Vec<(Vec<u8>, Value)>,
    ) -> Result<()> {
        if depth > MAX_TREE_DEPTH {
            return corrupt(format!(
                "page {id}: tree deeper than {MAX_TREE_DEPTH} levels"
            ));
        }
        if !seen.insert(id) {
            return corrupt(format!("page {id} is reached twice in one tree (a cycle)"));
        }
        let page = self.read_page(id)?;
        page.check_elements()?;
        match page.flags() {
            LEAF_PAGE => collect_leaf(&page, out),
            BRANCH_PAGE => {
                for i in 0..page.count() {
                    let (_, child) = page.branch(i)?;
                    self.walk(child, depth + 1, seen, out)?;
                }
                Ok(())
            }
            f => corrupt(format!(
                "page {id}: flags {f:#x}, expected a branch or leaf page"
            )),
        }
    }

    /// The value stored under `key` in `bucket`.
    pub fn get(&self, bucket: &Bucket, key: &[u8]) -> Result<Option<Value>> {
        match &bucket.root {
            Root::Inline(bytes) => {
                let page = Page {
                    bytes: bytes.as_slice().into(),
                    id: 0,
                };
                find_in_leaf(&page, key)
            }
            Root::Page(id) => {
                let mut id = *id;
                let mut seen = HashSet::new();
                for _ in 0..=MAX_TREE_DEPTH {
                    if !seen.insert(id) {
                        return corrupt(format!(
                            "page {id} is reached twice in one tree (a cycle)"
                        ));
                    }
                    let page = self.read_page(id)?;
                    page.check_elements()?;
                    match page.flags() {
                        LEAF_PAGE => return find_in_leaf(&page, key),
                        BRANCH_PAGE => {
                            // The last element whose key is <= key (bbolt's
                            // search), the first if every key is greater.
                            let mut next = None;
                            for i in 0..page.count() {
                                let (k, child) = page.branch(i)?;
                                if i == 0 || k <= key {
                                    next = Some(child);
                                }
                                if k > key {
                                    break;
                                }
                            }
                            match next {
                                Some(c) => id = c,
                                None => return Ok(None),
                            }
                        }
                        f => {
                            return corrupt(format!(
                                "page {id}: flags {f:#x}, expected a branch or leaf page"
                            ))
                        }
                    }
                }
                corrupt(format!("tree deeper than {MAX_TREE_DEPTH} levels"))
            }
        }
    }

    /// The nested bucket `name` of `bucket`, if there is one.
    pub fn bucket(&self, bucket: &Bucket, name: &[u8]) -> Result<Option<Bucket>> {
        Ok(match self.get(bucket, name)? {
            Some(Value::Bucket(b)) => Some(b),
            _ => None,
        })
    }

    /// The plain value `key` of `bucket` (None for a missing key or a bucket).
    pub fn value(&self, bucket: &Bucket, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(match self.get(bucket, key)? {
            Some(Value::Data(d)) => Some(d),
            _ => None,
        })
    }

    /// Follows `path` of bucket names from the root bucket.
    pub fn path(&self, path: &[&[u8]]) -> Result<Option<Bucket>> {
        let mut b = self.root();
        for name in path {
            match self.bucket(&b, name)? {
                Some(next) => b = next,
                None => return Ok(None),
            }
        }
        Ok(Some(b))
    }
}

trait FilterSize {
    fn filter_size(self, size: u32) -> Self;
}

impl FilterSize for Result<Meta> {
    /// A second meta page found at offset `size` must say it has that page size.
    fn filter_size(self, size: u32) -> Self {
        match self {
            Ok(m) if m.page_size != size => corrupt("meta page size does not match its offset"),
            r => r,
        }
    }
}

fn decode(flags: u32, key: &[u8], value: &[u8], what: &str) -> Result<Value> {
    if flags & BUCKET_LEAF == 0 {
        return Ok(Value::Data(value.to_vec()));
    }
    let root = u64_at(value, 0).ok_or_else(|| {
        BoltError(format!(
            "{what}: bucket {:?} has a {}-byte header",
            String::from_utf8_lossy(key),
            value.len()
        ))
    })?;
    if value.len() < BUCKET_HEADER {
        return corrupt(format!(
            "{what}: bucket {:?} has a {}-byte header",
            String::from_utf8_lossy(key),
            value.len()
        ));
    }
    Ok(Value::Bucket(Bucket {
        root: if root == 0 {
            Root::Inline(value[BUCKET_HEADER..].to_vec())
        } else {
            Root::Page(root)
        },
    }))
}

fn collect_leaf(page: &Page, out: &mut Vec<(Vec<u8>, Value)>) -> Result<()> {
    if page.id == 0 {
        check_inline(page)?;
    }
    for i in 0..page.count() {
        let (flags, k, v) = page.leaf(i)?;
        out.push((k.to_vec(), decode(flags, k, v, &page.what())?));
    }
    Ok(())
}

fn find_in_leaf(page: &Page, key: &[u8]) -> Result<Option<Value>> {
    if page.id == 0 {
        check_inline(page)?;
    }
    for i in 0..page.count() {
        let (flags, k, v) = page.leaf(i)?;
        if k == key {
            return decode(flags, k, v, &page.what()).map(Some);
        }
    }
    Ok(None)
}

/// An inline page must be a leaf whose elements fit in it.
fn check_inline(page: &Page) -> Result<()> {
    if page.bytes.len() < PAGE_HEADER {
        return corrupt("inline bucket shorter than a page header");
    }
    if page.flags() != LEAF_PAGE {
        return corrupt(format!(
            "inline page: flags {:#x}, expected a leaf",
            page.flags()
        ));
    }
    page.check_elements()
}

#[cfg(test)]
mod tests {
    use super::writer::{fix_meta_checksums, Node, Writer};
    use super::*;

    fn sample() -> Node {
        let mut root = Node::bucket();
        let v1 = root.child("v1");
        let ns = v1.child("default");
        let c = ns.child("containers");
        for i in 0..300 {
            let b = c.child(format!("ctr-{i:04}"));
            b.put("image", format!("docker.io/library/busybox:{i}"));
            b.put("snapshotter", "overlayfs");
            b.child("labels").put("k", "v");
        }
        ns.child("empty");
        v1.put("version", vec![3]);
        v1.put("big", vec![7u8; 20_000]);
        root
    }

    fn names(db: &Db<Vec<u8>>, b: &Bucket) -> Vec<String> {
        db.entries(b)
            .unwrap()
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect()
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        for inline in [true, false] {
            let bytes = Writer {
                inline,
                ..Writer::default()
            }
            .write(&sample());
            let db = Db::new(bytes).unwrap();
            let v1 = db.path(&[b"v1"]).unwrap().unwrap();
            assert_eq!(names(&db, &v1), ["big", "default", "version"]);
            assert_eq!(db.value(&v1, b"version").unwrap(), Some(vec![3]));
            assert_eq!(db.value(&v1, b"big").unwrap(), Some(vec![7u8; 20_000]));
            let c = db
                .path(&[b"v1", b"default", b"containers"])
                .unwrap()
                .unwrap();
            let all = names(&db, &c);
            assert_eq!(all.len(), 300);
            assert!(all.windows(2).all(|w| w[0] < w[1]));
            for i in [0, 1, 150, 298, 299] {
                let b = db
                    .bucket(&c, format!("ctr-{i:04}").as_bytes())
                    .unwrap()
                    .unwrap_or_else(|| panic!("ctr-{i:04} (inline {inline})"));
                assert_eq!(
                    db.value(&b, b"image").unwrap().unwrap(),
                    format!("docker.io/library/busybox:{i}").as_bytes()
                );
                let l = db.bucket(&b, b"labels").unwrap().unwrap();
                assert_eq!(db.value(&l, b"k").unwrap().unwrap(), b"v");
                assert_eq!(db.value(&b, b"nope").unwrap(), None);
            }
            assert_eq!(db.bucket(&c, b"ctr-9999").unwrap(), None);
            assert_eq!(db.bucket(&c, b"a").unwrap(), None);
            assert_eq!(db.bucket(&c, b"zzz").unwrap(), None);
            let empty = db.path(&[b"v1", b"default", b"empty"]).unwrap().unwrap();
            assert!(db.entries(&empty).unwrap().is_empty());
        }
    }

    #[test]
    fn prefers_the_newer_valid_meta_page() {
        let w = Writer::default();
        let bytes = w.write(&sample());
        let db = Db::new(bytes.clone()).unwrap();
        assert_eq!(db.meta().txid, 2);
        // Break meta 1 (the newer): meta 0 is used.
        let mut b = bytes.clone();
        b[4096 + 40] ^= 0xff;
        let db = Db::new(b).unwrap();
        assert_eq!(db.meta().txid, 1);
        assert!(db.path(&[b"v1"]).unwrap().is_some());
        // Break meta 0: meta 1 is found at the default page size.
        let mut b = bytes;
        b[20] ^= 0xff;
        let db = Db::new(b).unwrap();
        assert_eq!(db.meta().txid, 2);
    }

    #[test]
    fn not_a_bolt_file() {
        assert!(Db::new(Vec::new()).is_err());
        assert!(Db::new(vec![0u8; 100]).is_err());
        assert!(Db::new(b"{\"json\": true}".repeat(1000)).is_err());
    }

    /// Every truncation and many single-byte corruptions of real-looking
    /// files: errors are fine, panics and hangs are not.
    #[test]
    fn never_panics_on_truncated_or_corrupt_files() {
        for inline in [true, false] {
            let bytes = Writer {
                inline,
                ..Writer::default()
            }
            .write(&sample());
            let visit = |b: Vec<u8>| {
                if let Ok(db) = Db::new(b) {
                    walk_all(&db, &db.root(), 0);
                    let _ = db.path(&[b"v1", b"default", b"containers", b"ctr-0150", b"labels"]);
                }
            };
            for cut in (0..bytes.len()).step_by(1021) {
                visit(bytes[..cut].to_vec());
            }
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..1000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut b = bytes.clone();
                let at = (seed % b.len() as u64) as usize;
                b[at] = (seed >> 32) as u8;
                // Keep the meta checksums right half of the time, so that
                // corrupt meta fields are exercised too.
                if seed & 1 == 0 {
                    fix_meta_checksums(&mut b, 4096);
                }
                visit(b);
            }
        }
    }

    fn walk_all(db: &Db<Vec<u8>>, b: &Bucket, depth: usize) {
        if depth > 10 {
            return;
        }
        if let Ok(entries) = db.entries(b) {
            for (_, v) in entries {
                if let Value::Bucket(child) = v {
                    walk_all(db, &child, depth + 1);
                }
            }
        }
    }

    #[test]
    fn cycles_and_self_references_are_errors() {
        let bytes = Writer::default().write(&sample());
        let db = Db::new(bytes.clone()).unwrap();
        let root = db.meta().root;
        // Point the first branch child of a page at the page itself.
        let c = db
            .path(&[b"v1", b"default", b"containers"])
            .unwrap()
            .unwrap();
        let Root::Page(id) = c.root else {
            panic!("the containers bucket is big enough to have pages")
        };
        let ps = 4096usize;
        let mut b = bytes.clone();
        let off = id as usize * ps;
        assert_eq!(u16_at(&b, off + 8), Some(BRANCH_PAGE));
        b[off + PAGE_HEADER + 8..off + PAGE_HEADER + 16].copy_from_slice(&id.to_le_bytes());
        let db = Db::new(b).unwrap();
        let c = db
            .path(&[b"v1", b"default", b"containers"])
            .unwrap()
            .unwrap();
        let err = db.entries(&c).unwrap_err();
        assert!(err.0.contains("cycle"), "{err}");
        assert!(db.bucket(&c, b"ctr-0000").is_err());
        // A root page pointing past the high-water mark.
        let mut b = bytes;
        for at in [PAGE_HEADER, ps + PAGE_HEADER] {
            b[at + 16..at + 24].copy_from_slice(&(root + 100_000).to_le_bytes());
        }
        fix_meta_checksums(&mut b, ps);
        assert!(Db::new(b).is_err());
    }

    #[test]
    fn elements_outside_their_page_are_errors() {
        let mut root = Node::bucket();
        root.put("a", "1");
        let bytes = Writer::default().write(&root);
        let db = Db::new(bytes.clone()).unwrap();
        let off = db.meta().root as usize * 4096;
        assert_eq!(db.value(&db.root(), b"a").unwrap(), Some(b"1".to_vec()));
        // A value running past the page.
        let mut b = bytes.clone();
        b[off + PAGE_HEADER + 12..off + PAGE_HEADER + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        let db = Db::new(b).unwrap();
        assert!(db.entries(&db.root()).is_err());
        assert!(db.get(&db.root(), b"a").is_err());
        // More elements than fit in the page.
        let mut b = bytes;
        b[off + 10..off + 12].copy_from_slice(&u16::MAX.to_le_bytes());
        let db = Db::new(b).unwrap();
        assert!(db.entries(&db.root()).is_err());
        assert!(db.get(&db.root(), b"a").is_err());
    }

    #[test]
    fn open_names_the_file_in_its_errors() {
        let t = tempfile::tempdir().unwrap();
        let dir = Beneath::open(t.path()).unwrap();
        let err = open(&dir, Path::new("missing.db"), 1 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            err.path.as_deref(),
            Some(t.path().join("missing.db").as_path())
        );
        std::fs::write(t.path().join("garbage.db"), b"garbage").unwrap();
        let err = open(&dir, Path::new("garbage.db"), 1 << 20).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("corrupt bolt database"), "{err:?}");
        assert_eq!(
            err.path.as_deref(),
            Some(t.path().join("garbage.db").as_path())
        );
        std::fs::write(t.path().join("good.db"), Writer::default().write(&sample())).unwrap();
        let err = open(&dir, Path::new("good.db"), 4096).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("too large"), "{err:?}");
        let db = open(&dir, Path::new("good.db"), 16 << 20).unwrap();
        assert!(db.path(&[b"v1", b"default"]).unwrap().is_some());
    }
}
