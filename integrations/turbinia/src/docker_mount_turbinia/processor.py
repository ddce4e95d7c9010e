"""Evidence processor: a container's filesystem as a directory for
downstream tasks, and its removal afterwards.

The successor of turbinia/processors/docker.py (docker-explorer's `de.py
mount`): same entry point and return value, but the work is done by
docker-mount, read-only, mounted (kernel overlay or FUSE, whichever
docker-mount picks) or exported.
"""

import logging
import os
import re
import shutil
import subprocess
import tempfile

from turbinia import TurbiniaException
from turbinia import config

from docker_mount_turbinia import settings
from docker_mount_turbinia.runner import DockerMountError

log = logging.getLogger(__name__)


def _mount_prefix():
  prefix = config.MOUNT_DIR_PREFIX
  if os.path.exists(prefix) and not os.path.isdir(prefix):
    raise TurbiniaException(f'Mount dir {prefix} exists but is no directory')
  try:
    os.makedirs(prefix, exist_ok=True)
  except OSError as exception:
    raise TurbiniaException(
        f'Could not create mount directory {prefix}: {exception}') from exception
  return prefix


def PreprocessMountDockerFS(docker_dir, container_id):
  """Makes container `container_id` of `docker_dir` a local directory.

  Args:
    docker_dir (str): the mount point of the host filesystem (docker-mount
        finds its container roots, and the one holding the container), or
        a docker data root.
    container_id (str): the container's full id.

  Returns:
    str: the directory holding the container's filesystem.

  Raises:
    TurbiniaException: if docker-mount is missing or failed.
  """
  config.LoadConfig()
  if not os.path.isdir(docker_dir):
    raise TurbiniaException(f'Docker path {docker_dir} is not a directory')
  target = tempfile.mkdtemp(prefix='turbinia-dm-', dir=_mount_prefix())
  try:
    runner = settings.docker_mount()
    root = runner.root_holding(docker_dir, container_id)
    if settings.mode() == 'mount':
      log.info(f'docker-mount: mounting {container_id} of {root} on {target}')
      runner.mount(root, container_id, target)
    else:
      _export_into(runner, root, container_id, target)
  except (DockerMountError, ValueError, OSError) as exception:
    shutil.rmtree(target, ignore_errors=True)
    raise TurbiniaException(
        f'Could not make container {container_id} available: {exception}'
    ) from exception
  return target


def _export_into(runner, root, container_id, target):
  """Exports the container as a tar beside `target` and unpacks it there."""
  log.info(f'docker-mount: exporting {container_id} of {root} into {target}')
  with tempfile.TemporaryDirectory(
      prefix='turbinia-dm-tar-', dir=config.TMP_DIR) as scratch:
    tar = os.path.join(scratch, 'container.tar')
    runner.export(root, container_id, tar)
    # tar(1) rather than tarfile: Python 3.11.2 has no extraction filter,
    # and GNU tar keeps members inside the directory by default. As root it
    # keeps the owners (an analysis needs them), as a user it cannot.
    done = subprocess.run(
        ['tar', '--extract', '--file', tar, '--directory', target,
         '--delay-directory-restore'],
        stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
      raise DockerMountError(
          f'tar could not unpack {tar}: '
          f'{done.stderr.decode("utf-8", "replace").strip()}')


def _unescape_mountinfo(field):
  """A mountinfo path: spaces, tabs, newlines, backslashes octal-escaped."""
  return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def is_mount_point(path):
  """Whether something is mounted on `path`, from /proc/self/mountinfo
  (os.path.ismount misses a bind mount within one filesystem, which is
  what docker-mount makes of a full-tree layer)."""
  real = os.path.realpath(path)
  with open('/proc/self/mountinfo', encoding='utf-8', errors='surrogateescape') as info:
    return any(
        len(fields) > 4 and _unescape_mountinfo(fields[4]) == real
        for fields in (line.split(' ') for line in info))


def PostprocessUnmountDockerFS(path):
  """Undoes PreprocessMountDockerFS: unmounts (or deletes the unpacked
  export at) `path` and removes the directory.

  Raises:
    TurbiniaException: if the unmount failed.
  """
  if is_mount_point(path):
    log.info(f'docker-mount: unmounting {path}')
    try:
      settings.docker_mount().unmount(path)
    except DockerMountError as exception:
      raise TurbiniaException(
          f'Could not unmount {path}: {exception}') from exception
    try:
      os.rmdir(path)
    except OSError as exception:
      raise TurbiniaException(
          f'Could not remove mount directory {path}: {exception}') from exception
  else:
    log.info(f'docker-mount: removing the exported tree {path}')
    shutil.rmtree(path)
