//! The vdev tree: leaves (disk, file), mirrors (also replacing and spare),
//! raidz1/2/3 with P-parity reconstruction, assembled from the labels and
//! the devices found; reads that offer each possible copy of a block to a
//! checksum until one verifies.

use std::sync::Arc;

use crate::dev::BlockDev;
use crate::error::{Error, Result};
use crate::label::VDEV_START;
use crate::limits::{MAX_BLOCK, MAX_VDEV_CHILDREN};
use crate::nvlist::NvList;

/// A vdev of the tree.
pub enum Vdev {
    /// A disk or file; `None` when its device was not given.
    Leaf {
        guid: u64,
        dev: Option<Arc<dyn BlockDev>>,
    },
    Mirror {
        guid: u64,
        children: Vec<Vdev>,
    },
    Raidz {
        guid: u64,
        nparity: u64,
        ashift: u64,
        children: Vec<Vdev>,
    },
    /// A type this reader does not read (draid, indirect, …).
    Other {
        guid: u64,
        typ: String,
    },
}

/// Accepts or rejects a candidate copy of a block (its checksum).
pub type Verify<'a> = dyn FnMut(&[u8]) -> bool + 'a;

impl Vdev {
    /// Builds the vdev described by `nv` (a `vdev_tree`), taking leaf
    /// devices by guid from `find`.
    pub fn build(
        nv: &NvList,
        find: &dyn Fn(u64) -> Option<Arc<dyn BlockDev>>,
        depth: u32,
    ) -> Result<Vdev> {
        if depth > 4 {
            return Err(Error::limit("vdev tree depth", 4));
        }
        let guid = nv.u64("guid").unwrap_or(0);
        let typ = nv.str("type").unwrap_or_default();
        let children = || -> Result<Vec<Vdev>> {
            let c = nv.lists("children").unwrap_or(&[]);
            if c.len() > MAX_VDEV_CHILDREN {
                return Err(Error::limit("vdev children", MAX_VDEV_CHILDREN as u64));
            }
            c.iter().map(|c| Vdev::build(c, find, depth + 1)).collect()
        };
        Ok(match typ.as_str() {
            "disk" | "file" => Vdev::Leaf {
                guid,
                dev: find(guid),
            },
            "mirror" | "replacing" | "spare" => Vdev::Mirror {
                guid,
                children: children()?,
            },
            "raidz" => {
                let nparity = nv.u64("nparity").unwrap_or(1);
                let ashift = nv.u64("ashift").unwrap_or(9);
                if !(1..=3).contains(&nparity) || !(9..=16).contains(&ashift) {
                    return Err(Error::corrupt(
                        format!("raidz vdev {guid:#x}"),
                        format!("nparity {nparity}, ashift {ashift}"),
                    ));
                }
                let children = children()?;
                if children.len() as u64 <= nparity {
                    return Err(Error::corrupt(
                        format!("raidz vdev {guid:#x}"),
                        format!("{} children for {nparity} parity", children.len()),
                    ));
                }
                Vdev::Raidz {
                    guid,
                    nparity,
                    ashift,
                    children,
                }
            }
            _ => Vdev::Other { guid, typ },
        })
    }

    /// The vdev's guid.
    pub fn guid(&self) -> u64 {
        match self {
            Vdev::Leaf { guid, .. }
            | Vdev::Mirror { guid, .. }
            | Vdev::Raidz { guid, .. }
            | Vdev::Other { guid, .. } => *guid,
        }
    }

    /// Leaf guids whose device is missing.
    pub fn missing(&self, out: &mut Vec<u64>) {
        match self {
            Vdev::Leaf { guid, dev: None } => out.push(*guid),
            Vdev::Mirror { children, .. } | Vdev::Raidz { children, .. } => {
                children.iter().for_each(|c| c.missing(out))
            }
            _ => {}
        }
    }

    /// Reads `size` bytes at `off` of the allocatable space, offering each
    /// way of getting them to `verify`: `Ok(Some)` the accepted bytes,
    /// `Ok(None)` when every candidate was rejected, `Err` when none could
    /// be read at all.
    pub fn read(&self, off: u64, size: u64, verify: &mut Verify) -> Result<Option<Vec<u8>>> {
        if size > MAX_BLOCK * 2 {
            return Err(Error::limit("read size", MAX_BLOCK * 2));
        }
        match self {
            Vdev::Leaf { guid, dev } => {
                let dev = dev.as_ref().ok_or(Error::MissingDevice {
                    what: "leaf vdev".into(),
                    guid: *guid,
                })?;
                let mut b = vec![0u8; size as usize];
                let at = off
                    .checked_add(VDEV_START)
                    .ok_or_else(|| Error::corrupt("DVA", "offset overflows"))?;
                dev.read_at(at, &mut b)?;
                Ok(verify(&b).then_some(b))
            }
            Vdev::Mirror { children, .. } => {
                let mut err = None;
                let mut rejected = false;
                for c in children {
                    match c.read(off, size, verify) {
                        Ok(Some(b)) => return Ok(Some(b)),
                        Ok(None) => rejected = true,
                        Err(e) => err = Some(e),
                    }
                }
                match (rejected, err) {
                    (false, Some(e)) => Err(e),
                    _ => Ok(None),
                }
            }
            Vdev::Raidz {
                nparity,
                ashift,
                children,
                ..
            } => raidz_read(children, *nparity, *ashift, off, size, verify),
            Vdev::Other { guid, typ } => Err(Error::unsupported(
                format!("vdev {guid:#x}"),
                format!("vdev type {typ}"),
            )),
        }
    }

    /// The first readable copy, unverified (raidz columns).
    fn read_plain(&self, off: u64, size: u64) -> Result<Vec<u8>> {
        self.read(off, size, &mut |_| true)?
            .ok_or_else(|| Error::corrupt("vdev", "no copy"))
    }
}

/// One column of a raidz block: child, offset in it, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub child: usize,
    pub offset: u64,
    pub size: u64,
}

/// The columns of a block of `size` bytes at `off` on a raidz of `dcols`
/// children: parity columns first, then data, as OpenZFS lays them out.
pub fn raidz_columns(dcols: u64, nparity: u64, ashift: u64, off: u64, size: u64) -> Vec<Column> {
    let unit = 1u64 << ashift;
    let b = off >> ashift;
    let s = size.div_ceil(unit);
    let f = b % dcols;
    let o = (b / dcols) << ashift;
    let q = s / (dcols - nparity);
    let r = s - q * (dcols - nparity);
    let bc = if r == 0 { 0 } else { r + nparity };
    let (acols, scols) = if q == 0 {
        (bc, dcols.min(bc.div_ceil(nparity + 1) * (nparity + 1)))
    } else {
        (dcols, dcols)
    };
    let mut cols: Vec<Column> = (0..scols)
        .map(|c| {
            let mut col = f + c;
            let mut coff = o;
            if col >= dcols {
                col -= dcols;
                coff += unit;
            }
            let size = if c >= acols {
                0
            } else if c < bc {
                (q + 1) << ashift
            } else {
                q << ashift
            };
            Column {
                child: col as usize,
                offset: coff,
                size,
            }
        })
        .collect();
    cols.truncate(acols as usize);
    // Single parity alternates the parity disk every 1 MiB of offset.
    if nparity == 1 && off & (1 << 20) != 0 && cols.len() >= 2 {
        let (a, b) = (cols[0], cols[1]);
        cols[0].child = b.child;
        cols[0].offset = b.offset;
        cols[1].child = a.child;
        cols[1].offset = a.offset;
    }
    cols
}

fn raidz_read(
    children: &[Vdev],
    nparity: u64,
    ashift: u64,
    off: u64,
    size: u64,
    verify: &mut Verify,
) -> Result<Option<Vec<u8>>> {
    let cols = raidz_columns(children.len() as u64, nparity, ashift, off, size);
    let np = nparity as usize;
    let mut data: Vec<Option<Vec<u8>>> = Vec::with_capacity(cols.len());
    let mut last_err = None;
    for c in &cols {
        let r = children
            .get(c.child)
            .ok_or_else(|| Error::corrupt("raidz", "column past the children"))
            .and_then(|ch| ch.read_plain(c.offset, c.size));
        match r {
            Ok(b) => data.push(Some(b)),
            Err(e) => {
                last_err = Some(e);
                data.push(None)
            }
        }
    }
    let assemble = |cols: &[Option<Vec<u8>>]| -> Vec<u8> {
        let mut out = Vec::with_capacity(size as usize);
        for c in cols[np..].iter().flatten() {
            out.extend_from_slice(c);
        }
        out.truncate(size as usize);
        out
    };
    let sizes: Vec<usize> = cols.iter().map(|c| c.size as usize).collect();
    // Data column `x` rebuilt from P and the other data columns.
    let rebuild = |cols: &[Option<Vec<u8>>], x: usize| -> Option<Vec<u8>> {
        let mut p = cols[0].clone()?;
        for (i, c) in cols.iter().enumerate().skip(np) {
            if i == x {
                continue;
            }
            for (a, b) in p.iter_mut().zip(c.as_ref()?) {
                *a ^= b;
            }
        }
        p.truncate(sizes[x]);
        Some(p)
    };
    let missing: Vec<usize> = (np..data.len()).filter(|&i| data[i].is_none()).collect();
    match missing.len() {
        0 => {
            let b = assemble(&data);
            if verify(&b) {
                return Ok(Some(b));
            }
            // Silent damage: try each data column rebuilt from parity.
            for x in np..data.len() {
                if let Some(r) = rebuild(&data, x) {
                    let mut d = data.clone();
                    d[x] = Some(r);
                    let b = assemble(&d);
                    if verify(&b) {
                        return Ok(Some(b));
                    }
                }
            }
            Ok(None)
        }
        1 if data[0].is_some() => {
            let x = missing[0];
            let r = rebuild(&data, x).ok_or_else(|| Error::corrupt("raidz", "parity"))?;
            data[x] = Some(r);
            let b = assemble(&data);
            Ok(verify(&b).then_some(b))
        }
        _ => Err(last_err
            .unwrap_or_else(|| Error::unsupported("raidz", "rebuilding columns without P parity"))),
    }
}
