//! A docker root inside a storage pool read in userspace (zfs): the
//! datasets a root's layers are, resolved and served as directories.
//!
//! [`DatasetProvider`] is what the engine needs of a pool: the dataset
//! holding the root, the datasets below it, and each opened as a
//! [`TreeSource`]. [`layer_dir`] resolves a driver's
//! [`LayerSource::Dataset`](docker_mount_core::driver::LayerSource) name
//! (never outside the root's dataset) and serves it once per process.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::mounts::datasetfs::{self, Served, TreeSource};
use docker_mount_core::beneath::{is_safe_component, Beneath};
use docker_mount_core::error::{Error, Result};

/// A pool the docker root was read from.
pub trait DatasetProvider: Send + Sync + std::fmt::Debug {
    /// The filesystem dataset holding the docker root (`pool/docker`),
    /// without the `@snapshot` when the root is a snapshot of it.
    fn base(&self) -> &str;
    /// Where the root came from, for messages (`dmpool/docker@x in a.img`).
    fn describe(&self) -> String;
    /// The devices the pool was read from (evidence: never written).
    fn devices(&self) -> Vec<PathBuf>;
    /// The filesystem datasets below [`Self::base`], relative to it.
    fn children(&self) -> Result<Vec<String>>;
    /// Opens filesystem or snapshot `name` (a whole dataset name).
    fn open(&self, name: &str) -> Result<Arc<dyn TreeSource>>;
    /// When filesystem `clone` is a clone of a snapshot of filesystem
    /// `origin`: the objects that may differ between the two (rewritten
    /// in either since that snapshot); every other object is the
    /// snapshot's in both. `None` when `clone` is no clone of `origin`.
    fn may_differ(&self, _clone: &str, _origin: &str) -> Result<Option<HashSet<u64>>> {
        Ok(None)
    }
    /// When the root was read from a snapshot: whether dataset `whole`
    /// was written after it (its files are then as they are now, not as
    /// the snapshot's root knew them), with the snapshot's txg.
    fn written_after_root(&self, _whole: &str) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// The whole name of a layer dataset a driver named: `<base>/<name>` for
/// one component, or a whole name that must lie below `base`. Anything
/// else (`..`, a snapshot, another dataset of the pool) is refused.
pub fn resolve(base: &str, name: &str) -> Result<String> {
    let refuse = |why: &str| {
        Error::Usage(format!(
            "layer dataset {name:?} refused: {why} (the docker root is dataset {base})"
        ))
    };
    if name.contains('@') {
        return Err(refuse("a snapshot is not a layer"));
    }
    let rel = if is_safe_component(name) {
        name
    } else {
        name.strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| refuse("it does not lie below the root's dataset"))?
    };
    if rel.is_empty() || !rel.split('/').all(is_safe_component) {
        return Err(refuse("not a dataset name below the root's dataset"));
    }
    Ok(format!("{base}/{rel}"))
}

/// Whether `path` is a served dataset's (`/proc/self/fd/<n>/...`): valid
/// in this process only, and no place on the analyst's disks.
pub fn is_served_path(path: &std::path::Path) -> bool {
    path.starts_with("/proc/self/fd")
}

/// Datasets served by this process, by whole name (a base layer shared
/// by every image is served once). Entries live as long as the process.
static SERVED: Mutex<Vec<(String, Arc<Served>)>> = Mutex::new(Vec::new());

/// Dataset `whole` of `pool` as a served directory (served once per process).
pub fn serve(pool: &dyn DatasetProvider, whole: &str) -> Result<Arc<Served>> {
    let mut cache = SERVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, s)) = cache.iter().find(|(n, _)| n == whole) {
        return Ok(s.clone());
    }
    let source = pool.open(whole)?;
    let served = Arc::new(datasetfs::serve(source, whole)?);
    cache.push((whole.to_string(), served.clone()));
    Ok(served)
}

/// A warning when the root is a snapshot and layer dataset `name` was
/// written after it (layers are live datasets: a snapshot of the root
/// does not snapshot them).
pub fn written_after_root(pool: &dyn DatasetProvider, name: &str) -> Option<String> {
    let whole = resolve(pool.base(), name).ok()?;
    match pool.written_after_root(&whole) {
        Ok(None) => None,
        Ok(Some(txg)) => Some(format!(
            "dataset {whole} was written after the root's snapshot (txg {txg}; reading a file may write its atime): its files are as they are now, not necessarily as at the snapshot"
        )),
        Err(e) => Some(format!(
            "dataset {whole}: whether it was written after the root's snapshot is unknown: {e}"
        )),
    }
}

/// The directory of a layer dataset the driver named `name`.
pub fn layer_dir(pool: &dyn DatasetProvider, name: &str) -> Result<Beneath> {
    let whole = resolve(pool.base(), name)?;
    serve(pool, &whole)?.open()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::root::DockerRoot;
    use crate::model::stack::{Role, Stack, StackLayer};
    use docker_mount_core::driver::LayerSource;

    /// A pool that must never be asked to open anything.
    #[derive(Debug)]
    struct Untouchable;

    impl DatasetProvider for Untouchable {
        fn base(&self) -> &str {
            "tank/docker"
        }
        fn describe(&self) -> String {
            "test pool".into()
        }
        fn devices(&self) -> Vec<PathBuf> {
            Vec::new()
        }
        fn children(&self) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn open(&self, name: &str) -> Result<Arc<dyn TreeSource>> {
            panic!("dataset {name} opened");
        }
    }

    #[test]
    fn a_view_refuses_layer_datasets_outside_the_root_dataset() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("containers")).unwrap();
        let root = DockerRoot::open(t.path())
            .unwrap()
            .with_pool(Arc::new(Untouchable));
        for name in [
            "../../x",
            "tank/other",
            "tank/docker@snap",
            "tank/docker/a/../b",
        ] {
            let stack = Stack {
                driver: "zfs".into(),
                layers: vec![StackLayer {
                    role: Role::Image,
                    driver_id: "x".into(),
                    chain_id: None,
                    diff_id: None,
                    size: None,
                    source: LayerSource::Dataset {
                        name: name.into(),
                        parent_ids: Vec::new(),
                    },
                }],
                warnings: Vec::new(),
            };
            let e = crate::union::view::open(&root, &stack)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("refused") && e.contains("tank/docker"),
                "{name}: {e}"
            );
        }
    }

    #[test]
    fn layer_names_stay_below_the_root_dataset() {
        let base = "dmpool/docker";
        assert_eq!(resolve(base, "abc").unwrap(), "dmpool/docker/abc");
        assert_eq!(resolve(base, "abc-init").unwrap(), "dmpool/docker/abc-init");
        assert_eq!(
            resolve(base, "dmpool/docker/abc").unwrap(),
            "dmpool/docker/abc"
        );
        for bad in [
            "../../x",
            "..",
            "",
            "dmpool/other",
            "dmpool/dockerx/a",
            "dmpool/docker",
            "dmpool/docker/",
            "dmpool/docker/../x",
            "dmpool/docker/a@snap",
            "abc@1",
            "/dmpool/docker/a",
        ] {
            assert!(resolve(base, bad).is_err(), "{bad:?} accepted");
        }
    }
}
