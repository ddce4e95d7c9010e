//! The zfs storage driver: every layer is a dataset `<fsname>/<cache-id>`
//! of the pool holding the docker root, a clone of a snapshot of its
//! parent's dataset (a container: `<mount-id>-init` cloned from the image's
//! top layer, `<mount-id>` from the init layer). Each is a complete tree;
//! deletions are real. `<root>/zfs/graph/<id>` are only the mount points.
//!
//! The driver never opens the pool: it names the datasets
//! ([`LayerSource::Dataset`]) and core reads them. It reads only docker's
//! own bookkeeping (`image/zfs/layerdb`) to give each layer its parents.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use docker_mount_core::beneath::{is_safe_component, Beneath};
use docker_mount_core::driver_kit::{check_id, has_image_store, io_err, DATASET_LAYERS};
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource, ABI_VERSION,
};

const NAME: &str = "zfs";
/// Where docker mounted each layer's dataset while in use.
const GRAPH: &str = "zfs/graph";
const LAYERDB: &str = "image/zfs/layerdb";
/// The most layerdb records and container mounts read (docker allows
/// more than 100 layers per image on zfs; hosts hold thousands).
const MAX_RECORDS: usize = 100_000;
/// The longest parent chain followed.
const MAX_DEPTH: usize = 4096;
/// An id file holds one id (`sha256:` + 64 hex, or 64 hex + `-init`).
const ID_FILE_MAX: u64 = 256;

#[derive(Debug, Default)]
pub struct Zfs;

/// What docker's layerdb says of the layers: parent of each layer id.
#[derive(Debug, Default)]
struct Bookkeeping {
    /// Layer id (cache-id, init-id, mount-id) → its parent's layer id.
    parent: BTreeMap<String, String>,
    /// Every layer id the files name.
    ids: BTreeSet<String>,
}

fn read_id(dir: &Beneath, rel: &Path) -> Option<String> {
    let text = dir.read(rel, ID_FILE_MAX, "layer id").ok()?;
    let id = String::from_utf8(text).ok()?;
    let id = id.trim();
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    is_safe_component(id).then(|| id.to_string())
}

/// Reads `image/zfs/layerdb`: cache-ids by chain id, chain parents, and
/// each container mount's mount-id, init-id and parent chain.
fn bookkeeping(root: &Path) -> Result<Bookkeeping, DriverError> {
    let dir = Beneath::open(root).map_err(|e| io_err(root, e))?;
    let mut out = Bookkeeping::default();
    let sha = Path::new(LAYERDB).join("sha256");
    // chain id → (cache-id, parent chain id)
    let mut chains: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for chain in dir
        .list(&sha)
        .unwrap_or_default()
        .into_iter()
        .take(MAX_RECORDS)
    {
        let Some(chain) = chain.to_str().filter(|c| is_safe_component(c)) else {
            continue;
        };
        let rec = sha.join(chain);
        if let Some(cache) = read_id(&dir, &rec.join("cache-id")) {
            chains.insert(
                chain.to_string(),
                (cache, read_id(&dir, &rec.join("parent"))),
            );
        }
    }
    for (cache, parent) in chains.values() {
        out.ids.insert(cache.clone());
        if let Some((pc, _)) = parent.as_ref().and_then(|p| chains.get(p)) {
            out.parent.insert(cache.clone(), pc.clone());
        }
    }
    let mounts = Path::new(LAYERDB).join("mounts");
    for m in dir
        .list(&mounts)
        .unwrap_or_default()
        .into_iter()
        .take(MAX_RECORDS)
    {
        let Some(m) = m.to_str().filter(|c| is_safe_component(c)) else {
            continue;
        };
        let rec = mounts.join(m);
        let Some(mount) = read_id(&dir, &rec.join("mount-id")) else {
            continue;
        };
        let image = read_id(&dir, &rec.join("parent"))
            .and_then(|p| chains.get(&p))
            .map(|(c, _)| c.clone());
        out.ids.insert(mount.clone());
        match read_id(&dir, &rec.join("init-id")) {
            Some(init) => {
                out.ids.insert(init.clone());
                out.parent.insert(mount, init.clone());
                if let Some(image) = image {
                    out.parent.insert(init, image);
                }
            }
            None => {
                if let Some(image) = image {
                    out.parent.insert(mount, image);
                }
            }
        }
    }
    Ok(out)
}

impl Bookkeeping {
    /// The parents of `id`, nearest first; a cycle or an overlong chain
    /// stops the list (core's layerdb reading reports those).
    fn parents(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([id.to_string()]);
        let mut at = id;
        while let Some(p) = self.parent.get(at) {
            if out.len() >= MAX_DEPTH || !seen.insert(p.clone()) {
                break;
            }
            out.push(p.clone());
            at = p;
        }
        out
    }
}

/// Whether a dataset name (relative to the root's dataset) is one docker's
/// zfs driver makes: `<64 hex>` or `<64 hex>-init`.
pub fn is_layer_dataset(name: &str) -> bool {
    let id = name.strip_suffix("-init").unwrap_or(name);
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Driver for Zfs {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "zfs: every layer a dataset <fsname>/<id> of the pool (a clone of its parent), read in userspace".into(),
            features: vec!["full-trees".into(), DATASET_LAYERS.into()],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        if has_image_store(root, NAME) {
            return Confidence::CERTAIN;
        }
        match Beneath::open(root) {
            Ok(dir) if dir.is_dir(Path::new(GRAPH)) => Confidence(60),
            _ => Confidence::NONE,
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        check_id(id, NAME)?;
        if id.contains('@') {
            return Err(DriverError::new(
                ErrorKind::Invalid,
                format!("{id:?} is not a valid zfs layer id (a snapshot name)"),
                None,
            ));
        }
        let parent_ids = bookkeeping(root).map(|b| b.parents(id)).unwrap_or_default();
        Ok(LayerSource::Dataset {
            name: id.to_string(),
            parent_ids,
        })
    }

    /// The layers docker's files name (layerdb, container mounts, mount
    /// points), each listed at its mount point `zfs/graph/<id>`; core adds
    /// the datasets no file names any more through [`Self::dataset_layers`].
    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        let dir = Beneath::open(root).map_err(|e| io_err(root, e))?;
        if !dir.is_dir(Path::new(LAYERDB)) && !dir.is_dir(Path::new(GRAPH)) {
            return Err(DriverError::new(
                ErrorKind::NotFound,
                "no zfs layer store",
                Some(&root.join(LAYERDB)),
            ));
        }
        let mut ids = bookkeeping(root)?.ids;
        for name in dir
            .list(Path::new(GRAPH))
            .unwrap_or_default()
            .into_iter()
            .take(MAX_RECORDS)
        {
            if let Some(n) = name.to_str().filter(|n| is_safe_component(n)) {
                ids.insert(n.to_string());
            }
        }
        Ok(ids
            .into_iter()
            .map(|id| LayerEntry {
                path: graph_path(root, &id),
                id,
            })
            .collect())
    }

    fn dataset_layers(
        &self,
        _root: &Path,
        datasets: &[String],
    ) -> Result<Vec<String>, DriverError> {
        Ok(datasets
            .iter()
            .filter(|d| is_layer_dataset(d))
            .cloned()
            .collect())
    }
}

/// Where docker mounts layer `id`.
fn graph_path(root: &Path, id: &str) -> PathBuf {
    root.join(GRAPH).join(id)
}

docker_mount_core::export_driver!(Zfs);

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
    const M: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, &format!("image/zfs/layerdb/sha256/{C1}/cache-id"), A);
        write(r, &format!("image/zfs/layerdb/sha256/{C2}/cache-id"), B);
        write(
            r,
            &format!("image/zfs/layerdb/sha256/{C2}/parent"),
            &format!("sha256:{C1}"),
        );
        write(r, "image/zfs/layerdb/mounts/ctr/mount-id", M);
        write(
            r,
            "image/zfs/layerdb/mounts/ctr/init-id",
            &format!("{M}-init"),
        );
        write(
            r,
            "image/zfs/layerdb/mounts/ctr/parent",
            &format!("sha256:{C2}"),
        );
        fs::create_dir_all(r.join("zfs/graph").join(M)).unwrap();
        t
    }

    #[test]
    fn detects_by_layerdb_then_graph() {
        let t = root();
        assert_eq!(Zfs.detect(t.path()), Confidence::CERTAIN);
        fs::remove_dir_all(t.path().join("image")).unwrap();
        assert_eq!(Zfs.detect(t.path()), Confidence(60));
        fs::remove_dir_all(t.path().join("zfs")).unwrap();
        assert_eq!(Zfs.detect(t.path()), Confidence::NONE);
    }

    #[test]
    fn layers_are_datasets_with_their_parents() {
        let t = root();
        let init = format!("{M}-init");
        assert_eq!(
            Zfs.layer(t.path(), M).unwrap(),
            LayerSource::Dataset {
                name: M.into(),
                parent_ids: vec![init.clone(), B.into(), A.into()],
            }
        );
        assert_eq!(
            Zfs.layer(t.path(), A).unwrap(),
            LayerSource::Dataset {
                name: A.into(),
                parent_ids: vec![],
            }
        );
        let ids: Vec<String> = Zfs
            .layers(t.path())
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![A.to_string(), B.to_string(), M.to_string(), init]);
    }

    #[test]
    fn refuses_ids_that_are_no_dataset_of_the_root() {
        let t = root();
        for bad in ["../../x", "a/b", "", "..", "x@snap"] {
            assert!(Zfs.layer(t.path(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_parent_cycle_stops() {
        let t = root();
        let r = t.path();
        write(
            r,
            &format!("image/zfs/layerdb/sha256/{C1}/parent"),
            &format!("sha256:{C2}"),
        );
        let LayerSource::Dataset { parent_ids, .. } = Zfs.layer(r, B).unwrap() else {
            panic!("not a dataset");
        };
        assert_eq!(parent_ids, vec![A.to_string()]);
    }

    #[test]
    fn names_docker_datasets() {
        let names = vec![
            A.to_string(),
            format!("{M}-init"),
            "other".to_string(),
            format!("{A}x"),
        ];
        assert_eq!(
            Zfs.dataset_layers(Path::new("/"), &names).unwrap(),
            vec![A.to_string(), format!("{M}-init")]
        );
    }
}
