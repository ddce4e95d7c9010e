"""Pre- and post-processors of Turbinia's own DockerContainer evidence.

The evidence stays Turbinia's `DockerContainer` (so every job that takes
one still does); `register` replaces its two processor methods with these,
which use docker-mount and pass the parent disk's mount point as the root,
so docker-mount finds the data root itself (daemon.json, systemd units,
DOCKER_OPTS, rootless roots) instead of assuming `var/lib/docker`.
"""

from turbinia.evidence import EvidenceState

from docker_mount_turbinia import processor


def preprocess(self, _tmp_dir, required_states):
  """`DockerContainer._preprocess`: mounts the container when a task
  requires CONTAINER_MOUNTED."""
  if EvidenceState.CONTAINER_MOUNTED not in required_states:
    return
  self._docker_root_directory = self.parent_evidence.mount_path
  self._container_fs_path = processor.PreprocessMountDockerFS(
      self._docker_root_directory, self.container_id)
  self.mount_path = self._container_fs_path
  self.local_path = self.mount_path
  self.state[EvidenceState.CONTAINER_MOUNTED] = True


def postprocess(self):
  """`DockerContainer._postprocess`: unmounts what `preprocess` mounted."""
  if self.state.get(EvidenceState.CONTAINER_MOUNTED):
    processor.PostprocessUnmountDockerFS(self._container_fs_path)
    self.state[EvidenceState.CONTAINER_MOUNTED] = False
