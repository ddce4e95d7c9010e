//! Builds synthetic containerd roots for tests: `meta.db`, the overlayfs
//! snapshotter's `metadata.db` and snapshot directories, and content blobs
//! (image configs and manifests), laid out as containerd 1.6 lays them out.
//! The caller fills the snapshot directories.

use std::fs;
use std::path::{Path, PathBuf};

use docker_mount_core::driver_kit::bolt::writer::{Node, Writer};
use sha2::{Digest, Sha256};

use super::meta::{chain_ids, CONTENT_BLOBS, META_DB, SNAPSHOTTER_DB};
use super::SNAPSHOTTER_DIR;

/// Go's `time.Time.MarshalBinary` of a UTC time.
pub fn go_time(unix: i64, nsec: i32) -> Vec<u8> {
    let mut b = vec![1u8];
    b.extend_from_slice(&(unix + 62_135_596_800).to_be_bytes());
    b.extend_from_slice(&nsec.to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b
}

/// Go's `binary.PutUvarint`.
pub fn uvarint(mut v: u64) -> Vec<u8> {
    let mut b = Vec::new();
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
    b
}

fn varint(v: i64) -> Vec<u8> {
    uvarint(((v << 1) ^ (v >> 63)) as u64)
}

/// A protobuf `Any` with `type_url` and `value`.
pub fn any(type_url: &str, value: &[u8]) -> Vec<u8> {
    let mut b = vec![0x0a];
    b.extend(uvarint(type_url.len() as u64));
    b.extend_from_slice(type_url.as_bytes());
    b.push(0x12);
    b.extend(uvarint(value.len() as u64));
    b.extend_from_slice(value);
    b
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A containerd root under construction.
#[derive(Debug)]
pub struct Fixture {
    pub root: PathBuf,
    pub meta: Node,
    pub snapshots: Node,
    next_id: u64,
    next_seq: u64,
    time: i64,
}

/// Snapshot kinds of the snapshotter.
pub const KIND_ACTIVE: u8 = 2;
pub const KIND_COMMITTED: u8 = 3;

impl Fixture {
    pub fn new(root: &Path) -> Fixture {
        let mut meta = Node::bucket();
        meta.child("v1").put("version", uvarint(3));
        Fixture {
            root: root.to_path_buf(),
            meta,
            snapshots: Node::bucket(),
            next_id: 1,
            next_seq: 1,
            time: 1_700_000_000,
        }
    }

    fn now(&mut self) -> Vec<u8> {
        self.time += 1;
        go_time(self.time, 123_456_789)
    }

    /// The directory of snapshot `id`'s files.
    pub fn fs(&self, id: u64) -> PathBuf {
        self.root
            .join(SNAPSHOTTER_DIR)
            .join("snapshots")
            .join(id.to_string())
            .join("fs")
    }

    /// Adds snapshot `key` of namespace `ns` with parent key `parent` (in
    /// the same namespace); returns its snapshotter id (its directory
    /// `fs(id)` exists, empty).
    pub fn snapshot(&mut self, ns: &str, key: &str, parent: Option<&str>, kind: u8) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!("{ns}/{seq}/{key}");
        let parent_name = parent.map(|p| self.backend_name(ns, p));
        let created = self.now();
        let b = self.snapshots.child("v1").child("snapshots").child(&name);
        b.put("id", uvarint(id))
            .put("kind", vec![kind])
            .put("createdat", created.clone())
            .put("updatedat", created.clone());
        if let Some(p) = &parent_name {
            b.put("parent", p.as_bytes());
        }
        let m = self
            .meta
            .child("v1")
            .child(ns)
            .child("snapshots")
            .child("overlayfs")
            .child(key);
        m.put("name", name.as_bytes())
            .put("createdat", created.clone())
            .put("updatedat", created);
        if let Some(p) = parent {
            m.put("parent", p.as_bytes());
            self.meta
                .child("v1")
                .child(ns)
                .child("snapshots")
                .child("overlayfs")
                .child(p)
                .child("children")
                .put(key, Vec::new());
        }
        fs::create_dir_all(self.fs(id)).expect("mkdir snapshot fs");
        fs::create_dir_all(self.fs(id).with_file_name("work")).expect("mkdir snapshot work");
        id
    }

    fn backend_name(&mut self, ns: &str, key: &str) -> String {
        let Node::Bucket(m) = self
            .meta
            .child("v1")
            .child(ns)
            .child("snapshots")
            .child("overlayfs")
            .child(key)
        else {
            unreachable!()
        };
        match m.get(b"name".as_slice()) {
            Some(Node::Data(n)) => String::from_utf8_lossy(n).into_owned(),
            _ => panic!("no snapshot {key} in {ns}"),
        }
    }

    /// Writes `bytes` into the content store; returns its digest.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let p = self
            .root
            .join(CONTENT_BLOBS)
            .join("sha256")
            .join(d.trim_start_matches("sha256:"));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir blobs");
        fs::write(p, bytes).expect("write blob");
        d
    }

    /// Adds image `name` of namespace `ns` with layers of `diff_ids` (base
    /// first), unpacked into snapshots keyed by chain id (committed, made
    /// here unless present); returns (target digest, snapshot ids base first).
    pub fn image(&mut self, ns: &str, name: &str, diff_ids: &[String]) -> (String, Vec<u64>) {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": diff_ids.iter().map(|_| serde_json::json!({"created_by": "fixture"})).collect::<Vec<_>>(),
        });
        let config = serde_json::to_vec(&config).expect("json");
        let config_digest = self.blob(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": diff_ids.iter().map(|d| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 1})).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).expect("json");
        let target = self.blob(&manifest);
        let mut ids = Vec::new();
        let chain = chain_ids(diff_ids);
        for (i, c) in chain.iter().enumerate() {
            let exists = matches!(
                self.meta.child("v1").child(ns).child("snapshots").child("overlayfs"),
                Node::Bucket(m) if m.contains_key(c.as_bytes())
            );
            let id = if exists {
                let name = self.backend_name(ns, c);
                self.id_of(&name)
            } else {
                let parent = i.checked_sub(1).map(|p| chain[p].clone());
                self.snapshot(ns, c, parent.as_deref(), KIND_COMMITTED)
            };
            ids.push(id);
        }
        let created = self.now();
        let size = manifest.len() as i64;
        let img = self.meta.child("v1").child(ns).child("images").child(name);
        img.put("createdat", created.clone())
            .put("updatedat", created);
        img.child("target")
            .put("digest", target.as_bytes())
            .put("mediatype", "application/vnd.oci.image.manifest.v1+json")
            .put("size", varint(size));
        (target, ids)
    }

    /// Labels image `name` of namespace `ns` (made by [`Fixture::image`]).
    pub fn label_image(&mut self, ns: &str, name: &str, labels: &[(&str, &str)]) {
        let l = self
            .meta
            .child("v1")
            .child(ns)
            .child("images")
            .child(name)
            .child("labels");
        for (k, v) in labels {
            l.put(k, v.as_bytes());
        }
    }

    /// Records `size` bytes as the usage of snapshot `key` of `ns`, as
    /// the snapshotter does when it commits one.
    pub fn set_usage(&mut self, ns: &str, key: &str, size: i64) {
        let name = self.backend_name(ns, key);
        self.snapshots
            .child("v1")
            .child("snapshots")
            .child(&name)
            .put("size", varint(size));
    }

    fn id_of(&mut self, name: &str) -> u64 {
        let b = self.snapshots.child("v1").child("snapshots").child(name);
        let Node::Bucket(m) = b else { unreachable!() };
        match m.get(b"id".as_slice()) {
            Some(Node::Data(d)) => super::meta::uvarint(d).expect("id"),
            _ => panic!("snapshot {name} has no id"),
        }
    }

    /// Adds container `id` of namespace `ns` (snapshotter overlayfs) whose
    /// snapshot key is `key`, running `args`.
    pub fn container(
        &mut self,
        ns: &str,
        id: &str,
        image: &str,
        key: &str,
        args: &[&str],
        labels: &[(&str, &str)],
    ) {
        let spec = serde_json::json!({"ociVersion": "1.0.2", "process": {"args": args, "cwd": "/"}, "root": {"path": "rootfs"}});
        let spec = any(
            "types.containerd.io/opencontainers/runtime-spec/1/Spec",
            &serde_json::to_vec(&spec).expect("json"),
        );
        let created = self.now();
        let c = self
            .meta
            .child("v1")
            .child(ns)
            .child("containers")
            .child(id);
        c.put("image", image)
            .put("snapshotter", "overlayfs")
            .put("snapshotKey", key)
            .put("spec", spec)
            .put("createdat", created.clone())
            .put("updatedat", created);
        c.child("runtime").put("name", "io.containerd.runc.v2");
        let l = c.child("labels");
        for (k, v) in labels {
            l.put(k, *v);
        }
    }

    /// Writes both bolt files.
    pub fn write(&self) {
        let meta = self.root.join(META_DB);
        fs::create_dir_all(meta.parent().expect("parent")).expect("mkdir metadata");
        fs::write(&meta, Writer::default().write(&self.meta)).expect("write meta.db");
        let snap = self.root.join(SNAPSHOTTER_DIR).join(SNAPSHOTTER_DB);
        fs::create_dir_all(snap.parent().expect("parent")).expect("mkdir snapshotter");
        fs::write(&snap, Writer::default().write(&self.snapshots)).expect("write metadata.db");
    }
}
