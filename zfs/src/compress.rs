//! Decompression of a block's physical bytes to its logical size: lz4,
//! lzjb, gzip, zle, zstd (OpenZFS's header and magicless frame), empty,
//! off. Output is always exactly the logical size; input is never trusted.

use std::io::Read;

use crate::error::{Error, Result};

/// ZIO compression algorithm numbers.
pub const OFF: u8 = 2;
pub const LZJB: u8 = 3;
pub const EMPTY: u8 = 4;
pub const GZIP_1: u8 = 5;
pub const GZIP_9: u8 = 13;
pub const ZLE: u8 = 14;
pub const LZ4: u8 = 15;
pub const ZSTD: u8 = 16;

/// The name of a compression property value (the algorithm in the low 7
/// bits, a zstd level above), as `zfs get compression` shows it.
pub fn property_name(v: u64) -> String {
    let alg = (v & 0x7f) as u8;
    let level = v >> 7;
    match alg {
        0 => "inherit".into(),
        1 => "on".into(),
        2 => "off".into(),
        3 => "lzjb".into(),
        4 => "empty".into(),
        10 => "gzip".into(),
        5..=13 => format!("gzip-{}", alg - 4),
        14 => "zle".into(),
        15 => "lz4".into(),
        16 => match level {
            0 | 255 => "zstd".into(),
            1..=19 => format!("zstd-{level}"),
            // OpenZFS's fast levels: 103..=112 are 1..=10, then tens to
            // 100, then 500 and 1000; "zstd-fast" is fast-1.
            103 => "zstd-fast".into(),
            104..=112 => format!("zstd-fast-{}", level - 102),
            113..=121 => format!("zstd-fast-{}", (level - 111) * 10),
            122 => "zstd-fast-500".into(),
            123 => "zstd-fast-1000".into(),
            _ => format!("zstd-level-{level}"),
        },
        a => format!("compression-{a}"),
    }
}

fn bad(alg: &str, reason: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("{alg} block"), reason.to_string())
}

/// Decompresses `src` (a block's physical bytes) with algorithm `alg` into
/// exactly `lsize` bytes.
pub fn decompress(alg: u8, src: &[u8], lsize: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; lsize];
    match alg {
        0..=2 => {
            let n = src.len().min(lsize);
            out[..n].copy_from_slice(&src[..n]);
        }
        EMPTY => {}
        LZJB => lzjb(src, &mut out)?,
        GZIP_1..=GZIP_9 => {
            let mut d = flate2::read::ZlibDecoder::new(src);
            let mut got = 0;
            while got < lsize {
                match d.read(&mut out[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => return Err(bad("gzip", e)),
                }
            }
            if got != lsize {
                return Err(bad("gzip", format!("{got} of {lsize} bytes")));
            }
        }
        ZLE => zle(src, &mut out)?,
        LZ4 => {
            let n = src
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| bad("lz4", "no header"))?;
            let body = src
                .get(4..4usize.saturating_add(n))
                .ok_or_else(|| bad("lz4", format!("length {n} past the block")))?;
            lz4_flex::block::decompress_into(body, &mut out).map_err(|e| bad("lz4", e))?;
        }
        ZSTD => zstd(src, &mut out)?,
        a => {
            return Err(Error::unsupported(
                "block",
                format!("compression algorithm {a}"),
            ))
        }
    }
    Ok(out)
}

/// lzjb: a copy map byte before each 8 items; an item is a literal byte or
/// a 2-byte (6-bit length - 3, 10-bit offset) back reference.
fn lzjb(src: &[u8], out: &mut [u8]) -> Result<()> {
    let (mut s, mut d) = (0usize, 0usize);
    let mut copymap = 0u8;
    let mut mask = 0x80u32;
    while d < out.len() {
        mask <<= 1;
        if mask == 0x100 {
            mask = 1;
            copymap = *src.get(s).ok_or_else(|| bad("lzjb", "truncated"))?;
            s += 1;
        }
        if copymap as u32 & mask != 0 {
            let b = src
                .get(s..s + 2)
                .ok_or_else(|| bad("lzjb", "truncated back reference"))?;
            let len = (b[0] >> 2) as usize + 3;
            let off = ((b[0] as usize) << 8 | b[1] as usize) & 0x3ff;
            s += 2;
            if off == 0 || off > d {
                return Err(bad("lzjb", format!("back reference {off} at {d}")));
            }
            for _ in 0..len {
                if d >= out.len() {
                    break;
                }
                out[d] = out[d - off];
                d += 1;
            }
        } else {
            out[d] = *src.get(s).ok_or_else(|| bad("lzjb", "truncated literal"))?;
            s += 1;
            d += 1;
        }
    }
    Ok(())
}

/// zle (n = 64): a control byte c < 64 is followed by c + 1 literals; c >= 64
/// stands for c - 63 zeros.
fn zle(src: &[u8], out: &mut [u8]) -> Result<()> {
    const N: usize = 64;
    let (mut s, mut d) = (0usize, 0usize);
    while d < out.len() {
        let c = *src
            .get(s)
            .ok_or_else(|| bad("zle", "truncated control byte"))? as usize;
        s += 1;
        let len = c + 1;
        if len <= N {
            let lit = src
                .get(s..s + len)
                .ok_or_else(|| bad("zle", "truncated literals"))?;
            let dst = out
                .get_mut(d..d + len)
                .ok_or_else(|| bad("zle", "literals past the logical size"))?;
            dst.copy_from_slice(lit);
            s += len;
            d += len;
        } else {
            let z = len - N;
            if d + z > out.len() {
                return Err(bad("zle", "zeros past the logical size"));
            }
            d += z; // already zero
        }
    }
    Ok(())
}

/// zstd as OpenZFS writes it: a big-endian compressed length and a
/// version/level word, then a frame without its magic number.
fn zstd(src: &[u8], out: &mut [u8]) -> Result<()> {
    let n = src
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("zstd", "no header"))?;
    let body = src
        .get(8..8usize.saturating_add(n))
        .ok_or_else(|| bad("zstd", format!("length {n} past the block")))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    frame.extend_from_slice(body);
    let mut dec = ruzstd::decoding::FrameDecoder::new();
    let got = dec.decode_all(&frame, out).map_err(|e| bad("zstd", e))?;
    if got != out.len() {
        return Err(bad("zstd", format!("{got} of {} bytes", out.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zle_literals_below_64_zeros_above() {
        // 3 literals, then 70 - 63 = 7 zeros, then 1 literal.
        let src = [2, b'a', b'b', b'c', 70, 0, b'z'];
        let out = decompress(ZLE, &src, 11).unwrap();
        assert_eq!(out, b"abc\0\0\0\0\0\0\0z");
        // 63 is a run of 64 literals, not zeros.
        let mut src = vec![63];
        src.extend([7u8; 64]);
        assert_eq!(decompress(ZLE, &src, 64).unwrap(), vec![7u8; 64]);
        assert!(decompress(ZLE, &[5, 1], 6).is_err(), "truncated");
        assert!(decompress(ZLE, &[127], 10).is_err(), "zeros past the end");
    }

    #[test]
    fn lzjb_literals_and_back_references() {
        // Copy map 0b0000_1000: three literals, then a reference of length
        // 3 + 1 = 4 at offset 3 ("abcabca").
        let src = [0x08, b'a', b'b', b'c', 1 << 2, 3];
        let out = decompress(LZJB, &src, 7).unwrap();
        assert_eq!(out, b"abcabca");
        // A reference before the start is an error, not a panic.
        assert!(decompress(LZJB, &[0x01, 0, 9], 4).is_err());
    }

    #[test]
    fn lz4_with_zfs_length_header() {
        let data = b"hello hello hello hello hello!!".repeat(4);
        let c = lz4_flex::block::compress(&data);
        let mut src = (c.len() as u32).to_be_bytes().to_vec();
        src.extend(&c);
        src.extend([0; 13]); // padding to the sector
        assert_eq!(decompress(LZ4, &src, data.len()).unwrap(), data);
        let mut lie = src.clone();
        lie[..4].copy_from_slice(&9999u32.to_be_bytes());
        assert!(decompress(LZ4, &lie, data.len()).is_err());
    }

    #[test]
    fn zstd_with_zfs_header_and_no_magic() {
        let data = b"zstd in zfs: a header, then a frame without its magic. ".repeat(20);
        let frame = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(frame[..4], 0xFD2F_B528u32.to_le_bytes());
        let body = &frame[4..];
        let mut src = (body.len() as u32).to_be_bytes().to_vec();
        src.extend(3u32.to_be_bytes()); // version and level
        src.extend(body);
        src.extend([0; 9]); // padding to the sector
        assert_eq!(decompress(ZSTD, &src, data.len()).unwrap(), data);
        // A length past the block, or a damaged frame: errors.
        let mut lie = src.clone();
        lie[..4].copy_from_slice(&(src.len() as u32).to_be_bytes());
        assert!(decompress(ZSTD, &lie, data.len()).is_err());
        let mut bad = src.clone();
        bad[8] ^= 0xff;
        assert!(decompress(ZSTD, &bad, data.len()).is_err());
    }

    #[test]
    fn gzip_is_a_zlib_stream() {
        use std::io::Write;
        let data = b"gzip-6 in zfs is zlib's compress2".repeat(10);
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).unwrap();
        let mut src = e.finish().unwrap();
        src.extend([0; 7]);
        assert_eq!(decompress(GZIP_1 + 5, &src, data.len()).unwrap(), data);
        assert!(decompress(GZIP_1 + 5, &src[..10], data.len()).is_err());
    }

    #[test]
    fn property_names_match_zfs_get() {
        assert_eq!(property_name(15), "lz4");
        assert_eq!(property_name(10), "gzip");
        assert_eq!(property_name(7), "gzip-3");
        assert_eq!(property_name(16), "zstd");
        assert_eq!(property_name(16 | 19 << 7), "zstd-19");
        assert_eq!(property_name(1), "on");
        assert_eq!(property_name(16 | 103 << 7), "zstd-fast");
        assert_eq!(property_name(16 | 112 << 7), "zstd-fast-10");
        assert_eq!(property_name(16 | 113 << 7), "zstd-fast-20");
        assert_eq!(property_name(16 | 121 << 7), "zstd-fast-100");
    }
}
