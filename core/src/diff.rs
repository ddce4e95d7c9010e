//! What a container changed against its image, computed the way docker's
//! naive differ does (what `docker diff` runs on current kernels): the
//! container's merged view against the merged view of the layers below its
//! rw layer. An entry is Added, Deleted, or Changed when its mtime, mode,
//! owner, device number or (for non-directories) size differ; a directory
//! holding a change is Changed too, and listed before its contents.
//!
//! For layered drivers only directories present in the rw layer can differ,
//! so only those are compared; full-tree drivers compare everything.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::union::{Node, Stat, Union};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute inside the container (`/etc/passwd`).
    #[serde(serialize_with = "crate::pathfmt::serialize")]
    pub path: PathBuf,
    /// Driver id of the layer the previous version comes from (C and D).
    pub previous_layer: Option<String>,
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

struct Differ<'a> {
    union: &'a Union,
    /// Whether only directories present in the top layer can differ.
    layered: bool,
    out: Vec<Change>,
}

fn change(kind: ChangeKind, node: &Node, previous: Option<&Node>, union: &Union) -> Change {
    Change {
        kind,
        path: std::path::Path::new("/").join(&node.path),
        previous_layer: previous.map(|p| union.tree(p).id.clone()),
    }
}

impl Differ<'_> {
    /// Every entry below `dir` of the new view is added.
    fn all_added(&mut self, dir: &Node) -> Result<()> {
        for child in self.union.children(dir)? {
            self.out
                .push(change(ChangeKind::Added, &child, None, self.union));
            if child.stat.is_dir() {
                self.all_added(&child)?;
            }
        }
        Ok(())
    }

    /// Compares directory `new` (container view) with `old` (parent view).
    fn compare(&mut self, new: &Node, old: &Node) -> Result<()> {
        let new_children = self.union.children(new)?;
        let old_children = self.union.children(old)?;
        let names: BTreeSet<&[u8]> = new_children
            .iter()
            .chain(&old_children)
            .map(Node::name)
            .collect();
        for name in names {
            let n = new_children.iter().find(|c| c.name() == name);
            let o = old_children.iter().find(|c| c.name() == name);
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
                    if changed {
                        self.out
                            .push(change(ChangeKind::Changed, n, Some(o), self.union));
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
        Ok(())
    }
}

/// The changes of the top layer of `union` against the layers below it.
pub fn changes(union: &Union) -> Result<Vec<Change>> {
    let Some(top) = union.trees.first() else {
        return Ok(Vec::new());
    };
    if union.trees.len() < 2 {
        let mut differ = Differ {
            union,
            layered: false,
            out: Vec::new(),
        };
        differ.all_added(&union.root()?)?;
        return Ok(differ.out);
    }
    let mut differ = Differ {
        union,
        layered: top.style().is_some(),
        out: Vec::new(),
    };
    differ.compare(&union.root()?, &union.root_from(1)?)?;
    Ok(differ.out)
}
