//! Containers and images from an engine's own metadata (a driver's
//! [`Catalog`]), presented as the docker model so every command works on
//! them unchanged.

use std::collections::BTreeMap;

use crate::model::container::{Container, ContainerConfigFile, RunConfig, State};
use crate::model::ids;
use crate::model::image::{Image, ImageConfig};
use crate::model::record::CatalogRecord;
use docker_mount_core::driver::{
    Catalog, CatalogContainer, CatalogImage, CatalogLayer, ImageFacts, Role,
};

/// The engine's state word as one of `docker ps`'s.
pub fn state_word(word: &str) -> &'static str {
    match word {
        "running" => "running",
        "paused" => "paused",
        "restarting" => "restarting",
        "exited" | "stopped" => "exited",
        "created" | "configured" | "" => "created",
        "removing" => "removing",
        "dead" => "dead",
        _ => "unknown",
    }
}

fn state(c: &CatalogContainer) -> State {
    State {
        running: matches!(state_word(&c.state), "running" | "paused" | "restarting"),
        paused: state_word(&c.state) == "paused",
        started_at: c.started.clone(),
        finished_at: c.finished.clone(),
        exit_code: c.exit_code.unwrap_or_default(),
        pid: c.pid.unwrap_or_default(),
        ..Default::default()
    }
}

pub fn container(driver: &str, c: CatalogContainer) -> Container {
    let (path, args) = match c.command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let state = state(&c);
    let labels: BTreeMap<String, String> = c.labels.into_iter().collect();
    let config = ContainerConfigFile {
        id: c.id.clone(),
        name: format!("/{}", if c.name.is_empty() { &c.id } else { &c.name }),
        created: c.created,
        path,
        args,
        config: RunConfig {
            image: c.image,
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        image: c.image_id,
        state,
        driver: driver.to_string(),
        ..Default::default()
    };
    Container {
        id: c.id,
        config,
        host: None,
        config_path: c.source,
        legacy: false,
        warnings: Vec::new(),
        catalog: Some(CatalogRecord {
            driver: driver.to_string(),
            engine: c.engine,
            state: state_word(&c.state),
            layers: c.layers,
            size: None,
            layer_sizes: BTreeMap::new(),
            log: c.log,
        }),
    }
}

pub fn image(driver: &str, i: CatalogImage, facts: Option<&ImageFacts>) -> Image {
    let mut config: ImageConfig = i
        .config
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if config.created.is_empty() {
        config.created = i.created;
    }
    let (digests, tags) = i.names.into_iter().partition(|n| n.contains('@'));
    let parent = facts
        .and_then(|f| f.parent.as_deref())
        .and_then(ids::parse_digest)
        .map(str::to_string);
    Image {
        id: ids::strip_sha256(&i.id).to_string(),
        store: driver.to_string(),
        config,
        tags,
        digests,
        parent,
        config_path: i.source,
        legacy: false,
        catalog: Some(CatalogRecord {
            driver: driver.to_string(),
            engine: i.engine,
            layers: i
                .layers
                .into_iter()
                .map(|id| CatalogLayer {
                    role: if facts.is_some_and(|f| f.init_layers.contains(&id)) {
                        Role::Init
                    } else {
                        Role::Image
                    },
                    id,
                })
                .collect(),
            state: "",
            size: facts.and_then(|f| f.size),
            layer_sizes: facts
                .map(|f| f.layer_sizes.iter().cloned().collect())
                .unwrap_or_default(),
            log: None,
        }),
    }
}

/// A driver's catalog as model items; its problems as messages.
pub fn convert(driver: &str, catalog: Catalog) -> (Vec<Container>, Vec<Image>, Vec<String>) {
    let containers = catalog
        .containers
        .into_iter()
        .map(|c| container(driver, c))
        .collect();
    let facts: BTreeMap<String, ImageFacts> = catalog
        .image_facts
        .into_iter()
        .map(|f| (f.id.clone(), f))
        .collect();
    let images = catalog
        .images
        .into_iter()
        .map(|i| {
            let f = facts.get(&i.id);
            image(driver, i, f)
        })
        .collect();
    let problems = catalog
        .problems
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    (containers, images, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_docker_rules() {
        let c = |s: &str| {
            container(
                "podman",
                CatalogContainer {
                    id: "x".into(),
                    state: s.into(),
                    ..Default::default()
                },
            )
        };
        assert_eq!(c("running").state(), "running");
        assert_eq!(c("paused").state(), "paused");
        assert_eq!(c("exited").state(), "exited");
        assert_eq!(c("stopped").state(), "exited");
        assert_eq!(c("configured").state(), "created");
        assert_eq!(c("").state(), "created");
        assert_eq!(c("weird").state(), "unknown");
        assert_eq!(c("running").name(), "x");
    }

    #[test]
    fn image_facts_give_parent_size_and_init_layers() {
        let parent = format!("sha256:{}", "b".repeat(64));
        let catalog = Catalog {
            images: vec![CatalogImage {
                id: format!("sha256:{}", "a".repeat(64)),
                layers: vec!["3".into(), "2".into(), "1".into()],
                ..Default::default()
            }],
            image_facts: vec![ImageFacts {
                id: format!("sha256:{}", "a".repeat(64)),
                parent: Some(parent),
                size: Some(42),
                init_layers: vec!["2".into()],
                layer_sizes: vec![("1".into(), 7)],
            }],
            ..Default::default()
        };
        let (_, images, _) = convert("overlayfs", catalog);
        let img = &images[0];
        assert_eq!(img.parent.as_deref(), Some("b".repeat(64).as_str()));
        let rec = img.catalog.as_ref().unwrap();
        assert_eq!(rec.size, Some(42));
        assert_eq!(rec.layer_sizes.get("1"), Some(&7));
        let roles: Vec<Role> = rec.layers.iter().map(|l| l.role).collect();
        assert_eq!(roles, [Role::Image, Role::Init, Role::Image]);
        // Facts about no listed image change nothing.
        let (_, images, _) = convert(
            "overlayfs",
            Catalog {
                images: vec![CatalogImage {
                    id: "x".into(),
                    ..Default::default()
                }],
                image_facts: vec![ImageFacts {
                    id: "y".into(),
                    size: Some(1),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        assert_eq!(images[0].catalog.as_ref().unwrap().size, None);
        // A parent label that is no image id names no parent.
        for odd in ["sha256:../../etc", "", "latest", &"g".repeat(64)] {
            let (_, images, _) = convert(
                "overlayfs",
                Catalog {
                    images: vec![CatalogImage {
                        id: "x".into(),
                        ..Default::default()
                    }],
                    image_facts: vec![ImageFacts {
                        id: "x".into(),
                        parent: Some(odd.to_string()),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            );
            assert_eq!(images[0].parent, None, "{odd}");
        }
    }
}
