//! What a container changed against its image, the way `docker diff`
//! computes it for layered drivers: a walk of the read-write layer in name
//! order, each entry Added, Changed (it exists in a lower layer) or Deleted
//! (a whiteout, or an opaque directory that existed below), parents of
//! additions and deletions reported as changed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::union::{Raw, Stat, Tree, Union};

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

/// One change, with the lower layer that held the previous version.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute inside the container (`/etc/passwd`), raw bytes.
    #[serde(serialize_with = "crate::pathfmt::serialize")]
    pub path: PathBuf,
    /// Driver id of the topmost lower layer holding the path, if any.
    pub previous_layer: Option<String>,
}

struct Walker<'a> {
    rw: &'a Tree,
    lowers: &'a [Tree],
    changed_dirs: HashSet<PathBuf>,
    out: Vec<Change>,
}

fn io(tree: &Tree, rel: &Path, cause: std::io::Error) -> Error {
    Error::Io {
        path: tree.path().join(rel),
        cause,
    }
}

/// Docker's time comparison: equal, or equal seconds when either side
/// lacks nanoseconds (some filesystems and tar round them).
fn same_fs_time(a: &Stat, b: &Stat) -> bool {
    a.mtime == b.mtime || (a.mtime.sec == b.mtime.sec && (a.mtime.nsec == 0 || b.mtime.nsec == 0))
}

impl Walker<'_> {
    /// The topmost lower layer holding `rel` as a real entry (raw, as docker looks).
    fn in_lower(&self, rel: &Path) -> Result<Option<(usize, Stat)>> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().map_or(&[][..], |n| n.as_bytes());
        for (i, lower) in self.lowers.iter().enumerate() {
            if let (Some(Raw::Entry(st)), _) =
                lower.probe(parent, name).map_err(|e| io(lower, rel, e))?
            {
                return Ok(Some((i, st)));
            }
        }
        Ok(None)
    }

    fn record(&mut self, kind: ChangeKind, rel: &Path, is_dir: bool, previous: Option<usize>) {
        let path = Path::new("/").join(rel);
        if is_dir {
            self.changed_dirs.insert(path.clone());
        }
        if kind != ChangeKind::Changed {
            let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            if parent != Path::new("/") && !self.changed_dirs.contains(&parent) {
                let previous_layer = self.in_lower_id(&parent);
                self.out.push(Change {
                    kind: ChangeKind::Changed,
                    path: parent.clone(),
                    previous_layer,
                });
                self.changed_dirs.insert(parent);
            }
        }
        self.out.push(Change {
            kind,
            path,
            previous_layer: previous.map(|i| self.lowers[i].id.clone()),
        });
    }

    fn in_lower_id(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix("/").ok()?;
        self.in_lower(rel)
            .ok()
            .flatten()
            .map(|(i, _)| self.lowers[i].id.clone())
    }

    fn walk(&mut self, dir: &Path) -> Result<()> {
        let listing = self.rw.list(dir).map_err(|e| io(self.rw, dir, e))?;
        for (name, raw) in listing.entries {
            let rel = dir.join(OsStr::from_bytes(&name));
            let lower = self.in_lower(&rel)?;
            match raw {
                Raw::Whiteout => {
                    self.record(ChangeKind::Deleted, &rel, false, lower.map(|(i, _)| i))
                }
                Raw::Entry(st) if st.is_dir() => {
                    let opaque = self.rw.list(&rel).map_err(|e| io(self.rw, &rel, e))?.opaque;
                    match &lower {
                        // An opaque directory over an existing one: deleted and recreated.
                        Some((i, _)) if opaque => {
                            self.record(ChangeKind::Deleted, &rel, true, Some(*i))
                        }
                        Some((i, below)) => {
                            let same = below.is_dir()
                                && below.size == st.size
                                && below.mode == st.mode
                                && same_fs_time(&st, below);
                            if !same {
                                self.record(ChangeKind::Changed, &rel, true, Some(*i));
                            }
                        }
                        None => self.record(ChangeKind::Added, &rel, true, None),
                    }
                    self.walk(&rel)?;
                }
                Raw::Entry(_) => match lower {
                    Some((i, _)) => self.record(ChangeKind::Changed, &rel, false, Some(i)),
                    None => self.record(ChangeKind::Added, &rel, false, None),
                },
            }
        }
        Ok(())
    }
}

/// The changes of the top layer of `union` against the layers below it.
pub fn changes(union: &Union) -> Result<Vec<Change>> {
    let Some((rw, lowers)) = union.trees.split_first() else {
        return Ok(Vec::new());
    };
    if rw.style().is_none() {
        return Err(Error::Usage(
            "this container's layers are full trees; diff needs a layered (diff/whiteout) driver"
                .into(),
        ));
    }
    let mut walker = Walker {
        rw,
        lowers,
        changed_dirs: HashSet::new(),
        out: Vec::new(),
    };
    walker.walk(Path::new(""))?;
    Ok(walker.out)
}
