//! Block checksums: fletcher2, fletcher4 and sha256 verified; the others
//! are reported as not verified.

use sha2::{Digest, Sha256};

/// ZIO checksum algorithm numbers.
pub const OFF: u8 = 2;
pub const LABEL: u8 = 3;
pub const GANG_HEADER: u8 = 4;
pub const FLETCHER2: u8 = 6;
pub const FLETCHER4: u8 = 7;
pub const SHA256: u8 = 8;
pub const NOPARITY: u8 = 10;

/// A 256-bit checksum as four words.
pub type Cksum = [u64; 4];

/// The checksum of `data` by `alg`, or `None` when this reader cannot
/// compute it (off, sha512, skein, edonr, blake3).
pub fn compute(alg: u8, data: &[u8]) -> Option<Cksum> {
    match alg {
        FLETCHER2 => Some(fletcher2(data)),
        FLETCHER4 => Some(fletcher4(data)),
        SHA256 | LABEL | GANG_HEADER => Some(sha256(data)),
        _ => None,
    }
}

/// Fletcher-4 over little-endian 32-bit words.
pub fn fletcher4(data: &[u8]) -> Cksum {
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    for w in data.chunks_exact(4) {
        a = a.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64);
        b = b.wrapping_add(a);
        c = c.wrapping_add(b);
        d = d.wrapping_add(c);
    }
    [a, b, c, d]
}

/// Fletcher-2 over pairs of little-endian 64-bit words.
pub fn fletcher2(data: &[u8]) -> Cksum {
    let (mut a0, mut a1, mut b0, mut b1) = (0u64, 0u64, 0u64, 0u64);
    for w in data.chunks_exact(16) {
        let x = u64::from_le_bytes(w[..8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(w[8..].try_into().unwrap_or([0; 8]));
        a0 = a0.wrapping_add(x);
        a1 = a1.wrapping_add(y);
        b0 = b0.wrapping_add(a0);
        b1 = b1.wrapping_add(a1);
    }
    [a0, a1, b0, b1]
}

/// SHA-256 as four big-endian words.
pub fn sha256(data: &[u8]) -> Cksum {
    let h = Sha256::digest(data);
    let mut w = [0u64; 4];
    for (i, c) in h.chunks_exact(8).enumerate() {
        w[i] = u64::from_be_bytes(c.try_into().unwrap_or([0; 8]));
    }
    w
}

/// Verifies a block with an embedded checksum trailer (labels, uberblocks,
/// gang headers): the last 40 bytes are a magic word and the checksum,
/// computed with the trailer's checksum set to `verifier`.
pub fn verify_embedded(block: &[u8], verifier: Cksum) -> bool {
    const MAGIC: u64 = 0x0210_da7a_b10c_7a11;
    let Some(tail) = block.len().checked_sub(40) else {
        return false;
    };
    let word = |i: usize| {
        let o = tail + i * 8;
        u64::from_le_bytes(block[o..o + 8].try_into().unwrap_or([0; 8]))
    };
    if word(0) != MAGIC {
        return false;
    }
    let stored = [word(1), word(2), word(3), word(4)];
    let mut copy = block.to_vec();
    for (i, v) in verifier.iter().enumerate() {
        let o = tail + 8 + i * 8;
        copy[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    sha256(&copy) == stored
}

/// Writes the embedded checksum trailer of `block` (magic and the sha256
/// computed with `verifier` in place): builds test and fuzz inputs in
/// memory.
pub fn seal_embedded(block: &mut [u8], verifier: Cksum) {
    let Some(tail) = block.len().checked_sub(40) else {
        return;
    };
    block[tail..tail + 8].copy_from_slice(&0x0210_da7a_b10c_7a11u64.to_le_bytes());
    for (i, v) in verifier.iter().enumerate() {
        block[tail + 8 + i * 8..tail + 16 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    let sum = sha256(block);
    for (i, w) in sum.iter().enumerate() {
        block[tail + 8 + i * 8..tail + 16 + i * 8].copy_from_slice(&w.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher4_by_hand() {
        // Words 1, 2: a = 1, 3; b = 1, 4; c = 1, 5; d = 1, 6.
        let d = [1u8, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(fletcher4(&d), [3, 4, 5, 6]);
        assert_eq!(fletcher4(&[]), [0; 4]);
        let big = vec![0xffu8; 4096];
        let c = fletcher4(&big);
        assert_eq!(c[0], 1024 * 0xffff_ffff);
    }

    #[test]
    fn fletcher2_by_hand() {
        let mut d = 5u64.to_le_bytes().to_vec();
        d.extend(7u64.to_le_bytes());
        d.extend(1u64.to_le_bytes());
        d.extend(1u64.to_le_bytes());
        assert_eq!(fletcher2(&d), [6, 8, 11, 15]);
    }

    #[test]
    fn embedded_trailer_verifies_and_detects_change() {
        let mut b = vec![7u8; 1024];
        let verifier = [123, 0, 0, 0];
        seal_embedded(&mut b, verifier);
        assert!(verify_embedded(&b, verifier));
        assert!(!verify_embedded(&b, [124, 0, 0, 0]));
        b[3] ^= 1;
        assert!(!verify_embedded(&b, verifier));
    }
}
