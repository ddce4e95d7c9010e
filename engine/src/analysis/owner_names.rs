//! User and group names as a container (or image) saw them: its own
//! `/etc/passwd` and `/etc/group`, read through its view, so a timeline
//! can name the owner of each entry beside the numeric ids.
//!
//! Hostile input: each file is read up to [`LIMIT`] bytes and
//! [`MAX_ENTRIES`] names; lines that are not `name:x:id:...` are skipped;
//! the first line naming an id wins, as `getpwuid` would.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::union::{FileKind, Union};

/// Most bytes read of `/etc/passwd` or `/etc/group`.
pub const LIMIT: u64 = 16 * 1024 * 1024;
/// Most names kept per file.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Names by id, from one view's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl OwnerNames {
    /// From the texts of `/etc/passwd` and `/etc/group`.
    pub fn parse(passwd: &str, group: &str) -> OwnerNames {
        OwnerNames {
            users: names_by_id(passwd),
            groups: names_by_id(group),
        }
    }

    /// The names of `union`'s `/etc/passwd` and `/etc/group`; a file that
    /// is missing (or not a regular file) gives no names, one that cannot
    /// be read a warning naming it.
    pub fn of_view(union: &Union) -> (OwnerNames, Vec<String>) {
        let mut warnings = Vec::new();
        let mut text = |name: &str| -> String {
            read_etc(union, name).unwrap_or_else(|e| {
                warnings.push(e);
                String::new()
            })
        };
        let names = OwnerNames::parse(&text("passwd"), &text("group"));
        (names, warnings)
    }

    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

/// `name:password:id:...` lines: id → name, the first line of an id kept.
fn names_by_id(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        if names.len() >= MAX_ENTRIES {
            break;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(id) = id.trim().parse::<u32>() {
            names.entry(id).or_insert_with(|| name.to_string());
        }
    }
    names
}

/// `/etc/<name>` of the view as text (lossy UTF-8), empty when absent.
fn read_etc(union: &Union, name: &str) -> Result<String, String> {
    let rel = Path::new("etc").join(name);
    let node = match union.lookup(&rel) {
        Ok(Some(node)) if node.stat.kind == FileKind::File => node,
        Ok(_) => return Ok(String::new()),
        Err(e) => return Err(format!("cannot look up /{}: {e}", rel.display())),
    };
    let tree = union.tree(&node);
    let shown = tree.path().join(&rel);
    let mut bytes = Vec::new();
    tree.open_file(&rel)
        .and_then(|f| f.take(LIMIT).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}; owners left unnamed", shown.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_id_first_line_wins_and_junk_is_skipped() {
        let n = OwnerNames::parse(
            "root:x:0:0:root:/root:/bin/sh\n\
             toor:x:0:0::/:/bin/sh\n\
             #comment:x:5:5\n\
             broken line\n\
             web:x:notanumber:1\n\
             www-data:x:33:33::/var/www:/bin/false\n",
            "root:x:0:\nadm:x:4:syslog\nstaff::50:\n",
        );
        assert_eq!(n.user(0), Some("root"));
        assert_eq!(n.user(33), Some("www-data"));
        assert_eq!(n.user(5), None);
        assert_eq!(n.user(1), None);
        assert_eq!(n.group(4), Some("adm"));
        assert_eq!(n.group(50), Some("staff"));
        assert_eq!(n.group(33), None);
    }

    #[test]
    fn no_files_no_names() {
        let n = OwnerNames::parse("", "");
        assert_eq!(n, OwnerNames::default());
    }
}
