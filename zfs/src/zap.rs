//! ZAP objects: micro ZAPs (one block of 64-byte entries) and fat ZAPs
//! (a header with a pointer table, embedded or external, to leaf blocks of
//! chunk chains). Names are bytes; values are arrays of big-endian
//! integers (micro ZAP values are one u64).

use std::collections::BTreeSet;

use crate::dnode::Dnode;
use crate::error::{Error, Result, ResultExt};
use crate::limits::{MAX_ZAP_BLOCKS, MAX_ZAP_CHAIN, MAX_ZAP_ENTRIES};
use crate::pool::Spa;

const ZBT_LEAF: u64 = 1 << 63;
const ZBT_HEADER: u64 = (1 << 63) | 1;
const ZBT_MICRO: u64 = (1 << 63) | 3;
const ZAP_MAGIC: u64 = 0x2F52AB2AB;
const LEAF_MAGIC: u32 = 0x2AB1EAF;
const CHUNK_ENTRY: u8 = 252;
const CHUNK_ARRAY: u8 = 251;
const CHAIN_END: u16 = 0xffff;

/// One ZAP entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    /// Integer width of the value (1, 2, 4, 8).
    pub intlen: u8,
    /// The value's integers, big-endian, `intlen` bytes each.
    pub value: Vec<u8>,
}

impl Entry {
    /// The first integer of the value.
    pub fn u64(&self) -> Option<u64> {
        self.ints().next()
    }
    /// The value's integers.
    pub fn ints(&self) -> impl Iterator<Item = u64> + '_ {
        let n = self.intlen.max(1) as usize;
        self.value
            .chunks_exact(n)
            .map(|c| c.iter().fold(0u64, |a, &b| a << 8 | b as u64))
    }
    /// A byte-array value without its trailing NUL (strings).
    pub fn string(&self) -> Vec<u8> {
        let mut v = self.value.clone();
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    }
}

fn le64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}
fn le16(b: &[u8], o: usize) -> u16 {
    b.get(o..o + 2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .unwrap_or(0)
}

/// Every entry of the ZAP object `dn`.
pub fn list(spa: &Spa, dn: &Dnode) -> Result<Vec<Entry>> {
    let b0 = dn
        .read_block(spa, 0)?
        .ok_or_else(|| Error::corrupt("ZAP", "block 0 is a hole"))?;
    match le64(&b0, 0) {
        ZBT_MICRO => micro(&b0),
        ZBT_HEADER => fat(spa, dn, &b0),
        t => Err(Error::corrupt("ZAP", format!("block type {t:#x}"))),
    }
}

/// The entry named `name`, if any: a fat ZAP without name normalization
/// is searched in the one leaf its hash points at; others are listed.
pub fn lookup(spa: &Spa, dn: &Dnode, name: &[u8]) -> Result<Option<Entry>> {
    let b0 = dn
        .read_block(spa, 0)?
        .ok_or_else(|| Error::corrupt("ZAP", "block 0 is a hole"))?;
    let entries = match le64(&b0, 0) {
        ZBT_MICRO => micro(&b0)?,
        ZBT_HEADER if le64(&b0, 88) == 0 => {
            let blk = leaf_for(spa, dn, &b0, name)?;
            let b = dn
                .read_block(spa, blk)?
                .ok_or_else(|| Error::corrupt("fat ZAP", format!("leaf {blk} is a hole")))?;
            let mut out = Vec::new();
            leaf(&b, &mut out).ctx(|| format!("fat ZAP leaf {blk}"))?;
            out
        }
        ZBT_HEADER => fat(spa, dn, &b0)?,
        t => return Err(Error::corrupt("ZAP", format!("block type {t:#x}"))),
    };
    Ok(entries.into_iter().find(|e| e.name == name))
}

/// The CRC-64 table ZAP hashes use.
fn crc64_table() -> &'static [u64; 256] {
    static T: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        const POLY: u64 = 0xC96C_5795_D787_0F42;
        let mut t = [0u64; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = (c >> 1) ^ (POLY & (c & 1).wrapping_neg());
            }
            *e = c;
        }
        t
    })
}

/// The hash of `name` in a fat ZAP with `salt` and `flags`.
pub fn hash(salt: u64, flags: u64, name: &[u8]) -> u64 {
    const HASH64: u64 = 1;
    let t = crc64_table();
    let mut h = salt;
    for &c in name {
        h = (h >> 8) ^ t[((h ^ c as u64) & 0xff) as usize];
    }
    let bits = if flags & HASH64 != 0 { 48 } else { 28 };
    h & !((1u64 << (64 - bits)) - 1)
}

/// The leaf block the pointer table gives for `name`'s hash.
fn leaf_for(spa: &Spa, dn: &Dnode, hdr: &[u8], name: &[u8]) -> Result<u64> {
    let (tbl_blk, tbl_numblks, shift) = (le64(hdr, 16), le64(hdr, 24), le64(hdr, 32));
    if shift > 63 {
        return Err(Error::corrupt("fat ZAP", format!("table shift {shift}")));
    }
    let h = hash(le64(hdr, 80), le64(hdr, 96), name);
    let idx = if shift == 0 { 0 } else { h >> (64 - shift) };
    let bs = hdr.len() as u64;
    let p = if tbl_numblks == 0 {
        let at = idx.saturating_mul(8).saturating_add(bs / 2);
        if at.saturating_add(8) > bs {
            return Err(Error::corrupt("fat ZAP", format!("table shift {shift}")));
        }
        le64(hdr, at as usize)
    } else {
        let per = bs / 8;
        if idx / per >= tbl_numblks {
            return Err(Error::corrupt("fat ZAP", "hash past the pointer table"));
        }
        let b = dn
            .read_block(spa, tbl_blk.saturating_add(idx / per))?
            .ok_or_else(|| Error::corrupt("fat ZAP", "pointer table hole"))?;
        le64(&b, ((idx % per) * 8) as usize)
    };
    if p == 0 || p > dn.maxblkid {
        return Err(Error::corrupt("fat ZAP", format!("pointer to block {p}")));
    }
    Ok(p)
}

/// The u64 value of `name`, if any.
pub fn lookup_u64(spa: &Spa, dn: &Dnode, name: &str) -> Result<Option<u64>> {
    Ok(lookup(spa, dn, name.as_bytes())?.and_then(|e| e.u64()))
}

/// The entries of one ZAP block on its own: a micro ZAP or a fat-ZAP leaf
/// (fuzzing, forensics of loose blocks).
pub fn parse_block(b: &[u8]) -> Result<Vec<Entry>> {
    match le64(b, 0) {
        ZBT_MICRO => micro(b),
        ZBT_LEAF => {
            let mut out = Vec::new();
            leaf(b, &mut out)?;
            Ok(out)
        }
        t => Err(Error::corrupt("ZAP block", format!("block type {t:#x}"))),
    }
}

fn micro(b: &[u8]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in b[64.min(b.len())..].chunks_exact(64) {
        let name = &e[14..64];
        if name[0] == 0 {
            continue;
        }
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        out.push(Entry {
            name: name[..end].to_vec(),
            intlen: 8,
            value: le64(e, 0).to_be_bytes().to_vec(),
        });
    }
    Ok(out)
}

fn fat(spa: &Spa, dn: &Dnode, hdr: &[u8]) -> Result<Vec<Entry>> {
    if le64(hdr, 8) != ZAP_MAGIC {
        return Err(Error::corrupt("fat ZAP", "bad magic"));
    }
    let bs = hdr.len();
    let (tbl_blk, tbl_numblks, tbl_shift) = (le64(hdr, 16), le64(hdr, 24), le64(hdr, 32));
    // Leaf block numbers from the pointer table, each once.
    let mut leaves = BTreeSet::new();
    let mut add = |p: u64| -> Result<()> {
        if p == 0 || p > MAX_ZAP_BLOCKS || p > dn.maxblkid {
            return Err(Error::corrupt(
                "fat ZAP",
                format!("pointer to block {p} (last {})", dn.maxblkid),
            ));
        }
        leaves.insert(p);
        Ok(())
    };
    if tbl_numblks == 0 {
        // Embedded in the second half of block 0.
        let half = bs / 2;
        // At most half a block of 8-byte pointers.
        if tbl_shift > 30 || half + (8usize << tbl_shift) > bs {
            return Err(Error::corrupt(
                "fat ZAP",
                format!("table shift {tbl_shift}"),
            ));
        }
        for i in 0..1usize << tbl_shift {
            add(le64(hdr, half + i * 8))?;
        }
    } else {
        if tbl_numblks > MAX_ZAP_BLOCKS {
            return Err(Error::limit("fat ZAP pointer table", MAX_ZAP_BLOCKS));
        }
        for b in tbl_blk..tbl_blk.saturating_add(tbl_numblks) {
            let t = dn
                .read_block(spa, b)?
                .ok_or_else(|| Error::corrupt("fat ZAP", "pointer table hole"))?;
            for w in t.chunks_exact(8) {
                add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))?;
            }
        }
    }
    let mut out = Vec::new();
    for l in leaves {
        let b = dn
            .read_block(spa, l)?
            .ok_or_else(|| Error::corrupt("fat ZAP", format!("leaf {l} is a hole")))?;
        leaf(&b, &mut out).ctx(|| format!("fat ZAP leaf {l}"))?;
        if out.len() > MAX_ZAP_ENTRIES {
            return Err(Error::limit("ZAP entries", MAX_ZAP_ENTRIES as u64));
        }
    }
    Ok(out)
}

/// The entries of one leaf block.
pub fn leaf(b: &[u8], out: &mut Vec<Entry>) -> Result<()> {
    let magic = b
        .get(24..28)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        .unwrap_or(0);
    if le64(b, 0) != ZBT_LEAF || magic != LEAF_MAGIC {
        return Err(Error::corrupt("leaf", "bad magic"));
    }
    let bs = b.len();
    if !bs.is_power_of_two() || bs < 512 {
        return Err(Error::corrupt("leaf", format!("size {bs}")));
    }
    let hash_entries = bs >> 5; // 1 << (bs shift - 5)
    let chunks_at = 48 + 2 * hash_entries;
    let nchunks = (bs - 2 * hash_entries) / 24 - 2;
    let chunk = |i: u16| -> Option<&[u8]> {
        let i = i as usize;
        (i < nchunks).then(|| &b[chunks_at + i * 24..chunks_at + i * 24 + 24])
    };
    // An array chained from `first`: `n` integers of `intlen` bytes.
    let array = |first: u16, bytes: usize| -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(bytes.min(1 << 16));
        let mut c = first;
        let mut steps = 0;
        while v.len() < bytes {
            let ch = chunk(c).ok_or_else(|| Error::corrupt("leaf", format!("chunk {c}")))?;
            if ch[0] != CHUNK_ARRAY {
                return Err(Error::corrupt("leaf", format!("chunk {c} is not an array")));
            }
            let take = (bytes - v.len()).min(21);
            v.extend_from_slice(&ch[1..1 + take]);
            c = u16::from_le_bytes([ch[22], ch[23]]);
            steps += 1;
            if steps > MAX_ZAP_CHAIN || (c == CHAIN_END && v.len() < bytes) {
                return Err(Error::corrupt("leaf", "array chain ends early or loops"));
            }
        }
        Ok(v)
    };
    for i in 0..nchunks as u16 {
        let Some(ch) = chunk(i) else { break };
        if ch[0] != CHUNK_ENTRY {
            continue;
        }
        let intlen = ch[1];
        let name_chunk = le16(ch, 4);
        let name_n = le16(ch, 6) as usize;
        let value_chunk = le16(ch, 8);
        let value_n = le16(ch, 10) as usize;
        if !matches!(intlen, 1 | 2 | 4 | 8) {
            return Err(Error::corrupt("leaf", format!("integer length {intlen}")));
        }
        let mut name = array(name_chunk, name_n)?;
        if name.last() == Some(&0) {
            name.pop();
        }
        let value = array(value_chunk, value_n * intlen as usize)?;
        out.push(Entry {
            name,
            intlen,
            value,
        });
    }
    Ok(())
}
