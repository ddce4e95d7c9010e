//! The userspace view of a layer stack: a [`Tree`] per layer and a
//! [`Union`] that merges them with the whiteout rules of overlay and aufs
//! (storage-formats.md section 10). Export, diff, deleted, find and
//! timeline sit on it; it needs no root and no mount, and never writes. [`view`] opens a
//! container's or image's stack as one.

pub mod tree;
pub mod view;

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

pub use docker_mount_core::stat::{FileKind, Stat, Time};
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
        Lookup::new(self, first)?.get(path)
    }

    /// Visits every entry of the view, parents before children, names sorted.
    pub fn walk(&self, visit: &mut dyn FnMut(&Node) -> crate::Result<()>) -> crate::Result<()> {
        let root = self.root()?;
        visit(&root)?;
        self.walk_below(&root, visit)
    }

    /// Visits every entry below directory `dir`, parents before children,
    /// names sorted. A loop over a stack of sibling lists, not recursion:
    /// evidence nests directories as deep as a path allows (2,048 levels).
    pub fn walk_below(
        &self,
        dir: &Node,
        visit: &mut dyn FnMut(&Node) -> crate::Result<()>,
    ) -> crate::Result<()> {
        let mut pending = vec![self.children(dir)?.into_iter()];
        while let Some(siblings) = pending.last_mut() {
            let Some(child) = siblings.next() else {
                pending.pop();
                continue;
            };
            visit(&child)?;
            if child.stat.is_dir() {
                pending.push(self.children(&child)?.into_iter());
            }
        }
        Ok(())
    }

    /// The layer an entry comes from.
    pub fn tree(&self, node: &Node) -> &Tree {
        &self.trees[node.layer]
    }
}

/// Looks up paths in a view one after another, keeping open the
/// directories on the way to the last one: a path that shares parents with
/// the previous one costs only its own new names, and each name costs one
/// step from an open directory, whatever the depth (find looks up
/// thousands of sorted paths, some 2,000 levels deep).
#[derive(Debug)]
pub struct Lookup<'u> {
    union: &'u Union,
    /// The view's root, then each directory of the last path looked up.
    levels: Vec<Level>,
}

/// A directory of the view and, per layer of its stack, that layer's copy
/// once opened (`Some(None)`: missing in that layer).
#[derive(Debug)]
struct Level {
    node: Node,
    fds: Vec<Option<Option<OwnedFd>>>,
}

impl Level {
    fn new(node: Node) -> Level {
        let fds = node.stack.iter().map(|_| None).collect();
        Level { node, fds }
    }
}

impl<'u> Lookup<'u> {
    /// Lookups in the view of layer `first` and those below it.
    pub fn new(union: &'u Union, first: usize) -> crate::Result<Lookup<'u>> {
        Ok(Lookup {
            union,
            levels: vec![Level::new(union.root_from(first)?)],
        })
    }

    /// The entry at `path`, as [`Union::lookup_from`] finds it.
    pub fn get(&mut self, path: &Path) -> crate::Result<Option<Node>> {
        let mut names = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(n) => names.push(n.as_bytes()),
                Component::RootDir | Component::CurDir => continue,
                Component::ParentDir | Component::Prefix(_) => return Ok(None),
            }
        }
        let shared = self.levels[1..]
            .iter()
            .zip(&names)
            .take_while(|(level, name)| level.node.name() == **name)
            .count();
        self.levels.truncate(shared + 1);
        for (k, name) in names.iter().enumerate().skip(shared) {
            let j = self.levels.len() - 1;
            let mut probes = Vec::with_capacity(self.levels[j].node.stack.len());
            for s in 0..self.levels[j].node.stack.len() {
                self.open(j, s)?;
                let level = &self.levels[j];
                let tree = &self.union.trees[level.node.stack[s]];
                let (raw, opaque) = match &level.fds[s] {
                    Some(Some(fd)) => {
                        tree.probe_at(fd, &level.node.path, name).map_err(|cause| {
                            crate::Error::Io {
                                path: tree.path().join(&level.node.path),
                                cause,
                            }
                        })?
                    }
                    _ => (None, false),
                };
                probes.push((level.node.stack[s], raw));
                if opaque {
                    break;
                }
            }
            let dir = &self.levels[j].node.path;
            match resolve(dir, name, probes.iter().map(|(i, r)| (*i, r.as_ref()))) {
                Some(next) if next.stat.is_dir() => self.levels.push(Level::new(next)),
                // Only directories stay on the way; nothing is below the rest.
                Some(next) if k + 1 == names.len() => return Ok(Some(next)),
                _ => return Ok(None),
            }
        }
        Ok(self.levels.last().map(|l| l.node.clone()))
    }

    /// Opens the copy of level `j`'s directory in the `s`th layer of its
    /// stack, from the same layer's copy of its parent when open.
    fn open(&mut self, j: usize, s: usize) -> crate::Result<()> {
        if self.levels[j].fds[s].is_some() {
            return Ok(());
        }
        let level = &self.levels[j];
        let layer = level.node.stack[s];
        let tree = &self.union.trees[layer];
        let parent_fd = j.checked_sub(1).and_then(|p| {
            let parent = &self.levels[p];
            let ps = parent.node.stack.iter().position(|&l| l == layer)?;
            parent.fds[ps].as_ref()?.as_ref()
        });
        let opened = match parent_fd {
            Some(fd) => docker_mount_core::beneath::open_child_dir(fd.as_fd(), level.node.name()),
            None => tree.open_dir(&level.node.path),
        };
        let fd = docker_mount_core::beneath::absent_if_missing(opened).map_err(|cause| {
            crate::Error::Io {
                path: tree.path().join(&level.node.path),
                cause,
            }
        })?;
        self.levels[j].fds[s] = Some(fd);
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::*;
    use docker_mount_core::beneath::Beneath;
    use docker_mount_core::driver::WhiteoutStyle;

    /// Nests `levels` directories named `0`..`f` (cycling) below `dir`,
    /// through fds (the path may outgrow PATH_MAX), and creates the files
    /// `bottom` in the deepest one.
    fn nest(dir: &Path, levels: usize, bottom: &[&str]) {
        let open = |at: libc::c_int, name: &str| {
            let c = std::ffi::CString::new(name).unwrap();
            // SAFETY: valid dirfd and C string; the new fd is owned below.
            let fd = unsafe { libc::openat(at, c.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC) };
            assert!(fd >= 0, "open {name}");
            // SAFETY: a fresh fd we own.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        let mut fd = open(libc::AT_FDCWD, dir.to_str().unwrap());
        for i in 0..levels {
            let name = format!("{:x}", i % 16);
            let c = std::ffi::CString::new(name.as_str()).unwrap();
            // SAFETY: valid dirfd and C string.
            assert_eq!(
                unsafe { libc::mkdirat(fd.as_raw_fd(), c.as_ptr(), 0o755) },
                0
            );
            fd = open(fd.as_raw_fd(), &name);
        }
        for name in bottom {
            let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name);
            fs::write(p, name).unwrap();
        }
    }

    fn deep_path(levels: usize) -> PathBuf {
        (0..levels).map(|i| format!("{:x}", i % 16)).collect()
    }

    /// Two aufs layers: the upper whites out `a/b/c` and `x`, makes `o`
    /// opaque and puts a file where the lower has directory `d`.
    fn layers() -> (tempfile::TempDir, Union) {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["a/b/c", "d/e", "o/old", "x/y"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        for f in ["a/b/c/f", "a/b/kept", "d/e/f", "o/old/f", "x/y/f"] {
            fs::write(lower.join(f), f).unwrap();
        }
        for d in ["a/b", "o/new"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        for f in ["a/b/.wh.c", ".wh.x", "o/.wh..wh..opq", "o/new/f", "d"] {
            fs::write(upper.join(f), f).unwrap();
        }
        nest(&lower, 2040, &["f", "g"]);
        nest(&upper, 2040, &[".wh.f"]);
        let base = Beneath::open(t.path()).unwrap();
        let tree = |name: &str| {
            Tree::open(&base, Path::new(name), Some(WhiteoutStyle::Aufs), name).unwrap()
        };
        let union = Union::new(vec![tree("upper"), tree("lower")]);
        (t, union)
    }

    /// Lookups that share parents with the previous one, and those that
    /// do not, find what single lookups find; walks and lookups 2,040
    /// levels deep run on a 256 KiB stack: they are loops, not recursion.
    #[test]
    fn lookups_and_walks_of_deep_trees_need_no_deep_stack() {
        let (_t, union) = layers();
        let deep = deep_path(2040);
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let found = |l: &mut Lookup, p: &Path| l.get(p).unwrap().map(|n| n.layer);
                let mut cursor = Lookup::new(&union, 0).unwrap();
                let mut paths: Vec<PathBuf> = [
                    "", "a", "a/b", "a/b/c", "a/b/c/f", "a/b/kept", "d", "d/e", "d/e/f", "o",
                    "o/old", "o/new/f", "x", "x/y/f", "zz",
                ]
                .iter()
                .map(PathBuf::from)
                .collect();
                paths.extend(["0", "0/1/2", "g"].iter().map(|p| deep.join(p)));
                paths.extend([deep.join("f"), deep.join("g"), deep.clone()]);
                paths.sort();
                let mut expected = std::collections::BTreeMap::new();
                for p in &paths {
                    let one = found(&mut Lookup::new(&union, 0).unwrap(), p);
                    assert_eq!(found(&mut cursor, p), one, "{}", p.display());
                    expected.insert(p.clone(), one);
                }
                // Out of order too: back up, then down again.
                for p in paths.iter().rev() {
                    assert_eq!(found(&mut cursor, p), expected[p], "{}", p.display());
                }
                let at = |p: &str| expected[&PathBuf::from(p)];
                assert_eq!(at("a/b/c"), None, "whited out");
                assert_eq!(at("a/b/kept"), Some(1));
                assert_eq!(at("d"), Some(0));
                assert_eq!(at("d/e/f"), None, "below a file");
                assert_eq!(at("o/old"), None, "opaque");
                assert_eq!(at("o/new/f"), Some(0));
                assert_eq!(at("x"), None);
                assert_eq!(expected[&deep.join("g")], Some(1));
                assert_eq!(expected[&deep.join("f")], None);
                assert_eq!(
                    union
                        .lookup_from(1, &deep.join("f"))
                        .unwrap()
                        .map(|n| n.layer),
                    Some(1)
                );

                let mut seen = Vec::new();
                union
                    .walk(&mut |n| {
                        seen.push(n.path.clone());
                        Ok(())
                    })
                    .unwrap();
                // The root, the deep directories and `g`, and a, a/b,
                // a/b/kept, d, o, o/new, o/new/f.
                assert_eq!(seen.len(), 1 + 2040 + 1 + 7);
                let mut sorted = seen.clone();
                sorted.sort();
                assert_eq!(seen, sorted, "parents first, names sorted");
                assert!(seen.contains(&deep.join("g")) && !seen.contains(&deep.join("f")));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
