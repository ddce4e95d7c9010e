//! Named volumes: `volumes/<name>/_data`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use docker_mount_core::beneath::{is_safe_component, Beneath};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Volume {
    pub name: String,
    /// The volume's data directory inside the root.
    pub data: PathBuf,
}

/// Every named volume directory in the root (`metadata.db` is not needed to list them).
pub fn list(root: &Beneath) -> Vec<Volume> {
    let Ok(names) = root.list(Path::new("volumes")) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| {
            is_safe_component(n) && root.exists(&Path::new("volumes").join(n).join("_data"))
        })
        .map(|name| Volume {
            data: root.path().join("volumes").join(&name).join("_data"),
            name,
        })
        .collect()
}
