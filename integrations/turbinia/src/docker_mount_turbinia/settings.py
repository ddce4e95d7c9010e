"""The Turbinia config knobs of this integration.

Set them in the Turbinia config file (`turbinia.conf`/`.turbiniarc`); all
are optional:

* `DOCKER_MOUNT_PATH`: path of the docker-mount executable (default: found
  in PATH).
* `DOCKER_MOUNT_SUDO`: prefix commands with `sudo` (default: when the
  worker does not run as root).
* `DOCKER_MOUNT_MODE`: `'mount'` (default) mounts a container read-only
  for downstream tasks; `'export'` writes it as a tar and unpacks that into
  the task's directory, for workers that may not mount.
"""

from turbinia import config

from docker_mount_turbinia.runner import DockerMount

MODES = ('mount', 'export')


def _knob(name, default=None):
  loaded = config.LoadConfig()
  value = getattr(loaded, name, None)
  return default if value is None else value


def docker_mount():
  """The docker-mount runner the config asks for."""
  return DockerMount(
      binary=_knob('DOCKER_MOUNT_PATH'), sudo=_knob('DOCKER_MOUNT_SUDO'))


def mode():
  """`'mount'` or `'export'` (DOCKER_MOUNT_MODE)."""
  value = _knob('DOCKER_MOUNT_MODE', 'mount')
  if value not in MODES:
    raise ValueError(
        f'DOCKER_MOUNT_MODE is {value!r} in {config.configSource}; '
        f'expected one of {MODES}')
  return value
