//! `find`: the provenance of a path, or of every path matching a glob,
//! across all containers and images of a root: which layers hold it (and
//! what each holds), which layers deleted or hid it, which images are built
//! on those layers, and which version each container and image sees.
//!
//! Every distinct layer (keyed by its directory) is read once, raw, all of
//! them walked side by side in path order ([`walk`]): a whiteout is
//! "deleted here", and an opaque directory or a non-directory on the way is
//! "hidden here". What a container or image sees follows from those
//! records by the union's rules (the topmost layer of its stack with a
//! record decides). Broken containers, images and layers become warnings;
//! they never stop a search.
//!
//! # Queries
//!
//! A query is an absolute path. It is a glob when it holds an unescaped
//! `*`, `?` or `[`: `*` matches any bytes within one name, `**` as a whole
//! name matches any number of names (zero included), `?` one byte, and
//! `[...]` one byte of a set (`[a-z]`, `[!...]` or `[^...]` negated, `]`
//! first is literal). Names starting with `.` match like any other. The
//! query uses the escaping of the output ([`crate::evidence::pathfmt`]): `\xNN` is
//! the byte `NN`, `\\` a backslash, and `\*`, `\?`, `\[`, `\]` the
//! character itself; any other backslash is literal.
//!
//! The matcher is our own (about 150 lines) rather than `globset`: paths
//! from the evidence are raw bytes, often not UTF-8, the walk needs to know
//! whether a directory can still lead to a match (to prune), and a
//! forensic tool gains nothing from another dependency.
//!
//! # Metadata by default, contents with `hash`
//!
//! Like `find -printf`, a search reports each entry's metadata (type, size,
//! mode, owners, mtime, link target, device numbers) and reads nothing of
//! a file's content: `sha256` is null. With `hash` (`find --hash`), the
//! sha256 of every reported regular file is read too, which costs a read
//! of every byte of them (a glob over a whole image reads the image).
//! Link targets are always read: they are metadata.
//!
//! # JSON (`docker-mount find --json`), stable
//!
//! ```json
//! {
//!   "query": "/etc/passwd",          // as given, escaped like paths
//!   "glob": false,
//!   "limit": 1000,
//!   "hashed": false,                 // --hash: regular files' sha256 read
//!   "layers_examined": 7,            // distinct layers probed
//!   "paths": [{
//!     "path": "/etc/passwd",
//!     "layers": [{                   // base first (depth, then image < init < rw)
//!       "driver": "overlay2", "driver_id": "…", "chain_id": "…" | null,
//!       "diff_id": "…" | null, "role": "image" | "init" | "rw",
//!       "containers": [{"id": "…", "name": "web"}],   // rw/init layers: their container
//!       "images": [{"id": "…", "tags": ["small:1"]}], // image layers: images whose chain has it
//!       "state": "present" | "deleted" | "hidden",
//!       // present:
//!       "type": "file", "size": 26, "mode": "0644", "uid": 0, "gid": 0,
//!       "mtime": {"sec": 1614834367, "nsec": 0},
//!       "sha256": "…" | null,        // regular files, with --hash only
//!       "link_target": "…" | null,   // symlinks, escaped
//!       "device": [1, 3] | null,     // character and block devices
//!       "error": "…" | null,         // the content (or link) could not be read
//!       // deleted: "at": the whiteout (the path itself or an ancestor)
//!       // hidden: "at" and "by": "opaque_dir" | "non_directory" | "full_tree"
//!     }],
//!     "containers": [{"id": "…", "name": "web", "visible": true,
//!                     "layer": "…", "role": "rw", "state": "present", "at": null}],
//!     "images": [{"id": "…", "tags": ["small:1"], "visible": false,
//!                 "layer": "…", "role": "image", "state": "deleted", "at": "/etc/passwd"}]
//!   }],
//!   "truncated": false               // more paths matched than `limit`
//! }
//! ```
//!
//! A container or image is listed under a path when a layer of its stack
//! holds, deletes or hides it. `visible` is whether the path exists in its
//! merged view; `layer`/`role`/`state` name the layer whose version it sees
//! or, when not visible, the topmost layer of its stack that deleted or
//! hid the path (`at` tells where). A `hidden` record is kept only when a
//! layer below it (in its stack) holds the path: there was a copy to hide.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::evidence::pathfmt;
use crate::evidence::userns::{ContainerIds, IdMap};
use crate::model::root::DockerRoot;
use crate::model::stack::{self, Role, Stack, StackLayer};
use crate::union::view;
use crate::union::{FileKind, Stat, Time, Tree};
use docker_mount_core::error::{Error, Result};
use docker_mount_core::loader::Drivers;

mod walk;

/// Paths reported unless told otherwise.
pub const DEFAULT_LIMIT: usize = 1000;

// ---------------------------------------------------------------- queries

/// One element of a glob name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[...]`: inclusive byte ranges.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Tok {
    fn matches(&self, b: u8) -> bool {
        match self {
            Tok::Byte(x) => *x == b,
            Tok::One => true,
            Tok::Star => false,
            Tok::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated
            }
        }
    }
}

/// One `/`-separated part of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// `**`: any number of names.
    Any,
    Name(Vec<Tok>),
}

/// A parsed glob over absolute paths.
#[derive(Debug, Clone)]
pub struct Glob {
    segs: Vec<Seg>,
}

/// What to look for.
#[derive(Debug, Clone)]
pub enum Query {
    /// One path, relative to the root of the filesystem (empty = `/`).
    Path(PathBuf),
    Glob(Glob),
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// An escape at `s[i]` (a backslash): the byte it stands for and its length.
fn escape_at(s: &[u8], i: usize) -> (u8, usize) {
    match s.get(i + 1..) {
        Some([b'x', h, l, ..]) => match (hex_digit(*h), hex_digit(*l)) {
            (Some(h), Some(l)) => (h * 16 + l, 4),
            _ => (b'\\', 1),
        },
        Some([c @ (b'\\' | b'*' | b'?' | b'[' | b']'), ..]) => (*c, 2),
        _ => (b'\\', 1),
    }
}

/// Parses `[...]` starting at `s[i] == b'['`: the class and the index after it.
fn parse_class(s: &[u8], mut i: usize) -> Option<(Tok, usize)> {
    i += 1;
    let negated = matches!(s.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let b = *s.get(i)?;
        if b == b']' && !first {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        first = false;
        let (lo, n) = if b == b'\\' { escape_at(s, i) } else { (b, 1) };
        i += n;
        if s.get(i) == Some(&b'-') && s.get(i + 1).is_some_and(|&c| c != b']') {
            let (hi, n) = match s[i + 1] {
                b'\\' => escape_at(s, i + 1),
                c => (c, 1),
            };
            i += 1 + n;
            ranges.push((lo.min(hi), lo.max(hi)));
        } else {
            ranges.push((lo, lo));
        }
    }
}

/// The tokens of one name of a query.
fn parse_name(s: &[u8]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                let (b, n) = escape_at(s, i);
                toks.push(Tok::Byte(b));
                i += n;
            }
            b'*' => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
                i += 1;
            }
            b'?' => {
                toks.push(Tok::One);
                i += 1;
            }
            b'[' => match parse_class(s, i) {
                Some((tok, next)) => {
                    toks.push(tok);
                    i = next;
                }
                None => {
                    toks.push(Tok::Byte(b'['));
                    i += 1;
                }
            },
            b => {
                toks.push(Tok::Byte(b));
                i += 1;
            }
        }
    }
    toks
}

/// Whether a name matches the tokens of one glob name.
fn match_name(toks: &[Tok], name: &[u8]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match toks.get(t) {
            Some(Tok::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(tok) if tok.matches(name[n]) => {
                t += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, sn)) => {
                t = st + 1;
                n = sn + 1;
                star = Some((st, sn + 1));
            }
            None => return false,
        }
    }
    toks[t..].iter().all(|t| *t == Tok::Star)
}

impl Query {
    /// Parses an absolute path or glob (see the module documentation).
    pub fn parse(query: &[u8]) -> Result<Query> {
        if query.first() != Some(&b'/') {
            return Err(Error::Usage(format!(
                "{:?} is not an absolute path: give the path as the container sees it, e.g. /etc/passwd",
                pathfmt::escape(Path::new(OsStr::from_bytes(query)))
            )));
        }
        let mut segs = Vec::new();
        for part in query.split(|b| *b == b'/') {
            match part {
                b"" | b"." => continue,
                b".." => return Err(Error::Usage("a query may not contain `..`: give the path as the container sees it, e.g. /etc/passwd".into())),
                b"**" => segs.push(Seg::Any),
                _ => segs.push(Seg::Name(parse_name(part))),
            }
        }
        let literal = segs.iter().all(|s| match s {
            Seg::Any => false,
            Seg::Name(toks) => toks.iter().all(|t| matches!(t, Tok::Byte(_))),
        });
        if !literal {
            return Ok(Query::Glob(Glob { segs }));
        }
        let mut path = PathBuf::new();
        for seg in &segs {
            let Seg::Name(toks) = seg else { continue };
            let name: Vec<u8> = toks
                .iter()
                .filter_map(|t| match t {
                    Tok::Byte(b) => Some(*b),
                    _ => None,
                })
                .collect();
            if name.contains(&b'/') || name.contains(&0) {
                return Err(Error::Usage(
                    "a name in the query holds an escaped `/` or NUL byte".into(),
                ));
            }
            path.push(OsStr::from_bytes(&name));
        }
        Ok(Query::Path(path))
    }

    pub fn is_glob(&self) -> bool {
        matches!(self, Query::Glob(_))
    }
}

impl Glob {
    /// Whether an absolute path (`/a/b`) matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        let mut states = self.start();
        for name in path.split(|b| *b == b'/').filter(|n| !n.is_empty()) {
            states = self.step(&states, name);
        }
        self.accepts(&states)
    }

    /// `states[i]`: the path so far matches the first `i` parts.
    fn start(&self) -> Vec<bool> {
        let mut states = vec![false; self.segs.len() + 1];
        states[0] = true;
        self.close(&mut states);
        states
    }

    /// `**` may match no name.
    fn close(&self, states: &mut [bool]) {
        for i in 0..self.segs.len() {
            if states[i] && self.segs[i] == Seg::Any {
                states[i + 1] = true;
            }
        }
    }

    fn step(&self, states: &[bool], name: &[u8]) -> Vec<bool> {
        let mut next = vec![false; states.len()];
        for (i, seg) in self.segs.iter().enumerate() {
            if !states[i] {
                continue;
            }
            match seg {
                Seg::Any => next[i] = true,
                Seg::Name(toks) if match_name(toks, name) => next[i + 1] = true,
                Seg::Name(_) => {}
            }
        }
        self.close(&mut next);
        next
    }

    fn accepts(&self, states: &[bool]) -> bool {
        states[self.segs.len()]
    }

    /// Whether a path below the one with these states may still match.
    fn may_continue(&self, states: &[bool]) -> bool {
        states[..self.segs.len()].iter().any(|s| *s)
    }
}

// ---------------------------------------------------------------- report

/// A container, as listed in a report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ContainerName {
    pub id: String,
    pub name: String,
}

/// An image, as listed in a report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ImageName {
    pub id: String,
    pub tags: Vec<String>,
}

/// Why a layer's lower copies of a path do not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HiddenBy {
    /// An opaque directory on the way.
    OpaqueDir,
    /// A file, symlink, ... where a directory on the way was.
    NonDirectory,
    /// The layer is a complete tree (vfs, btrfs, zfs): lacking the path,
    /// it hides every lower copy; `at` is its deepest existing parent.
    FullTree,
}

/// An entry a layer holds at the path.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits in octal, setuid/setgid/sticky included (`"4755"`).
    pub mode: String,
    /// As stored on disk.
    pub uid: u32,
    pub gid: u32,
    /// As the container saw them, when the root's ids are remapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_ids: Option<ContainerIds>,
    pub mtime: Time,
    /// Of the content, for regular files when the search hashes
    /// (`find --hash`); null otherwise.
    pub sha256: Option<String>,
    /// For symlinks, escaped like paths.
    pub link_target: Option<String>,
    /// `[major, minor]` of device nodes.
    pub device: Option<(u64, u64)>,
    /// Why the content (or the link target) could not be read.
    pub error: Option<String>,
}

/// What one layer has at the path.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Version {
    Present(Entry),
    /// A whiteout at the path or at `at`, one of its parents.
    Deleted {
        #[serde(serialize_with = "crate::evidence::pathfmt::serialize")]
        at: PathBuf,
    },
    /// The layer lacks the path and hides the lower copies: `at` is an
    /// opaque directory or a non-directory on the way.
    Hidden {
        #[serde(serialize_with = "crate::evidence::pathfmt::serialize")]
        at: PathBuf,
        by: HiddenBy,
    },
}

impl Version {
    pub fn state(&self) -> &'static str {
        match self {
            Version::Present(_) => "present",
            Version::Deleted { .. } => "deleted",
            Version::Hidden { .. } => "hidden",
        }
    }

    fn at(&self) -> Option<&Path> {
        match self {
            Version::Present(_) => None,
            Version::Deleted { at } | Version::Hidden { at, .. } => Some(at),
        }
    }
}

/// One layer's record for a path.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LayerVersion {
    /// The layer (shared by every path's record of it).
    #[serde(flatten)]
    pub layer: Arc<LayerInfo>,
    #[serde(flatten)]
    pub version: Version,
}

/// A layer, as every record of it names it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LayerInfo {
    /// The storage driver (image store) holding the layer.
    pub driver: String,
    pub driver_id: String,
    pub chain_id: Option<String>,
    pub diff_id: Option<String>,
    pub role: Role,
    /// For rw and init layers: their container.
    pub containers: Vec<ContainerName>,
    /// For image layers: every image whose chain includes the layer.
    pub images: Vec<ImageName>,
    /// A layer directory no container or image records any more (the
    /// remnant of a removed one; see `layers --orphans`).
    pub orphan: bool,
}

/// Whether a container or image sees the path, and through which layer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Sight {
    pub visible: bool,
    /// Visible: the layer whose version is seen. Otherwise: the topmost
    /// layer of the stack that deleted or hid the path (null if none did).
    pub layer: Option<Arc<str>>,
    pub role: Option<Role>,
    /// That layer's state for the path.
    pub state: Option<&'static str>,
    /// Where it was deleted or hidden (whiteout, opaque dir, non-directory).
    #[serde(serialize_with = "serialize_opt_path")]
    pub at: Option<PathBuf>,
}

/// Whether a container sees the path, and through which layer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ContainerSight {
    #[serde(flatten)]
    pub container: Arc<ContainerName>,
    #[serde(flatten)]
    pub sight: Sight,
}

/// Whether an image sees the path, and through which layer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ImageSight {
    #[serde(flatten)]
    pub image: Arc<ImageName>,
    #[serde(flatten)]
    pub sight: Sight,
}

/// Everything known about one path.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PathReport {
    /// Absolute, escaped in JSON.
    #[serde(serialize_with = "crate::evidence::pathfmt::serialize")]
    pub path: PathBuf,
    pub layers: Vec<LayerVersion>,
    pub containers: Vec<ContainerSight>,
    pub images: Vec<ImageSight>,
}

impl Report {
    /// Adds the container's view of every owner.
    pub fn map_ids(&mut self, map: &IdMap) {
        for p in &mut self.paths {
            p.map_ids(map);
        }
    }
}

impl PathReport {
    /// Adds the container's view of every owner.
    pub fn map_ids(&mut self, map: &IdMap) {
        for l in &mut self.layers {
            if let Version::Present(e) = &mut l.version {
                e.container_ids = Some(map.container_ids(e.uid, e.gid));
            }
        }
    }
}

/// The answer to a query.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub query: String,
    pub glob: bool,
    pub limit: usize,
    /// Whether regular files were hashed (`find --hash`): without it,
    /// every `sha256` is null and no file content was read.
    pub hashed: bool,
    pub layers_examined: usize,
    pub paths: Vec<PathReport>,
    /// More paths matched than `limit`; the first `limit` (by bytes) are
    /// reported. Last: it is known once the paths are written.
    pub truncated: bool,
    /// What was skipped or could not be read (for stderr).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

fn serialize_opt_path<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => pathfmt::serialize(p, s),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------- engine

enum Who {
    Container(Arc<ContainerName>),
    Image(Arc<ImageName>),
    /// An orphan layer directory, searched on its own.
    Orphan,
}

struct Subject {
    who: Who,
    stack: Stack,
    /// Slot of each stack layer, top first.
    slots: Vec<usize>,
}

/// One distinct layer.
struct Slot {
    driver: String,
    layer: StackLayer,
    /// Layers below it in its stack.
    depth: usize,
    owners: BTreeSet<usize>,
    /// Walked (through the first view that opened with it).
    probed: bool,
}

/// Warnings, each once, in order.
#[derive(Default)]
struct Warnings {
    seen: HashSet<String>,
    list: Vec<String>,
}

impl Warnings {
    fn push(&mut self, w: String) {
        if self.seen.insert(w.clone()) {
            self.list.push(w);
        }
    }
}

fn role_rank(role: Role) -> u8 {
    match role {
        Role::Image => 0,
        Role::Init => 1,
        Role::Rw => 2,
    }
}

/// Every container and image with its stack; broken ones become warnings.
fn subjects(root: &DockerRoot, drivers: &Drivers, warnings: &mut Warnings) -> Vec<Subject> {
    let mut containers = Vec::new();
    for item in root.containers() {
        match item {
            Err(e) => warnings.push(format!("container {}: {}", e.name, e.error)),
            Ok(c) => match stack::container_stack(root, drivers, &c) {
                Ok(stack) => containers.push(Subject {
                    who: Who::Container(Arc::new(ContainerName {
                        name: c.name().to_string(),
                        id: c.id.clone(),
                    })),
                    stack,
                    slots: Vec::new(),
                }),
                Err(e) => warnings.push(format!("container {} ({}) skipped: {e}", c.name(), c.id)),
            },
        }
    }
    let mut images = Vec::new();
    for item in root.images() {
        match item {
            Err(e) => warnings.push(format!("image {}: {}", e.name, e.error)),
            Ok(i) => match stack::image_stack(root, drivers, &i) {
                Ok(stack) => {
                    let mut tags = i.tags.clone();
                    tags.sort();
                    images.push(Subject {
                        who: Who::Image(Arc::new(ImageName {
                            id: i.id.clone(),
                            tags,
                        })),
                        stack,
                        slots: Vec::new(),
                    });
                }
                Err(e) => warnings.push(format!("image {} skipped: {e}", i.id)),
            },
        }
    }
    containers.sort_by_key(|s| match &s.who {
        Who::Container(c) => (c.name.clone(), c.id.clone()),
        _ => (String::new(), String::new()),
    });
    images.sort_by_key(|s| match &s.who {
        Who::Image(i) => (i.tags.is_empty(), i.tags.first().cloned(), i.id.clone()),
        _ => (true, None, String::new()),
    });
    containers.extend(images);
    containers.extend(orphans(root, drivers, warnings));
    containers
}

/// Every orphan layer directory as a one-layer subject: what removed
/// containers and images left behind is searched too.
fn orphans(root: &DockerRoot, drivers: &Drivers, warnings: &mut Warnings) -> Vec<Subject> {
    let inventory = crate::analysis::orphans::inventory(root, drivers, false);
    let found = inventory
        .layers
        .into_iter()
        .filter(|l| l.role == crate::analysis::orphans::LayerRole::Orphan);
    let mut out = Vec::new();
    for l in found {
        let Some(driver) = drivers.by_name(&l.driver) else {
            continue;
        };
        match stack::layer_stack(root, driver, &l.id) {
            Ok(stack) => out.push(Subject {
                who: Who::Orphan,
                stack,
                slots: Vec::new(),
            }),
            Err(e) => warnings.push(format!("orphan layer {} skipped: {e}", l.id)),
        }
    }
    out
}

/// Gives every stack layer its slot, one per distinct layer directory.
fn index_layers(subjects: &mut [Subject]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    let mut by_key: HashMap<PathBuf, usize> = HashMap::new();
    for (s, subject) in subjects.iter_mut().enumerate() {
        let n = subject.stack.layers.len();
        for (i, layer) in subject.stack.layers.iter().enumerate() {
            let key = match layer.source.dir() {
                Some(dir) => dir.to_path_buf(),
                None => PathBuf::from(format!("{}:{}", subject.stack.driver, layer.driver_id)),
            };
            let slot = *by_key.entry(key).or_insert_with(|| {
                slots.push(Slot {
                    driver: subject.stack.driver.clone(),
                    layer: layer.clone(),
                    depth: n - 1 - i,
                    owners: BTreeSet::new(),
                    probed: false,
                });
                slots.len() - 1
            });
            let owns = matches!(
                (&subject.who, layer.role),
                (Who::Image(_), Role::Image)
                    | (Who::Container(_), Role::Rw | Role::Init)
                    | (Who::Orphan, _)
            );
            if owns {
                slots[slot].owners.insert(s);
            }
            subject.slots.push(slot);
        }
    }
    slots
}

/// Opens a subject's view, its warnings noted; `None` (and a warning) if it fails.
fn open_view(root: &DockerRoot, subject: &Subject, warnings: &mut Warnings) -> Option<view::View> {
    if subject.stack.layers.is_empty() {
        return None;
    }
    let what = match &subject.who {
        Who::Container(c) => format!("container {} ({})", c.name, c.id),
        Who::Image(i) => format!("image {}", i.id),
        Who::Orphan => format!("orphan layer {}", subject.stack.layers[0].driver_id),
    };
    for w in &subject.stack.warnings {
        warnings.push(format!("{what}: {w}"));
    }
    match view::open(root, &subject.stack) {
        Ok(v) => {
            for w in &v.warnings {
                warnings.push(w.clone());
            }
            Some(v)
        }
        Err(e) => {
            warnings.push(format!("{what} skipped: cannot open its layers: {e}"));
            None
        }
    }
}

/// An entry's metadata; its content is read apart ([`content`]).
fn entry_meta(st: &Stat) -> Entry {
    Entry {
        kind: st.kind,
        size: st.size,
        mode: format!("{:04o}", st.mode),
        uid: st.uid,
        gid: st.gid,
        container_ids: None,
        mtime: st.mtime,
        sha256: None,
        link_target: None,
        device: matches!(st.kind, FileKind::CharDev | FileKind::BlockDev).then(|| st.rdev_parts()),
        error: None,
    }
}

/// What an entry holds: a file's hash or a symlink's target, or why it
/// could not be read.
struct Content {
    sha256: Option<String>,
    link_target: Option<String>,
    error: Option<String>,
}

impl Content {
    fn apply(self, e: &mut Entry) {
        e.sha256 = self.sha256;
        e.link_target = self.link_target;
        e.error = self.error;
    }
}

fn content(tree: &Tree, rel: &Path, kind: FileKind) -> Content {
    let mut c = Content {
        sha256: None,
        link_target: None,
        error: None,
    };
    match kind {
        FileKind::File => match tree.sha256(rel) {
            Ok(h) => c.sha256 = Some(h),
            Err(err) => c.error = Some(format!("cannot read the content: {err}")),
        },
        FileKind::Symlink => match tree.readlink(rel) {
            Ok(t) => c.link_target = Some(pathfmt::escape(Path::new(OsStr::from_bytes(&t)))),
            Err(err) => c.error = Some(format!("cannot read the link: {err}")),
        },
        _ => {}
    }
    c
}

/// A path of a layer as the container sees it: `/` and `names` joined.
fn absolute(names: &[&[u8]]) -> PathBuf {
    let mut p = PathBuf::from("/");
    p.extend(names.iter().map(|n| OsStr::from_bytes(n)));
    p
}

/// Searches every container and image of `root` for `query` (a path or a
/// glob, see the module documentation), reporting at most `limit` paths,
/// with the sha256 of their regular files when `hash` is set (their
/// metadata only otherwise). [`Search`] gives the paths one by one.
pub fn find(
    root: &DockerRoot,
    drivers: &Drivers,
    raw_query: &[u8],
    limit: usize,
    hash: bool,
) -> Result<Report> {
    let mut paths = Vec::new();
    let mut report = Search::open(root, drivers, raw_query, limit, hash)?.run(&mut |p| {
        paths.push(p);
        ControlFlow::Continue(())
    });
    report.paths = paths;
    Ok(report)
}

/// A search with its layers open, ready to walk: what [`find`] does, with
/// each path's report given as soon as it is complete, so that a big
/// answer is written while the walk goes on rather than held whole.
///
/// Each distinct layer is walked once, through the first view that opens
/// with it ([`walk`]); what a container or image sees at a path is the
/// record of the topmost layer of its stack that has one: visible when
/// that layer holds the path, not when it deletes or hides it (the union's
/// own rules, as a lookup in its view would find).
pub struct Search {
    query: Query,
    head: Report,
    warnings: Warnings,
    subjects: Vec<Subject>,
    slots: Vec<Slot>,
    /// Whether each subject's view opened (one that did not sees nothing).
    viewable: Vec<bool>,
    views: Vec<view::View>,
    /// Each layer to walk: (view, tree of the view, slot).
    picks: Vec<(usize, usize, usize)>,
}

impl Search {
    /// Parses `raw_query`, resolves every container's and image's stack
    /// and opens the views that bring layers not seen yet.
    pub fn open(
        root: &DockerRoot,
        drivers: &Drivers,
        raw_query: &[u8],
        limit: usize,
        hash: bool,
    ) -> Result<Search> {
        let query = Query::parse(raw_query)?;
        if limit == 0 {
            return Err(Error::Usage("--limit must be at least 1".into()));
        }
        let mut warnings = Warnings::default();
        let mut subjects = subjects(root, drivers, &mut warnings);
        let mut slots = index_layers(&mut subjects);
        let mut views = Vec::new();
        let mut viewable = vec![true; subjects.len()];
        let mut picks = Vec::new();
        for (s, subject) in subjects.iter().enumerate() {
            if subject.slots.iter().all(|&l| slots[l].probed) {
                continue;
            }
            let Some(v) = open_view(root, subject, &mut warnings) else {
                viewable[s] = false;
                continue;
            };
            for i in 0..v.union.trees.len() {
                let Some(&l) = subject.slots.get(i) else {
                    break;
                };
                if !slots[l].probed {
                    slots[l].probed = true;
                    picks.push((views.len(), i, l));
                }
            }
            views.push(v);
        }
        let head = Report {
            query: pathfmt::escape(Path::new(OsStr::from_bytes(raw_query))),
            glob: query.is_glob(),
            limit,
            hashed: hash,
            layers_examined: slots.iter().filter(|s| s.probed).count(),
            paths: Vec::new(),
            truncated: false,
            warnings: Vec::new(),
        };
        Ok(Search {
            query,
            head,
            warnings,
            subjects,
            slots,
            viewable,
            views,
            picks,
        })
    }

    /// The report's fields known before the walk (no paths, not truncated).
    pub fn head(&self) -> &Report {
        &self.head
    }

    /// Walks the layers, giving each matching path's report to `each` in
    /// order (on this thread, while the walk goes on on another); stops
    /// early when `each` breaks. Returns the report without
    /// its paths: whether more matched than `limit`, and the warnings.
    pub fn run(self, each: &mut dyn FnMut(PathReport) -> ControlFlow<()>) -> Report {
        let Search {
            query,
            mut head,
            mut warnings,
            subjects,
            slots,
            viewable,
            views,
            picks,
        } = self;
        let layers: Vec<walk::Layer> = picks
            .iter()
            .map(|&(v, i, slot)| walk::Layer {
                slot,
                tree: &views[v].union.trees[i],
            })
            .collect();
        let target = match &query {
            Query::Path(p) => walk::Target::Path(
                p.components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.as_bytes()),
                        _ => None,
                    })
                    .collect(),
            ),
            Query::Glob(glob) => walk::Target::Glob(glob),
        };
        let known = Known {
            subjects: &subjects,
            slots: &slots,
            viewable: &viewable,
            infos: slots
                .iter()
                .map(|slot| Arc::new(layer_info(slot, &subjects)))
                .collect(),
            ids: slots
                .iter()
                .map(|slot| Arc::from(slot.layer.driver_id.as_str()))
                .collect(),
        };
        let (limit, hash) = (head.limit, head.hashed);
        // The walk on its own thread, each path's report made (and given)
        // on this one: on a big glob the two take about as long.
        let (truncated, warnings) = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<walk::Found>>(BATCHES_IN_FLIGHT);
            let walker = s.spawn(move || {
                let mut batch = Vec::with_capacity(PATHS_PER_BATCH);
                let truncated = walk::walk(
                    &layers,
                    &target,
                    limit,
                    hash,
                    &mut warnings,
                    &mut |path, records| {
                        batch.push((path, records));
                        if batch.len() < PATHS_PER_BATCH {
                            return ControlFlow::Continue(());
                        }
                        let full =
                            std::mem::replace(&mut batch, Vec::with_capacity(PATHS_PER_BATCH));
                        match tx.send(full) {
                            Ok(()) => ControlFlow::Continue(()),
                            // `each` broke: nothing more is wanted.
                            Err(_) => ControlFlow::Break(()),
                        }
                    },
                );
                let _ = tx.send(batch);
                (truncated, warnings)
            });
            for (path, records) in rx.into_iter().flatten() {
                if each(known.path_report(path, records)).is_break() {
                    break;
                }
            }
            match walker.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        head.truncated = truncated;
        head.warnings = warnings.list;
        head
    }
}

/// Paths the walk hands over at once: one hand-over per path would cost
/// more in thread switches than it saves.
const PATHS_PER_BATCH: usize = 512;
/// Batches handed over but not yet reported.
const BATCHES_IN_FLIGHT: usize = 4;

/// What a path's report is made of besides the walk's records.
struct Known<'a> {
    subjects: &'a [Subject],
    slots: &'a [Slot],
    viewable: &'a [bool],
    /// Per slot, what every record of its layer names (made once: a big
    /// glob reports each layer in 100,000 paths).
    infos: Vec<Arc<LayerInfo>>,
    ids: Vec<Arc<str>>,
}

impl Known<'_> {
    /// The report of one path from each layer's record of it (by slot).
    fn path_report(&self, path: PathBuf, mut recs: walk::Records) -> PathReport {
        let (subjects, slots) = (self.subjects, self.slots);
        // The subjects a layer of whose stack has a record, and the slot
        // whose version each sees; the hidden records with a copy below
        // them (in some stack) to hide.
        let mut seen: Vec<(usize, Option<usize>)> = Vec::new();
        let mut effective: HashSet<usize> = HashSet::new();
        if !recs.0.is_empty() {
            for (s, subject) in subjects.iter().enumerate() {
                if !self.viewable[s] || subject.slots.is_empty() {
                    continue;
                }
                let mut top = None;
                let mut below = false;
                for l in subject.slots.iter().rev() {
                    let Some(v) = recs.get(*l) else { continue };
                    match v {
                        Version::Present(_) => below = true,
                        Version::Hidden { .. } if below => {
                            effective.insert(*l);
                        }
                        _ => {}
                    }
                    top = Some((*l, v));
                }
                if let Some((l, v)) = top {
                    seen.push((s, matches!(v, Version::Present(_)).then_some(l)));
                }
            }
        }
        recs.0
            .retain(|(l, v)| !matches!(v, Version::Hidden { .. }) || effective.contains(l));
        let mut report = PathReport {
            path: Path::new("/").join(path),
            layers: Vec::new(),
            containers: Vec::new(),
            images: Vec::new(),
        };
        for (s, sees) in seen {
            let subject = &subjects[s];
            let sight = match sees {
                Some(l) => Sight {
                    visible: true,
                    layer: Some(self.ids[l].clone()),
                    role: Some(slots[l].layer.role),
                    state: Some("present"),
                    at: None,
                },
                None => match subject
                    .slots
                    .iter()
                    .find_map(|l| recs.get(*l).map(|v| (l, v)))
                {
                    Some((l, v)) => Sight {
                        visible: false,
                        layer: Some(self.ids[*l].clone()),
                        role: Some(slots[*l].layer.role),
                        state: Some(v.state()),
                        at: v.at().map(Path::to_path_buf),
                    },
                    None => continue,
                },
            };
            match &subject.who {
                Who::Container(c) => report.containers.push(ContainerSight {
                    container: c.clone(),
                    sight,
                }),
                Who::Image(i) => report.images.push(ImageSight {
                    image: i.clone(),
                    sight,
                }),
                // An orphan is no view anyone sees: its layer row says it all.
                Who::Orphan => {}
            }
        }
        let mut layers: Vec<(usize, LayerVersion)> = recs
            .0
            .into_iter()
            .map(|(l, version)| {
                let layer = self.infos[l].clone();
                (l, LayerVersion { layer, version })
            })
            .collect();
        layers.sort_by(|(a, _), (b, _)| {
            let (a, b) = (&slots[*a], &slots[*b]);
            (a.depth, role_rank(a.layer.role), &a.layer.driver_id).cmp(&(
                b.depth,
                role_rank(b.layer.role),
                &b.layer.driver_id,
            ))
        });
        report.layers = layers.into_iter().map(|(_, l)| l).collect();
        report
    }
}

fn layer_info(slot: &Slot, subjects: &[Subject]) -> LayerInfo {
    let mut containers = Vec::new();
    let mut images = Vec::new();
    let mut orphan = false;
    for &s in &slot.owners {
        match &subjects[s].who {
            Who::Container(c) => containers.push(ContainerName::clone(c)),
            Who::Image(i) => images.push(ImageName::clone(i)),
            Who::Orphan => orphan = true,
        }
    }
    LayerInfo {
        driver: slot.driver.clone(),
        driver_id: slot.layer.driver_id.clone(),
        chain_id: slot.layer.chain_id.clone(),
        diff_id: slot.layer.diff_id.clone(),
        role: slot.layer.role,
        containers,
        images,
        orphan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(q: &[u8]) -> Glob {
        match Query::parse(q) {
            Ok(Query::Glob(g)) => g,
            other => panic!("{q:?} is not a glob: {other:?}"),
        }
    }

    #[test]
    fn plain_paths_and_escapes() {
        let Ok(Query::Path(p)) = Query::parse(b"/etc//./passwd") else {
            panic!("not a path")
        };
        assert_eq!(p, Path::new("etc/passwd"));
        let Ok(Query::Path(p)) = Query::parse(b"/names/latin1-\\xe9t\\xe9/back\\\\slash/a\\*")
        else {
            panic!("not a path")
        };
        assert_eq!(
            p.as_os_str().as_bytes(),
            b"names/latin1-\xe9t\xe9/back\\slash/a*"
        );
        assert!(Query::parse(b"etc/passwd").is_err());
        assert!(Query::parse(b"/etc/../passwd").is_err());
        assert!(Query::parse(b"/a\\x2fb").is_err());
    }

    #[test]
    fn globs() {
        let g = glob(b"/names/*");
        assert!(g.matches(b"/names/latin1-\xe9t\xe9"));
        assert!(g.matches(b"/names/.hidden"));
        assert!(!g.matches(b"/names"));
        assert!(!g.matches(b"/names/a/b"));
        let g = glob(b"/**/passwd");
        assert!(g.matches(b"/passwd"));
        assert!(g.matches(b"/etc/passwd"));
        assert!(g.matches(b"/a/b/c/passwd"));
        assert!(!g.matches(b"/etc/passwd-"));
        let g = glob(b"/etc/**");
        assert!(g.matches(b"/etc/a/b"));
        assert!(g.matches(b"/etc"));
        let g = glob(b"/etc/p?ss[uvw]d*");
        assert!(g.matches(b"/etc/passwd"));
        assert!(g.matches(b"/etc/passwd-"));
        assert!(!g.matches(b"/etc/passxd"));
        let g = glob(b"/[!a-c]x/[]]/[\\x00-\\x7f]");
        assert!(g.matches(b"/dx/]/a"));
        assert!(!g.matches(b"/bx/]/a"));
        assert!(!g.matches(b"/dx/]/\xe9"));
        let g = glob(b"/a*b*c");
        assert!(g.matches(b"/abc"));
        assert!(g.matches(b"/aXbYbZc"));
        assert!(!g.matches(b"/aXbYbZ"));
        // An unclosed bracket is literal.
        let g = glob(b"/x[*");
        assert!(g.matches(b"/x[yz"));
        assert!(!g.matches(b"/xyz"));
    }

    #[test]
    fn pruning() {
        let g = glob(b"/names/*");
        let s = g.step(&g.start(), b"names");
        assert!(g.may_continue(&s) && !g.accepts(&s));
        let s = g.step(&s, b"x");
        assert!(!g.may_continue(&s) && g.accepts(&s));
        let other = g.step(&g.start(), b"etc");
        assert!(!g.may_continue(&other));
    }
}
