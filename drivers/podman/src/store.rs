//! containers/storage's own records: `overlay-layers/layers.json`,
//! `overlay-images/images.json`, `overlay-containers/containers.json` (and
//! their `volatile-*.json` companions), each a JSON array of records. A
//! record that cannot be read becomes a problem naming its file and index;
//! the others are kept.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use docker_mount_core::beneath::{is_safe_component, Beneath};
use docker_mount_core::driver::{DriverError, ErrorKind};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The metadata files are small (a few KiB a record) but a busy host has
/// thousands of layers.
pub const JSON_LIMIT: u64 = 128 * 1024 * 1024;
/// Longer parent chains than this are refused (containers/storage stops at 500).
pub const MAX_CHAIN: usize = 4096;

/// One layer of `layers.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LayerRecord {
    pub id: String,
    pub parent: String,
    pub names: Vec<String>,
    pub created: String,
    /// Set when the layer was applied from a tar (an image layer).
    #[serde(rename = "diff-digest")]
    pub diff_digest: String,
    /// Bytes of the layer's uncompressed tar (what `podman history` shows).
    #[serde(rename = "diff-size")]
    pub diff_size: Option<i64>,
    pub mountlabel: String,
}

/// One image of `images.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageRecord {
    pub id: String,
    pub digest: String,
    pub names: Vec<String>,
    /// The top layer.
    pub layer: String,
    pub created: String,
    #[serde(rename = "big-data-names")]
    pub big_data_names: Vec<String>,
    /// Bytes of each big-data item (config, manifests).
    #[serde(rename = "big-data-sizes")]
    pub big_data_sizes: HashMap<String, i64>,
}

/// One container of `containers.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContainerRecord {
    pub id: String,
    pub names: Vec<String>,
    /// The image id.
    pub image: String,
    /// The container's own (rw) layer.
    pub layer: String,
    /// JSON text written by podman: `image-name`, `image-id`, `name`, `created-at`.
    pub metadata: String,
    pub created: String,
}

/// What podman puts in a container's `metadata` string.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContainerMetadata {
    #[serde(rename = "image-name")]
    pub image_name: String,
    #[serde(rename = "image-id")]
    pub image_id: String,
    pub name: String,
}

/// Records with an `id`.
pub trait Record {
    fn id(&self) -> &str;
}

impl Record for LayerRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Record for ImageRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Record for ContainerRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

pub fn problem(kind: ErrorKind, message: impl Into<String>, path: &Path) -> DriverError {
    DriverError::new(kind, message, Some(path))
}

/// The records of `dir/<file>` and `dir/volatile-<file>`: a missing file
/// holds none; an unreadable file or record is a problem. Records whose
/// id is not a plain path component, or repeats an earlier one, are
/// problems too.
pub fn read_records<T: DeserializeOwned + Record>(
    root: &Beneath,
    dir: &str,
    file: &str,
    problems: &mut Vec<DriverError>,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    let mut seen = HashSet::new();
    for name in [file.to_string(), format!("volatile-{file}")] {
        let rel = Path::new(dir).join(&name);
        let path = root.path().join(&rel);
        if !root.exists(&rel) {
            continue;
        }
        let values: Vec<serde_json::Value> =
            match root.read_json(&rel, JSON_LIMIT, "containers/storage records") {
                Ok(v) => v,
                Err(e) => {
                    problems.push(problem(ErrorKind::Invalid, e.to_string(), &path));
                    continue;
                }
            };
        for (i, v) in values.into_iter().enumerate() {
            match serde_json::from_value::<T>(v) {
                Ok(r) if !is_safe_component(r.id()) => problems.push(problem(
                    ErrorKind::Invalid,
                    format!("record {i}: id {:?} is not a plain name", r.id()),
                    &path,
                )),
                Ok(r) if !seen.insert(r.id().to_string()) => problems.push(problem(
                    ErrorKind::Invalid,
                    format!("record {i}: id {} appears twice", r.id()),
                    &path,
                )),
                Ok(r) => out.push(r),
                Err(e) => problems.push(problem(
                    ErrorKind::Invalid,
                    format!("record {i} cannot be read: {e}"),
                    &path,
                )),
            }
        }
    }
    out
}

/// `layers.json` by id.
pub fn layer_map(layers: Vec<LayerRecord>) -> HashMap<String, LayerRecord> {
    layers.into_iter().map(|l| (l.id.clone(), l)).collect()
}

/// The layers from `top` down its parents, top first, and a message when
/// the chain is broken (a parent missing from `layers.json`, a cycle, too
/// long). A missing layer is still listed, so that using it fails loudly
/// rather than showing a partial tree.
pub fn chain(layers: &HashMap<String, LayerRecord>, top: &str) -> (Vec<String>, Option<String>) {
    let mut out = vec![top.to_string()];
    let mut seen = HashSet::from([top.to_string()]);
    let mut current = top;
    loop {
        let Some(record) = layers.get(current) else {
            return (out, Some(format!("layer {current} is not in layers.json")));
        };
        let parent = record.parent.as_str();
        if parent.is_empty() {
            return (out, None);
        }
        if !is_safe_component(parent) {
            return (
                out,
                Some(format!(
                    "layer {current} names parent {parent:?}, not a plain name"
                )),
            );
        }
        if !seen.insert(parent.to_string()) {
            return (out, Some(format!("layer {parent} is its own ancestor")));
        }
        if out.len() >= MAX_CHAIN {
            return (
                out,
                Some(format!("layer {top} has more than {MAX_CHAIN} parents")),
            );
        }
        out.push(parent.to_string());
        current = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(id: &str, parent: &str) -> LayerRecord {
        LayerRecord {
            id: id.into(),
            parent: parent.into(),
            ..Default::default()
        }
    }

    #[test]
    fn chains_stop_at_cycles_and_missing_parents() {
        let m = layer_map(vec![layer("a", "b"), layer("b", "c"), layer("c", "")]);
        assert_eq!(
            chain(&m, "a"),
            (vec!["a".into(), "b".into(), "c".into()], None)
        );
        let m = layer_map(vec![layer("a", "b"), layer("b", "a")]);
        let (ids, why) = chain(&m, "a");
        assert_eq!(ids, ["a", "b"]);
        assert!(why.unwrap().contains("own ancestor"));
        let m = layer_map(vec![layer("a", "gone")]);
        let (ids, why) = chain(&m, "a");
        assert_eq!(ids, ["a", "gone"]);
        assert!(why.unwrap().contains("gone is not in layers.json"));
        let m = layer_map(vec![layer("a", "../x")]);
        assert!(chain(&m, "a").1.unwrap().contains("not a plain name"));
        let m = layer_map(vec![layer("a", "a")]);
        assert!(chain(&m, "a").1.unwrap().contains("own ancestor"));
    }

    #[test]
    fn long_chains_are_bounded() {
        let n = MAX_CHAIN + 10;
        let m = layer_map(
            (0..n)
                .map(|i| layer(&i.to_string(), &(i + 1).to_string()))
                .collect(),
        );
        let (ids, why) = chain(&m, "0");
        assert_eq!(ids.len(), MAX_CHAIN);
        assert!(why.unwrap().contains("more than"));
    }
}
