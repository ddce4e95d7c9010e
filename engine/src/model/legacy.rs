//! Roots of docker < 1.10: images in `graph/<id>/json` (each image is one
//! layer, chained by `parent`), tags in `repositories-<driver>`, and driver
//! directories named by image and container id. No layerdb.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::model::container::RunConfig;
use crate::model::ids;
use crate::model::image::{Image, ImageConfig};
use crate::model::layerdb::MAX_CHAIN;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

const GRAPH_JSON_LIMIT: u64 = 16 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GraphJson {
    id: String,
    parent: String,
    created: String,
    author: String,
    architecture: String,
    os: String,
    config: RunConfig,
}

/// The storage driver named by a `repositories-<driver>` file, if any.
pub fn drivers(root: &Beneath) -> Vec<String> {
    root.list(Path::new(""))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter_map(|n| n.strip_prefix("repositories-").map(String::from))
        .filter(|d| docker_mount_core::beneath::is_safe_component(d))
        .collect()
}

/// Tags per image id from every `repositories-<driver>` file.
fn tags(root: &Beneath) -> BTreeMap<String, Vec<String>> {
    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "Repositories", default)]
        repositories: BTreeMap<String, BTreeMap<String, String>>,
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for driver in drivers(root) {
        let rel = format!("repositories-{driver}");
        let Ok(file) =
            root.read_json::<File>(Path::new(&rel), 64 * 1024 * 1024, "legacy repositories")
        else {
            continue;
        };
        for (repo, refs) in file.repositories {
            for (tag, id) in refs {
                out.entry(ids::strip_sha256(&id).to_string())
                    .or_default()
                    .push(format!("{repo}:{tag}"));
            }
        }
    }
    out
}

fn read_graph(root: &Beneath, id: &str) -> Result<GraphJson> {
    let rel = Path::new("graph").join(id).join("json");
    if !ids::is_full_id(id) {
        return Err(Error::invalid(
            root.path().join("graph").join(id),
            "legacy image directory is not a 64-hex id",
        ));
    }
    let json: GraphJson =
        root.read_json(&rel, GRAPH_JSON_LIMIT, "a legacy image (graph/<id>/json)")?;
    if json.id != id {
        return Err(Error::invalid(
            root.path().join(rel),
            format!("id {:?} does not match its directory", json.id),
        ));
    }
    Ok(json)
}

/// Every image of `graph/`, as [`Image`]s of the store named after the
/// root's (single) legacy driver.
pub fn images(root: &Beneath) -> Vec<std::result::Result<Image, (String, Error)>> {
    let Ok(names) = root.list(Path::new("graph")) else {
        return Vec::new();
    };
    let store = drivers(root).into_iter().next().unwrap_or_default();
    let tags = tags(root);
    names
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .map(|id| {
            let json = read_graph(root, &id).map_err(|e| (id.clone(), e))?;
            Ok(Image {
                config: ImageConfig {
                    created: json.created,
                    architecture: json.architecture,
                    os: json.os,
                    author: json.author,
                    config: json.config,
                    ..ImageConfig::default()
                },
                tags: tags.get(&id).cloned().unwrap_or_default(),
                digests: Vec::new(),
                parent: ids::parse_digest(&json.parent).map(String::from),
                config_path: root.path().join("graph").join(&id).join("json"),
                legacy: true,
                catalog: None,
                store: store.clone(),
                id,
            })
        })
        .collect()
}

/// The layer ids of a legacy image, itself first then its parents.
pub fn chain(root: &Beneath, image_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(ids::strip_sha256(image_id).to_string());
    while let Some(id) = next {
        if !seen.insert(id.clone()) || out.len() >= MAX_CHAIN {
            return Err(Error::invalid(
                root.path().join("graph").join(&id).join("json"),
                format!("image parent chain loops or exceeds {MAX_CHAIN} layers"),
            ));
        }
        let json = read_graph(root, &id)?;
        next = ids::parse_digest(&json.parent).map(String::from);
        out.push(id);
    }
    Ok(out)
}
