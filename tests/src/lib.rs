//! Test support for docker-mount: builders of docker roots (synthetic and
//! made by a real dockerd), oracles, and the evidence integrity harness.

pub mod cli;
pub mod convert;
pub mod convert_dm;
pub mod fixture;
pub mod full_tree;
pub mod host;
pub mod hostile;
pub mod integrity;
pub mod manifest;
pub mod mounts;
pub mod pyvenv;
pub mod real;
pub mod real_containerd;
pub mod real_docker26;
pub mod real_journal;
pub mod real_podman;
pub mod real_rootless;
pub mod real_triage;
pub mod real_zfs;
pub mod scene;
pub mod trixie;
