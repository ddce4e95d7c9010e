//! What the layers of a stack deleted, and how to get it back: every
//! whiteout and opaque directory of every layer (the container's rw and
//! init layers and the image's), each with the entries it hid in the view
//! of the layers below it; and the reading of one file from the view or
//! from a single layer, even where a higher layer deleted it.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::evidence::pathfmt;
use crate::evidence::userns::{ContainerIds, IdMap};
use crate::model::stack::Role;
use crate::union::view::View;
use crate::union::{FileKind, Node, Raw, Tree, Union};
use docker_mount_core::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeletionKind {
    /// A whiteout: the name is deleted in the layers below.
    Whiteout,
    /// An opaque directory: everything the layers below held in it is deleted.
    Opaque,
    /// A full-tree layer (vfs, btrfs) lacks what its parent had: found by
    /// comparison, since such layers hold no whiteouts.
    Missing,
}

impl DeletionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionKind::Whiteout => "whiteout",
            DeletionKind::Opaque => "opaque",
            DeletionKind::Missing => "missing",
        }
    }
}

/// One whiteout or opaque directory of one layer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Deletion {
    /// Absolute inside the container (`/etc/passwd`), raw bytes escaped.
    #[serde(serialize_with = "crate::evidence::pathfmt::serialize")]
    pub path: PathBuf,
    pub kind: DeletionKind,
    /// Driver id of the layer holding the whiteout or opaque directory.
    pub layer: String,
    pub layer_role: Role,
    /// Chain id of that layer (image layers only).
    pub chain_id: Option<String>,
    /// What it hid in the view of the layers below, parents first. For a
    /// whiteout: the entry and, for a directory, everything beneath it
    /// (empty when it hid nothing). For an opaque directory: every entry
    /// the lower view held beneath it (or, when that was not a directory,
    /// the entry it replaced).
    pub hidden: Vec<Hidden>,
}

/// An entry of a lower layer that a deletion hid.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Hidden {
    /// Absolute inside the container.
    #[serde(serialize_with = "crate::evidence::pathfmt::serialize")]
    pub path: PathBuf,
    pub kind: FileKind,
    /// Content size (regular files only, else 0).
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// As stored on disk.
    pub uid: u32,
    pub gid: u32,
    /// As the container saw them, when the root's ids are remapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_ids: Option<ContainerIds>,
    /// RFC 3339, UTC, with nanoseconds.
    pub mtime: String,
    /// Seconds since the epoch.
    pub mtime_unix: i64,
    /// Hex sha256 of the content (regular files).
    pub sha256: Option<String>,
    /// Target of a symlink, escaped like paths.
    pub link_target: Option<String>,
    /// Driver id of the layer the entry comes from: where to recover it.
    pub layer: String,
    /// Why the content or target could not be read, if so.
    pub error: Option<String>,
}

fn io(tree: &Tree, rel: &Path, cause: std::io::Error) -> Error {
    Error::Io {
        path: tree.path().join(rel),
        cause,
    }
}

fn absolute(rel: &Path) -> PathBuf {
    Path::new("/").join(rel)
}

fn hidden(union: &Union, node: &Node) -> Hidden {
    let tree = union.tree(node);
    let st = &node.stat;
    let mut error = None;
    let sha256 = match st.kind {
        FileKind::File => match tree.sha256(&node.path) {
            Ok(h) => Some(h),
            Err(e) => {
                error = Some(io(tree, &node.path, e).to_string());
                None
            }
        },
        _ => None,
    };
    let link_target = match st.kind {
        FileKind::Symlink => match tree.readlink(&node.path) {
            Ok(t) => Some(pathfmt::escape(Path::new(OsStr::from_bytes(&t)))),
            Err(e) => {
                error = Some(io(tree, &node.path, e).to_string());
                None
            }
        },
        _ => None,
    };
    Hidden {
        path: absolute(&node.path),
        kind: st.kind,
        size: if st.kind == FileKind::File {
            st.size
        } else {
            0
        },
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        container_ids: None,
        mtime: docker_mount_core::time::format_rfc3339(st.mtime),
        mtime_unix: st.mtime.sec,
        sha256,
        link_target,
        layer: tree.id.clone(),
        error,
    }
}

/// Everything beneath a directory of the view, parents first, names sorted
/// (symlinks are entries, never followed).
fn below(union: &Union, dir: &Node, out: &mut Vec<Hidden>) -> Result<()> {
    union.walk_below(dir, &mut |child| {
        out.push(hidden(union, child));
        Ok(())
    })
}

/// The entry at `rel` in the view of the layers below `layer`.
fn lower_lookup(union: &Union, layer: usize, rel: &Path) -> Result<Option<Node>> {
    if layer + 1 >= union.trees.len() {
        return Ok(None);
    }
    union.lookup_from(layer + 1, rel)
}

struct Walker<'a> {
    view: &'a View,
    out: Vec<Deletion>,
}

impl Walker<'_> {
    fn record(&mut self, layer: usize, kind: DeletionKind, rel: &Path, hidden: Vec<Hidden>) {
        let l = &self.view.layers[layer];
        self.out.push(Deletion {
            path: absolute(rel),
            kind,
            layer: l.driver_id.clone(),
            layer_role: l.role,
            chain_id: l.chain_id.clone(),
            hidden,
        });
    }

    /// A full tree against the layer below it: what the parent had that this
    /// layer lacks, directory by directory.
    fn compare_full(&mut self, layer: usize, dir: &Path) -> Result<()> {
        let union = &self.view.union;
        let tree = &union.trees[layer];
        let Some(parent) = lower_lookup(union, layer, dir)?.filter(|n| n.stat.is_dir()) else {
            return Ok(()); // nothing below this directory: nothing can be missing
        };
        let listing = tree.list(dir).map_err(|e| io(tree, dir, e))?;
        for child in union.children(&parent)? {
            match listing.entries.get(child.name()) {
                None => {
                    let mut hid = vec![hidden(union, &child)];
                    if child.stat.is_dir() {
                        below(union, &child, &mut hid)?;
                    }
                    self.record(layer, DeletionKind::Missing, &child.path, hid);
                }
                Some(Raw::Entry(st)) if st.is_dir() && child.stat.is_dir() => {
                    self.compare_full(layer, &child.path)?
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The whiteouts and opaque directories of one layer, in path order: a
    /// loop over a stack of directory listings, not recursion, as evidence
    /// nests directories as deep as a path allows.
    fn walk(&mut self, layer: usize) -> Result<()> {
        let union = &self.view.union;
        let tree = &union.trees[layer];
        if tree.style().is_none() {
            return self.compare_full(layer, Path::new(""));
        }
        let mut pending = vec![self.enter(layer, PathBuf::new())?];
        while let Some((dir, entries)) = pending.last_mut() {
            let Some((name, raw)) = entries.next() else {
                pending.pop();
                continue;
            };
            let rel = dir.join(OsStr::from_bytes(&name));
            match raw {
                Raw::Whiteout => {
                    let mut hid = Vec::new();
                    if let Some(node) = lower_lookup(union, layer, &rel)? {
                        hid.push(hidden(union, &node));
                        if node.stat.is_dir() {
                            below(union, &node, &mut hid)?;
                        }
                    }
                    self.record(layer, DeletionKind::Whiteout, &rel, hid);
                }
                Raw::Entry(st) if st.is_dir() => {
                    let listed = self.enter(layer, rel)?;
                    pending.push(listed);
                }
                Raw::Entry(_) => {}
            }
        }
        Ok(())
    }

    /// Lists directory `dir` of `layer` for [`Walker::walk`], recording it
    /// when it is opaque.
    fn enter(
        &mut self,
        layer: usize,
        dir: PathBuf,
    ) -> Result<(PathBuf, std::collections::btree_map::IntoIter<Vec<u8>, Raw>)> {
        let union = &self.view.union;
        let tree = &union.trees[layer];
        let listing = tree.list(&dir).map_err(|e| io(tree, &dir, e))?;
        if listing.opaque {
            let mut hid = Vec::new();
            match lower_lookup(union, layer, &dir)? {
                Some(node) if node.stat.is_dir() => below(union, &node, &mut hid)?,
                // An opaque directory over a non-directory replaced it.
                Some(node) => hid.push(hidden(union, &node)),
                None => {}
            }
            self.record(layer, DeletionKind::Opaque, &dir, hid);
        }
        Ok((dir, listing.entries.into_iter()))
    }
}

/// Adds the container's view of every owner.
pub fn map_ids(found: &mut [Deletion], map: &IdMap) {
    for h in found.iter_mut().flat_map(|d| &mut d.hidden) {
        h.container_ids = Some(map.container_ids(h.uid, h.gid));
    }
}

/// Every whiteout and opaque directory of every layer of `view`, top layer
/// first, in path order within a layer, with what each hid.
pub fn deletions(view: &View) -> Result<Vec<Deletion>> {
    let mut walker = Walker {
        view,
        out: Vec::new(),
    };
    for layer in 0..view.union.trees.len().min(view.layers.len()) {
        walker.walk(layer)?;
    }
    Ok(walker.out)
}

/// The index of the layer of `view` named by `id`: a driver id, a chain id
/// (with or without `sha256:`), or a unique prefix of either. A prefix of
/// both `X` and `X-init` (docker's init layer) names `X`: its shortest
/// completion, of which every other match is an extension.
pub fn find_layer(view: &View, id: &str) -> Result<usize> {
    let want = id.strip_prefix("sha256:").unwrap_or(id);
    if want.is_empty() {
        return Err(Error::Usage("an empty layer id".into()));
    }
    let ids = |i: usize| {
        let l = &view.layers[i];
        std::iter::once(l.driver_id.as_str()).chain(l.chain_id.as_deref())
    };
    let n = view.layers.len().min(view.union.trees.len());
    if let Some(i) = (0..n).find(|&i| ids(i).any(|x| x == want)) {
        return Ok(i);
    }
    let matches: Vec<usize> = (0..n)
        .filter(|&i| ids(i).any(|x| x.starts_with(want)))
        .collect();
    let shortest = matches.iter().copied().find(|&a| {
        let a_id = view.layers[a].driver_id.as_str();
        matches
            .iter()
            .all(|&b| view.layers[b].driver_id.starts_with(a_id))
    });
    if let Some(i) = shortest {
        return Ok(i);
    }
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => Err(Error::Usage(format!(
            "no layer of this stack matches {id} (see `docker-mount info` for its layers)"
        ))),
        _ => Err(Error::Usage(format!(
            "{id} matches {} layers; give more of the id",
            matches.len()
        ))),
    }
}

/// The text of a kind for messages: "a directory", "a symlink", ...
fn kind_text(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "a regular file",
        FileKind::Dir => "a directory",
        FileKind::Symlink => "a symlink",
        FileKind::Fifo => "a fifo",
        FileKind::CharDev => "a character device",
        FileKind::BlockDev => "a block device",
        FileKind::Socket => "a socket",
    }
}

/// Opens the regular file at `path` (absolute or relative to the view's
/// root): in the merged view, or with `layer` in that single layer only,
/// even where a higher layer deleted it. Symlinks are never followed.
pub fn open_file(view: &View, path: &Path, layer: Option<usize>) -> Result<(Node, File)> {
    let union = &view.union;
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::RootDir))
        .collect();
    let shown = format!("/{}", pathfmt::escape(&rel));
    let node = match layer {
        None => union
            .lookup(&rel)?
            .ok_or_else(|| Error::Usage(format!("{shown}: no such file in the view; `docker-mount find {shown}` names the layers that hold or held it")))?,
        Some(i) => {
            let id = |i: usize| {
                view.layers
                    .get(i)
                    .map_or_else(|| union.trees[i].id.clone(), |l| l.driver_id.clone())
            };
            if i >= union.trees.len() {
                return Err(Error::Usage(format!("the view has no layer {i}")));
            }
            match union.lookup_from(i, &rel)? {
                Some(node) if node.layer == i => node,
                Some(node) => {
                    return Err(Error::Usage(format!(
                        "layer {} does not hold {shown} (the layer {} below it does)",
                        id(i),
                        id(node.layer)
                    )))
                }
                None => {
                    return Err(Error::Usage(format!(
                        "layer {} does not hold {shown}; `docker-mount find {shown}` names the layers that do",
                        id(i)
                    )))
                }
            }
        }
    };
    if node.stat.kind != FileKind::File {
        return Err(Error::Usage(format!(
            "{shown} is {}, not a regular file",
            kind_text(node.stat.kind)
        )));
    }
    let tree = union.tree(&node);
    let file = tree
        .open_file(&node.path)
        .map_err(|e| io(tree, &node.path, e))?;
    Ok((node, file))
}

#[cfg(test)]
mod tests {
    use crate::union::Time;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(
            docker_mount_core::time::format_rfc3339(Time { sec: 0, nsec: 0 }),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            docker_mount_core::time::format_rfc3339(Time {
                sec: 1_709_251_199,
                nsec: 5
            }),
            "2024-02-29T23:59:59.000000005Z"
        );
        assert_eq!(
            docker_mount_core::time::format_rfc3339(Time { sec: -1, nsec: 0 }),
            "1969-12-31T23:59:59.000000000Z"
        );
        assert_eq!(
            docker_mount_core::time::format_rfc3339(Time {
                sec: 951_782_400,
                nsec: 0
            }),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
