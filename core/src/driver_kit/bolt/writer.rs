//! A tiny bbolt *writer* for test fixtures: lays out a whole file from a
//! tree of buckets in one go (no freelist, no transactions), the way bbolt
//! itself would lay it out — leaves split into branch levels, values past a
//! page in overflow pages, small buckets without sub-buckets inline in
//! their parent. Only tests and the fixture builders use it.

use std::collections::BTreeMap;

use super::{
    fnv1a64, BRANCH_PAGE, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, LEAF_PAGE, MAGIC, META_SIZE,
    PAGE_HEADER, VERSION,
};

const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;

/// A value or a bucket of a fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Data(Vec<u8>),
    Bucket(BTreeMap<Vec<u8>, Node>),
}

impl Node {
    pub fn bucket() -> Node {
        Node::Bucket(BTreeMap::new())
    }

    fn map(&mut self) -> &mut BTreeMap<Vec<u8>, Node> {
        match self {
            Node::Bucket(m) => m,
            Node::Data(_) => panic!("not a bucket"),
        }
    }

    /// The sub-bucket `name`, created if missing.
    pub fn child(&mut self, name: impl AsRef<[u8]>) -> &mut Node {
        self.map()
            .entry(name.as_ref().to_vec())
            .or_insert_with(Node::bucket)
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) -> &mut Node {
        self.map()
            .insert(key.as_ref().to_vec(), Node::Data(value.into()));
        self
    }
}

/// How to lay the file out.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    pub page_size: usize,
    /// Store small buckets without sub-buckets inline, as bbolt does.
    pub inline: bool,
    /// Leaf and branch pages are filled up to this many bytes before a
    /// new one is started (bbolt's default fill is half a page).
    pub fill: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            page_size: 4096,
            inline: true,
            fill: 2048,
        }
    }
}

struct Out {
    ps: usize,
    pages: Vec<u8>,
    next: u64,
}

impl Out {
    /// Places `bytes` (a page with its header, id not yet set) at the next
    /// free page(s) and returns its id.
    fn place(&mut self, mut bytes: Vec<u8>) -> u64 {
        let id = self.next;
        let span = bytes.len().div_ceil(self.ps).max(1);
        bytes[0..8].copy_from_slice(&id.to_le_bytes());
        bytes[12..16].copy_from_slice(&((span - 1) as u32).to_le_bytes());
        bytes.resize(span * self.ps, 0);
        self.pages.extend_from_slice(&bytes);
        self.next += span as u64;
        id
    }
}

/// One element to lay out in a page.
struct Element {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn page(flags: u16, elements: &[Element], branch: bool) -> Vec<u8> {
    let mut b = vec![0u8; PAGE_HEADER + elements.len() * ELEMENT];
    b[8..10].copy_from_slice(&flags.to_le_bytes());
    b[10..12].copy_from_slice(&(elements.len() as u16).to_le_bytes());
    for (i, e) in elements.iter().enumerate() {
        let at = PAGE_HEADER + i * ELEMENT;
        let pos = (b.len() - at) as u32;
        if branch {
            b[at..at + 4].copy_from_slice(&pos.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&(e.key.len() as u32).to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&e.value[..8]);
            b.extend_from_slice(&e.key);
        } else {
            b[at..at + 4].copy_from_slice(&e.flags.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&(e.key.len() as u32).to_le_bytes());
            b[at + 12..at + 16].copy_from_slice(&(e.value.len() as u32).to_le_bytes());
            b.extend_from_slice(&e.key);
            b.extend_from_slice(&e.value);
        }
    }
    b
}

fn size(e: &Element) -> usize {
    ELEMENT + e.key.len() + e.value.len()
}

/// Splits `elements` into runs of at most `fill` bytes (at least one each).
fn chunks(elements: Vec<Element>, fill: usize) -> Vec<Vec<Element>> {
    let mut out: Vec<Vec<Element>> = Vec::new();
    let mut used = PAGE_HEADER;
    for e in elements {
        let s = size(&e);
        match out.last_mut() {
            Some(cur) if used + s <= fill => {
                cur.push(e);
                used += s;
            }
            _ => {
                out.push(vec![e]);
                used = PAGE_HEADER + s;
            }
        }
    }
    out
}

impl Writer {
    /// The whole file for bucket tree `root`.
    pub fn write(&self, root: &Node) -> Vec<u8> {
        let ps = self.page_size;
        let mut out = Out {
            ps,
            pages: vec![0u8; 3 * ps],
            next: 3,
        };
        let Node::Bucket(map) = root else {
            panic!("the root must be a bucket")
        };
        let root_id = self.tree(map, &mut out);
        let mut file = out.pages;
        // Freelist page 2, empty.
        file[2 * ps..2 * ps + 8].copy_from_slice(&2u64.to_le_bytes());
        file[2 * ps + 8..2 * ps + 10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
        for (i, txid) in [(0usize, 1u64), (1, 2)] {
            let at = i * ps;
            file[at..at + 8].copy_from_slice(&(i as u64).to_le_bytes());
            file[at + 8..at + 10].copy_from_slice(&META_PAGE.to_le_bytes());
            let m = at + PAGE_HEADER;
            file[m..m + 4].copy_from_slice(&MAGIC.to_le_bytes());
            file[m + 4..m + 8].copy_from_slice(&VERSION.to_le_bytes());
            file[m + 8..m + 12].copy_from_slice(&(ps as u32).to_le_bytes());
            file[m + 16..m + 24].copy_from_slice(&root_id.to_le_bytes());
            file[m + 32..m + 40].copy_from_slice(&2u64.to_le_bytes());
            file[m + 40..m + 48].copy_from_slice(&out.next.to_le_bytes());
            file[m + 48..m + 56].copy_from_slice(&txid.to_le_bytes());
        }
        fix_meta_checksums(&mut file, ps);
        file
    }

    /// Lays out a bucket's tree; returns its root page.
    fn tree(&self, map: &BTreeMap<Vec<u8>, Node>, out: &mut Out) -> u64 {
        let elements: Vec<Element> = map
            .iter()
            .map(|(k, v)| match v {
                Node::Data(d) => Element {
                    flags: 0,
                    key: k.clone(),
                    value: d.clone(),
                },
                Node::Bucket(m) => Element {
                    flags: BUCKET_LEAF,
                    key: k.clone(),
                    value: self.bucket_value(m, out),
                },
            })
            .collect();
        let mut level: Vec<Element> = chunks(elements, self.fill)
            .into_iter()
            .map(|run| {
                let key = run.first().map(|e| e.key.clone()).unwrap_or_default();
                let id = out.place(page(LEAF_PAGE, &run, false));
                Element {
                    flags: 0,
                    key,
                    value: id.to_le_bytes().to_vec(),
                }
            })
            .collect();
        if level.is_empty() {
            return out.place(page(LEAF_PAGE, &[], false));
        }
        while level.len() > 1 {
            level = chunks(level, self.fill)
                .into_iter()
                .map(|run| {
                    let key = run[0].key.clone();
                    let id = out.place(page(BRANCH_PAGE, &run, true));
                    Element {
                        flags: 0,
                        key,
                        value: id.to_le_bytes().to_vec(),
                    }
                })
                .collect();
        }
        u64::from_le_bytes(level[0].value[..8].try_into().expect("8 bytes"))
    }

    /// A nested bucket's value: its header, and its leaf when inline.
    fn bucket_value(&self, map: &BTreeMap<Vec<u8>, Node>, out: &mut Out) -> Vec<u8> {
        let has_buckets = map.values().any(|v| matches!(v, Node::Bucket(_)));
        if self.inline && !has_buckets {
            let elements: Vec<Element> = map
                .iter()
                .map(|(k, v)| Element {
                    flags: 0,
                    key: k.clone(),
                    value: match v {
                        Node::Data(d) => d.clone(),
                        Node::Bucket(_) => unreachable!(),
                    },
                })
                .collect();
            let inline = page(LEAF_PAGE, &elements, false);
            if inline.len() <= self.page_size / 4 {
                let mut v = vec![0u8; BUCKET_HEADER];
                v.extend_from_slice(&inline);
                return v;
            }
        }
        let root = self.tree(map, out);
        let mut v = root.to_le_bytes().to_vec();
        v.extend_from_slice(&0u64.to_le_bytes());
        v
    }
}

/// Recomputes the checksums of both meta pages (after a test edited them).
pub fn fix_meta_checksums(file: &mut [u8], page_size: usize) {
    for at in [PAGE_HEADER, page_size + PAGE_HEADER] {
        if file.len() < at + META_SIZE {
            continue;
        }
        let sum = fnv1a64(&file[at..at + 56]);
        file[at + 56..at + META_SIZE].copy_from_slice(&sum.to_le_bytes());
    }
}
