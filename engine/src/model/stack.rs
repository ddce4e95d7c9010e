//! Resolves a container or an image to its ordered layers (top first)
//! through layerdb and the driver's description of each layer.

use std::path::Path;

use serde::Serialize;

use crate::model::container::Container;
use crate::model::detect;
use crate::model::image::Image;
use crate::model::layerdb::{self, LayerDb};
use crate::model::legacy;
use crate::model::root::DockerRoot;
use docker_mount_core::driver::{CatalogLayer, ErrorKind, LayerSource};
use docker_mount_core::error::{Error, Result};
use docker_mount_core::loader::{Drivers, LoadedDriver};

pub use docker_mount_core::driver::Role;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StackLayer {
    pub role: Role,
    /// The driver's id (cache-id, mount-id, init-id).
    pub driver_id: String,
    pub chain_id: Option<String>,
    pub diff_id: Option<String>,
    pub size: Option<u64>,
    pub source: LayerSource,
}

/// A container's or image's layers, top first, with the driver that holds them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Stack {
    pub driver: String,
    pub layers: Vec<StackLayer>,
    /// Inconsistencies that did not stop the resolution.
    pub warnings: Vec<String>,
}

fn describe(root: &DockerRoot, driver: &LoadedDriver, id: &str) -> Result<LayerSource> {
    let source = driver.layer(root.path(), id)?;
    if let Some(dir) = source.dir() {
        if root.locate(dir).is_err() {
            return Err(Error::invalid(
                dir,
                format!(
                    "driver {} placed layer {id} outside the docker root",
                    driver.name()
                ),
            ));
        }
    }
    Ok(source)
}

/// The image layers from `top` down, with chain-id mismatches added to `warnings`.
fn image_layers(
    root: &DockerRoot,
    driver: &LoadedDriver,
    db: &LayerDb,
    top: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<StackLayer>> {
    let chain = db.chain(top)?;
    warnings.extend(chain.iter().filter_map(|rec| rec.link.chain_problem()));
    chain
        .into_iter()
        .map(|rec| {
            Ok(StackLayer {
                role: Role::Image,
                driver_id: rec.cache_id.clone(),
                chain_id: Some(rec.link.chain_id.clone()),
                diff_id: Some(rec.link.diff_id.clone()),
                size: rec.link.size,
                source: describe(root, driver, &rec.cache_id)?,
            })
        })
        .collect()
}

/// Compares the driver's own parent list of the top layer with the stack
/// layerdb gave: a mismatch means the metadata was edited or is corrupt.
fn cross_check(stack: &mut Stack) {
    let Some((top, below)) = stack.layers.split_first() else {
        return;
    };
    // A dataset alone (an orphan's) is a whole tree: nothing to compare.
    if below.is_empty() && matches!(top.source, LayerSource::Dataset { .. }) {
        return;
    }
    if let LayerSource::Diff { parent_ids, .. } | LayerSource::Dataset { parent_ids, .. } =
        &top.source
    {
        let want: Vec<&str> = below.iter().map(|l| l.driver_id.as_str()).collect();
        if !parent_ids.is_empty()
            && parent_ids
                .iter()
                .map(String::as_str)
                .ne(want.iter().copied())
        {
            stack.warnings.push(format!(
                "layer {}: the driver's parent list ({} layers) differs from layerdb's chain ({} layers)",
                top.driver_id,
                parent_ids.len(),
                want.len()
            ));
        }
    }
}

/// The layers of a container: rw, init, then the image's, top first.
pub fn container_stack(root: &DockerRoot, drivers: &Drivers, c: &Container) -> Result<Stack> {
    let name = detect::container_driver_name(root, drivers, c).ok_or_else(|| {
        Error::invalid(
            &c.config_path,
            "names no storage driver and no loaded driver recognises the root",
        )
    })?;
    let driver = detect::require(drivers, &name)?;
    if c.legacy {
        return legacy_container_stack(root, driver, c, name);
    }
    if let Some(record) = &c.catalog {
        return catalog_stack(root, driver, &record.layers, Some(&c.config_path));
    }
    let mount = match layerdb::read_mount(root.dir(), &name, &c.id) {
        Ok(m) => m,
        // Engines such as the containerd image store keep the layers of
        // docker's containers themselves.
        Err(e) => match driver.container_layers(root.path(), &c.id) {
            Ok(layers) => return catalog_stack(root, driver, &layers, Some(&c.config_path)),
            Err(d) if d.kind == ErrorKind::Unsupported => return Err(e),
            Err(d) => return Err(d.into()),
        },
    };
    let db = root.layerdb(&name);
    let mut warnings = Vec::new();
    let mut layers = vec![StackLayer {
        role: Role::Rw,
        driver_id: mount.mount_id.clone(),
        chain_id: None,
        diff_id: None,
        size: None,
        source: describe(root, driver, &mount.mount_id)?,
    }];
    if let Some(init) = &mount.init_id {
        layers.push(StackLayer {
            role: Role::Init,
            driver_id: init.clone(),
            chain_id: None,
            diff_id: None,
            size: None,
            source: describe(root, driver, init)?,
        });
    }
    if let Some(parent) = &mount.parent {
        layers.extend(image_layers(root, driver, &db, parent, &mut warnings)?);
    }
    let mut stack = Stack {
        driver: name,
        layers,
        warnings,
    };
    cross_check(&mut stack);
    Ok(stack)
}

/// A stack an engine's catalog describes: its layer ids, top first;
/// `container` is the file of the container it belongs to, if any.
fn catalog_stack(
    root: &DockerRoot,
    driver: &LoadedDriver,
    layers: &[CatalogLayer],
    container: Option<&Path>,
) -> Result<Stack> {
    // An image may have no layers; a container always has its rw layer.
    if let (Some(source), true) = (container, layers.is_empty()) {
        return Err(Error::invalid(
            source,
            format!(
                "the {} driver records no layers for it (its snapshot or layer is missing)",
                driver.name()
            ),
        ));
    }
    let layers = layers
        .iter()
        .map(|l| {
            Ok(StackLayer {
                role: l.role,
                driver_id: l.id.clone(),
                chain_id: None,
                diff_id: None,
                size: None,
                source: describe(root, driver, &l.id)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut stack = Stack {
        driver: driver.name().to_string(),
        layers,
        warnings: Vec::new(),
    };
    cross_check(&mut stack);
    Ok(stack)
}

/// Image layers of a docker < 1.10 root: each image is a layer named by its id.
fn legacy_image_layers(
    root: &DockerRoot,
    driver: &LoadedDriver,
    image_id: &str,
) -> Result<Vec<StackLayer>> {
    legacy::chain(root.dir(), image_id)?
        .into_iter()
        .map(|id| {
            Ok(StackLayer {
                role: Role::Image,
                source: describe(root, driver, &id)?,
                driver_id: id,
                chain_id: None,
                diff_id: None,
                size: None,
            })
        })
        .collect()
}

/// A docker < 1.10 container: layers named `<id>`, `<id>-init`, then its image's.
fn legacy_container_stack(
    root: &DockerRoot,
    driver: &LoadedDriver,
    c: &Container,
    name: String,
) -> Result<Stack> {
    let mut layers = Vec::new();
    for (role, id) in [
        (Role::Rw, c.id.clone()),
        (Role::Init, format!("{}-init", c.id)),
    ] {
        match describe(root, driver, &id) {
            Ok(source) => layers.push(StackLayer {
                role,
                driver_id: id,
                chain_id: None,
                diff_id: None,
                size: None,
                source,
            }),
            // Very old containers have no init layer.
            Err(_) if role == Role::Init => {}
            Err(e) => return Err(e),
        }
    }
    layers.extend(legacy_image_layers(root, driver, c.image_id())?);
    let mut stack = Stack {
        driver: name,
        layers,
        warnings: Vec::new(),
    };
    cross_check(&mut stack);
    Ok(stack)
}

/// The layers of an image, top first.
pub fn image_stack(root: &DockerRoot, drivers: &Drivers, image: &Image) -> Result<Stack> {
    let driver = detect::require(drivers, &image.store)?;
    if let Some(record) = &image.catalog {
        return catalog_stack(root, driver, &record.layers, None);
    }
    if image.legacy {
        return Ok(Stack {
            driver: image.store.clone(),
            layers: legacy_image_layers(root, driver, &image.id)?,
            warnings: Vec::new(),
        });
    }
    let db = root.layerdb(&image.store);
    let chain = layerdb::chain_ids(&image.config.rootfs.diff_ids);
    let mut warnings = Vec::new();
    let layers = match chain.last() {
        Some(top) => image_layers(root, driver, &db, top, &mut warnings)?,
        None => Vec::new(),
    };
    if layers.len() != chain.len() {
        return Err(Error::invalid(
            &image.config_path,
            format!(
                "{} diff ids but {} layers in layerdb",
                chain.len(),
                layers.len()
            ),
        ));
    }
    let mut stack = Stack {
        driver: image.store.clone(),
        layers,
        warnings,
    };
    cross_check(&mut stack);
    Ok(stack)
}

/// One layer on its own (an orphan, say), as a stack of one image layer.
pub fn layer_stack(root: &DockerRoot, driver: &LoadedDriver, id: &str) -> Result<Stack> {
    let layer = CatalogLayer {
        id: id.to_string(),
        role: Role::Image,
    };
    catalog_stack(root, driver, &[layer], None)
}

/// The path of a layer directory relative to the root (checked by `describe`).
pub fn relative_dir<'a>(root: &DockerRoot, dir: &'a Path) -> Result<&'a Path> {
    dir.strip_prefix(root.path())
        .map_err(|_| Error::invalid(dir, "layer directory outside the docker root"))
}
