//! Dnodes (with extra slots: large dnodes; bonus buffers; spill pointers),
//! their indirect trees (holes at any level), and object sets.

use std::sync::Arc;

use crate::bp::{self, BlockPtr};
use crate::error::{Error, Result, ResultExt};
use crate::limits::{MAX_BLOCK, MAX_LEVELS};
use crate::pool::Spa;

/// Size of a dnode slot.
pub const SLOT: usize = 512;
/// DMU object types this reader names.
pub const OT_OBJSET: u8 = 11;
pub const OT_DNODE: u8 = 10;
/// `dn_flags` bit: a spill block pointer ends the dnode.
const FLAG_SPILL: u8 = 1 << 2;

/// A decoded dnode.
#[derive(Debug, Clone)]
pub struct Dnode {
    pub typ: u8,
    pub indblkshift: u8,
    pub nlevels: u8,
    pub bonustype: u8,
    /// Data block size in bytes.
    pub datablksz: u64,
    pub maxblkid: u64,
    /// Extra slots taken (large dnodes).
    pub extra_slots: u8,
    pub blkptr: Vec<BlockPtr>,
    pub bonus: Vec<u8>,
    pub spill: Option<BlockPtr>,
}

impl Dnode {
    /// Decodes a dnode from `b`, which starts at its first slot and may run
    /// past its end (the rest of the block).
    pub fn parse(b: &[u8]) -> Result<Dnode> {
        let bad = |r: String| Error::corrupt("dnode", r);
        if b.len() < SLOT {
            return Err(bad(format!("{} bytes", b.len())));
        }
        let typ = b[0];
        let nblkptr = b[3] as usize;
        let extra = b[12];
        let size = SLOT * (1 + extra as usize);
        if size > b.len() {
            return Err(bad(format!("{} extra slots past the block", extra)));
        }
        let b = &b[..size];
        let flags = b[7];
        let spill_at = if flags & FLAG_SPILL != 0 {
            Some(size - bp::SIZE)
        } else {
            None
        };
        let bonus_start = 64 + nblkptr * bp::SIZE;
        let bonus_end = spill_at.unwrap_or(size);
        if nblkptr == 0 && typ != 0 || bonus_start > bonus_end {
            return Err(bad(format!("{nblkptr} block pointers")));
        }
        let bonuslen = u16::from_le_bytes([b[10], b[11]]) as usize;
        let bonus = b
            .get(bonus_start..bonus_start + bonuslen.min(bonus_end - bonus_start))
            .unwrap_or(&[])
            .to_vec();
        let blkptr = (0..nblkptr)
            .map(|i| BlockPtr::parse(&b[64 + i * bp::SIZE..]))
            .collect::<Result<Vec<_>>>()?;
        let spill = match spill_at {
            Some(o) => Some(BlockPtr::parse(&b[o..])?),
            None => None,
        };
        Ok(Dnode {
            typ,
            indblkshift: b[1],
            nlevels: b[2],
            bonustype: b[4],
            datablksz: u16::from_le_bytes([b[8], b[9]]) as u64 * 512,
            maxblkid: u64::from_le_bytes(b[16..24].try_into().unwrap_or([0; 8])),
            extra_slots: extra,
            blkptr,
            bonus,
            spill,
        })
    }

    /// The level-0 block pointer of block `blkid`, `None` for a hole at
    /// any level.
    pub fn block_ptr(&self, spa: &Spa, blkid: u64) -> Result<Option<BlockPtr>> {
        if self.nlevels == 0 || self.nlevels > MAX_LEVELS {
            return Err(Error::corrupt("dnode", format!("{} levels", self.nlevels)));
        }
        if !(10..=17).contains(&self.indblkshift) && self.nlevels > 1 {
            return Err(Error::corrupt(
                "dnode",
                format!("indirect block shift {}", self.indblkshift),
            ));
        }
        let epbs = (self.indblkshift as u32).saturating_sub(7);
        let top_shift = epbs * (self.nlevels as u32 - 1);
        let top = if top_shift >= 64 {
            0
        } else {
            blkid >> top_shift
        };
        let Some(mut bp) = self.blkptr.get(top as usize).cloned() else {
            return Ok(None);
        };
        for level in (0..self.nlevels as u32 - 1).rev() {
            if bp.is_hole() {
                return Ok(None);
            }
            let ind = spa.read_bp(&bp)?;
            let idx = (blkid.checked_shr(epbs * level).unwrap_or(0) & ((1 << epbs) - 1)) as usize;
            let at = idx * bp::SIZE;
            let raw = ind.get(at..at + bp::SIZE).ok_or_else(|| {
                Error::corrupt(
                    bp.describe(),
                    format!("entry {idx} past the indirect block"),
                )
            })?;
            bp = BlockPtr::parse(raw)?;
        }
        Ok((!bp.is_hole()).then_some(bp))
    }

    /// Visits every level-0 block born after `txg` (holes with a later
    /// birth too: freed ranges), skipping subtrees born at or before it:
    /// `visit(first blkid, blocks spanned, the pointer)`.
    pub fn born_after(
        &self,
        spa: &Spa,
        txg: u64,
        visit: &mut dyn FnMut(u64, u64, &BlockPtr) -> Result<()>,
    ) -> Result<()> {
        if self.nlevels == 0 || self.nlevels > MAX_LEVELS {
            return Err(Error::corrupt("dnode", format!("{} levels", self.nlevels)));
        }
        let epbs = (self.indblkshift as u32).saturating_sub(7);
        if self.nlevels > 1 && !(3..=10).contains(&epbs) {
            return Err(Error::corrupt(
                "dnode",
                format!("indirect block shift {}", self.indblkshift),
            ));
        }
        let span = |level: u32| 1u64.checked_shl(epbs * level).unwrap_or(u64::MAX);
        let top = self.nlevels as u32 - 1;
        // (pointer, its level, first blkid), depth-first.
        let mut stack: Vec<(BlockPtr, u32, u64)> = self
            .blkptr
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), top, (i as u64).saturating_mul(span(top))))
            .collect();
        stack.reverse();
        while let Some((bp, level, first)) = stack.pop() {
            if first > self.maxblkid || bp.birth <= txg {
                continue;
            }
            if bp.is_hole() || level == 0 {
                let n = span(level).min((self.maxblkid - first).saturating_add(1));
                visit(first, n, &bp)?;
                continue;
            }
            let ind = spa.read_bp(&bp)?;
            let kids: Vec<_> = ind
                .chunks_exact(bp::SIZE)
                .take(1 << epbs)
                .enumerate()
                .map(|(i, raw)| {
                    BlockPtr::parse(raw).map(|b| {
                        (
                            b,
                            level - 1,
                            first.saturating_add(i as u64 * span(level - 1)),
                        )
                    })
                })
                .collect::<Result<_>>()?;
            stack.extend(kids.into_iter().rev());
        }
        Ok(())
    }

    /// Block `blkid` of the object (logical bytes), `None` for a hole.
    pub fn read_block(&self, spa: &Spa, blkid: u64) -> Result<Option<Arc<[u8]>>> {
        match self.block_ptr(spa, blkid)? {
            Some(bp) => spa.read_bp(&bp).map(Some),
            None => Ok(None),
        }
    }

    /// Reads `buf.len()` bytes of the object at `off` (zeros for holes and
    /// past the last block); the caller bounds by the file size.
    pub fn read(&self, spa: &Spa, off: u64, buf: &mut [u8]) -> Result<()> {
        let bs = self.datablksz.max(512);
        if bs > MAX_BLOCK {
            return Err(Error::limit("data block size", MAX_BLOCK));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let blkid = pos / bs;
            let within = (pos % bs) as usize;
            let n = (bs as usize - within).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match (blkid <= self.maxblkid)
                .then(|| self.read_block(spa, blkid))
                .transpose()?
                .flatten()
            {
                Some(b) => {
                    let src = b.get(within..).unwrap_or(&[]);
                    let m = src.len().min(n);
                    dst[..m].copy_from_slice(&src[..m]);
                    dst[m..].fill(0);
                }
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }
}

/// An object set: its meta-dnode (the array of dnodes) and type.
#[derive(Debug, Clone)]
pub struct Objset {
    pub meta: Dnode,
    /// 1 = MOS, 2 = ZPL filesystem, 3 = zvol.
    pub typ: u64,
}

impl Objset {
    /// Reads the object set `bp` points at.
    pub fn read(spa: &Spa, bp: &BlockPtr) -> Result<Objset> {
        let b = spa.read_bp(bp).ctx(|| "object set")?;
        let meta = Dnode::parse(&b).ctx(|| "object set's meta-dnode")?;
        let typ = b
            .get(704..712)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        Ok(Objset { meta, typ })
    }

    /// Dnode `obj`.
    pub fn dnode(&self, spa: &Spa, obj: u64) -> Result<Dnode> {
        self.dnode_block(spa, obj).map(|(d, _)| d)
    }

    /// Dnode `obj` and the birth txg of the meta-dnode block holding it.
    pub fn dnode_block(&self, spa: &Spa, obj: u64) -> Result<(Dnode, u64)> {
        let ctx = || format!("object {obj}");
        let bs = self.meta.datablksz;
        if bs < SLOT as u64 || bs > MAX_BLOCK {
            return Err(Error::corrupt(ctx(), format!("dnode block size {bs}")));
        }
        let per = bs / SLOT as u64;
        let blkid = obj / per;
        if blkid > self.meta.maxblkid {
            return Err(Error::not_found(ctx()));
        }
        let bp = self
            .meta
            .block_ptr(spa, blkid)
            .ctx(ctx)?
            .ok_or_else(|| Error::not_found(ctx()))?;
        let b = spa.read_bp(&bp).ctx(ctx)?;
        let at = (obj % per) as usize * SLOT;
        let slot = b
            .get(at..)
            .ok_or_else(|| Error::corrupt(ctx(), "past its dnode block"))?;
        let d = Dnode::parse(slot).ctx(ctx)?;
        if d.typ == 0 {
            return Err(Error::not_found(ctx()));
        }
        Ok((d, bp.birth))
    }
}
