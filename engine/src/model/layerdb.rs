//! `image/<driver>/layerdb`: the layer chain (chain ids, diff ids, cache
//! ids) and each container's mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::ids;
use crate::model::parallel;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

/// Longest parent chain followed; deeper means a cycle or a crafted root.
pub const MAX_CHAIN: usize = 4096;

/// One image layer as layerdb records it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LayerRecord {
    pub chain_id: String,
    pub diff_id: String,
    /// The driver's id for this layer (its directory name).
    pub cache_id: String,
    pub parent: Option<String>,
    pub size: Option<u64>,
    pub dir: PathBuf,
    /// Whether the directory name equals the chain id recomputed from
    /// `parent` and `diff`; false means the metadata was altered.
    pub chain_ok: bool,
}

impl LayerRecord {
    /// The chain-id mismatch, as a message naming the layer's directory.
    pub fn chain_problem(&self) -> Option<String> {
        (!self.chain_ok).then(|| {
            format!(
                "{}: chain id mismatch: the directory is named {}, but its parent and diff give {}",
                self.dir.display(),
                self.chain_id,
                chain_id(self.parent.as_deref(), &self.diff_id)
            )
        })
    }
}

/// A container's layers in layerdb/mounts/<id>.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MountRecord {
    pub mount_id: String,
    pub init_id: Option<String>,
    /// Chain id of the image's top layer (absent for a container of `scratch`).
    pub parent: Option<String>,
    pub dir: PathBuf,
}

/// Every layer of one image store, with what failed to read.
#[derive(Debug, Default)]
pub struct LayerDb {
    pub layers: BTreeMap<String, LayerRecord>,
    /// Chain id → why that layer's files could not be read.
    pub unreadable: BTreeMap<String, String>,
    /// Per-layer problems (unreadable files, chain id mismatches), each naming its file.
    pub problems: Vec<String>,
}

/// `sha256:<hex>` of `parent + " " + diff_id`: the chain id rule.
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => ids::strip_sha256(diff_id).to_string(),
        Some(p) => {
            let s = format!(
                "sha256:{} sha256:{}",
                ids::strip_sha256(p),
                ids::strip_sha256(diff_id)
            );
            hex::encode(Sha256::digest(s.as_bytes()))
        }
    }
}

/// The chain ids of a list of diff ids, base first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last().map(String::as_str), d);
        out.push(next);
    }
    out
}

fn read_digest(dir: &Beneath, rel: &Path, what: &'static str) -> Result<String> {
    let text = dir.read_small_text(rel, what)?;
    ids::parse_digest(&text).map(str::to_string).ok_or_else(|| {
        Error::invalid(
            dir.path().join(rel),
            format!("{what} is not a sha256 digest: {text:?}"),
        )
    })
}

fn read_id(dir: &Beneath, rel: &Path, what: &'static str) -> Result<String> {
    let text = dir.read_small_text(rel, what)?;
    if docker_mount_core::beneath::is_safe_component(&text) {
        Ok(text)
    } else {
        Err(Error::invalid(
            dir.path().join(rel),
            format!("{what} {text:?} is not a safe layer id"),
        ))
    }
}

impl LayerDb {
    /// Reads `image/<store>/layerdb/sha256/*` beneath the root.
    pub fn read(root: &Beneath, store: &str) -> LayerDb {
        let mut db = LayerDb::default();
        let base = Path::new("image").join(store).join("layerdb/sha256");
        let names = match root.list(&base) {
            Ok(n) => n,
            Err(e) => {
                if root.exists(&base) {
                    db.problems.push(e.to_string());
                }
                return db;
            }
        };
        let read = parallel::map(&names, |name| {
            let name = name.to_string_lossy().into_owned();
            let rec = read_layer(root, &base, &name);
            (name, rec)
        });
        for (name, rec) in read {
            match rec {
                Ok(rec) => {
                    db.layers.insert(rec.chain_id.clone(), rec);
                }
                Err(e) => {
                    db.problems.push(e.to_string());
                    db.unreadable.insert(name, e.to_string());
                }
            }
        }
        db.problems
            .extend(db.layers.values().filter_map(LayerRecord::chain_problem));
        db
    }

    /// The chain from `top` down to the base layer, top first. Fails on a
    /// missing layer, a cycle or a chain deeper than [`MAX_CHAIN`].
    pub fn chain(&self, top: &str) -> Result<Vec<&LayerRecord>> {
        let mut out: Vec<&LayerRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(ids::strip_sha256(top).to_string());
        while let Some(id) = next {
            let Some(rec) = self.layers.get(&id) else {
                if let Some(why) = self.unreadable.get(&id) {
                    return Err(Error::Usage(format!(
                        "layer sha256:{id} is unreadable: {why}"
                    )));
                }
                let from = out.last().map(|r| r.dir.join("parent"));
                return Err(Error::invalid(
                    from.unwrap_or_default(),
                    format!("layer sha256:{id} is not in layerdb"),
                ));
            };
            if !seen.insert(id.clone()) || out.len() >= MAX_CHAIN {
                return Err(Error::invalid(
                    rec.dir.join("parent"),
                    format!("layer parent chain loops or exceeds {MAX_CHAIN} layers"),
                ));
            }
            out.push(rec);
            next = rec.parent.clone();
        }
        Ok(out)
    }
}

fn read_layer(root: &Beneath, base: &Path, name: &str) -> Result<LayerRecord> {
    let rel = base.join(name);
    if !ids::is_full_id(name) {
        return Err(Error::invalid(
            root.path().join(&rel),
            "layerdb entry is not a chain id",
        ));
    }
    let dir = root.subdir(&rel)?;
    // A base layer has no parent file: tried, not probed first.
    let parent = match read_digest(&dir, Path::new("parent"), "layer parent") {
        Ok(p) => Some(p),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let size = dir
        .read_small_text(Path::new("size"), "layer size")
        .ok()
        .and_then(|s| s.parse().ok());
    let diff_id = read_digest(&dir, Path::new("diff"), "layer diff id")?;
    Ok(LayerRecord {
        chain_ok: chain_id(parent.as_deref(), &diff_id) == name,
        chain_id: name.to_string(),
        diff_id,
        cache_id: read_id(&dir, Path::new("cache-id"), "layer cache-id")?,
        parent,
        size,
        dir: root.path().join(rel),
    })
}

/// Reads `image/<store>/layerdb/mounts/<container id>/`.
pub fn read_mount(root: &Beneath, store: &str, container_id: &str) -> Result<MountRecord> {
    let rel = Path::new("image")
        .join(store)
        .join("layerdb/mounts")
        .join(container_id);
    let dir = root.subdir(&rel)?;
    let init_id = if dir.exists(Path::new("init-id")) {
        Some(read_id(&dir, Path::new("init-id"), "container init-id")?)
    } else {
        None
    };
    let parent = if dir.exists(Path::new("parent")) {
        Some(read_digest(
            &dir,
            Path::new("parent"),
            "container layer parent",
        )?)
    } else {
        None
    };
    Ok(MountRecord {
        mount_id: read_id(&dir, Path::new("mount-id"), "container mount-id")?,
        init_id,
        parent,
        dir: root.path().join(rel),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_rule() {
        let a = "a".repeat(64);
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[format!("sha256:{a}"), b.clone()]);
        assert_eq!(chain[0], a);
        let want = hex::encode(Sha256::digest(format!("sha256:{a} {b}").as_bytes()));
        assert_eq!(chain[1], want);
    }
}
