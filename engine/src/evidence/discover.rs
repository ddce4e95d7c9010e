//! Finding the docker roots in what the analyst gave as `--root`: a docker
//! root itself, a docker root holding userns-remap sub-roots, or the mount
//! point of a whole host filesystem. On a host tree, roots come from the
//! default `/var/lib/docker`, every configured data root (daemon.json,
//! `DOCKER_OPTS`, systemd units and drop-ins), the userns-remap sub-roots
//! `<root>/<uid>.<gid>` of each, and rootless roots
//! (`home/*/.local/share/docker`, or a rootless daemon.json's data-root).
//! Every path is resolved inside the host tree.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::evidence::daemon_config::{self, ConfigSource, SourceKind};
use crate::evidence::host::{HostFs, Resolved};
use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::Confidence;
use docker_mount_core::error::{Error, Result};
use docker_mount_core::loader::{Drivers, LoadedDriver};

/// How a root was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RootKind {
    /// `--root` named it directly.
    Given,
    /// The host's `/var/lib/docker`.
    Default,
    /// A data root named by the daemon's configuration.
    Configured,
    /// `<root>/<uid>.<gid>` of a daemon run with `--userns-remap`.
    UsernsRemap,
    /// A rootless daemon's root in a user's home.
    Rootless,
    /// The snap package's root (`/var/snap/docker/common/var-lib-docker`).
    Snap,
    /// Another engine's root (podman, containerd) a driver recognises.
    Engine,
}

/// The host ids a userns-remap root's container root maps to (its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RemapIds {
    pub uid: u32,
    pub gid: u32,
}

/// One docker root found, or configured but absent.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FoundRoot {
    /// On the analyst's system.
    pub path: PathBuf,
    /// As the seized host named it (after symlinks), when known.
    pub host_path: Option<String>,
    pub kind: RootKind,
    /// The owner of a rootless root.
    pub user: Option<String>,
    pub remap: Option<RemapIds>,
    /// Why it is here: `default`, or the files naming it.
    pub sources: Vec<String>,
    /// The driver whose engine keeps this root (for `Engine` roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Whether it exists and holds docker's directories.
    pub present: bool,
    /// Why it is absent or unusable.
    pub problem: Option<String>,
}

/// What `--root` turned out to hold.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Discovery {
    /// The path given.
    pub given: PathBuf,
    /// The host tree, when the path given is one (or holds the root given).
    pub host: Option<PathBuf>,
    /// Whether the host tree was guessed from the root's path
    /// (`.../var/lib/docker`) rather than given.
    pub host_guessed: bool,
    pub roots: Vec<FoundRoot>,
    /// The daemon configuration files of the host tree.
    #[serde(skip)]
    pub configs: Vec<ConfigSource>,
    pub problems: Vec<String>,
}

impl Discovery {
    /// The roots that exist.
    pub fn present(&self) -> impl Iterator<Item = &FoundRoot> {
        self.roots.iter().filter(|r| r.present)
    }

    /// The single root to work on, or an error listing the choices.
    pub fn single(&self) -> Result<&FoundRoot> {
        let present: Vec<&FoundRoot> = self.present().collect();
        match present.as_slice() {
            [one] => Ok(one),
            [] => {
                let mut msg = format!(
                    "no docker root in {}: no containers/, image/ or graph/ directory there, ",
                    self.given.display()
                );
                if self.host.is_some() {
                    msg.push_str("nor at /var/lib/docker, any configured data-root, userns-remap sub-root or rootless root of the host tree");
                    let missing: Vec<String> = self
                        .roots
                        .iter()
                        .map(|r| {
                            format!(
                                "{} ({})",
                                r.host_path.as_deref().unwrap_or("?"),
                                r.problem.as_deref().unwrap_or("absent")
                            )
                        })
                        .collect();
                    if !missing.is_empty() {
                        msg.push_str(&format!("; looked at {}", missing.join(", ")));
                    }
                } else {
                    msg.push_str("and it does not look like a host filesystem; pass the docker data root or the host's mount point with --root");
                }
                Err(Error::Usage(msg))
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|r| {
                        format!(
                            "  {} ({}{}): --root {}",
                            r.host_path
                                .as_deref()
                                .unwrap_or(&r.path.display().to_string()),
                            kind_name(r.kind),
                            r.user
                                .as_deref()
                                .map(|u| format!(" of {u}"))
                                .unwrap_or_default(),
                            shell_quote(&r.path)
                        )
                    })
                    .collect();
                Err(Error::Usage(format!(
                    "{} holds {} docker roots; say which with --root:\n{}\n(`docker-mount --root {} roots` lists them)",
                    self.given.display(),
                    many.len(),
                    list.join("\n"),
                    shell_quote(&self.given)
                )))
            }
        }
    }
}

/// A path as one shell word.
fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%=,".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn kind_name(k: RootKind) -> &'static str {
    match k {
        RootKind::Given => "given",
        RootKind::Default => "default",
        RootKind::Configured => "configured",
        RootKind::UsernsRemap => "userns-remap",
        RootKind::Rootless => "rootless",
        RootKind::Snap => "snap",
        RootKind::Engine => "engine",
    }
}

/// Whether a directory holds docker's top-level directories.
pub fn is_docker_root(dir: &Beneath) -> bool {
    crate::model::root::DOCKER_DIRS
        .iter()
        .any(|d| dir.is_dir(Path::new(d)))
}

/// `<uid>.<gid>`: a userns-remap sub-root's name.
pub fn parse_remap_name(name: &str) -> Option<RemapIds> {
    let (u, g) = name.split_once('.')?;
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    Some(RemapIds {
        uid: num(u)?,
        gid: num(g)?,
    })
}

/// The userns-remap sub-roots of a root directory, by name.
pub fn subroots(dir: &Beneath) -> Vec<(String, RemapIds)> {
    dir.list(Path::new(""))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter_map(|n| parse_remap_name(&n).map(|ids| (n, ids)))
        .filter(|(n, _)| {
            dir.subdir(Path::new(n))
                .is_ok_and(|sub| is_docker_root(&sub))
        })
        .collect()
}

/// Whether `path` is a plain docker root with no userns-remap sub-roots:
/// the common case, which needs no discovery.
pub fn is_plain_root(path: &Path) -> bool {
    Beneath::open(path).is_ok_and(|d| is_docker_root(&d) && subroots(&d).is_empty())
}

/// What a root given directly is, judged from its path: a userns-remap
/// sub-root (`.../<uid>.<gid>`), a rootless root
/// (`.../home/<user>/.local/share/docker`), or just given.
pub fn classify_given(path: &Path) -> FoundRoot {
    let comps: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
    let remap = comps.last().and_then(|n| parse_remap_name(n));
    let rootless_user = match comps.as_slice() {
        [.., "home", user, ".local", "share", "docker"] => Some(user.to_string()),
        _ => None,
    };
    let kind = if remap.is_some() {
        RootKind::UsernsRemap
    } else if rootless_user.is_some() {
        RootKind::Rootless
    } else {
        RootKind::Given
    };
    FoundRoot {
        path: path.to_path_buf(),
        host_path: None,
        kind,
        user: rootless_user,
        remap,
        sources: vec!["--root".into()],
        engine: None,
        present: true,
        problem: None,
    }
}

/// The host tree a root lies in: the nearest ancestor of its path (at
/// most eight levels up) that looks like a host's `/` and where discovery
/// finds this very root. The analyst's own `/` qualifies only that way, so
/// a copied root elsewhere gets no host.
pub fn guess_host(root: &Path) -> Option<PathBuf> {
    let want = std::fs::canonicalize(root).ok()?;
    for anc in want.ancestors().skip(1).take(8) {
        let Ok(fs) = HostFs::open(anc) else {
            continue;
        };
        if !fs.looks_like_host() {
            continue;
        }
        let d = discover_host(&fs, anc, &Drivers::default());
        if d.roots
            .iter()
            .any(|r| r.present && std::fs::canonicalize(&r.path).is_ok_and(|p| p == want))
        {
            return Some(anc.to_path_buf());
        }
    }
    None
}

struct Builder<'a> {
    fs: &'a HostFs,
    roots: Vec<FoundRoot>,
    problems: Vec<String>,
}

impl Builder<'_> {
    /// Adds the root at `host_path` (resolved in the host tree) and its
    /// userns-remap sub-roots; merges with a root already found there.
    fn add(&mut self, host_path: &str, kind: RootKind, user: Option<&str>, source: String) {
        let resolved = self.fs.resolve(host_path);
        let (path, host_after, present, problem) = match &resolved {
            Ok(r) => {
                let local = self.fs.local(r);
                match self.fs.dir().subdir(&r.rel) {
                    Ok(d) if is_docker_root(&d) => (local, r.host_path.clone(), true, None),
                    Ok(d) => {
                        let has_sub = !subroots(&d).is_empty();
                        let why = (!has_sub).then(|| {
                            "exists but holds no containers/, image/ or graph/".to_string()
                        });
                        (local, r.host_path.clone(), false, why)
                    }
                    Err(e) => (local, r.host_path.clone(), false, Some(e.to_string())),
                }
            }
            Err(e) => (
                self.fs
                    .path()
                    .join(crate::evidence::host::normalize(host_path).trim_start_matches('/')),
                crate::evidence::host::normalize(host_path),
                false,
                Some(match e {
                    Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
                        "not in this image (on another filesystem?)".to_string()
                    }
                    other => other.to_string(),
                }),
            ),
        };
        let mut source = source;
        if let Ok(r) = &resolved {
            if !r.links.is_empty() {
                source.push_str(&format!(" (via {})", r.links.join(", ")));
            }
        }
        self.merge(FoundRoot {
            path: path.clone(),
            host_path: Some(host_after.clone()),
            kind,
            user: user.map(str::to_string),
            remap: None,
            sources: vec![source],
            engine: None,
            present,
            problem,
        });
        if let Ok(r) = resolved {
            self.add_subroots(&r, user);
        }
    }

    fn add_subroots(&mut self, r: &Resolved, user: Option<&str>) {
        let Ok(dir) = self.fs.dir().subdir(&r.rel) else {
            return;
        };
        for (name, ids) in subroots(&dir) {
            self.merge(FoundRoot {
                path: self.fs.local(r).join(&name),
                host_path: Some(format!("{}/{name}", r.host_path.trim_end_matches('/'))),
                kind: RootKind::UsernsRemap,
                user: user.map(str::to_string),
                remap: Some(ids),
                sources: vec![format!("userns-remap sub-root of {}", r.host_path)],
                engine: None,
                present: true,
                problem: None,
            });
        }
    }

    /// An engine's root at `host_path` when the driver recognises it and
    /// it holds containers or images.
    fn add_engine(&mut self, host_path: &str, driver: &LoadedDriver, user: Option<&str>) {
        let Ok(r) = self.fs.resolve(host_path) else {
            return;
        };
        let local = self.fs.local(&r);
        if !driver.detect(&local).is_ok_and(|c| c > Confidence::NONE) {
            return;
        }
        // An engine installed but unused (containerd under docker 20.10, a
        // podman never run) holds nothing to choose.
        let used = driver
            .catalog(&local)
            .is_ok_and(|c| !c.containers.is_empty() || !c.images.is_empty());
        if !used {
            return;
        }
        self.merge(FoundRoot {
            path: local,
            host_path: Some(r.host_path.clone()),
            kind: RootKind::Engine,
            user: user.map(str::to_string),
            remap: None,
            sources: vec![format!("the {} driver's location", driver.name())],
            engine: Some(driver.name().to_string()),
            present: true,
            problem: None,
        });
    }

    fn merge(&mut self, root: FoundRoot) {
        if let Some(old) = self.roots.iter_mut().find(|o| o.path == root.path) {
            for s in root.sources {
                if !old.sources.contains(&s) {
                    old.sources.push(s);
                }
            }
            // A configured root is more telling than the default one.
            if old.kind == RootKind::Default && root.kind == RootKind::Configured {
                old.kind = RootKind::Configured;
            }
            return;
        }
        self.roots.push(root);
    }
}

fn source_name(src: &ConfigSource, what: &str) -> String {
    format!("{} ({what})", src.host_path)
}

/// Discovers the roots in a host tree.
fn discover_host(fs: &HostFs, given: &Path, drivers: &Drivers) -> Discovery {
    let configs = daemon_config::read_all(fs);
    let mut b = Builder {
        fs,
        roots: Vec::new(),
        problems: Vec::new(),
    };
    for c in &configs {
        b.problems.extend(c.problems.iter().cloned());
    }
    b.add(
        "/var/lib/docker",
        RootKind::Default,
        None,
        "default data root".into(),
    );
    for c in &configs {
        let Some(dr) = &c.flags.data_root else {
            continue;
        };
        if !dr.starts_with('/') {
            b.problems.push(format!(
                "{}: data root {dr:?} is not an absolute path",
                c.file.display()
            ));
            continue;
        }
        let rootless = matches!(
            c.kind,
            SourceKind::RootlessDaemonJson | SourceKind::RootlessUnit
        );
        let kind = if rootless {
            RootKind::Rootless
        } else {
            RootKind::Configured
        };
        b.add(
            dr,
            kind,
            c.user.as_deref(),
            source_name(
                c,
                if c.kind == SourceKind::DaemonJson || c.kind == SourceKind::RootlessDaemonJson {
                    "data-root"
                } else {
                    "--data-root/-g"
                },
            ),
        );
    }
    let snap = "/var/snap/docker/common/var-lib-docker";
    if fs.resolve(snap).is_ok() {
        b.add(
            snap,
            RootKind::Snap,
            None,
            "snap package's data root".into(),
        );
    }
    for (user, home) in daemon_config::homes(fs) {
        let p = format!("{home}/.local/share/docker");
        if fs.resolve(&p).is_ok() {
            b.add(
                &p,
                RootKind::Rootless,
                Some(&user),
                "rootless data root".into(),
            );
        }
    }
    let homes = daemon_config::homes(fs);
    for d in &drivers.loaded {
        for place in d.host_roots() {
            match place.strip_prefix("~/") {
                Some(rest) => {
                    for (user, home) in &homes {
                        b.add_engine(&format!("{home}/{rest}"), d, Some(user));
                    }
                }
                None => b.add_engine(&format!("/{}", place.trim_start_matches('/')), d, None),
            }
        }
    }
    // A root the configuration names but that is missing is worth a line;
    // the default one is not, when something else was found.
    let any_present = b.roots.iter().any(|r| r.present);
    let roots = b
        .roots
        .into_iter()
        .filter(|r| r.present || r.kind != RootKind::Default || !any_present || r.sources.len() > 1)
        .collect();
    Discovery {
        given: given.to_path_buf(),
        host: Some(fs.path().to_path_buf()),
        host_guessed: false,
        roots,
        configs,
        problems: b.problems,
    }
}

/// Discovers the docker roots `--root` holds.
pub fn discover(given: &Path, drivers: &Drivers) -> Result<Discovery> {
    let dir = Beneath::open(given)?;
    if is_docker_root(&dir) || !subroots(&dir).is_empty() {
        // A docker root, perhaps with userns-remap sub-roots.
        let mut roots = Vec::new();
        if is_docker_root(&dir) {
            roots.push(classify_given(given));
        }
        for (name, ids) in subroots(&dir) {
            roots.push(FoundRoot {
                path: given.join(&name),
                host_path: None,
                kind: RootKind::UsernsRemap,
                user: None,
                remap: Some(ids),
                sources: vec!["userns-remap sub-root of --root".into()],
                engine: None,
                present: true,
                problem: None,
            });
        }
        let host = guess_host(given);
        let configs = host
            .as_deref()
            .and_then(|h| HostFs::open(h).ok())
            .map(|fs| daemon_config::read_all(&fs))
            .unwrap_or_default();
        return Ok(Discovery {
            given: given.to_path_buf(),
            host_guessed: host.is_some(),
            host,
            roots,
            configs,
            problems: Vec::new(),
        });
    }
    drop(dir);
    let fs = HostFs::open(given)?;
    if !fs.looks_like_host() {
        return Ok(Discovery {
            given: given.to_path_buf(),
            host: None,
            host_guessed: false,
            roots: Vec::new(),
            configs: Vec::new(),
            problems: Vec::new(),
        });
    }
    Ok(discover_host(&fs, given, drivers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remap_names() {
        assert_eq!(
            parse_remap_name("100000.100000"),
            Some(RemapIds {
                uid: 100000,
                gid: 100000
            })
        );
        for bad in ["1.", ".1", "a.1", "1.2.3", "99999999999.1", "overlay2"] {
            assert_eq!(parse_remap_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn guesses_host_from_path() {
        let t = tempfile::tempdir().unwrap();
        let h = t.path();
        for d in [
            "etc",
            "var/lib/docker/containers",
            "var/lib/docker/100000.100000/containers",
            "home/al/.local/share/docker/image",
            "usr",
            "copy/docker/containers",
        ] {
            std::fs::create_dir_all(h.join(d)).unwrap();
        }
        let h = &std::fs::canonicalize(h).unwrap();
        assert_eq!(guess_host(&h.join("var/lib/docker")), Some(h.to_path_buf()));
        assert_eq!(
            guess_host(&h.join("var/lib/docker/100000.100000")),
            Some(h.to_path_buf())
        );
        assert_eq!(
            guess_host(&h.join("home/al/.local/share/docker")),
            Some(h.to_path_buf())
        );
        assert_eq!(guess_host(&h.join("var/lib")), None);
        // A root copied somewhere in the tree is not the host's.
        assert_eq!(guess_host(&h.join("copy/docker")), None);
    }
}
