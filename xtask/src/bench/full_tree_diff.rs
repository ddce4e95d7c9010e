//! `diff` on a full-tree (btrfs) root: the snapshot-inode shortcut against
//! reading every file, and against overlay2.

use super::export::{EXPORT_100K, EXPORT_CONTAINER};
use super::*;

/// Full-tree diff benches: [`DiffBtrfs`] against reading every content, and
/// against the same diff on overlay2.
pub const BENCHES: &[MakeBench] = &[
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
