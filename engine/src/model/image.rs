//! Images: `image/<store>/imagedb` configs and `repositories.json` tags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::container::RunConfig;
use crate::model::ids;
use crate::model::record::CatalogRecord;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

const IMAGE_CONFIG_LIMIT: u64 = 32 * 1024 * 1024;
const REPOSITORIES_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ImageConfig {
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub author: String,
    pub config: RunConfig,
    pub rootfs: RootFs,
    pub history: Vec<History>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct History {
    pub created: String,
    pub created_by: String,
    pub empty_layer: bool,
    pub comment: String,
}

/// An image of one image store.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    /// The image store (`image/<store>`), named after the storage driver.
    pub store: String,
    pub config: ImageConfig,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    /// The image it was built from (`imagedb/metadata/.../parent`), if recorded.
    pub parent: Option<String>,
    pub config_path: PathBuf,
    /// A docker < 1.10 image (`graph/<id>/json`): one layer, named by its id.
    pub legacy: bool,
    /// Set when an engine's own metadata, not docker's, recorded it.
    pub catalog: Option<CatalogRecord>,
}

/// `repositories.json`: reference → image id, per image id.
#[derive(Debug, Default)]
pub struct References {
    pub by_image: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct RepositoriesFile {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

impl References {
    pub fn read(root: &Beneath, store: &str) -> Result<References> {
        let rel = Path::new("image").join(store).join("repositories.json");
        // Missing when nothing was ever tagged: tried, not probed first.
        let file: RepositoriesFile =
            match root.read_json(&rel, REPOSITORIES_LIMIT, "repositories.json") {
                Err(e) if e.is_not_found() => return Ok(References::default()),
                read => read?,
            };
        let mut by_image: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for refs in file.repositories.into_values() {
            for (reference, id) in refs {
                by_image
                    .entry(ids::strip_sha256(&id).to_string())
                    .or_default()
                    .push(reference);
            }
        }
        Ok(References { by_image })
    }
}

impl Image {
    /// Reads one image config of `imagedb` (`image/<store>/imagedb`,
    /// opened beneath the root) and checks that its sha256 is its id.
    pub fn read(imagedb: &Beneath, store: &str, id: &str, refs: &References) -> Result<Image> {
        let rel = Path::new("content/sha256").join(id);
        if !ids::is_full_id(id) {
            return Err(Error::invalid(
                imagedb.path().join(&rel),
                "image config name is not a sha256 id",
            ));
        }
        let bytes = imagedb.read(&rel, IMAGE_CONFIG_LIMIT, "an image config")?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != id {
            return Err(Error::invalid(
                imagedb.path().join(&rel),
                format!(
                    "content hashes to sha256:{actual}, not its name: the image config was altered"
                ),
            ));
        }
        let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|cause| Error::Json {
            path: imagedb.path().join(&rel),
            what: "an image config",
            cause,
        })?;
        let (digests, tags) = refs
            .by_image
            .get(id)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .partition(|r| r.contains('@'));
        let parent_rel = Path::new("metadata/sha256").join(id).join("parent");
        let parent = imagedb
            .read_small_text(&parent_rel, "image parent")
            .ok()
            .and_then(|p| ids::parse_digest(&p).map(str::to_string));
        Ok(Image {
            id: id.to_string(),
            store: store.to_string(),
            config,
            tags,
            digests,
            parent,
            config_path: imagedb.path().join(rel),
            legacy: false,
            catalog: None,
        })
    }

    /// The ids of every image config in a store.
    pub fn list_ids(root: &Beneath, store: &str) -> Result<Vec<String>> {
        let rel = Path::new("image")
            .join(store)
            .join("imagedb/content/sha256");
        let names = match root.list(&rel) {
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            listed => listed?,
        };
        Ok(names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }
}
