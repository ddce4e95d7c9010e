//! containerd's metadata, read from its bolt files and content store.
//!
//! - `io.containerd.metadata.v1.bolt/meta.db` (containerd's metadata
//!   plugin): `v1/<namespace>/containers/<id>` (`image`, `snapshotter`,
//!   `snapshotKey`, `createdat`, `updatedat`, `labels/`, `runtime/name`,
//!   `spec`: a protobuf `Any` holding the OCI spec as JSON),
//!   `v1/<namespace>/images/<name>` (`createdat`, `labels/`, `target/`
//!   with `digest`, `mediatype`, `size`), and
//!   `v1/<namespace>/snapshots/<snapshotter>/<key>` (`name`: the key the
//!   snapshotter itself knows it by, `parent`: the parent's key in the
//!   same namespace, `children/`, `createdat`, `labels/`).
//! - `io.containerd.snapshotter.v1.overlayfs/metadata.db` (the overlayfs
//!   snapshotter's own store): `v1/snapshots/<name>` with `id` (uvarint:
//!   the directory `snapshots/<id>/fs`), `kind` (1 view, 2 active, 3
//!   committed), `parent` (the parent's name), `createdat`.
//! - `io.containerd.content.v1.content/blobs/sha256/<hex>`: manifests,
//!   indexes and image configs, checked against their digest.
//!
//! Times are Go's `time.Time.MarshalBinary`; ids and sizes varints.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use docker_mount_core::beneath::Beneath;
use docker_mount_core::{DriverError, ErrorKind};
use sha2::{Digest, Sha256};

use docker_mount_core::driver_kit::bolt::{self, BoltError, Bucket, Db, Value};

pub const META_DB: &str = "io.containerd.metadata.v1.bolt/meta.db";
pub const CONTENT_BLOBS: &str = "io.containerd.content.v1.content/blobs";
pub const SNAPSHOTTER_DB: &str = "metadata.db";

/// The most snapshots one chain may have (overlayfs cannot stack more
/// than a few hundred lowerdirs anyway).
pub const MAX_CHAIN: usize = 1024;
/// Manifests and indexes are small; configs can carry long histories.
const MANIFEST_LIMIT: u64 = 4 << 20;
const CONFIG_LIMIT: u64 = 32 << 20;
/// A bolt file larger than this is refused (containerd's are megabytes).
const BOLT_LIMIT: u64 = 4 << 30;

fn invalid(msg: impl Into<String>, path: &Path) -> DriverError {
    DriverError::new(ErrorKind::Invalid, msg, Some(path))
}

/// A Go `time.Time` from `MarshalBinary`, as RFC 3339 in UTC.
pub fn go_time(b: &[u8]) -> Option<String> {
    let (&version, rest) = b.split_first()?;
    let want = match version {
        1 => 14,
        2 => 15,
        _ => return None,
    };
    if rest.len() != want {
        return None;
    }
    let sec = i64::from_be_bytes(rest[0..8].try_into().ok()?);
    let nsec = i32::from_be_bytes(rest[8..12].try_into().ok()?);
    if !(0..1_000_000_000).contains(&nsec) {
        return None;
    }
    // Seconds since January 1 of year 1, UTC.
    const UNIX_TO_INTERNAL: i64 = 62_135_596_800;
    let unix = sec.checked_sub(UNIX_TO_INTERNAL)?;
    // Years 0..=9999 only: what RFC 3339 can write.
    if !(-62_135_596_800..=253_402_300_799).contains(&unix) {
        return None;
    }
    Some(docker_mount_core::time::format_rfc3339(
        docker_mount_core::stat::Time {
            sec: unix,
            nsec: i64::from(nsec),
        },
    ))
}

/// An unsigned LEB128 varint (Go's `binary.Uvarint`), the whole buffer.
pub fn uvarint(b: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, &x) in b.iter().enumerate().take(10) {
        if i == 9 && x > 1 {
            return None;
        }
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Go's `binary.Varint` (zig-zag).
fn varint(b: &[u8]) -> Option<i64> {
    let u = uvarint(b)?;
    let x = (u >> 1) as i64;
    Some(if u & 1 != 0 { !x } else { x })
}

/// The `value` field (2) of a protobuf `google.protobuf.Any`.
pub fn any_value(b: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    let mut value = None;
    let read_varint = |i: &mut usize| -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let x = *b.get(*i)?;
            *i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    while i < b.len() {
        let tag = read_varint(&mut i)?;
        match tag & 7 {
            0 => {
                read_varint(&mut i)?;
            }
            2 => {
                let len = usize::try_from(read_varint(&mut i)?).ok()?;
                let end = i.checked_add(len).filter(|&e| e <= b.len())?;
                if tag >> 3 == 2 {
                    value = Some(&b[i..end]);
                }
                i = end;
            }
            1 => i = i.checked_add(8)?,
            5 => i = i.checked_add(4)?,
            _ => return None,
        }
    }
    value
}

fn text(v: Option<Vec<u8>>) -> String {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A container as containerd's metadata records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerRec {
    pub id: String,
    pub image: String,
    pub snapshotter: String,
    pub snapshot_key: String,
    pub runtime: String,
    pub created: String,
    pub updated: String,
    pub labels: Vec<(String, String)>,
    /// The OCI runtime spec, when readable.
    pub spec: Option<serde_json::Value>,
}

/// An image (a name pointing at a manifest or index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRec {
    pub name: String,
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub created: String,
    pub labels: Vec<(String, String)>,
}

/// A snapshot reference of the metadata store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaSnapshot {
    /// The key the snapshotter knows it by (`<ns>/<n>/<key>`).
    pub name: String,
    /// The parent's key in the same namespace.
    pub parent: String,
    pub created: String,
}

/// containerd's `meta.db`.
#[derive(Debug)]
pub struct MetaDb {
    db: Db<File>,
    pub path: PathBuf,
}

impl MetaDb {
    pub fn open(root: &Beneath) -> Result<MetaDb, DriverError> {
        Ok(MetaDb {
            db: bolt::open(root, Path::new(META_DB), BOLT_LIMIT)?,
            path: root.path().join(META_DB),
        })
    }

    fn err(&self, e: BoltError) -> DriverError {
        e.at(&self.path)
    }

    fn labels(&self, b: &Bucket) -> Result<Vec<(String, String)>, DriverError> {
        let Some(l) = self.db.bucket(b, b"labels").map_err(|e| self.err(e))? else {
            return Ok(Vec::new());
        };
        Ok(self
            .db
            .entries(&l)
            .map_err(|e| self.err(e))?
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Data(d) => Some((
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&d).into_owned(),
                )),
                Value::Bucket(_) => None,
            })
            .collect())
    }

    fn time(&self, b: &Bucket, key: &[u8]) -> Result<String, DriverError> {
        Ok(self
            .db
            .value(b, key)
            .map_err(|e| self.err(e))?
            .and_then(|v| go_time(&v))
            .unwrap_or_default())
    }

    /// The namespaces (buckets under `v1`).
    pub fn namespaces(&self) -> Result<Vec<String>, DriverError> {
        let Some(v1) = self.db.path(&[b"v1"]).map_err(|e| self.err(e))? else {
            return Ok(Vec::new());
        };
        Ok(self
            .db
            .entries(&v1)
            .map_err(|e| self.err(e))?
            .into_iter()
            .filter(|(_, v)| matches!(v, Value::Bucket(_)))
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }

    /// Every bucket under `v1/<ns>/<object>`, by key.
    fn objects(&self, ns: &str, object: &[u8]) -> Result<Vec<(String, Bucket)>, DriverError> {
        let Some(b) = self
            .db
            .path(&[b"v1", ns.as_bytes(), object])
            .map_err(|e| self.err(e))?
        else {
            return Ok(Vec::new());
        };
        Ok(self
            .db
            .entries(&b)
            .map_err(|e| self.err(e))?
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Bucket(b) => Some((String::from_utf8_lossy(&k).into_owned(), b)),
                Value::Data(_) => None,
            })
            .collect())
    }

    /// The containers of namespace `ns`, each read on its own.
    pub fn containers(
        &self,
        ns: &str,
    ) -> Result<Vec<Result<ContainerRec, DriverError>>, DriverError> {
        Ok(self
            .objects(ns, b"containers")?
            .into_iter()
            .map(|(id, b)| self.container(id, &b))
            .collect())
    }

    fn container(&self, id: String, b: &Bucket) -> Result<ContainerRec, DriverError> {
        let get = |k: &[u8]| self.db.value(b, k).map_err(|e| self.err(e));
        let runtime = match self.db.bucket(b, b"runtime").map_err(|e| self.err(e))? {
            Some(r) => text(self.db.value(&r, b"name").map_err(|e| self.err(e))?),
            None => String::new(),
        };
        let spec = get(b"spec")?
            .as_deref()
            .and_then(any_value)
            .and_then(|v| serde_json::from_slice(v).ok());
        Ok(ContainerRec {
            image: text(get(b"image")?),
            snapshotter: text(get(b"snapshotter")?),
            snapshot_key: text(get(b"snapshotKey")?),
            runtime,
            created: self.time(b, b"createdat")?,
            updated: self.time(b, b"updatedat")?,
            labels: self.labels(b)?,
            spec,
            id,
        })
    }

    /// The images of namespace `ns`.
    pub fn images(&self, ns: &str) -> Result<Vec<Result<ImageRec, DriverError>>, DriverError> {
        Ok(self
            .objects(ns, b"images")?
            .into_iter()
            .map(|(name, b)| self.image(name, &b))
            .collect())
    }

    fn image(&self, name: String, b: &Bucket) -> Result<ImageRec, DriverError> {
        let target = self
            .db
            .bucket(b, b"target")
            .map_err(|e| self.err(e))?
            .ok_or_else(|| invalid(format!("image {name:?} has no target"), &self.path))?;
        let get = |k: &[u8]| self.db.value(&target, k).map_err(|e| self.err(e));
        Ok(ImageRec {
            digest: text(get(b"digest")?),
            media_type: text(get(b"mediatype")?),
            size: get(b"size")?.and_then(|v| varint(&v)).unwrap_or(0),
            created: self.time(b, b"createdat")?,
            labels: self.labels(b)?,
            name,
        })
    }

    /// Snapshot `key` of `snapshotter` in namespace `ns`.
    pub fn snapshot(
        &self,
        ns: &str,
        snapshotter: &str,
        key: &str,
    ) -> Result<Option<MetaSnapshot>, DriverError> {
        let Some(b) = self
            .db
            .path(&[
                b"v1",
                ns.as_bytes(),
                b"snapshots",
                snapshotter.as_bytes(),
                key.as_bytes(),
            ])
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        let get = |k: &[u8]| self.db.value(&b, k).map_err(|e| self.err(e));
        Ok(Some(MetaSnapshot {
            name: text(get(b"name")?),
            parent: text(get(b"parent")?),
            created: self.time(&b, b"createdat")?,
        }))
    }
}

/// One snapshot of the overlayfs snapshotter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub id: u64,
    /// 1 view, 2 active, 3 committed.
    pub kind: u8,
    pub parent: String,
    pub created: String,
    /// Bytes the snapshot's files take, recorded when it was committed
    /// (`size`; none for active snapshots or a negative value).
    pub usage: Option<u64>,
}

/// The overlayfs snapshotter's `metadata.db`: snapshots by name and id.
#[derive(Debug, Default)]
pub struct SnapDb {
    pub path: PathBuf,
    pub by_name: BTreeMap<String, Snap>,
    pub by_id: BTreeMap<u64, String>,
    /// Snapshots that could not be read.
    pub problems: Vec<String>,
}

impl SnapDb {
    /// Reads the whole snapshot table of the snapshotter directory `dir`.
    pub fn read(dir: &Beneath) -> Result<SnapDb, DriverError> {
        let path = dir.path().join(SNAPSHOTTER_DB);
        let db = bolt::open(dir, Path::new(SNAPSHOTTER_DB), BOLT_LIMIT)?;
        let err = |e: BoltError| e.at(&path);
        let mut out = SnapDb {
            path: path.clone(),
            ..SnapDb::default()
        };
        let Some(snaps) = db.path(&[b"v1", b"snapshots"]).map_err(err)? else {
            return Ok(out);
        };
        for (k, v) in db.entries(&snaps).map_err(err)? {
            let name = String::from_utf8_lossy(&k).into_owned();
            let Value::Bucket(b) = v else { continue };
            let get = |key: &[u8]| db.value(&b, key).map_err(err);
            let Some(id) = get(b"id")?.and_then(|v| uvarint(&v)) else {
                out.problems
                    .push(format!("snapshot {name:?} has no readable id"));
                continue;
            };
            let kind = get(b"kind")?.filter(|k| k.len() == 1).map_or(0, |k| k[0]);
            let snap = Snap {
                id,
                kind,
                parent: text(get(b"parent")?),
                created: get(b"createdat")?
                    .and_then(|v| go_time(&v))
                    .unwrap_or_default(),
                usage: get(b"size")?
                    .and_then(|v| varint(&v))
                    .and_then(|n| u64::try_from(n).ok()),
            };
            if let Some(other) = out.by_id.insert(id, name.clone()) {
                out.problems
                    .push(format!("snapshots {other:?} and {name:?} share id {id}"));
            }
            out.by_name.insert(name, snap);
        }
        Ok(out)
    }

    /// The ids of snapshot `name` and its parents, nearest first.
    pub fn chain(&self, name: &str) -> Result<Vec<u64>, DriverError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut next = name.to_string();
        loop {
            let snap = self.by_name.get(&next).ok_or_else(|| {
                DriverError::new(
                    ErrorKind::NotFound,
                    format!("the snapshotter has no snapshot {next:?}"),
                    Some(&self.path),
                )
            })?;
            if !seen.insert(next.clone()) || out.len() >= MAX_CHAIN {
                return Err(invalid(
                    format!("the parents of snapshot {name:?} form a cycle or a chain over {MAX_CHAIN} long"),
                    &self.path,
                ));
            }
            out.push(snap.id);
            if snap.parent.is_empty() {
                return Ok(out);
            }
            next = snap.parent.clone();
        }
    }

    /// The parents' ids of the snapshot with id `id`, nearest first (empty
    /// when the snapshotter does not know it).
    pub fn parent_ids(&self, id: u64) -> Result<Vec<u64>, DriverError> {
        match self.by_id.get(&id) {
            Some(name) => Ok(self.chain(name)?.into_iter().skip(1).collect()),
            None => Ok(Vec::new()),
        }
    }
}

/// `sha256:<64 hex>` → the hex, if that is what `digest` is.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// containerd's content store (`blobs/sha256/<hex>`).
#[derive(Debug)]
pub struct Content {
    dir: Option<Beneath>,
    path: PathBuf,
}

impl Content {
    pub fn open(root: &Beneath) -> Content {
        Content {
            dir: root.subdir(Path::new(CONTENT_BLOBS)).ok(),
            path: root.path().join(CONTENT_BLOBS),
        }
    }

    /// The blob `digest`, checked against it.
    pub fn blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>, DriverError> {
        let hex = sha256_hex(digest)
            .ok_or_else(|| invalid(format!("{digest:?} is not a sha256 digest"), &self.path))?;
        let rel = Path::new("sha256").join(hex);
        let path = self.path.join(&rel);
        let dir = self.dir.as_ref().ok_or_else(|| {
            DriverError::new(ErrorKind::NotFound, "no content store", Some(&self.path))
        })?;
        if !dir.exists(&rel) {
            return Err(DriverError::new(
                ErrorKind::NotFound,
                format!("blob {digest} is not in the content store"),
                Some(&path),
            ));
        }
        let bytes = dir
            .read(&rel, limit, "content blob")
            .map_err(|e| DriverError::new(ErrorKind::Io, e.to_string(), Some(&path)))?;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != hex {
            return Err(invalid(
                format!("blob content hashes to sha256:{got}, not {digest}"),
                &path,
            ));
        }
        Ok(bytes)
    }

    fn json(&self, digest: &str, limit: u64) -> Result<serde_json::Value, DriverError> {
        let bytes = self.blob(digest, limit)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            invalid(
                format!("blob {digest} is not JSON: {e}"),
                &self
                    .path
                    .join("sha256")
                    .join(sha256_hex(digest).unwrap_or("")),
            )
        })
    }
}

/// An image's content resolved down to its config and layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub manifest: String,
    pub config_digest: String,
    pub config: serde_json::Value,
    /// The chain ids of its layers, base first.
    pub chain_ids: Vec<String>,
    /// Bytes of the content below the target as its descriptors declare
    /// them: the chosen manifest (when the target is an index), its config
    /// and its layers (what containerd's `images.Size` adds to the
    /// target's own size).
    pub content_size: u64,
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The platform architecture this host runs, in OCI's words.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The chain ids of `diff_ids` (OCI image-spec identity.ChainID), base first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// Resolves an image's target (a manifest, or an index of them) to a
/// config and its chain ids. From an index, the first manifest that
/// `unpacked` accepts (its layers are in the snapshotter) wins, else the
/// first for this host's architecture, else the first present.
pub fn resolve(
    content: &Content,
    digest: &str,
    media_type: &str,
    unpacked: &dyn Fn(&str) -> bool,
) -> Result<Resolved, DriverError> {
    resolve_depth(content, digest, media_type, unpacked, 0)
}

fn resolve_depth(
    content: &Content,
    digest: &str,
    media_type: &str,
    unpacked: &dyn Fn(&str) -> bool,
    depth: usize,
) -> Result<Resolved, DriverError> {
    if depth > 4 {
        return Err(invalid("indexes nested too deep", &content.path));
    }
    let doc = content.json(digest, MANIFEST_LIMIT)?;
    let media = doc["mediaType"].as_str().unwrap_or(media_type);
    if INDEX_TYPES.contains(&media) || doc["manifests"].is_array() {
        let manifests = doc["manifests"].as_array().cloned().unwrap_or_default();
        let mut candidates: Vec<Resolved> = Vec::new();
        let mut first_err = None;
        for m in manifests.iter().take(256) {
            let (Some(d), mt) = (m["digest"].as_str(), m["mediaType"].as_str().unwrap_or(""))
            else {
                continue;
            };
            match resolve_depth(content, d, mt, unpacked, depth + 1) {
                Ok(mut r) => {
                    let declared = m["size"].as_u64().unwrap_or(0);
                    r.content_size = r.content_size.saturating_add(declared);
                    if r.chain_ids.last().is_some_and(|c| unpacked(c)) {
                        return Ok(r);
                    }
                    let arch = m["platform"]["architecture"].as_str().unwrap_or("");
                    if arch == host_arch() {
                        candidates.insert(0, r);
                    } else {
                        candidates.push(r);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        return candidates.into_iter().next().ok_or_else(|| {
            first_err.unwrap_or_else(|| {
                invalid(
                    format!("index {digest} lists no manifest present here"),
                    &content.path,
                )
            })
        });
    }
    let config_digest = doc["config"]["digest"]
        .as_str()
        .ok_or_else(|| invalid(format!("manifest {digest} has no config"), &content.path))?
        .to_string();
    let config = content.json(&config_digest, CONFIG_LIMIT)?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() > MAX_CHAIN {
        return Err(invalid(
            format!("config {config_digest} has {} layers", diff_ids.len()),
            &content.path,
        ));
    }
    let layer_sizes = doc["layers"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(MAX_CHAIN)
                .map(|l| l["size"].as_u64().unwrap_or(0))
                .fold(0u64, u64::saturating_add)
        })
        .unwrap_or(0);
    Ok(Resolved {
        manifest: digest.to_string(),
        config_digest,
        config,
        chain_ids: chain_ids(&diff_ids),
        content_size: doc["config"]["size"]
            .as_u64()
            .unwrap_or(0)
            .saturating_add(layer_sizes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(sec: i64, nsec: i32, version: u8) -> Vec<u8> {
        let mut b = vec![version];
        b.extend_from_slice(&(sec + 62_135_596_800).to_be_bytes());
        b.extend_from_slice(&nsec.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        if version == 2 {
            b.push(0);
        }
        b
    }

    #[test]
    fn go_times() {
        assert_eq!(
            go_time(&go(1_700_000_000, 5, 1)).as_deref(),
            Some("2023-11-14T22:13:20.000000005Z")
        );
        assert_eq!(
            go_time(&go(0, 0, 2)).as_deref(),
            Some("1970-01-01T00:00:00.000000000Z")
        );
        assert_eq!(go_time(&[]), None);
        assert_eq!(go_time(&go(0, 0, 1)[..10]), None);
        assert_eq!(go_time(&go(0, 1_000_000_000, 1)), None);
        assert_eq!(go_time(&go(i64::MAX - 62_135_596_800, 0, 1)), None);
        let mut zero = vec![1u8];
        zero.extend_from_slice(&[0u8; 14]);
        assert_eq!(
            go_time(&zero).as_deref(),
            Some("0001-01-01T00:00:00.000000000Z")
        );
    }

    #[test]
    fn varints() {
        assert_eq!(uvarint(&[0x05]), Some(5));
        assert_eq!(uvarint(&[0xac, 0x02]), Some(300));
        assert_eq!(uvarint(&[0x80]), None);
        assert_eq!(uvarint(&[]), None);
        assert_eq!(uvarint(&[0xff; 11]), None);
        assert_eq!(varint(&[0x03]), Some(-2));
        assert_eq!(varint(&[0x04]), Some(2));
    }

    #[test]
    fn protobuf_any() {
        // type_url "t", value "{}"
        let any = [0x0a, 1, b't', 0x12, 2, b'{', b'}'];
        assert_eq!(any_value(&any), Some(&b"{}"[..]));
        assert_eq!(any_value(&[0x12, 5, b'x']), None);
        assert_eq!(any_value(&[0x0a, 1, b't']), None);
        assert_eq!(any_value(&[0x0b]), None);
        assert_eq!(any_value(&[0xff; 12]), None);
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        let want = hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()));
        assert_eq!(c[1], format!("sha256:{want}"));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn digests() {
        assert!(sha256_hex(&format!("sha256:{}", "0".repeat(64))).is_some());
        assert!(sha256_hex(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(sha256_hex("sha256:../../etc").is_none());
        assert!(sha256_hex(&"0".repeat(64)).is_none());
    }
}
