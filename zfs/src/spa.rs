//! The block layer of an open pool: block pointers resolved to their
//! verified, decompressed bytes through the top-level vdevs (holes,
//! embedded payloads, gang blocks, ditto copies), with the block cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::bp::{BlockPtr, Dva};
use crate::checksum;
use crate::compress;
use crate::dev::{BlockDev, Cache};
use crate::dnode::{OT_DNODE, OT_OBJSET};
use crate::error::{Error, Result, ResultExt};
use crate::limits::{CACHE_BYTES, MAX_BLOCK, MAX_GANG_DEPTH};
use crate::vdev::Vdev;

/// The block layer of an open pool: its top-level vdevs and block cache.
pub struct Spa {
    pub name: String,
    pub(crate) tops: Vec<Option<Vdev>>,
    pub(crate) cache: Cache,
    /// Blocks accepted without verification (checksum off, or an
    /// algorithm this reader does not compute).
    pub(crate) unverified: AtomicU64,
}

impl Spa {
    /// A block layer over one disk vdev (its allocatable space starting
    /// 4 MiB in, as on a real vdev): fuzzing and tests of the layers
    /// above blocks.
    pub fn single_disk(dev: Arc<dyn BlockDev>) -> Spa {
        Spa {
            name: dev.name(),
            tops: vec![Some(Vdev::Leaf {
                guid: 1,
                dev: Some(dev),
            })],
            cache: Cache::new(CACHE_BYTES / 8),
            unverified: AtomicU64::new(0),
        }
    }

    /// The logical bytes of the block `bp` points at: holes as zeros,
    /// embedded payloads, gang blocks, each copy tried until its checksum
    /// verifies; decompressed to the logical size.
    pub fn read_bp(&self, bp: &BlockPtr) -> Result<Arc<[u8]>> {
        if bp.lsize > MAX_BLOCK || bp.psize > MAX_BLOCK {
            return Err(Error::limit(bp.describe(), MAX_BLOCK));
        }
        if bp.is_hole() {
            return Ok(vec![0u8; bp.lsize as usize].into());
        }
        if bp.embedded {
            let p = bp.embedded_payload()?;
            return compress::decompress(bp.compress, &p, bp.lsize as usize)
                .map(Into::into)
                .ctx(|| bp.describe());
        }
        if bp.encrypted && bp.level == 0 && bp.typ != OT_DNODE && bp.typ != OT_OBJSET {
            return Err(Error::Encrypted {
                what: bp.describe(),
            });
        }
        let key = (bp.dva[0].vdev, bp.dva[0].offset, bp.birth);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let raw = self.read_raw(bp, 0)?;
        let data: Arc<[u8]> = compress::decompress(bp.compress, &raw, bp.lsize as usize)
            .ctx(|| bp.describe())?
            .into();
        self.cache.put(key, data.clone());
        Ok(data)
    }

    /// The verified physical bytes of `bp` (any of its copies).
    fn read_raw(&self, bp: &BlockPtr, depth: u32) -> Result<Vec<u8>> {
        let mut verify = |d: &[u8]| match checksum_ok(bp, d) {
            Some(ok) => ok,
            None => {
                self.unverified.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        let mut err = None;
        let mut tried = 0;
        let mut rejected = 0;
        for dva in bp.copies() {
            tried += 1;
            match self.read_dva(dva, bp, depth, &mut verify) {
                Ok(Some(b)) => return Ok(b),
                Ok(None) => rejected += 1,
                Err(e) => err = Some(e),
            }
        }
        match err {
            // No copy could even be read: say why (past the end of a cut
            // image, a missing device, …).
            Some(e) if rejected == 0 => {
                Err(e.context(format!("{} (no copy of {tried} readable)", bp.describe())))
            }
            _ => Err(Error::Checksum {
                what: bp.describe(),
                copies: tried,
            }),
        }
    }

    fn read_dva(
        &self,
        dva: &Dva,
        bp: &BlockPtr,
        depth: u32,
        verify: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let top = self
            .tops
            .get(dva.vdev as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                Error::corrupt(bp.describe(), format!("no top-level vdev {}", dva.vdev))
            })?;
        if !dva.gang {
            return top.read(dva.offset, bp.psize, verify);
        }
        if depth >= MAX_GANG_DEPTH {
            return Err(Error::limit(
                format!("{}: gang block nesting", bp.describe()),
                MAX_GANG_DEPTH as u64,
            ));
        }
        // A gang header: three block pointers whose data, concatenated,
        // is the block's physical bytes.
        let verifier = [dva.vdev, dva.offset, bp.birth, 0];
        let Some(hdr) = top.read(dva.offset, 512, &mut |h| {
            checksum::verify_embedded(h, verifier)
        })?
        else {
            return Ok(None);
        };
        let mut data = Vec::with_capacity(bp.psize as usize);
        for i in 0..3 {
            let child = BlockPtr::parse(&hdr[i * 128..])?;
            if child.is_hole() || data.len() as u64 >= bp.psize {
                continue;
            }
            data.extend(self.read_raw(&child, depth + 1)?);
        }
        data.truncate(bp.psize as usize);
        Ok(verify(&data).then_some(data))
    }
}

/// Whether `data` matches the checksum of `bp`; `None` when the
/// algorithm is off or one this reader does not compute.
fn checksum_ok(bp: &BlockPtr, data: &[u8]) -> Option<bool> {
    let c = checksum::compute(bp.checksum, data)?;
    // Encrypted blocks keep a MAC in the last two words.
    Some(if bp.encrypted {
        c[..2] == bp.cksum[..2]
    } else {
        c == bp.cksum
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{fletcher4, seal_embedded, FLETCHER4};
    use crate::dev::SliceDev;
    use crate::label::VDEV_START;

    /// A block pointer: copies at (offset, gang), uncompressed, fletcher4.
    fn bp(copies: &[(u64, bool)], size: u64, cksum: [u64; 4], birth: u64) -> BlockPtr {
        let mut w = [0u64; 16];
        for (i, (off, gang)) in copies.iter().enumerate() {
            w[i * 2] = size >> 9;
            w[i * 2 + 1] = (off >> 9) | (*gang as u64) << 63;
        }
        let s = (size >> 9) - 1;
        w[6] = s
            | s << 16
            | (compress::OFF as u64) << 32
            | (FLETCHER4 as u64) << 40
            | 19 << 48
            | 1 << 63;
        w[9] = birth;
        w[10] = birth;
        w[12..16].copy_from_slice(&cksum);
        let mut b = [0u8; 128];
        for (i, x) in w.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
        }
        BlockPtr::parse(&b).unwrap()
    }

    fn raw(bp: &BlockPtr) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        let mut w = [0u64; 16];
        for (i, d) in bp.dva.iter().enumerate() {
            w[i * 2] = d.vdev << 32 | d.asize >> 9;
            w[i * 2 + 1] = d.offset >> 9 | (d.gang as u64) << 63;
        }
        let s = (bp.psize >> 9) - 1;
        w[6] = s
            | s << 16
            | (bp.compress as u64) << 32
            | (bp.checksum as u64) << 40
            | 19 << 48
            | 1 << 63;
        w[9] = bp.phys_birth;
        w[10] = bp.birth;
        w[12..16].copy_from_slice(&bp.cksum);
        for (i, x) in w.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
        }
        b
    }

    /// A one-disk pool in memory holding two 512-byte blocks, a gang header
    /// over them at 0x3000, and zeros elsewhere.
    fn gang_spa() -> (Spa, Vec<u8>, u64) {
        let birth = 9;
        let mut img = vec![0u8; VDEV_START as usize + 0x10000];
        let a = vec![b'A'; 512];
        let b = vec![b'B'; 512];
        let at = |off: usize| VDEV_START as usize + off;
        img[at(0x1000)..at(0x1000) + 512].copy_from_slice(&a);
        img[at(0x2000)..at(0x2000) + 512].copy_from_slice(&b);
        let mut hdr = vec![0u8; 512];
        hdr[..128].copy_from_slice(&raw(&bp(&[(0x1000, false)], 512, fletcher4(&a), birth)));
        hdr[128..256].copy_from_slice(&raw(&bp(&[(0x2000, false)], 512, fletcher4(&b), birth)));
        seal_embedded(&mut hdr, [0, 0x3000, birth, 0]);
        img[at(0x3000)..at(0x3000) + 512].copy_from_slice(&hdr);
        let spa = Spa {
            name: "mem".into(),
            tops: vec![Some(Vdev::Leaf {
                guid: 1,
                dev: Some(Arc::new(SliceDev::new("mem", img))),
            })],
            cache: Cache::new(1 << 20),
            unverified: AtomicU64::new(0),
        };
        (spa, [a, b].concat(), birth)
    }

    #[test]
    fn gang_blocks_assemble_their_children() {
        let (spa, want, birth) = gang_spa();
        let p = bp(&[(0x3000, true)], 1024, fletcher4(&want), birth);
        assert_eq!(&spa.read_bp(&p).unwrap()[..], &want[..]);
    }

    #[test]
    fn ditto_copies_are_tried_until_one_verifies() {
        let (spa, want, birth) = gang_spa();
        // First copy: zeros (wrong checksum); second: the gang block.
        let p = bp(
            &[(0x5000, false), (0x3000, true)],
            1024,
            fletcher4(&want),
            birth,
        );
        assert_eq!(&spa.read_bp(&p).unwrap()[..], &want[..]);
        // No copy verifies: an error naming the block and the copies tried
        // (a fresh pool: the cache knows the block by its first copy).
        let (spa, _, _) = gang_spa();
        let bad = bp(
            &[(0x5000, false), (0x3000, true)],
            1024,
            [1, 2, 3, 4],
            birth,
        );
        let e = spa.read_bp(&bad).unwrap_err();
        assert!(matches!(e, Error::Checksum { copies: 2, .. }), "{e}");
        assert!(e.to_string().contains("0x5000"), "{e}");
    }

    #[test]
    fn a_gang_header_pointing_at_itself_is_bounded() {
        let birth = 3;
        let mut img = vec![0u8; VDEV_START as usize + 0x4000];
        let mut hdr = vec![0u8; 512];
        hdr[..128].copy_from_slice(&raw(&bp(&[(0x1000, true)], 512, [0; 4], birth)));
        seal_embedded(&mut hdr, [0, 0x1000, birth, 0]);
        let at = VDEV_START as usize + 0x1000;
        img[at..at + 512].copy_from_slice(&hdr);
        let spa = Spa {
            name: "mem".into(),
            tops: vec![Some(Vdev::Leaf {
                guid: 1,
                dev: Some(Arc::new(SliceDev::new("mem", img))),
            })],
            cache: Cache::new(1 << 20),
            unverified: AtomicU64::new(0),
        };
        let e = spa
            .read_bp(&bp(&[(0x1000, true)], 512, [0; 4], birth))
            .unwrap_err();
        assert!(matches!(e, Error::Limit { .. }), "{e}");
    }
}
