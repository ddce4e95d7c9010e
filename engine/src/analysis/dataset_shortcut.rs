//! Diff's shortcut for dataset layers (zfs): a container's layer is a clone
//! of a snapshot of the layer below, and an object whose dnode lies in a
//! meta-dnode block born at or before that snapshot's txg — in the clone
//! and in the layer below alike — is the snapshot's object, content and
//! all. Such a regular file needs no reading (`zfs diff`'s own shortcut).
//!
//! Served datasets report object numbers as inode numbers, so a file of
//! the top layer and its copy below with one inode number are one object.

use std::collections::HashSet;

use crate::analysis::diff::{Content, Unchanged};
use crate::evidence::pool;
use crate::model::root::DockerRoot;
use crate::union::view::View;
use crate::union::Node;
use docker_mount_core::driver::LayerSource;

/// The objects a clone may have changed since its origin snapshot, in
/// itself or in the layer below (the origin's live dataset).
#[derive(Debug)]
pub struct DatasetShortcut {
    may_differ: HashSet<u64>,
}

impl DatasetShortcut {
    /// The shortcut for `view`'s top two layers, when `content` is `Auto`,
    /// both are datasets of the root's pool and the top is a clone of a
    /// snapshot of the other. What cannot be read is a warning (every
    /// file is then compared).
    pub fn for_view(
        root: &DockerRoot,
        view: &View,
        content: Content,
        warnings: &mut Vec<String>,
    ) -> Option<DatasetShortcut> {
        let pool = root.pool().filter(|_| content == Content::Auto)?;
        let name = |i: usize| match view.layers.get(i).map(|l| &l.source) {
            Some(LayerSource::Dataset { name, .. }) => pool::resolve(pool.base(), name).ok(),
            _ => None,
        };
        let (top, below) = (name(0)?, name(1)?);
        match pool.may_differ(&top, &below) {
            Ok(set) => set.map(|may_differ| DatasetShortcut { may_differ }),
            Err(e) => {
                warnings.push(format!(
                    "every file of dataset {top} compared (its unchanged objects are unknown): {e}"
                ));
                None
            }
        }
    }

    /// A shortcut trusting every object but `may_differ` (tests).
    pub fn from_set(may_differ: HashSet<u64>) -> DatasetShortcut {
        DatasetShortcut { may_differ }
    }
}

impl DatasetShortcut {
    /// Whether object `new` of layer `layers.0` and `old` of `layers.1`
    /// are one object the clone and its origin share unchanged.
    fn shared(&self, layers: (usize, usize), new: u64, old: u64) -> bool {
        layers == (0, 1) && new == old && !self.may_differ.contains(&new)
    }
}

impl Unchanged for DatasetShortcut {
    fn proves(&self, new: &Node, old: &Node) -> bool {
        self.shared((new.layer, old.layer), new.stat.ino, old.stat.ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_unchanged_in_both_layers_are_proven() {
        let s = DatasetShortcut::from_set([7, 9].into());
        assert!(s.shared((0, 1), 5, 5));
        assert!(!s.shared((0, 1), 7, 7), "rewritten in the clone or below");
        assert!(!s.shared((0, 1), 5, 6), "another object");
        assert!(!s.shared((0, 2), 5, 5), "not the origin's layer");
    }
}
