//! A docker root opened for reading: containers, images, layer stores.
//!
//! Listing never fails because one item is broken: each container or image
//! is its own `Result`, and the errors name the file at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::evidence::pool::DatasetProvider;
use crate::model::catalog;
use crate::model::container::Container;
use crate::model::ids;
use crate::model::image::{Image, References};
use crate::model::layerdb::{LayerDb, LayerDir};
use crate::model::legacy;
use crate::model::parallel;
use crate::model::volume::{self, Volume};
use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::Confidence;
use docker_mount_core::error::{Error, Result};
use docker_mount_core::loader::Drivers;

/// An item of the root that could not be read.
#[derive(Debug)]
pub struct ItemError {
    /// The directory or file name the item goes by (an id, usually).
    pub name: String,
    pub error: Error,
}

#[derive(Debug)]
pub struct DockerRoot {
    dir: Beneath,
    /// The root again, through a noatime view where the process may make
    /// one: where listings read their thousands of small files (see
    /// [`Beneath::open_view`]).
    view: Beneath,
    /// Containers and images engines keep in their own metadata.
    catalog: Catalogued,
    /// Other evidence directories holding layers (see
    /// [`Catalog::stores`](docker_mount_core::driver::Catalog::stores)).
    stores: Vec<Beneath>,
    /// Each image store's layerdb, read once: every image and container
    /// of a store resolves its layers in it.
    layerdbs: Mutex<BTreeMap<String, Arc<LayerDb>>>,
    /// The pool the root was read from, when it lies in one (zfs): its
    /// layers are datasets of it.
    pool: Option<Arc<dyn DatasetProvider>>,
}

/// What the drivers' catalogs hold, in the docker model.
#[derive(Debug, Default)]
struct Catalogued {
    containers: Vec<Container>,
    images: Vec<Image>,
    /// (driver, message) for records a catalog could not read.
    problems: Vec<(String, String)>,
}

impl Catalogued {
    fn problems(&self) -> impl Iterator<Item = ItemError> + '_ {
        self.problems.iter().map(|(driver, p)| ItemError {
            name: format!("{driver} metadata"),
            error: Error::Usage(p.clone()),
        })
    }
}

/// docker's top-level directories: a root holds at least one.
pub const DOCKER_DIRS: [&str; 3] = ["containers", "image", "graph"];

impl DockerRoot {
    /// Opens a docker root. Fails only when the directory cannot be opened
    /// or holds none of docker's top-level directories.
    pub fn open(path: &Path) -> Result<DockerRoot> {
        let dir = Beneath::open(path)?;
        if !DOCKER_DIRS.iter().any(|d| dir.exists(Path::new(d))) {
            return Err(Error::invalid(
                path,
                "not a docker root: no containers/, image/ or graph/ directory; pass the docker data root with --root",
            ));
        }
        Ok(DockerRoot {
            view: Beneath::open_view(path)?,
            dir,
            catalog: Catalogued::default(),
            stores: Vec::new(),
            layerdbs: Mutex::default(),
            pool: None,
        })
    }

    /// Opens a root with the containers and images of every driver's
    /// catalog. Accepts an engine's own root (podman's storage, containerd's
    /// root) when a driver recognises it.
    pub fn open_with(path: &Path, drivers: &Drivers) -> Result<DockerRoot> {
        let dir = Beneath::open(path)?;
        let docker = DOCKER_DIRS.iter().any(|d| dir.exists(Path::new(d)));
        let mut root = DockerRoot {
            view: Beneath::open_view(path)?,
            dir,
            catalog: Catalogued::default(),
            stores: Vec::new(),
            layerdbs: Mutex::default(),
            pool: None,
        };
        let mut claimed = false;
        for d in &drivers.loaded {
            if !d.detect(path).is_ok_and(|c| c > Confidence::NONE) {
                continue;
            }
            claimed = true;
            match d.catalog(path) {
                Ok(mut c) => {
                    for store in std::mem::take(&mut c.stores) {
                        match Beneath::open(&store) {
                            Ok(b) => root.stores.push(b),
                            Err(e) => root
                                .catalog
                                .problems
                                .push((d.name().to_string(), e.to_string())),
                        }
                    }
                    let (containers, images, problems) = catalog::convert(d.name(), c);
                    root.catalog.containers.extend(containers);
                    root.catalog.images.extend(images);
                    root.catalog
                        .problems
                        .extend(problems.into_iter().map(|p| (d.name().to_string(), p)));
                }
                Err(e) => root
                    .catalog
                    .problems
                    .push((d.name().to_string(), e.to_string())),
            }
        }
        if !docker && !claimed {
            return Err(Error::invalid(
                path,
                "not a docker root: no containers/, image/ or graph/ directory and no loaded driver recognises it; pass the docker data root with --root",
            ));
        }
        Ok(root)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The root as read from a pool (its layers are datasets of it).
    pub fn with_pool(mut self, pool: Arc<dyn DatasetProvider>) -> DockerRoot {
        self.pool = Some(pool);
        self
    }

    /// The pool the root lies in, if it was read from one.
    pub fn pool(&self) -> Option<&dyn DatasetProvider> {
        self.pool.as_deref()
    }

    pub fn dir(&self) -> &Beneath {
        &self.dir
    }

    /// The root and every store a driver declared.
    pub fn evidence_dirs(&self) -> impl Iterator<Item = &Beneath> {
        std::iter::once(&self.dir).chain(&self.stores)
    }

    /// The evidence directory holding layer directory `dir` (the root, or a
    /// store a driver declared) and `dir` relative to it. Refuses anything
    /// else and any `..` or odd component.
    pub fn locate<'a>(&self, dir: &'a Path) -> Result<(&Beneath, &'a Path)> {
        self.evidence_dirs()
            .find_map(|base| {
                let rel = dir.strip_prefix(base.path()).ok()?;
                docker_mount_core::beneath::check_relative(rel).ok()?;
                Some((base, rel))
            })
            .ok_or_else(|| Error::invalid(dir, "layer directory outside the evidence root"))
    }

    /// The image stores (`image/<name>`), one per storage driver ever used.
    pub fn stores(&self) -> Vec<String> {
        self.dir
            .list(Path::new("image"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| docker_mount_core::beneath::is_safe_component(n))
            .collect()
    }

    /// Every container: docker's container directories, read, then the
    /// drivers' catalogs.
    pub fn containers(&self) -> Vec<Result<Container, ItemError>> {
        let mut out = self.docker_containers();
        out.extend(self.catalog.containers.iter().cloned().map(Ok));
        out.extend(self.catalog.problems().map(Err));
        out
    }

    fn docker_containers(&self) -> Vec<Result<Container, ItemError>> {
        let names = match self.view.list(Path::new("containers")) {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Vec::new(),
            Err(error) => {
                return vec![Err(ItemError {
                    name: "containers".into(),
                    error,
                })]
            }
        };
        // Cold, each config is a wait on the disk: a deep queue.
        parallel::map_on(parallel::IO_THREADS, &names, |n| {
            let name = n.to_string_lossy().into_owned();
            Container::read(&self.view, &name).map_err(|error| ItemError { name, error })
        })
    }

    /// Every image of every store.
    pub fn images(&self) -> Vec<Result<Image, ItemError>> {
        self.images_then(|i| i)
    }

    /// `f` of every image of every store, each called on the thread that
    /// read the image: what `f` reads next (its layers) waits on the disk
    /// beside the other configs.
    pub fn images_then<R: Send>(&self, f: impl Fn(Image) -> R + Sync) -> Vec<Result<R, ItemError>> {
        let mut out = Vec::new();
        for store in self.stores() {
            let refs = match References::read(&self.view, &store) {
                Ok(r) => r,
                Err(error) => {
                    out.push(Err(ItemError {
                        name: format!("image/{store}/repositories.json"),
                        error,
                    }));
                    References::default()
                }
            };
            let imagedb = Image::list_ids(&self.view, &store).and_then(|ids| {
                if ids.is_empty() {
                    return Ok(None);
                }
                let rel = Path::new("image").join(&store).join("imagedb");
                Ok(Some((ids, self.view.subdir(&rel)?)))
            });
            match imagedb {
                Ok(None) => {}
                // Cold, each config is a wait on the disk: a deep queue.
                Ok(Some((ids, imagedb))) => {
                    out.extend(parallel::map_on(parallel::IO_THREADS, &ids, |id| {
                        Image::read(&imagedb, &store, id, &refs)
                            .map(&f)
                            .map_err(|error| ItemError {
                                name: id.clone(),
                                error,
                            })
                    }))
                }
                Err(error) => out.push(Err(ItemError {
                    name: format!("image/{store}/imagedb"),
                    error,
                })),
            }
        }
        out.extend(
            legacy::images(&self.view)
                .into_iter()
                .map(|r| r.map(&f).map_err(|(name, error)| ItemError { name, error })),
        );
        out.extend(self.catalog.images.iter().cloned().map(|i| Ok(f(i))));
        out.extend(self.catalog.problems().map(Err));
        out
    }

    /// The layerdb of image store `store`, its records read on demand.
    pub fn layer_dir(&self, store: &str) -> Result<LayerDir> {
        LayerDir::open(&self.view, store)
    }

    /// The layerdb of image store `store` (`overlay2`, ...), read on first use.
    pub fn layerdb(&self, store: &str) -> Arc<LayerDb> {
        let mut cache = self.layerdbs.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(store.to_string())
            .or_insert_with(|| Arc::new(LayerDb::read(&self.view, store)))
            .clone()
    }

    pub fn volumes(&self) -> Vec<Volume> {
        volume::list(&self.dir)
    }

    /// `c` with its hostconfig.json read.
    fn with_host_config(&self, c: &Container) -> Container {
        let mut c = c.clone();
        c.load_host_config(&self.dir);
        c
    }

    /// Finds a container by full id, unique id prefix, or name, with its
    /// hostconfig.json read.
    pub fn find_container(&self, query: &str) -> Result<Container> {
        let all = self.containers();
        let wanted = query.trim_start_matches('/');
        let ok = || all.iter().filter_map(|c| c.as_ref().ok());
        // An exact id, else an exact name. Engines' catalogs may repeat an
        // id (containerd's namespaces): never pick one of them silently.
        for exact in [
            ok().filter(|c| c.id == query).collect::<Vec<_>>(),
            ok().filter(|c| c.name() == wanted).collect(),
        ] {
            match exact.as_slice() {
                [] => {}
                [one] => return Ok(self.with_host_config(one)),
                many => {
                    let names: Vec<&str> = many.iter().map(|c| c.name()).collect();
                    return Err(Error::Usage(format!(
                        "{query:?} names {} containers ({}); give one by its name",
                        many.len(),
                        names.join(", ")
                    )));
                }
            }
        }
        let by_prefix: Vec<&Container> = ok()
            .filter(|c| !query.is_empty() && c.id.starts_with(query))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok(self.with_host_config(one)),
            [] => {
                // A broken container of that id: give its own error.
                if let Some(err) = all
                    .into_iter()
                    .filter_map(|c| c.err())
                    .find(|e| !query.is_empty() && e.name.starts_with(query))
                {
                    return Err(err.error);
                }
                Err(Error::Usage(format!(
                    "no container {query:?} in {}; see `docker-mount list --all`",
                    self.path().display()
                )))
            }
            many => Err(Error::Usage(format!(
                "{query:?} matches {} containers; give more of the id",
                many.len()
            ))),
        }
    }

    /// Finds an image by id, unique id prefix, `name:tag` or `name` (`:latest`).
    pub fn find_image(&self, query: &str) -> Result<Image> {
        let images: Vec<Image> = self.images().into_iter().filter_map(|i| i.ok()).collect();
        let q = ids::strip_sha256(query);
        let with_latest = if q.contains(':') || q.contains('@') {
            q.to_string()
        } else {
            format!("{q}:latest")
        };
        let matches_ref = |i: &Image| {
            i.tags
                .iter()
                .chain(&i.digests)
                .any(|t| t == q || *t == with_latest)
        };
        if let Some(i) = images.iter().find(|i| i.id == q || matches_ref(i)) {
            return Ok(i.clone());
        }
        let by_prefix: Vec<&Image> = images
            .iter()
            .filter(|i| !q.is_empty() && i.id.starts_with(q))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Usage(format!(
                "no image {query:?} in {}; see `docker-mount images`",
                self.path().display()
            ))),
            many => Err(Error::Usage(format!(
                "{query:?} matches {} images; give more of the id",
                many.len()
            ))),
        }
    }

    /// A path beneath the root, for messages.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path().join(rel)
    }
}
