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

/// A layer's place in its chain, as layerdb records it: what every reader
/// of a chain needs (`images` reads no more).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChainLink {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
    pub size: Option<u64>,
    pub dir: PathBuf,
    /// Whether the directory name equals the chain id recomputed from
    /// `parent` and `diff`; false means the metadata was altered.
    pub chain_ok: bool,
}

impl ChainLink {
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

/// One image layer as layerdb records it: its chain link and its driver id.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LayerRecord {
    #[serde(flatten)]
    pub link: ChainLink,
    /// The driver's id for this layer (its directory name).
    pub cache_id: String,
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

/// `image/<store>/layerdb/sha256`, whose records are read on demand,
/// each file opened relative to it.
#[derive(Debug)]
pub struct LayerDir {
    /// `None` when the store has no layerdb (every layer is then missing).
    dir: Option<Beneath>,
}

impl LayerDir {
    /// Opens the layerdb of image store `store`; a missing one holds no layer.
    pub fn open(root: &Beneath, store: &str) -> Result<LayerDir> {
        match root.subdir(&layers_rel(store)) {
            Ok(dir) => Ok(LayerDir { dir: Some(dir) }),
            Err(e) if e.is_not_found() => Ok(LayerDir { dir: None }),
            Err(e) => Err(e),
        }
    }

    /// The chain link of layer `name` (a chain id): its `parent`, `size`
    /// and `diff` files. Not found: no such layer.
    pub fn link(&self, name: &str) -> Result<ChainLink> {
        let Some(dir) = &self.dir else {
            return Err(Error::io(
                name,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        };
        if !ids::is_full_id(name) {
            return Err(Error::invalid(
                dir.path().join(name),
                "layerdb entry is not a chain id",
            ));
        }
        let rel = Path::new(name);
        // A base layer has no parent file: tried, not probed first.
        let parent = missing_as_none(read_digest(dir, &rel.join("parent"), "layer parent"))?;
        let size = dir
            .read_small_text(&rel.join("size"), "layer size")
            .ok()
            .and_then(|s| s.parse().ok());
        let diff_id = match read_digest(dir, &rel.join("diff"), "layer diff id") {
            // The layer's directory without its diff: an unreadable layer,
            // not a missing one (probed only then).
            Err(e) if e.is_not_found() && dir.is_dir(rel) => {
                return Err(Error::Usage(e.to_string()))
            }
            read => read?,
        };
        Ok(ChainLink {
            chain_ok: chain_id(parent.as_deref(), &diff_id) == name,
            chain_id: name.to_string(),
            diff_id,
            parent,
            size,
            dir: dir.path().join(rel),
        })
    }

    /// The whole record of layer `name`: its link and its `cache-id`.
    pub fn record(&self, name: &str) -> Result<LayerRecord> {
        let link = self.link(name)?;
        let Some(dir) = &self.dir else {
            unreachable!("a link was read from it");
        };
        let cache_id = read_id(dir, &Path::new(name).join("cache-id"), "layer cache-id")?;
        Ok(LayerRecord { link, cache_id })
    }

    /// The size of the chain of `diff_ids` (an image config's, base first)
    /// and where layerdb breaks it: a layer missing, or a `parent` file
    /// that is not the layer below in the config's chain (checked by the
    /// chain id rule, with the config's diff id). Reads each layer's
    /// `parent` and `size` only: `images` reads thousands of layers, and
    /// the commands that follow a chain by its files (`info`, `mount`,
    /// `export`, `layers`) check the `diff` files too.
    pub fn chain_sizes(&self, diff_ids: &[String]) -> ChainSizes {
        let chain = chain_ids(diff_ids);
        let mut out = ChainSizes {
            size: Some(0),
            problems: Vec::new(),
        };
        for (i, (name, diff_id)) in chain.iter().zip(diff_ids).enumerate() {
            let below = i.checked_sub(1).map(|b| chain[b].as_str());
            match self.size_and_parent(name) {
                Ok((size, parent)) => {
                    out.size = out.size.zip(size).map(|(all, one)| all.saturating_add(one));
                    if parent.as_deref() != below {
                        out.problems.push(format!(
                            "{}: chain id mismatch: the directory is named {name}, but its parent and the image config's diff id give {}",
                            self.path().join(name).display(),
                            chain_id(parent.as_deref(), diff_id)
                        ));
                    }
                }
                Err(e) => {
                    out.size = None;
                    out.problems.push(e.to_string());
                }
            }
        }
        out
    }

    /// `image/<store>/layerdb/sha256`, as named in messages.
    fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("layerdb"), |d| d.path())
    }

    /// Layer `name`'s size (when its `size` file reads) and parent.
    fn size_and_parent(&self, name: &str) -> Result<(Option<u64>, Option<String>)> {
        let missing = || {
            Error::invalid(
                self.path(),
                format!("layer sha256:{name} of the image config's chain is not in layerdb"),
            )
        };
        let Some(dir) = &self.dir else {
            return Err(missing());
        };
        let rel = Path::new(name);
        // A base layer has no parent file: tried, not probed first.
        let parent = missing_as_none(read_digest(dir, &rel.join("parent"), "layer parent"))?;
        let size = match dir.read_small_text(&rel.join("size"), "layer size") {
            Ok(text) => text.parse().ok(),
            // Probed only then: the directory itself, or only its size file?
            Err(e) if e.is_not_found() && !dir.is_dir(rel) => return Err(missing()),
            Err(_) => None,
        };
        Ok((size, parent))
    }
}

/// What `images` reads of an image's layer chain.
#[derive(Debug)]
pub struct ChainSizes {
    /// Bytes of all layers (`None` when a layer's size is missing).
    pub size: Option<u64>,
    /// Missing layers and parent files that break the chain, naming files.
    pub problems: Vec<String>,
}

/// A file that is not there as `None`.
fn missing_as_none<T>(read: Result<T>) -> Result<Option<T>> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `image/<store>/layerdb/sha256`, relative to the root.
fn layers_rel(store: &str) -> PathBuf {
    Path::new("image").join(store).join("layerdb/sha256")
}

fn unreadable(id: &str, why: &str) -> Error {
    Error::Usage(format!("layer sha256:{id} is unreadable: {why}"))
}

impl LayerDb {
    /// Reads every record of `image/<store>/layerdb/sha256/*` beneath the root.
    pub fn read(root: &Beneath, store: &str) -> LayerDb {
        let mut db = LayerDb::default();
        let listed = root
            .list(&layers_rel(store))
            .and_then(|names| Ok((LayerDir::open(root, store)?, names)));
        let (dir, names) = match listed {
            Ok(l) => l,
            Err(e) => {
                if !e.is_not_found() {
                    db.problems.push(e.to_string());
                }
                return db;
            }
        };
        let read = parallel::map(&names, |name| {
            let name = name.to_string_lossy().into_owned();
            let rec = dir.record(&name);
            (name, rec)
        });
        for (name, rec) in read {
            match rec {
                Ok(rec) => {
                    db.layers.insert(rec.link.chain_id.clone(), rec);
                }
                Err(e) => {
                    db.problems.push(e.to_string());
                    db.unreadable.insert(name, e.to_string());
                }
            }
        }
        db.problems
            .extend(db.layers.values().filter_map(|r| r.link.chain_problem()));
        db
    }

    /// The chain from `top` down to the base layer, top first, following
    /// the `parent` files. Fails on a missing or unreadable layer, a cycle
    /// or a chain deeper than [`MAX_CHAIN`].
    pub fn chain(&self, top: &str) -> Result<Vec<&LayerRecord>> {
        let mut out: Vec<&LayerRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(ids::strip_sha256(top).to_string());
        while let Some(id) = next {
            let rec = match (self.layers.get(&id), self.unreadable.get(&id)) {
                (Some(rec), _) => rec,
                (None, Some(why)) => return Err(unreadable(&id, why)),
                (None, None) => {
                    let from = out.last().map(|r| r.link.dir.join("parent"));
                    return Err(Error::invalid(
                        from.unwrap_or_default(),
                        format!("layer sha256:{id} is not in layerdb"),
                    ));
                }
            };
            if !seen.insert(id) || out.len() >= MAX_CHAIN {
                return Err(Error::invalid(
                    rec.link.dir.join("parent"),
                    format!("layer parent chain loops or exceeds {MAX_CHAIN} layers"),
                ));
            }
            next = rec.link.parent.clone();
            out.push(rec);
        }
        Ok(out)
    }
}

/// Reads `image/<store>/layerdb/mounts/<container id>/`.
pub fn read_mount(root: &Beneath, store: &str, container_id: &str) -> Result<MountRecord> {
    let rel = Path::new("image")
        .join(store)
        .join("layerdb/mounts")
        .join(container_id);
    let dir = root.subdir(&rel)?;
    // A container of `scratch` has no parent, an old one no init layer:
    // tried, not probed first.
    let init_id = missing_as_none(read_id(&dir, Path::new("init-id"), "container init-id"))?;
    let parent = missing_as_none(read_digest(
        &dir,
        Path::new("parent"),
        "container layer parent",
    ))?;
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

    /// A layerdb of `layers` (diff id, parent index), each with its files.
    fn layerdb(layers: &[(&str, Option<usize>)]) -> (tempfile::TempDir, Beneath, Vec<String>) {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("image/overlay2/layerdb/sha256");
        let mut chains: Vec<String> = Vec::new();
        for (i, (diff, parent)) in layers.iter().enumerate() {
            let parent = parent.map(|p| chains[p].clone());
            let chain = chain_id(parent.as_deref(), &format!("sha256:{diff}"));
            let dir = base.join(&chain);
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(p) = &parent {
                std::fs::write(dir.join("parent"), format!("sha256:{p}")).unwrap();
            }
            std::fs::write(dir.join("diff"), format!("sha256:{diff}")).unwrap();
            std::fs::write(dir.join("size"), format!("{}", 10 * (i + 1))).unwrap();
            std::fs::write(dir.join("cache-id"), format!("cache{i}")).unwrap();
            chains.push(chain);
        }
        let root = Beneath::open(t.path()).unwrap();
        (t, root, chains)
    }

    fn diff_ids(diffs: &[&String]) -> Vec<String> {
        diffs.iter().map(|d| format!("sha256:{d}")).collect()
    }

    #[test]
    fn chain_sizes_add_up_the_config_chain_without_cache_ids() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let (t, root, chains) = layerdb(&[(&a, None), (&b, Some(0)), (&c, Some(1))]);
        let dir = LayerDir::open(&root, "overlay2").unwrap();
        let sizes = dir.chain_sizes(&diff_ids(&[&a, &b, &c]));
        assert_eq!(sizes.size, Some(60));
        assert!(sizes.problems.is_empty(), "{:?}", sizes.problems);
        // What the whole db reads agrees.
        let db = LayerDb::read(&root, "overlay2");
        let records = db.chain(&chains[2]).unwrap();
        assert_eq!(records.iter().filter_map(|r| r.link.size).sum::<u64>(), 60);
        // Neither cache-id nor diff is read.
        let layers = t.path().join("image/overlay2/layerdb/sha256");
        std::fs::remove_file(layers.join(&chains[1]).join("cache-id")).unwrap();
        std::fs::remove_file(layers.join(&chains[1]).join("diff")).unwrap();
        assert_eq!(dir.chain_sizes(&diff_ids(&[&a, &b, &c])).size, Some(60));
        // A missing size: no total, no problem.
        std::fs::remove_file(layers.join(&chains[0]).join("size")).unwrap();
        let sizes = dir.chain_sizes(&diff_ids(&[&a, &b, &c]));
        assert_eq!(sizes.size, None);
        assert!(sizes.problems.is_empty(), "{:?}", sizes.problems);
    }

    #[test]
    fn broken_chains_are_named_by_their_files() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let (t, root, chains) = layerdb(&[(&a, None), (&b, Some(0)), (&c, Some(1))]);
        let layers = t.path().join("image/overlay2/layerdb/sha256");
        let dir = LayerDir::open(&root, "overlay2").unwrap();
        let all = diff_ids(&[&a, &b, &c]);
        // A parent edited to skip a layer (or to loop): the chain id rule
        // breaks at that layer, named with its directory.
        for wrong in [&chains[0], &chains[2]] {
            std::fs::write(
                layers.join(&chains[2]).join("parent"),
                format!("sha256:{wrong}"),
            )
            .unwrap();
            let problems = dir.chain_sizes(&all).problems;
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].contains("chain id mismatch") && problems[0].contains(&chains[2]),
                "{problems:?}"
            );
        }
        // A base layer given a parent.
        std::fs::write(
            layers.join(&chains[0]).join("parent"),
            format!("sha256:{}", chains[1]),
        )
        .unwrap();
        let problems = dir.chain_sizes(&all[..1]).problems;
        assert!(problems[0].contains("chain id mismatch"), "{problems:?}");
        // A layer missing: named, no total.
        std::fs::remove_dir_all(layers.join(&chains[1])).unwrap();
        let sizes = dir.chain_sizes(&all[..2]);
        assert_eq!(sizes.size, None);
        assert!(
            sizes
                .problems
                .iter()
                .any(|p| p.contains("not in layerdb") && p.contains(&chains[1])),
            "{:?}",
            sizes.problems
        );
        // No layerdb at all: every layer missing.
        let none = LayerDir::open(&root, "vfs").unwrap();
        let sizes = none.chain_sizes(&all);
        assert_eq!(sizes.problems.len(), 3, "{:?}", sizes.problems);
    }

    #[test]
    fn chain_walks_fail_naming_the_layer() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let (t, root, chains) = layerdb(&[(&a, None), (&b, Some(0))]);
        let base = t.path().join("image/overlay2/layerdb/sha256");
        // A diff altered: the chain is read, its record says so.
        std::fs::write(
            base.join(&chains[1]).join("diff"),
            format!("sha256:{}", "d".repeat(64)),
        )
        .unwrap();
        let db = LayerDb::read(&root, "overlay2");
        let problem = db.chain(&chains[1]).unwrap()[0]
            .link
            .chain_problem()
            .unwrap();
        assert!(
            problem.contains("chain id mismatch") && problem.contains(&chains[1]),
            "{problem}"
        );
        // A diff missing: unreadable, not missing.
        std::fs::remove_file(base.join(&chains[1]).join("diff")).unwrap();
        let err = LayerDb::read(&root, "overlay2")
            .chain(&chains[1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unreadable") && err.contains("diff"), "{err}");
        // A parent that is not there: named from the file that points to it.
        std::fs::remove_dir_all(base.join(&chains[0])).unwrap();
        std::fs::write(base.join(&chains[1]).join("diff"), format!("sha256:{b}")).unwrap();
        let err = LayerDb::read(&root, "overlay2")
            .chain(&chains[1])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not in layerdb") && err.contains("parent"),
            "{err}"
        );
        // A parent that is itself: a loop.
        std::fs::write(
            base.join(&chains[1]).join("parent"),
            format!("sha256:{}", chains[1]),
        )
        .unwrap();
        let err = LayerDb::read(&root, "overlay2")
            .chain(&chains[1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("loops"), "{err}");
    }

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
