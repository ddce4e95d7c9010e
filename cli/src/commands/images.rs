//! `images`: every image of every image store, tagged or not.

use anyhow::Result;
use std::collections::BTreeMap;

use docker_mount_engine::model::ids;
use docker_mount_engine::model::image::Image;
use docker_mount_engine::model::layerdb::LayerDir;
use docker_mount_engine::model::legacy;
use serde::Serialize;

use crate::context::{self, Context};
use crate::{table, Cli};

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ImageSummary {
    pub id: String,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    pub created: String,
    /// Bytes of all layers, from layerdb `size` files (None when any is missing).
    pub size: Option<u64>,
    pub layers: usize,
    pub driver: String,
    /// The image it was built from, when docker recorded it.
    pub parent: Option<String>,
    /// Untagged and the parent of another image: a build step, hidden without --all.
    pub intermediate: bool,
    pub config_path: String,
    /// Layer chain problems (missing layers, parent files that break the
    /// config's chain), naming files.
    pub warnings: Vec<String>,
}

/// Each image store's layerdb, opened once; its layers are read only as
/// far as the images' chains reach.
type LayerDirs = BTreeMap<String, Result<LayerDir, String>>;

fn summarize(ctx: &Context, dirs: &LayerDirs, image: &Image) -> ImageSummary {
    if image.legacy {
        let (layers, warnings) = match legacy::chain(ctx.root.dir(), &image.id) {
            Ok(chain) => (chain.len(), Vec::new()),
            Err(e) => (0, vec![e.to_string()]),
        };
        return ImageSummary {
            size: None,
            layers,
            warnings,
            ..summary_fields(image)
        };
    }
    // An engine's own image (podman, containerd): its catalog lists the
    // layers; docker's layerdb knows nothing of them. Layers count as the
    // config's diff_ids, as the engine counts them (the containerd store's
    // snapshot chains also hold the build containers' init layers).
    if let Some(record) = &image.catalog {
        let diff_ids = image.config.rootfs.diff_ids.len();
        return ImageSummary {
            layers: if diff_ids > 0 {
                diff_ids
            } else {
                record.layers.len()
            },
            size: record.size,
            ..summary_fields(image)
        };
    }
    let diff_ids = &image.config.rootfs.diff_ids;
    let dir = match dirs.get(&image.store) {
        Some(Ok(dir)) => dir,
        Some(Err(e)) => return broken_store(image, diff_ids.len(), e.clone()),
        None => {
            return broken_store(
                image,
                diff_ids.len(),
                "its image store was not listed".into(),
            )
        }
    };
    let chain = dir.chain_sizes(diff_ids);
    ImageSummary {
        size: chain.size,
        layers: diff_ids.len(),
        warnings: chain.problems,
        ..summary_fields(image)
    }
}

/// An image of a store whose layerdb could not be opened.
fn broken_store(image: &Image, layers: usize, why: String) -> ImageSummary {
    ImageSummary {
        layers,
        warnings: vec![why],
        ..summary_fields(image)
    }
}

/// The fields every image has, whatever its layout.
fn summary_fields(image: &Image) -> ImageSummary {
    ImageSummary {
        id: image.id.clone(),
        tags: image.tags.clone(),
        digests: image.digests.clone(),
        created: image.config.created.clone(),
        size: None,
        layers: 0,
        driver: image.store.clone(),
        parent: image.parent.clone(),
        intermediate: false,
        config_path: image.config_path.display().to_string(),
        warnings: Vec::new(),
    }
}

pub fn run(cli: &Cli, all: bool) -> Result<()> {
    let Some(ctx) = context::open_listing(cli)? else {
        return if cli.json {
            context::print_json(&Vec::<ImageSummary>::new())
        } else {
            Ok(())
        };
    };
    let dirs: LayerDirs = ctx
        .root
        .stores()
        .into_iter()
        .map(|store| {
            let dir = ctx.root.layer_dir(&store).map_err(|e| e.to_string());
            (store, dir)
        })
        .collect();
    let mut rows = Vec::new();
    for item in ctx.root.images_then(|i| summarize(&ctx, &dirs, &i)) {
        match item {
            Ok(row) => rows.push(row),
            Err(e) => context::unreadable(format_args!("image {}: {}", e.name, e.error)),
        }
    }
    let parents: std::collections::HashSet<String> =
        rows.iter().filter_map(|r| r.parent.clone()).collect();
    for r in &mut rows {
        r.intermediate = r.tags.is_empty() && r.digests.is_empty() && parents.contains(&r.id);
    }
    rows.retain(|r| all || !r.intermediate);
    rows.sort_by(|a, b| b.created.cmp(&a.created));
    for r in &rows {
        for w in &r.warnings {
            eprintln!("warning: image {}: {w}", ids::short(&r.id));
        }
    }
    if cli.json {
        return context::print_json(&rows);
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                if r.tags.is_empty() {
                    "<none>".into()
                } else {
                    table::cell(&r.tags.join(", "))
                },
                ids::short(&r.id).to_string(),
                r.created.get(..19).unwrap_or(&r.created).to_string(),
                r.size.map(human_size).unwrap_or_else(|| "?".into()),
                r.layers.to_string(),
                r.driver.clone(),
            ]
        })
        .collect();
    table::print(
        &[
            "REPOSITORY:TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "LAYERS",
            "DRIVER",
        ],
        &table_rows,
    );
    Ok(())
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
