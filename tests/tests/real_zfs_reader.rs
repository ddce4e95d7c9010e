//! The userspace ZFS reader (`docker-mount-zfs`) on the real pools of
//! OpenZFS 2.3 (issue 16): on every pool, with every disk and with one disk
//! of each redundant pool missing, its datasets equal `zfs list -t all`
//! and every dataset tar of the oracle equals its tree entry for entry
//! (kind, mode, owners, size, mtime, symlink target, device numbers, hard
//! links, xattrs, content); the disks are unchanged afterwards.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use docker_mount_tests::real::require;
use docker_mount_tests::real_zfs::{self, Pools};
use docker_mount_zfs::{DatasetKind, FileKind, Fs, OpenOptions, Pool};
use sha2::{Digest, Sha256};

fn pools() -> Option<&'static Pools> {
    if !require("zfs VM", real_zfs::available()) {
        return None;
    }
    Some(real_zfs::pools().unwrap())
}

/// Every way each pool is opened: all disks, and each redundant pool with
/// one disk left out (its redundancy must cover it).
fn configurations(p: &Pools) -> Vec<(String, Vec<PathBuf>)> {
    let mut out = Vec::new();
    for pool in ["dmpool", "dmmirror", "dmraidz"] {
        let disks = p.pool_disks(pool);
        out.push((format!("{pool} (all disks)"), disks.clone()));
        if disks.len() > 1 {
            for skip in 0..disks.len() {
                let mut d = disks.clone();
                d.remove(skip);
                out.push((format!("{pool} without disk {skip}"), d));
            }
        }
    }
    out
}

/// The disks' hashes equal those taken when the pools were built.
fn assert_disks_unchanged(p: &Pools) {
    for d in &p.info.disks {
        assert_eq!(
            real_zfs::sha256_file(&p.disk(&d.name)).unwrap(),
            d.sha256,
            "{} changed",
            d.name
        );
    }
}

#[test]
fn datasets_equal_zfs_list_on_every_pool_and_degraded() {
    let Some(p) = pools() else { return };
    let oracle = p.zfs_list().unwrap();
    for (label, disks) in configurations(p) {
        let pool = Pool::open(&disks, &OpenOptions::default()).unwrap();
        let name = pool.name().to_string();
        let ours: BTreeMap<String, _> = pool
            .datasets()
            .unwrap()
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
        let want: Vec<_> = oracle
            .iter()
            .filter(|e| {
                e.name == name
                    || e.name.starts_with(&format!("{name}/"))
                    || e.name.starts_with(&format!("{name}@"))
            })
            .collect();
        assert!(want.len() >= 3, "{label}: {want:?}");
        assert_eq!(
            ours.keys().cloned().collect::<BTreeSet<_>>(),
            want.iter().map(|e| e.name.clone()).collect::<BTreeSet<_>>(),
            "{label}: dataset names"
        );
        for e in want {
            let d = &ours[&e.name];
            let ctx = format!("{label}: {}", e.name);
            assert_eq!(d.kind.as_str(), e.kind, "{ctx}");
            assert_eq!(d.origin, e.origin, "{ctx}: origin");
            assert_eq!(d.guid, e.guid, "{ctx}: guid");
            assert_eq!(d.createtxg, e.createtxg, "{ctx}: createtxg");
            assert_eq!(d.objsetid, e.objsetid, "{ctx}: objsetid");
            assert_eq!(d.mountpoint, e.mountpoint, "{ctx}: mountpoint");
            assert_eq!(
                d.compression.as_deref().unwrap_or("-"),
                e.compression,
                "{ctx}: compression"
            );
            assert_eq!(d.xattr.as_deref().unwrap_or("-"), e.xattr, "{ctx}: xattr");
            assert_eq!(d.encrypted, e.name == "dmmirror/secret", "{ctx}: encrypted");
        }
        // Older uberblocks are listed too, the active one first.
        let ubs = pool.uberblocks();
        assert!(
            ubs.len() > 1 && ubs[0].active && ubs[0].txg == pool.txg(),
            "{label}"
        );
    }
    assert_disks_unchanged(p);
}

#[test]
fn encrypted_dataset_is_named_encrypted() {
    let Some(p) = pools() else { return };
    let pool = Pool::open(&p.pool_disks("dmmirror"), &OpenOptions::default()).unwrap();
    let e = pool.open_fs("dmmirror/secret").unwrap_err();
    assert!(e.is_encrypted(), "{e}");
    assert!(e.to_string().contains("dmmirror/secret"), "{e}");
    assert!(e.to_string().contains("encrypted"), "{e}");
}

/// Our tree: path (relative, "" for the root) → object, walked from the
/// root.
fn tree(fs: &Fs) -> BTreeMap<Vec<u8>, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(Vec::new(), fs.root())];
    out.insert(Vec::new(), fs.root());
    while let Some((path, dir)) = stack.pop() {
        for e in fs.read_dir(dir).unwrap() {
            let mut p = path.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend(&e.name);
            assert!(out.insert(p.clone(), e.obj).is_none());
            if e.kind == FileKind::Dir {
                stack.push((p, e.obj));
            }
        }
    }
    out
}

fn content_sha256(fs: &Fs, obj: u64, size: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = fs.read_at(obj, off, &mut buf).unwrap();
        assert!(n > 0, "short read at {off} of {size}");
        h.update(&buf[..n]);
        off += n as u64;
    }
    assert_eq!(fs.read_at(obj, size, &mut buf).unwrap(), 0);
    hex::encode(h.finalize())
}

/// What a comparison covered.
#[derive(Debug, Default)]
struct Tally {
    entries: usize,
    files: usize,
    bytes: u64,
    symlinks: usize,
    devices: usize,
    hard_links: usize,
    xattrs: usize,
}

/// Compares `fs` with the GNU tar at `tar`, adding what it covered to `t`.
fn compare_with_tar(fs: &Fs, tar: &Path, t: &mut Tally) {
    let ctx = tar.display().to_string();
    let ours = tree(fs);
    let mut seen = BTreeSet::new();
    let mut a = tar::Archive::new(File::open(tar).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let raw = e.path_bytes().into_owned();
        let mut path: &[u8] = &raw;
        path = path.strip_prefix(b"./").unwrap_or(path);
        path = path.strip_suffix(b"/").unwrap_or(path);
        if path == b"." {
            path = b"";
        }
        let path = path.to_vec();
        let shown = format!("{ctx}: {}", String::from_utf8_lossy(&path));
        let obj = *ours
            .get(&path)
            .unwrap_or_else(|| panic!("{shown}: not in our tree"));
        seen.insert(path.clone());
        let st = fs.stat(obj).unwrap();
        let h = e.header().clone();
        let ty = h.entry_type();
        if ty.is_hard_link() {
            let target = e.link_name_bytes().unwrap().into_owned();
            let target = target.strip_prefix(b"./").unwrap_or(&target).to_vec();
            assert_eq!(ours.get(&target), Some(&obj), "{shown}: hard link");
            t.hard_links += 1;
            continue;
        }
        let kind = match ty {
            t if t.is_file() => FileKind::File,
            t if t.is_dir() => FileKind::Dir,
            t if t.is_symlink() => FileKind::Symlink,
            t if t.is_character_special() => FileKind::CharDev,
            t if t.is_block_special() => FileKind::BlockDev,
            t if t.is_fifo() => FileKind::Fifo,
            t => panic!("{shown}: tar entry type {t:?}"),
        };
        assert_eq!(st.kind, kind, "{shown}: kind");
        assert_eq!(
            st.mode & 0o7777,
            h.mode().unwrap() & 0o7777,
            "{shown}: mode"
        );
        assert_eq!(st.uid, h.uid().unwrap(), "{shown}: uid");
        assert_eq!(st.gid, h.gid().unwrap(), "{shown}: gid");
        assert_eq!(st.mtime.secs as u64, h.mtime().unwrap(), "{shown}: mtime");
        match kind {
            FileKind::File => {
                assert_eq!(st.size, h.size().unwrap(), "{shown}: size");
                let mut want = Sha256::new();
                std::io::copy(&mut e, &mut want).unwrap();
                assert_eq!(
                    content_sha256(fs, obj, st.size),
                    hex::encode(want.finalize()),
                    "{shown}: content"
                );
                t.files += 1;
                t.bytes += st.size;
            }
            FileKind::Symlink => {
                let target = e.link_name_bytes().unwrap().into_owned();
                assert_eq!(fs.read_link(obj).unwrap(), target, "{shown}: target");
                t.symlinks += 1;
            }
            FileKind::CharDev | FileKind::BlockDev => {
                assert_eq!(
                    (st.rdev_major, st.rdev_minor),
                    (
                        h.device_major().unwrap().unwrap(),
                        h.device_minor().unwrap().unwrap()
                    ),
                    "{shown}: rdev"
                );
                t.devices += 1;
            }
            _ => {}
        }
        let mut want_x = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if let Some(n) = x.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    want_x.insert(n.to_vec(), x.value_bytes().to_vec());
                }
            }
        }
        let ours_x: BTreeMap<_, _> = fs.xattrs(obj).unwrap().into_iter().collect();
        assert_eq!(ours_x, want_x, "{shown}: xattrs");
        t.xattrs += want_x.len();
    }
    let extra: Vec<_> = ours
        .keys()
        .filter(|k| !seen.contains(*k))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(extra.is_empty(), "{ctx}: not in the tar: {extra:?}");
    t.entries += seen.len();
}

#[test]
fn every_dataset_tar_equals_our_tree_on_every_pool_and_degraded() {
    let Some(p) = pools() else { return };
    let tars: Vec<PathBuf> = std::fs::read_dir(p.oracle().join("datasets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut t = Tally::default();
    for (label, disks) in configurations(p) {
        let pool = Pool::open(&disks, &OpenOptions::default()).unwrap();
        let prefix = format!("{}_", pool.name());
        for tar in &tars {
            let stem = tar.file_stem().unwrap().to_string_lossy().into_owned();
            if !stem.starts_with(&prefix) {
                continue;
            }
            let name = stem.replace('_', "/");
            let info = pool
                .datasets()
                .unwrap()
                .into_iter()
                .find(|d| d.name == name)
                .unwrap_or_else(|| panic!("{label}: no dataset {name}"));
            assert_eq!(info.kind, DatasetKind::Filesystem);
            if info.encrypted {
                continue; // encrypted_dataset_is_named_encrypted
            }
            let fs = pool.open_fs(&name).unwrap();
            let before = t.entries;
            compare_with_tar(&fs, tar, &mut t);
            eprintln!("{label}: {name}: {} entries equal", t.entries - before);
        }
    }
    eprintln!("{t:?}");
    assert!(t.entries > 5000, "{t:?}");
    assert!(
        t.symlinks > 0 && t.devices > 0 && t.hard_links > 0 && t.xattrs > 0,
        "{t:?}"
    );
    assert_disks_unchanged(p);
}
