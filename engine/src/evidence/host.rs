//! The filesystem of a whole seized host (an image's mount point), read as
//! the host saw it: absolute paths from its configuration files are
//! resolved *inside* the host tree, symlinks included (an absolute target
//! starts again at the host's `/`, `..` stops at it), so nothing ever leads
//! to the analyst's own system.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

/// Most symlinks followed while resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A host filesystem tree.
#[derive(Debug)]
pub struct HostFs {
    /// The tree as given, for paths in messages and for opening roots.
    dir: Beneath,
    /// The same tree through a private noatime mount when we are root, so
    /// that reading symlinks leaves their atimes alone.
    quiet: Option<Beneath>,
}

/// What a host path resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Relative to the host tree, free of symlinks and `..`.
    pub rel: PathBuf,
    /// The host path after symlinks, as the host would see it (`/data/docker`).
    pub host_path: String,
    /// The symlinks met on the way, `link -> target`, for the report.
    pub links: Vec<String>,
}

impl HostFs {
    pub fn open(path: &Path) -> Result<HostFs> {
        let dir = Beneath::open(path)?;
        // With the partitions mounted inside the tree (`home/`, `var/`).
        let quiet = dir.noatime_clone_recursive();
        Ok(HostFs { dir, quiet })
    }

    /// The host tree's path on the analyst's system.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The tree for reading (the noatime view when there is one).
    pub fn dir(&self) -> &Beneath {
        self.quiet.as_ref().unwrap_or(&self.dir)
    }

    /// The local path of a resolved host path.
    pub fn local(&self, r: &Resolved) -> PathBuf {
        if r.rel.as_os_str().is_empty() {
            self.path().to_path_buf()
        } else {
            self.path().join(&r.rel)
        }
    }

    /// Whether the tree looks like a host's root filesystem.
    pub fn looks_like_host(&self) -> bool {
        ["etc", "var", "home", "usr"]
            .iter()
            .filter(|d| self.dir().is_dir(Path::new(d)))
            .count()
            >= 2
    }

    /// Resolves an absolute host path inside the tree, following symlinks
    /// the way the host would, but with the tree as `/`. Fails when a
    /// component is missing or not a directory, or on a symlink loop.
    pub fn resolve(&self, host_path: &str) -> Result<Resolved> {
        let mut out: Vec<OsString> = Vec::new();
        let mut links = Vec::new();
        let mut pending: VecDeque<OsString> = components(Path::new(host_path));
        let mut followed = 0;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                out.pop();
                continue;
            }
            let mut candidate: PathBuf = out.iter().collect();
            candidate.push(&c);
            let st = self.dir().lstat(&candidate).map_err(|cause| Error::Io {
                path: self.path().join(&candidate),
                cause,
            })?;
            if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                if !pending.is_empty() && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(Error::invalid(
                        self.path().join(&candidate),
                        "not a directory",
                    ));
                }
                out.push(c);
                continue;
            }
            followed += 1;
            if followed > MAX_LINKS {
                return Err(Error::invalid(
                    self.path().join(&candidate),
                    format!("more than {MAX_LINKS} symlinks while resolving {host_path}"),
                ));
            }
            let target = self.dir().readlink(&candidate).map_err(|cause| Error::Io {
                path: self.path().join(&candidate),
                cause,
            })?;
            links.push(format!("/{} -> {}", candidate.display(), target.display()));
            if target.is_absolute() {
                out.clear();
            }
            let mut next = components(&target);
            next.extend(pending);
            pending = next;
        }
        let rel: PathBuf = out.iter().collect();
        Ok(Resolved {
            host_path: format!("/{}", rel.display()),
            rel,
            links,
        })
    }

    /// Reads a file named by its host path, resolved inside the tree.
    /// `Ok(None)` when it does not exist.
    pub fn read(
        &self,
        host_path: &str,
        limit: u64,
        what: &'static str,
    ) -> Result<Option<(Resolved, Vec<u8>)>> {
        let r = match self.resolve(host_path) {
            Ok(r) => r,
            Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        if r.rel.as_os_str().is_empty() {
            return Err(Error::invalid(
                self.path(),
                format!("{what} is the host's /"),
            ));
        }
        let bytes = self.dir().read(&r.rel, limit, what).map_err(|e| match e {
            // Name the file by its place in the tree as given.
            Error::Io { cause, .. } => Error::Io {
                path: self.local(&r),
                cause,
            },
            other => other,
        })?;
        Ok(Some((r, bytes)))
    }

    /// Names in a host directory, `[]` when it does not exist.
    pub fn list(&self, host_path: &str) -> Vec<(String, Resolved)> {
        let Ok(dir) = self.resolve(host_path) else {
            return Vec::new();
        };
        let rel = if dir.rel.as_os_str().is_empty() {
            PathBuf::new()
        } else {
            dir.rel.clone()
        };
        let names = if rel.as_os_str().is_empty() {
            self.dir().list(Path::new(""))
        } else {
            self.dir().list(&rel)
        };
        names
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| docker_mount_core::beneath::is_safe_component(n))
            .map(|n| {
                let r = Resolved {
                    rel: rel.join(&n),
                    host_path: format!("{}/{n}", dir.host_path.trim_end_matches('/')),
                    links: dir.links.clone(),
                };
                (n, r)
            })
            .collect()
    }

    /// Whether a resolved path is a real directory.
    pub fn is_dir(&self, r: &Resolved) -> bool {
        r.rel.as_os_str().is_empty() || self.dir().is_dir(&r.rel)
    }
}

/// An absolute host path made plain without looking at the tree: `.` and
/// empty components dropped, `..` stopping at `/`.
pub fn normalize(host_path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in host_path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// The normal components of a path (`/` and `.` dropped, `..` kept).
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsStr::from_bytes(b"..").to_os_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let h = t.path();
        std::fs::create_dir_all(h.join("data/docker")).unwrap();
        std::fs::create_dir_all(h.join("var/lib")).unwrap();
        std::fs::create_dir_all(h.join("etc")).unwrap();
        std::fs::write(h.join("etc/x"), b"inside").unwrap();
        symlink("/data/docker", h.join("var/lib/docker")).unwrap();
        symlink("../../../../../../etc", h.join("var/up")).unwrap();
        symlink("/etc/passwd", h.join("etc/passwd-link")).unwrap();
        symlink("loop", h.join("loop")).unwrap();
        let fs = HostFs::open(h).unwrap();
        let r = fs.resolve("/var/lib/docker").unwrap();
        assert_eq!(r.rel, Path::new("data/docker"));
        assert_eq!(r.host_path, "/data/docker");
        assert_eq!(r.links.len(), 1);
        // `..` stops at the host's `/`.
        assert_eq!(fs.resolve("/var/up/x").unwrap().rel, Path::new("etc/x"));
        assert_eq!(fs.resolve("/../../etc/x").unwrap().rel, Path::new("etc/x"));
        // An absolute link resolves in the host tree: no passwd there.
        assert!(fs.resolve("/etc/passwd-link").is_err());
        assert!(fs.read("/etc/passwd-link", 1 << 20, "t").unwrap().is_none());
        assert!(fs.resolve("/loop").is_err());
        let (_, bytes) = fs.read("/var/up/x", 100, "t").unwrap().unwrap();
        assert_eq!(bytes, b"inside");
        assert_eq!(normalize("/../../outside//x/./y/.."), "/outside/x");
        assert_eq!(normalize(".."), "/");
    }
}
