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
            // An expanded raidz maps older blocks by their logical width:
            // not read here (named, never misread).
            "raidz"
                if nv.get("raidz_expand_txgs").is_some() || nv.get("raidz_expanding").is_some() =>
            {
                Vdev::Other {
                    guid,
                    typ: "raidz (expanded)".into(),
                }
            }
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
    // Parity columns are as wide as the widest data column.
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
    let missing: Vec<usize> = (np..data.len()).filter(|&i| data[i].is_none()).collect();
    if missing.is_empty() {
        let b = assemble(&data);
        if verify(&b) {
            return Ok(Some(b));
        }
        // Silent damage: each data column rebuilt from P (and from Q).
        for x in np..data.len() {
            let mut d = data.clone();
            d[x] = None;
            for use_q in [false, true] {
                if rebuild(&mut d, np, &sizes, &[x], use_q).is_some() {
                    let b = assemble(&d);
                    if verify(&b) {
                        return Ok(Some(b));
                    }
                    d[x] = None;
                }
            }
        }
        return Ok(None);
    }
    if rebuild(&mut data, np, &sizes, &missing, false).is_none()
        && rebuild(&mut data, np, &sizes, &missing, true).is_none()
    {
        return Err(last_err.unwrap_or_else(|| {
            Error::unsupported("raidz", "more missing columns than parity rebuilds")
        }));
    }
    let b = assemble(&data);
    Ok(verify(&b).then_some(b))
}

/// Multiplication by 2 in GF(2^8) with OpenZFS's polynomial (0x11d).
fn mul2(x: u8) -> u8 {
    (x << 1) ^ if x & 0x80 != 0 { 0x1d } else { 0 }
}

/// Multiplication in GF(2^8).
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        a = mul2(a);
        b >>= 1;
    }
    r
}

/// The inverse in GF(2^8) (of a nonzero element).
fn gf_inv(a: u8) -> u8 {
    // a^254 = a^-1.
    let mut r = 1u8;
    for _ in 0..254 {
        r = gf_mul(r, a);
    }
    r
}

/// 2^n in GF(2^8).
fn gf_pow2(n: usize) -> u8 {
    (0..n).fold(1u8, |a, _| mul2(a))
}

/// Fills the `missing` data columns of `cols` (parity first, `np` of
/// them) from parity: one column from P (or from Q when `use_q`), two from
/// P and Q. `None` when the parity needed is missing too.
fn rebuild(
    cols: &mut [Option<Vec<u8>>],
    np: usize,
    sizes: &[usize],
    missing: &[usize],
    use_q: bool,
) -> Option<()> {
    let n = cols.len() - np;
    let width = sizes[0];
    // P' and Q' of the columns present: XOR, and Horner in GF(2^8).
    let mut p = cols[0].clone();
    let q_col = if np >= 2 { cols[1].clone() } else { None };
    let mut q = vec![0u8; width];
    for c in &cols[np..] {
        for (i, qb) in q.iter_mut().enumerate() {
            let d = c.as_ref().and_then(|c| c.get(i)).copied().unwrap_or(0);
            *qb = mul2(*qb) ^ d;
        }
        if let (Some(p), Some(c)) = (p.as_mut(), c) {
            for (a, b) in p.iter_mut().zip(c) {
                *a ^= b;
            }
        }
    }
    let coef = |x: usize| gf_pow2(n - 1 - (x - np));
    match (missing, use_q) {
        ([x], false) => {
            let mut p = p?;
            p.truncate(sizes[*x]);
            cols[*x] = Some(p);
        }
        ([x], true) => {
            let qc = q_col?;
            let inv = gf_inv(coef(*x));
            let mut d: Vec<u8> = qc.iter().zip(&q).map(|(a, b)| gf_mul(a ^ b, inv)).collect();
            d.truncate(sizes[*x]);
            cols[*x] = Some(d);
        }
        ([x, y], _) => {
            let (p, qc) = (p?, q_col?);
            let (a, b) = (coef(*x), coef(*y));
            let inv = gf_inv(a ^ b);
            let dy: Vec<u8> = (0..width)
                .map(|i| gf_mul(qc[i] ^ q[i] ^ gf_mul(a, p[i]), inv))
                .collect();
            let mut dx: Vec<u8> = p.iter().zip(&dy).map(|(p, d)| p ^ d).collect();
            let mut dy = dy;
            dx.truncate(sizes[*x]);
            dy.truncate(sizes[*y]);
            cols[*x] = Some(dx);
            cols[*y] = Some(dy);
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::SliceDev;

    fn leaf(data: Option<&[u8]>) -> Vdev {
        Vdev::Leaf {
            guid: 7,
            dev: data.map(|d| {
                let mut img = vec![0u8; VDEV_START as usize];
                img.extend_from_slice(d);
                Arc::new(SliceDev::new("child", img)) as Arc<dyn BlockDev>
            }),
        }
    }

    #[test]
    fn raidz1_columns_and_parity_rebuild() {
        // Two sectors on three children: parity on child 0, data on 1, 2.
        let cols = raidz_columns(3, 1, 9, 0, 1024);
        assert_eq!(
            cols.iter().map(|c| (c.child, c.size)).collect::<Vec<_>>(),
            vec![(0, 512), (1, 512), (2, 512)]
        );
        let a = vec![0x5au8; 512];
        let b: Vec<u8> = (0..512).map(|i| i as u8).collect();
        let p: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
        let want = [a.clone(), b.clone()].concat();
        let ok = |d: &[u8]| d == want.as_slice();
        for missing in 0..3 {
            let kids: Vec<Vdev> = [&p, &a, &b]
                .iter()
                .enumerate()
                .map(|(i, d)| leaf((i != missing).then_some(d.as_slice())))
                .collect();
            let z = Vdev::Raidz {
                guid: 1,
                nparity: 1,
                ashift: 9,
                children: kids,
            };
            let got = z.read(0, 1024, &mut |d: &[u8]| ok(d)).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(want.as_slice()),
                "child {missing} missing"
            );
        }
        // Silent damage of a data column is repaired from parity.
        let mut bad = a.clone();
        bad[3] ^= 1;
        let z = Vdev::Raidz {
            guid: 1,
            nparity: 1,
            ashift: 9,
            children: vec![leaf(Some(&p)), leaf(Some(&bad)), leaf(Some(&b))],
        };
        let got = z.read(0, 1024, &mut |d: &[u8]| ok(d)).unwrap();
        assert_eq!(got.as_deref(), Some(want.as_slice()));
        // Two columns missing: an error, not garbage.
        let z = Vdev::Raidz {
            guid: 1,
            nparity: 1,
            ashift: 9,
            children: vec![leaf(Some(&p)), leaf(None), leaf(None)],
        };
        assert!(z.read(0, 1024, &mut |d: &[u8]| ok(d)).is_err());
    }
}

#[cfg(test)]
mod raidz2_tests {
    use super::*;

    #[test]
    fn gf_arithmetic() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "{a}");
        }
        assert_eq!(gf_pow2(8), 0x1d);
    }

    /// raidz2 columns: P, Q, then three data columns of unequal widths;
    /// every one or two missing data columns come back from P and Q.
    #[test]
    fn raidz2_rebuilds_one_or_two_columns_from_p_and_q() {
        let sizes = [8usize, 8, 8, 8, 5];
        let data: Vec<Vec<u8>> = (0..3)
            .map(|k| {
                (0..sizes[2 + k])
                    .map(|i| (i * 37 + k * 101 + 7) as u8)
                    .collect()
            })
            .collect();
        let mut p = vec![0u8; 8];
        let mut q = vec![0u8; 8];
        for d in &data {
            for i in 0..8 {
                let b = d.get(i).copied().unwrap_or(0);
                p[i] ^= b;
                q[i] = mul2(q[i]) ^ b;
            }
        }
        let full: Vec<Option<Vec<u8>>> = [p, q]
            .into_iter()
            .chain(data.iter().cloned())
            .map(Some)
            .collect();
        let sets: Vec<Vec<usize>> = vec![
            vec![2],
            vec![3],
            vec![4],
            vec![2, 3],
            vec![2, 4],
            vec![3, 4],
        ];
        for m in sets {
            for (drop_p, use_q) in [(false, false), (true, true), (false, true)] {
                if m.len() == 2 && drop_p {
                    continue;
                }
                let mut cols = full.clone();
                for &x in &m {
                    cols[x] = None;
                }
                if drop_p {
                    cols[0] = None;
                }
                assert!(rebuild(&mut cols, 2, &sizes, &m, use_q).is_some(), "{m:?}");
                for &x in &m {
                    assert_eq!(cols[x], full[x], "{m:?} drop_p {drop_p} q {use_q}");
                }
            }
        }
        // Three missing columns are beyond raidz2.
        let mut cols = full.clone();
        cols[2] = None;
        cols[3] = None;
        cols[4] = None;
        assert!(rebuild(&mut cols, 2, &sizes, &[2, 3, 4], true).is_none());
    }
}
