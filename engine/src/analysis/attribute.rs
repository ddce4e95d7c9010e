//! `attribute`: which container, image and layer a *host* path belongs to —
//! a path from a Sleuth Kit listing, a carved hit, an EDR alert — and what
//! the path was inside the container.
//!
//! A host path is text, never opened: it is matched, component by
//! component, against what the root's model and drivers say lies in the
//! root: every layer directory ([`orphans::inventory`], with its role and
//! users), its own files (`LayerSource::dir`), the other names the driver
//! declares for it (`Driver::layer_paths`: short links, mount points of
//! views), docker's container directories, layerdb records and named
//! volumes. The match is on the part of the path relative to the root (or
//! to a store a driver declared), so any prefix the listing used works:
//! `/var/lib/docker/...`, the `--root` path, a mount point of the host
//! image. The outermost match wins (a root inside a container's layer is
//! data of that layer).
//!
//! Whether a container still sees the version in a layer is answered by
//! the union over its stack: the lookup names the layer whose entry the
//! container sees; a higher one hides it, nothing means deleted above.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::orphans::{self, Inventory, LayerDir, LayerRole};
use crate::evidence::pathfmt;
use crate::model::container::Container;
use crate::model::root::DockerRoot;
use crate::model::stack;
use crate::union::view::{self, View};
use docker_mount_core::driver::{LayerPathKind, LayerSource};
use docker_mount_core::loader::Drivers;

/// What a host path is in the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A file of a layer's own directory (`diff/`, a full tree, a short link to it).
    LayerFile,
    /// A file seen through a mounted view (`merged/`, `mnt/<id>`).
    ViewFile,
    /// The driver's bookkeeping beside a layer (`work/`, `link`, `lower`).
    LayerMetadata,
    /// Docker's own file about a container (`containers/<id>/...`).
    ContainerFile,
    /// A layerdb record (`image/<driver>/layerdb/...`).
    Layerdb,
    /// A file of a named volume.
    VolumeFile,
    /// Names nothing this root holds.
    None,
}

/// Whether a container sees the version of the path that lies in the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    /// The container sees this very entry.
    Visible,
    /// A higher layer holds another entry at the path.
    Hidden,
    /// A higher layer deletes it (whiteout, opaque directory, or a
    /// non-directory where a directory was).
    Deleted,
    /// The layer holds no such entry now (gone from the evidence, a
    /// whiteout itself, or a path below a symlink).
    Absent,
    /// A complete tree above the layer (vfs, btrfs, overlay's image
    /// layers) holds its own copy of the path, which the container sees:
    /// `seen_layer` names it (the content may or may not differ).
    Copied,
    /// Not decided: the container's layers could not be read.
    Unknown,
}

/// One container the path concerns.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ContainerUse {
    pub name: String,
    pub id: String,
    /// The path as the container saw it, when it had one.
    pub path: Option<String>,
    /// For layer and view files: whether it sees this version.
    pub seen: Option<Seen>,
    /// The layer (driver id) whose entry the container sees at `path`.
    pub seen_layer: Option<String>,
    pub note: Option<String>,
}

/// The attribution of one host path. Field names are stable (`--json`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Attribution {
    /// The host path as given (non-UTF-8 bytes as `\xNN`).
    #[serde(serialize_with = "pathfmt::serialize")]
    pub path: PathBuf,
    pub kind: Kind,
    pub driver: Option<String>,
    /// The layer's driver id (cache id, mount id).
    pub layer: Option<String>,
    pub role: Option<LayerRole>,
    pub chain_id: Option<String>,
    /// The path inside the layer, view, volume or container directory.
    pub inner_path: Option<String>,
    /// Images whose layers include the layer.
    pub images: Vec<String>,
    pub containers: Vec<ContainerUse>,
    pub note: Option<String>,
}

impl Attribution {
    fn none(path: &Path, note: impl Into<String>) -> Attribution {
        Attribution {
            path: path.to_path_buf(),
            kind: Kind::None,
            driver: None,
            layer: None,
            role: None,
            chain_id: None,
            inner_path: None,
            images: Vec::new(),
            containers: Vec::new(),
            note: Some(note.into()),
        }
    }
}

#[derive(Debug, Clone)]
enum Target {
    LayerEntry(usize),
    Content(usize),
    View(usize),
    ContainerDir(usize),
    /// A layerdb chain: its store, chain id, and the layer it names.
    Chain(String, String, Option<usize>),
    Mount(usize),
    Volume(String),
}

#[derive(Default)]
struct Node {
    next: HashMap<Vec<u8>, Node>,
    hit: Option<Target>,
}

impl Node {
    fn insert(&mut self, rel: &Path, target: Target) {
        let mut node = self;
        for c in rel.iter() {
            node = node.next.entry(c.as_bytes().to_vec()).or_default();
        }
        node.hit = Some(target);
    }

    /// The deepest hit along `names`, with how many names it took.
    fn longest(&self, names: &[&[u8]]) -> Option<(&Target, usize)> {
        let mut node = self;
        let mut best = None;
        for (k, name) in names.iter().enumerate() {
            match node.next.get(*name) {
                Some(n) => node = n,
                None => break,
            }
            if let Some(t) = &node.hit {
                best = Some((t, k + 1));
            }
        }
        best
    }
}

/// A container's view, opened when first needed.
struct Opened {
    view: Option<View>,
    error: Option<String>,
}

/// Everything needed to attribute paths of one root; build once, ask often.
pub struct Attributor<'r> {
    root: &'r DockerRoot,
    drivers: &'r Drivers,
    inventory: Inventory,
    containers: Vec<Container>,
    by_name: HashMap<String, usize>,
    trie: Node,
    views: HashMap<usize, Opened>,
    /// Problems met while indexing (unreadable containers, drivers).
    pub problems: Vec<String>,
}

/// The path relative to whichever evidence directory (the root, a store)
/// holds it.
fn located<'a>(root: &DockerRoot, p: &'a Path) -> Option<&'a Path> {
    root.locate(p).ok().map(|(_, rel)| rel)
}

impl<'r> Attributor<'r> {
    pub fn new(root: &'r DockerRoot, drivers: &'r Drivers) -> Attributor<'r> {
        let inventory = orphans::inventory(root, drivers, false);
        let mut problems = inventory.problems.clone();
        let mut containers = Vec::new();
        for c in root.containers() {
            match c {
                Ok(c) => containers.push(c),
                Err(e) => problems.push(format!("container {}: {}", e.name, e.error)),
            }
        }
        let by_name = containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name().to_string(), i))
            .collect();
        let mut trie = Node::default();
        let mut index: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, l) in inventory.layers.iter().enumerate() {
            index.insert((l.driver.as_str(), l.id.as_str()), i);
            if let Some(rel) = located(root, &l.entry) {
                trie.insert(rel, Target::LayerEntry(i));
            }
            if let Some(rel) = l.content.as_deref().and_then(|c| located(root, c)) {
                trie.insert(rel, Target::Content(i));
            }
        }
        for d in &drivers.loaded {
            // Only drivers with layers here (podman's store is docker's overlay/).
            if !inventory.layers.iter().any(|l| l.driver == d.name()) {
                continue;
            }
            let paths = match d.layer_paths(root.path()) {
                Ok(p) => p,
                Err(e) if e.kind == docker_mount_core::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::debug!("{}: no layer paths: {e}", d.name());
                    continue;
                }
            };
            for p in paths {
                let (Some(&i), Some(rel)) = (
                    index.get(&(d.name(), p.id.as_str())),
                    located(root, &p.path),
                ) else {
                    continue;
                };
                let t = match p.kind {
                    LayerPathKind::Own => Target::Content(i),
                    LayerPathKind::View => Target::View(i),
                };
                trie.insert(rel, t);
            }
        }
        for (i, c) in containers.iter().enumerate() {
            if c.catalog.is_some() {
                continue;
            }
            if let Some(rel) = c.config_path.parent().and_then(|p| located(root, p)) {
                trie.insert(rel, Target::ContainerDir(i));
            }
        }
        for store in root.stores() {
            let db = root.layerdb(&store);
            for (chain, rec) in &db.layers {
                let rel = Path::new("image")
                    .join(&store)
                    .join("layerdb/sha256")
                    .join(chain);
                let layer = index.get(&(store.as_str(), rec.cache_id.as_str())).copied();
                trie.insert(&rel, Target::Chain(store.clone(), chain.clone(), layer));
            }
            for (i, c) in containers.iter().enumerate() {
                if c.catalog.is_none() {
                    let rel = Path::new("image")
                        .join(&store)
                        .join("layerdb/mounts")
                        .join(&c.id);
                    trie.insert(&rel, Target::Mount(i));
                }
            }
        }
        for v in root.volumes() {
            if let Some(rel) = located(root, &v.data) {
                trie.insert(rel, Target::Volume(v.name.clone()));
            }
        }
        Attributor {
            root,
            drivers,
            inventory,
            containers,
            by_name,
            trie,
            views: HashMap::new(),
            problems,
        }
    }

    /// Attributes one host path.
    pub fn attribute(&mut self, path: &Path) -> Attribution {
        let bytes = path.as_os_str().as_bytes();
        let names: Vec<&[u8]> = bytes
            .split(|&b| b == b'/')
            .filter(|n| !n.is_empty() && *n != b".")
            .collect();
        if names.contains(&&b".."[..]) {
            return Attribution::none(
                path,
                "refused: the path has `..` components; give it as the listing resolved it",
            );
        }
        let mut found = None;
        for s in 0..names.len() {
            if let Some((t, n)) = self.trie.longest(&names[s..]) {
                found = Some((t.clone(), &names[s + n..]));
                break;
            }
        }
        let Some((target, rest)) = found else {
            return Attribution::none(
                path,
                format!(
                    "names no layer, container or volume of the root {}",
                    pathfmt::escape(self.root.path())
                ),
            );
        };
        let inner = inner_path(rest);
        match target {
            Target::Content(i) => self.layer_file(path, i, &inner),
            Target::View(i) => self.view_file(path, i, &inner),
            Target::LayerEntry(i) => {
                let mut a = self.layer_base(path, Kind::LayerMetadata, i);
                a.inner_path = Some(pathfmt::escape(&inner));
                a.note = Some(
                    "the driver's bookkeeping beside the layer's files, in no container's view"
                        .into(),
                );
                a.containers = self.users(i, None);
                a
            }
            Target::ContainerDir(c) => self.container_file(path, c, rest),
            Target::Mount(c) => {
                let mut a = Attribution::none(path, "layerdb's record of the container's layers");
                a.kind = Kind::Layerdb;
                a.inner_path = Some(pathfmt::escape(&inner));
                a.containers.push(self.use_of(c, None));
                a
            }
            Target::Chain(store, chain, i) => {
                let mut a = match i {
                    Some(i) => {
                        let mut a = self.layer_base(path, Kind::Layerdb, i);
                        a.containers = self.users(i, None);
                        a
                    }
                    None => {
                        let mut a = Attribution::none(path, "");
                        a.kind = Kind::Layerdb;
                        a.driver = Some(store.clone());
                        a.chain_id = Some(chain.clone());
                        a
                    }
                };
                a.inner_path = Some(pathfmt::escape(&inner));
                a.note = Some(match i {
                    Some(_) => format!("layerdb's record of chain sha256:{chain}"),
                    None => format!(
                        "layerdb's record of chain sha256:{chain}, whose layer directory is missing"
                    ),
                });
                a
            }
            Target::Volume(name) => self.volume_file(path, &name, &inner),
        }
    }

    /// The fields every layer attribution shares.
    fn layer_base(&self, path: &Path, kind: Kind, i: usize) -> Attribution {
        let l: &LayerDir = &self.inventory.layers[i];
        Attribution {
            path: path.to_path_buf(),
            kind,
            driver: Some(l.driver.clone()),
            layer: Some(l.id.clone()),
            role: Some(l.role),
            chain_id: l.chain_id.clone(),
            inner_path: None,
            images: l.images.clone(),
            containers: Vec::new(),
            note: l.hint.clone(),
        }
    }

    fn use_of(&self, c: usize, path: Option<&Path>) -> ContainerUse {
        let c = &self.containers[c];
        ContainerUse {
            name: c.name().to_string(),
            id: c.id.clone(),
            path: path.map(pathfmt::escape),
            seen: None,
            seen_layer: None,
            note: None,
        }
    }

    /// The containers using layer `i`, each with what it sees at `inner`.
    fn users(&mut self, i: usize, inner: Option<&Path>) -> Vec<ContainerUse> {
        let names = self.inventory.layers[i].containers.clone();
        let mut out = Vec::new();
        for name in names {
            let Some(&c) = self.by_name.get(&name) else {
                continue;
            };
            let mut u = self.use_of(c, inner);
            if let Some(inner) = inner {
                self.seen(c, i, inner, &mut u);
            }
            out.push(u);
        }
        out
    }

    /// Opens container `c`'s view once.
    fn view(&mut self, c: usize) -> &Opened {
        if !self.views.contains_key(&c) {
            let opened = match stack::container_stack(self.root, self.drivers, &self.containers[c])
                .and_then(|s| view::open(self.root, &s))
            {
                Ok(v) => Opened {
                    view: Some(v),
                    error: None,
                },
                Err(e) => Opened {
                    view: None,
                    error: Some(format!("cannot read its layers: {e}")),
                },
            };
            self.views.insert(c, opened);
        }
        &self.views[&c]
    }

    /// Whether container `c` sees the entry of layer `i` at `inner`.
    fn seen(&mut self, c: usize, i: usize, inner: &Path, u: &mut ContainerUse) {
        let id = self.inventory.layers[i].id.clone();
        let opened = self.view(c);
        let Some(view) = &opened.view else {
            u.seen = Some(Seen::Unknown);
            u.note = opened.error.clone();
            return;
        };
        let Some(k) = view.layers.iter().position(|l| l.driver_id == id) else {
            // Full trees: the container reads a copy made from this layer.
            match view.union.lookup(inner) {
                Ok(Some(n)) => {
                    u.seen = Some(Seen::Copied);
                    u.seen_layer = Some(view.layers[n.layer].driver_id.clone());
                }
                Ok(None) => {
                    u.seen = Some(Seen::Deleted);
                    u.note = Some(
                        "its layers are complete trees, and none it reads holds the path".into(),
                    );
                }
                Err(e) => {
                    u.seen = Some(Seen::Unknown);
                    u.note = Some(e.to_string());
                }
            }
            return;
        };
        let top = match view.union.lookup(inner) {
            Ok(n) => n,
            Err(e) => {
                u.seen = Some(Seen::Unknown);
                u.note = Some(e.to_string());
                return;
            }
        };
        let own = view.union.lookup_from(k, inner).ok().flatten();
        let in_layer = own.as_ref().is_some_and(|n| n.layer == k);
        u.seen_layer = top.as_ref().map(|n| view.layers[n.layer].driver_id.clone());
        // A complete tree above holds copies of the layer's files.
        let copies = view.layers[..k]
            .iter()
            .any(|l| matches!(l.source, LayerSource::Full { .. }));
        u.seen = Some(match (&top, in_layer) {
            (_, false) => Seen::Absent,
            (Some(n), true) if n.layer == k => Seen::Visible,
            (Some(_), true) if copies => Seen::Copied,
            (Some(_), true) => Seen::Hidden,
            (None, true) => Seen::Deleted,
        });
    }

    fn layer_file(&mut self, path: &Path, i: usize, inner: &Path) -> Attribution {
        let mut a = self.layer_base(path, Kind::LayerFile, i);
        a.inner_path = Some(pathfmt::escape(inner));
        a.containers = self.users(i, Some(inner));
        if self.inventory.layers[i].role == LayerRole::Orphan {
            a.note = Some(format!(
                "orphan layer: {}",
                self.inventory.layers[i].hint.clone().unwrap_or_default()
            ));
        }
        a
    }

    /// A path in the mounted view of the stack layer `i` tops: the
    /// containers whose top layer it is, and the layer each sees it in.
    fn view_file(&mut self, path: &Path, i: usize, inner: &Path) -> Attribution {
        let mut a = self.layer_base(path, Kind::ViewFile, i);
        a.inner_path = Some(pathfmt::escape(inner));
        let names = self.inventory.layers[i].containers.clone();
        let mut top_layer = None;
        for name in names {
            let Some(&c) = self.by_name.get(&name) else {
                continue;
            };
            let mut u = self.use_of(c, Some(inner));
            let id = self.inventory.layers[i].id.clone();
            let opened = self.view(c);
            match &opened.view {
                None => {
                    u.seen = Some(Seen::Unknown);
                    u.note = opened.error.clone();
                }
                Some(v) if v.layers.first().is_some_and(|l| l.driver_id == id) => {
                    match v.union.lookup(inner) {
                        Ok(Some(n)) => {
                            u.seen = Some(Seen::Visible);
                            u.seen_layer = Some(v.layers[n.layer].driver_id.clone());
                        }
                        Ok(None) => {
                            u.seen = Some(Seen::Absent);
                            u.note = Some(
                                "not in the container's layers: written to a volume, bind or \
                                 tmpfs mount, or removed"
                                    .into(),
                            );
                        }
                        Err(e) => {
                            u.seen = Some(Seen::Unknown);
                            u.note = Some(e.to_string());
                        }
                    }
                }
                // The mount point of a layer below the container's top.
                Some(_) => continue,
            }
            top_layer = top_layer.or(u.seen_layer.clone());
            a.containers.push(u);
        }
        // The layer the version seen lies in.
        if let Some(seen) = top_layer {
            if let Some(j) = self
                .inventory
                .layers
                .iter()
                .position(|l| l.driver == self.inventory.layers[i].driver && l.id == seen)
            {
                let l = &self.inventory.layers[j];
                a.layer = Some(l.id.clone());
                a.role = Some(l.role);
                a.chain_id = l.chain_id.clone();
                a.images = l.images.clone();
            }
        }
        a.note = Some(format!(
            "seen through the mount point of layer {}",
            self.inventory.layers[i].id
        ));
        a
    }

    fn container_file(&mut self, path: &Path, c: usize, rest: &[&[u8]]) -> Attribution {
        let id = self.containers[c].id.clone();
        let first = rest
            .first()
            .map(|n| String::from_utf8_lossy(n).into_owned());
        let (what, inside): (String, Option<&str>) = match first.as_deref() {
            None => ("the container's directory".into(), None),
            Some("config.v2.json") | Some("config.json") => {
                ("the container's configuration".into(), None)
            }
            Some("hostconfig.json") => ("the container's host configuration".into(), None),
            Some("local-logs") => ("the container's log (local driver)".into(), None),
            Some(n) if n.starts_with(&format!("{id}-json.log")) => {
                ("the container's log (json-file driver)".into(), None)
            }
            Some("hostname") => (
                "bind-mounted into the container".into(),
                Some("/etc/hostname"),
            ),
            Some("hosts") => ("bind-mounted into the container".into(), Some("/etc/hosts")),
            Some("resolv.conf") => (
                "bind-mounted into the container".into(),
                Some("/etc/resolv.conf"),
            ),
            Some("mounts") if rest.get(1) == Some(&&b"shm"[..]) => {
                ("the container's /dev/shm".into(), None)
            }
            Some("mounts") => ("mounted into the container (secrets, shm)".into(), None),
            Some("checkpoints") => ("a checkpoint of the container".into(), None),
            Some(_) => ("docker's file for the container".into(), None),
        };
        let inner = inner_path(rest);
        let mut u = self.use_of(c, None);
        u.path = match (inside, first.as_deref()) {
            (Some(p), _) => Some(p.to_string()),
            (None, Some("mounts")) if rest.get(1) == Some(&&b"shm"[..]) => Some(pathfmt::escape(
                &Path::new("/dev/shm").join(
                    inner_path(&rest[2..])
                        .strip_prefix("/")
                        .unwrap_or(Path::new("")),
                ),
            )),
            _ => None,
        };
        let mut a = Attribution::none(path, what);
        a.kind = Kind::ContainerFile;
        a.inner_path = Some(pathfmt::escape(&inner));
        a.driver = Some(self.containers[c].config.driver.clone()).filter(|d| !d.is_empty());
        a.containers.push(u);
        a
    }

    fn volume_file(&mut self, path: &Path, name: &str, inner: &Path) -> Attribution {
        let mut a = Attribution::none(path, format!("named volume {name}"));
        a.kind = Kind::VolumeFile;
        a.inner_path = Some(pathfmt::escape(inner));
        let rel = inner.strip_prefix("/").unwrap_or(inner);
        for (k, c) in self.containers.iter().enumerate() {
            for m in c.config.mount_points.values() {
                if m.name == name {
                    let mut u = self.use_of(k, Some(&Path::new(&m.destination).join(rel)));
                    u.seen = Some(Seen::Visible);
                    if !m.rw {
                        u.note = Some("mounted read-only".into());
                    }
                    a.containers.push(u);
                }
            }
        }
        if a.containers.is_empty() {
            a.note = Some(format!("named volume {name}, mounted by no container"));
        }
        a
    }

    /// The directories of the containers' rw layers, relative to the
    /// evidence directory holding each (the root, or a declared store).
    pub fn rw_layer_dirs(&self) -> Vec<PathBuf> {
        self.inventory
            .layers
            .iter()
            .filter(|l| l.role == LayerRole::ContainerRw)
            .filter_map(|l| l.content.as_deref())
            .filter_map(|c| located(self.root, c).map(Path::to_path_buf))
            .collect()
    }
}

/// The file name of a TSK/mactime bodyfile line
/// (`MD5|name|inode|mode|UID|GID|size|atime|mtime|ctime|crtime`), as a
/// host path: names may hold `|` (the nine fields after the name never
/// do); `fls` marks deleted names ` (deleted)` / ` (deleted-realloc)` and
/// gives symlinks as `name -> target`, both taken off. `None` for a line
/// that is not a bodyfile record.
pub fn bodyfile_name(line: &[u8]) -> Option<PathBuf> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut tail = line.rsplitn(10, |&b| b == b'|');
    let fields: Vec<&[u8]> = tail.by_ref().take(9).collect();
    let head = tail.next()?;
    if fields.len() != 9 {
        return None;
    }
    // Reversed: crtime, ctime, mtime, atime, size, GID, UID, mode, inode.
    let mode = fields[7];
    let pipe = head.iter().position(|&b| b == b'|')?;
    let mut name = &head[pipe + 1..];
    for suffix in [&b" (deleted-realloc)"[..], b" (deleted)"] {
        if let Some(n) = name.strip_suffix(suffix) {
            name = n;
        }
    }
    if mode.starts_with(b"l") {
        if let Some(at) = name.windows(4).position(|w| w == b" -> ") {
            name = &name[..at];
        }
    }
    (!name.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(name)))
}

/// `/a/b` from the remaining names.
fn inner_path(rest: &[&[u8]]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for n in rest {
        p.push(OsStr::from_bytes(n));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_and_inner_path() {
        let mut t = Node::default();
        t.insert(Path::new("overlay2/abc"), Target::LayerEntry(0));
        t.insert(Path::new("overlay2/abc/diff"), Target::Content(0));
        let names: Vec<&[u8]> = vec![b"overlay2", b"abc", b"diff", b"etc", b"x"];
        let (target, n) = t.longest(&names).expect("a match");
        assert!(matches!(target, Target::Content(0)));
        assert_eq!(n, 3);
        assert_eq!(inner_path(&names[n..]), Path::new("/etc/x"));
        let names: Vec<&[u8]> = vec![b"overlay2", b"abc", b"work"];
        assert!(matches!(
            t.longest(&names),
            Some((Target::LayerEntry(0), 2))
        ));
        assert!(t.longest(&[b"overlay2".as_slice()]).is_none());
        assert_eq!(
            inner_path(&[b"\xff"]),
            Path::new(OsStr::from_bytes(b"/\xff"))
        );
    }

    #[test]
    fn bodyfile_names() {
        let n = |l: &[u8]| bodyfile_name(l).map(|p| p.into_os_string().into_vec());
        use std::os::unix::ffi::OsStringExt;
        assert_eq!(
            n(b"0|/var/lib/docker/a|b (deleted)|12-128-1|r/rrw-r--r--|0|0|5|1|2|3|4"),
            Some(b"/var/lib/docker/a|b".to_vec())
        );
        assert_eq!(
            n(b"0|/x/l -> /etc/passwd|12|l/lrwxrwxrwx|0|0|5|1|2|3|4\r"),
            Some(b"/x/l".to_vec())
        );
        assert_eq!(
            n(b"0|/x/\xff|12|r/r---------|0|0|5|1|2|3|4"),
            Some(b"/x/\xff".to_vec())
        );
        assert_eq!(n(b"not a bodyfile line"), None);
        assert_eq!(n(b""), None);
    }
}
