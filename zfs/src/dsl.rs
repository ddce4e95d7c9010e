//! The DSL: the MOS object directory, DSL directories (children,
//! properties, origins) and datasets (heads and snapshots), walked with
//! cycle checks and bounds into what `zfs list -t all` shows.

use std::collections::{BTreeMap, HashSet};

use crate::bp::BlockPtr;
use crate::compress;
use crate::dnode::{Dnode, Objset};
use crate::error::{Error, Result, ResultExt};
use crate::limits::{MAX_DATASETS, MAX_DATASET_DEPTH};
use crate::pool::{DatasetInfo, DatasetKind, PoolInner, Spa};
use crate::zap;

/// The MOS object directory.
const OBJECT_DIRECTORY: u64 = 1;
/// The dsl_dir ZAP field naming an encrypted dataset's key object.
const CRYPTO_KEY_OBJ: &[u8] = b"com.datto:crypto_key_obj";

fn le64(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

/// The fields of a DSL directory's bonus this reader uses.
#[derive(Debug, Clone)]
pub struct DirPhys {
    pub used_bytes: u64,
    pub head_dataset: u64,
    pub parent: u64,
    pub origin: u64,
    pub child_dir_zap: u64,
    pub props_zap: u64,
}

/// The fields of a DSL dataset's bonus this reader uses.
#[derive(Debug, Clone)]
pub struct DatasetPhys {
    pub dir: u64,
    pub prev_snap: u64,
    pub snapnames_zap: u64,
    pub creation_time: u64,
    pub creation_txg: u64,
    pub referenced: u64,
    pub unique: u64,
    pub guid: u64,
    pub bp: BlockPtr,
}

fn bonus(d: &Dnode, min: usize, what: &str) -> Result<Vec<u8>> {
    if d.bonus.len() < min {
        return Err(Error::corrupt(
            what.to_string(),
            format!("bonus of {} bytes (want {min})", d.bonus.len()),
        ));
    }
    Ok(d.bonus.clone())
}

/// DSL directory `obj`.
pub fn dir(spa: &Spa, mos: &Objset, obj: u64) -> Result<(Dnode, DirPhys)> {
    let what = format!("DSL directory {obj}");
    let d = mos.dnode(spa, obj).ctx(|| what.clone())?;
    let b = bonus(&d, 88, &what)?;
    let p = DirPhys {
        used_bytes: le64(&b, 40),
        head_dataset: le64(&b, 8),
        parent: le64(&b, 16),
        origin: le64(&b, 24),
        child_dir_zap: le64(&b, 32),
        props_zap: le64(&b, 80),
    };
    Ok((d, p))
}

/// DSL dataset `obj`.
pub fn dataset(spa: &Spa, mos: &Objset, obj: u64) -> Result<DatasetPhys> {
    let what = format!("DSL dataset {obj}");
    let d = mos.dnode(spa, obj).ctx(|| what.clone())?;
    let b = bonus(&d, 256, &what)?;
    Ok(DatasetPhys {
        dir: le64(&b, 0),
        prev_snap: le64(&b, 8),
        snapnames_zap: le64(&b, 32),
        creation_time: le64(&b, 48),
        creation_txg: le64(&b, 56),
        referenced: le64(&b, 72),
        unique: le64(&b, 96),
        guid: le64(&b, 112),
        bp: BlockPtr::parse(&b[128..256]).ctx(|| what.clone())?,
    })
}

/// The entries of the MOS ZAP object `obj`.
fn zap_of(spa: &Spa, mos: &Objset, obj: u64) -> Result<Vec<zap::Entry>> {
    let d = mos.dnode(spa, obj)?;
    zap::list(spa, &d).ctx(|| format!("ZAP object {obj}"))
}

/// Properties set locally on a directory.
type Props = BTreeMap<Vec<u8>, zap::Entry>;

/// A directory being walked: its name, properties inherited so far.
struct Walk<'a> {
    spa: &'a Spa,
    mos: &'a Objset,
    out: Vec<DatasetInfo>,
    seen: HashSet<u64>,
    /// Dataset object → name, for origins.
    names: BTreeMap<u64, String>,
    /// Directory object of each clone → its origin dataset object.
    origins: Vec<(usize, u64)>,
}

/// Effective properties passed down the tree.
#[derive(Clone)]
struct Inherited {
    mountpoint: String,
    compression: u64,
    xattr: u64,
}

/// Every dataset of the pool, sorted by name.
pub(crate) fn datasets(p: &PoolInner) -> Result<Vec<DatasetInfo>> {
    let (spa, mos) = (&p.spa, &p.mos);
    let root = zap_of(spa, mos, OBJECT_DIRECTORY)
        .ctx(|| "MOS object directory")?
        .into_iter()
        .find(|e| e.name == b"root_dataset")
        .and_then(|e| e.u64())
        .ok_or_else(|| Error::not_found("MOS object directory: root_dataset"))?;
    let mut w = Walk {
        spa,
        mos,
        out: Vec::new(),
        seen: HashSet::new(),
        names: BTreeMap::new(),
        origins: Vec::new(),
    };
    let inherit = Inherited {
        mountpoint: format!("/{}", spa.name),
        compression: 1,
        xattr: 2,
    };
    w.dir(root, spa.name.clone(), &inherit, 0, true)?;
    for (i, origin) in std::mem::take(&mut w.origins) {
        if let Some(n) = w.names.get(&origin) {
            if !n.contains('$') {
                w.out[i].origin = Some(n.clone());
            }
        }
    }
    let mut out = w.out;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl Walk<'_> {
    fn dir(
        &mut self,
        obj: u64,
        name: String,
        parent: &Inherited,
        depth: usize,
        is_root: bool,
    ) -> Result<()> {
        if depth > MAX_DATASET_DEPTH {
            return Err(Error::limit(
                format!("{name}: nesting"),
                MAX_DATASET_DEPTH as u64,
            ));
        }
        if !self.seen.insert(obj) {
            return Err(Error::corrupt(
                name,
                format!("directory {obj} seen twice (a cycle)"),
            ));
        }
        if self.out.len() > MAX_DATASETS {
            return Err(Error::limit("datasets", MAX_DATASETS as u64));
        }
        let (spa, mos) = (self.spa, self.mos);
        let (dn, dp) = dir(spa, mos, obj).ctx(|| name.clone())?;
        let props: Props = if dp.props_zap != 0 {
            zap_of(spa, mos, dp.props_zap)
                .ctx(|| format!("{name}: properties"))?
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect()
        } else {
            Props::new()
        };
        let mut eff = parent.clone();
        if !is_root && !matches!(parent.mountpoint.as_str(), "none" | "legacy") {
            let leaf = name.rsplit('/').next().unwrap_or("");
            eff.mountpoint = if parent.mountpoint == "/" {
                format!("/{leaf}")
            } else {
                format!("{}/{leaf}", parent.mountpoint)
            };
        }
        if let Some(e) = props.get(&b"mountpoint"[..]) {
            eff.mountpoint = String::from_utf8_lossy(&e.string()).into_owned();
        }
        if let Some(v) = props.get(&b"compression"[..]).and_then(|e| e.u64()) {
            eff.compression = v;
        }
        if let Some(v) = props.get(&b"xattr"[..]).and_then(|e| e.u64()) {
            eff.xattr = v;
        }
        let encrypted = dn.blkptr.first().is_some_and(|b| !b.is_hole())
            && zap::list(spa, &dn)
                .map(|es| es.iter().any(|e| e.name == CRYPTO_KEY_OBJ))
                .unwrap_or(false);
        if dp.head_dataset != 0 {
            self.head(
                dp.head_dataset,
                &name,
                &eff,
                encrypted,
                (dp.origin, dp.used_bytes),
            )?;
        }
        if dp.child_dir_zap != 0 {
            let mut kids =
                zap_of(spa, mos, dp.child_dir_zap).ctx(|| format!("{name}: children"))?;
            kids.sort_by(|a, b| a.name.cmp(&b.name));
            for k in kids {
                if k.name.first().is_some_and(|c| *c == b'$' || *c == b'%') {
                    continue;
                }
                let Some(child) = k.u64() else { continue };
                let cname = format!("{name}/{}", String::from_utf8_lossy(&k.name));
                self.dir(child, cname, &eff, depth + 1, false)?;
            }
        }
        Ok(())
    }

    fn head(
        &mut self,
        obj: u64,
        name: &str,
        eff: &Inherited,
        encrypted: bool,
        (origin, used): (u64, u64),
    ) -> Result<()> {
        let (spa, mos) = (self.spa, self.mos);
        let ds = dataset(spa, mos, obj).ctx(|| name.to_string())?;
        // A damaged object set hides no other dataset: this one is listed
        // (as a filesystem), and opening it fails naming the damage.
        let volume = Objset::read(spa, &ds.bp).is_ok_and(|os| os.typ == 3);
        let info = DatasetInfo {
            name: name.to_string(),
            kind: if volume {
                DatasetKind::Volume
            } else {
                DatasetKind::Filesystem
            },
            origin: None,
            guid: ds.guid,
            createtxg: ds.creation_txg,
            objsetid: obj,
            mountpoint: (!volume).then(|| eff.mountpoint.clone()),
            compression: Some(compress::property_name(eff.compression)),
            xattr: (!volume).then(|| xattr_name(eff.xattr)),
            encrypted,
            creation: ds.creation_time,
            referenced: ds.referenced,
            used,
        };
        self.names.insert(obj, name.to_string());
        if origin != 0 {
            self.origins.push((self.out.len(), origin));
        }
        self.out.push(info);
        if ds.snapnames_zap != 0 {
            let snaps = zap_of(spa, mos, ds.snapnames_zap).ctx(|| format!("{name}: snapshots"))?;
            for s in snaps {
                let Some(sobj) = s.u64() else { continue };
                let sname = format!("{name}@{}", String::from_utf8_lossy(&s.name));
                let sd = dataset(spa, mos, sobj).ctx(|| sname.clone())?;
                self.names.insert(sobj, sname.clone());
                if self.out.len() > MAX_DATASETS {
                    return Err(Error::limit("datasets", MAX_DATASETS as u64));
                }
                self.out.push(DatasetInfo {
                    name: sname,
                    kind: DatasetKind::Snapshot,
                    origin: None,
                    guid: sd.guid,
                    createtxg: sd.creation_txg,
                    objsetid: sobj,
                    mountpoint: None,
                    compression: None,
                    xattr: (!volume).then(|| xattr_name(eff.xattr)),
                    encrypted,
                    creation: sd.creation_time,
                    referenced: sd.referenced,
                    used: sd.unique,
                });
            }
        }
        Ok(())
    }
}

/// The xattr property's name for its value (OpenZFS 2.3 shows SA as "on").
fn xattr_name(v: u64) -> String {
    match v {
        0 => "off",
        1 => "dir",
        2 => "on",
        _ => "unknown",
    }
    .to_string()
}
