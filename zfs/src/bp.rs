//! Block pointers: their 128 bytes decoded (DVAs, sizes, algorithms,
//! births, checksum), holes, and the payload of embedded ones.

use crate::error::{Error, Result};

/// The size of a block pointer on disk.
pub const SIZE: usize = 128;

/// A data virtual address: where one copy of a block lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dva {
    /// Top-level vdev id.
    pub vdev: u64,
    /// Allocated size in bytes.
    pub asize: u64,
    /// Byte offset in the vdev's allocatable space (after its 4 MiB of
    /// front labels and boot area).
    pub offset: u64,
    /// Whether it points at a gang header rather than the data.
    pub gang: bool,
}

impl Dva {
    fn parse(w0: u64, w1: u64) -> Dva {
        Dva {
            vdev: w0 >> 32,
            asize: (w0 & 0xff_ffff) << 9,
            offset: (w1 & !(1 << 63)) << 9,
            gang: w1 >> 63 != 0,
        }
    }
    /// Whether the DVA is empty (no copy there).
    pub fn is_empty(&self) -> bool {
        self.vdev == 0 && self.asize == 0 && self.offset == 0 && !self.gang
    }
}

/// A decoded block pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPtr {
    pub dva: [Dva; 3],
    /// Logical (decompressed) size.
    pub lsize: u64,
    /// Physical (on-disk) size.
    pub psize: u64,
    pub compress: u8,
    pub checksum: u8,
    /// DMU object type of the block.
    pub typ: u8,
    pub level: u8,
    pub embedded: bool,
    /// Embedded payload type (0 = data) when `embedded`.
    pub etype: u8,
    /// Encrypted or authenticated (the third DVA holds the salt and IV).
    pub encrypted: bool,
    pub dedup: bool,
    pub little_endian: bool,
    pub birth: u64,
    pub phys_birth: u64,
    pub fill: u64,
    pub cksum: [u64; 4],
    /// The raw words, for the embedded payload.
    words: [u64; 16],
}

fn bits(v: u64, shift: u32, len: u32) -> u64 {
    (v >> shift) & ((1u64 << len) - 1)
}

impl BlockPtr {
    /// Decodes 128 bytes.
    pub fn parse(b: &[u8]) -> Result<BlockPtr> {
        let b = b
            .get(..SIZE)
            .ok_or_else(|| Error::corrupt("block pointer", "shorter than 128 bytes"))?;
        let mut words = [0u64; 16];
        for (i, w) in b.chunks_exact(8).enumerate() {
            words[i] = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        }
        let prop = words[6];
        let embedded = bits(prop, 39, 1) != 0;
        let (lsize, psize) = if embedded {
            (bits(prop, 0, 25) + 1, bits(prop, 25, 7) + 1)
        } else {
            ((bits(prop, 0, 16) + 1) << 9, (bits(prop, 16, 16) + 1) << 9)
        };
        Ok(BlockPtr {
            dva: [
                Dva::parse(words[0], words[1]),
                Dva::parse(words[2], words[3]),
                Dva::parse(words[4], words[5]),
            ],
            lsize,
            psize,
            compress: bits(prop, 32, 7) as u8,
            checksum: if embedded { 0 } else { bits(prop, 40, 8) as u8 },
            etype: if embedded { bits(prop, 40, 8) as u8 } else { 0 },
            typ: bits(prop, 48, 8) as u8,
            level: bits(prop, 56, 5) as u8,
            embedded,
            encrypted: bits(prop, 61, 1) != 0,
            dedup: bits(prop, 62, 1) != 0,
            little_endian: bits(prop, 63, 1) != 0,
            phys_birth: if embedded { 0 } else { words[9] },
            birth: words[10],
            fill: if embedded { 0 } else { words[11] },
            cksum: [words[12], words[13], words[14], words[15]],
            words,
        })
    }

    /// A hole: no data, reads as zeros (of any level).
    pub fn is_hole(&self) -> bool {
        !self.embedded && self.dva[0].is_empty()
    }

    /// The payload of an embedded block pointer: words 0–5, 7–9 and
    /// 11–15 (word 6 holds its properties, word 10 its birth txg), cut to
    /// the physical size.
    pub fn embedded_payload(&self) -> Result<Vec<u8>> {
        if self.etype != 0 {
            return Err(Error::unsupported(
                "embedded block pointer",
                format!("payload type {}", self.etype),
            ));
        }
        let mut p = Vec::with_capacity(112);
        for (i, w) in self.words.iter().enumerate() {
            if i != 6 && i != 10 {
                p.extend_from_slice(&w.to_le_bytes());
            }
        }
        let n = self.psize as usize;
        if n > p.len() {
            return Err(Error::corrupt(
                "embedded block pointer",
                format!("payload of {n} bytes (at most 112)"),
            ));
        }
        p.truncate(n);
        Ok(p)
    }

    /// The DVAs that hold copies (an encrypted block's third is its IV).
    pub fn copies(&self) -> impl Iterator<Item = &Dva> {
        let n = if self.encrypted { 2 } else { 3 };
        self.dva[..n].iter().filter(|d| !d.is_empty())
    }

    /// "L<level> <type> at <vdev>:<offset>", for errors.
    pub fn describe(&self) -> String {
        let d = self.dva[0];
        format!(
            "block L{} type {} at {}:{:#x} ({} bytes, birth {})",
            self.level, self.typ, d.vdev, d.offset, self.psize, self.birth
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An embedded block pointer of `payload` (lsize as given).
    pub fn embedded(payload: &[u8], lsize: u64, compress: u8) -> [u8; 128] {
        let mut b = [0u8; 128];
        let mut words = [0u64; 16];
        let mut it = payload.chunks(8);
        for (i, w) in words.iter_mut().enumerate() {
            if i == 6 || i == 10 {
                continue;
            }
            if let Some(c) = it.next() {
                let mut x = [0u8; 8];
                x[..c.len()].copy_from_slice(c);
                *w = u64::from_le_bytes(x);
            }
        }
        words[6] = (lsize - 1)
            | ((payload.len() as u64 - 1) << 25)
            | (compress as u64) << 32
            | 1 << 39
            | 19 << 48
            | 1 << 63;
        words[10] = 77;
        for (i, w) in words.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    #[test]
    fn embedded_payload_skips_prop_and_birth_words() {
        let payload: Vec<u8> = (0..100u8).collect();
        let bp = BlockPtr::parse(&embedded(&payload, 100, 2)).unwrap();
        assert!(bp.embedded && !bp.is_hole());
        assert_eq!(bp.birth, 77);
        assert_eq!(bp.psize, 100);
        assert_eq!(bp.embedded_payload().unwrap(), payload);
    }

    #[test]
    fn sizes_and_holes() {
        let mut b = [0u8; 128];
        let prop: u64 = 255 | 7 << 16 | 15 << 32 | 7 << 40 | 19 << 48 | 1 << 63;
        b[48..56].copy_from_slice(&prop.to_le_bytes());
        let bp = BlockPtr::parse(&b).unwrap();
        assert!(bp.is_hole());
        assert_eq!(
            (bp.lsize, bp.psize, bp.compress, bp.checksum),
            (131072, 4096, 15, 7)
        );
        b[0] = 8; // asize 8 sectors
        b[8] = 0x10;
        let bp = BlockPtr::parse(&b).unwrap();
        assert!(!bp.is_hole());
        assert_eq!(bp.dva[0].asize, 4096);
        assert_eq!(bp.dva[0].offset, 0x10 << 9);
    }
}
