//! Every layer directory on disk, whoever uses it: each loaded driver lists
//! its layers (`Driver::layers`), and layerdb, the image configs and the
//! containers' mounts say which images and containers use each. Layers
//! nobody uses are orphans — remnants of removed containers and images,
//! or of an interrupted pull or build — listed with their size and times.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::analysis::usage::{self, Usage};
use crate::evidence::pool::{self, DatasetProvider};
use crate::model::detect;
use crate::model::ids;
use crate::model::layerdb::{self, LayerDb};
use crate::model::root::DockerRoot;
use crate::model::stack::relative_dir;
use docker_mount_core::driver::LayerSource;
use docker_mount_core::driver_kit::DATASET_LAYERS;
use docker_mount_core::loader::Drivers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LayerRole {
    /// An image layer in layerdb.
    Image,
    /// A container's read-write layer.
    ContainerRw,
    /// A container's init layer.
    ContainerInit,
    /// Used by nothing docker still records.
    Orphan,
}

/// One layer directory.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LayerDir {
    pub driver: String,
    /// The driver's id (directory name).
    pub id: String,
    pub path: String,
    /// The directory of the layer's own files, when it has one (not a
    /// block image), and the path the driver lists it by (`overlay2/<id>`,
    /// holding `diff/` and more).
    #[serde(skip)]
    pub content: Option<std::path::PathBuf>,
    #[serde(skip)]
    pub entry: std::path::PathBuf,
    pub role: LayerRole,
    pub chain_id: Option<String>,
    /// Images whose layers include it (tags, or short ids when untagged).
    pub images: Vec<String>,
    /// Containers whose stack includes it.
    pub containers: Vec<String>,
    /// layerdb's `size`, for image layers.
    pub layerdb_size: Option<u64>,
    /// What the directory holds: always for orphans, for all with sizes.
    pub usage: Option<Usage>,
    /// For orphans: what the leftovers suggest it was.
    pub hint: Option<String>,
    /// For orphans: the driver's record of the layers below it, nearest
    /// first, with what each is now.
    pub parents: Vec<String>,
}

/// A layer docker's metadata names but whose directory is missing.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MissingLayer {
    pub driver: String,
    pub id: String,
    /// The chain id or container that names it.
    pub named_by: String,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Inventory {
    pub layers: Vec<LayerDir>,
    pub missing: Vec<MissingLayer>,
    /// Image stores with no loaded driver, and other things not examined.
    pub problems: Vec<String>,
}

#[derive(Default)]
struct Use {
    role: Option<LayerRole>,
    chain_id: Option<String>,
    size: Option<u64>,
    images: BTreeSet<String>,
    containers: BTreeSet<String>,
    named_by: String,
}

fn image_label(tags: &[String], id: &str) -> String {
    tags.first()
        .cloned()
        .unwrap_or_else(|| format!("sha256:{}", ids::short(id)))
}

/// The inventory of every driver's layers; `sizes` measures every layer,
/// not only orphans.
pub fn inventory(root: &DockerRoot, drivers: &Drivers, sizes: bool) -> Inventory {
    let mut inv = Inventory::default();
    // (driver, id) → use.
    let mut uses: BTreeMap<(String, String), Use> = BTreeMap::new();
    let mut dbs: BTreeMap<String, std::sync::Arc<LayerDb>> = BTreeMap::new();
    for store in root.stores() {
        let db = root.layerdb(&store);
        for rec in db.layers.values() {
            let u = uses
                .entry((store.clone(), rec.cache_id.clone()))
                .or_default();
            u.role = Some(LayerRole::Image);
            u.chain_id = Some(rec.link.chain_id.clone());
            u.size = rec.link.size;
            u.named_by = format!("layerdb sha256:{}", rec.link.chain_id);
        }
        for p in &db.problems {
            inv.problems.push(p.clone());
        }
        dbs.insert(store, db);
    }
    for img in root.images().into_iter().flatten() {
        if img.legacy {
            continue;
        }
        // An engine's own image: its catalog names its layers.
        if let Some(record) = &img.catalog {
            let label = image_label(&img.tags, &img.id);
            for l in &record.layers {
                let u = uses
                    .entry((record.driver.clone(), l.id.clone()))
                    .or_default();
                u.role.get_or_insert(LayerRole::Image);
                u.images.insert(label.clone());
                if u.named_by.is_empty() {
                    u.named_by = format!("image {label} ({})", img.config_path.display());
                }
            }
            continue;
        }
        let Some(db) = dbs.get(&img.store) else {
            continue;
        };
        let label = image_label(&img.tags, &img.id);
        for chain in layerdb::chain_ids(&img.config.rootfs.diff_ids) {
            if let Some(rec) = db.layers.get(&chain) {
                if let Some(u) = uses.get_mut(&(img.store.clone(), rec.cache_id.clone())) {
                    u.images.insert(label.clone());
                }
            }
        }
    }
    for c in root.containers() {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                inv.problems
                    .push(format!("container {}: {}", e.name, e.error));
                continue;
            }
        };
        let Some(driver) = detect::container_driver_name(root, drivers, &c) else {
            continue;
        };
        let name = c.name().to_string();
        if let Some(record) = &c.catalog {
            for l in &record.layers {
                let role = match l.role {
                    docker_mount_core::driver::Role::Rw => LayerRole::ContainerRw,
                    docker_mount_core::driver::Role::Init => LayerRole::ContainerInit,
                    docker_mount_core::driver::Role::Image => LayerRole::Image,
                };
                let u = uses
                    .entry((record.driver.clone(), l.id.clone()))
                    .or_default();
                u.role.get_or_insert(role);
                u.containers.insert(name.clone());
                if u.named_by.is_empty() {
                    u.named_by = format!("container {name} ({})", c.config_path.display());
                }
            }
            continue;
        }
        if c.legacy {
            for (id, role) in [
                (c.id.clone(), LayerRole::ContainerRw),
                (format!("{}-init", c.id), LayerRole::ContainerInit),
            ] {
                let u = uses.entry((driver.clone(), id)).or_default();
                u.role.get_or_insert(role);
                u.containers.insert(name.clone());
            }
            continue;
        }
        let mount = match layerdb::read_mount(root.dir(), &driver, &c.id) {
            Ok(m) => m,
            Err(e) => {
                // Engines such as the containerd image store keep the
                // layers of docker's containers themselves.
                match drivers
                    .by_name(&driver)
                    .map(|d| d.container_layers(root.path(), &c.id))
                {
                    Some(Ok(layers)) => {
                        for l in &layers {
                            let u = uses.entry((driver.clone(), l.id.clone())).or_default();
                            u.role.get_or_insert(match l.role {
                                docker_mount_core::driver::Role::Rw => LayerRole::ContainerRw,
                                docker_mount_core::driver::Role::Init => LayerRole::ContainerInit,
                                docker_mount_core::driver::Role::Image => LayerRole::Image,
                            });
                            u.containers.insert(name.clone());
                            if u.named_by.is_empty() {
                                u.named_by =
                                    format!("container {name} ({})", c.config_path.display());
                            }
                        }
                    }
                    Some(Err(d)) if d.kind != docker_mount_core::ErrorKind::Unsupported => {
                        inv.problems.push(format!("container {name}: {d}"));
                    }
                    _ => inv.problems.push(format!("container {name}: {e}")),
                }
                continue;
            }
        };
        let mut mark = |id: &str, role: LayerRole| {
            let u = uses.entry((driver.clone(), id.to_string())).or_default();
            u.role.get_or_insert(role);
            u.containers.insert(name.clone());
            if u.named_by.is_empty() {
                u.named_by = format!("container {name} ({})", mount.dir.display());
            }
        };
        mark(&mount.mount_id, LayerRole::ContainerRw);
        if let Some(init) = &mount.init_id {
            mark(init, LayerRole::ContainerInit);
        }
        if let (Some(parent), Some(db)) = (&mount.parent, dbs.get(&driver)) {
            if let Ok(chain) = db.chain(parent) {
                for rec in chain {
                    mark(&rec.cache_id, LayerRole::Image);
                }
            }
        }
    }

    let mut on_disk: BTreeSet<(String, String)> = BTreeSet::new();
    for d in &drivers.loaded {
        // A driver that does not recognise the root has no layers in it
        // (docker's overlay v1 and podman both keep an `overlay/`).
        if d.detect(root.path())
            .is_ok_and(|c| c == docker_mount_core::driver::Confidence::NONE)
        {
            continue;
        }
        let listed = match root.pool() {
            Some(pool) if d.has_feature(DATASET_LAYERS) => dataset_entries(pool, d, root),
            _ => d.layers(root.path()),
        };
        let entries = match listed {
            Ok(e) => e,
            // This driver has no store in the root.
            Err(e) if e.kind == docker_mount_core::driver::ErrorKind::NotFound => continue,
            Err(e) if !root.stores().iter().any(|s| s == d.name()) => {
                tracing::debug!("{}: no layers: {e}", d.name());
                continue;
            }
            Err(e) => {
                inv.problems.push(format!("{}: {e}", d.name()));
                continue;
            }
        };
        let ids: BTreeSet<String> = entries.iter().map(|e| e.id.clone()).collect();
        for entry in entries {
            let key = (d.name().to_string(), entry.id.clone());
            on_disk.insert(key.clone());
            let u = uses.get(&key);
            // A layer layerdb still records but no image or container
            // uses (a removal that failed half-way) is left over too.
            let unused = u.is_some_and(|u| {
                u.role == Some(LayerRole::Image) && u.images.is_empty() && u.containers.is_empty()
            });
            let role = match u.and_then(|u| u.role) {
                Some(_) if unused => LayerRole::Orphan,
                Some(r) => r,
                None => LayerRole::Orphan,
            };
            let orphan = role == LayerRole::Orphan;
            let source = d.layer(root.path(), &entry.id).ok();
            let content = source
                .as_ref()
                .and_then(|s| s.dir().map(|p| p.to_path_buf()))
                .unwrap_or_else(|| entry.path.clone());
            let usage = (orphan || sizes)
                .then(|| match (&source, root.pool()) {
                    (Some(LayerSource::Dataset { name, .. }), Some(p)) => pool::layer_dir(p, name)
                        .ok()
                        .map(|dir| usage::measure(&dir, std::path::Path::new(""))),
                    _ => relative_dir(root, &content)
                        .ok()
                        .map(|rel| usage::measure(root.dir(), rel)),
                })
                .flatten();
            let mut parents = Vec::new();
            if orphan {
                if let Some(LayerSource::Diff { parent_ids, .. }) = &source {
                    for p in parent_ids.iter().take(3) {
                        let what = match uses.get(&(d.name().to_string(), p.clone())) {
                            Some(pu) if !pu.images.is_empty() => format!(
                                "{p} (layer of {})",
                                pu.images.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                            Some(pu) => format!("{p} ({:?})", pu.role.unwrap_or(LayerRole::Orphan)),
                            None => format!("{p} (orphan or missing)"),
                        };
                        parents.push(what);
                    }
                    if parent_ids.len() > 3 {
                        parents.push(format!("... {} in all", parent_ids.len()));
                    }
                }
            }
            let hint = orphan.then(|| {
                if unused {
                    "layerdb still records it, but no image or container uses it: a removal that failed half-way".to_string()
                } else {
                    orphan_hint(&entry.id, &uses, d.name(), &ids)
                }
            });
            inv.layers.push(LayerDir {
                driver: d.name().to_string(),
                id: entry.id.clone(),
                path: content.display().to_string(),
                content: source
                    .as_ref()
                    .and_then(|s| s.dir().map(std::path::Path::to_path_buf)),
                entry: entry.path.clone(),
                role,
                chain_id: u.and_then(|u| u.chain_id.clone()),
                images: u
                    .map(|u| u.images.iter().cloned().collect())
                    .unwrap_or_default(),
                containers: u
                    .map(|u| u.containers.iter().cloned().collect())
                    .unwrap_or_default(),
                layerdb_size: u.and_then(|u| u.size),
                usage,
                hint,
                parents,
            });
        }
    }
    let loaded: BTreeSet<&str> = drivers.loaded.iter().map(|d| d.name()).collect();
    for ((driver, id), u) in &uses {
        if !loaded.contains(driver.as_str()) {
            continue;
        }
        if !on_disk.contains(&(driver.clone(), id.clone())) {
            inv.missing.push(MissingLayer {
                driver: driver.clone(),
                id: id.clone(),
                named_by: u.named_by.clone(),
            });
        }
    }
    for store in root.stores() {
        if !loaded.contains(store.as_str()) {
            inv.problems.push(format!(
                "image store {store}: no {store} driver plugin loaded, its layers are not listed"
            ));
        }
    }
    inv
}

/// The layers of a dataset driver on a root read from a pool: the
/// datasets below the root's that the driver claims, listed by name.
fn dataset_entries(
    pool: &dyn DatasetProvider,
    d: &docker_mount_core::loader::LoadedDriver,
    root: &DockerRoot,
) -> Result<Vec<docker_mount_core::driver::LayerEntry>, docker_mount_core::DriverError> {
    let children = pool.children().map_err(|e| {
        docker_mount_core::DriverError::new(
            docker_mount_core::ErrorKind::Io,
            format!("datasets of {}: {e}", pool.describe()),
            None,
        )
    })?;
    Ok(d.dataset_layers(root.path(), &children)?
        .into_iter()
        .filter(|id| children.contains(id))
        .map(|id| docker_mount_core::driver::LayerEntry {
            path: std::path::PathBuf::from(format!("{}/{id}", pool.base())),
            id,
        })
        .collect())
}

/// What an orphan probably was.
fn orphan_hint(
    id: &str,
    uses: &BTreeMap<(String, String), Use>,
    driver: &str,
    ids: &BTreeSet<String>,
) -> String {
    if let Some(rw) = id.strip_suffix("-init") {
        return if ids.contains(rw) {
            format!("init layer of a removed container (its rw layer {rw} is also left)")
        } else {
            "init layer of a removed container".into()
        };
    }
    if ids.contains(&format!("{id}-init")) {
        let init_used = uses.contains_key(&(driver.to_string(), format!("{id}-init")));
        return if init_used {
            "rw layer whose init layer is still in use".into()
        } else {
            "rw layer of a removed container (its -init layer is also left)".into()
        };
    }
    "no container or image records it: a removed image's layer, or an interrupted pull, build or removal".into()
}

/// One layer directory, found by driver id (or a unique prefix of one)
/// among every loaded driver's layers, opened raw: whiteouts and opaque
/// markers are kept as the entries they are on disk, nothing below shows
/// through. Works for orphans, whose parents may be gone.
pub fn raw_layer(
    root: &DockerRoot,
    drivers: &Drivers,
    query: &str,
) -> crate::Result<(String, String, crate::union::Union)> {
    let mut hits = Vec::new();
    for d in &drivers.loaded {
        let listed = match root.pool() {
            Some(p) if d.has_feature(DATASET_LAYERS) => dataset_entries(p, d, root),
            _ => d.layers(root.path()),
        };
        for e in listed.unwrap_or_default() {
            if e.id == query || (!query.is_empty() && e.id.starts_with(query)) {
                hits.push((d, e));
            }
        }
    }
    if let Some(i) = hits.iter().position(|(_, e)| e.id == query) {
        hits = vec![hits.swap_remove(i)];
    }
    let (d, entry) = match hits.len() {
        1 => hits.remove(0),
        0 => {
            return Err(crate::Error::Usage(format!(
                "no layer directory {query:?} in {}; see `docker-mount layers`",
                root.path().display()
            )))
        }
        n => {
            return Err(crate::Error::Usage(format!(
                "{query:?} matches {n} layer directories; give more of the id"
            )))
        }
    };
    let source = d.layer(root.path(), &entry.id).ok();
    if let (Some(LayerSource::Dataset { name, .. }), Some(p)) = (&source, root.pool()) {
        let dir = pool::layer_dir(p, name)?;
        return Ok((
            d.name().to_string(),
            pool::resolve(p.base(), name)?,
            crate::union::Union::new(vec![crate::union::Tree::whole(dir, None, &entry.id)]),
        ));
    }
    // The layer's own files when the driver can say where they are, its
    // whole directory otherwise (an orphan whose parents are gone).
    let dir = source
        .and_then(|s| s.dir().map(std::path::Path::to_path_buf))
        .unwrap_or(entry.path.clone());
    let rel = relative_dir(root, &dir)?;
    let noatime = root.dir().noatime_clone();
    let base = noatime.as_ref().unwrap_or(root.dir());
    let tree = crate::union::Tree::open(base, rel, None, &entry.id)?;
    Ok((
        d.name().to_string(),
        dir.display().to_string(),
        crate::union::Union::new(vec![tree]),
    ))
}
