//! Which containers a listing keeps: docker-like `--filter KEY=VALUE`
//! clauses (`name`, `image`, `label`, `since`, `status`; one key repeated
//! matches any of its values, different keys must all match), exposed or
//! published ports, and the Kubernetes and system "support" containers
//! (pod sandboxes, kube-system pods) an analyst usually skips.

use std::collections::BTreeMap;
use std::path::Path;

use docker_mount_core::stat::Time;
use serde::Deserialize;

use crate::analysis::logs::parse_time_arg;
use crate::model::container::Container;
use crate::model::root::DockerRoot;
use crate::{Error, Result};

/// The keys `--filter` knows.
pub const KEYS: [&str; 5] = ["name", "image", "label", "since", "status"];

/// The states `status=` takes, as `list` shows them (`unknown`: an
/// engine that keeps no state on disk, containerd).
pub const STATES: [&str; 8] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
    "unknown",
];

/// Parsed `--filter` clauses, values grouped by key.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    clauses: BTreeMap<&'static str, Vec<String>>,
    /// `since=`: containers created after this time.
    since: Option<Time>,
}

/// Splits `a=1,b=2` into clauses; a piece not starting with a known key
/// continues the previous value (a label value may hold commas).
fn split(spec: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, _) in spec.match_indices(',') {
        let next = &spec[i + 1..];
        if KEYS.iter().any(|k| next.starts_with(&format!("{k}="))) {
            out.push(&spec[start..i]);
            start = i + 1;
        }
    }
    out.push(&spec[start..]);
    out
}

impl Filters {
    /// Parses `--filter` values (each `KEY=VALUE[,KEY=VALUE...]`).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Filters> {
        let mut f = Filters::default();
        for spec in specs {
            for clause in split(spec.as_ref()) {
                let (key, value) = clause.split_once('=').unwrap_or((clause, ""));
                let Some(key) = KEYS.iter().find(|k| **k == key.trim()) else {
                    return Err(Error::Usage(format!(
                        "--filter {clause:?}: unknown key; use one of {}",
                        KEYS.join(", ")
                    )));
                };
                if value.is_empty() {
                    return Err(Error::Usage(format!(
                        "--filter {clause:?}: give {key}=VALUE"
                    )));
                }
                if *key == "status" && !STATES.contains(&value) {
                    return Err(Error::Usage(format!(
                        "--filter status={value}: use one of {}",
                        STATES.join(", ")
                    )));
                }
                f.clauses.entry(key).or_default().push(value.to_string());
            }
        }
        Ok(f)
    }

    /// Whether nothing narrows the listing.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether a `status=` clause is given (then every state is listed,
    /// not only running containers).
    pub fn has_status(&self) -> bool {
        self.clauses.contains_key("status")
    }

    /// Resolves `since=`: a container (id, prefix or name) of the root,
    /// else a time (RFC 3339, a date, unix seconds). The latest of several.
    pub fn resolve(&mut self, root: &DockerRoot) -> Result<()> {
        for v in self.clauses.get("since").into_iter().flatten() {
            let t = match root.find_container(v) {
                Ok(c) => created(&c).ok_or_else(|| {
                    Error::Usage(format!(
                        "--filter since={v}: container {} has no creation time ({})",
                        c.name(),
                        c.config_path.display()
                    ))
                })?,
                Err(e) => parse_time_arg(v).ok_or_else(|| {
                    Error::Usage(format!(
                        "--filter since={v}: neither a container ({e}) nor a time (RFC 3339, a date or unix seconds)"
                    ))
                })?,
            };
            self.since = Some(self.since.map_or(t, |s| s.max(t)));
        }
        Ok(())
    }

    /// Whether a container passes every clause.
    pub fn matches(&self, c: &Container) -> bool {
        self.clauses.iter().all(|(key, values)| match *key {
            "name" => values.iter().any(|v| c.name().contains(v.as_str())),
            "image" => values.iter().any(|v| image_matches(c, v)),
            "label" => values.iter().any(|v| label_matches(c, v)),
            "status" => values.iter().any(|v| v == c.state()),
            "since" => self
                .since
                .is_some_and(|s| created(c).is_some_and(|t| t > s)),
            _ => false,
        })
    }
}

/// When a container was created.
pub fn created(c: &Container) -> Option<Time> {
    docker_mount_core::time::parse_rfc3339(&c.config.created)
}

/// An image reference without its digest and tag: `registry:5000/a/b`.
fn repository(reference: &str) -> &str {
    let r = reference.split('@').next().unwrap_or(reference);
    let last = r.rfind('/').map_or(0, |i| i + 1);
    match r[last..].find(':') {
        Some(i) => &r[..last + i],
        None => r,
    }
}

/// `image=`: the reference the container was created from (with or
/// without its tag), or the image id (a prefix of it, `sha256:` or not).
fn image_matches(c: &Container, v: &str) -> bool {
    let reference = &c.config.config.image;
    let id = v.strip_prefix("sha256:").unwrap_or(v);
    reference == v
        || repository(reference) == v
        || (id.len() >= 4
            && id.bytes().all(|b| b.is_ascii_hexdigit())
            && c.image_id().starts_with(id))
}

/// `label=KEY` (present) or `label=KEY=VALUE` (equal).
fn label_matches(c: &Container, v: &str) -> bool {
    let labels = c.config.config.labels.as_ref();
    match v.split_once('=') {
        Some((k, want)) => labels.and_then(|l| l.get(k)).is_some_and(|x| x == want),
        None => labels.is_some_and(|l| l.contains_key(v)),
    }
}

/// The ports a container exposes (config.v2.json `ExposedPorts`) or
/// publishes (hostconfig.json `PortBindings`, when loaded), `80/tcp`.
pub fn ports(c: &Container) -> Vec<String> {
    let mut out: Vec<String> = c
        .config
        .config
        .exposed_ports
        .iter()
        .flat_map(|p| p.keys().cloned())
        .collect();
    if let Some(b) = c.host.as_ref().and_then(|h| h.port_bindings.as_ref()) {
        out.extend(b.keys().cloned());
    }
    out.sort();
    out.dedup();
    out
}

/// One rule of a support-container list: every condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportRule {
    /// What the rule stands for, shown for each container it matches.
    pub why: String,
    /// `KEY=VALUE` (equal) or `KEY` (present).
    #[serde(default)]
    pub label: Option<String>,
    /// An image repository (`registry.k8s.io/pause`), or the last name of
    /// one (`pause`) when it holds no `/`; tags and digests are ignored.
    #[serde(default)]
    pub image: Option<String>,
    /// A container name prefix (`k8s_POD_`).
    #[serde(default)]
    pub name_prefix: Option<String>,
}

/// The containers `list --skip-support` leaves out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportList {
    pub rules: Vec<SupportRule>,
}

/// The built-in list, `support-containers.json` beside this module.
const BUILTIN: &str = include_str!("support-containers.json");

/// The most rules a list may hold (it is read from an analyst's file).
const MAX_RULES: usize = 10_000;

impl SupportList {
    /// The built-in list: Kubernetes pod sandboxes (dockershim, CRI),
    /// kube-system pods, the pause and control-plane images.
    pub fn builtin() -> SupportList {
        // Checked by a unit test: the built-in file always parses.
        Self::parse(BUILTIN.as_bytes(), Path::new("support-containers.json"))
            .unwrap_or(SupportList { rules: Vec::new() })
    }

    /// A list in the same JSON form, e.g. from `--support-list FILE`.
    pub fn parse(json: &[u8], file: &Path) -> Result<SupportList> {
        let list: SupportList = serde_json::from_slice(json).map_err(|cause| Error::Json {
            path: file.to_path_buf(),
            what: "a support-container list ({\"rules\": [{\"why\", \"label\", \"image\", \"name_prefix\"}]})",
            cause,
        })?;
        if list.rules.len() > MAX_RULES {
            return Err(Error::invalid(file, format!("more than {MAX_RULES} rules")));
        }
        if let Some(r) = list
            .rules
            .iter()
            .find(|r| r.label.is_none() && r.image.is_none() && r.name_prefix.is_none())
        {
            return Err(Error::invalid(
                file,
                format!("rule {:?} has no label, image or name_prefix", r.why),
            ));
        }
        Ok(list)
    }

    /// Why a container is a support container (the first rule matching), if it is.
    pub fn matches(&self, c: &Container) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| {
                r.label.as_deref().is_none_or(|l| label_matches(c, l))
                    && r.image.as_deref().is_none_or(|i| {
                        let repo = repository(&c.config.config.image);
                        repo == i || (!i.contains('/') && repo.rsplit('/').next() == Some(i))
                    })
                    && r.name_prefix
                        .as_deref()
                        .is_none_or(|p| c.name().starts_with(p))
            })
            .map(|r| r.why.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_split_on_known_keys_only() {
        assert_eq!(
            split("name=web,label=a=1,2,image=x"),
            ["name=web", "label=a=1,2", "image=x"]
        );
        assert!(Filters::parse(&["colour=red"]).is_err());
        assert!(Filters::parse(&["status=sleeping"]).is_err());
        assert!(Filters::parse(&["name="]).is_err());
        assert!(Filters::parse(&["status=exited,name=a"]).is_ok_and(|f| f.has_status()));
    }

    #[test]
    fn repositories_lose_tags_and_digests() {
        assert_eq!(
            repository("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause"
        );
        assert_eq!(
            repository("localhost:5000/a/b@sha256:00"),
            "localhost:5000/a/b"
        );
        assert_eq!(repository("localhost:5000/a"), "localhost:5000/a");
        assert_eq!(repository("busybox"), "busybox");
    }

    #[test]
    fn the_builtin_list_parses_and_bad_lists_are_refused() {
        let b = SupportList::parse(BUILTIN.as_bytes(), Path::new("builtin")).unwrap();
        assert!(b.rules.len() >= 5);
        let p = Path::new("mine.json");
        assert!(SupportList::parse(br#"{"rules":[{"why":"x"}]}"#, p).is_err());
        assert!(SupportList::parse(br#"{"rules":[{"why":"x","colour":"red"}]}"#, p).is_err());
        assert!(SupportList::parse(b"{", p).is_err_and(|e| e.to_string().contains("mine.json")));
    }
}
