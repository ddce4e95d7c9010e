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
    // `zfs get -H -p all`: the referenced bytes of each dataset.
    let referenced: BTreeMap<String, u64> = std::fs::read_to_string(p.oracle_file("zfs-get.tsv"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3 && f[1] == "referenced")
                .then(|| (f[0].to_string(), f[2].parse().unwrap()))
        })
        .collect();
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
            assert_eq!(
                Some(&d.referenced),
                referenced.get(&e.name),
                "{ctx}: referenced"
            );
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

/// `probe` names each disk's pool and where its vdev lies; a file that is
/// no vdev is `None`. Every disk's four labels verify.
#[test]
fn probe_names_pool_and_vdev_of_every_disk() {
    let Some(p) = pools() else { return };
    for d in &p.info.disks {
        let path = p.disk(&d.name);
        let l = docker_mount_zfs::probe(&path).unwrap().unwrap();
        let pool = d.name.split(['.', '-']).next().unwrap();
        assert_eq!(l.pool_name, pool, "{}", d.name);
        assert_eq!(l.vdev_offset, 1 << 20, "{}: GPT partition 1", d.name);
        assert!(l.vdev_size > 0 && l.vdev_offset + l.vdev_size <= d.bytes);
        assert_eq!(l.vdev_children, 1);
        let top = match pool {
            "dmpool" => "disk",
            "dmmirror" => "mirror",
            _ => "raidz",
        };
        assert_eq!(l.top_type, top, "{}", d.name);
    }
    let not_zfs = p.oracle_file("steps.txt");
    assert_eq!(docker_mount_zfs::probe(&not_zfs).unwrap(), None);
    let e = Pool::open(&[not_zfs], &OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("steps.txt"), "{e}");
    let pool = Pool::open(&p.pool_disks("dmraidz"), &OpenOptions::default()).unwrap();
    assert_eq!(pool.devices().len(), 3);
    for d in pool.devices() {
        assert_eq!(d.labels_valid, [true; 4], "{:?}", d.device);
    }
    assert!(pool.missing_devices().is_empty());
    assert!(
        pool.features_for_read()
            .iter()
            .any(|f| f == "com.delphix:embedded_data"),
        "{:?}",
        pool.features_for_read()
    );
    let two = &p.pool_disks("dmraidz")[1..];
    let pool = Pool::open(two, &OpenOptions::default()).unwrap();
    assert_eq!(pool.missing_devices().len(), 1);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<Fs>();
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
        // Looked up by name (hashed in fat ZAPs), it is the same object.
        if let Some(cut) = path.iter().rposition(|&c| c == b'/') {
            let parent = ours[&path[..cut]];
            assert_eq!(
                fs.lookup(parent, &path[cut + 1..]).unwrap(),
                Some(obj),
                "{shown}"
            );
        } else if !path.is_empty() {
            assert_eq!(fs.lookup(fs.root(), &path).unwrap(), Some(obj), "{shown}");
        }
        if st.kind == FileKind::Dir {
            assert_eq!(
                fs.lookup(obj, b"no such name \xff").unwrap(),
                None,
                "{shown}"
            );
        }
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
        // Every block read here had a checksum this reader verifies.
        assert_eq!(pool.unverified_blocks(), 0, "{label}");
    }
    eprintln!("{t:?}");
    assert!(t.entries > 5000, "{t:?}");
    assert!(
        t.symlinks > 0 && t.devices > 0 && t.hard_links > 0 && t.xattrs > 0,
        "{t:?}"
    );
    assert_disks_unchanged(p);
}

/// A sparse copy of `src` in `dir`, writable (hostile cases damage it).
fn scratch_copy(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().unwrap());
    let st = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    dst
}

/// Flips one byte of the file at `p`, at `off`.
fn flip(p: &Path, off: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, off).unwrap();
    f.write_all_at(&[!b[0]], off).unwrap();
}

/// A damaged data block of one file (zle leaves random data as it is, so
/// the block is found by content): reading the file fails naming the
/// dataset and object, the rest of the dataset still reads.
#[test]
fn damaged_file_block_is_an_error_naming_dataset_and_object() {
    let Some(p) = pools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let copy = scratch_copy(&p.docker_disk(), tmp.path());
    let pool = Pool::open(std::slice::from_ref(&copy), &OpenOptions::default()).unwrap();
    let fs = pool.open_fs("dmpool/zle").unwrap();
    let root = fs.root();
    let obj = fs.lookup(root, b"random.bin").unwrap().unwrap();
    assert_eq!(fs.resolve(b"/random.bin").unwrap(), Some(obj));
    assert_eq!(fs.resolve(b"").unwrap(), Some(root));
    let hello = fs.resolve(b"dir/hello.txt").unwrap().unwrap();
    assert_eq!(fs.stat(hello).unwrap().size, 6);
    assert_eq!(fs.resolve(b"dir/none/x").unwrap(), None);
    let seq = fs.lookup(root, b"seq.txt").unwrap().unwrap();
    let seq_sha = content_sha256(&fs, seq, fs.stat(seq).unwrap().size);
    let mut chunk = vec![0u8; 4096];
    assert_eq!(fs.read_at(obj, 1 << 20, &mut chunk).unwrap(), 4096);
    drop((fs, pool));
    let at = find_chunk(&copy, &chunk).expect("the record of random.bin on the disk");
    flip(&copy, at + 100);

    let pool = Pool::open(std::slice::from_ref(&copy), &OpenOptions::default()).unwrap();
    let fs = pool.open_fs("dmpool/zle").unwrap();
    let mut buf = vec![0u8; 4096];
    let e = fs.read_at(obj, 1 << 20, &mut buf).unwrap_err();
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(e, docker_mount_zfs::Error::Checksum { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("dmpool/zle") && msg.contains(&format!("object {obj}")),
        "{msg}"
    );
    // The blocks before it, and the other files, still read.
    assert_eq!(fs.read_at(obj, 0, &mut buf).unwrap(), 4096);
    assert_eq!(
        content_sha256(&fs, seq, fs.stat(seq).unwrap().size),
        seq_sha
    );
    assert_disks_unchanged(p);
}

/// The MOS of every uberblock damaged in every copy: opening fails with a
/// checksum error naming the MOS; damaged in its first copy only: the
/// ditto copies read and the pool opens at its newest txg.
#[test]
fn damaged_mos_fails_naming_it_and_ditto_copies_cover_one() {
    use docker_mount_zfs::dev::{BlockDev, FileDev};
    use docker_mount_zfs::label::{self, VDEV_START};
    let Some(p) = pools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let copy = scratch_copy(&p.docker_disk(), tmp.path());
    let dev: std::sync::Arc<dyn BlockDev> = std::sync::Arc::new(FileDev::open(&copy).unwrap());
    let v = label::read(dev).unwrap().unwrap();
    let newest = v.uberblocks[0].clone();
    let base = v.info.vdev_offset + VDEV_START;
    drop(v);

    // The newest MOS's first copy only.
    flip(&copy, base + newest.rootbp.dva[0].offset + 200);
    let pool = Pool::open(std::slice::from_ref(&copy), &OpenOptions::default()).unwrap();
    assert_eq!(pool.txg(), newest.txg, "ditto copies cover the first");
    assert!(pool.datasets().unwrap().len() > 10);
    drop(pool);

    // Every copy of every uberblock's MOS.
    let dev: std::sync::Arc<dyn BlockDev> = std::sync::Arc::new(FileDev::open(&copy).unwrap());
    let v = label::read(dev).unwrap().unwrap();
    let mut damaged = std::collections::BTreeSet::new();
    for ub in &v.uberblocks {
        for d in ub.rootbp.copies() {
            let at = base + d.offset + 200;
            if damaged.insert(at)
                && !(ub.txg == newest.txg && d.offset == newest.rootbp.dva[0].offset)
            {
                flip(&copy, at);
            }
        }
    }
    drop(v);
    let e = Pool::open(std::slice::from_ref(&copy), &OpenOptions::default()).unwrap_err();
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(e, docker_mount_zfs::Error::Checksum { .. }),
        "{msg}"
    );
    assert!(msg.contains("dmpool") && msg.contains("MOS"), "{msg}");
    assert_disks_unchanged(p);
}

/// Older uberblocks: the pool opens as of each txg the ring still holds
/// whose MOS verifies, and lists its datasets there.
#[test]
fn older_uberblocks_open_the_pool_at_their_txg() {
    let Some(p) = pools() else { return };
    let disks = p.pool_disks("dmpool");
    let pool = Pool::open(&disks, &OpenOptions::default()).unwrap();
    let newest = pool.datasets().unwrap();
    let mut opened = 0;
    for ub in pool.uberblocks().iter().skip(1) {
        let Ok(old) = Pool::open(&disks, &OpenOptions { txg: Some(ub.txg) }) else {
            continue;
        };
        assert_eq!(old.txg(), ub.txg);
        let ds = old.datasets().unwrap();
        assert!(ds.iter().all(|d| d.createtxg <= ub.txg), "txg {}", ub.txg);
        assert!(ds.len() <= newest.len() + 8, "txg {}", ub.txg);
        let fs = old.open_fs("dmpool/zle").unwrap();
        assert!(fs.lookup(fs.root(), b"random.bin").unwrap().is_some());
        opened += 1;
    }
    assert!(opened >= 3, "{opened} older txgs opened");
    let e = Pool::open(&disks, &OpenOptions { txg: Some(1) }).unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// The administrator's snapshot of the docker root equals the `find`
/// listing taken of the live root when it was made (type, mode, owners,
/// size, path), the container removed since included.
#[test]
fn admin_snapshot_holds_the_earlier_docker_root() {
    let Some(p) = pools() else { return };
    let pool = Pool::open(&p.pool_disks("dmpool"), &OpenOptions::default()).unwrap();
    let snap = pool.open_fs("dmpool/docker@admin-before-cleanup").unwrap();
    let want: BTreeSet<String> =
        std::fs::read_to_string(p.oracle_file("at-snapshot/docker-root-find.txt"))
            .unwrap()
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
    let ours: BTreeSet<String> = tree(&snap)
        .into_iter()
        .map(|(path, obj)| {
            let st = snap.stat(obj).unwrap();
            let t = match st.kind {
                FileKind::Dir => 'd',
                FileKind::File => 'f',
                FileKind::Symlink => 'l',
                FileKind::Fifo => 'p',
                FileKind::CharDev => 'c',
                FileKind::BlockDev => 'b',
                FileKind::Socket => 's',
                FileKind::Unknown => '?',
            };
            format!(
                "{t} {:o} {} {} {} {}",
                st.mode & 0o7777,
                st.uid,
                st.gid,
                st.size,
                String::from_utf8_lossy(&path)
            )
            .trim_end()
            .to_string()
        })
        .collect();
    assert_eq!(
        ours.symmetric_difference(&want).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    let ps = std::fs::read_to_string(p.oracle_file("at-snapshot/ps.jsonl")).unwrap();
    let removed: serde_json::Value = ps
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| c["Names"] == "removed-later")
        .unwrap();
    let id = removed["ID"].as_str().unwrap();
    assert!(
        ours.iter()
            .any(|l| l.ends_with(&format!(" containers/{id}"))),
        "{id}"
    );
    let live = pool.open_fs("dmpool/docker").unwrap();
    let containers = live.lookup(live.root(), b"containers").unwrap().unwrap();
    assert_eq!(live.lookup(containers, id.as_bytes()).unwrap(), None);
}

/// A pool image cut short (a partial acquisition): whatever still reads
/// reads, the rest fails with errors naming the image; nothing panics.
#[test]
fn truncated_image_fails_cleanly() {
    let Some(p) = pools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let copy = scratch_copy(&p.docker_disk(), tmp.path());
    let mut errors = 0;
    let mut read = 0;
    // Shortest last: each cut is of the previous one.
    for len in [400u64 << 20, 96 << 20, 32 << 20] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(len)
            .unwrap();
        let pool = match Pool::open(std::slice::from_ref(&copy), &OpenOptions::default()) {
            Ok(p) => p,
            Err(e) => {
                errors += 1;
                eprintln!("{len}: {e}");
                continue;
            }
        };
        let Ok(datasets) = pool.datasets() else {
            errors += 1;
            continue;
        };
        for d in datasets.iter().filter(|d| !d.encrypted) {
            let Ok(fs) = pool.open_fs(&d.name) else {
                errors += 1;
                continue;
            };
            let mut stack = vec![fs.root()];
            let mut buf = vec![0u8; 1 << 16];
            while let Some(dir) = stack.pop() {
                let Ok(ents) = fs.read_dir(dir) else {
                    errors += 1;
                    continue;
                };
                for e in ents {
                    match e.kind {
                        FileKind::Dir => stack.push(e.obj),
                        FileKind::File => match fs.read_at(e.obj, 0, &mut buf) {
                            Ok(_) => read += 1,
                            Err(err) => {
                                errors += 1;
                                let m = err.to_string();
                                assert!(m.contains("dmpool"), "{m}");
                            }
                        },
                        _ => {}
                    }
                }
            }
        }
    }
    eprintln!("{read} files read, {errors} errors");
    assert!(errors > 0, "a truncated image must show");
    assert_disks_unchanged(p);
}

/// `zfs diff`'s shortcut: in every clone of the docker pool, an object
/// `changed_since(origin's txg)` does not list is the origin's object
/// unchanged (same attributes, same content), and every object the origin
/// had is still there unless listed.
#[test]
fn changed_since_origin_lists_every_changed_object_of_each_clone() {
    let Some(p) = pools() else { return };
    let pool = Pool::open(&p.pool_disks("dmpool"), &OpenOptions::default()).unwrap();
    let all = pool.datasets().unwrap();
    let mut clones = 0;
    for c in all.iter().filter(|d| d.origin.is_some()) {
        let origin = all
            .iter()
            .find(|d| Some(&d.name) == c.origin.as_ref())
            .unwrap();
        let (cfs, ofs) = (
            pool.open_fs(&c.name).unwrap(),
            pool.open_fs(&origin.name).unwrap(),
        );
        let changed: BTreeMap<u64, bool> = cfs
            .changed_since(origin.createtxg)
            .unwrap()
            .into_iter()
            .collect();
        let snapshot = |fs: &Fs| -> BTreeMap<u64, (docker_mount_zfs::ZStat, String)> {
            tree(fs)
                .into_values()
                .map(|obj| {
                    let st = fs.stat(obj).unwrap();
                    let sum = if st.kind == FileKind::File {
                        content_sha256(fs, obj, st.size)
                    } else {
                        String::new()
                    };
                    (obj, (st, sum))
                })
                .collect()
        };
        let (now, before) = (snapshot(&cfs), snapshot(&ofs));
        for (obj, v) in &now {
            if !changed.contains_key(obj) {
                assert_eq!(before.get(obj), Some(v), "{}: object {obj}", c.name);
            }
        }
        for obj in before.keys() {
            if !changed.contains_key(obj) {
                assert!(now.contains_key(obj), "{}: object {obj} gone", c.name);
            }
        }
        assert!(!changed.is_empty(), "{}", c.name);
        assert!(
            changed.len() < now.len() + before.len(),
            "{}: no shortcut",
            c.name
        );
        eprintln!(
            "{}: {} of {} objects to compare",
            c.name,
            changed.len(),
            now.len()
        );
        clones += 1;
    }
    assert!(clones >= 10, "{clones} clones");
}

/// Where the 4 KiB `chunk` lies, 4 KiB-aligned, in the image at `p`.
fn find_chunk(p: &Path, chunk: &[u8]) -> Option<u64> {
    let mut f = File::open(p).unwrap();
    let mut block = vec![0u8; chunk.len()];
    let mut off = 0u64;
    while std::io::Read::read_exact(&mut f, &mut block).is_ok() {
        if block == chunk {
            return Some(off);
        }
        off += block.len() as u64;
    }
    None
}

/// Silent damage on one disk of a redundant pool is repaired on read:
/// a mirror reads the other side, a raidz rebuilds the column from
/// parity; the file's content is still the oracle's.
#[test]
fn damage_on_one_disk_of_a_mirror_or_raidz_is_repaired_on_read() {
    let Some(p) = pools() else { return };
    for (pool_name, dataset) in [("dmmirror", "dmmirror/big"), ("dmraidz", "dmraidz/lz4")] {
        let tmp = tempfile::tempdir().unwrap();
        let disks: Vec<PathBuf> = p
            .pool_disks(pool_name)
            .iter()
            .map(|d| scratch_copy(d, tmp.path()))
            .collect();
        let pool = Pool::open(&disks, &OpenOptions::default()).unwrap();
        let fs = pool.open_fs(dataset).unwrap();
        let obj = fs.resolve(b"random.bin").unwrap().unwrap();
        let size = fs.stat(obj).unwrap().size;
        let want = content_sha256(&fs, obj, size);
        let mut chunk = vec![0u8; 4096];
        fs.read_at(obj, 1 << 20, &mut chunk).unwrap();
        drop((fs, pool));
        let (disk, at) = disks
            .iter()
            .find_map(|d| find_chunk(d, &chunk).map(|at| (d.clone(), at)))
            .unwrap_or_else(|| panic!("{dataset}: the record on no disk"));
        flip(&disk, at + 10);
        let pool = Pool::open(&disks, &OpenOptions::default()).unwrap();
        let fs = pool.open_fs(dataset).unwrap();
        assert_eq!(
            content_sha256(&fs, obj, size),
            want,
            "{dataset}: damage on {} repaired",
            disk.display()
        );
    }
    assert_disks_unchanged(p);
}
