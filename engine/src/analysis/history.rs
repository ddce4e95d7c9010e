//! An image's history, as `docker history` shows it, joined with its layers
//! on disk: each step that made a layer gets that layer's diff id, chain
//! id, driver directory, layerdb size and whether the directory is there.

use serde::Serialize;

use crate::analysis::usage::{self, Usage};
use crate::model::image::Image;
use crate::model::layerdb;
use crate::model::root::DockerRoot;
use crate::model::stack::relative_dir;
use docker_mount_core::error::Result;
use docker_mount_core::loader::Drivers;

/// A layer an image step made.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StepLayer {
    /// Position in `rootfs.diff_ids`, base first.
    pub index: usize,
    pub diff_id: String,
    pub chain_id: String,
    /// The driver's directory id, from layerdb's `cache-id`.
    pub cache_id: Option<String>,
    /// layerdb's `size`: the layer's uncompressed content.
    pub size: Option<u64>,
    pub path: Option<String>,
    /// Whether the driver's directory for it exists.
    pub present: bool,
    /// Why it is missing or unreadable.
    pub problem: Option<String>,
    /// What the directory holds, with `--disk-usage`.
    pub disk: Option<Usage>,
}

/// One step of the image's build.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub created: String,
    pub created_by: String,
    pub author: String,
    pub comment: String,
    pub empty_layer: bool,
    /// The layer it made (none for metadata-only steps, and for steps of an
    /// image whose history lists fewer layers than it has).
    pub layer: Option<StepLayer>,
}

/// `history <image>`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct History {
    pub image: String,
    pub tags: Vec<String>,
    pub created: String,
    /// Newest first, as `docker history` lists them.
    pub steps: Vec<Step>,
    /// Sum of the layers' layerdb sizes.
    pub size: u64,
    pub warnings: Vec<String>,
}

fn history_author(h: &serde_json::Value) -> String {
    h.get("author")
        .and_then(|a| a.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The history of `image`; `disk_usage` also walks each layer directory.
pub fn history(
    root: &DockerRoot,
    drivers: &Drivers,
    image: &Image,
    disk_usage: bool,
) -> Result<History> {
    let mut warnings = Vec::new();
    let db = root.layerdb(&image.store);
    let driver = drivers.by_name(&image.store);
    if driver.is_none() {
        warnings.push(format!(
            "no {} driver plugin loaded: layer directories not checked",
            image.store
        ));
    }
    // The driver's own list says which directories exist.
    let on_disk: std::collections::BTreeMap<String, std::path::PathBuf> = driver
        .and_then(|d| d.layers(root.path()).ok())
        .map(|l| l.into_iter().map(|e| (e.id, e.path)).collect())
        .unwrap_or_default();
    let diff_ids = &image.config.rootfs.diff_ids;
    let chain = layerdb::chain_ids(diff_ids);
    // Authors are not in the model's History; read them from the raw config.
    let raw: serde_json::Value = root
        .dir()
        .read_json(
            image
                .config_path
                .strip_prefix(root.path())
                .unwrap_or(&image.config_path),
            32 * 1024 * 1024,
            "an image config",
        )
        .unwrap_or_default();
    let raw_history = raw
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    // A catalogued image's layers are the engine's (top first), not
    // layerdb's; the init layers between them are no step's.
    let catalog_ids: Option<Vec<&str>> = image.catalog.as_ref().map(|c| {
        c.layers
            .iter()
            .rev()
            .filter(|l| l.role != docker_mount_core::driver::Role::Init)
            .map(|l| l.id.as_str())
            .collect()
    });
    if let Some(ids) = catalog_ids
        .as_ref()
        .filter(|ids| ids.len() != diff_ids.len())
    {
        warnings.push(format!(
            "the engine records {} layers for the image, its config {}",
            ids.len(),
            diff_ids.len()
        ));
    }
    let layer_at = |i: usize| -> StepLayer {
        let chain_id = chain[i].clone();
        let rec = db.layers.get(&chain_id);
        let cache_id = match &catalog_ids {
            Some(ids) => ids.get(i).map(|id| id.to_string()),
            None => rec.map(|r| r.cache_id.clone()),
        };
        let mut l = StepLayer {
            index: i,
            diff_id: crate::model::ids::strip_sha256(&diff_ids[i]).to_string(),
            chain_id: chain_id.clone(),
            cache_id: cache_id.clone(),
            size: match &image.catalog {
                Some(c) => cache_id
                    .as_ref()
                    .and_then(|id| c.layer_sizes.get(id).copied()),
                None => rec.and_then(|r| r.link.size),
            },
            path: None,
            present: false,
            problem: None,
            disk: None,
        };
        let Some(cache_id) = cache_id else {
            l.problem = Some(match (&catalog_ids, db.unreadable.get(&chain_id)) {
                (Some(_), _) => "not among the layers the engine records for the image".into(),
                (None, Some(why)) => format!("layerdb entry unreadable: {why}"),
                (None, None) => "not in layerdb".into(),
            });
            return l;
        };
        let Some(d) = driver else {
            return l;
        };
        let entry = on_disk.get(&cache_id);
        l.present = entry.is_some();
        let mut measure = |dir: &std::path::Path| {
            l.path = Some(dir.display().to_string());
            if disk_usage {
                if let Ok(rel) = relative_dir(root, dir) {
                    l.disk = Some(usage::measure(root.dir(), rel));
                }
            }
        };
        match d.layer(root.path(), &cache_id) {
            Ok(src) => {
                if let Some(dir) = src.dir() {
                    measure(dir);
                }
            }
            Err(e) if l.present => {
                if let Some(dir) = entry {
                    measure(dir);
                }
                l.problem = Some(format!("its directory is there, but: {e}"))
            }
            Err(e) => l.problem = Some(format!("missing: {e}")),
        }
        l
    };
    let mut steps = Vec::new();
    let mut next = 0usize;
    for (i, h) in image.config.history.iter().enumerate() {
        let layer = if h.empty_layer {
            None
        } else if next < diff_ids.len() {
            next += 1;
            Some(layer_at(next - 1))
        } else {
            warnings.push(format!(
                "history step {i} made a layer, but the image has only {} layers",
                diff_ids.len()
            ));
            None
        };
        steps.push(Step {
            created: h.created.clone(),
            created_by: h.created_by.clone(),
            author: raw_history.get(i).map(history_author).unwrap_or_default(),
            comment: h.comment.clone(),
            empty_layer: h.empty_layer,
            layer,
        });
    }
    // Layers the history does not account for (imported or squashed images).
    while next < diff_ids.len() {
        if image.config.history.is_empty() && next == 0 {
            warnings.push("the image config has no history".into());
        }
        steps.push(Step {
            created: String::new(),
            created_by: String::new(),
            author: String::new(),
            comment: "(no history entry for this layer)".into(),
            empty_layer: false,
            layer: Some(layer_at(next)),
        });
        next += 1;
    }
    let size = steps
        .iter()
        .filter_map(|s| s.layer.as_ref().and_then(|l| l.size))
        .sum();
    steps.reverse();
    Ok(History {
        image: image.id.clone(),
        tags: image.tags.clone(),
        created: image.config.created.clone(),
        steps,
        size,
        warnings,
    })
}
