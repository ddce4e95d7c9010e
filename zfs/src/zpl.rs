//! The ZPL's system attributes: the SA registry and layouts of a
//! filesystem, each object's attributes (bonus buffer and spill block,
//! fixed and variable lengths), and legacy `znode_phys` bonuses.

use std::collections::{BTreeMap, HashMap};

use crate::dnode::{Dnode, Objset};
use crate::error::{Error, Result, ResultExt};
use crate::pool::Spa;
use crate::zap;

const SA_MAGIC: u32 = 0x2F505A;
/// Bonus types: system attributes, legacy znode.
const OT_SA: u8 = 44;
const OT_ZNODE: u8 = 17;

/// The ZPL attributes this reader knows, by their registry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    Atime,
    Mtime,
    Ctime,
    Crtime,
    Gen,
    Mode,
    Size,
    Parent,
    Links,
    Xattr,
    Rdev,
    Flags,
    Uid,
    Gid,
    Symlink,
    Dxattr,
    Projid,
}

impl Attr {
    fn from_name(n: &[u8]) -> Option<Attr> {
        Some(match n {
            b"ZPL_ATIME" => Attr::Atime,
            b"ZPL_MTIME" => Attr::Mtime,
            b"ZPL_CTIME" => Attr::Ctime,
            b"ZPL_CRTIME" => Attr::Crtime,
            b"ZPL_GEN" => Attr::Gen,
            b"ZPL_MODE" => Attr::Mode,
            b"ZPL_SIZE" => Attr::Size,
            b"ZPL_PARENT" => Attr::Parent,
            b"ZPL_LINKS" => Attr::Links,
            b"ZPL_XATTR" => Attr::Xattr,
            b"ZPL_RDEV" => Attr::Rdev,
            b"ZPL_FLAGS" => Attr::Flags,
            b"ZPL_UID" => Attr::Uid,
            b"ZPL_GID" => Attr::Gid,
            b"ZPL_SYMLINK" => Attr::Symlink,
            b"ZPL_DXATTR" => Attr::Dxattr,
            b"ZPL_PROJID" => Attr::Projid,
            _ => return None,
        })
    }
}

/// A filesystem's SA tables.
#[derive(Debug, Default, Clone)]
pub struct SaTables {
    /// Attribute number → (what it is, fixed length or 0 for variable).
    attrs: HashMap<u16, (Option<Attr>, u16)>,
    /// Layout number → attribute numbers in order.
    layouts: HashMap<u64, Vec<u16>>,
}

impl SaTables {
    /// Tables from parts: (number, registry name, fixed length or 0) of
    /// each attribute, and layouts (tests, fuzzing).
    pub fn with(attrs: &[(u16, &str, u16)], layouts: &[(u64, Vec<u16>)]) -> SaTables {
        SaTables {
            attrs: attrs
                .iter()
                .map(|(n, name, len)| (*n, (Attr::from_name(name.as_bytes()), *len)))
                .collect(),
            layouts: layouts.iter().cloned().collect(),
        }
    }

    /// Reads the registry and layouts of the SA_ATTRS object `obj`.
    pub fn read(spa: &Spa, os: &Objset, obj: u64) -> Result<SaTables> {
        let ctx = || format!("SA attributes object {obj}");
        let master = zap::list(spa, &os.dnode(spa, obj).ctx(ctx)?).ctx(ctx)?;
        let get = |n: &[u8]| master.iter().find(|e| e.name == n).and_then(|e| e.u64());
        let mut t = SaTables::default();
        if let Some(reg) = get(b"REGISTRY") {
            for e in zap::list(spa, &os.dnode(spa, reg)?)?.iter() {
                let v = e.u64().unwrap_or(0);
                let num = (v & 0xffff) as u16;
                let len = ((v >> 24) & 0xffff) as u16;
                t.attrs.insert(num, (Attr::from_name(&e.name), len));
            }
        }
        if let Some(lay) = get(b"LAYOUTS") {
            for e in zap::list(spa, &os.dnode(spa, lay)?)?.iter() {
                let Ok(n) = std::str::from_utf8(&e.name).unwrap_or("x").parse::<u64>() else {
                    continue;
                };
                t.layouts.insert(n, e.ints().map(|i| i as u16).collect());
            }
        }
        Ok(t)
    }
}

/// An object's attributes: raw bytes of each known attribute.
pub type Attrs = BTreeMap<Attr, Vec<u8>>;

/// The attributes of the object `dn`: its bonus (SA or legacy znode) and
/// spill block.
pub fn attrs(spa: &Spa, sa: &SaTables, dn: &Dnode) -> Result<Attrs> {
    let mut out = Attrs::new();
    match dn.bonustype {
        OT_SA => {
            parse_sa(sa, &dn.bonus, &mut out).ctx(|| "bonus")?;
            if let Some(sp) = &dn.spill {
                if !sp.is_hole() {
                    let b = spa.read_bp(sp).ctx(|| "spill block")?;
                    parse_sa(sa, &b, &mut out).ctx(|| "spill block")?;
                }
            }
        }
        OT_ZNODE => legacy_znode(&dn.bonus, &mut out)?,
        t => {
            return Err(Error::corrupt(
                "object",
                format!("bonus type {t} (not a ZPL object)"),
            ))
        }
    }
    Ok(out)
}

/// Decodes an SA buffer: header (magic, layout, lengths of the variable
/// attributes), then each attribute of the layout, 8-byte aligned.
pub fn parse_sa(sa: &SaTables, b: &[u8], out: &mut Attrs) -> Result<()> {
    let magic = b
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        .ok_or_else(|| Error::corrupt("SA", "empty"))?;
    if magic != SA_MAGIC {
        return Err(Error::corrupt("SA", format!("magic {magic:#x}")));
    }
    let info = b
        .get(4..6)
        .map(|i| u16::from_le_bytes([i[0], i[1]]))
        .ok_or_else(|| Error::corrupt("SA", "no layout"))?;
    let layout = (info & 0x3ff) as u64;
    let hdr = (((info >> 10) & 0x3f) as usize * 8).max(8);
    let attrs = sa
        .layouts
        .get(&layout)
        .ok_or_else(|| Error::corrupt("SA", format!("unknown layout {layout}")))?;
    let mut var = 0usize;
    let mut off = hdr;
    for num in attrs {
        let (which, fixed) = sa.attrs.get(num).copied().unwrap_or((None, 0));
        let len = if fixed != 0 {
            fixed as usize
        } else {
            let at = 6 + 2 * var;
            var += 1;
            if at + 2 > hdr {
                return Err(Error::corrupt(
                    "SA",
                    "more variable attributes than lengths",
                ));
            }
            u16::from_le_bytes([b[at], b[at + 1]]) as usize
        };
        let v = b
            .get(off..off + len)
            .ok_or_else(|| Error::corrupt("SA", format!("attribute {num} past the buffer")))?;
        if let Some(a) = which {
            out.insert(a, v.to_vec());
        }
        off += len.div_ceil(8) * 8;
    }
    Ok(())
}

/// A legacy `znode_phys` bonus (pools before SA).
fn legacy_znode(b: &[u8], out: &mut Attrs) -> Result<()> {
    if b.len() < 144 {
        return Err(Error::corrupt(
            "znode",
            format!("bonus of {} bytes", b.len()),
        ));
    }
    let f = |o: usize, n: usize| b[o..o + n].to_vec();
    for (a, o, n) in [
        (Attr::Atime, 0, 16),
        (Attr::Mtime, 16, 16),
        (Attr::Ctime, 32, 16),
        (Attr::Crtime, 48, 16),
        (Attr::Gen, 64, 8),
        (Attr::Mode, 72, 8),
        (Attr::Size, 80, 8),
        (Attr::Parent, 88, 8),
        (Attr::Links, 96, 8),
        (Attr::Xattr, 104, 8),
        (Attr::Rdev, 112, 8),
        (Attr::Flags, 120, 8),
        (Attr::Uid, 128, 8),
        (Attr::Gid, 136, 8),
    ] {
        out.insert(a, f(o, n));
    }
    // A short symlink target follows the znode (264 bytes with its ACL).
    const ZNODE_SIZE: usize = 264;
    let mode = u64_of(out, Attr::Mode);
    let size = u64_of(out, Attr::Size) as usize;
    if mode & 0o170000 == 0o120000 {
        if let Some(t) = b.get(ZNODE_SIZE..ZNODE_SIZE.saturating_add(size)) {
            out.insert(Attr::Symlink, t.to_vec());
        }
    }
    Ok(())
}

/// An attribute's first u64.
pub fn u64_of(a: &Attrs, which: Attr) -> u64 {
    a.get(&which)
        .and_then(|v| v.get(..8))
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

/// A time attribute (seconds, nanoseconds).
pub fn time_of(a: &Attrs, which: Attr) -> (i64, u32) {
    let v = a.get(&which).map(|v| v.as_slice()).unwrap_or(&[]);
    let w = |o: usize| {
        v.get(o..o + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
    };
    (w(0) as i64, (w(8) % 1_000_000_000) as u32)
}
