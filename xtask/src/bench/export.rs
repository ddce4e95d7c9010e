//! Export benches: `export` and reads through `mount --fuse`, against GNU
//! tar over the container's kernel overlay mount.

use super::*;

/// Export benches: [`EXPORT_1GIB`] and [`EXPORT_100K`].
pub const BENCHES: &[MakeBench] = &[
    || Box::new(Export::new(&EXPORT_1GIB)),
    || Box::new(Export::new(&EXPORT_100K)),
    || Box::new(Export::fuse(&EXPORT_1GIB)),
    || Box::new(Export::fuse(&EXPORT_100K)),
];

/// The one container of each export root.
pub const EXPORT_CONTAINER: &str = "bench";

/// What distinguishes the export benches: only their root.
pub struct ExportSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Cache marker of the root; change it when `build` changes.
    pub version: &'static str,
    pub build: fn(&Path) -> Result<()>,
    /// Checks the kernel mount of the container (that the baseline reads
    /// the whole of it).
    pub check_mount: fn(&Path) -> Result<()>,
    /// The least number of bytes a complete tar stream of the container has.
    pub min_tar_bytes: u64,
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
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
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
pub fn write_pseudo_random(path: &Path, len: u64) -> Result<()> {
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
pub const MANY_DIRS: usize = 1000;
/// Files each layer puts in each directory.
pub const MANY_PER_DIR: usize = 50;
pub const MANY_FILES: usize = MANY_LAYERS * MANY_DIRS * MANY_PER_DIR;
/// File sizes are drawn from 1..=MANY_MAX_SIZE (about 2 KiB on average).
const MANY_MAX_SIZE: u64 = 4096;

pub static EXPORT_100K: ExportSpec = ExportSpec {
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

pub fn many_dir(d: usize) -> String {
    format!("srv/d{d:04}")
}

/// Layer `layer`'s share of the small files: in every directory, so that
/// each directory of the container merges both layers.
pub fn many_layer(layer: usize) -> Vec<Node> {
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
