//! User-namespace id maps: how the ids stored on disk relate to the ids a
//! container saw.
//!
//! A userns-remap root `<root>/<uid>.<gid>` stores container id `c` as host
//! id `start + c`, the ranges coming from the remap user's lines of the
//! host's `etc/subuid` / `etc/subgid` (docker joins a user's ranges in file
//! order). A rootless root stores container root as its owner's own id and
//! container ids `1..` from the owner's subordinate ranges. `--uid-map` /
//! `--gid-map` override both.

use serde::Serialize;

use crate::evidence::discover::{FoundRoot, RootKind};
use crate::evidence::host::HostFs;
use docker_mount_core::error::{Error, Result};

/// Most ranges accepted per map (the kernel allows 340).
const MAX_RANGES: usize = 340;
/// `/etc/passwd`, `/etc/subuid` are small files.
const ID_FILE_LIMIT: u64 = 16 * 1024 * 1024;

/// `count` ids from `container` in the container are `host` on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub count: u32,
}

/// One direction-agnostic id map (uids or gids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Map(pub Vec<IdRange>);

impl Map {
    /// The container's id for an id stored on disk, `None` outside the map
    /// (the container saw it as the overflow id, 65534).
    pub fn to_container(&self, host: u32) -> Option<u32> {
        self.0.iter().find_map(|r| {
            let off = host.checked_sub(r.host)?;
            (off < r.count).then(|| r.container + off)
        })
    }

    /// The id stored on disk for a container id.
    pub fn to_host(&self, container: u32) -> Option<u32> {
        self.0.iter().find_map(|r| {
            let off = container.checked_sub(r.container)?;
            (off < r.count).then(|| r.host + off)
        })
    }

    /// Parses `container:host:count[,container:host:count...]`.
    pub fn parse(spec: &str) -> Result<Map> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "id map {spec:?}: {why}; expected CONTAINER:HOST:COUNT[,...]"
            ))
        };
        let mut ranges = Vec::new();
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let nums: Vec<&str> = part.trim().split(':').collect();
            let [c, h, n] = nums.as_slice() else {
                return Err(bad("each range has three numbers"));
            };
            let num = |s: &str| s.parse::<u32>().map_err(|_| bad("not a number"));
            let r = IdRange {
                container: num(c)?,
                host: num(h)?,
                count: num(n)?,
            };
            if r.count == 0
                || r.container.checked_add(r.count - 1).is_none()
                || r.host.checked_add(r.count - 1).is_none()
            {
                return Err(bad("range empty or past 2^32"));
            }
            ranges.push(r);
        }
        if ranges.is_empty() || ranges.len() > MAX_RANGES {
            return Err(bad("no ranges, or too many"));
        }
        Ok(Map(ranges))
    }
}

/// A root's uid and gid maps, and how they were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IdMap {
    pub uid: Map,
    pub gid: Map,
    /// Where the maps come from, for the report.
    pub source: String,
}

impl IdMap {
    /// `(container uid, container gid)` of ids stored on disk; unmapped ids
    /// become 65534, as the kernel shows them.
    pub fn to_container(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.uid.to_container(uid).unwrap_or(OVERFLOW_ID),
            self.gid.to_container(gid).unwrap_or(OVERFLOW_ID),
        )
    }
}

/// Ids as the container saw them, shown beside those stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ContainerIds {
    pub uid: u32,
    pub gid: u32,
}

impl IdMap {
    /// The container's view of ids stored on disk.
    pub fn container_ids(&self, uid: u32, gid: u32) -> ContainerIds {
        let (uid, gid) = self.to_container(uid, gid);
        ContainerIds { uid, gid }
    }
}

/// The id the kernel shows for ids outside a namespace's map.
pub const OVERFLOW_ID: u32 = 65534;

/// A line of `etc/subuid` / `etc/subgid`: `name-or-id:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIds {
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

pub fn parse_subids(text: &str) -> Vec<SubIds> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let owner = f.next()?.to_string();
            let start = f.next()?.trim().parse().ok()?;
            let count: u32 = f.next()?.trim().parse().ok()?;
            (count > 0 && !owner.is_empty()).then_some(SubIds {
                owner,
                start,
                count,
            })
        })
        .take(100_000)
        .collect()
}

/// `(uid, gid)` of a user in `etc/passwd`.
pub fn passwd_ids(text: &str, user: &str) -> Option<(u32, u32, String)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || f[0] != user {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?, f[0].to_string()))
    })
}

fn read_text(fs: &HostFs, path: &str) -> Option<String> {
    fs.read(path, ID_FILE_LIMIT, "an id file")
        .ok()
        .flatten()
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
}

/// The ranges of one owner (by name, or by uid as text), in file order,
/// laid end to end from container id `first`.
fn ranges_of(subs: &[SubIds], owners: &[String], first: u32) -> Vec<IdRange> {
    let mut next = first;
    subs.iter()
        .filter(|s| owners.contains(&s.owner))
        .take(MAX_RANGES)
        .filter_map(|s| {
            let r = IdRange {
                container: next,
                host: s.start,
                count: s.count,
            };
            next = next.checked_add(s.count)?;
            Some(r)
        })
        .collect()
}

/// The id maps of a root found by discovery, from the host tree's
/// `etc/subuid`, `etc/subgid` and `etc/passwd` when there is one.
/// `None` for a root whose ids are not remapped.
pub fn for_root(host: Option<&HostFs>, root: &FoundRoot) -> Option<IdMap> {
    let read = |p: &str| host.and_then(|fs| read_text(fs, p));
    match root.kind {
        RootKind::UsernsRemap => {
            let ids = root.remap?;
            let subuid = read("/etc/subuid")
                .map(|t| parse_subids(&t))
                .unwrap_or_default();
            let subgid = read("/etc/subgid")
                .map(|t| parse_subids(&t))
                .unwrap_or_default();
            // The remap user is the one whose range starts where the root's name says.
            let owner_of = |subs: &[SubIds], start: u32| {
                subs.iter()
                    .find(|s| s.start == start)
                    .map(|s| s.owner.clone())
            };
            let uid_owner = owner_of(&subuid, ids.uid);
            let gid_owner = owner_of(&subgid, ids.gid);
            let uid = uid_owner
                .as_ref()
                .map(|o| ranges_of(&subuid, std::slice::from_ref(o), 0))
                .unwrap_or_default();
            let gid = gid_owner
                .as_ref()
                .map(|o| ranges_of(&subgid, std::slice::from_ref(o), 0))
                .unwrap_or_default();
            let fallback = |start: u32| {
                vec![IdRange {
                    container: 0,
                    host: start,
                    count: 65536,
                }]
            };
            let source = match (&uid_owner, &gid_owner) {
                (Some(u), Some(g)) => format!(
                    "userns-remap root {}.{}: ranges of {u} in etc/subuid and {g} in etc/subgid",
                    ids.uid, ids.gid
                ),
                _ => format!(
                    "userns-remap root {}.{}: no matching etc/subuid / etc/subgid line, assumed 65536 ids from its name",
                    ids.uid, ids.gid
                ),
            };
            Some(IdMap {
                uid: Map(if uid.is_empty() {
                    fallback(ids.uid)
                } else {
                    uid
                }),
                gid: Map(if gid.is_empty() {
                    fallback(ids.gid)
                } else {
                    gid
                }),
                source,
            })
        }
        RootKind::Rootless => {
            let user = root.user.as_deref()?;
            let passwd = read("/etc/passwd")?;
            let (uid, gid, name) = passwd_ids(&passwd, user)?;
            let subuid = read("/etc/subuid")
                .map(|t| parse_subids(&t))
                .unwrap_or_default();
            let subgid = read("/etc/subgid")
                .map(|t| parse_subids(&t))
                .unwrap_or_default();
            let owners = [name.clone(), uid.to_string()];
            let mut u = vec![IdRange {
                container: 0,
                host: uid,
                count: 1,
            }];
            u.extend(ranges_of(&subuid, &owners, 1));
            let owners_g = [name.clone(), gid.to_string()];
            let mut g = vec![IdRange {
                container: 0,
                host: gid,
                count: 1,
            }];
            g.extend(ranges_of(&subgid, &owners_g, 1));
            Some(IdMap {
                uid: Map(u),
                gid: Map(g),
                source: format!(
                    "rootless root of {name}: root is uid {uid}, the rest its etc/subuid and etc/subgid ranges"
                ),
            })
        }
        _ => None,
    }
}

/// The maps to use: overrides first, then what the root says.
pub fn resolve(
    host: Option<&HostFs>,
    root: Option<&FoundRoot>,
    uid_override: Option<&str>,
    gid_override: Option<&str>,
) -> Result<Option<IdMap>> {
    let found = root.and_then(|r| for_root(host, r));
    if uid_override.is_none() && gid_override.is_none() {
        return Ok(found);
    }
    let uid = match uid_override {
        Some(s) => Map::parse(s)?,
        None => found.as_ref().map(|f| f.uid.clone()).unwrap_or_default(),
    };
    let gid = match gid_override {
        Some(s) => Map::parse(s)?,
        // Without a gid map, gids follow the uid map.
        None => found
            .as_ref()
            .map(|f| f.gid.clone())
            .unwrap_or_else(|| uid.clone()),
    };
    Ok(Some(IdMap {
        uid,
        gid,
        source: "--uid-map / --gid-map".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps() {
        let m = Map::parse("0:100000:1000,1000:200000:10").unwrap();
        assert_eq!(m.to_container(100_005), Some(5));
        assert_eq!(m.to_container(200_009), Some(1009));
        assert_eq!(m.to_container(200_010), None);
        assert_eq!(m.to_container(5), None);
        assert_eq!(m.to_host(1000), Some(200_000));
        for bad in ["", "1:2", "a:b:c", "0:4294967295:2", "0:0:0"] {
            assert!(Map::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subid_files() {
        let s =
            parse_subids("# c\ndockremap:100000:65536\nalice:165536:65536\n1000:300000:10\nbad\n");
        assert_eq!(s.len(), 3);
        let r = ranges_of(&s, &["alice".to_string(), "1000".to_string()], 1);
        assert_eq!(
            r,
            [
                IdRange {
                    container: 1,
                    host: 165_536,
                    count: 65536
                },
                IdRange {
                    container: 65537,
                    host: 300_000,
                    count: 10
                }
            ]
        );
        assert_eq!(
            passwd_ids(
                "root:x:0:0::/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\n",
                "alice"
            ),
            Some((1000, 1001, "alice".into()))
        );
    }
}
