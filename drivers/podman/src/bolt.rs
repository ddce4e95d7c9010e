//! A read-only reader of bbolt files (podman 4's `libpod/bolt_state.db`),
//! held in memory and bounds-checked throughout: the file is evidence and
//! may be truncated, stale or hostile.
//!
//! Layout (go.etcd.io/bbolt, little-endian): pages of `page_size` bytes,
//! each with a 16-byte header (`id u64, flags u16, count u16, overflow
//! u32`). Pages 0 and 1 are meta pages; the valid one (magic, version,
//! FNV-1a checksum) with the higher transaction id names the root bucket's
//! page. Branch pages hold `(pos u32, ksize u32, child u64)` elements, leaf
//! pages `(flags u32, pos u32, ksize u32, vsize u32)`, with each key (and
//! value) `pos` bytes after its element. A leaf value flagged as a bucket
//! starts with the bucket's root page (`u64`) and sequence; root page 0
//! means the bucket's page follows inline.

const HEADER: usize = 16;
const ELEMENT: usize = 16;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_FLAG: u32 = 0x01;
/// Deeper trees than this are refused (a real one is a handful deep).
const MAX_DEPTH: usize = 64;
/// The most elements one listing visits (pages shared between branches
/// must not multiply the work without bound).
const MAX_ELEMENTS: usize = 4_000_000;

/// A bbolt database read into memory.
#[derive(Debug)]
pub struct Db {
    data: Vec<u8>,
    page_size: usize,
    root: u64,
}

/// A bucket: its root page, or its page held inline in the parent's value.
#[derive(Debug, Clone, Copy)]
pub enum Bucket<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

/// One value of a bucket.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Data(&'a [u8]),
    Bucket(Bucket<'a>),
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

fn fnv1a64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A meta page's (page size, root page, txid), if it is valid.
fn meta(page: &[u8]) -> Option<(usize, u64, u64)> {
    if u16_at(page, 8)? & META == 0 {
        return None;
    }
    let m = page.get(HEADER..HEADER + 64)?;
    if u32_at(m, 0)? != MAGIC || u32_at(m, 4)? != VERSION || u64_at(m, 56)? != fnv1a64(&m[..56]) {
        return None;
    }
    let page_size = u32_at(m, 8)? as usize;
    if !(512..=1 << 20).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    Some((page_size, u64_at(m, 16)?, u64_at(m, 48)?))
}

impl Db {
    /// Parses the meta pages of a database file's bytes.
    pub fn new(data: Vec<u8>) -> Result<Db, String> {
        let first = meta(&data);
        // The second meta page sits one page in; its size is the first's,
        // or, when the first is damaged, one of the usual ones.
        let sizes: Vec<usize> = match first {
            Some((size, ..)) => vec![size],
            None => vec![4096, 8192, 16384, 65536],
        };
        let second = sizes
            .iter()
            .find_map(|&s| data.get(s..).and_then(meta).filter(|m| m.0 == s));
        let best = match (first, second) {
            (Some(a), Some(b)) => Some(if b.2 > a.2 { b } else { a }),
            (a, b) => a.or(b),
        };
        let (page_size, root, _) =
            best.ok_or("no valid meta page (not a bbolt file, or damaged)")?;
        Ok(Db {
            data,
            page_size,
            root,
        })
    }

    pub fn root(&self) -> Bucket<'_> {
        Bucket::Page(self.root)
    }

    /// Page `id` with its overflow pages, clamped to the file.
    fn page(&self, id: u64) -> Result<&[u8], String> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .filter(|&s| s + HEADER <= self.data.len())
            .ok_or_else(|| format!("page {id} lies beyond the end of the file"))?;
        let overflow = u32_at(&self.data, start + 12).unwrap_or(0) as usize;
        let len = overflow
            .checked_add(1)
            .and_then(|n| n.checked_mul(self.page_size))
            .unwrap_or(usize::MAX);
        let end = start.saturating_add(len).min(self.data.len());
        Ok(&self.data[start..end])
    }

    /// Every (key, value) of `bucket`, in key order.
    pub fn entries<'a>(&'a self, bucket: Bucket<'a>) -> Result<Vec<(&'a [u8], Value<'a>)>, String> {
        let mut out = Vec::new();
        match bucket {
            Bucket::Page(id) => self.walk(self.page(id)?, 0, &mut out)?,
            Bucket::Inline(page) => self.walk(page, MAX_DEPTH, &mut out)?,
        }
        Ok(out)
    }

    /// The value of `key` in `bucket`.
    pub fn get<'a>(&'a self, bucket: Bucket<'a>, key: &[u8]) -> Result<Option<Value<'a>>, String> {
        Ok(self
            .entries(bucket)?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v))
    }

    /// Sub-bucket `key` of `bucket`.
    pub fn bucket<'a>(
        &'a self,
        bucket: Bucket<'a>,
        key: &[u8],
    ) -> Result<Option<Bucket<'a>>, String> {
        Ok(match self.get(bucket, key)? {
            Some(Value::Bucket(b)) => Some(b),
            _ => None,
        })
    }

    /// Adds the elements of `page` (and, for a branch, of its children) to `out`.
    /// An inline page starts at `depth` MAX_DEPTH: it may hold no branches.
    fn walk<'a>(
        &'a self,
        page: &'a [u8],
        depth: usize,
        out: &mut Vec<(&'a [u8], Value<'a>)>,
    ) -> Result<(), String> {
        let flags = u16_at(page, 8).ok_or("truncated page header")?;
        let count = usize::from(u16_at(page, 10).ok_or("truncated page header")?);
        if count > (page.len().saturating_sub(HEADER)) / ELEMENT {
            return Err(format!(
                "a page claims {count} elements, more than fit in it"
            ));
        }
        let slice = |at: usize, len: usize| -> Result<&'a [u8], String> {
            at.checked_add(len)
                .and_then(|end| page.get(at..end))
                .ok_or_else(|| "an element points outside its page".to_string())
        };
        for i in 0..count {
            let e = HEADER + i * ELEMENT;
            if out.len() >= MAX_ELEMENTS {
                return Err(format!("more than {MAX_ELEMENTS} elements"));
            }
            if flags & BRANCH != 0 {
                if depth + 1 >= MAX_DEPTH {
                    return Err("the tree is deeper than allowed (a cycle?)".into());
                }
                let child = u64_at(page, e + 8).ok_or("truncated branch element")?;
                self.walk(self.page(child)?, depth + 1, out)?;
            } else if flags & LEAF != 0 {
                let get = |at| u32_at(page, e + at).map(|v| v as usize);
                let (Some(eflags), Some(pos), Some(ksize), Some(vsize)) =
                    (get(0), get(4), get(8), get(12))
                else {
                    return Err("truncated leaf element".into());
                };
                let key = slice(e + pos, ksize)?;
                let value = slice(e + pos + ksize, vsize)?;
                let value = if eflags as u32 & BUCKET_FLAG != 0 {
                    let root = u64_at(value, 0).ok_or("truncated bucket header")?;
                    Value::Bucket(if root == 0 {
                        Bucket::Inline(value.get(HEADER..).ok_or("truncated bucket header")?)
                    } else {
                        Bucket::Page(root)
                    })
                } else {
                    Value::Data(value)
                };
                out.push((key, value));
            } else {
                return Err(format!("page of unexpected type {flags:#x}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal bbolt writer for tests: pages of 4096 bytes.
    pub const PAGE: usize = 4096;

    fn header(page: &mut [u8], id: u64, flags: u16, count: u16) {
        page[0..8].copy_from_slice(&id.to_le_bytes());
        page[8..10].copy_from_slice(&flags.to_le_bytes());
        page[10..12].copy_from_slice(&count.to_le_bytes());
    }

    /// A leaf page's bytes (header included) holding `items` (key, value, is_bucket).
    pub fn leaf(id: u64, items: &[(&[u8], Vec<u8>, bool)]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER + ELEMENT * items.len()];
        header(&mut p, id, LEAF, items.len() as u16);
        for (i, (k, v, bucket)) in items.iter().enumerate() {
            let e = HEADER + i * ELEMENT;
            let pos = p.len() - e;
            p[e..e + 4].copy_from_slice(&u32::from(*bucket).to_le_bytes());
            p[e + 4..e + 8].copy_from_slice(&(pos as u32).to_le_bytes());
            p[e + 8..e + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            p[e + 12..e + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
            p.extend_from_slice(k);
            p.extend_from_slice(v);
        }
        p
    }

    /// A bucket value whose page is inline.
    pub fn inline(items: &[(&[u8], Vec<u8>, bool)]) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v.extend(leaf(0, items));
        v
    }

    /// A bucket value whose root is page `id`.
    pub fn on_page(id: u64) -> Vec<u8> {
        let mut v = id.to_le_bytes().to_vec();
        v.extend_from_slice(&[0; 8]);
        v
    }

    fn meta_page(id: u64, root: u64, txid: u64) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        header(&mut p, id, META, 0);
        let m = &mut p[HEADER..HEADER + 64];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&(PAGE as u32).to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m[..56]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        p
    }

    /// A file: two metas (the second newer) with root page `root`, then
    /// `pages` (each padded to a page, numbered from 2).
    pub fn file(root: u64, pages: &[Vec<u8>]) -> Vec<u8> {
        let mut f = meta_page(0, 999, 1);
        f.extend(meta_page(1, root, 2));
        for p in pages {
            let mut p = p.clone();
            assert!(p.len() <= PAGE);
            p.resize(PAGE, 0);
            f.extend(p);
        }
        f
    }

    /// A branch page over children (first key, page id).
    pub fn branch(id: u64, children: &[(&[u8], u64)]) -> Vec<u8> {
        let mut p = vec![0u8; HEADER + ELEMENT * children.len()];
        header(&mut p, id, BRANCH, children.len() as u16);
        for (i, (k, child)) in children.iter().enumerate() {
            let e = HEADER + i * ELEMENT;
            let pos = p.len() - e;
            p[e..e + 4].copy_from_slice(&(pos as u32).to_le_bytes());
            p[e + 4..e + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
            p[e + 8..e + 16].copy_from_slice(&child.to_le_bytes());
            p.extend_from_slice(k);
        }
        p
    }

    #[test]
    fn reads_buckets_inline_and_on_pages_through_branches() {
        let sub = inline(&[(b"k", b"v".to_vec(), false)]);
        let pages = vec![
            branch(2, &[(b"a", 3), (b"m", 4)]),
            leaf(3, &[(b"a", b"1".to_vec(), false), (b"b", sub, true)]),
            leaf(4, &[(b"m", on_page(5), true)]),
            leaf(5, &[(b"deep", b"yes".to_vec(), false)]),
        ];
        let db = Db::new(file(2, &pages)).unwrap();
        let all = db.entries(db.root()).unwrap();
        let keys: Vec<&[u8]> = all.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [b"a".as_slice(), b"b", b"m"]);
        let b = db.bucket(db.root(), b"b").unwrap().unwrap();
        assert!(matches!(db.get(b, b"k").unwrap(), Some(Value::Data(b"v"))));
        let m = db.bucket(db.root(), b"m").unwrap().unwrap();
        assert!(matches!(
            db.get(m, b"deep").unwrap(),
            Some(Value::Data(b"yes"))
        ));
    }

    #[test]
    fn hostile_files_are_errors_not_panics() {
        assert!(Db::new(Vec::new()).is_err());
        assert!(Db::new(vec![0xff; 3 * PAGE]).is_err());
        // A branch pointing at itself.
        let db = Db::new(file(2, &[branch(2, &[(b"a", 2)])])).unwrap();
        assert!(db.entries(db.root()).is_err());
        // A root beyond the end.
        let db = Db::new(file(77, &[])).unwrap();
        assert!(db.entries(db.root()).is_err());
        // An element pointing past its page, and a count too large.
        let mut bad = leaf(2, &[(b"a", b"1".to_vec(), false)]);
        bad[HEADER + 12..HEADER + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        let db = Db::new(file(2, &[bad])).unwrap();
        assert!(db.entries(db.root()).is_err());
        let mut bad = leaf(2, &[]);
        bad[10..12].copy_from_slice(&u16::MAX.to_le_bytes());
        let db = Db::new(file(2, &[bad])).unwrap();
        assert!(db.entries(db.root()).is_err());
        // Every truncation of a good file.
        let good = file(2, &[leaf(2, &[(b"a", inline(&[]), true)])]);
        for n in (0..good.len()).step_by(97) {
            if let Ok(db) = Db::new(good[..n].to_vec()) {
                let _ = db.entries(db.root());
            }
        }
    }

    #[test]
    fn newest_valid_meta_wins() {
        let mut f = file(2, &[leaf(2, &[(b"x", b"1".to_vec(), false)])]);
        let db = Db::new(f.clone()).unwrap();
        assert_eq!(db.entries(db.root()).unwrap().len(), 1);
        // Damage the newer meta: the older one (root 999, beyond the end) is used.
        f[PAGE + HEADER] ^= 0xff;
        let db = Db::new(f).unwrap();
        assert!(db.entries(db.root()).is_err());
    }
}
