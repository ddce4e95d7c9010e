//! The driver contract in plain Rust.
//!
//! A driver *describes* how its storage directory is laid out; core *acts*
//! (reads, merges, mounts). Drivers implement [`Driver`] and export it with
//! [`export_driver!`](crate::export_driver); they never see the FFI types.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the data crossing the plugin boundary. Bumped on any
/// incompatible change; the loader refuses plugins built for another one.
pub const ABI_VERSION: u32 = 2;

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DriverInfo {
    /// The storage driver name as docker writes it (`Driver` in config.v2.json).
    pub name: String,
    pub version: String,
    pub abi_version: u32,
    pub summary: String,
    pub features: Vec<String>,
}

/// How sure a driver is that a root holds its layout: 0 (not at all) to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Confidence(pub u8);

impl Confidence {
    pub const NONE: Confidence = Confidence(0);
    pub const CERTAIN: Confidence = Confidence(100);
}

/// How a layered driver marks deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum WhiteoutStyle {
    /// 0/0 character devices and `trusted.overlay.opaque` / `user.overlay.opaque`.
    Overlay,
    /// `.wh.<name>` files and `.wh..wh..opq`.
    Aufs,
}

/// One piece of a block image: `len` bytes at `offset` of the image come
/// from `file` at `file_offset`. Bytes no extent covers read as zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
    pub file: PathBuf,
    pub file_offset: u64,
}

/// What one layer is on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LayerSource {
    /// A layer of a union: only its own changes, with whiteouts.
    /// `parent_ids` are the driver's ids of its parents, nearest first, as
    /// the driver's own bookkeeping records them (may be empty).
    Diff {
        dir: PathBuf,
        whiteouts: WhiteoutStyle,
        parent_ids: Vec<String>,
    },
    /// A complete tree: the layer merged with all its parents.
    Full { dir: PathBuf },
    /// A filesystem image assembled from extents of backing files.
    BlockImage {
        fs: String,
        size: u64,
        extents: Vec<Extent>,
    },
    /// A filesystem dataset of the storage pool the root was read from
    /// (zfs), read by core in userspace: a complete tree, like `Full`.
    Dataset {
        /// Relative to the dataset holding the docker root (one component:
        /// docker's `<fsname>/<cache-id>` is `<cache-id>`), or a whole
        /// dataset name (`pool/fs/id`) that must lie below that dataset.
        name: String,
        /// The driver's ids of its parents, nearest first, as the driver's
        /// own bookkeeping records them (may be empty).
        parent_ids: Vec<String>,
    },
}

impl LayerSource {
    /// The directory holding the layer's files, when it has one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            LayerSource::Diff { dir, .. } | LayerSource::Full { dir } => Some(dir),
            LayerSource::BlockImage { .. } | LayerSource::Dataset { .. } => None,
        }
    }
}

/// A layer the driver holds on disk, whoever uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LayerEntry {
    pub id: String,
    pub path: PathBuf,
}

/// What another name of a layer on disk leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum LayerPathKind {
    /// The layer's own files under another name (overlay2's `l/<short>`
    /// link to its `diff/`).
    Own,
    /// Where the driver mounted the whole stack topped by this layer (the
    /// container's view while it ran: overlay2's `merged/`, aufs's
    /// `mnt/<id>`, devicemapper's `mnt/<id>/rootfs`).
    View,
}

/// A path, besides [`LayerEntry::path`] and the layer's own directory,
/// that a host listing may show for a layer (see [`Driver::layer_paths`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LayerPath {
    /// The driver's layer id.
    pub id: String,
    pub path: PathBuf,
    pub kind: LayerPathKind,
}

/// Why a driver call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Invalid,
    Io,
    Unsupported,
    /// The plugin panicked; the panic was caught at the boundary.
    Panic,
    Other,
}

/// An error crossing the plugin boundary: a kind, a message and the file it
/// is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[error("{message}{}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
pub struct DriverError {
    pub kind: ErrorKind,
    pub message: String,
    pub path: Option<PathBuf>,
}

impl DriverError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, path: Option<&Path>) -> Self {
        DriverError {
            kind,
            message: message.into(),
            path: path.map(Path::to_path_buf),
        }
    }
}

/// What a layer is to the container or image using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The container's read-write layer: what it changed.
    Rw,
    /// The init layer docker adds (hosts, resolv.conf, ... stubs).
    Init,
    Image,
}

/// One layer of a catalogued container or image, by the driver's layer id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CatalogLayer {
    pub id: String,
    pub role: Role,
}

/// A container an engine other than dockerd recorded in its own metadata
/// (podman's containers.json, containerd's meta.db).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct CatalogContainer {
    pub id: String,
    pub name: String,
    /// The image reference it was created from, as the engine recorded it.
    pub image: String,
    /// The image id (`sha256:...` or the engine's own id).
    pub image_id: String,
    /// RFC 3339; empty when unknown.
    pub created: String,
    /// `running`, `exited`, `created`, ... as far as the files tell.
    pub state: String,
    /// RFC 3339 start and finish times; empty when unknown.
    pub started: String,
    pub finished: String,
    pub exit_code: Option<i64>,
    pub pid: Option<i64>,
    pub command: Vec<String>,
    /// Which engine and namespace holds it (`podman`, `containerd/default`).
    pub engine: String,
    /// The file the record comes from.
    pub source: PathBuf,
    /// Its layers, top (rw) first.
    pub layers: Vec<CatalogLayer>,
    pub labels: Vec<(String, String)>,
    /// The container's log, when the engine kept one in the root.
    pub log: Option<CatalogLog>,
}

/// A container log an engine wrote inside its root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct CatalogLog {
    /// Relative to the root, checked by core like every evidence path.
    pub path: PathBuf,
    /// How it is written: `k8s-file` (`<time> <stream> <F|P> <text>` lines).
    pub format: String,
}

/// An image an engine recorded in its own metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct CatalogImage {
    pub id: String,
    /// References (`busybox:latest`) and digests naming it.
    pub names: Vec<String>,
    pub created: String,
    pub engine: String,
    pub source: PathBuf,
    /// The layer ids, top first.
    pub layers: Vec<String>,
    /// The image's config (OCI / docker image JSON), when the engine keeps it.
    pub config: Option<serde_json::Value>,
}

/// What an engine records of one of its images beyond [`CatalogImage`]
/// (kept apart, in [`Catalog::image_facts`], so drivers that build
/// `CatalogImage` literals keep compiling).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct ImageFacts {
    /// The [`CatalogImage::id`] it is about.
    pub id: String,
    /// The image it was built from, by id, when the engine records it
    /// (docker's classic builder on the containerd store).
    pub parent: Option<String>,
    /// Bytes it takes as the engine counts them (`docker images`' SIZE).
    pub size: Option<u64>,
    /// Those of [`CatalogImage::layers`] that are no layer of its config:
    /// the init layers of the build containers whose snapshots docker's
    /// classic builder committed as the image's steps (containerd store).
    pub init_layers: Vec<String>,
    /// Bytes of each of its layers as the engine counts them (`history`'s
    /// SIZE), by layer id, where it records them (podman's `diff-size`).
    pub layer_sizes: Vec<(String, u64)>,
}

/// What an engine's own metadata holds. Broken records are reported in
/// `problems` and never hide the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Catalog {
    pub containers: Vec<CatalogContainer>,
    pub images: Vec<CatalogImage>,
    pub problems: Vec<DriverError>,
    /// Directories outside the root that hold this driver's layers (the
    /// containerd root beside a docker root). Layer directories must lie
    /// inside the root or one of these. Drivers derive them from options
    /// and fixed locations, never from the evidence's contents.
    pub stores: Vec<PathBuf>,
    /// More of what the engine records about `images`, by id.
    pub image_facts: Vec<ImageFacts>,
}

/// A storage driver. Implementations hold no state worth keeping between
/// calls: core creates one with `Default` per call.
pub trait Driver: Default + 'static {
    fn info(&self) -> DriverInfo;
    /// How sure this driver is that `root` (a docker root) holds its layout.
    fn detect(&self, root: &Path) -> Confidence;
    /// What the layer with this driver id (`cache-id`, `mount-id`) is.
    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError>;
    /// Every layer this driver holds under `root`.
    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError>;
    /// Containers and images an engine keeps outside docker's own metadata
    /// (podman, containerd). Classic drivers have none.
    fn catalog(&self, _root: &Path) -> Result<Catalog, DriverError> {
        Ok(Catalog::default())
    }
    /// Where the engine keeps its root on a host, relative to the host's
    /// `/` (`var/lib/containers/storage`); a leading `~/` means in each
    /// user's home. Lets `--root` on a whole host find the engine's root.
    fn host_roots(&self) -> Vec<String> {
        Vec::new()
    }
    /// Other names of its layers a host listing may show: links to a
    /// layer's files, where stacks were mounted. Read only from the
    /// driver's own bookkeeping files, never by following a symlink.
    fn layer_paths(&self, _root: &Path) -> Result<Vec<LayerPath>, DriverError> {
        Ok(Vec::new())
    }
    /// The layers, top first, of docker container `id` when docker's
    /// layerdb does not record them (the containerd image store).
    fn container_layers(&self, _root: &Path, _id: &str) -> Result<Vec<CatalogLayer>, DriverError> {
        Err(DriverError::new(
            ErrorKind::Unsupported,
            "this driver keeps container layers in docker's layerdb",
            None,
        ))
    }
    /// Which of `datasets` (the datasets below the one holding the root,
    /// relative to it, as core found them in the pool) are this driver's
    /// layers, as layer ids. Lets `layers --orphans` see layers that no
    /// file of the root names any more. Drivers without datasets have none.
    fn dataset_layers(
        &self,
        _root: &Path,
        _datasets: &[String],
    ) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}
