//! The userspace view of a layer stack: a [`Tree`] per layer and a
//! [`Union`] that merges them with the whiteout rules of overlay and aufs
//! (storage-formats.md section 10). Export, diff, deleted, find and
//! timeline sit on it; it needs no root and no mount, and never writes.

pub mod stat;
pub mod tree;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

pub use stat::{FileKind, Stat, Time};
pub use tree::{Listing, Raw, Tree};

/// One entry of the merged view.
#[derive(Debug, Clone)]
pub struct Node {
    /// Relative to the view's root; empty for the root itself.
    pub path: PathBuf,
    pub stat: Stat,
    /// Index (top = 0) of the layer the entry comes from.
    pub layer: usize,
    /// For directories: the layers whose copy of it may contribute
    /// entries, top first (opacity is applied when listing).
    stack: Vec<usize>,
}

impl Node {
    pub fn name(&self) -> &[u8] {
        self.path.file_name().map_or(b"", |n| n.as_bytes())
    }
}

/// Layers merged top first.
#[derive(Debug)]
pub struct Union {
    pub trees: Vec<Tree>,
}

impl Union {
    pub fn new(trees: Vec<Tree>) -> Union {
        Union { trees }
    }

    /// The root directory of the view.
    pub fn root(&self) -> crate::Result<Node> {
        self.root_from(0)
    }

    /// The root directory of the view made of layer `first` and those below
    /// it: what a path looked like before the layers above `first`.
    pub fn root_from(&self, first: usize) -> crate::Result<Node> {
        let top = self
            .trees
            .get(first)
            .ok_or_else(|| crate::Error::Usage(format!("the view has no layer {first}")))?;
        let st = top.list_self_stat().map_err(|cause| crate::Error::Io {
            path: top.path().to_path_buf(),
            cause,
        })?;
        Ok(Node {
            path: PathBuf::new(),
            stat: st,
            layer: first,
            stack: (first..self.trees.len()).collect(),
        })
    }

    /// The listings of a directory's contributing layers, cut at the first opaque one.
    fn listings(&self, dir: &Node) -> crate::Result<Vec<(usize, Listing)>> {
        let mut listings = Vec::with_capacity(dir.stack.len());
        for &i in &dir.stack {
            let tree = &self.trees[i];
            let listing = tree.list(&dir.path).map_err(|cause| crate::Error::Io {
                path: tree.path().join(&dir.path),
                cause,
            })?;
            let opaque = listing.opaque;
            listings.push((i, listing));
            if opaque {
                break;
            }
        }
        Ok(listings)
    }

    /// The merged entries of a directory, sorted by name.
    pub fn children(&self, dir: &Node) -> crate::Result<Vec<Node>> {
        let listings = self.listings(dir)?;
        let mut names: Vec<&Vec<u8>> = listings
            .iter()
            .flat_map(|(_, l)| l.entries.keys())
            .collect();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            if let Some(node) = resolve(
                &dir.path,
                name,
                listings.iter().map(|(i, l)| (*i, l.entries.get(name))),
            ) {
                out.push(node);
            }
        }
        Ok(out)
    }

    /// The entry at `path` in the view (no symlink on the way is followed:
    /// a symlink where a directory is expected means "not found").
    pub fn lookup(&self, path: &Path) -> crate::Result<Option<Node>> {
        self.lookup_from(0, path)
    }

    /// [`Union::lookup`] in the view of layer `first` and those below it.
    pub fn lookup_from(&self, first: usize, path: &Path) -> crate::Result<Option<Node>> {
        let mut node = self.root_from(first)?;
        for component in path.components() {
            let name = match component {
                Component::Normal(n) => n.as_bytes(),
                Component::RootDir | Component::CurDir => continue,
                Component::ParentDir | Component::Prefix(_) => return Ok(None),
            };
            if !node.stat.is_dir() {
                return Ok(None);
            }
            let mut probes = Vec::with_capacity(node.stack.len());
            for &i in &node.stack {
                let tree = &self.trees[i];
                let (raw, opaque) =
                    tree.probe(&node.path, name)
                        .map_err(|cause| crate::Error::Io {
                            path: tree.path().join(&node.path),
                            cause,
                        })?;
                probes.push((i, raw));
                if opaque {
                    break;
                }
            }
            match resolve(
                &node.path,
                name,
                probes.iter().map(|(i, r)| (*i, r.as_ref())),
            ) {
                Some(next) => node = next,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// Visits every entry of the view, parents before children, names sorted.
    pub fn walk(&self, visit: &mut dyn FnMut(&Node) -> crate::Result<()>) -> crate::Result<()> {
        let root = self.root()?;
        visit(&root)?;
        self.walk_dir(&root, visit)
    }

    fn walk_dir(
        &self,
        dir: &Node,
        visit: &mut dyn FnMut(&Node) -> crate::Result<()>,
    ) -> crate::Result<()> {
        for child in self.children(dir)? {
            visit(&child)?;
            if child.stat.is_dir() {
                self.walk_dir(&child, visit)?;
            }
        }
        Ok(())
    }

    /// The layer an entry comes from.
    pub fn tree(&self, node: &Node) -> &Tree {
        &self.trees[node.layer]
    }
}

/// Merges one name across layers (top first): the topmost entry wins; a
/// whiteout or a non-directory ends the merge; directories below a
/// directory join its stack.
fn resolve<'a>(
    dir: &Path,
    name: &[u8],
    layers: impl Iterator<Item = (usize, Option<&'a Raw>)>,
) -> Option<Node> {
    let mut found: Option<Node> = None;
    for (i, raw) in layers {
        match raw {
            None => continue,
            Some(Raw::Whiteout) => break,
            Some(Raw::Entry(st)) => match &mut found {
                None => {
                    let is_dir = st.is_dir();
                    found = Some(Node {
                        path: dir.join(OsStr::from_bytes(name)),
                        stat: st.clone(),
                        layer: i,
                        stack: if is_dir { vec![i] } else { Vec::new() },
                    });
                    if !is_dir {
                        break;
                    }
                }
                Some(node) if st.is_dir() => node.stack.push(i),
                Some(_) => break,
            },
        }
    }
    found
}
