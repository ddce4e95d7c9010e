//! The walk behind `find`: every distinct layer is read once, all of them
//! side by side, in path order, and each layer's record for a path (what
//! it holds, deletes or hides there) falls out of the walk itself.
//!
//! A directory of the walk is listed in every layer that holds it (for a
//! glob), or only the next name of the query is looked up (for a path).
//! What a layer has at a directory is carried down: a whiteout or a
//! non-directory there gives every path below the same `deleted` or
//! `hidden` record, and the deepest opaque directory on the way (every
//! directory of a full tree) hides what the layer lacks below it. These
//! are the rules of probing each path in each layer alone, at the cost of
//! one listing per directory per layer instead of one probe per path per
//! layer.
//!
//! Paths come out sorted (names sorted at each level, parents first), so
//! the first `limit` matches are the ones reported and the walk stops at
//! the next; each goes out as soon as its records are complete. Link
//! targets are read as the walk meets them; hashes, when asked, on every
//! core beside the walk, for the reported paths only.

use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{absolute, content, entry_meta, Glob, HiddenBy, Version, Warnings};
use crate::evidence::pathfmt;
use crate::model::parallel;
use crate::union::{FileKind, Listing, Raw, Tree};
use docker_mount_core::beneath;

/// One distinct layer: its slot (see `index_layers`) and its tree.
pub(super) struct Layer<'t> {
    pub slot: usize,
    pub tree: &'t Tree,
}

/// What the walk looks for.
pub(super) enum Target<'q> {
    /// One path, as names from the top.
    Path(Vec<&'q [u8]>),
    Glob(&'q Glob),
}

/// What one layer has at a directory of the walk.
enum At {
    /// The layer holds the directory (`fd` is `None` when it vanished
    /// before it could be opened). `hides`: the depth of the deepest
    /// directory down to this one that hides what is below it.
    Dir {
        fd: Option<OwnedFd>,
        listing: Listing,
        hides: Option<usize>,
    },
    /// Every path below gets this record.
    Gone(Version),
    /// The layer has nothing here or below.
    Absent,
}

/// A directory being walked: what each layer has there, and its merged
/// names still to visit.
struct Frame {
    at: Vec<At>,
    names: std::vec::IntoIter<Vec<u8>>,
    /// Glob states of the directory (empty for a path).
    states: Vec<bool>,
}

/// What one layer has at a child of a directory, before it is entered.
enum Child {
    Dir,
    Other(At),
}

struct Walker<'a, 't> {
    layers: &'a [Layer<'t>],
    target: &'a Target<'a>,
    warnings: &'a mut Warnings,
    /// Names from the top to the current directory.
    names: Vec<Vec<u8>>,
}

impl Walker<'_, '_> {
    /// The current directory's path, relative.
    fn rel(&self) -> PathBuf {
        self.names.iter().map(|n| OsStr::from_bytes(n)).collect()
    }

    /// The path of `name` in the current directory, relative, made in one
    /// allocation (one per path reported).
    fn rel_of(&self, name: &[u8]) -> PathBuf {
        let len = self.names.iter().map(|n| n.len() + 1).sum::<usize>() + name.len();
        let mut rel = PathBuf::with_capacity(len);
        for n in &self.names {
            rel.push(OsStr::from_bytes(n));
        }
        rel.push(OsStr::from_bytes(name));
        rel
    }

    /// What the walk needs of a directory: its listing, or for a path
    /// query only the next name of the query.
    fn read(&self, tree: &Tree, fd: &OwnedFd, rel: &Path) -> std::io::Result<Listing> {
        match self.target {
            Target::Glob(_) => tree.list_at(fd, rel),
            Target::Path(query) => {
                let mut listing = Listing::default();
                let Some(name) = query.get(self.names.len()) else {
                    return Ok(listing);
                };
                let (raw, opaque) = tree.probe_at(fd, rel, name)?;
                listing.opaque = opaque;
                if let Some(raw) = raw {
                    listing.entries.insert(name.to_vec(), raw);
                }
                Ok(listing)
            }
        }
    }

    /// Layer `i`'s state at the current directory, opened as `fd`;
    /// `hides` is what the parent hid.
    fn enter(&mut self, i: usize, fd: Option<OwnedFd>, hides: Option<usize>) -> At {
        let tree = self.layers[i].tree;
        let rel = self.rel();
        let listing = match &fd {
            Some(fd) => self.read(tree, fd, &rel),
            None => Ok(Listing::default()),
        };
        match listing {
            Ok(listing) => {
                let hides = if listing.opaque || tree.style().is_none() {
                    Some(self.names.len())
                } else {
                    hides
                };
                At::Dir { fd, listing, hides }
            }
            Err(e) => {
                self.warnings.push(format!(
                    "layer {}: cannot list /{}: {e}",
                    tree.id,
                    pathfmt::escape(&rel)
                ));
                At::Absent
            }
        }
    }

    /// The frame of the current directory from each layer's state there.
    fn frame(&mut self, at: Vec<At>, states: Vec<bool>) -> Frame {
        let mut names: Vec<Vec<u8>> = match self.target {
            Target::Path(query) => query
                .get(self.names.len())
                .map(|n| n.to_vec())
                .into_iter()
                .collect(),
            Target::Glob(_) => at
                .iter()
                .filter_map(|a| match a {
                    At::Dir { listing, .. } => Some(listing.entries.keys().cloned()),
                    _ => None,
                })
                .flatten()
                .collect(),
        };
        names.sort_unstable();
        names.dedup();
        Frame {
            at,
            names: names.into_iter(),
            states,
        }
    }

    /// Layer `i`'s record for `name` in the current directory (`at`), and
    /// what it has there.
    fn look(&self, i: usize, at: &At, name: &[u8]) -> (Option<Version>, Child) {
        match at {
            At::Absent => (None, Child::Other(At::Absent)),
            At::Gone(v) => (Some(v.clone()), Child::Other(At::Gone(v.clone()))),
            At::Dir { listing, hides, .. } => {
                let here = || {
                    let mut names: Vec<&[u8]> = self.names.iter().map(Vec::as_slice).collect();
                    names.push(name);
                    absolute(&names)
                };
                match listing.entries.get(name) {
                    None => {
                        let full = self.layers[i].tree.style().is_none();
                        let v = hides.map(|d| {
                            let names: Vec<&[u8]> =
                                self.names[..d].iter().map(Vec::as_slice).collect();
                            Version::Hidden {
                                at: absolute(&names),
                                by: if full {
                                    HiddenBy::FullTree
                                } else {
                                    HiddenBy::OpaqueDir
                                },
                            }
                        });
                        let child = v.clone().map_or(At::Absent, At::Gone);
                        (v, Child::Other(child))
                    }
                    Some(Raw::Whiteout) => {
                        let v = Version::Deleted { at: here() };
                        (Some(v.clone()), Child::Other(At::Gone(v)))
                    }
                    Some(Raw::Entry(st)) => {
                        let child = if st.is_dir() {
                            Child::Dir
                        } else {
                            Child::Other(At::Gone(Version::Hidden {
                                at: here(),
                                by: HiddenBy::NonDirectory,
                            }))
                        };
                        (Some(Version::Present(entry_meta(st))), child)
                    }
                }
            }
        }
    }
}

/// Each layer's record of a path, by slot: a vector sorted by slot, as
/// a path has few (a map's node would cost more than its records).
#[derive(Default)]
pub(super) struct Records(pub Vec<(usize, Version)>);

impl Records {
    pub fn insert(&mut self, slot: usize, v: Version) {
        match self.0.binary_search_by_key(&slot, |(s, _)| *s) {
            Ok(i) => self.0[i].1 = v,
            Err(i) => self.0.insert(i, (slot, v)),
        }
    }

    pub fn get(&self, slot: usize) -> Option<&Version> {
        let i = self.0.binary_search_by_key(&slot, |(s, _)| *s).ok()?;
        Some(&self.0[i].1)
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Version> {
        let i = self.0.binary_search_by_key(&slot, |(s, _)| *s).ok()?;
        Some(&mut self.0[i].1)
    }
}

/// A matching path (relative) and its records.
pub(super) type Found = (PathBuf, Records);

/// Where the walk gives each matching path (relative) and its records, in
/// order; the walk stops when it breaks.
pub(super) type Emit<'e> = dyn FnMut(PathBuf, Records) -> ControlFlow<()> + 'e;

/// A content to read: of path `p` in the layer of `slot`.
struct Job<'t> {
    p: usize,
    slot: usize,
    tree: &'t Tree,
    rel: PathBuf,
    kind: FileKind,
}

/// Jobs queued per reading thread before another is started.
const JOBS_PER_THREAD: usize = 16;

/// Walks `layers` for `target`, giving at most `limit` matching paths to
/// `emit`, in order; returns whether more matched. Without `hash`, link
/// targets are read as the walk meets them and each path goes out at
/// once. With it, the sha256 of regular files and link targets are read
/// on other threads (up to [`parallel::IO_THREADS`], started as jobs come)
/// while the walk goes on (from a cold root, both wait on the disk), and
/// the paths go out once all are read.
pub(super) fn walk(
    layers: &[Layer],
    target: &Target,
    limit: usize,
    hash: bool,
    warnings: &mut Warnings,
    emit: &mut Emit,
) -> bool {
    if !hash {
        return walk_records(layers, target, limit, warnings, &mut |rel, mut records| {
            for l in layers {
                if let Some(Version::Present(e)) = records.get_mut(l.slot) {
                    if e.kind == FileKind::Symlink {
                        content(l.tree, &rel, e.kind).apply(e);
                    }
                }
            }
            emit(rel, records)
        });
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(parallel::IO_THREADS * JOBS_PER_THREAD);
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|s| {
        let mut readers = Vec::new();
        let mut sent = 0usize;
        let mut found: Vec<Found> = Vec::new();
        let truncated = walk_records(layers, target, limit, warnings, &mut |rel, records| {
            for l in layers {
                let Some(Version::Present(e)) = records.get(l.slot) else {
                    continue;
                };
                if !matches!(e.kind, FileKind::File | FileKind::Symlink) {
                    continue;
                }
                if readers.len() < parallel::IO_THREADS && sent >= readers.len() * JOBS_PER_THREAD {
                    readers.push(s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            let Ok(job) = job else { return done };
                            done.push((job.p, job.slot, content(job.tree, &job.rel, job.kind)));
                        }
                    }));
                }
                sent += 1;
                // The readers stop only when the sender goes.
                let _ = tx.send(Job {
                    p: found.len(),
                    slot: l.slot,
                    tree: l.tree,
                    rel: rel.clone(),
                    kind: e.kind,
                });
            }
            found.push((rel, records));
            ControlFlow::Continue(())
        });
        drop(tx);
        for reader in readers {
            let done = match reader.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            for (p, slot, c) in done {
                if let Some(Version::Present(e)) = found[p].1.get_mut(slot) {
                    c.apply(e);
                }
            }
        }
        for (rel, records) in found {
            if emit(rel, records).is_break() {
                break;
            }
        }
        truncated
    })
}

/// The walk itself: the records of each path found, given to `on_match`
/// in order; whether more than `limit` paths matched.
fn walk_records(
    layers: &[Layer],
    target: &Target,
    limit: usize,
    warnings: &mut Warnings,
    on_match: &mut Emit,
) -> bool {
    if matches!(target, Target::Path(q) if q.is_empty()) {
        // `/` is a directory in every layer: no content to read.
        let _ = on_match(PathBuf::new(), root_records(layers, warnings));
        return false;
    }
    let mut matches = 0usize;
    let mut w = Walker {
        layers,
        target,
        warnings,
        names: Vec::new(),
    };
    let mut top = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let fd = match beneath::absent_if_missing(l.tree.open_dir(Path::new(""))) {
            Ok(fd) => fd,
            Err(e) => {
                w.warnings
                    .push(format!("layer {}: cannot open its top: {e}", l.tree.id));
                top.push(At::Absent);
                continue;
            }
        };
        top.push(w.enter(i, fd, None));
    }
    let start = match target {
        Target::Glob(g) => g.start(),
        Target::Path(_) => Vec::new(),
    };
    let first = w.frame(top, start);
    let mut stack = vec![first];
    // What each layer has at the current name: one buffer for the walk.
    let mut children = Vec::with_capacity(layers.len());
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.next() else {
            stack.pop();
            w.names.pop();
            continue;
        };
        let depth = w.names.len();
        let (matched, may_continue, states) = match target {
            Target::Glob(g) => {
                let next = g.step(&frame.states, &name);
                (g.accepts(&next), g.may_continue(&next), next)
            }
            Target::Path(q) => (depth + 1 == q.len(), depth + 1 < q.len(), Vec::new()),
        };
        let mut records = Records::default();
        children.clear();
        for (i, at) in frame.at.iter().enumerate() {
            let (record, child) = w.look(i, at, &name);
            if let Some(v) = record {
                records.insert(layers[i].slot, v);
            }
            children.push(child);
        }
        if matched {
            if matches == limit {
                return true;
            }
            matches += 1;
            if on_match(w.rel_of(&name), records).is_break() {
                return false;
            }
        }
        let any_dir = children.iter().any(|c| matches!(c, Child::Dir));
        let descend = match target {
            Target::Glob(_) => any_dir && may_continue,
            Target::Path(_) => may_continue,
        };
        if !descend {
            continue;
        }
        // Open the layers' copies of the child from their copies here.
        let fds: Vec<Option<std::io::Result<Option<OwnedFd>>>> = frame
            .at
            .iter()
            .zip(&children)
            .map(|(at, child)| match (at, child) {
                (At::Dir { fd: Some(fd), .. }, Child::Dir) => Some(beneath::absent_if_missing(
                    beneath::open_child_dir(fd.as_fd(), &name),
                )),
                (At::Dir { fd: None, .. }, Child::Dir) => Some(Ok(None)),
                _ => None,
            })
            .collect();
        let hides: Vec<Option<usize>> = frame
            .at
            .iter()
            .map(|at| match at {
                At::Dir { hides, .. } => *hides,
                _ => None,
            })
            .collect();
        w.names.push(name);
        let mut at = Vec::with_capacity(layers.len());
        for (i, (child, fd)) in children.drain(..).zip(fds).enumerate() {
            at.push(match (child, fd) {
                (Child::Other(state), _) => state,
                (Child::Dir, Some(Ok(fd))) => w.enter(i, fd, hides[i]),
                (Child::Dir, Some(Err(e))) => {
                    w.warnings.push(format!(
                        "layer {}: cannot open /{}: {e}",
                        layers[i].tree.id,
                        pathfmt::escape(&w.rel())
                    ));
                    At::Absent
                }
                (Child::Dir, None) => At::Absent,
            });
        }
        let next = w.frame(at, states);
        stack.push(next);
    }
    false
}

/// The records of `/` itself: every layer holds its top directory.
fn root_records(layers: &[Layer], warnings: &mut Warnings) -> Records {
    let mut records = Records::default();
    for l in layers {
        match l.tree.list_self_stat() {
            Ok(st) => {
                records.insert(l.slot, Version::Present(entry_meta(&st)));
            }
            Err(e) => warnings.push(format!("layer {}: cannot probe /: {e}", l.tree.id)),
        }
    }
    records
}
