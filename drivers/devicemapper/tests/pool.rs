//! The thin-pool reader against thin-provisioning-tools: metadata written
//! by `thin_restore` from generated XML reads back as `thin_dump` shows it,
//! and damaged metadata gives clear errors, never a panic or a hang.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use docker_mount_driver_devicemapper::crc32c::dm_checksum;
use docker_mount_driver_devicemapper::thin::{self, Options, Pool, BLOCK_SIZE};

/// `thin_restore` on PATH (or in /usr/sbin), unless it is missing here.
fn tool(name: &str) -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn require_tools() -> Option<(PathBuf, PathBuf)> {
    match (tool("thin_restore"), tool("thin_dump")) {
        (Some(r), Some(d)) => Some((r, d)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "thin-provisioning-tools are missing, and CI=true forbids skipping"
            );
            eprintln!("skipping: thin-provisioning-tools are missing");
            None
        }
    }
}

/// A deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Device id → virtual block → (data block, time).
type Mappings = BTreeMap<u64, BTreeMap<u64, (u64, u32)>>;

const NR_DATA_BLOCKS: u64 = 1 << 20;

/// Generated XML for `devices` devices of up to `max_blocks` mappings each.
fn generate(seed: u64, devices: u64, max_blocks: u64) -> (String, Mappings) {
    let mut rng = Rng(seed | 1);
    let mut want = Mappings::new();
    let mut xml = format!(
        "<superblock uuid=\"\" time=\"5\" transaction=\"9\" version=\"2\" data_block_size=\"128\" nr_data_blocks=\"{NR_DATA_BLOCKS}\">\n"
    );
    for i in 0..devices {
        let dev = i * 3 + 1;
        let n = rng.below(max_blocks + 1);
        let mut m = BTreeMap::new();
        let mut virt = 0;
        for _ in 0..n {
            virt += 1 + rng.below(4);
            // Runs of consecutive data blocks, sometimes.
            let data = match m.values().last() {
                Some(&(d, _)) if rng.below(2) == 0 => (d + 1) % NR_DATA_BLOCKS,
                _ => rng.below(NR_DATA_BLOCKS),
            };
            m.insert(virt, (data, (rng.below(3)) as u32));
        }
        let _ = writeln!(
            xml,
            "  <device dev_id=\"{dev}\" mapped_blocks=\"{}\" transaction=\"{i}\" creation_time=\"{}\" snap_time=\"{}\">",
            m.len(),
            i % 5,
            i % 7
        );
        for (v, (d, t)) in &m {
            let _ = writeln!(
                xml,
                "    <single_mapping origin_block=\"{v}\" data_block=\"{d}\" time=\"{t}\"/>"
            );
        }
        xml.push_str("  </device>\n");
        want.insert(dev, m);
    }
    xml.push_str("</superblock>\n");
    (xml, want)
}

fn restore(dir: &Path, xml: &str, size: u64) -> PathBuf {
    let (restore, _) = require_tools().unwrap();
    let x = dir.join("in.xml");
    std::fs::write(&x, xml).unwrap();
    let meta = dir.join("metadata");
    File::create(&meta).unwrap().set_len(size).unwrap();
    let out = Command::new(restore)
        .arg("-i")
        .arg(&x)
        .arg("-o")
        .arg(&meta)
        .output()
        .unwrap();
    assert!(out.status.success(), "thin_restore: {out:?}");
    meta
}

fn open(meta: &Path, opts: Options) -> thin::Result<Pool> {
    Pool::open(File::open(meta).unwrap(), opts)
}

fn read_all(pool: &Pool) -> thin::Result<Mappings> {
    let mut got = Mappings::new();
    for (dev, root) in pool.mapping_roots()? {
        let mut m = BTreeMap::new();
        pool.for_each_mapping(dev, root, &mut |v, d, t| {
            m.insert(v, (d, t));
            Ok(())
        })?;
        got.insert(dev, m);
    }
    Ok(got)
}

/// Parses thin_dump's XML: device → virtual → (data, time).
fn parse_dump(xml: &str) -> Mappings {
    fn attr(line: &str, name: &str) -> u64 {
        let pat = format!(" {name}=\"");
        let i = line
            .find(&pat)
            .unwrap_or_else(|| panic!("{name} in {line}"))
            + pat.len();
        let j = line[i..].find('"').unwrap() + i;
        line[i..j].parse().unwrap()
    }
    let mut out = Mappings::new();
    let mut dev = None;
    for line in xml.lines().map(str::trim) {
        if line.starts_with("<device ") {
            let d = attr(line, "dev_id");
            out.insert(d, BTreeMap::new());
            dev = Some(d);
        } else if line.starts_with("<single_mapping ") {
            let m = out.get_mut(&dev.unwrap()).unwrap();
            m.insert(
                attr(line, "origin_block"),
                (attr(line, "data_block"), attr(line, "time") as u32),
            );
        } else if line.starts_with("<range_mapping ") {
            let m = out.get_mut(&dev.unwrap()).unwrap();
            let (o, d, n) = (
                attr(line, "origin_begin"),
                attr(line, "data_begin"),
                attr(line, "length"),
            );
            for k in 0..n {
                m.insert(o + k, (d + k, attr(line, "time") as u32));
            }
        }
    }
    out
}

#[test]
fn reads_what_thin_restore_wrote_as_thin_dump_shows_it() {
    let Some((_, dump)) = require_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (xml, want) = generate(42, 40, 3000);
    let meta = restore(dir.path(), &xml, 32 << 20);
    let pool = open(&meta, Options::default()).unwrap();
    let sb = pool.superblock();
    assert_eq!(sb.transaction_id, 9);
    assert_eq!(sb.time, 5);
    assert_eq!(sb.data_block_size, 128);
    assert_eq!(sb.data_space_map.nr_blocks, NR_DATA_BLOCKS);
    let got = read_all(&pool).unwrap();
    assert_eq!(got, want);
    let devices = pool.devices().unwrap();
    assert_eq!(devices.len(), 40);
    for (i, d) in devices.iter().enumerate() {
        assert_eq!(d.dev_id, i as u64 * 3 + 1);
        assert_eq!(d.mapped_blocks, want[&d.dev_id].len() as u64);
        assert_eq!(d.transaction_id, i as u64);
        assert_eq!(d.creation_time, (i % 5) as u32);
        assert_eq!(d.snapshotted_time, (i % 7) as u32);
    }
    // The second oracle: thin_dump of the same file.
    let out = Command::new(dump).arg(&meta).output().unwrap();
    assert!(out.status.success());
    assert_eq!(parse_dump(&String::from_utf8_lossy(&out.stdout)), got);
    // Runs cover exactly the mappings.
    for (dev, m) in &want {
        let runs = pool.runs(*dev).unwrap();
        let n: u64 = runs.iter().map(|r| r.len).sum();
        assert_eq!(n, m.len() as u64);
        for r in runs {
            for k in 0..r.len {
                assert_eq!(m[&(r.virt + k)].0, r.data + k);
            }
        }
    }
    let e = pool.runs(2).unwrap_err();
    assert!(e.message.contains("not in the pool"), "{e}");
}

/// The b-tree nodes of the data mapping tree (both levels), each with
/// whether it is internal and whether it is of the top level, found by walking it from the superblock.
fn node_blocks(meta: &Path) -> Vec<(u64, bool, bool)> {
    let f = File::open(meta).unwrap();
    let read = |b: u64| {
        let mut buf = vec![0u8; BLOCK_SIZE];
        f.read_exact_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
        buf
    };
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let sb = read(0);
    let mut out = Vec::new();
    // (block, top level)
    let mut pending = vec![(le64(&sb, 320), true)];
    while let Some((b, top)) = pending.pop() {
        let n = read(b);
        let internal = le32(&n, 4) & 1 != 0;
        let nr = le32(&n, 16) as usize;
        let max = le32(&n, 20) as usize;
        out.push((b, internal, top));
        for i in 0..nr {
            let v = le64(&n, 32 + 8 * max + 8 * i);
            if internal {
                pending.push((v, top));
            } else if top {
                pending.push((v, false));
            }
        }
    }
    out.sort();
    out
}

fn patch(meta: &Path, block: u64, at: usize, bytes: &[u8], fix_csum: bool) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(meta)
        .unwrap();
    let mut buf = [0u8; BLOCK_SIZE];
    f.read_exact_at(&mut buf, block * BLOCK_SIZE as u64)
        .unwrap();
    buf[at..at + bytes.len()].copy_from_slice(bytes);
    if fix_csum {
        let salt = if block == 0 {
            thin::SUPERBLOCK_CSUM_XOR
        } else {
            thin::BTREE_CSUM_XOR
        };
        let c = dm_checksum(&buf[4..], salt);
        buf[0..4].copy_from_slice(&c.to_le_bytes());
    }
    f.write_all_at(&buf, block * BLOCK_SIZE as u64).unwrap();
}

#[test]
fn damaged_metadata_gives_clear_errors() {
    if require_tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (xml, want) = generate(7, 30, 3000);
    let good = restore(dir.path(), &xml, 32 << 20);
    let fresh = |name: &str| {
        let p = dir.path().join(name);
        std::fs::copy(&good, &p).unwrap();
        p
    };
    let nodes = node_blocks(&good);
    let internal = nodes
        .iter()
        .find(|n| n.1 && !n.2)
        .expect("an internal node")
        .0;
    let leaf = nodes.iter().find(|n| !n.1 && !n.2).expect("a leaf").0;

    // A flipped byte in the superblock.
    let m = fresh("sb-csum");
    patch(&m, 0, 100, &[0xff], false);
    let e = open(&m, Options::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("block 0: bad checksum of the superblock"),
        "{e}"
    );
    assert!(e.to_string().contains("--ignore-checksums"), "{e}");
    let pool = open(
        &m,
        Options {
            ignore_checksums: true,
        },
    )
    .unwrap();
    assert_eq!(read_all(&pool).unwrap(), want);
    assert_eq!(pool.warnings().len(), 1, "{:?}", pool.warnings());

    // A flipped byte in a leaf: named, then read past on request.
    let m = fresh("leaf-csum");
    patch(&m, leaf, BLOCK_SIZE - 1, &[0x5a], false);
    let e = open(&m, Options::default())
        .and_then(|p| read_all(&p).map(drop))
        .unwrap_err();
    assert_eq!(e.block, Some(leaf), "{e}");
    assert!(e.message.contains("bad checksum"), "{e}");
    let pool = open(
        &m,
        Options {
            ignore_checksums: true,
        },
    )
    .unwrap();
    read_all(&pool).unwrap();
    assert!(pool
        .warnings()
        .iter()
        .any(|w| w.contains(&format!("block {leaf}"))));

    // An internal node pointing at itself: a cycle.
    let m = fresh("cycle");
    patch(
        &m,
        internal,
        32 + 8 * max_entries(&good, internal),
        &internal.to_le_bytes(),
        true,
    );
    let e = open(&m, Options::default())
        .and_then(|p| read_all(&p).map(drop))
        .unwrap_err();
    assert!(
        e.message.contains("cycle") || e.message.contains("outside the range"),
        "{e}"
    );

    // A child past the end of the metadata.
    let m = fresh("past-end");
    patch(
        &m,
        internal,
        32 + 8 * max_entries(&good, internal),
        &(1u64 << 40).to_le_bytes(),
        true,
    );
    let e = open(&m, Options::default())
        .and_then(|p| read_all(&p).map(drop))
        .unwrap_err();
    assert_eq!(e.block, Some(1 << 40), "{e}");
    assert!(e.message.contains("past the end of the metadata"), "{e}");

    // A mapping to a data block past the pool's end.
    let m = fresh("data-past-end");
    let value_at = 32 + 8 * max_entries(&good, leaf);
    patch(
        &m,
        leaf,
        value_at,
        &((NR_DATA_BLOCKS + 5) << 24).to_le_bytes(),
        true,
    );
    let e = open(&m, Options::default())
        .and_then(|p| read_all(&p).map(drop))
        .unwrap_err();
    assert!(
        e.message.contains("past the end of the pool's data") || e.message.contains("values"),
        "{e}"
    );

    // A truncated file: its last nodes are missing.
    let m = fresh("truncated");
    let last = nodes.iter().map(|n| n.0).max().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&m)
        .unwrap()
        .set_len(last * BLOCK_SIZE as u64)
        .unwrap();
    let e = open(&m, Options::default())
        .and_then(|p| read_all(&p).map(drop))
        .unwrap_err();
    assert!(e.message.contains("past the end of the metadata"), "{e}");
    let m = fresh("tiny");
    OpenOptions::new()
        .write(true)
        .open(&m)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let e = open(&m, Options::default()).unwrap_err();
    assert!(e.message.contains("truncated"), "{e}");

    // Absurd header counts.
    let m = fresh("counts");
    patch(&m, leaf, 20, &u32::MAX.to_le_bytes(), true);
    let e = open(&m, Options::default())
        .and_then(|p| read_all(&p).map(drop))
        .unwrap_err();
    assert!(e.message.contains("more than a block holds"), "{e}");
}

fn max_entries(meta: &Path, block: u64) -> usize {
    let f = File::open(meta).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, block * BLOCK_SIZE as u64 + 20)
        .unwrap();
    u32::from_le_bytes(b) as usize
}

/// Random damage anywhere never panics or hangs.
#[test]
fn random_damage_never_panics() {
    if require_tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (xml, _) = generate(99, 10, 2000);
    let good = restore(dir.path(), &xml, 8 << 20);
    let used = node_blocks(&good);
    let mut rng = Rng(12345);
    for round in 0..300 {
        let m = dir.path().join(format!("r{round}"));
        std::fs::copy(&good, &m).unwrap();
        let block = used[rng.below(used.len() as u64) as usize].0;
        let at = 4 + rng.below(BLOCK_SIZE as u64 - 12) as usize;
        let bytes = rng.next().to_le_bytes();
        patch(&m, block, at, &bytes[..1 + rng.below(8) as usize], true);
        if let Ok(pool) = open(
            &m,
            Options {
                ignore_checksums: true,
            },
        ) {
            let _ = read_all(&pool);
            let _ = pool.devices();
        }
        std::fs::remove_file(&m).unwrap();
    }
}
