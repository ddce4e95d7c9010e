"""The task enumerating a disk's containers with docker-mount.

The successor of Turbinia's DockerContainersEnumerationTask (which ran
docker-explorer's `de.py list all_containers`): one DockerContainer
evidence item per container, for the downstream tasks that mount it.
"""

from turbinia import TurbiniaException
from turbinia.evidence import DockerContainer
from turbinia.evidence import EvidenceState as state
from turbinia.workers import Priority
from turbinia.workers import TurbiniaTask

from docker_mount_turbinia import settings
from docker_mount_turbinia.runner import DockerMountError


def describe(container):
  """One line naming a container as `list --json` describes it."""
  return 'docker container {0} ({1}), image {2}, {3}'.format(
      container.get('name') or '?', container['id'],
      container.get('image') or '?', container.get('state') or '?')


class DockerMountContainersEnumerationTask(TurbiniaTask):
  """Enumerates the docker (and podman, containerd) containers of a
  mounted disk with docker-mount."""

  REQUIRED_STATES = [state.ATTACHED, state.MOUNTED]

  TASK_CONFIG = {
      # Extra arguments of `docker-mount list`, e.g. filters:
      # ['--filter', 'label=app=web', '--last', '10'].
      'list_args': [],
  }

  def list_containers(self, evidence):
    """The containers docker-mount finds under the evidence's mount point.

    Raises:
      TurbiniaException: if docker-mount is missing, failed, or printed
          something else than a JSON list.
    """
    if not evidence.mount_path:
      raise TurbiniaException(f'evidence {evidence.name} is not mounted')
    try:
      return settings.docker_mount().list_containers(
          evidence.mount_path, self.task_config.get('list_args') or [])
    except DockerMountError as exception:
      raise TurbiniaException(str(exception)) from exception

  def run(self, evidence, result):
    """Adds one DockerContainer evidence item per container found.

    A container docker-mount could not read is reported, not added: the
    others are still enumerated.
    """
    success = False
    try:
      containers = self.list_containers(evidence)
      found, broken = [], []
      for container in containers:
        if container.get('error'):
          broken.append(f'{container.get("id")}: {container["error"]}')
          continue
        item = DockerContainer(
            container_id=container['id'], description=describe(container))
        result.add_evidence(item, evidence.config)
        found.append(container['id'])
      status = 'Found {0:d} containers: {1:s}'.format(
          len(found), ' '.join(found))
      if broken:
        status += '; {0:d} unreadable: {1:s}'.format(
            len(broken), '; '.join(broken))
      result.report_data = '\n'.join(
          [status] + [describe(c) for c in containers if not c.get('error')])
      success = True
    except TurbiniaException as exception:
      status = f'Error enumerating containers with docker-mount: {exception}'
      result.report_data = status
    result.report_priority = Priority.LOW
    result.close(self, success=success, status=status)
    return result
