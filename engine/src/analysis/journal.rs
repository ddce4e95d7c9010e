//! Names deleted inside containers' rw layers, recovered from the jbd2
//! journal of an ext4 host partition image.
//!
//! Since 2021 the kernel wipes a deleted file's name from its directory
//! block, but the journal often still holds the copies of that block it
//! logged while the file existed. For every rw layer's directory (found in
//! the image with The Sleuth Kit: `ifind -n`, `fls -r -D`, `istat`), every
//! copy of its blocks in the journal (the journal file read with `icat`,
//! parsed by [`logged_blocks`]) is read as a directory block
//! ([`dir_entries`], slack included); names the directory no longer holds
//! are reported, each attributed like any host path and with its inode for
//! `icat`. The image is only read (TSK opens it read-only).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::analysis::attribute::{Attribution, Attributor};
use crate::evidence::pathfmt;

const JBD2_MAGIC: u32 = 0xC03B_3998;
/// The journal's inode on ext3/ext4 (`s_journal_inum`'s usual value).
const JOURNAL_INODE: &str = "8";
/// Most bytes read from one TSK tool (the journal is at most 1 GiB).
const MAX_OUTPUT: usize = 1 << 30;
/// Most directories examined per rw layer.
const MAX_DIRS: usize = 100_000;

/// One name recovered from the journal.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Recovered {
    /// The inode the name pointed at (`icat -o OFFSET IMAGE INODE`).
    pub inode: u64,
    /// The journal block holding the old copy, and the directory block it is a copy of.
    pub journal_block: u64,
    pub fs_block: u64,
    pub attribution: Attribution,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JournalReport {
    #[serde(serialize_with = "pathfmt::serialize")]
    pub image: PathBuf,
    /// rw layer directories found in the image, and copies of their blocks in the journal.
    pub directories: usize,
    pub logged_copies: usize,
    pub recovered: Vec<Recovered>,
    /// Why less may have been found (layers not in the image, tools failing).
    pub notes: Vec<String>,
}

/// Where and how to read the partition image.
pub struct Partition<'a> {
    pub image: &'a Path,
    /// `-o`: the partition's start in sectors, for a disk image.
    pub offset: Option<u64>,
    /// Where the docker root lies inside the partition (`/var/lib/docker`
    /// on a host's root filesystem, `/` when the root is its own partition).
    pub docker_root: &'a Path,
}

impl Partition<'_> {
    fn tsk(&self, tool: &str, args: &[&OsStr]) -> Result<Vec<u8>, String> {
        let mut cmd = Command::new(tool);
        if let Some(o) = self.offset {
            cmd.arg("-o").arg(o.to_string());
        }
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {tool} (apt-get install sleuthkit): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} on {}: {}",
                self.image.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if out.stdout.len() > MAX_OUTPUT {
            return Err(format!("{tool}: more than {MAX_OUTPUT} bytes of output"));
        }
        Ok(out.stdout)
    }

    fn image(&self) -> &OsStr {
        self.image.as_os_str()
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Every filesystem block the journal `j` (the journal file's bytes) holds
/// a copy of: `(journal block, fs block, content)`, from every descriptor
/// block found (committed or not, old or current).
pub fn logged_blocks(j: &[u8]) -> Result<Vec<(u64, u64, Vec<u8>)>, String> {
    let bad = |why: &str| Err(format!("not a jbd2 journal: {why}"));
    if be32(j, 0) != Some(JBD2_MAGIC) {
        return bad("no magic in its superblock");
    }
    let kind = be32(j, 4).unwrap_or(0);
    let bs = be32(j, 12).unwrap_or(0) as usize;
    if !(3..=4).contains(&kind) || !(1024..=65536).contains(&bs) || !bs.is_power_of_two() {
        return bad("bad superblock type or block size");
    }
    let maxlen = be32(j, 16).unwrap_or(0) as usize;
    let first = (be32(j, 20).unwrap_or(1) as usize).max(1);
    let incompat = if kind == 4 {
        be32(j, 0x28).unwrap_or(0)
    } else {
        0
    };
    let (is64, v2, v3) = (
        incompat & 0x2 != 0,
        incompat & 0x8 != 0,
        incompat & 0x10 != 0,
    );
    let tag_size = if v3 {
        16
    } else if is64 {
        12
    } else {
        8
    };
    let tail = if v2 || v3 { 4 } else { 0 };
    let n = maxlen.min(j.len() / bs);
    if first >= n {
        return bad("its first log block lies beyond its end");
    }
    let block = |k: usize| &j[k * bs..(k + 1) * bs];
    let mut out = Vec::new();
    for i in first..n {
        let d = block(i);
        if be32(d, 0) != Some(JBD2_MAGIC) || be32(d, 4) != Some(1) {
            continue;
        }
        let (mut off, mut k) = (12, i);
        while off + tag_size <= bs - tail {
            let Some(lo) = be32(d, off) else { break };
            let (flags, hi) = if v3 {
                (be32(d, off + 4).unwrap_or(0), be32(d, off + 8).unwrap_or(0))
            } else {
                let hi = if is64 {
                    be32(d, off + 8).unwrap_or(0)
                } else {
                    0
                };
                (u32::from(be16(d, off + 6).unwrap_or(0)), hi)
            };
            off += tag_size;
            if flags & 0x2 == 0 {
                off += 16; // the UUID
            }
            k = if k + 1 >= n { first } else { k + 1 };
            if k == i {
                break;
            }
            let mut data = block(k).to_vec();
            if flags & 0x1 != 0 {
                data[..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
            }
            out.push((k as u64, (u64::from(hi) << 32) | u64::from(lo), data));
            if flags & 0x8 != 0 {
                break;
            }
        }
    }
    Ok(out)
}

/// The entries of an ext4 linear directory block, live ones and those left
/// in the slack of their neighbours: `(inode, name)`. Checksum tails,
/// empty and impossible entries are skipped; names holding `/` or NUL too.
pub fn dir_entries(b: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let le32 = |at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let le16 = |at: usize| b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    // An entry at `at` within `end`: (inode, name, rec_len).
    let entry = |at: usize, end: usize| -> Option<(u32, Vec<u8>, usize)> {
        let ino = le32(at)?;
        let rec = usize::from(le16(at + 4)?);
        let len = usize::from(*b.get(at + 6)?);
        if rec < 8 || rec % 4 != 0 || at + 8 + len > end || len == 0 || ino == 0 {
            return None;
        }
        let name = b.get(at + 8..at + 8 + len)?;
        if name.contains(&b'/') || name.contains(&0) {
            return None;
        }
        Some((ino, name.to_vec(), rec))
    };
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        let rec = usize::from(le16(off + 4).unwrap_or(0));
        if rec < 8 || rec % 4 != 0 || off + rec > b.len() {
            break;
        }
        let end = off + rec;
        let used = match entry(off, end) {
            Some((ino, name, _)) => {
                let used = (8 + name.len() + 3) & !3;
                out.push((ino, name));
                used
            }
            None => 8 + ((usize::from(*b.get(off + 6).unwrap_or(&0)) + 3) & !3),
        };
        let mut s = off + used;
        while s + 8 <= end {
            match entry(s, end) {
                Some((ino, name, _)) => {
                    s += (8 + name.len() + 3) & !3;
                    out.push((ino, name));
                }
                None => s += 4,
            }
        }
        off = end;
    }
    out
}

/// `inode` from `fls` lines `d/d 123:\tname` (`*` marks deleted ones).
fn fls_entries(out: &[u8]) -> Vec<(bool, u64, Vec<u8>)> {
    let mut v = Vec::new();
    for line in out.split(|&b| b == b'\n') {
        let Some(tab) = line.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let (head, name) = (&line[..tab], &line[tab + 1..]);
        let deleted = head.contains(&b'*');
        let Some(num) = head
            .split(|&b| b == b' ')
            .rev()
            .find(|w| !w.is_empty() && *w != b"*")
            .map(|w| w.strip_suffix(b":").unwrap_or(w))
        else {
            continue;
        };
        let digits: Vec<u8> = num
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        if let Some(ino) = std::str::from_utf8(&digits)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            v.push((deleted, ino, name.to_vec()));
        }
    }
    v
}

/// The blocks `istat` lists after `Direct Blocks:`.
fn istat_blocks(out: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(out);
    let Some((_, rest)) = text.split_once("Direct Blocks:") else {
        return Vec::new();
    };
    rest.lines()
        .skip(1)
        .take_while(|l| !l.contains(':'))
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Recovers the names deleted from every rw layer found in the partition.
pub fn recover(attributor: &mut Attributor<'_>, part: &Partition<'_>) -> JournalReport {
    let mut report = JournalReport {
        image: part.image.to_path_buf(),
        directories: 0,
        logged_copies: 0,
        recovered: Vec::new(),
        notes: Vec::new(),
    };
    // fs block → (directory inside the partition, names it holds now).
    let mut dirs: BTreeMap<u64, (PathBuf, BTreeSet<Vec<u8>>)> = BTreeMap::new();
    for rel in attributor.rw_layer_dirs() {
        let in_part = part.docker_root.join(&rel);
        let found = part.tsk(
            "ifind",
            &[OsStr::new("-n"), in_part.as_os_str(), part.image()],
        );
        let ino = match found.map(|o| String::from_utf8_lossy(&o).trim().to_string()) {
            Ok(s) if s.parse::<u64>().is_ok() => s,
            Ok(_) | Err(_) => {
                report.notes.push(format!(
                    "{}: not in the image (see --partition-root)",
                    pathfmt::escape(&in_part)
                ));
                continue;
            }
        };
        let mut list = vec![(ino.clone(), in_part.clone())];
        match part.tsk(
            "fls",
            &[
                OsStr::new("-r"),
                OsStr::new("-D"),
                OsStr::new("-p"),
                part.image(),
                OsStr::new(&ino),
            ],
        ) {
            Ok(out) => {
                for (deleted, sub, name) in fls_entries(&out).into_iter().take(MAX_DIRS) {
                    if !deleted {
                        list.push((sub.to_string(), in_part.join(OsStr::from_bytes(&name))));
                    }
                }
            }
            Err(e) => report.notes.push(e),
        }
        for (ino, path) in list {
            let now: BTreeSet<Vec<u8>> = match part.tsk("fls", &[part.image(), OsStr::new(&ino)]) {
                Ok(out) => fls_entries(&out)
                    .into_iter()
                    .filter(|(deleted, _, _)| !deleted)
                    .map(|(_, _, n)| n)
                    .collect(),
                Err(e) => {
                    report.notes.push(e);
                    continue;
                }
            };
            match part.tsk("istat", &[part.image(), OsStr::new(&ino)]) {
                Ok(out) => {
                    report.directories += 1;
                    for b in istat_blocks(&out) {
                        dirs.insert(b, (path.clone(), now.clone()));
                    }
                }
                Err(e) => report.notes.push(e),
            }
        }
    }
    if dirs.is_empty() {
        report
            .notes
            .push("no rw layer directory of this root was found in the image".into());
        return report;
    }
    let journal = match part.tsk("icat", &[part.image(), OsStr::new(JOURNAL_INODE)]) {
        Ok(j) => j,
        Err(e) => {
            report.notes.push(e);
            return report;
        }
    };
    let logged = match logged_blocks(&journal) {
        Ok(l) => l,
        Err(e) => {
            report.notes.push(format!("inode {JOURNAL_INODE}: {e}"));
            return report;
        }
    };
    let mut seen: BTreeSet<(PathBuf, Vec<u8>, u32)> = BTreeSet::new();
    for (jblock, fs_block, data) in &logged {
        let Some((dir, now)) = dirs.get(fs_block) else {
            continue;
        };
        report.logged_copies += 1;
        for (ino, name) in dir_entries(data) {
            if name == b"." || name == b".." || now.contains(&name) {
                continue;
            }
            if !seen.insert((dir.clone(), name.clone(), ino)) {
                continue;
            }
            let host = Path::new("/").join(dir).join(OsStr::from_bytes(&name));
            report.recovered.push(Recovered {
                inode: u64::from(ino),
                journal_block: *jblock,
                fs_block: *fs_block,
                attribution: attributor.attribute(&host),
            });
        }
    }
    if report.recovered.is_empty() {
        report.notes.push(format!(
            "the journal holds {} copies of the rw layers' directory blocks, and no name they lack now: \
             the journal wrapped or was checkpointed since, or nothing was deleted",
            report.logged_copies
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirent(ino: u32, rec: u16, name: &[u8]) -> Vec<u8> {
        let mut v = ino.to_le_bytes().to_vec();
        v.extend(rec.to_le_bytes());
        v.push(name.len() as u8);
        v.push(1);
        v.extend(name);
        v.resize(usize::from(rec), 0);
        v
    }

    #[test]
    fn live_and_slack_entries() {
        // "gone" deleted: its space merged into "keep"'s rec_len.
        let mut b = dirent(2, 12, b".");
        b.extend(dirent(2, 12, b".."));
        let mut keep = dirent(16, 12, b"keep");
        keep[4..6].copy_from_slice(&32u16.to_le_bytes());
        keep.extend(dirent(17, 20, b"gone"));
        b.extend(keep);
        let rest = 4096 - b.len();
        b.extend(dirent(0, rest as u16, b""));
        let names: Vec<(u32, Vec<u8>)> = dir_entries(&b);
        assert!(names.contains(&(16, b"keep".to_vec())));
        assert!(names.contains(&(17, b"gone".to_vec())));
        // Garbage never panics.
        assert!(dir_entries(&[0xff; 100]).len() < 100);
        assert!(dir_entries(&[]).is_empty());
    }

    #[test]
    fn journals_refused_and_parsed() {
        assert!(logged_blocks(&[0; 4096]).is_err());
        let bs = 1024usize;
        let mut j = vec![0u8; bs * 4];
        j[0..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        j[4..8].copy_from_slice(&4u32.to_be_bytes());
        j[12..16].copy_from_slice(&(bs as u32).to_be_bytes());
        j[16..20].copy_from_slice(&4u32.to_be_bytes());
        j[20..24].copy_from_slice(&1u32.to_be_bytes());
        // Descriptor at 1: one tag, block 777, last, same UUID.
        let d = bs;
        j[d..d + 4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        j[d + 4..d + 8].copy_from_slice(&1u32.to_be_bytes());
        j[d + 12..d + 16].copy_from_slice(&777u32.to_be_bytes());
        j[d + 18..d + 20].copy_from_slice(&0xau16.to_be_bytes());
        j[2 * bs] = 42;
        let l = logged_blocks(&j).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].0, l[0].1, l[0].2[0]), (2, 777, 42));
    }

    #[test]
    fn tsk_output() {
        let f = fls_entries(b"r/r 16:\tkeep\nr/r * 17:\tgone\nd/d 18(realloc):\tsub\n");
        assert_eq!(f[0], (false, 16, b"keep".to_vec()));
        assert_eq!(f[1], (true, 17, b"gone".to_vec()));
        assert_eq!(f[2].1, 18);
        assert_eq!(
            istat_blocks(b"size: 4096\n\nDirect Blocks:\n4388 4389 \n\nIndirect Blocks:\n1\n"),
            [4388, 4389]
        );
    }
}
