//! `cargo xtask bench [--runs N] [NAME...]`: speed as ratios against a
//! baseline measured side by side in the same run.
//!
//! Each bench prepares its input once (cached under `target/bench/<name>/`),
//! then times two commands with `Instant`: ours (the release `docker-mount`)
//! and a baseline doing comparable work with standard tools. Each gets one
//! untimed warm-up run, then `N` timed runs (default 5), interleaved so that
//! drift in the machine's load hits both alike; the median is reported. The
//! ratio is baseline/ours: above 1 we are faster. Nothing here asserts an
//! absolute time; a table is printed and the numbers are written to
//! `target/bench/results.json`.
//!
//! To add a bench: implement [`Bench`] and list its constructor in
//! [`LIST_BENCHES`] or [`EXPORT_BENCHES`] (or a new list in [`all`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use crate::build;
use docker_mount_tests::fixture::{
    ContainerOpts, ContainerState, ImageOpts, Node, RootBuilder, DEFAULT_MTIME,
};
use docker_mount_tests::full_tree;

const DEFAULT_RUNS: usize = 5;

/// What a bench gets from the harness.
pub struct Ctx {
    /// The release `docker-mount` (its plugins in `drivers/` beside it).
    pub bin: PathBuf,
    /// `target/bench`; a bench keeps its inputs in `dir.join(name)`.
    pub dir: PathBuf,
}

impl Ctx {
    /// `docker-mount --root <root> <args>`.
    fn ours(&self, root: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(root).args(args);
        cmd
    }
}

/// One benchmark: ours against a baseline on the same input.
pub trait Bench {
    fn name(&self) -> &'static str;
    /// One line for the table.
    fn description(&self) -> &'static str;
    /// Why the bench cannot run here (e.g. it needs root); it is then
    /// skipped with this message rather than failed.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// Prepares the input (reusing a cached one when complete).
    fn setup(&mut self, ctx: &Ctx) -> Result<()>;
    /// The command timed as ours. Its stdout goes to /dev/null.
    fn ours(&self, ctx: &Ctx) -> Command;
    /// The command timed as the baseline. Its stdout goes to /dev/null.
    fn baseline(&self, ctx: &Ctx) -> Command;
    /// Checks ours' stdout of the warm-up run, so that a fast failure is
    /// not mistaken for speed.
    fn check_ours(&self, _stdout: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Undoes what `setup` did that must not outlive the run (mounts).
    /// Called after every `setup`, also a failed one.
    fn teardown(&mut self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
}

type MakeBench = fn() -> Box<dyn Bench>;

/// Listing benches.
const LIST_BENCHES: &[MakeBench] = &[|| Box::new(List5000)];

/// Export benches: [`EXPORT_1GIB`] and [`EXPORT_100K`].
const EXPORT_BENCHES: &[MakeBench] = &[
    || Box::new(Export::new(&EXPORT_1GIB)),
    || Box::new(Export::new(&EXPORT_100K)),
    || Box::new(Export::fuse(&EXPORT_1GIB)),
    || Box::new(Export::fuse(&EXPORT_100K)),
];

/// Every bench, in run order.
fn all() -> Vec<Box<dyn Bench>> {
    [LIST_BENCHES, EXPORT_BENCHES, DM_BENCHES, DIFF_BENCHES]
        .concat()
        .into_iter()
        .map(|make| make())
        .collect()
}

// --------------------------------------------------------------- list-5000

const LIST_CONTAINERS: usize = 5000;

/// `list --all --json` on a root of 5,000 containers, against reading each
/// container's config.v2.json with `find -exec cat`.
struct List5000;

impl List5000 {
    fn root(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("list-5000/root")
    }
}

impl Bench for List5000 {
    fn name(&self) -> &'static str {
        "list-5000"
    }
    fn description(&self) -> &'static str {
        "list --all --json, 5,000 containers vs find -exec cat of each config.v2.json"
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(
            &ctx.dir.join("list-5000"),
            &format!("containers={LIST_CONTAINERS} v1"),
            |root| {
                let mut b = RootBuilder::new(root);
                let layer = b.layer(&[
                    Node::file("bin/sh", b"#!fake shell\n").mode(0o755),
                    Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                ]);
                let image = b.image(&["bench:1"], layer, ImageOpts::default());
                for i in 0..LIST_CONTAINERS {
                    let state = match i % 5 {
                        0 | 1 => ContainerState::Running,
                        2 => ContainerState::Exited(0),
                        3 => ContainerState::Exited(137),
                        _ => ContainerState::Created,
                    };
                    b.container(
                        &format!("bench-{i:05}"),
                        image,
                        ContainerOpts {
                            state,
                            ..ContainerOpts::default()
                        },
                    );
                }
                b.finish();
                Ok(())
            },
        )
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(&Self::root(ctx), &["list", "--all", "--json"])
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        let mut cmd = Command::new("find");
        cmd.arg(Self::root(ctx).join("containers")).args([
            "-name",
            "config.v2.json",
            "-exec",
            "cat",
            "{}",
            "+",
        ]);
        cmd
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(stdout).context("list --json printed no JSON array")?;
        ensure!(
            rows.len() == LIST_CONTAINERS,
            "list printed {} containers, expected {LIST_CONTAINERS}",
            rows.len()
        );
        let broken = rows.iter().filter(|r| !r["error"].is_null()).count();
        ensure!(broken == 0, "list reported {broken} unreadable containers");
        Ok(())
    }
}

/// Builds a root at `dir/root` with `build` unless `dir/complete` holds
/// `version`; the marker is written last, so an interrupted or failed build
/// is redone.
fn cached_root(dir: &Path, version: &str, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let marker = dir.join("complete");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == version) {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    eprintln!("xtask bench: building {}", dir.display());
    let start = Instant::now();
    build(&dir.join("root")).with_context(|| format!("cannot build {}", dir.display()))?;
    eprintln!(
        "xtask bench: built {} in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, version)?;
    Ok(())
}

// ------------------------------------------------------ export-1gib, -100k

/// The one container of each export root.
const EXPORT_CONTAINER: &str = "bench";

/// What distinguishes the export benches: only their root.
struct ExportSpec {
    name: &'static str,
    description: &'static str,
    /// Cache marker of the root; change it when `build` changes.
    version: &'static str,
    build: fn(&Path) -> Result<()>,
    /// Checks the kernel mount of the container (that the baseline reads
    /// the whole of it).
    check_mount: fn(&Path) -> Result<()>,
    /// The least number of bytes a complete tar stream of the container has.
    min_tar_bytes: u64,
}

/// `export <ctr> -o -` against GNU tar reading the same container through
/// a read-only kernel overlay mount (made in `setup` by `docker-mount
/// mount`, removed in `teardown`; needs root). Both streams go through a
/// pipe into `wc -c`: tar skips reading file contents when its archive is
/// /dev/null, and the byte count lets `check_ours` see a whole stream. The
/// page cache is warm for both (the warm-up runs read everything; it is
/// never dropped).
struct Export {
    spec: &'static ExportSpec,
    /// Time reading the container through our FUSE mount (`tar -cf -` of
    /// it) instead of `export`: issue 5's FUSE-vs-kernel ratio.
    fuse: bool,
    /// The mount points while mounted (kernel, then FUSE).
    mounted: Vec<PathBuf>,
}

impl Export {
    fn new(spec: &'static ExportSpec) -> Self {
        Export {
            spec,
            fuse: false,
            mounted: Vec::new(),
        }
    }
    fn fuse(spec: &'static ExportSpec) -> Self {
        Export {
            fuse: true,
            ..Export::new(spec)
        }
    }
    fn fuse_mount_point(&self, ctx: &Ctx) -> PathBuf {
        ctx.dir.join(format!("{}-fuse-mnt", self.spec.name))
    }
    fn root(&self, ctx: &Ctx) -> PathBuf {
        ctx.dir.join(self.spec.name).join("root")
    }
    /// Beside, not inside, the cached root directory, which a rebuild removes.
    fn mount_point(&self, ctx: &Ctx) -> PathBuf {
        ctx.dir.join(format!("{}-mnt", self.spec.name))
    }
}

/// `bash -c 'set -o pipefail; <producer> | wc -c' <args>`: the producer
/// sees `$1`, `$2`, ... and its failure is the command's.
fn into_wc(producer: &str, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -o pipefail; {producer} | wc -c"))
        .arg("xtask-bench")
        .args(args);
    cmd
}

/// Runs `cmd` to completion, failing with its stderr on a non-zero exit.
fn run_checked(mut cmd: Command) -> Result<()> {
    let what = describe(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Whether `dir` is the root of a mount (on another device than its parent).
fn is_mount_point(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| {
        std::fs::symlink_metadata(p)
            .map(|m| m.dev())
            .with_context(|| format!("cannot stat {}", p.display()))
    };
    Ok(dev(dir)? != dev(&dir.join(".."))?)
}

impl Bench for Export {
    fn name(&self) -> &'static str {
        match (self.fuse, self.spec.name) {
            (false, name) => name,
            (true, "export-1gib") => "fuse-read-1gib",
            (true, _) => "fuse-read-100k",
        }
    }
    fn description(&self) -> &'static str {
        if !self.fuse {
            return self.spec.description;
        }
        match self.spec.name {
            "export-1gib" => "tar -cf - | wc -c of the 1 GiB container through mount --fuse, vs through its kernel overlay mount (warm page cache)",
            _ => "tar -cf - | wc -c of the 100,000-file container through mount --fuse, vs through its kernel overlay mount (warm page cache)",
        }
    }
    fn unavailable(&self) -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        (unsafe { libc::geteuid() } != 0).then(|| {
            "needs root: the baseline tars a kernel overlay mount of the container \
             (run `cargo xtask bench` as root)"
                .to_string()
        })
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        let mnt = self.mount_point(ctx);
        std::fs::create_dir_all(&mnt)
            .with_context(|| format!("cannot create {}", mnt.display()))?;
        // Left by an interrupted run: unmount before the root may be rebuilt.
        if is_mount_point(&mnt)? {
            eprintln!(
                "xtask bench: unmounting {} left by an earlier run",
                mnt.display()
            );
            run_checked(self.umount(ctx, &mnt))?;
        }
        cached_root(
            &ctx.dir.join(self.spec.name),
            self.spec.version,
            self.spec.build,
        )?;
        let mut mount = ctx.ours(&self.root(ctx), &["mount", EXPORT_CONTAINER]);
        mount.arg(&mnt);
        run_checked(mount)?;
        self.mounted.push(mnt.clone());
        ensure!(
            is_mount_point(&mnt)?,
            "docker-mount mount succeeded but nothing is mounted on {}",
            mnt.display()
        );
        (self.spec.check_mount)(&mnt)
            .with_context(|| format!("the kernel mount on {} is not as built", mnt.display()))?;
        if self.fuse {
            let fmnt = self.fuse_mount_point(ctx);
            std::fs::create_dir_all(&fmnt)
                .with_context(|| format!("cannot create {}", fmnt.display()))?;
            if is_mount_point(&fmnt)? {
                run_checked(self.umount(ctx, &fmnt))?;
            }
            let mut mount = ctx.ours(
                &self.root(ctx),
                &["mount", "--fuse", "--background", EXPORT_CONTAINER],
            );
            mount.arg(&fmnt);
            run_checked(mount)?;
            self.mounted.push(fmnt.clone());
            (self.spec.check_mount)(&fmnt)
                .with_context(|| format!("the FUSE mount on {} is not as built", fmnt.display()))?;
        }
        Ok(())
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        if self.fuse {
            return into_wc(
                r#"tar -C "$1" -cf - ."#,
                &[self.fuse_mount_point(ctx).as_os_str()],
            );
        }
        into_wc(
            r#""$1" --root "$2" export "$3" -o -"#,
            &[
                ctx.bin.as_os_str(),
                self.root(ctx).as_os_str(),
                EXPORT_CONTAINER.as_ref(),
            ],
        )
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        into_wc(
            r#"tar -C "$1" -cf - ."#,
            &[self.mount_point(ctx).as_os_str()],
        )
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        let bytes: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("wc -c printed {text:?}"))?;
        ensure!(
            bytes >= self.spec.min_tar_bytes,
            "export wrote {bytes} bytes, expected at least {}",
            self.spec.min_tar_bytes
        );
        Ok(())
    }
    fn teardown(&mut self, ctx: &Ctx) -> Result<()> {
        let mut result = Ok(());
        while let Some(mnt) = self.mounted.pop() {
            if let Err(e) = run_checked(self.umount(ctx, &mnt)) {
                result = Err(e);
            }
        }
        result
    }
}

impl Export {
    fn umount(&self, ctx: &Ctx, mnt: &Path) -> Command {
        let mut cmd = Command::new(&ctx.bin);
        cmd.arg("umount").arg(mnt);
        cmd
    }
}

/// A deterministic pseudo-random stream (splitmix64): incompressible-looking
/// content, never sparse, the same on every build.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

const BIG_SIZE: u64 = 1 << 30;
/// Layer-relative path of the 1 GiB file.
const BIG_PATH: &str = "data/big.bin";

static EXPORT_1GIB: ExportSpec = ExportSpec {
    name: "export-1gib",
    description: "export -o - | wc -c, 1 GiB file in an image layer, vs tar -cf - of \
                  its kernel overlay mount | wc -c (warm page cache)",
    version: "big=1GiB v1",
    build: build_1gib,
    check_mount: |mnt| {
        let len = std::fs::metadata(mnt.join(BIG_PATH))?.len();
        ensure!(
            len == BIG_SIZE,
            "{BIG_PATH} has {len} bytes, not {BIG_SIZE}"
        );
        Ok(())
    },
    min_tar_bytes: BIG_SIZE,
};

/// A base layer, a layer with a placeholder for the 1 GiB file, an image
/// and a container; then the placeholder's content is replaced on disk by
/// 1 GiB of pseudo-random bytes, streamed (the fixture holds contents in
/// memory, and would tar them). The layer's layerdb `size` and tar-split
/// still describe the placeholder: export reads neither.
fn build_1gib(root: &Path) -> Result<()> {
    let mut b = RootBuilder::new(root);
    let base = b.layer(&[
        Node::file("bin/sh", b"#!fake shell\n").mode(0o755),
        Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ]);
    let data = b.layer_on(
        base,
        &[Node::file(BIG_PATH, b"placeholder for 1 GiB\n").mode(0o600)],
    );
    let image = b.image(&["bench-big:1"], data, ImageOpts::default());
    b.container(
        EXPORT_CONTAINER,
        image,
        ContainerOpts {
            rw: vec![Node::file("root/note", b"written by the container\n")],
            ..ContainerOpts::default()
        },
    );
    let fx = b.finish();
    let path = fx
        .overlay2()
        .join(&fx.layer(data).cache_id)
        .join("diff")
        .join(BIG_PATH);
    write_pseudo_random(&path, BIG_SIZE).with_context(|| format!("cannot write {}", path.display()))
}

/// Replaces the content of the existing file `path` by `len` pseudo-random
/// bytes, keeping its mtime at the fixture's.
fn write_pseudo_random(path: &Path, len: u64) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    let mut rng = SplitMix(0x00b1_6f11_e000_0001);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(DEFAULT_MTIME.unsigned_abs());
    file.set_modified(mtime)?;
    file.sync_all()?;
    Ok(())
}

const MANY_LAYERS: usize = 2;
const MANY_DIRS: usize = 1000;
/// Files each layer puts in each directory.
const MANY_PER_DIR: usize = 50;
const MANY_FILES: usize = MANY_LAYERS * MANY_DIRS * MANY_PER_DIR;
/// File sizes are drawn from 1..=MANY_MAX_SIZE (about 2 KiB on average).
const MANY_MAX_SIZE: u64 = 4096;

static EXPORT_100K: ExportSpec = ExportSpec {
    name: "export-100k",
    description: "export -o - | wc -c, 100,000 files of 1-4096 bytes in 1,000 dirs over \
                  2 image layers, vs tar -cf - of its kernel overlay mount | wc -c \
                  (warm page cache)",
    version: "files=2x1000x50 max=4096 v1",
    build: build_100k,
    check_mount: |mnt| {
        // One directory holds files from both layers.
        let dir = mnt.join(many_dir(MANY_DIRS - 1));
        let n = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .count();
        let want = MANY_LAYERS * MANY_PER_DIR;
        ensure!(n == want, "{} has {n} entries, not {want}", dir.display());
        Ok(())
    },
    // A header and at least one data block per file.
    min_tar_bytes: MANY_FILES as u64 * 1024,
};

fn many_dir(d: usize) -> String {
    format!("srv/d{d:04}")
}

/// Layer `layer`'s share of the small files: in every directory, so that
/// each directory of the container merges both layers.
fn many_layer(layer: usize) -> Vec<Node> {
    let mut rng = SplitMix(0x5a11_f11e_0000_0000 + layer as u64);
    let mut nodes = Vec::with_capacity(MANY_DIRS * MANY_PER_DIR);
    let mut content = vec![0u8; MANY_MAX_SIZE as usize];
    for d in 0..MANY_DIRS {
        for f in 0..MANY_PER_DIR {
            let len = 1 + (rng.next_u64() % MANY_MAX_SIZE) as usize;
            rng.fill(&mut content[..len]);
            let i = layer * MANY_PER_DIR + f;
            nodes.push(Node::file(
                format!("{}/f{i:03}", many_dir(d)),
                &content[..len],
            ));
        }
    }
    nodes
}

fn build_100k(root: &Path) -> Result<()> {
    let mut b = RootBuilder::new(root);
    let mut top = b.layer(&many_layer(0));
    for layer in 1..MANY_LAYERS {
        top = b.layer_on(top, &many_layer(layer));
    }
    let image = b.image(&["bench-many:1"], top, ImageOpts::default());
    b.container(
        EXPORT_CONTAINER,
        image,
        ContainerOpts {
            rw: vec![Node::file("root/note", b"written by the container\n")],
            ..ContainerOpts::default()
        },
    );
    b.finish();
    Ok(())
}

// ------------------------------------------------ dm-extract-1gib, dm-tree-1000

/// devicemapper benches: [`DmExtract`] and [`DmTree`].
const DM_BENCHES: &[MakeBench] = &[|| Box::new(DmExtract), || Box::new(DmTree)];

const THIN_RESTORE: &str = "thin_restore";
/// The pool's data block: docker's default 64 KiB (128 sectors).
const DM_BLOCK: u64 = 64 << 10;
/// Blocks per run of consecutive mappings.
const DM_RUN: u64 = 64;

/// A program on PATH or in /usr/sbin, /sbin.
fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The skeleton of a devicemapper root: `containers/`, `image/devicemapper/`
/// and the driver's directories; returns `devicemapper/`.
fn dm_skeleton(root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(root.join("containers"))?;
    std::fs::create_dir_all(root.join("image/devicemapper/layerdb/sha256"))?;
    std::fs::create_dir_all(root.join("image/devicemapper/imagedb/content/sha256"))?;
    let store = root.join("devicemapper");
    std::fs::create_dir_all(store.join("devicemapper"))?;
    std::fs::create_dir_all(store.join("metadata"))?;
    std::fs::write(
        store.join("metadata/deviceset-metadata"),
        r#"{"next_device_id":1001,"BaseDeviceFilesystem":"ext4"}"#,
    )?;
    Ok(store)
}

/// Writes the pool metadata of `devices` (each a list of runs: virtual
/// block, data block, length) with thin_restore.
fn dm_restore(store: &Path, nr_data_blocks: u64, devices: &[Vec<(u64, u64, u64)>]) -> Result<()> {
    use std::fmt::Write as _;
    let mut xml = format!(
        "<superblock uuid=\"\" time=\"1\" transaction=\"1\" version=\"2\" data_block_size=\"{}\" nr_data_blocks=\"{nr_data_blocks}\">\n",
        DM_BLOCK / 512
    );
    for (i, runs) in devices.iter().enumerate() {
        let mapped: u64 = runs.iter().map(|r| r.2).sum();
        let _ = writeln!(
            xml,
            "<device dev_id=\"{}\" mapped_blocks=\"{mapped}\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">",
            i + 1
        );
        for (v, d, n) in runs {
            let _ = writeln!(
                xml,
                "<range_mapping origin_begin=\"{v}\" data_begin=\"{d}\" length=\"{n}\" time=\"0\"/>"
            );
        }
        xml.push_str("</device>\n");
    }
    xml.push_str("</superblock>\n");
    let xml_path = store.join("pool.xml");
    std::fs::write(&xml_path, xml)?;
    let meta = store.join("devicemapper/metadata");
    std::fs::File::create(&meta)?.set_len(256 << 20)?;
    let mut cmd = Command::new(find_tool(THIN_RESTORE).context("thin_restore is missing")?);
    cmd.arg("-i").arg(&xml_path).arg("-o").arg(&meta);
    run_checked(cmd)?;
    std::fs::remove_file(&xml_path)?;
    Ok(())
}

fn dm_unavailable() -> Option<String> {
    find_tool(THIN_RESTORE).is_none().then(|| {
        "needs thin_restore (Debian's thin-provisioning-tools) to write the pool".to_string()
    })
}

const DM_EXTRACT_SIZE: u64 = 1 << 30;
const DM_EXTRACT_LAYER: &str = "bench-layer";

/// `extract` of a fully mapped 1 GiB thin device (in 4 MiB runs scattered
/// over the pool's data), sha256 included, against `dd` reading the same
/// bytes of `data` sequentially; both from disk (the data file's page cache
/// dropped first) and into `wc -c`.
struct DmExtract;

impl DmExtract {
    fn dir(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("dm-extract-1gib")
    }
    fn data(ctx: &Ctx) -> PathBuf {
        Self::dir(ctx).join("root/devicemapper/devicemapper/data")
    }
}

impl Bench for DmExtract {
    fn name(&self) -> &'static str {
        "dm-extract-1gib"
    }
    fn description(&self) -> &'static str {
        "extract -o - | wc -c of a 1 GiB thin device (256 scattered 4 MiB runs, sha256 \
         computed), vs dd bs=4M of the same bytes of the pool's data | wc -c; the data's \
         page cache is dropped before each run (dd iflag=nocache), so both read the disk"
    }
    fn unavailable(&self) -> Option<String> {
        dm_unavailable()
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(&Self::dir(ctx), "dm-extract 1GiB runs=64 v1", |root| {
            let store = dm_skeleton(root)?;
            let blocks = DM_EXTRACT_SIZE / DM_BLOCK;
            let runs = blocks / DM_RUN;
            let data = store.join("devicemapper/data");
            // The data, pseudo-random, with one run of slack.
            write_pseudo_random_new(&data, DM_EXTRACT_SIZE + DM_RUN * DM_BLOCK)?;
            // Run i of the device lives at data run order[i].
            let mut order: Vec<u64> = (0..runs).collect();
            let mut rng = SplitMix(0xd0c4_e700_0000_0001);
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let device: Vec<(u64, u64, u64)> = order
                .iter()
                .enumerate()
                .map(|(i, &o)| (i as u64 * DM_RUN, o * DM_RUN, DM_RUN))
                .collect();
            dm_restore(&store, blocks + DM_RUN, &[device])?;
            std::fs::write(
                store.join("metadata").join(DM_EXTRACT_LAYER),
                format!(
                    r#"{{"device_id":1,"size":{DM_EXTRACT_SIZE},"transaction_id":1,"initialized":false,"deleted":false}}"#
                ),
            )?;
            Ok(())
        })
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        into_wc(
            r#"dd if="$4" iflag=nocache count=0 status=none; "$1" --root "$2" extract --layer "$3" -o - 2>/dev/null"#,
            &[
                ctx.bin.as_os_str(),
                Self::dir(ctx).join("root").as_os_str(),
                DM_EXTRACT_LAYER.as_ref(),
                Self::data(ctx).as_os_str(),
            ],
        )
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        into_wc(
            r#"dd if="$1" iflag=nocache count=0 status=none; dd if="$1" bs=4M count=256 status=none"#,
            &[Self::data(ctx).as_os_str()],
        )
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        ensure!(
            text.trim() == DM_EXTRACT_SIZE.to_string(),
            "extract -o - wrote {text:?} bytes, not {DM_EXTRACT_SIZE}"
        );
        Ok(())
    }
}

/// Creates `path` holding `len` pseudo-random bytes.
fn write_pseudo_random_new(path: &Path, len: u64) -> Result<()> {
    std::fs::File::create(path)?;
    write_pseudo_random(path, len)
}

const DM_TREE_DEVICES: u64 = 1000;
/// Runs of [`DM_RUN`] blocks per device (1,024 mappings: a 64 MiB filesystem's worth).
const DM_TREE_RUNS: u64 = 16;

/// `layers --orphans --json` over a pool of 1,000 thin devices that no
/// layer names (every device's mapping tree is read, and each device
/// described through the plugin boundary), against `thin_dump` of the
/// same metadata.
struct DmTree;

impl DmTree {
    fn dir(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("dm-tree-1000")
    }
}

impl Bench for DmTree {
    fn name(&self) -> &'static str {
        "dm-tree-1000"
    }
    fn description(&self) -> &'static str {
        "layers --orphans --json, a thin pool of 1,000 devices of 1,024 mappings each \
         (every mapping tree read), vs thin_dump of its metadata"
    }
    fn unavailable(&self) -> Option<String> {
        dm_unavailable()
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        cached_root(
            &Self::dir(ctx),
            "dm-tree devices=1000 runs=16x64 v1",
            |root| {
                let store = dm_skeleton(root)?;
                let mut rng = SplitMix(0xd0c4_e700_0000_0002);
                let slots = 1u64 << 16;
                let devices: Vec<Vec<(u64, u64, u64)>> = (0..DM_TREE_DEVICES)
                    .map(|_| {
                        (0..DM_TREE_RUNS)
                            .map(|r| (r * 4 * DM_RUN, (rng.next_u64() % slots) * DM_RUN, DM_RUN))
                            .collect()
                    })
                    .collect();
                std::fs::File::create(store.join("devicemapper/data"))?
                    .set_len(slots * DM_RUN * DM_BLOCK)?;
                dm_restore(&store, slots * DM_RUN, &devices)
            },
        )
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(
            &Self::dir(ctx).join("root"),
            &["layers", "--orphans", "--json"],
        )
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        let mut cmd = Command::new(find_tool("thin_dump").unwrap_or_else(|| "thin_dump".into()));
        cmd.arg(Self::dir(ctx).join("root/devicemapper/devicemapper/metadata"));
        cmd
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        let n = text.matches("\"device-").count();
        ensure!(
            n as u64 >= DM_TREE_DEVICES,
            "layers --orphans listed {n} thin devices, expected {DM_TREE_DEVICES}"
        );
        Ok(())
    }
}

// ------------------------------------------- diff-100k-btrfs, -vs-overlay2

/// Full-tree diff benches: [`DiffBtrfs`] against reading every content, and
/// against the same diff on overlay2.
const DIFF_BENCHES: &[MakeBench] = &[
    || Box::new(DiffBtrfs { vs_overlay2: false }),
    || Box::new(DiffBtrfs { vs_overlay2: true }),
];

/// Size of the sparse btrfs image holding the diff benches' btrfs root.
const DIFF_BTRFS_IMAGE: u64 = 4 << 30;

/// `diff` of the container of [`EXPORT_100K`] (100,000 image files) made a
/// btrfs root: the same layers as subvolumes, each a snapshot of its
/// parent, in a loop-mounted btrfs image (mounted read-only in `setup`,
/// unmounted in `teardown`; needs root). Ours takes the snapshot-inode
/// shortcut. The baseline is either `diff --content full` on the same root
/// (every file read and compared) or `diff` of the overlay2 root it was
/// made from, which only walks the rw layer. Warm page cache.
struct DiffBtrfs {
    vs_overlay2: bool,
}

impl DiffBtrfs {
    fn dir(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("diff-100k-btrfs")
    }
    fn image(ctx: &Ctx) -> PathBuf {
        Self::dir(ctx).join("btrfs.img")
    }
    fn mount_point(&self, ctx: &Ctx) -> PathBuf {
        ctx.dir.join(format!("{}-mnt", self.name()))
    }
    fn root(&self, ctx: &Ctx) -> PathBuf {
        self.mount_point(ctx).join("docker")
    }

    /// The btrfs image, converted from the export-100k overlay2 root.
    fn build(ctx: &Ctx, mnt: &Path) -> Result<()> {
        let source = ctx.dir.join(EXPORT_100K.name);
        cached_root(&source, EXPORT_100K.version, EXPORT_100K.build)?;
        let dir = Self::dir(ctx);
        let version = format!("{} btrfs v1", EXPORT_100K.version);
        let marker = dir.join("complete");
        if std::fs::read_to_string(&marker).is_ok_and(|m| m == version) {
            return Ok(());
        }
        eprintln!("xtask bench: building {}", Self::image(ctx).display());
        let start = Instant::now();
        std::fs::create_dir_all(&dir)?;
        let _ = std::fs::remove_file(&marker);
        let image = Self::image(ctx);
        std::fs::File::create(&image)?.set_len(DIFF_BTRFS_IMAGE)?;
        let mut mkfs = Command::new(find_tool("mkfs.btrfs").context("mkfs.btrfs is missing")?);
        mkfs.args(["-q", "-f"]).arg(&image);
        run_checked(mkfs)?;
        mount_btrfs(&image, mnt, "loop")?;
        let converted = std::panic::catch_unwind(|| {
            full_tree::overlay2_to_full(&source.join("root"), &mnt.join("docker"), full_tree::BTRFS)
        });
        let mut umount = Command::new("umount");
        umount.arg(mnt);
        run_checked(umount)?;
        ensure!(converted.is_ok(), "converting the overlay2 root failed");
        eprintln!(
            "xtask bench: built {} in {:.1} s",
            image.display(),
            start.elapsed().as_secs_f64()
        );
        std::fs::write(&marker, version)?;
        Ok(())
    }
}

/// Mounts the btrfs `image` on `mnt` with `opts`.
fn mount_btrfs(image: &Path, mnt: &Path, opts: &str) -> Result<()> {
    std::fs::create_dir_all(mnt).with_context(|| format!("cannot create {}", mnt.display()))?;
    let mut mount = Command::new("mount");
    mount.args(["-t", "btrfs", "-o", opts]).arg(image).arg(mnt);
    run_checked(mount)
}

impl Bench for DiffBtrfs {
    fn name(&self) -> &'static str {
        if self.vs_overlay2 {
            "diff-100k-btrfs-vs-overlay2"
        } else {
            "diff-100k-btrfs"
        }
    }
    fn description(&self) -> &'static str {
        if self.vs_overlay2 {
            "diff of a container on 100,000 image files, btrfs root (snapshot-inode shortcut), \
             vs the same diff on the overlay2 root it was made from (warm page cache)"
        } else {
            "diff of a container on 100,000 image files, btrfs root, snapshot-inode shortcut vs \
             diff --content full reading every file (warm page cache)"
        }
    }
    fn unavailable(&self) -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("needs root: the btrfs root is a loop-mounted image".into());
        }
        ["mkfs.btrfs", "btrfs"]
            .into_iter()
            .find(|t| find_tool(t).is_none())
            .map(|t| format!("needs {t} (Debian's btrfs-progs)"))
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        let mnt = self.mount_point(ctx);
        std::fs::create_dir_all(&mnt)?;
        if is_mount_point(&mnt)? {
            eprintln!(
                "xtask bench: unmounting {} left by an earlier run",
                mnt.display()
            );
            let mut umount = Command::new("umount");
            umount.arg(&mnt);
            run_checked(umount)?;
        }
        Self::build(ctx, &mnt)?;
        mount_btrfs(&Self::image(ctx), &mnt, "ro,loop")
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(&self.root(ctx), &["diff", EXPORT_CONTAINER])
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        if self.vs_overlay2 {
            let overlay2 = ctx.dir.join(EXPORT_100K.name).join("root");
            return ctx.ours(&overlay2, &["diff", EXPORT_CONTAINER]);
        }
        ctx.ours(
            &self.root(ctx),
            &["diff", EXPORT_CONTAINER, "--content", "full"],
        )
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(stdout);
        ensure!(
            text == "A /root\nA /root/note\n",
            "diff printed {text:?}, not the container's one added file"
        );
        Ok(())
    }
    fn teardown(&mut self, ctx: &Ctx) -> Result<()> {
        let mnt = self.mount_point(ctx);
        if is_mount_point(&mnt)? {
            let mut umount = Command::new("umount");
            umount.arg(&mnt);
            run_checked(umount)?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ harness

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` once with stdout to /dev/null, failing on a non-zero exit.
fn time_once(mut cmd: Command) -> Result<Duration> {
    let what = describe(&cmd);
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    let took = start.elapsed();
    ensure!(status.success(), "{what} failed ({status})");
    Ok(took)
}

fn median(times: &[Duration]) -> f64 {
    let mut s: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

struct Measured {
    ours: Vec<Duration>,
    baseline: Vec<Duration>,
    ours_cmd: String,
    baseline_cmd: String,
}

fn measure(bench: &mut dyn Bench, ctx: &Ctx, runs: usize) -> Result<Measured> {
    let result = bench.setup(ctx).and_then(|()| {
        // Warm-up: fills the page cache, and checks that ours works.
        let mut warm = bench.ours(ctx);
        let what = describe(&warm);
        let out = warm
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {what}"))?;
        ensure!(out.status.success(), "{what} failed ({})", out.status);
        bench
            .check_ours(&out.stdout)
            .with_context(|| format!("{what}: unexpected output"))?;
        time_once(bench.baseline(ctx))?;
        let mut m = Measured {
            ours: Vec::new(),
            baseline: Vec::new(),
            ours_cmd: what,
            baseline_cmd: describe(&bench.baseline(ctx)),
        };
        for _ in 0..runs {
            m.ours.push(time_once(bench.ours(ctx))?);
            m.baseline.push(time_once(bench.baseline(ctx))?);
        }
        Ok(m)
    });
    let down = bench.teardown(ctx);
    match (result, down) {
        (Ok(m), Ok(())) => Ok(m),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(down)) => {
            eprintln!(
                "xtask bench: {}: teardown failed too: {down:#}",
                bench.name()
            );
            Err(e)
        }
    }
}

fn parse_args(args: &[String]) -> Result<(usize, Vec<String>)> {
    let mut runs = DEFAULT_RUNS;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = if a == "--runs" {
            Some(it.next().context("--runs needs a number")?.as_str())
        } else {
            a.strip_prefix("--runs=")
        };
        if let Some(v) = value {
            runs = v
                .parse()
                .with_context(|| format!("--runs {v}: not a number"))?;
            ensure!(runs > 0, "--runs must be at least 1");
        } else if a.starts_with('-') {
            bail!("bench: unknown option {a} (usage: cargo xtask bench [--runs N] [NAME...])");
        } else {
            names.push(a.clone());
        }
    }
    Ok((runs, names))
}

/// `cargo xtask bench [--runs N] [NAME...]`; `args` follow `bench`.
pub fn run(args: &[String]) -> Result<()> {
    let (runs, names) = parse_args(args)?;
    let mut benches = all();
    let known: Vec<&str> = benches.iter().map(|b| b.name()).collect();
    for n in &names {
        ensure!(
            known.contains(&n.as_str()),
            "no bench named {n} (known: {})",
            known.join(", ")
        );
    }
    benches.retain(|b| names.is_empty() || names.iter().any(|n| n == b.name()));

    let profile = build::build_drivers(true)?;
    let dir = build::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let ctx = Ctx {
        bin: profile.join("docker-mount"),
        dir,
    };

    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for bench in &mut benches {
        let name = bench.name();
        if let Some(why) = bench.unavailable() {
            eprintln!("xtask bench: {name} skipped: {why}");
            skipped.push(json!({ "name": name, "reason": why }));
            continue;
        }
        eprintln!("xtask bench: {name} ({runs} runs after 1 warm-up)");
        match measure(bench.as_mut(), &ctx, runs) {
            Ok(m) => {
                let (ours, base) = (median(&m.ours), median(&m.baseline));
                let ratio = base / ours;
                rows.push([
                    name.to_string(),
                    format!("{ours:.4}"),
                    format!("{base:.4}"),
                    format!("{ratio:.2}"),
                    bench.description().to_string(),
                ]);
                let secs = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
                json_rows.push(json!({
                    "name": name,
                    "description": bench.description(),
                    "ours_median_s": ours,
                    "baseline_median_s": base,
                    "ratio": ratio,
                    "ours_runs_s": secs(&m.ours),
                    "baseline_runs_s": secs(&m.baseline),
                    "ours_cmd": m.ours_cmd,
                    "baseline_cmd": m.baseline_cmd,
                }));
            }
            Err(e) => {
                eprintln!("xtask bench: {name} failed: {e:#}");
                failed.push(name);
            }
        }
    }

    print_table(&rows);
    let results = json!({
        "runs": runs,
        "warmup_runs": 1,
        "statistic": "median",
        "ratio": "baseline / ours (higher: we are faster)",
        "benches": json_rows,
        "skipped": skipped,
    });
    let path = ctx.dir.join("results.json");
    let mut text = serde_json::to_string_pretty(&results)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("xtask bench: results in {}", path.display());
    if !failed.is_empty() {
        bail!("bench(es) failed: {}", failed.join(", "));
    }
    Ok(())
}

fn print_table(rows: &[[String; 5]]) {
    let header = ["BENCH", "OURS (s)", "BASELINE (s)", "RATIO", "DESCRIPTION"];
    let mut width = header.map(str::len);
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    // Name left-aligned, numbers right-aligned, description last.
    let line = |c: [&str; 5]| {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
        );
    };
    line(header);
    for r in rows {
        line(std::array::from_fn(|i| r[i].as_str()));
    }
}
