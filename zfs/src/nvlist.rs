//! XDR-encoded nvlists (vdev labels, the pool config, xattr=sa values):
//! depth, pair counts and lengths bounded by [`crate::limits`].

use crate::error::{Error, Result};
use crate::limits::{MAX_NVLIST, MAX_NVLIST_DEPTH, MAX_NVLIST_PAIRS};

/// A decoded nvlist value (the types ZFS writes; others are kept raw).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    U64(u64),
    I64(i64),
    Str(Vec<u8>),
    Bytes(Vec<u8>),
    U64s(Vec<u64>),
    Strs(Vec<Vec<u8>>),
    List(NvList),
    Lists(Vec<NvList>),
    /// A type this reader does not decode: its type number.
    Other(u32),
}

/// An nvlist: pairs in on-disk order (names as bytes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NvList {
    pub pairs: Vec<(Vec<u8>, Value)>,
}

impl NvList {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v)
    }
    /// The u64 (or boolean, or signed) value of `name`.
    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Value::U64(v) => Some(*v),
            Value::I64(v) => Some(*v as u64),
            Value::Bool(b) => Some(*b as u64),
            _ => None,
        }
    }
    /// The string value of `name` (lossy UTF-8).
    pub fn str(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
    /// The nested nvlist `name`.
    pub fn list(&self, name: &str) -> Option<&NvList> {
        match self.get(name)? {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The nvlist array `name`.
    pub fn lists(&self, name: &str) -> Option<&[NvList]> {
        match self.get(name)? {
            Value::Lists(l) => Some(l),
            _ => None,
        }
    }
}

/// Decodes a packed nvlist: the 4-byte header (encoding 1 = XDR), then the
/// XDR stream.
pub fn unpack(buf: &[u8]) -> Result<NvList> {
    let buf = &buf[..buf.len().min(MAX_NVLIST)];
    let hdr = buf
        .get(..4)
        .ok_or_else(|| Error::corrupt("nvlist", "shorter than its header"))?;
    if hdr[0] != 1 {
        return Err(Error::unsupported(
            "nvlist",
            format!("encoding {} (only XDR is read)", hdr[0]),
        ));
    }
    let mut r = Xdr { buf, pos: 4 };
    r.nvlist(0)
}

struct Xdr<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::corrupt("nvlist", reason)
}

impl Xdr<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad(format!("truncated at byte {} (wanted {n})", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let hi = self.u32()? as u64;
        Ok(hi << 32 | self.u32()? as u64)
    }
    /// Opaque bytes of length `n`, padded to 4.
    fn opaque(&mut self, n: usize) -> Result<Vec<u8>> {
        let v = self.take(n)?.to_vec();
        self.take((4 - n % 4) % 4)?;
        Ok(v)
    }
    fn string(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        self.opaque(n)
    }
    fn count(&self, n: u32) -> Result<usize> {
        let n = n as usize;
        if n > MAX_NVLIST_PAIRS || n > self.buf.len() {
            return Err(Error::limit("nvlist array", MAX_NVLIST_PAIRS as u64));
        }
        Ok(n)
    }

    fn nvlist(&mut self, depth: u32) -> Result<NvList> {
        if depth > MAX_NVLIST_DEPTH {
            return Err(Error::limit("nvlist nesting", MAX_NVLIST_DEPTH as u64));
        }
        let _version = self.u32()?;
        let _flags = self.u32()?;
        let mut pairs = Vec::new();
        loop {
            let start = self.pos;
            let encoded = self.u32()? as usize;
            let _decoded = self.u32()?;
            if encoded == 0 {
                return Ok(NvList { pairs });
            }
            if pairs.len() >= MAX_NVLIST_PAIRS {
                return Err(Error::limit("nvlist pairs", MAX_NVLIST_PAIRS as u64));
            }
            let end = start
                .checked_add(encoded)
                .filter(|&e| e <= self.buf.len() && encoded >= 8)
                .ok_or_else(|| bad(format!("pair at byte {start} of {encoded} bytes")))?;
            let name = self.string()?;
            let ty = self.u32()?;
            let n = self.u32()?;
            let v = self.value(ty, n, depth)?;
            // Nested lists are not counted in their pair's size.
            if !matches!(v, Value::List(_) | Value::Lists(_)) {
                if self.pos > end {
                    return Err(bad(format!("pair at byte {start} overruns its size")));
                }
                self.pos = end;
            }
            pairs.push((name, v));
        }
    }

    fn value(&mut self, ty: u32, n: u32, depth: u32) -> Result<Value> {
        Ok(match ty {
            1 => Value::Bool(true),
            // byte, int16, uint16, int32, uint32, boolean_value, int8, uint8
            2..=6 | 21..=23 => Value::U64(self.u32()? as u64),
            7 | 18 => Value::I64(self.u64()? as i64),
            8 => Value::U64(self.u64()?),
            9 => Value::Str(self.string()?),
            10 => {
                let n = self.count(n)?;
                Value::Bytes(self.opaque(n)?)
            }
            16 => {
                let n = self.count(n)?;
                Value::U64s((0..n).map(|_| self.u64()).collect::<Result<_>>()?)
            }
            17 => {
                let n = self.count(n)?;
                Value::Strs((0..n).map(|_| self.string()).collect::<Result<_>>()?)
            }
            19 => Value::List(self.nvlist(depth + 1)?),
            20 => {
                let n = self.count(n)?;
                Value::Lists(
                    (0..n)
                        .map(|_| self.nvlist(depth + 1))
                        .collect::<Result<_>>()?,
                )
            }
            t => Value::Other(t),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Packs pairs of (name, u64 or string or nested) as OpenZFS does.
    pub fn pack(pairs: &[(&str, Value)]) -> Vec<u8> {
        let mut out = vec![1, 1, 0, 0];
        pack_list(&mut out, pairs);
        out
    }

    fn pad(out: &mut Vec<u8>) {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    fn pack_list(out: &mut Vec<u8>, pairs: &[(&str, Value)]) {
        out.extend(0u32.to_be_bytes());
        out.extend(1u32.to_be_bytes());
        for (name, v) in pairs {
            let start = out.len();
            out.extend([0; 8]);
            out.extend((name.len() as u32).to_be_bytes());
            out.extend(name.as_bytes());
            pad(out);
            match v {
                Value::U64(x) => {
                    out.extend(8u32.to_be_bytes());
                    out.extend(1u32.to_be_bytes());
                    out.extend(x.to_be_bytes());
                }
                Value::Str(s) => {
                    out.extend(9u32.to_be_bytes());
                    out.extend(1u32.to_be_bytes());
                    out.extend((s.len() as u32).to_be_bytes());
                    out.extend(s);
                    pad(out);
                }
                Value::Bytes(s) => {
                    out.extend(10u32.to_be_bytes());
                    out.extend((s.len() as u32).to_be_bytes());
                    out.extend(s);
                    pad(out);
                }
                _ => unreachable!("not used by the tests"),
            }
            let size = (out.len() - start) as u32;
            out[start..start + 4].copy_from_slice(&size.to_be_bytes());
            out[start + 4..start + 8].copy_from_slice(&size.to_be_bytes());
        }
        out.extend([0; 8]);
    }

    #[test]
    fn round_trips_what_zfs_writes() {
        let b = pack(&[
            ("name", Value::Str(b"dmpool".to_vec())),
            ("txg", Value::U64(42)),
            ("user.x", Value::Bytes(b"hello".to_vec())),
        ]);
        let l = unpack(&b).unwrap();
        assert_eq!(l.str("name").as_deref(), Some("dmpool"));
        assert_eq!(l.u64("txg"), Some(42));
        assert_eq!(l.get("user.x"), Some(&Value::Bytes(b"hello".to_vec())));
    }

    #[test]
    fn truncation_and_lies_are_errors() {
        let b = pack(&[("name", Value::Str(b"dmpool".to_vec()))]);
        for n in 0..b.len() - 8 {
            assert!(unpack(&b[..n]).is_err(), "{n}");
        }
        let mut lie = b.clone();
        lie[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(unpack(&lie).is_err());
    }
}
