//! Finds and loads driver plugins from trusted directories.
//!
//! Each `*.so` is loaded as its own module (`lib_header_from_path`, never
//! abi_stable's per-type cache), its `abi_version` checked, and every
//! failure kept per file so that `docker-mount drivers` can show it while
//! the good drivers keep working.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use serde::Serialize;

use crate::abi::{self, DriverModRef};
use crate::driver::{
    Catalog, CatalogLayer, Confidence, Driver, DriverError, DriverInfo, LayerEntry, LayerPath,
    LayerSource, ABI_VERSION,
};

/// A driver ready to be called.
#[derive(Clone)]
pub struct LoadedDriver {
    pub info: DriverInfo,
    /// The plugin file, or `None` for a driver linked into the binary.
    pub file: Option<PathBuf>,
    module: DriverModRef,
}

impl std::fmt::Debug for LoadedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedDriver")
            .field("info", &self.info)
            .field("file", &self.file)
            .finish()
    }
}

impl LoadedDriver {
    pub fn name(&self) -> &str {
        &self.info.name
    }
    pub fn detect(&self, root: &Path) -> Result<Confidence, DriverError> {
        abi::call_detect(self.module, root)
    }
    pub fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        abi::call_layer(self.module, root, id)
    }
    pub fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        abi::call_layers(self.module, root)
    }
    pub fn catalog(&self, root: &Path) -> Result<Catalog, DriverError> {
        abi::call_catalog(self.module, root)
    }
    pub fn container_layers(
        &self,
        root: &Path,
        id: &str,
    ) -> Result<Vec<CatalogLayer>, DriverError> {
        abi::call_container_layers(self.module, root, id)
    }
    /// Other names of the driver's layers on disk (see
    /// [`Driver::layer_paths`]); none from a plugin without the call.
    pub fn layer_paths(&self, root: &Path) -> Result<Vec<LayerPath>, DriverError> {
        match abi::call_layer_paths(self.module, root) {
            Err(e) if e.kind == crate::driver::ErrorKind::Unsupported => Ok(Vec::new()),
            r => r,
        }
    }
    /// Which of `datasets` are the driver's layers (see
    /// [`Driver::dataset_layers`]); none from a plugin without the call.
    pub fn dataset_layers(
        &self,
        root: &Path,
        datasets: &[String],
    ) -> Result<Vec<String>, DriverError> {
        match abi::call_dataset_layers(self.module, root, datasets) {
            Err(e) if e.kind == crate::driver::ErrorKind::Unsupported => Ok(Vec::new()),
            r => r,
        }
    }
    /// Where the engine's root lies on a host (see [`Driver::host_roots`]).
    pub fn host_roots(&self) -> Vec<String> {
        abi::call_host_roots(self.module).unwrap_or_default()
    }
    /// Whether the driver declares `feature` in its info.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.info.features.iter().any(|f| f == feature)
    }
}

/// A plugin file that could not be used, and why.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PluginFailure {
    pub file: PathBuf,
    pub error: String,
}

/// Every driver available to this run.
#[derive(Debug, Default, Clone)]
pub struct Drivers {
    pub loaded: Vec<LoadedDriver>,
    pub failed: Vec<PluginFailure>,
}

impl Drivers {
    /// Loads every `*.so` in each directory, in name order; directories that
    /// do not exist are skipped silently (an install may have no plugins).
    pub fn load_dirs<P: AsRef<Path>>(dirs: &[P]) -> Drivers {
        let mut drivers = Drivers::default();
        for dir in dirs {
            let dir = dir.as_ref();
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "so"))
                .collect();
            files.sort();
            // Cold, each plugin would be paged in on its own, one fault after
            // another: ask for all of them at once first.
            for file in &files {
                prefetch(file);
            }
            for file in files {
                match load_plugin(&file) {
                    Ok(d) => drivers.add(d),
                    Err(error) => drivers.failed.push(PluginFailure { file, error }),
                }
            }
        }
        drivers
    }

    /// Adds a driver linked into this binary (tests, single-binary builds).
    pub fn add_static<D: Driver>(&mut self) {
        let module = abi::module_for::<D>();
        match abi::call_info(module) {
            Ok(info) => self.add(LoadedDriver {
                info,
                file: None,
                module,
            }),
            Err(e) => self.failed.push(PluginFailure {
                file: PathBuf::from("<built-in>"),
                error: e.to_string(),
            }),
        }
    }

    fn add(&mut self, d: LoadedDriver) {
        if let Some(first) = self.by_name(d.name()) {
            let first = first.file.clone().unwrap_or_else(|| "<built-in>".into());
            self.failed.push(PluginFailure {
                file: d.file.clone().unwrap_or_else(|| "<built-in>".into()),
                error: format!(
                    "driver {:?} is already provided by {}",
                    d.name(),
                    first.display()
                ),
            });
        } else {
            self.loaded.push(d);
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&LoadedDriver> {
        self.loaded.iter().find(|d| d.info.name == name)
    }
}

/// Asks the kernel to start reading `file` into the page cache (a hint;
/// nothing waits for it, and a failure changes nothing).
fn prefetch(file: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(file) {
        // SAFETY: plain fadvise on a descriptor we own.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
    }
}

fn load_plugin(file: &Path) -> Result<LoadedDriver, String> {
    let header = lib_header_from_path(file).map_err(describe)?;
    let module = header
        .init_root_module::<DriverModRef>()
        .map_err(describe)?;
    let info = abi::call_info(module).map_err(|e| format!("info() failed: {e}"))?;
    if info.abi_version != ABI_VERSION {
        return Err(format!(
            "driver {:?} speaks driver ABI {}, this docker-mount speaks {}; rebuild the plugin against this version",
            info.name, info.abi_version, ABI_VERSION
        ));
    }
    Ok(LoadedDriver {
        info,
        file: Some(file.to_path_buf()),
        module,
    })
}

/// abi_stable's messages span lines; keep each failure on one line.
fn describe(e: LibraryError) -> String {
    let text = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match e {
        LibraryError::OpenError { .. } | LibraryError::GetSymbolError { .. } => {
            format!("not a docker-mount driver plugin: {text}")
        }
        // abi_stable's dump of both layouts is for developers.
        LibraryError::AbiInstability(_) => {
            tracing::debug!("plugin layout mismatch: {text}");
            format!(
                "built for another driver ABI than this docker-mount's ({ABI_VERSION}); rebuild the plugin against this version"
            )
        }
        _ => text,
    }
}
