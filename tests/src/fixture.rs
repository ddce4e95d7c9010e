//! Synthetic docker roots (testing.md, Tier 1): what a dockerd 20.10 with
//! the overlay2 driver leaves in its data root — layerdb with real diff and
//! chain ids and tar-split, image configs, `repositories.json`, overlay2
//! layer directories with `l/` links, containers with their init and rw
//! layers — written from a short description, without docker.
//!
//! Builds are reproducible: ids docker draws at random are hashes of names,
//! every time is fixed ([`DEFAULT_MTIME`] unless a [`Node`] says otherwise),
//! so `cargo xtask demo` and tests see the same root for the same
//! description. The builder panics, naming the path, on any I/O error: it is
//! test setup. It needs root for opaque directories (`trusted.` xattrs),
//! devices and foreign owners.

mod awkward;
mod container;
mod damage;
mod encode;
mod ids;
mod layer_tar;
mod node;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

pub use awkward::awkward_layer;
pub use container::{ContainerOpts, ContainerState, Volume};
pub use ids::{chain_id, hex_of, sha256_digest};
pub use node::{Kind, Node, DEFAULT_MTIME, OPAQUE_XATTR};

pub use encode::rfc3339;
use ids::{derived_id, link_name};
use layer_tar::layer_tar;
use node::{materialize, set_mtime};

/// The daemon's data root as the configs of the seized host name it.
pub const ORIGINAL_ROOT: &str = "/var/lib/docker";

/// An image layer of the fixture (index into [`Fixture::layers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerRef(pub usize);

/// An image of the fixture (index into [`Fixture::images`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef(pub usize);

/// A container of the fixture (index into [`Fixture::containers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContainerRef(pub usize);

/// An image layer as written. Digests carry their `sha256:` prefix; driver
/// ids (`cache_id`) are bare hex, as in docker's files.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    pub diff_id: String,
    pub chain_id: String,
    pub cache_id: String,
    /// The 26-character name under `overlay2/l/`.
    pub link: String,
    pub parent: Option<LayerRef>,
    /// layerdb's `size`.
    pub size: u64,
    /// The uncompressed layer tar: the oracle for tar-split reassembly.
    pub tar: Vec<u8>,
}

/// An image as written.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    /// `sha256:<hex>`, the sha256 of the config file.
    pub id: String,
    /// As given, e.g. `alpine:3.14` (`:latest` added when no tag).
    pub tags: Vec<String>,
    /// Base first.
    pub layers: Vec<LayerRef>,
    pub opts: ImageOpts,
}

/// A container as written.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub name: String,
    /// 64 hex.
    pub id: String,
    /// overlay2 directory of the rw layer; `init_id` is `<mount_id>-init`.
    pub mount_id: String,
    pub init_id: String,
    pub rw_link: String,
    pub init_link: String,
    pub image: ImageRef,
    pub state: ContainerState,
}

/// What goes into an image config besides its layers.
#[derive(Clone, Debug)]
pub struct ImageOpts {
    pub created: i64,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub labels: Vec<(String, String)>,
}

impl Default for ImageOpts {
    fn default() -> Self {
        ImageOpts {
            created: DEFAULT_MTIME,
            cmd: vec!["/bin/sh".into()],
            entrypoint: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            user: String::new(),
            working_dir: String::new(),
            labels: Vec::new(),
        }
    }
}

/// A finished docker root and the ids in it.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub root: PathBuf,
    pub layers: Vec<LayerInfo>,
    pub images: Vec<ImageInfo>,
    pub containers: Vec<ContainerInfo>,
}

impl Fixture {
    pub fn layer(&self, layer: LayerRef) -> &LayerInfo {
        &self.layers[layer.0]
    }
    pub fn image(&self, image: ImageRef) -> &ImageInfo {
        &self.images[image.0]
    }
    pub fn container(&self, container: ContainerRef) -> &ContainerInfo {
        &self.containers[container.0]
    }
    /// `ROOT/overlay2`.
    pub fn overlay2(&self) -> PathBuf {
        self.root.join("overlay2")
    }
    /// `ROOT/image/overlay2`.
    pub fn image_dir(&self) -> PathBuf {
        self.root.join("image/overlay2")
    }
    /// `ROOT/image/overlay2/layerdb/sha256/<hex>` of a chain id.
    pub fn layerdb_dir(&self, chain_id: &str) -> PathBuf {
        self.image_dir()
            .join("layerdb/sha256")
            .join(hex_of(chain_id))
    }
    /// `ROOT/image/overlay2/layerdb/mounts/<cid>`.
    pub fn mounts_dir(&self, container: ContainerRef) -> PathBuf {
        self.image_dir()
            .join("layerdb/mounts")
            .join(&self.container(container).id)
    }
    /// `ROOT/containers/<cid>`.
    pub fn container_dir(&self, container: ContainerRef) -> PathBuf {
        self.root
            .join("containers")
            .join(&self.container(container).id)
    }
    /// `l/` names of a container's layers, top first (rw, init, image
    /// layers): the lowerdir of a forensic overlay mount made from
    /// `ROOT/overlay2`.
    pub fn container_links(&self, container: ContainerRef) -> Vec<String> {
        let c = self.container(container);
        let top = self.image(c.image).layers.last().copied();
        [c.rw_link.clone(), c.init_link.clone()]
            .into_iter()
            .chain(self.links_from(top))
            .collect()
    }
    /// Links of `top` and its ancestors, nearest first.
    fn links_from(&self, mut layer: Option<LayerRef>) -> Vec<String> {
        let mut links = Vec::new();
        while let Some(l) = layer {
            links.push(self.layer(l).link.clone());
            layer = self.layer(l).parent;
        }
        links
    }
}

/// Writes an overlay2 docker root; see the module documentation.
pub struct RootBuilder {
    fx: Fixture,
    /// Directories whose contents already carry their final times.
    sealed: HashSet<PathBuf>,
}

impl RootBuilder {
    /// Creates `dir` (any length; it may already exist) and the skeleton
    /// every root has.
    pub fn new(dir: &Path) -> Self {
        let fx = Fixture {
            root: dir.to_path_buf(),
            layers: Vec::new(),
            images: Vec::new(),
            containers: Vec::new(),
        };
        for sub in [
            "overlay2/l",
            "image/overlay2/layerdb/sha256",
            "image/overlay2/layerdb/mounts",
            "image/overlay2/layerdb/tmp",
            "image/overlay2/imagedb/content/sha256",
            "image/overlay2/imagedb/metadata/sha256",
            "image/overlay2/distribution",
            "containers",
            "volumes",
        ] {
            mkdir(&dir.join(sub), 0o700);
        }
        RootBuilder {
            fx,
            sealed: HashSet::new(),
        }
    }

    /// A base image layer holding `entries`.
    pub fn layer(&mut self, entries: &[Node]) -> LayerRef {
        self.add_layer(None, entries)
    }

    /// An image layer holding `entries` on top of `parent`. A layer equal to
    /// an existing one (same chain id) is that one, as in docker.
    pub fn layer_on(&mut self, parent: LayerRef, entries: &[Node]) -> LayerRef {
        self.add_layer(Some(parent), entries)
    }

    fn add_layer(&mut self, parent: Option<LayerRef>, entries: &[Node]) -> LayerRef {
        let staging = self
            .fx
            .overlay2()
            .join(format!("fixture-staging-{}", self.fx.layers.len()));
        mkdir(&staging.join("diff"), 0o755);
        materialize(&staging.join("diff"), entries);
        let built = layer_tar(&staging.join("diff"));
        let diff_id = sha256_digest(&built.tar);
        let parent_chain = parent.map(|p| self.fx.layer(p).chain_id.clone());
        let chain = chain_id(parent_chain.as_deref(), &diff_id);
        if let Some(i) = self.fx.layers.iter().position(|l| l.chain_id == chain) {
            or_panic(fs::remove_dir_all(&staging), &staging);
            return LayerRef(i);
        }
        let cache_id = derived_id("cache-id", &chain);
        let dir = self.fx.overlay2().join(&cache_id);
        or_panic(fs::rename(&staging, &dir), &dir);
        set_mode(&dir, 0o710);
        let link = self.driver_layer(&cache_id, &self.fx.links_from(parent));
        write(&dir.join("committed"), b"");

        let db = self.fx.layerdb_dir(&chain);
        mkdir(&db, 0o755);
        write(&db.join("diff"), diff_id.as_bytes());
        write(&db.join("cache-id"), cache_id.as_bytes());
        write(&db.join("size"), built.size.to_string().as_bytes());
        if let Some(p) = &parent_chain {
            write(&db.join("parent"), p.as_bytes());
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        or_panic(gz.write_all(&built.tar_split), &db);
        write(&db.join("tar-split.json.gz"), &or_panic(gz.finish(), &db));

        self.fx.layers.push(LayerInfo {
            diff_id,
            chain_id: chain,
            cache_id,
            link,
            parent,
            size: built.size,
            tar: built.tar,
        });
        LayerRef(self.fx.layers.len() - 1)
    }

    /// The driver's side of a layer whose `diff/` exists: `link`, the
    /// `l/` symlink, and for a layer with parents `lower` and `work/`.
    fn driver_layer(&mut self, id: &str, lower: &[String]) -> String {
        let dir = self.fx.overlay2().join(id);
        let link = link_name(id);
        write(&dir.join("link"), link.as_bytes());
        let l = self.fx.overlay2().join("l").join(&link);
        or_panic(symlink(format!("../{id}/diff"), &l), &l);
        if !lower.is_empty() {
            let joined: Vec<String> = lower.iter().map(|l| format!("l/{l}")).collect();
            write(&dir.join("lower"), joined.join(":").as_bytes());
            mkdir(&dir.join("work"), 0o700);
        }
        self.sealed.insert(dir.join("diff"));
        link
    }

    /// An image whose top layer is `top`: its config in imagedb, and its
    /// `tags` (`name:tag`, `:latest` added when missing) for
    /// `repositories.json`. Later images take over a tag, as in docker.
    pub fn image(&mut self, tags: &[&str], top: LayerRef, opts: ImageOpts) -> ImageRef {
        self.write_image(tags, top, opts, false)
    }

    /// Like [`RootBuilder::image`], but the config's last diff id names no
    /// layer, so its chain ids match no layerdb directory.
    pub fn mismatched_image(&mut self, tags: &[&str], top: LayerRef, opts: ImageOpts) -> ImageRef {
        self.write_image(tags, top, opts, true)
    }

    fn write_image(
        &mut self,
        tags: &[&str],
        top: LayerRef,
        opts: ImageOpts,
        mismatch: bool,
    ) -> ImageRef {
        let mut layers = vec![top];
        while let Some(p) = self.fx.layer(layers[layers.len() - 1]).parent {
            layers.push(p);
        }
        layers.reverse();
        let mut diff_ids: Vec<String> = layers
            .iter()
            .map(|&l| self.fx.layer(l).diff_id.clone())
            .collect();
        if mismatch {
            let last = diff_ids.len() - 1;
            diff_ids[last] = sha256_digest(b"fixture: a layer that is not in layerdb");
        }
        let created = rfc3339(opts.created, 0);
        let history: Vec<_> = (0..layers.len())
            .map(|i| json!({"created": created, "created_by": format!("/bin/sh -c #(nop) ADD fixture-layer-{i} in / ")}))
            .collect();
        let labels: BTreeMap<_, _> = opts.labels.iter().cloned().collect();
        let labels = if labels.is_empty() {
            json!(null)
        } else {
            json!(labels)
        };
        let config = json!({
            "architecture": "amd64",
            "config": {
                "Hostname": "", "Domainname": "", "User": opts.user,
                "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
                "Tty": false, "OpenStdin": false, "StdinOnce": false,
                "Env": opts.env, "Cmd": opts.cmd, "Image": "", "Volumes": null,
                "WorkingDir": opts.working_dir, "Labels": labels,
                "Entrypoint": if opts.entrypoint.is_empty() { json!(null) } else { json!(opts.entrypoint) },
                "OnBuild": null,
            },
            "created": created,
            "docker_version": "20.10.5",
            "history": history,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let bytes = or_panic(
            serde_json::to_vec(&config).map_err(Into::into),
            "image config",
        );
        let id = sha256_digest(&bytes);
        let imagedb = self.fx.image_dir().join("imagedb");
        write(&imagedb.join("content/sha256").join(hex_of(&id)), &bytes);
        let meta = imagedb.join("metadata/sha256").join(hex_of(&id));
        mkdir(&meta, 0o700);
        write(&meta.join("lastUpdated"), created.as_bytes());
        let tags = tags.iter().map(|t| normalize_tag(t)).collect();
        self.fx.images.push(ImageInfo {
            id,
            tags,
            layers,
            opts,
        });
        ImageRef(self.fx.images.len() - 1)
    }

    /// An image of `n` layers, each adding one small file
    /// (`deep/layer-NNNN`): for deep-chain and lowerdir-length tests.
    pub fn deep_image(&mut self, tags: &[&str], n: usize) -> ImageRef {
        assert!(n > 0, "an image has at least one layer");
        let file = |i: usize| Node::file(format!("deep/layer-{i:04}"), format!("layer {i}\n"));
        let mut top = self.layer(&[file(0)]);
        for i in 1..n {
            top = self.layer_on(top, &[file(i)]);
        }
        self.image(tags, top, ImageOpts::default())
    }

    /// Writes `repositories.json`, gives every remaining file its fixed
    /// time, and hands over the ids.
    pub fn finish(self) -> Fixture {
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for image in &self.fx.images {
            for tag in &image.tags {
                let repo = tag.rsplit_once(':').map_or(tag.as_str(), |(r, _)| r);
                repos
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(tag.clone(), image.id.clone());
            }
        }
        let json = json!({ "Repositories": repos });
        write(
            &self.fx.image_dir().join("repositories.json"),
            json.to_string().as_bytes(),
        );
        self.fix_times(&self.fx.root);
        self.fx
    }

    fn fix_times(&self, path: &Path) {
        let meta = or_panic(path.symlink_metadata(), path);
        if meta.is_dir() && !self.sealed.contains(path) {
            for entry in or_panic(fs::read_dir(path), path) {
                self.fix_times(&or_panic(entry, path).path());
            }
        }
        set_mtime(path, DEFAULT_MTIME);
    }
}

/// `alpine` means `alpine:latest`; a `:` before the last `/` is a registry
/// port, not a tag.
fn normalize_tag(tag: &str) -> String {
    let name_start = tag.rfind('/').map_or(0, |i| i + 1);
    if tag[name_start..].contains(':') {
        tag.to_owned()
    } else {
        format!("{tag}:latest")
    }
}

/// Unwraps an I/O result or panics naming what was being written.
fn or_panic<T>(result: std::io::Result<T>, what: impl Debug) -> T {
    result.unwrap_or_else(|e| panic!("docker fixture: {what:?}: {e}"))
}

fn mkdir(path: &Path, mode: u32) {
    or_panic(fs::create_dir_all(path), path);
    set_mode(path, mode);
}

fn set_mode(path: &Path, mode: u32) {
    or_panic(
        fs::set_permissions(path, fs::Permissions::from_mode(mode)),
        path,
    );
}

fn write(path: &Path, content: &[u8]) {
    or_panic(fs::write(path, content), path);
}
