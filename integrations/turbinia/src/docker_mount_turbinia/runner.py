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

  def _json(self, argv, kind, accepted=(0,)):
    """Runs `argv` and decodes its stdout, which must be a JSON `kind`."""
    out = self._run(argv, accepted)
    try:
      value = json.loads(out.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as exception:
      raise DockerMountError(
          f'{" ".join(argv)} printed invalid JSON: {exception}') from exception
    if not isinstance(value, kind):
      raise DockerMountError(
          f'{" ".join(argv)} printed {type(value).__name__}, not {kind.__name__}')
    return value

  def roots(self, path):
    """The container roots docker-mount finds in `path`, as `--root` values.

    `path` may be the mount point of a whole host filesystem (docker-mount
    then finds its docker data roots from the host's configuration,
    userns-remap and rootless roots, podman's and containerd's) or one
    root. A filesystem without any gives an empty list.
    """
    report = self._json(self.command(path, 'roots', '--json'), dict)
    return [
        r['select_with'] for r in report.get('roots') or []
        if isinstance(r, dict) and r.get('present') and r.get('select_with')
    ]

  def list_containers(self, root, extra_args=()):
    """The containers of `root` (one of `roots`) as docker-mount's `list
    --all --json` prints them: dicts with `id`, `name`, `image`, `state`,
    ... and `error` for one that could not be read."""
    argv = self.command(root, 'list', '--all', '--json', *extra_args)
    # Exit status 3: partial, the unreadable containers are rows with an
    # `error` (and named on stderr); the others are listed.
    return self._json(argv, list, accepted=(0, PARTIAL))

  def root_holding(self, path, container):
    """The root of `path` (see `roots`) that holds container `container`
    (its id, as `list_containers` gave it)."""
    roots = self.roots(path)
    if len(roots) == 1:
      return roots[0]
    for root in roots:
      if any(c.get('id') == container for c in self.list_containers(root)):
        return root
    raise DockerMountError(
        f'no container root in {path} holds container {container} '
        f'(roots: {", ".join(roots) or "none"})')

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
