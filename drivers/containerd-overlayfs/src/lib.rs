//! The containerd image store: containerd's overlayfs snapshotter.
//!
//! Each layer is a snapshot directory
//! `io.containerd.snapshotter.v1.overlayfs/snapshots/<id>/fs` with overlay
//! whiteouts; which snapshot is whose, and the parent chains, live in
//! bolt databases (see [`meta`], read by core's bounds-checked reader
//! `driver_kit::bolt`). Layer ids crossing to core are the snapshotter's
//! numeric ids.
//!
//! Two kinds of `--root`:
//! - containerd's own root (`/var/lib/containerd`): the catalog lists the
//!   containers (made by `ctr`, nerdctl, ...) and images of every
//!   namespace, as engine `containerd/<namespace>`;
//! - a docker root whose containers say `"Driver": "overlayfs"` (docker
//!   24+ with the containerd image store, the default of docker 29): docker
//!   keeps the containers, containerd the layers. A container's snapshot
//!   key is its id, its parent `<id>-init` (docker's init layer), whose
//!   parent is the image's top chain id, all in namespace `moby`
//!   (option `containerd_namespace`). The containerd root is the option
//!   `containerd_root` (`--containerd-root`), else
//!   `<root>/containerd/daemon` (a dockerd-managed containerd), else the
//!   sibling `<root>/../containerd` (`/var/lib/containerd`). The catalog
//!   then lists the images of docker's namespace.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::{
    Catalog, CatalogContainer, CatalogImage, CatalogLayer, ImageFacts, Role,
};
use docker_mount_core::driver_kit::{check_id, io_err, option, require_dir};
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource, WhiteoutStyle,
    ABI_VERSION,
};

#[cfg(any(test, feature = "writer"))]
pub mod fixture;
pub mod meta;

use meta::{Content, MetaDb, SnapDb};

/// The storage driver name docker writes for the containerd image store.
pub const NAME: &str = "overlayfs";
/// The snapshotter whose layers this driver reads.
pub const SNAPSHOTTER: &str = "overlayfs";
/// The snapshotter's directory in containerd's root.
pub const SNAPSHOTTER_DIR: &str = "io.containerd.snapshotter.v1.overlayfs";
/// dockerd's containerd namespace (`--containerd-namespace`).
pub const DOCKER_NAMESPACE: &str = "moby";
/// Driver option: where the containerd root of a docker root is.
pub const OPT_ROOT: &str = "containerd_root";
/// Driver option: dockerd's containerd namespace.
pub const OPT_NAMESPACE: &str = "containerd_namespace";

/// A containerd root found for a `--root`.
#[derive(Debug)]
struct Located {
    /// As core will see layer paths: below `--root` when inside it.
    path: PathBuf,
    dir: Beneath,
    /// `--root` is the containerd root itself.
    itself: bool,
    /// It lies outside `--root` (a store core must be told about).
    outside: bool,
}

fn is_containerd_root(dir: &Beneath) -> bool {
    dir.exists(Path::new(meta::META_DB)) || dir.is_dir(Path::new(SNAPSHOTTER_DIR))
}

fn not_found(msg: impl Into<String>, path: &Path) -> DriverError {
    DriverError::new(ErrorKind::NotFound, msg, Some(path))
}

/// containerd's root for `--root`: itself, the option, the dockerd-managed
/// one inside it, or its sibling. `None` when there is none.
fn locate(root: &Path) -> Result<Option<Located>, DriverError> {
    let dir = Beneath::open(root).map_err(|e| io_err(root, e))?;
    if is_containerd_root(&dir) {
        return Ok(Some(Located {
            path: root.to_path_buf(),
            dir,
            itself: true,
            outside: false,
        }));
    }
    if let Some(given) = option(OPT_ROOT) {
        let given = PathBuf::from(given);
        let d = Beneath::open(&given).map_err(|e| io_err(&given, e))?;
        if !is_containerd_root(&d) {
            return Err(not_found(
                format!(
                    "the containerd root given ({}) holds neither {} nor {SNAPSHOTTER_DIR}",
                    given.display(),
                    meta::META_DB
                ),
                &given,
            ));
        }
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let outside = abs(&given).strip_prefix(abs(root)).is_err();
        return Ok(Some(Located {
            path: given,
            dir: d,
            itself: false,
            outside,
        }));
    }
    // Both opened without following symlinks: the evidence must not send
    // us to the analyst's own /var/lib/containerd. A dockerd-managed root
    // left empty by a docker that later used the system containerd gives
    // way to the sibling that holds snapshots.
    let mut found = Vec::new();
    let managed = Path::new("containerd/daemon");
    if let Ok(d) = dir.subdir(managed) {
        if is_containerd_root(&d) {
            found.push(Located {
                path: root.join(managed),
                dir: d,
                itself: false,
                outside: false,
            });
        }
    }
    let abs = std::path::absolute(root).map_err(|e| io_err(root, e))?;
    if let Some(parent) = abs.parent().filter(|p| *p != abs) {
        if let Ok(p) = Beneath::open(parent) {
            if let Ok(d) = p.subdir(Path::new("containerd")) {
                if is_containerd_root(&d) {
                    found.push(Located {
                        path: parent.join("containerd"),
                        dir: d,
                        itself: false,
                        outside: true,
                    });
                }
            }
        }
    }
    let with_snapshots = found.iter().position(has_snapshots).unwrap_or(0);
    Ok((!found.is_empty()).then(|| found.swap_remove(with_snapshots)))
}

/// Whether containerd root `loc` has any overlayfs snapshot directory.
fn has_snapshots(loc: &Located) -> bool {
    loc.dir
        .list(&Path::new(SNAPSHOTTER_DIR).join("snapshots"))
        .is_ok_and(|l| !l.is_empty())
}

fn require_located(root: &Path) -> Result<Located, DriverError> {
    locate(root)?.ok_or_else(|| {
        not_found(
            format!(
                "no containerd root: neither this root, --containerd-root, {}/containerd/daemon nor a sibling containerd/ directory holds containerd's metadata",
                root.display()
            ),
            root,
        )
    })
}

/// Whether `s` is a containerd identifier (namespaces, container ids):
/// alphanumerics joined by single `.`, `_` or `-`, at most 76 bytes — what
/// containerd itself accepts, so anything else was not written by it.
pub fn valid_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 76
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
        && !b
            .windows(2)
            .any(|w| !w[0].is_ascii_alphanumeric() && !w[1].is_ascii_alphanumeric())
}

/// A layer id of ours: a snapshot's numeric id, in canonical form.
fn parse_id(id: &str) -> Result<u64, DriverError> {
    check_id(id, NAME)?;
    match id.parse::<u64>() {
        Ok(n) if n.to_string() == id => Ok(n),
        _ => Err(DriverError::new(
            ErrorKind::Invalid,
            format!("{id:?} is not a snapshot id of the overlayfs snapshotter"),
            None,
        )),
    }
}

/// The snapshotter's `metadata.db`, read once per process and file version.
fn snapdb(snapdir: &Beneath) -> Result<Arc<SnapDb>, DriverError> {
    type Key = (PathBuf, u64, u64, i64, i64, i64);
    static CACHE: Mutex<Vec<(Key, Arc<SnapDb>)>> = Mutex::new(Vec::new());
    let rel = Path::new(meta::SNAPSHOTTER_DB);
    let st = snapdir
        .lstat(rel)
        .map_err(|e| io_err(&snapdir.path().join(rel), e))?;
    let key: Key = (
        snapdir.path().to_path_buf(),
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec,
    );
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, db)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(db.clone());
    }
    let db = Arc::new(SnapDb::read(snapdir)?);
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((key, db.clone()));
    Ok(db)
}

fn snapshotter_dir(loc: &Located) -> Result<Beneath, DriverError> {
    loc.dir
        .subdir(Path::new(SNAPSHOTTER_DIR))
        .map_err(|e| io_err(&loc.path.join(SNAPSHOTTER_DIR), e))
}

/// Layers (top first) of the snapshot chain of metadata snapshot `key`.
fn snapshot_layers(
    meta: &MetaDb,
    snaps: &SnapDb,
    ns: &str,
    key: &str,
) -> Result<Vec<u64>, DriverError> {
    let snap = meta.snapshot(ns, SNAPSHOTTER, key)?.ok_or_else(|| {
        not_found(
            format!("namespace {ns} has no {SNAPSHOTTER} snapshot {key:?}"),
            &meta.path,
        )
    })?;
    snaps.chain(&snap.name)
}

fn ids(chain: &[u64]) -> Vec<String> {
    chain.iter().map(u64::to_string).collect()
}

/// The name dockerd gives an image record whose name it took away
/// (`moby-dangling@<target digest>`): docker shows it as `<none>`.
pub const DANGLING_PREFIX: &str = "moby-dangling@";
/// The label docker's classic builder puts on each image it commits: the
/// id of the image it was built from.
pub const PARENT_LABEL: &str = "org.mobyproject.image.parent";

/// A reference as docker shows it: without `docker.io/` and `library/`.
pub fn familiar_name(name: &str) -> &str {
    let Some(rest) = name.strip_prefix("docker.io/") else {
        return name;
    };
    match rest.strip_prefix("library/") {
        // `docker.io/library/a/b` stays `library/a/b`: only one-component
        // official names drop `library/`.
        Some(official)
            if !official
                .split(['@', ':'])
                .next()
                .unwrap_or("")
                .contains('/') =>
        {
            official
        }
        _ => rest,
    }
}

/// The key a metadata snapshot name (`<ns>/<n>/<key>`) ends with.
fn snapshot_key(name: &str) -> &str {
    name.splitn(3, '/').nth(2).unwrap_or(name)
}

/// Whether `key` is the key of a docker container's init layer
/// (`<64 hex>-init`).
fn is_init_key(key: &str) -> bool {
    key.strip_suffix("-init")
        .is_some_and(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Checks an image's snapshot chain (`chain`, ids top first) against its
/// config's `chain_ids` (base first): the chain's snapshots must be the
/// layers, in order, except — on a docker root, whose classic builder
/// commits each step's container snapshot onto its init layer — init
/// layers between them. The problem, if any.
fn check_chain(
    snaps: &SnapDb,
    chain: &[u64],
    chain_ids: &[String],
    docker: bool,
) -> Option<String> {
    let keys: Vec<&str> = chain
        .iter()
        .map(|id| snaps.by_id.get(id).map_or("", |n| snapshot_key(n)))
        .collect();
    let inits = keys.iter().filter(|k| is_init_key(k)).count();
    let layers: Vec<&str> = keys
        .iter()
        .rev()
        .copied()
        .filter(|k| !is_init_key(k))
        .collect();
    let want: Vec<&str> = chain_ids.iter().map(String::as_str).collect();
    if layers == want && (docker || inits == 0) {
        return None;
    }
    Some(format!(
        "{} layers in its config, {} snapshots in the chain ({inits} of them init layers), {}",
        chain_ids.len(),
        chain.len(),
        if layers.len() == want.len() {
            "whose keys are not the config's chain ids"
        } else {
            "not one per layer"
        }
    ))
}

/// What one namespace holds, in catalog form. `docker`: the namespace is
/// a dockerd's (a docker root with the containerd store), whose images
/// are shown as docker shows them.
fn catalog_namespace(
    meta: &MetaDb,
    snaps: Option<&SnapDb>,
    content: &Content,
    ns: &str,
    docker: bool,
    out: &mut Catalog,
) -> Result<(), DriverError> {
    let with_containers = !docker;
    let engine = format!("containerd/{ns}");
    let no_snaps = || not_found(format!("no {SNAPSHOTTER} snapshotter metadata"), &meta.path);
    // Images, one per target digest, with every name pointing at it (as
    // docker shows them: its dangling records name nothing).
    let mut by_digest: Vec<(meta::ImageRec, Vec<String>)> = Vec::new();
    let mut image_ids: Vec<(String, String)> = Vec::new();
    for img in meta.images(ns)? {
        match img {
            Ok(img) => {
                image_ids.push((img.name.clone(), img.digest.clone()));
                let shown = if !docker {
                    Some(img.name.clone())
                } else if img.name.starts_with(DANGLING_PREFIX) {
                    None
                } else {
                    Some(familiar_name(&img.name).to_string())
                };
                match by_digest.iter_mut().find(|(i, _)| i.digest == img.digest) {
                    Some((first, names)) => {
                        names.extend(shown);
                        if !img.created.is_empty()
                            && (first.created.is_empty() || img.created < first.created)
                        {
                            first.created = img.created.clone();
                        }
                        if !first.labels.iter().any(|(k, _)| k == PARENT_LABEL) {
                            first.labels.extend(
                                img.labels
                                    .iter()
                                    .filter(|(k, _)| k == PARENT_LABEL)
                                    .cloned(),
                            );
                        }
                    }
                    None => {
                        let names = shown.into_iter().collect();
                        by_digest.push((img, names));
                    }
                }
            }
            Err(e) => out.problems.push(e),
        }
    }
    let unpacked = |chain: &str| {
        meta.snapshot(ns, SNAPSHOTTER, chain)
            .is_ok_and(|s| s.is_some())
    };
    for (img, names) in by_digest {
        let shown = if names.is_empty() {
            img.digest.clone()
        } else {
            names.join(", ")
        };
        let mut entry = CatalogImage {
            id: img.digest.clone(),
            names,
            created: img.created.clone(),
            engine: engine.clone(),
            source: meta.path.clone(),
            ..Default::default()
        };
        let mut facts = ImageFacts {
            id: img.digest.clone(),
            parent: img
                .labels
                .iter()
                .find(|(k, _)| k == PARENT_LABEL)
                .map(|(_, v)| v.clone()),
            ..Default::default()
        };
        match meta::resolve(content, &img.digest, &img.media_type, &unpacked) {
            Ok(r) => {
                let mut unpacked_bytes = 0u64;
                if let Some(top) = r.chain_ids.last() {
                    if unpacked(top) {
                        match snaps
                            .ok_or_else(no_snaps)
                            .and_then(|s| Ok((s, snapshot_layers(meta, s, ns, top)?)))
                        {
                            Ok((s, chain)) => {
                                if let Some(why) = check_chain(s, &chain, &r.chain_ids, docker) {
                                    out.problems.push(DriverError::new(
                                        ErrorKind::Invalid,
                                        format!("image {shown}: {why}"),
                                        Some(&s.path),
                                    ));
                                }
                                // As dockerd counts it: every snapshot of
                                // the chain (init layers too), as the
                                // snapshotter recorded its usage.
                                unpacked_bytes = chain
                                    .iter()
                                    .filter_map(|id| s.by_id.get(id))
                                    .filter_map(|n| s.by_name.get(n)?.usage)
                                    .fold(0u64, u64::saturating_add);
                                if docker {
                                    facts.init_layers = chain
                                        .iter()
                                        .filter(|id| {
                                            s.by_id
                                                .get(id)
                                                .is_some_and(|n| is_init_key(snapshot_key(n)))
                                        })
                                        .map(u64::to_string)
                                        .collect();
                                }
                                entry.layers = ids(&chain);
                            }
                            Err(e) => out.problems.push(e),
                        }
                    }
                }
                // The unpacked layers (none when not unpacked) and the
                // content: the target and what lies below it.
                facts.size = Some(
                    unpacked_bytes
                        .saturating_add(u64::try_from(img.size).unwrap_or(0))
                        .saturating_add(r.content_size),
                );
                entry.config = Some(r.config);
            }
            Err(e) => out.problems.push(DriverError {
                message: format!("image {shown}: {}", e.message),
                ..e
            }),
        }
        out.images.push(entry);
        out.image_facts.push(facts);
    }
    if !with_containers {
        return Ok(());
    }
    for c in meta.containers(ns)? {
        let c = match c {
            Ok(c) if valid_identifier(&c.id) => c,
            Ok(c) => {
                out.problems.push(DriverError::new(
                    ErrorKind::Invalid,
                    format!(
                        "{engine}: container id {:?} is not one containerd would accept; skipped",
                        c.id
                    ),
                    Some(&meta.path),
                ));
                continue;
            }
            Err(e) => {
                out.problems.push(e);
                continue;
            }
        };
        // Qualified by the namespace: ids and nerdctl names are unique
        // only within one, and the namespace matters to the analyst.
        let name = c
            .labels
            .iter()
            .find(|(k, _)| k == "nerdctl/name")
            .map_or(c.id.as_str(), |(_, v)| v.as_str());
        let name = format!("{ns}/{name}");
        let command = c.spec.as_ref().map_or_else(Vec::new, |s| {
            s["process"]["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        });
        let mut layers = Vec::new();
        if c.snapshotter != SNAPSHOTTER {
            out.problems.push(DriverError::new(
                ErrorKind::Unsupported,
                format!(
                    "container {} ({engine}) uses snapshotter {:?}; only {SNAPSHOTTER} is read",
                    c.id, c.snapshotter
                ),
                Some(&meta.path),
            ));
        } else if !c.snapshot_key.is_empty() {
            match snaps
                .ok_or_else(no_snaps)
                .and_then(|s| snapshot_layers(meta, s, ns, &c.snapshot_key))
            {
                Ok(chain) => {
                    layers = chain
                        .iter()
                        .enumerate()
                        .map(|(i, id)| CatalogLayer {
                            id: id.to_string(),
                            role: if i == 0 { Role::Rw } else { Role::Image },
                        })
                        .collect();
                }
                Err(e) => out.problems.push(DriverError {
                    message: format!("container {} ({engine}): {}", c.id, e.message),
                    ..e
                }),
            }
        }
        let image_id = image_ids
            .iter()
            .find(|(n, _)| *n == c.image)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        out.containers.push(CatalogContainer {
            id: c.id.clone(),
            name,
            image: c.image.clone(),
            image_id,
            created: c.created.clone(),
            // containerd keeps task state in its (tmpfs) state directory,
            // not in its root: whether it ran is not on this disk.
            state: "unknown".into(),
            command,
            engine: engine.clone(),
            source: meta.path.clone(),
            layers,
            labels: c.labels.clone(),
            ..Default::default()
        });
    }
    Ok(())
}

/// dockerd's namespace: the option, else `moby`.
fn docker_namespace() -> String {
    option(OPT_NAMESPACE)
        .and_then(|v| v.into_string().ok())
        .unwrap_or_else(|| DOCKER_NAMESPACE.to_string())
}

#[derive(Debug, Default)]
pub struct Overlayfs;

impl Driver for Overlayfs {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary:
                "containerd's overlayfs snapshotter (docker's containerd image store; ctr, nerdctl)"
                    .into(),
            features: vec!["whiteouts:overlay".into(), "catalog".into()],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        let Ok(Some(loc)) = locate(root) else {
            return Confidence::NONE;
        };
        if loc.itself {
            return Confidence::CERTAIN;
        }
        // A docker root: its containers name the driver themselves; vote
        // only when the containerd root beside it holds snapshots.
        if has_snapshots(&loc) {
            Confidence(50)
        } else {
            Confidence::NONE
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        let n = parse_id(id)?;
        let loc = require_located(root)?;
        let snapdir = snapshotter_dir(&loc)?;
        let rel = Path::new("snapshots").join(id).join("fs");
        require_dir(&snapdir, &rel, "snapshot directory")?;
        // The parents as the snapshotter records them; a snapshot it no
        // longer knows (or an unreadable database) has none.
        let parent_ids = snapdb(&snapdir)
            .and_then(|db| db.parent_ids(n))
            .map(|p| ids(&p))
            .unwrap_or_default();
        Ok(LayerSource::Diff {
            dir: loc.path.join(SNAPSHOTTER_DIR).join(rel),
            whiteouts: WhiteoutStyle::Overlay,
            parent_ids,
        })
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        let Some(loc) = locate(root)? else {
            return Ok(Vec::new());
        };
        let Ok(snapdir) = snapshotter_dir(&loc) else {
            return Ok(Vec::new());
        };
        let names = snapdir
            .list(Path::new("snapshots"))
            .map_err(|e| io_err(&snapdir.path().join("snapshots"), e))?;
        let mut out: Vec<LayerEntry> = names
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| parse_id(n).is_ok())
            .map(|id| LayerEntry {
                path: loc
                    .path
                    .join(SNAPSHOTTER_DIR)
                    .join("snapshots")
                    .join(&id)
                    .join("fs"),
                id,
            })
            .collect();
        out.sort_by_key(|l| l.id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(out)
    }

    fn host_roots(&self) -> Vec<String> {
        vec!["var/lib/containerd".into()]
    }

    fn catalog(&self, root: &Path) -> Result<Catalog, DriverError> {
        let Some(loc) = locate(root)? else {
            return Ok(Catalog::default());
        };
        let mut out = Catalog::default();
        if loc.outside {
            out.stores.push(loc.path.clone());
        }
        let meta = match MetaDb::open(&loc.dir) {
            Ok(m) => m,
            // A snapshotter without metadata lists no containers or images.
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let snaps = snapshotter_dir(&loc).and_then(|d| snapdb(&d));
        let snaps = match snaps {
            Ok(s) => {
                out.problems.extend(
                    s.problems
                        .iter()
                        .map(|p| DriverError::new(ErrorKind::Invalid, p.clone(), Some(&s.path))),
                );
                Some(s)
            }
            Err(e) => {
                out.problems.push(e);
                None
            }
        };
        let content = Content::open(&loc.dir);
        let namespaces = if loc.itself {
            meta.namespaces()?
        } else {
            vec![docker_namespace()]
        };
        for ns in namespaces {
            if !valid_identifier(&ns) {
                out.problems.push(DriverError::new(
                    ErrorKind::Invalid,
                    format!("namespace {ns:?} is not one containerd would accept; skipped"),
                    Some(&meta.path),
                ));
                continue;
            }
            if let Err(e) = catalog_namespace(
                &meta,
                snaps.as_deref(),
                &content,
                &ns,
                !loc.itself,
                &mut out,
            ) {
                out.problems.push(e);
            }
        }
        Ok(out)
    }

    fn container_layers(&self, root: &Path, id: &str) -> Result<Vec<CatalogLayer>, DriverError> {
        check_id(id, NAME)?;
        let loc = require_located(root)?;
        let meta = MetaDb::open(&loc.dir)?;
        let snaps = snapdb(&snapshotter_dir(&loc)?)?;
        let preferred = docker_namespace();
        let mut namespaces = vec![preferred.clone()];
        namespaces.extend(meta.namespaces()?.into_iter().filter(|n| *n != preferred));
        for ns in namespaces {
            let Some(snap) = meta.snapshot(&ns, SNAPSHOTTER, id)? else {
                continue;
            };
            let chain = snaps.chain(&snap.name)?;
            let init = snap.parent == format!("{id}-init");
            return Ok(chain
                .iter()
                .enumerate()
                .map(|(i, n)| CatalogLayer {
                    id: n.to_string(),
                    role: match i {
                        0 => Role::Rw,
                        1 if init => Role::Init,
                        _ => Role::Image,
                    },
                })
                .collect());
        }
        Err(not_found(
            format!(
                "no namespace of containerd's metadata has a {SNAPSHOTTER} snapshot for container {id} (docker's namespace: {preferred})"
            ),
            &meta.path,
        ))
    }
}

docker_mount_core::export_driver!(Overlayfs);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::fixture::{digest, Fixture, KIND_ACTIVE, KIND_COMMITTED};
    use super::*;

    const IMAGE: &str = "docker.io/library/busybox:1";

    fn layers(l: &[CatalogLayer]) -> Vec<(String, Role)> {
        l.iter().map(|l| (l.id.clone(), l.role)).collect()
    }

    fn diff_ids() -> Vec<String> {
        vec![digest(b"base layer"), digest(b"second layer")]
    }

    #[test]
    fn a_containerd_root_lists_every_namespace() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut f = Fixture::new(root);
        let (target, ids) = f.image("default", IMAGE, &diff_ids());
        let chain = meta::chain_ids(&diff_ids());
        let rw = f.snapshot("default", "c1", Some(&chain[1]), KIND_ACTIVE);
        f.container(
            "default",
            "c1",
            IMAGE,
            "c1",
            &["sh", "-c", "echo hi"],
            &[("nerdctl/name", "web")],
        );
        // A second namespace sharing nothing but the snapshotter.
        let (_, ids2) = f.image("other", "docker.io/x/y:2", &diff_ids()[..1]);
        let rw2 = f.snapshot("other", "c2", Some(&chain[0]), KIND_ACTIVE);
        f.container("other", "c2", "docker.io/x/y:2", "c2", &["true"], &[]);
        // A container whose snapshot is gone.
        f.container("other", "c3", "docker.io/x/y:2", "gone", &["true"], &[]);
        f.write();

        let d = Overlayfs;
        assert_eq!(d.detect(root), Confidence::CERTAIN);
        let c = d.catalog(root).unwrap();
        assert!(c.stores.is_empty());
        let by_id = |id: &str| c.containers.iter().find(|x| x.id == id).unwrap();
        let c1 = by_id("c1");
        assert_eq!(c1.name, "default/web");
        assert_eq!(c1.engine, "containerd/default");
        assert_eq!(c1.image, IMAGE);
        assert_eq!(c1.image_id, target);
        assert_eq!(c1.command, ["sh", "-c", "echo hi"]);
        assert_eq!(c1.state, "unknown");
        assert!(c1.created.ends_with(".123456789Z"), "{}", c1.created);
        assert_eq!(
            layers(&c1.layers),
            [
                (rw.to_string(), Role::Rw),
                (ids[1].to_string(), Role::Image),
                (ids[0].to_string(), Role::Image)
            ]
        );
        let c2 = by_id("c2");
        assert_eq!(c2.engine, "containerd/other");
        assert_eq!(c2.name, "other/c2");
        assert_eq!(
            layers(&c2.layers),
            [
                (rw2.to_string(), Role::Rw),
                (ids2[0].to_string(), Role::Image)
            ]
        );
        assert!(by_id("c3").layers.is_empty());
        assert!(
            c.problems
                .iter()
                .any(|p| p.message.contains("c3") && p.message.contains("\"gone\"")),
            "{:?}",
            c.problems
        );
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        let img = c
            .images
            .iter()
            .find(|i| i.engine == "containerd/default")
            .unwrap();
        assert_eq!(img.id, target);
        assert_eq!(img.names, [IMAGE]);
        assert_eq!(img.layers, [ids[1].to_string(), ids[0].to_string()]);
        assert_eq!(img.config.as_ref().unwrap()["config"]["Cmd"][0], "/bin/sh");

        let LayerSource::Diff {
            dir,
            whiteouts,
            parent_ids,
        } = d.layer(root, &rw.to_string()).unwrap()
        else {
            panic!("not a diff layer")
        };
        assert_eq!(dir, f.fs(rw));
        assert_eq!(whiteouts, WhiteoutStyle::Overlay);
        assert_eq!(parent_ids, [ids[1].to_string(), ids[0].to_string()]);
        let all: Vec<String> = d.layers(root).unwrap().into_iter().map(|l| l.id).collect();
        assert_eq!(all.len(), 5);
        for bad in ["../1", "01", "+1", "x", "", "1/fs"] {
            assert!(d.layer(root, bad).is_err(), "{bad}");
        }
        assert_eq!(d.layer(root, "99").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn identifiers_are_containerds() {
        for ok in ["c1", "a.b-c_d", &"a".repeat(76), "moby", "k8s.io"] {
            assert!(valid_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a/b",
            "..",
            "a b",
            &"a".repeat(77),
            "a\n",
        ] {
            assert!(!valid_identifier(bad), "{bad:?}");
        }
    }

    /// docker 24+ with the containerd image store and a dockerd-managed
    /// containerd: the container's snapshot is its id, on `<id>-init`.
    fn docker_root(root: &Path, containerd: &Path, id: &str) -> (Vec<u64>, u64, u64) {
        fs::create_dir_all(root.join("containers").join(id)).unwrap();
        let mut f = Fixture::new(containerd);
        let (_, ids) = f.image("moby", IMAGE, &diff_ids());
        let chain = meta::chain_ids(&diff_ids());
        let init = f.snapshot(
            "moby",
            &format!("{id}-init"),
            Some(&chain[1]),
            KIND_COMMITTED,
        );
        let rw = f.snapshot("moby", id, Some(&format!("{id}-init")), KIND_ACTIVE);
        // A ctr container in another namespace: not docker's.
        f.container("default", "ctr1", IMAGE, "ctr1", &["true"], &[]);
        f.write();
        (ids, init, rw)
    }

    use std::fs;

    #[test]
    fn familiar_names_are_dockers() {
        assert_eq!(familiar_name("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(familiar_name("docker.io/u/app:2"), "u/app:2");
        assert_eq!(familiar_name("docker.io/library/a/b:1"), "library/a/b:1");
        assert_eq!(
            familiar_name("docker.io/library/x@sha256:00"),
            "x@sha256:00"
        );
        assert_eq!(familiar_name("quay.io/x/y:1"), "quay.io/x/y:1");
        assert_eq!(familiar_name(""), "");
        assert!(is_init_key(&format!("{}-init", "a".repeat(64))));
        assert!(!is_init_key("sha256:x-init"));
        assert!(!is_init_key("-init"));
        assert_eq!(snapshot_key("moby/12/sha256:ab"), "sha256:ab");
        assert_eq!(snapshot_key("weird"), "weird");
    }

    /// A docker root whose image `dm:1` was built by the classic builder:
    /// its second layer committed from a build container's snapshot onto
    /// that container's init layer; the step's image kept as a dangling
    /// record with the builder's parent label.
    #[test]
    fn a_docker_store_shows_images_as_docker_does() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("containers")).unwrap();
        let mut f = Fixture::new(&root.join("containerd/daemon"));
        let ids = diff_ids();
        let chain = meta::chain_ids(&ids);
        let (base, base_ids) = f.image("moby", "docker.io/library/base:1", &ids[..1]);
        let build = "b".repeat(64);
        let init = f.snapshot(
            "moby",
            &format!("{build}-init"),
            Some(&chain[0]),
            KIND_COMMITTED,
        );
        let top = f.snapshot(
            "moby",
            &chain[1],
            Some(&format!("{build}-init")),
            KIND_COMMITTED,
        );
        let (target, _) = f.image("moby", "docker.io/library/dm:1", &ids);
        let dangling = format!("{DANGLING_PREFIX}{target}");
        f.image("moby", &dangling, &ids);
        f.label_image("moby", &dangling, &[(PARENT_LABEL, &base)]);
        f.set_usage("moby", &chain[0], 1000);
        f.set_usage("moby", &format!("{build}-init"), 20);
        f.set_usage("moby", &chain[1], 300);
        f.write();

        let c = Overlayfs.catalog(root).unwrap();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let dm = c.images.iter().find(|i| i.id == target).unwrap();
        assert_eq!(dm.names, ["dm:1"], "familiar, the dangling record no name");
        assert_eq!(
            dm.layers,
            [top.to_string(), init.to_string(), base_ids[0].to_string()]
        );
        let facts = c.image_facts.iter().find(|f| f.id == target).unwrap();
        assert_eq!(facts.parent.as_deref(), Some(base.as_str()));
        assert_eq!(facts.init_layers, [init.to_string()]);
        // Every snapshot's usage, and the content the manifest declares.
        let size = facts.size.unwrap();
        assert!(size > 1320, "{size}");
        let base_facts = c.image_facts.iter().find(|f| f.id == base).unwrap();
        assert!(base_facts.size.unwrap() > 1000);
        assert!(base_facts.size.unwrap() < size);

        // The same chain on containerd's own root is a problem: ctr
        // commits no init layers.
        let own = Overlayfs.catalog(&root.join("containerd/daemon")).unwrap();
        assert!(
            own.problems
                .iter()
                .any(|p| p.message.contains("2 layers in its config, 3 snapshots")),
            "{:?}",
            own.problems
        );

        // A chain whose snapshots are not the config's is reported on a
        // docker root too, once per image, naming the file.
        let t2 = tempfile::tempdir().unwrap();
        let root2 = t2.path();
        fs::create_dir_all(root2.join("containers")).unwrap();
        let mut g = Fixture::new(&root2.join("containerd/daemon"));
        g.image("moby", "docker.io/library/base:1", &ids[..1]);
        g.snapshot("moby", "stray", Some(&chain[0]), KIND_COMMITTED);
        g.snapshot("moby", &chain[1], Some("stray"), KIND_COMMITTED);
        g.image("moby", "docker.io/library/dm:1", &ids);
        g.write();
        let c2 = Overlayfs.catalog(root2).unwrap();
        assert_eq!(c2.problems.len(), 1, "{:?}", c2.problems);
        assert!(c2.problems[0].message.contains("image dm:1"));
        assert!(c2.problems[0].path.is_some());
    }

    #[test]
    fn a_docker_root_finds_its_managed_containerd() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let id = "a".repeat(64);
        let (ids, init, rw) = docker_root(root, &root.join("containerd/daemon"), &id);
        let d = Overlayfs;
        assert_eq!(d.detect(root), Confidence(50));
        let l = d.container_layers(root, &id).unwrap();
        assert_eq!(
            layers(&l),
            [
                (rw.to_string(), Role::Rw),
                (init.to_string(), Role::Init),
                (ids[1].to_string(), Role::Image),
                (ids[0].to_string(), Role::Image)
            ]
        );
        let LayerSource::Diff { dir, .. } = d.layer(root, &rw.to_string()).unwrap() else {
            panic!()
        };
        assert!(
            dir.starts_with(root.join("containerd/daemon")),
            "{}",
            dir.display()
        );
        let c = d.catalog(root).unwrap();
        assert!(c.containers.is_empty(), "docker keeps its own containers");
        assert_eq!(c.images.len(), 1);
        assert_eq!(c.images[0].engine, "containerd/moby");
        assert!(c.stores.is_empty());
        assert_eq!(
            d.container_layers(root, &"b".repeat(64)).unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert!(d.container_layers(root, "../x").is_err());
    }

    #[test]
    fn a_sibling_containerd_root_is_declared_as_a_store() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("docker");
        let id = "c".repeat(64);
        let (_, _, rw) = docker_root(&root, &t.path().join("containerd"), &id);
        let d = Overlayfs;
        let c = d.catalog(&root).unwrap();
        assert_eq!(c.stores, [t.path().join("containerd")]);
        let LayerSource::Diff { dir, .. } = d.layer(&root, &rw.to_string()).unwrap() else {
            panic!()
        };
        assert!(dir.starts_with(&c.stores[0]));
        assert_eq!(d.container_layers(&root, &id).unwrap().len(), 4);
    }

    #[test]
    fn an_empty_managed_root_gives_way_to_the_sibling() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("docker");
        let id = "e".repeat(64);
        let (_, _, rw) = docker_root(&root, &t.path().join("containerd"), &id);
        // What a dockerd that once ran its own containerd leaves.
        Fixture::new(&root.join("containerd/daemon")).write();
        let d = Overlayfs;
        assert_eq!(d.detect(&root), Confidence(50));
        let LayerSource::Diff { dir, .. } = d.layer(&root, &rw.to_string()).unwrap() else {
            panic!()
        };
        assert!(
            dir.starts_with(t.path().join("containerd")),
            "{}",
            dir.display()
        );
        assert_eq!(d.container_layers(&root, &id).unwrap().len(), 4);
    }

    #[test]
    fn a_symlinked_sibling_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("docker");
        let id = "d".repeat(64);
        docker_root(&root, &t.path().join("elsewhere"), &id);
        std::os::unix::fs::symlink(t.path().join("elsewhere"), t.path().join("containerd"))
            .unwrap();
        let d = Overlayfs;
        assert_eq!(d.detect(&root), Confidence::NONE);
        assert_eq!(d.catalog(&root).unwrap(), Catalog::default());
        assert_eq!(
            d.container_layers(&root, &id).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn broken_metadata_is_reported_never_fatal_to_others() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut f = Fixture::new(root);
        let (target, _) = f.image("default", IMAGE, &diff_ids());
        let chain = meta::chain_ids(&diff_ids());
        f.snapshot("default", "c1", Some(&chain[1]), KIND_ACTIVE);
        f.container("default", "c1", IMAGE, "c1", &["true"], &[]);
        // Names containerd would never write: skipped, and said so.
        f.container("default", "../evil", IMAGE, "c1", &["true"], &[]);
        f.container("bad/ns", "c2", IMAGE, "c1", &["true"], &[]);
        f.write();
        let d = Overlayfs;
        let c = d.catalog(root).unwrap();
        assert_eq!(c.containers.len(), 1, "{:?}", c.containers);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        // A tampered manifest: the image is listed, its layers are not.
        let blob = root
            .join(meta::CONTENT_BLOBS)
            .join("sha256")
            .join(target.trim_start_matches("sha256:"));
        fs::write(&blob, b"{}").unwrap();
        let c = d.catalog(root).unwrap();
        assert_eq!(c.images.len(), 1);
        assert!(c.images[0].layers.is_empty());
        assert!(
            c.problems.iter().any(|p| p.message.contains("hashes to")),
            "{:?}",
            c.problems
        );
        assert_eq!(c.containers[0].layers.len(), 3, "containers still resolve");
        // A corrupt snapshotter database: containers listed without layers.
        let snapdb = root.join(SNAPSHOTTER_DIR).join(meta::SNAPSHOTTER_DB);
        fs::write(&snapdb, vec![0xa5u8; 3 * 4096]).unwrap();
        let c = d.catalog(root).unwrap();
        assert_eq!(c.containers.len(), 1);
        assert!(c.containers[0].layers.is_empty());
        assert!(
            c.problems
                .iter()
                .any(|p| p.message.contains("corrupt bolt")),
            "{:?}",
            c.problems
        );
        // A corrupt meta.db: an error naming the file, no panic.
        let metadb = root.join(meta::META_DB);
        let mut bytes = fs::read(&metadb).unwrap();
        let len = bytes.len();
        bytes.truncate(len / 2);
        fs::write(&metadb, &bytes).unwrap();
        match d.catalog(root) {
            Ok(c) => assert!(!c.problems.is_empty()),
            Err(e) => assert_eq!(e.path.as_deref(), Some(metadb.as_path())),
        }
    }
}
