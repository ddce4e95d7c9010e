//! What a container changed against its image, computed the way docker's
//! naive differ does (what `docker diff` runs on current kernels): the
//! container's merged view against the merged view of the layers below its
//! rw layer. An entry is Added, Deleted, or Changed when its mtime, mode,
//! owner, device number or (for non-directories) size differ; a directory
//! holding a change is Changed too, and listed before its contents.
//!
//! Beyond docker: an entry the top layer holds itself whose metadata is all
//! equal has its content (a symlink its target) compared too, so a write
//! whose mtime was put back (`touch -r`) still shows as Changed. Where the
//! driver declares [`SNAPSHOT_INODES`] (btrfs), a regular file with the same
//! inode number, ctime and birth time as below is the same file, unread;
//! so is one an [`Unchanged`] proof vouches for (zfs: `dataset_shortcut`).
//!
//! For layered drivers only directories present in the rw layer can differ,
//! so only those are compared; full-tree drivers compare everything.

use std::path::PathBuf;

use serde::Serialize;

use crate::union::{FileKind, Node, Stat, Tree, Union};
use docker_mount_core::driver::WhiteoutStyle;
use docker_mount_core::driver_kit::{OVERLAY_NATIVE_DIFF, SNAPSHOT_INODES};
use docker_mount_core::error::Result;
use docker_mount_core::loader::LoadedDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum ChangeKind {
    #[serde(rename = "A")]
    Added,
    #[serde(rename = "C")]
    Changed,
    #[serde(rename = "D")]
    Deleted,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One change, with the layer that held the previous version.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute inside the container (`/etc/passwd`).
    #[serde(serialize_with = "crate::evidence::pathfmt::serialize")]
    pub path: PathBuf,
    /// Driver id of the layer the previous version comes from (C and D).
    pub previous_layer: Option<String>,
    /// Changed although type, mode, owner, size and mtime are equal: only
    /// the content (or a symlink's target) differs, which `docker diff`
    /// misses and a plain write does not leave (the mtime was put back).
    pub content_only: bool,
}

/// How entries whose metadata is all equal are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Content {
    /// Compare contents, except files snapshot inodes prove unchanged.
    #[default]
    Auto,
    /// Compare every content, trusting no inode (ctimes can be forged).
    Full,
    /// Metadata only, as `docker diff`.
    Off,
}

/// How [`changes`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub content: Content,
    /// The top layer is a snapshot of the one below (see [`SNAPSHOT_INODES`]).
    pub snapshot_inodes: bool,
    /// Report the top layer's own entries as the engine's native overlay
    /// differ does (see [`OVERLAY_NATIVE_DIFF`]).
    pub overlay_native: bool,
}

impl Options {
    /// `content` for a stack of `driver`: the inode shortcut only when the
    /// driver declares [`SNAPSHOT_INODES`] and `content` is `Auto`.
    pub fn for_driver(content: Content, driver: Option<&LoadedDriver>) -> Options {
        let declares = |feature: &str| driver.is_some_and(|d| d.has_feature(feature));
        Options {
            content,
            snapshot_inodes: content == Content::Auto && declares(SNAPSHOT_INODES),
            overlay_native: declares(OVERLAY_NATIVE_DIFF),
        }
    }
}

/// What the comparison of contents cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, schemars::JsonSchema)]
pub struct Stats {
    /// Entries with equal metadata whose content or target was read and compared.
    pub contents_compared: u64,
    /// Regular files with equal metadata proved unchanged by their inode
    /// (or an [`Unchanged`] proof), unread.
    pub proven_by_inode: u64,
}

/// The changes, in path order, what finding them read, and the contents
/// that could not be compared.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub stats: Stats,
    pub warnings: Vec<String>,
}

/// Docker's time comparison: equal, or equal seconds when either side
/// lacks nanoseconds (some filesystems and tar round them).
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.mtime.sec == b.mtime.sec
        && (a.mtime.nsec == b.mtime.nsec || a.mtime.nsec == 0 || b.mtime.nsec == 0)
}

/// Docker's metadata comparison (`statDifferent`): neither size nor mtime
/// measures a change of a directory.
fn differs(new: &Stat, old: &Stat) -> bool {
    new.kind != old.kind
        || new.mode != old.mode
        || new.uid != old.uid
        || new.gid != old.gid
        || new.rdev != old.rdev
        || (!new.is_dir() && (!same_time(new, old) || new.size != old.size))
}

/// Proof that a regular file of the top layer is its copy below, unread.
pub trait Unchanged {
    fn proves(&self, new: &Node, old: &Node) -> bool;
}

struct Differ<'a> {
    union: &'a Union,
    proof: Option<&'a dyn Unchanged>,
    /// Whether only directories present in the top layer can differ.
    layered: bool,
    options: Options,
    out: Vec<Change>,
    stats: Stats,
    warnings: Vec<String>,
}

fn change(kind: ChangeKind, node: &Node, previous: Option<&Node>, union: &Union) -> Change {
    Change {
        kind,
        path: std::path::Path::new("/").join(&node.path),
        previous_layer: previous.map(|p| union.tree(p).id.clone()),
        content_only: false,
    }
}

/// Whether `new` and `old` are one inode shared by a snapshot and its
/// parent: same number, ctime and birth time. Any write moves the ctime
/// (which no syscall sets back), and a new file that got the number of a
/// deleted one was born later.
fn same_inode(new: &Stat, old: &Stat) -> bool {
    new.ino == old.ino && new.ctime == old.ctime && new.btime.is_some() && new.btime == old.btime
}

impl Differ<'_> {
    /// Whether `new` and `old`, equal in metadata, differ in content or
    /// link target. Only entries the top layer holds itself can. What
    /// cannot be read is a warning, and the entry counts as unchanged.
    fn content_differs(&mut self, new: &Node, old: &Node) -> bool {
        if self.options.content == Content::Off || new.layer == old.layer {
            return false;
        }
        let (a, b) = (self.union.tree(new), self.union.tree(old));
        let same = match new.stat.kind {
            FileKind::File => {
                if self.options.snapshot_inodes && same_inode(&new.stat, &old.stat)
                    || self.proof.is_some_and(|p| p.proves(new, old))
                {
                    self.stats.proven_by_inode += 1;
                    return false;
                }
                a.same_content(b, &new.path)
            }
            FileKind::Symlink => {
                let target = |tree: &Tree| {
                    tree.readlink(&new.path)
                        .map_err(|e| tree.named(&new.path, e))
                };
                target(a).and_then(|t| Ok(t == target(b)?))
            }
            _ => return false,
        };
        self.stats.contents_compared += 1;
        same.map(|same| !same).unwrap_or_else(|e| {
            self.warnings.push(format!("content not compared: {e}"));
            false
        })
    }

    /// Every entry below `dir` of the new view is added.
    fn all_added(&mut self, dir: &Node) -> Result<()> {
        let (union, out) = (self.union, &mut self.out);
        union.walk_below(dir, &mut |child| {
            out.push(change(ChangeKind::Added, child, None, union));
            Ok(())
        })
    }

    /// Compares directory `new` (container view) with `old` (parent view).
    fn compare(&mut self, new: &Node, old: &Node) -> Result<()> {
        let new_children = self.union.children(new)?;
        let old_children = self.union.children(old)?;
        // Both listings are sorted by name: walk them side by side.
        let (mut ns, mut os) = (
            new_children.iter().peekable(),
            old_children.iter().peekable(),
        );
        loop {
            let (n, o) = match (ns.peek(), os.peek()) {
                (None, None) => return Ok(()),
                (Some(n), Some(o)) if n.name() == o.name() => (ns.next(), os.next()),
                (Some(n), Some(o)) if n.name() > o.name() => (None, os.next()),
                (Some(_), _) => (ns.next(), None),
                (None, Some(_)) => (None, os.next()),
            };
            match (n, o) {
                (Some(n), None) => {
                    self.out
                        .push(change(ChangeKind::Added, n, None, self.union));
                    if n.stat.is_dir() {
                        self.all_added(n)?;
                    }
                }
                (None, Some(o)) => {
                    self.out
                        .push(change(ChangeKind::Deleted, o, Some(o), self.union))
                }
                (Some(n), Some(o)) => {
                    let at = self.out.len();
                    let changed = differs(&n.stat, &o.stat);
                    let content_only = !changed && self.content_differs(n, o);
                    if changed || content_only {
                        self.out.push(Change {
                            content_only,
                            ..change(ChangeKind::Changed, n, Some(o), self.union)
                        });
                    }
                    let in_top = !self.layered || n.layer == 0;
                    if n.stat.is_dir() && o.stat.is_dir() && in_top {
                        self.compare(n, o)?;
                        if !changed && self.out.len() > at {
                            self.out
                                .insert(at, change(ChangeKind::Changed, n, Some(o), self.union));
                        }
                    } else if n.stat.is_dir() && !o.stat.is_dir() {
                        self.all_added(n)?;
                    }
                }
                (None, None) => {}
            }
        }
    }
}

/// The changes of the top layer of `union` against the layers below it.
pub fn changes(union: &Union, options: &Options) -> Result<Diff> {
    changes_proven(union, options, None)
}

/// [`changes`], files `proof` vouches for left unread.
pub fn changes_proven(
    union: &Union,
    options: &Options,
    proof: Option<&dyn Unchanged>,
) -> Result<Diff> {
    let Some(top) = union.trees.first() else {
        return Ok(Diff::default());
    };
    if options.overlay_native
        && top.style() == Some(WhiteoutStyle::Overlay)
        && union.trees.len() > 1
    {
        return native::changes(union);
    }
    let mut differ = Differ {
        union,
        proof,
        layered: top.style().is_some(),
        options: *options,
        out: Vec::new(),
        stats: Stats::default(),
        warnings: Vec::new(),
    };
    if union.trees.len() < 2 {
        differ.all_added(&union.root()?)?;
    } else {
        differ.compare(&union.root()?, &union.root_from(1)?)?;
    }
    Ok(Diff {
        changes: differ.out,
        stats: differ.stats,
        warnings: differ.warnings,
    })
}

/// The changes as containers/storage's native overlay differ
/// (`archive.OverlayChanges`, what `podman diff` runs when the kernel's
/// overlay mounts the layers) reports them: only what the top layer holds.
/// A whiteout is Deleted, and so is an opaque directory that hid an older
/// one (its entries are then Added); an entry that exists below is Changed
/// (a directory only when its size, mode or mtime differ), else Added; the
/// parent of an Added or Deleted entry is Changed unless already reported.
mod native {
    use std::collections::HashSet;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    use super::{same_time, Change, ChangeKind, Diff};
    use crate::union::{Listing, Lookup, Raw, Union};
    use docker_mount_core::error::{Error, Result};

    struct Walk<'a> {
        union: &'a Union,
        below: Lookup<'a>,
        /// Directories already reported.
        dirs: HashSet<PathBuf>,
        out: Vec<Change>,
    }

    impl Walk<'_> {
        fn push(&mut self, kind: ChangeKind, path: &Path, previous: Option<usize>) {
            if matches!(kind, ChangeKind::Added | ChangeKind::Deleted) {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if self.dirs.insert(parent.to_path_buf()) {
                        let previous = self.below.get(parent).ok().flatten().map(|n| n.layer);
                        self.record(ChangeKind::Changed, parent, previous);
                    }
                }
            }
            self.record(kind, path, previous);
        }

        fn record(&mut self, kind: ChangeKind, path: &Path, previous: Option<usize>) {
            self.out.push(Change {
                kind,
                path: Path::new("/").join(path),
                previous_layer: previous.map(|l| self.union.trees[l].id.clone()),
                content_only: false,
            });
        }

        fn list(&self, rel: &Path) -> Result<Listing> {
            let top = &self.union.trees[0];
            top.list(rel).map_err(|cause| Error::Io {
                path: top.path().join(rel),
                cause,
            })
        }

        /// Reports the entries of directory `rel` of the top layer, listed.
        fn dir(&mut self, rel: &Path, listing: Listing) -> Result<()> {
            for (name, raw) in listing.entries {
                let path = rel.join(OsStr::from_bytes(&name));
                let old = self.below.get(&path)?;
                let previous = old.as_ref().map(|n| n.layer);
                let Raw::Entry(st) = raw else {
                    self.push(ChangeKind::Deleted, &path, previous);
                    continue;
                };
                if !st.is_dir() {
                    let kind = if old.is_some() {
                        ChangeKind::Changed
                    } else {
                        ChangeKind::Added
                    };
                    self.push(kind, &path, previous);
                    continue;
                }
                let inner = self.list(&path)?;
                let kind = match &old {
                    Some(_) if inner.opaque => Some(ChangeKind::Deleted),
                    Some(o)
                        if o.stat.is_dir()
                            && o.stat.size == st.size
                            && o.stat.mode == st.mode
                            && same_time(&o.stat, &st) =>
                    {
                        None
                    }
                    Some(_) => Some(ChangeKind::Changed),
                    None => Some(ChangeKind::Added),
                };
                // Only a directory reported itself spares its parent-of-a-
                // change report (an unchanged one gets it from its entries).
                if let Some(kind) = kind {
                    self.push(kind, &path, previous);
                    self.dirs.insert(path.clone());
                }
                self.dir(&path, inner)?;
            }
            Ok(())
        }
    }

    pub(super) fn changes(union: &Union) -> Result<Diff> {
        let mut walk = Walk {
            union,
            below: Lookup::new(union, 1)?,
            dirs: HashSet::new(),
            out: Vec::new(),
        };
        let top = walk.list(Path::new(""))?;
        walk.dir(Path::new(""), top)?;
        Ok(Diff {
            changes: walk.out,
            ..Diff::default()
        })
    }
}
