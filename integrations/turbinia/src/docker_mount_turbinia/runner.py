"""Runs the docker-mount binary; knows nothing of Turbinia.

Every call goes through a subprocess (docker-mount is a Rust binary): the
evidence is read by docker-mount alone, read-only, and its JSON output is
the interface.
"""

import json
import os
import shutil
import subprocess

#: Program name looked up in PATH when no path is configured.
PROGRAM = 'docker-mount'
#: docker-mount's exit status when some items could not be read.
PARTIAL = 3


class DockerMountError(Exception):
  """docker-mount could not be found, failed, or printed bad JSON."""


class DockerMount:
  """One docker-mount binary, run with or without sudo.

  Attributes:
    binary (str): Path of the docker-mount executable.
    sudo (bool): Whether commands are prefixed with `sudo` (mounting needs
        root; listing and exporting do not).
  """

  def __init__(self, binary=None, sudo=None):
    found = binary or shutil.which(PROGRAM)
    if not found or not os.access(found, os.X_OK):
      raise DockerMountError(
          f'cannot find the {PROGRAM} executable ({binary or "not in PATH"}); '
          'install it or set DOCKER_MOUNT_PATH in the Turbinia config')
    self.binary = found
    self.sudo = (os.geteuid() != 0) if sudo is None else bool(sudo)

  def command(self, root, *args):
    """The argument vector running `docker-mount --root <root> <args>`."""
    prefix = ['sudo', '--non-interactive'] if self.sudo else []
    return prefix + [self.binary, '--root', root, *args]

  def _run(self, argv, accepted=(0,)):
    try:
      done = subprocess.run(
          argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exception:
      raise DockerMountError(f'cannot run {argv[0]}: {exception}') from exception
    if done.returncode not in accepted:
      raise DockerMountError(
          '{0} exited with {1}: {2}'.format(
              ' '.join(argv), done.returncode,
              done.stderr.decode('utf-8', 'replace').strip()))
    return done.stdout

  def list_containers(self, root, extra_args=()):
    """The containers of `root` as docker-mount's `list --all --json` prints
    them: a list of dicts with `id`, `name`, `image`, `state`, ...

    `root` may be a docker data root or the mount point of a whole host
    filesystem (docker-mount then finds the data roots from the host's
    configuration). A filesystem without docker gives an empty list.
    """
    argv = self.command(root, 'list', '--all', '--json', *extra_args)
    # Exit status 3: partial, the unreadable containers are rows with an
    # `error` (and named on stderr); the others are listed.
    out = self._run(argv, accepted=(0, PARTIAL))
    try:
      containers = json.loads(out.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exception:
      raise DockerMountError(
          f'{" ".join(argv)} printed invalid JSON: {exception}') from exception
    if not isinstance(containers, list):
      raise DockerMountError(
          f'{" ".join(argv)} printed {type(containers).__name__}, not a list')
    return containers

  def mount(self, root, container, directory):
    """Mounts `container` of `root` read-only on `directory`."""
    self._run(self.command(root, 'mount', container, directory))

  def export(self, root, container, tar_path):
    """Writes `container`'s filesystem of `root` as a tar file."""
    self._run(self.command(root, 'export', container, '--output', tar_path))

  def unmount(self, directory):
    """Unmounts what `mount` mounted on `directory`."""
    # `umount` takes no --root: the mount point says what it is.
    prefix = ['sudo', '--non-interactive'] if self.sudo else []
    self._run(prefix + [self.binary, 'umount', directory])
