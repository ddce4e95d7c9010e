//! Podman's storage root (`/var/lib/containers/storage`, or a rootless
//! `~/.local/share/containers/storage`) with containers/storage's overlay
//! driver: `overlay/<id>/diff` holds each layer's own files and `lower`
//! names its parents through `l/` short links, as docker's overlay2 does;
//! `overlay-layers/layers.json`, `overlay-images/images.json` and
//! `overlay-containers/containers.json` say which layers make which image
//! and container, and libpod's `libpod/bolt_state.db` (podman 4) or `db.sql`
//! (podman 5) what each container ran, its state and its log.
//!
//! Like every driver it only describes; core reads and mounts. The
//! containers and images come to core as a [`Catalog`].

mod libpod;
mod sqlite;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::{
    Catalog, CatalogContainer, CatalogImage, CatalogLayer, CatalogLog, Confidence, Driver,
    DriverError, DriverInfo, ErrorKind, ImageFacts, LayerEntry, LayerSource, Role, WhiteoutStyle,
    ABI_VERSION,
};
use docker_mount_core::driver_kit::{self, io_err};
use sha2::{Digest, Sha256};

use self::store::{problem, ContainerMetadata, ContainerRecord, ImageRecord, LayerRecord};

/// The driver's name, and the engine its catalog names.
const NAME: &str = "podman";
/// containers/storage's overlay driver directory.
const STORE: &str = "overlay";
const LAYERS: &str = "overlay-layers";
const IMAGES: &str = "overlay-images";
const CONTAINERS: &str = "overlay-containers";
/// Written by containers/storage when a mount program (fuse-overlayfs)
/// mounts the layers: image layers are then unpacked with `.wh.` files.
const MOUNT_PROGRAM_FLAG: &str = ".has-mount-program";
/// An image config is a few KiB; docker's limit for them.
const CONFIG_LIMIT: u64 = 32 * 1024 * 1024;
/// A container's OCI runtime spec (`userdata/config.json`).
const SPEC_LIMIT: u64 = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Podman;

fn open_root(root: &Path) -> Result<Beneath, DriverError> {
    Beneath::open(root).map_err(|e| io_err(root, e))
}

/// The file name containers/storage gives big-data item `key`.
fn big_data_name(key: &str) -> String {
    if key
        .bytes()
        .all(|c| c == b'.' || c.is_ascii_digit() || c.is_ascii_lowercase())
        && !key.is_empty()
    {
        key.to_string()
    } else {
        format!("={}", driver_kit::base64(key.as_bytes()))
    }
}

/// Whether the layers of `root` are mounted by a mount program.
fn has_mount_program(store: &Beneath) -> bool {
    store
        .read_small_text(Path::new(MOUNT_PROGRAM_FLAG), "mount program flag")
        .is_ok_and(|t| t == "true")
}

/// Layer id → whether it was unpacked from a tar (an image layer: it has a
/// `diff-digest`).
type Unpacked = HashMap<String, bool>;

/// The [`Unpacked`] map of a root, read once per root and process.
fn unpacked_layers(root: &Beneath) -> Arc<Unpacked> {
    static CACHE: Mutex<Vec<(PathBuf, Arc<Unpacked>)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, m)) = cache.iter().find(|(p, _)| p == root.path()) {
        return m.clone();
    }
    let layers: Vec<LayerRecord> =
        store::read_records(root, LAYERS, "layers.json", &mut Vec::new());
    let m = Arc::new(
        layers
            .into_iter()
            .map(|l| (l.id, !l.diff_digest.is_empty()))
            .collect(),
    );
    cache.push((root.path().to_path_buf(), Arc::clone(&m)));
    m
}

/// How layer `id` marks deletions. The kernel's overlay (and
/// containers/storage unpacking for it) uses 0/0 character devices; with a
/// mount program, containers/storage unpacks image layers with aufs-style
/// `.wh.` files instead, while the container's own layer holds what
/// fuse-overlayfs wrote (character devices where it may make them).
fn whiteouts(root: &Beneath, store: &Beneath, id: &str) -> WhiteoutStyle {
    if has_mount_program(store) && unpacked_layers(root).get(id).copied().unwrap_or(false) {
        WhiteoutStyle::Aufs
    } else {
        WhiteoutStyle::Overlay
    }
}

/// Image layers top first, with their roles.
fn image_layers(ids: &[String]) -> impl Iterator<Item = CatalogLayer> + '_ {
    ids.iter().map(|id| CatalogLayer {
        id: id.clone(),
        role: Role::Image,
    })
}

/// The image's config (the big-data item named by its id, which is the
/// config's digest), checked against that digest.
fn image_config(
    root: &Beneath,
    image: &ImageRecord,
    problems: &mut Vec<DriverError>,
) -> Option<serde_json::Value> {
    let key = format!("sha256:{}", image.id);
    if !image.big_data_names.contains(&key) {
        return None;
    }
    let rel = Path::new(IMAGES).join(&image.id).join(big_data_name(&key));
    let path = root.path().join(&rel);
    let bytes = match root.read(&rel, CONFIG_LIMIT, "image config") {
        Ok(b) => b,
        Err(e) => {
            problems.push(problem(ErrorKind::Io, e.to_string(), &path));
            return None;
        }
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != image.id {
        problems.push(problem(
            ErrorKind::Invalid,
            format!(
                "image {}: its config hashes to sha256:{digest}, not to the image id",
                image.id
            ),
            &path,
        ));
    }
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(problem(
                ErrorKind::Invalid,
                format!("image {}: config is not JSON: {e}", image.id),
                &path,
            ));
            None
        }
    }
}

/// The process of a container's OCI runtime spec, `userdata/config.json`
/// (written when the container is first initialised).
fn spec_args(root: &Beneath, id: &str, problems: &mut Vec<DriverError>) -> Vec<String> {
    let rel = Path::new(CONTAINERS).join(id).join("userdata/config.json");
    if !root.exists(&rel) {
        return Vec::new();
    }
    match root.read_json::<libpod::Spec>(&rel, SPEC_LIMIT, "OCI runtime spec") {
        Ok(s) => s.process.args,
        Err(e) => {
            problems.push(problem(
                ErrorKind::Invalid,
                e.to_string(),
                &root.path().join(&rel),
            ));
            Vec::new()
        }
    }
}

/// Sizes as podman counts them: each layer's `diff-size` (its
/// uncompressed tar), and the image's, those and its big-data items
/// (config, manifests) together; unknown when a layer's is.
fn image_facts_of(
    image: &ImageRecord,
    layers: &[String],
    records: &HashMap<String, LayerRecord>,
) -> ImageFacts {
    let layer_sizes: Vec<(String, u64)> = layers
        .iter()
        .filter_map(|id| {
            let size = records.get(id)?.diff_size?;
            Some((id.clone(), u64::try_from(size).ok()?))
        })
        .collect();
    let big_data: Option<u64> = image
        .big_data_sizes
        .values()
        .map(|&n| u64::try_from(n).ok())
        .sum();
    let size = (layer_sizes.len() == layers.len())
        .then(|| {
            big_data.and_then(|b| {
                layer_sizes
                    .iter()
                    .try_fold(b, |t, (_, n)| t.checked_add(*n))
            })
        })
        .flatten();
    ImageFacts {
        id: format!("sha256:{}", image.id),
        size,
        layer_sizes,
        ..Default::default()
    }
}

/// Where the container's `k8s-file` log lies in the root: the path libpod
/// recorded, when it lies in the container's `userdata` (its static dir),
/// else `userdata/ctr.log` when libpod's record is gone and it is there.
/// Other log drivers (journald, none) keep nothing in the root.
fn log_of(root: &Beneath, id: &str, pod: &libpod::Libpod) -> Option<CatalogLog> {
    let userdata = Path::new(CONTAINERS).join(id).join("userdata");
    let rel = if pod.log_driver.is_empty() && pod.log_path.is_empty() {
        userdata.join("ctr.log")
    } else if pod.log_driver == "k8s-file" {
        let rest = Path::new(&pod.log_path)
            .strip_prefix(&pod.static_dir)
            .ok()
            .filter(|r| !pod.static_dir.is_empty() && !r.as_os_str().is_empty())?;
        if !rest
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return None;
        }
        userdata.join(rest)
    } else {
        return None;
    };
    root.exists(&rel).then(|| CatalogLog {
        path: rel,
        format: "k8s-file".into(),
    })
}

fn catalog(root: &Path) -> Result<Catalog, DriverError> {
    let dir = open_root(root)?;
    let mut problems = Vec::new();
    let layer_records = store::layer_map(store::read_records(
        &dir,
        LAYERS,
        "layers.json",
        &mut problems,
    ));
    let layers_file = root.join(LAYERS).join("layers.json");
    let chain = |top: &str, who: String, problems: &mut Vec<DriverError>| {
        let (ids, broken) = store::chain(&layer_records, top);
        if let Some(why) = broken {
            problems.push(problem(
                ErrorKind::Invalid,
                format!("{who}: {why}"),
                &layers_file,
            ));
        }
        ids
    };

    let images: Vec<ImageRecord> = store::read_records(&dir, IMAGES, "images.json", &mut problems);
    let images_file = root.join(IMAGES).join("images.json");
    let mut image_names = HashMap::new();
    let mut catalog_images = Vec::new();
    let mut image_facts = Vec::new();
    for image in images {
        let layers = if image.layer.is_empty() {
            Vec::new()
        } else {
            chain(&image.layer, format!("image {}", image.id), &mut problems)
        };
        if let Some(name) = image.names.first() {
            image_names.insert(image.id.clone(), name.clone());
        }
        image_facts.push(image_facts_of(&image, &layers, &layer_records));
        catalog_images.push(CatalogImage {
            config: image_config(&dir, &image, &mut problems),
            id: format!("sha256:{}", image.id),
            names: image.names,
            created: image.created,
            engine: NAME.into(),
            source: images_file.clone(),
            layers,
        });
    }

    let containers: Vec<ContainerRecord> =
        store::read_records(&dir, CONTAINERS, "containers.json", &mut problems);
    let containers_file = root.join(CONTAINERS).join("containers.json");
    let mut libpod = libpod::read(&dir, &mut problems);
    let mut catalog_containers = Vec::new();
    for c in containers {
        if !docker_mount_core::beneath::is_safe_component(&c.layer) {
            problems.push(problem(
                ErrorKind::Invalid,
                format!(
                    "container {}: layer {:?} is not a plain name",
                    c.id, c.layer
                ),
                &containers_file,
            ));
            continue;
        }
        let meta: ContainerMetadata = if c.metadata.is_empty() {
            ContainerMetadata::default()
        } else {
            serde_json::from_str(&c.metadata).unwrap_or_else(|e| {
                problems.push(problem(
                    ErrorKind::Invalid,
                    format!("container {}: metadata is not JSON: {e}", c.id),
                    &containers_file,
                ));
                ContainerMetadata::default()
            })
        };
        let mut layers = vec![CatalogLayer {
            id: c.layer.clone(),
            role: Role::Rw,
        }];
        let ids = chain(&c.layer, format!("container {}", c.id), &mut problems);
        layers.extend(image_layers(&ids[1..]));
        let pod = libpod.remove(&c.id).unwrap_or_else(|| libpod::Libpod {
            state: "unknown".into(),
            ..Default::default()
        });
        let log = log_of(&dir, &c.id, &pod);
        let command = if pod.args.is_empty() {
            spec_args(&dir, &c.id, &mut problems)
        } else {
            pod.args
        };
        let image = [
            meta.image_name,
            pod.image_name,
            image_names.get(&c.image).cloned().unwrap_or_default(),
        ]
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| c.image.clone());
        catalog_containers.push(CatalogContainer {
            name: c
                .names
                .first()
                .cloned()
                .filter(|n| !n.is_empty())
                .unwrap_or(meta.name),
            image,
            image_id: if c.image.is_empty() {
                String::new()
            } else {
                format!("sha256:{}", c.image)
            },
            created: c.created,
            state: pod.state,
            started: pod.started,
            finished: pod.finished,
            exit_code: pod.exit_code,
            pid: pod.pid,
            command,
            engine: NAME.into(),
            source: containers_file.clone(),
            layers,
            labels: pod.labels,
            log,
            id: c.id,
        });
    }
    Ok(Catalog {
        containers: catalog_containers,
        images: catalog_images,
        image_facts,
        problems,
        ..Default::default()
    })
}

impl Driver for Podman {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "podman / containers-storage overlay roots (/var/lib/containers/storage): layers.json, images.json, containers.json, libpod state".into(),
            // podman diffs with containers/storage's native overlay differ
            // (unless a mount program mounts the layers).
            features: vec![
                "whiteouts:overlay".into(),
                "whiteouts:aufs".into(),
                "catalog".into(),
                driver_kit::OVERLAY_NATIVE_DIFF.into(),
            ],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        let Ok(dir) = Beneath::open(root) else {
            return Confidence::NONE;
        };
        let layers = dir.exists(&Path::new(LAYERS).join("layers.json"));
        let store = dir.is_dir(Path::new(STORE));
        let others = [IMAGES, CONTAINERS]
            .iter()
            .any(|d| dir.is_dir(Path::new(d)));
        match (layers, store, others) {
            (true, true, _) => Confidence::CERTAIN,
            (true, false, _) | (false, true, true) => Confidence(70),
            (false, false, true) => Confidence(30),
            (false, _, false) => Confidence::NONE,
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        let store = driver_kit::open_store(root, STORE)?;
        let style = whiteouts(&open_root(root)?, &store, id);
        driver_kit::overlay_layer(&store, id, NAME, style)
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        let store = driver_kit::open_store(root, STORE)?;
        Ok(driver_kit::list_layers(&store, Path::new(""), &["l"])?
            .into_iter()
            .filter(|l| store.is_dir(&Path::new(&l.id).join("diff")))
            .collect())
    }

    fn layer_paths(&self, root: &Path) -> Result<Vec<docker_mount_core::LayerPath>, DriverError> {
        driver_kit::overlay_layer_paths(&driver_kit::open_store(root, STORE)?, true)
    }

    fn host_roots(&self) -> Vec<String> {
        // Root's storage, and each user's rootless storage.
        vec![
            "var/lib/containers/storage".into(),
            "~/.local/share/containers/storage".into(),
        ]
    }
    fn catalog(&self, root: &Path) -> Result<Catalog, DriverError> {
        catalog(root)
    }
}

docker_mount_core::export_driver!(Podman);

#[cfg(test)]
mod tests;
