//! A devicemapper root made from a real overlay2 root, the way testing.md
//! asks: no kernel here has device-mapper, no dockerd can make one.
//!
//! Each layer's merged view (a read-only kernel overlay of a copy of its
//! `diff/` and its parents') becomes the `/rootfs` of an ext4 (or xfs)
//! image beside an `/id` file, as docker's devicemapper driver lays out a
//! device. The images' non-zero 64 KiB blocks are packed into a thin pool
//! `data` file, shuffled, each distinct block stored once and shared by
//! every device holding it; the pool `metadata` is written by
//! `thin_restore` from generated XML. docker's own files follow:
//! `devicemapper/metadata/<id>`, `base`, `deviceset-metadata`,
//! `transaction-metadata`, `mnt/<id>/`, `image/devicemapper/` (the
//! overlay2 image store renamed) and `"Driver":"devicemapper"` in every
//! container. Two devices no layer names are added: one with no metadata
//! file at all and one whose metadata file says `"deleted": true` (deleted
//! containers, recoverable). The overlay2 root's `docker export` remains
//! the oracle.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::real::{self, RealRoot};

/// Data block size of the pool, in 512-byte sectors (docker's default, 64 KiB).
pub const DATA_BLOCK_SECTORS: u64 = 128;
const BLOCK: usize = (DATA_BLOCK_SECTORS * 512) as usize;
/// The UUID every device shares (they are all snapshots of one base).
const UUID: &str = "d0c4e700-de71-4ce0-a000-0123456789ab";
/// Id of the deleted layer whose metadata file remains (`"deleted": true`).
pub const DELETED_ID: &str = "0000000000000000000000000000000000000000000000000000000000dead01";
/// The file only the orphan devices hold.
pub const ORPHAN_MARKER: &str = "recovered-from-a-deleted-container";

/// Filesystem of the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fs {
    Ext4,
    Xfs,
}

impl Fs {
    pub fn name(self) -> &'static str {
        match self {
            Fs::Ext4 => "ext4",
            Fs::Xfs => "xfs",
        }
    }

    /// Device size (xfs needs 300 MiB at least).
    pub fn device_size(self) -> u64 {
        match self {
            Fs::Ext4 => 64 << 20,
            Fs::Xfs => 320 << 20,
        }
    }
}

/// One thin device of the pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DmDevice {
    /// The layer's id (cache id, mount id), `base`, or a label for orphans.
    pub id: String,
    pub dev_id: u64,
    pub size: u64,
    /// sha256 of the whole device image (zeros where unmapped).
    pub sha256: String,
    /// Blocks mapped.
    pub mapped_blocks: u64,
    /// virtual block → data block, every mapping.
    pub mappings: Vec<(u64, u64)>,
    /// Whether a layer or container names it.
    pub orphan: bool,
}

/// A devicemapper root with what the converter knows about its pool.
#[derive(Debug, Clone)]
pub struct DmRoot {
    pub real: RealRoot,
    pub fs: Fs,
    pub devices: Vec<DmDevice>,
    pub nr_data_blocks: u64,
    /// Pool superblock values.
    pub transaction_id: u64,
    pub time: u32,
}

impl DmRoot {
    pub fn device(&self, id: &str) -> &DmDevice {
        self.devices
            .iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("no device {id}"))
    }

    pub fn pool_metadata(&self) -> PathBuf {
        self.real.root.join("devicemapper/devicemapper/metadata")
    }

    pub fn pool_data(&self) -> PathBuf {
        self.real.root.join("devicemapper/devicemapper/data")
    }
}

/// What [`devicemapper_in_place`] packed.
#[derive(Serialize, Deserialize)]
pub struct Meta {
    fs: Fs,
    devices: Vec<DmDevice>,
    nr_data_blocks: u64,
    transaction_id: u64,
    time: u32,
}

/// The ext4 devicemapper root converted from [`real::overlay2_root`], cached on disk.
pub fn devicemapper_root() -> &'static DmRoot {
    static ROOT: OnceLock<DmRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Fs::Ext4))
}

/// The same with xfs devices (docker's default filesystem).
pub fn devicemapper_xfs_root() -> &'static DmRoot {
    static ROOT: OnceLock<DmRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Fs::Xfs))
}

fn cached(fs_kind: Fs) -> DmRoot {
    let source = real::overlay2_root();
    let mut h = Sha256::new();
    h.update(include_str!("convert_dm.rs"));
    h.update(source.dir.as_os_str().as_bytes());
    h.update(fs_kind.name());
    let driver = format!("devicemapper{}", fs_kind.name());
    let key = format!("{driver}-{}", &hex::encode(h.finalize())[..16]);
    let base = real::real_roots_dir();
    fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
    let dir = base.join(&key);
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
    let _lock =
        Flock::lock(lock, FlockArg::LockExclusive).unwrap_or_else(|(_, e)| panic!("flock: {e}"));
    let root = dir.join("docker");
    if !dir.join("dm.json").exists() {
        real::prune_stale(&base, &driver, &key);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let meta = overlay2_to_devicemapper(&source.root, &root, &dir.join("work"), fs_kind);
        let _ = fs::remove_dir_all(dir.join("work"));
        fs::write(
            dir.join("dm.json"),
            serde_json::to_vec(&meta).expect("serialise dm.json"),
        )
        .expect("write dm.json");
    }
    let meta: Meta = serde_json::from_slice(&fs::read(dir.join("dm.json")).expect("read dm.json"))
        .expect("parse dm.json");
    DmRoot {
        real: RealRoot {
            driver: "devicemapper".into(),
            root,
            dir,
            ..source.clone()
        },
        fs: meta.fs,
        devices: meta.devices,
        nr_data_blocks: meta.nr_data_blocks,
        transaction_id: meta.transaction_id,
        time: meta.time,
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
}

/// One layer of the overlay2 copy: its id and its parents' short links.
struct Layer {
    id: String,
    lower: Vec<String>,
}

fn overlay2_layers(overlay2: &Path) -> Vec<Layer> {
    let mut out: Vec<Layer> = fs::read_dir(overlay2)
        .expect("list overlay2")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "l" && n != "empty-lower" && !n.starts_with('.'))
        .map(|id| {
            let lower = fs::read_to_string(overlay2.join(&id).join("lower"))
                .unwrap_or_default()
                .trim()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            Layer { id, lower }
        })
        .collect();
    // Parents first (fewer parents), so that device ids grow down the chains.
    out.sort_by(|a, b| a.lower.len().cmp(&b.lower.len()).then(a.id.cmp(&b.id)));
    out
}

/// Unmounts on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mounts the merged view of `lowers` (relative to `cwd`, top first) read-only on `target`.
fn overlay(cwd: &Path, lowers: &[String], target: &Path) -> Mounted {
    let opts = format!("ro,lowerdir={}", lowers.join(":"));
    assert!(
        opts.len() < 4000,
        "lowerdir option too long: {}",
        opts.len()
    );
    run(Command::new("mount")
        .current_dir(cwd)
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(target));
    Mounted(target.to_path_buf())
}

/// Makes the device image `img` of `fs_kind` holding `stage`'s tree.
fn make_image(stage: &Path, img: &Path, fs_kind: Fs, scratch: &Path) {
    let size = fs_kind.device_size();
    let _ = fs::remove_file(img);
    File::create(img)
        .and_then(|f| f.set_len(size))
        .unwrap_or_else(|e| panic!("create {}: {e}", img.display()));
    match fs_kind {
        Fs::Ext4 => {
            let mut cmd = Command::new("mkfs.ext4");
            cmd.args(["-q", "-F", "-b", "4096", "-U", UUID, "-E", "root_owner=0:0"]);
            cmd.arg("-d").arg(stage).arg(img);
            run(&mut cmd);
        }
        Fs::Xfs => {
            run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", &format!("uuid={UUID}")])
                .arg(img));
            let mnt = scratch.join("xfs-mnt");
            fs::create_dir_all(&mnt).expect("mkdir xfs-mnt");
            run(Command::new("mount")
                .args(["-t", "xfs", "-o", "loop,nouuid"])
                .arg(img)
                .arg(&mnt));
            let mounted = Mounted(mnt.clone());
            let mut src = stage.as_os_str().to_owned();
            src.push("/.");
            run(Command::new("cp").arg("-a").arg(&src).arg(&mnt));
            // A plain umount: everything written must be in the image before it is packed.
            run(Command::new("umount").arg(&mnt));
            std::mem::forget(mounted);
        }
    }
}

/// A device image of the pool in the making.
struct Image {
    id: String,
    dev_id: u64,
    path: PathBuf,
    orphan: bool,
}

/// Builds a devicemapper-layout root at `dest` from the overlay2 root `src`.
fn overlay2_to_devicemapper(src: &Path, dest: &Path, work: &Path, fs_kind: Fs) -> Meta {
    // Copy through a read-only noatime bind: the source is evidence for other tests.
    let view = crate::mounts::noatime_bind(src);
    run(Command::new("cp").arg("-a").arg(view.path()).arg(dest));
    drop(view);
    devicemapper_in_place(dest, work, fs_kind)
}

/// Turns the overlay2 root `dest` (real or synthetic; a copy, or made for
/// the purpose) into a devicemapper root, working in `work`. In place,
/// since `cp` cannot copy paths longer than PATH_MAX.
pub fn devicemapper_in_place(dest: &Path, work: &Path, fs_kind: Fs) -> Meta {
    fs::create_dir_all(work).expect("mkdir work");
    let overlay2 = dest.join("overlay2");
    fs::create_dir_all(overlay2.join("empty-lower")).expect("mkdir empty-lower");
    let layers = overlay2_layers(&overlay2);
    let images_dir = work.join("images");
    fs::create_dir_all(&images_dir).expect("mkdir images");
    let mut images = Vec::new();
    let mut next_dev = 1u64;
    // The base device: an empty filesystem every layer was snapshotted from.
    let empty_stage = work.join("stage-base");
    fs::create_dir_all(&empty_stage).expect("mkdir stage-base");
    let base_img = images_dir.join("base.img");
    make_image(&empty_stage, &base_img, fs_kind, work);
    images.push(Image {
        id: "base".into(),
        dev_id: next_dev,
        path: base_img,
        orphan: false,
    });
    next_dev += 1;
    let mut lowers_of: HashMap<String, Vec<String>> = HashMap::new();
    for layer in &layers {
        let mut lowers = vec![format!("{}/diff", layer.id)];
        lowers.extend(layer.lower.iter().cloned());
        lowers.push("empty-lower".into());
        lowers_of.insert(layer.id.clone(), lowers.clone());
        let img = images_dir.join(format!("{}.img", layer.id));
        stage_and_make(&overlay2, &lowers, &layer.id, &img, fs_kind, work);
        images.push(Image {
            id: layer.id.clone(),
            dev_id: next_dev,
            path: img,
            orphan: false,
        });
        next_dev += 1;
    }
    // Two deleted containers' devices: a container's view plus a marker file.
    let donor = layers
        .iter()
        .filter(|l| !l.id.ends_with("-init") && !overlay2.join(&l.id).join("committed").exists())
        .max_by_key(|l| (l.lower.len(), l.id.clone()))
        .expect("a container layer");
    let marker = work.join("marker");
    fs::create_dir_all(&marker).expect("mkdir marker");
    fs::write(marker.join(ORPHAN_MARKER), "a deleted container's file\n").expect("marker");
    for label in ["orphan-no-metadata", DELETED_ID] {
        let mut lowers = vec![marker.to_string_lossy().into_owned()];
        lowers.extend(lowers_of[&donor.id].iter().cloned());
        let img = images_dir.join(format!("{label}.img"));
        stage_and_make(&overlay2, &lowers, label, &img, fs_kind, work);
        images.push(Image {
            id: label.into(),
            dev_id: next_dev,
            path: img,
            orphan: true,
        });
        next_dev += 1;
    }
    let meta = pack(&images, dest, work, fs_kind);
    write_docker_metadata(dest, &meta, fs_kind, next_dev);
    fs::remove_dir_all(&overlay2).expect("remove overlay2");
    fs::rename(dest.join("image/overlay2"), dest.join("image/devicemapper"))
        .expect("rename image store");
    for c in fs::read_dir(dest.join("containers")).expect("list containers") {
        let config = c.expect("entry").path().join("config.v2.json");
        let text = fs::read_to_string(&config).expect("read config.v2.json");
        fs::write(
            &config,
            text.replace("\"Driver\":\"overlay2\"", "\"Driver\":\"devicemapper\""),
        )
        .expect("write config");
    }
    meta
}

/// Stages `/rootfs` (the merged view of `lowers`) and `/id`, and makes the image.
fn stage_and_make(
    overlay2: &Path,
    lowers: &[String],
    id: &str,
    img: &Path,
    fs_kind: Fs,
    work: &Path,
) {
    let stage = work.join("stage");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(stage.join("rootfs")).expect("mkdir stage/rootfs");
    fs::write(stage.join("id"), id).expect("write id");
    let mounted = overlay(overlay2, lowers, &stage.join("rootfs"));
    make_image(&stage, img, fs_kind, work);
    drop(mounted);
}

/// Packs the images into the pool: `data` and (through thin_restore) `metadata`.
fn pack(images: &[Image], dest: &Path, work: &Path, fs_kind: Fs) -> Meta {
    let pool_dir = dest.join("devicemapper/devicemapper");
    fs::create_dir_all(&pool_dir).expect("mkdir pool dir");
    // Distinct non-zero blocks: where each was first seen.
    let mut index: HashMap<[u8; 32], u64> = HashMap::new();
    let mut first_seen: Vec<(usize, u64)> = Vec::new();
    let mut devices = Vec::new();
    let mut per_dev: Vec<Vec<(u64, u64)>> = Vec::new();
    for (n, img) in images.iter().enumerate() {
        let mut f = File::open(&img.path).expect("open image");
        let size = f.metadata().expect("stat image").len();
        let mut whole = Sha256::new();
        let mut buf = vec![0u8; BLOCK];
        let mut maps = Vec::new();
        let mut virt = 0u64;
        loop {
            let mut got = 0;
            while got < BLOCK {
                let k = f.read(&mut buf[got..]).expect("read image");
                if k == 0 {
                    break;
                }
                got += k;
            }
            if got == 0 {
                break;
            }
            buf[got..].fill(0);
            whole.update(&buf[..got]);
            if buf.iter().any(|&b| b != 0) {
                let h: [u8; 32] = Sha256::digest(&buf).into();
                let u = *index.entry(h).or_insert_with(|| {
                    first_seen.push((n, virt));
                    first_seen.len() as u64 - 1
                });
                maps.push((virt, u));
            }
            virt += 1;
        }
        devices.push(DmDevice {
            id: img.id.clone(),
            dev_id: img.dev_id,
            size,
            sha256: hex::encode(whole.finalize()),
            mapped_blocks: maps.len() as u64,
            mappings: Vec::new(),
            orphan: img.orphan,
        });
        per_dev.push(maps);
    }
    // Shuffle: distinct block u lives at data block slots[u], with gaps.
    let uniques = first_seen.len() as u64;
    let nr_data_blocks = uniques + uniques / 4 + 16;
    let mut slots: Vec<u64> = (0..nr_data_blocks).collect();
    let mut rng = Rng(0x5eed_d0c4_e700_0001);
    for i in (1..slots.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        slots.swap(i, j);
    }
    let data = File::create(pool_dir.join("data")).expect("create data");
    data.set_len(nr_data_blocks * BLOCK as u64)
        .expect("size data");
    let mut buf = vec![0u8; BLOCK];
    let mut open: HashMap<usize, File> = HashMap::new();
    for (u, &(n, virt)) in first_seen.iter().enumerate() {
        let f = open
            .entry(n)
            .or_insert_with(|| File::open(&images[n].path).expect("open image"));
        buf.fill(0);
        let mut got = 0;
        while got < BLOCK {
            let k = f
                .read_at(&mut buf[got..], virt * BLOCK as u64 + got as u64)
                .expect("read image");
            if k == 0 {
                break;
            }
            got += k;
        }
        data.write_all_at(&buf, slots[u] * BLOCK as u64)
            .expect("write data");
    }
    data.sync_all().expect("sync data");
    // Metadata, through thin_restore.
    let time = images.len() as u32;
    let transaction_id = images.len() as u64 + 3;
    let mut xml = format!(
        "<superblock uuid=\"\" time=\"{time}\" transaction=\"{transaction_id}\" version=\"2\" data_block_size=\"{DATA_BLOCK_SECTORS}\" nr_data_blocks=\"{nr_data_blocks}\">\n"
    );
    for (n, (dev, maps)) in devices.iter_mut().zip(&per_dev).enumerate() {
        dev.mappings = maps.iter().map(|&(v, u)| (v, slots[u as usize])).collect();
        let _ = writeln!(
            xml,
            "  <device dev_id=\"{}\" mapped_blocks=\"{}\" transaction=\"{}\" creation_time=\"{n}\" snap_time=\"{}\">",
            dev.dev_id,
            dev.mappings.len(),
            n,
            n + 1
        );
        // Runs of consecutive blocks as range mappings.
        let mut i = 0;
        while i < dev.mappings.len() {
            let (v0, d0) = dev.mappings[i];
            let mut len = 1;
            while i + len < dev.mappings.len()
                && dev.mappings[i + len] == (v0 + len as u64, d0 + len as u64)
            {
                len += 1;
            }
            if len == 1 {
                let _ = writeln!(
                    xml,
                    "    <single_mapping origin_block=\"{v0}\" data_block=\"{d0}\" time=\"{n}\"/>"
                );
            } else {
                let _ = writeln!(
                    xml,
                    "    <range_mapping origin_begin=\"{v0}\" data_begin=\"{d0}\" length=\"{len}\" time=\"{n}\"/>"
                );
            }
            i += len;
        }
        xml.push_str("  </device>\n");
    }
    xml.push_str("</superblock>\n");
    let xml_path = work.join("pool.xml");
    fs::write(&xml_path, &xml).expect("write pool.xml");
    let metadata = pool_dir.join("metadata");
    File::create(&metadata)
        .and_then(|f| f.set_len(64 << 20))
        .expect("create metadata");
    run(Command::new("thin_restore")
        .arg("-i")
        .arg(&xml_path)
        .arg("-o")
        .arg(&metadata));
    let _ = fs::remove_dir_all(work.join("images"));
    Meta {
        fs: fs_kind,
        devices,
        nr_data_blocks,
        transaction_id,
        time,
    }
}

/// docker's own bookkeeping: `metadata/<id>`, `base`, `deviceset-metadata`,
/// `transaction-metadata`, `mnt/<id>/`.
fn write_docker_metadata(dest: &Path, meta: &Meta, fs_kind: Fs, next_dev: u64) {
    let store = dest.join("devicemapper");
    let md = store.join("metadata");
    fs::create_dir_all(&md).expect("mkdir metadata");
    for (n, d) in meta.devices.iter().enumerate() {
        let deleted = d.id == DELETED_ID;
        if d.orphan && !deleted {
            continue; // no metadata file at all
        }
        let json = serde_json::json!({
            "device_id": d.dev_id,
            "size": d.size,
            "transaction_id": n as u64 + 1,
            "initialized": d.id == "base",
            "deleted": deleted,
        });
        fs::write(md.join(&d.id), json.to_string()).expect("write device metadata");
        if d.id != "base" && !deleted {
            fs::create_dir_all(store.join("mnt").join(&d.id)).expect("mkdir mnt");
        }
    }
    let set = serde_json::json!({
        "next_device_id": next_dev,
        "BaseDeviceUUID": UUID,
        "BaseDeviceFilesystem": fs_kind.name(),
    });
    fs::write(md.join("deviceset-metadata"), set.to_string()).expect("write deviceset-metadata");
    let tx = serde_json::json!({
        "open_transaction_id": meta.transaction_id,
        "device_hash": "",
        "device_id": 0,
    });
    fs::write(md.join("transaction-metadata"), tx.to_string()).expect("write transaction-metadata");
}

/// thin_dump's view of the pool: device id → (mapped blocks, every mapping).
pub fn thin_dump(metadata: &Path) -> BTreeMap<u64, (u64, Vec<(u64, u64)>)> {
    let out = Command::new("thin_dump")
        .arg(metadata)
        .output()
        .expect("run thin_dump");
    assert!(out.status.success(), "thin_dump: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let attr = |line: &str, name: &str| -> u64 {
        let pat = format!(" {name}=\"");
        let i = line
            .find(&pat)
            .unwrap_or_else(|| panic!("{name} in {line}"))
            + pat.len();
        let j = line[i..].find('"').expect("closing quote") + i;
        line[i..j].parse().expect("a number")
    };
    let mut devs = BTreeMap::new();
    let mut cur: Option<u64> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("<device ") {
            let d = attr(line, "dev_id");
            devs.insert(d, (attr(line, "mapped_blocks"), Vec::new()));
            cur = Some(d);
        } else if line.starts_with("<single_mapping ") {
            let e = devs.get_mut(&cur.expect("in a device")).expect("device");
            e.1.push((attr(line, "origin_block"), attr(line, "data_block")));
        } else if line.starts_with("<range_mapping ") {
            let e = devs.get_mut(&cur.expect("in a device")).expect("device");
            let (o, d, n) = (
                attr(line, "origin_begin"),
                attr(line, "data_begin"),
                attr(line, "length"),
            );
            e.1.extend((0..n).map(|k| (o + k, d + k)));
        }
    }
    devs
}

/// A copy of the root whose pool metadata `damage` may change (for hostile
/// metadata tests): hard links where possible would share inodes with the
/// evidence, so everything is copied.
pub fn scratch_copy(root: &Path, into: &Path) -> PathBuf {
    let view = crate::mounts::noatime_bind(root);
    let dest = into.join("docker");
    run(Command::new("cp").arg("-a").arg(view.path()).arg(&dest));
    dest
}
