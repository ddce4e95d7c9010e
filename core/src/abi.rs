//! The FFI form of the driver contract (abi_stable).
//!
//! This file and `loader.rs` are the only places that know abi_stable: a
//! change of ABI crate touches these two files. Everything crossing the
//! boundary is data; every exported function runs under `catch_unwind`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use abi_stable::library::RootModule;
use abi_stable::package_version_strings;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use abi_stable::StableAbi;

use crate::driver::{
    Catalog, CatalogLayer, Confidence, Driver, DriverError, DriverInfo, ErrorKind, Extent,
    LayerEntry, LayerPath, LayerSource, WhiteoutStyle,
};

/// The plugin's root module. Its layout is fixed for a driver ABI version:
/// new calls go through `call`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = DriverModRef)))]
#[sabi(missing_field(panic))]
pub struct DriverMod {
    pub info: extern "C" fn() -> RResult<FfiDriverInfo, FfiError>,
    pub detect: extern "C" fn(root: RSlice<'_, u8>) -> RResult<u8, FfiError>,
    pub layer:
        extern "C" fn(root: RSlice<'_, u8>, id: RStr<'_>) -> RResult<FfiLayerSource, FfiError>,
    pub layers: extern "C" fn(root: RSlice<'_, u8>) -> RResult<RVec<FfiLayerEntry>, FfiError>,
    #[sabi(last_prefix_field)]
    /// Every later call, by method name with JSON in and out, so that new
    /// calls never change this layout (abi_stable refuses a plugin whose
    /// root module has fewer fields than the host's). A plugin answers an
    /// unknown method with `ErrorKind::Unsupported`.
    pub call: extern "C" fn(
        root: RSlice<'_, u8>,
        method: RStr<'_>,
        arg: RStr<'_>,
    ) -> RResult<RString, FfiError>,
}

impl RootModule for DriverModRef {
    abi_stable::declare_root_module_statics! {DriverModRef}
    const BASE_NAME: &'static str = "docker_mount_driver";
    const NAME: &'static str = "docker_mount_driver";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiDriverInfo {
    name: RString,
    version: RString,
    abi_version: u32,
    summary: RString,
    features: RVec<RString>,
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiError {
    kind: u32,
    message: RString,
    /// Empty when the error names no file.
    path: RVec<u8>,
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiExtent {
    offset: u64,
    len: u64,
    file: RVec<u8>,
    file_offset: u64,
}

/// A tagged layer description. `kind` values are never reused, so a host
/// that meets an unknown one reports it instead of misreading it.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiLayerSource {
    kind: u32,
    dir: RVec<u8>,
    whiteouts: u32,
    parent_ids: RVec<RString>,
    fs: RString,
    size: u64,
    extents: RVec<FfiExtent>,
}

#[repr(C)]
#[derive(StableAbi)]
pub struct FfiLayerEntry {
    id: RString,
    path: RVec<u8>,
}

const KIND_DIFF: u32 = 0;
const KIND_FULL: u32 = 1;
const KIND_BLOCK_IMAGE: u32 = 2;
/// A dataset: `fs` holds its name, `parent_ids` its parents. Added
/// without an ABI bump: the layout is unchanged, plugins built before
/// never return it, and an older host reports it as an unknown kind.
const KIND_DATASET: u32 = 3;

fn path_to_ffi(p: &Path) -> RVec<u8> {
    p.as_os_str().as_bytes().into()
}

fn path_from_ffi(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

fn strings_to_ffi(v: &[String]) -> RVec<RString> {
    v.iter().map(|s| RString::from(s.as_str())).collect()
}

fn strings_from_ffi(v: &[RString]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl From<DriverError> for FfiError {
    fn from(e: DriverError) -> Self {
        let kind = match e.kind {
            ErrorKind::NotFound => 0,
            ErrorKind::Invalid => 1,
            ErrorKind::Io => 2,
            ErrorKind::Unsupported => 3,
            ErrorKind::Panic => 4,
            ErrorKind::Other => 5,
        };
        FfiError {
            kind,
            message: e.message.into(),
            path: e.path.as_deref().map(path_to_ffi).unwrap_or_default(),
        }
    }
}

impl From<FfiError> for DriverError {
    fn from(e: FfiError) -> Self {
        let kind = match e.kind {
            0 => ErrorKind::NotFound,
            1 => ErrorKind::Invalid,
            2 => ErrorKind::Io,
            3 => ErrorKind::Unsupported,
            4 => ErrorKind::Panic,
            _ => ErrorKind::Other,
        };
        DriverError {
            kind,
            message: e.message.into(),
            path: (!e.path.is_empty()).then(|| path_from_ffi(&e.path)),
        }
    }
}

impl From<DriverInfo> for FfiDriverInfo {
    fn from(i: DriverInfo) -> Self {
        FfiDriverInfo {
            name: i.name.into(),
            version: i.version.into(),
            abi_version: i.abi_version,
            summary: i.summary.into(),
            features: strings_to_ffi(&i.features),
        }
    }
}

impl From<FfiDriverInfo> for DriverInfo {
    fn from(i: FfiDriverInfo) -> Self {
        DriverInfo {
            name: i.name.into(),
            version: i.version.into(),
            abi_version: i.abi_version,
            summary: i.summary.into(),
            features: strings_from_ffi(&i.features),
        }
    }
}

impl From<LayerSource> for FfiLayerSource {
    fn from(s: LayerSource) -> Self {
        let mut out = FfiLayerSource {
            kind: KIND_FULL,
            dir: RVec::new(),
            whiteouts: 0,
            parent_ids: RVec::new(),
            fs: RString::new(),
            size: 0,
            extents: RVec::new(),
        };
        match s {
            LayerSource::Diff {
                dir,
                whiteouts,
                parent_ids,
            } => {
                out.kind = KIND_DIFF;
                out.dir = path_to_ffi(&dir);
                out.whiteouts = match whiteouts {
                    WhiteoutStyle::Overlay => 0,
                    WhiteoutStyle::Aufs => 1,
                };
                out.parent_ids = strings_to_ffi(&parent_ids);
            }
            LayerSource::Full { dir } => out.dir = path_to_ffi(&dir),
            LayerSource::BlockImage { fs, size, extents } => {
                out.kind = KIND_BLOCK_IMAGE;
                out.fs = fs.into();
                out.size = size;
                out.extents = extents
                    .into_iter()
                    .map(|e| FfiExtent {
                        offset: e.offset,
                        len: e.len,
                        file: path_to_ffi(&e.file),
                        file_offset: e.file_offset,
                    })
                    .collect();
            }
            LayerSource::Dataset { name, parent_ids } => {
                out.kind = KIND_DATASET;
                out.fs = name.into();
                out.parent_ids = strings_to_ffi(&parent_ids);
            }
        }
        out
    }
}

impl TryFrom<FfiLayerSource> for LayerSource {
    type Error = DriverError;
    fn try_from(s: FfiLayerSource) -> Result<Self, DriverError> {
        Ok(match s.kind {
            KIND_DIFF => LayerSource::Diff {
                dir: path_from_ffi(&s.dir),
                whiteouts: match s.whiteouts {
                    0 => WhiteoutStyle::Overlay,
                    1 => WhiteoutStyle::Aufs,
                    n => return Err(unsupported(format!("whiteout style {n}"))),
                },
                parent_ids: strings_from_ffi(&s.parent_ids),
            },
            KIND_FULL => LayerSource::Full {
                dir: path_from_ffi(&s.dir),
            },
            KIND_BLOCK_IMAGE => LayerSource::BlockImage {
                fs: s.fs.into(),
                size: s.size,
                extents: s
                    .extents
                    .iter()
                    .map(|e| Extent {
                        offset: e.offset,
                        len: e.len,
                        file: path_from_ffi(&e.file),
                        file_offset: e.file_offset,
                    })
                    .collect(),
            },
            KIND_DATASET => LayerSource::Dataset {
                name: s.fs.into(),
                parent_ids: strings_from_ffi(&s.parent_ids),
            },
            n => return Err(unsupported(format!("layer kind {n}"))),
        })
    }
}

fn unsupported(what: String) -> DriverError {
    DriverError::new(
        ErrorKind::Unsupported,
        format!("the driver returned {what}, unknown to this docker-mount; upgrade docker-mount"),
        None,
    )
}

/// Runs `f`, turning a panic into an error so it never unwinds across FFI.
fn guarded<T>(f: impl FnOnce() -> Result<T, DriverError>) -> RResult<T, FfiError> {
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(DriverError::new(
            ErrorKind::Panic,
            format!("driver panicked: {what}"),
            None,
        ))
    });
    result.map_err(FfiError::from).into()
}

extern "C" fn ffi_info<D: Driver>() -> RResult<FfiDriverInfo, FfiError> {
    guarded(|| Ok(D::default().info().into()))
}

extern "C" fn ffi_detect<D: Driver>(root: RSlice<'_, u8>) -> RResult<u8, FfiError> {
    guarded(|| Ok(D::default().detect(&path_from_ffi(&root)).0.min(100)))
}

extern "C" fn ffi_layer<D: Driver>(
    root: RSlice<'_, u8>,
    id: RStr<'_>,
) -> RResult<FfiLayerSource, FfiError> {
    guarded(|| {
        D::default()
            .layer(&path_from_ffi(&root), id.as_str())
            .map(Into::into)
    })
}

extern "C" fn ffi_layers<D: Driver>(
    root: RSlice<'_, u8>,
) -> RResult<RVec<FfiLayerEntry>, FfiError> {
    guarded(|| {
        Ok(D::default()
            .layers(&path_from_ffi(&root))?
            .into_iter()
            .map(|e| FfiLayerEntry {
                id: e.id.into(),
                path: path_to_ffi(&e.path),
            })
            .collect())
    })
}

/// Structured data that crosses the boundary as JSON (catalogs are large,
/// nested and grow new fields; JSON keeps old and new sides compatible).
fn to_json<T: serde::Serialize>(v: &T) -> Result<RString, DriverError> {
    serde_json::to_string(v)
        .map(RString::from)
        .map_err(|e| DriverError::new(ErrorKind::Other, format!("cannot encode: {e}"), None))
}

fn from_json<T: serde::de::DeserializeOwned>(
    r: RResult<RString, FfiError>,
) -> Result<T, DriverError> {
    let text = Result::from(r).map_err(DriverError::from)?;
    serde_json::from_str(&text).map_err(|e| {
        DriverError::new(
            ErrorKind::Invalid,
            format!("the driver returned data this docker-mount cannot read: {e}"),
            None,
        )
    })
}

/// The methods of `call`.
const METHOD_CATALOG: &str = "catalog";
const METHOD_CONTAINER_LAYERS: &str = "container_layers";
const METHOD_HOST_ROOTS: &str = "host_roots";
const METHOD_LAYER_PATHS: &str = "layer_paths";
const METHOD_DATASET_LAYERS: &str = "dataset_layers";

extern "C" fn ffi_call<D: Driver>(
    root: RSlice<'_, u8>,
    method: RStr<'_>,
    arg: RStr<'_>,
) -> RResult<RString, FfiError> {
    guarded(|| {
        let root = path_from_ffi(&root);
        match method.as_str() {
            METHOD_CATALOG => to_json(&D::default().catalog(&root)?),
            METHOD_HOST_ROOTS => to_json(&D::default().host_roots()),
            METHOD_LAYER_PATHS => to_json(&D::default().layer_paths(&root)?),
            METHOD_CONTAINER_LAYERS => {
                to_json(&D::default().container_layers(&root, arg.as_str())?)
            }
            METHOD_DATASET_LAYERS => {
                let names: Vec<String> = serde_json::from_str(arg.as_str()).map_err(|e| {
                    DriverError::new(ErrorKind::Invalid, format!("dataset names: {e}"), None)
                })?;
                to_json(&D::default().dataset_layers(&root, &names)?)
            }
            other => Err(DriverError::new(
                ErrorKind::Unsupported,
                format!("this driver has no {other:?} call; upgrade the plugin"),
                None,
            )),
        }
    })
}

/// Builds the root module of driver `D`. Used by [`export_driver!`](crate::export_driver).
pub fn module_for<D: Driver>() -> DriverModRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    DriverMod {
        info: ffi_info::<D>,
        detect: ffi_detect::<D>,
        layer: ffi_layer::<D>,
        layers: ffi_layers::<D>,
        call: ffi_call::<D>,
    }
    .leak_into_prefix()
}

/// Host-side calls into a loaded module, back in plain Rust types.
pub(crate) fn call_info(m: DriverModRef) -> Result<DriverInfo, DriverError> {
    let r: Result<_, _> = (m.info())().into();
    r.map(Into::into).map_err(Into::into)
}

pub(crate) fn call_detect(m: DriverModRef, root: &Path) -> Result<Confidence, DriverError> {
    let r: Result<_, _> = (m.detect())(root.as_os_str().as_bytes().into()).into();
    r.map(Confidence).map_err(Into::into)
}

pub(crate) fn call_layer(
    m: DriverModRef,
    root: &Path,
    id: &str,
) -> Result<LayerSource, DriverError> {
    let r: Result<FfiLayerSource, FfiError> =
        (m.layer())(root.as_os_str().as_bytes().into(), id.into()).into();
    r.map_err(DriverError::from)?.try_into()
}

pub(crate) fn call_layers(m: DriverModRef, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
    let r: Result<RVec<FfiLayerEntry>, FfiError> =
        (m.layers())(root.as_os_str().as_bytes().into()).into();
    Ok(r.map_err(DriverError::from)?
        .iter()
        .map(|e| LayerEntry {
            id: e.id.to_string(),
            path: path_from_ffi(&e.path),
        })
        .collect())
}

fn call(m: DriverModRef, root: &Path, method: &str, arg: &str) -> RResult<RString, FfiError> {
    (m.call())(
        root.as_os_str().as_bytes().into(),
        method.into(),
        arg.into(),
    )
}

pub(crate) fn call_catalog(m: DriverModRef, root: &Path) -> Result<Catalog, DriverError> {
    from_json(call(m, root, METHOD_CATALOG, ""))
}

pub(crate) fn call_host_roots(m: DriverModRef) -> Result<Vec<String>, DriverError> {
    from_json(call(m, Path::new("/"), METHOD_HOST_ROOTS, ""))
}

pub(crate) fn call_layer_paths(
    m: DriverModRef,
    root: &Path,
) -> Result<Vec<LayerPath>, DriverError> {
    from_json(call(m, root, METHOD_LAYER_PATHS, ""))
}

pub(crate) fn call_container_layers(
    m: DriverModRef,
    root: &Path,
    id: &str,
) -> Result<Vec<CatalogLayer>, DriverError> {
    from_json(call(m, root, METHOD_CONTAINER_LAYERS, id))
}

pub(crate) fn call_dataset_layers(
    m: DriverModRef,
    root: &Path,
    datasets: &[String],
) -> Result<Vec<String>, DriverError> {
    from_json(call(m, root, METHOD_DATASET_LAYERS, &to_json(&datasets)?))
}

/// Re-exports the export macro needs, so driver crates don't depend on abi_stable.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
    };
    /// Must equal `abi_stable::library::ROOT_MODULE_LOADER_NAME` (checked by a test).
    pub const LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";
}

/// Exports a [`Driver`](crate::driver::Driver) type as a docker-mount plugin:
/// `docker_mount_core::export_driver!(MyDriver);` in the driver's `lib.rs`.
#[macro_export]
macro_rules! export_driver {
    ($driver:ty) => {
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static DOCKER_MOUNT_DRIVER_HEADER: $crate::abi::__private::LibHeader = {
            extern "C" fn erased_module() -> $crate::abi::__private::RootModuleResult {
                $crate::abi::__private::__call_root_module_loader(
                    $crate::abi::module_for::<$driver>,
                )
            }
            // SAFETY: the constructor returns the module type named here.
            unsafe {
                $crate::abi::__private::LibHeader::from_constructor::<$crate::abi::DriverModRef>(
                    erased_module,
                    $crate::abi::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_symbol_matches_abi_stable() {
        assert_eq!(
            __private::LOADER_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn layer_source_round_trips() {
        let src = LayerSource::Diff {
            dir: PathBuf::from("/r/overlay2/x/diff"),
            whiteouts: WhiteoutStyle::Aufs,
            parent_ids: vec!["a".into(), "b".into()],
        };
        let back: LayerSource = FfiLayerSource::from(src.clone()).try_into().unwrap();
        assert_eq!(back, src);
        let img = LayerSource::BlockImage {
            fs: "xfs".into(),
            size: 10,
            extents: vec![Extent {
                offset: 1,
                len: 2,
                file: "/d".into(),
                file_offset: 3,
            }],
        };
        let back: LayerSource = FfiLayerSource::from(img.clone()).try_into().unwrap();
        assert_eq!(back, img);
        let ds = LayerSource::Dataset {
            name: "abc-init".into(),
            parent_ids: vec!["def".into()],
        };
        let back: LayerSource = FfiLayerSource::from(ds.clone()).try_into().unwrap();
        assert_eq!(back, ds);
    }
}
