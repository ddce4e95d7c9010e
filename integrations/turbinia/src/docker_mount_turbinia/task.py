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


def describe(container, root):
  """One line naming a container as `list --json` describes it."""
  return 'container {0} ({1}), image {2}, {3}, in {4}'.format(
      container.get('name') or '?', container['id'],
      container.get('image') or '?', container.get('state') or '?', root)


class DockerMountContainersEnumerationTask(TurbiniaTask):
  """Enumerates the docker (and podman, containerd) containers of a
  mounted disk with docker-mount."""

  REQUIRED_STATES = [state.ATTACHED, state.MOUNTED]

  TASK_CONFIG = {
      # Extra arguments of `docker-mount list`, e.g. filters:
      # ['--skip-support', '--last', '10'].
      'list_args': [],
  }

  def run(self, evidence, result):
    """Adds one DockerContainer evidence item per container of every
    container root docker-mount finds on the evidence's mount point.

    A root or a container docker-mount could not read is reported, and
    the others are still enumerated; the task fails if a root could not
    be listed.
    """
    found, lines, unreadable, failed_roots = [], [], [], []
    success = False
    try:
      if not evidence.mount_path:
        raise TurbiniaException(f'evidence {evidence.name} is not mounted')
      runner = settings.docker_mount()
      list_args = self.task_config.get('list_args') or []
      for root in runner.roots(evidence.mount_path):
        try:
          containers = runner.list_containers(root, list_args)
        except DockerMountError as exception:
          failed_roots.append(str(exception))
          continue
        for container in containers:
          if container.get('error'):
            unreadable.append(
                f'{container.get("id")} in {root}: {container["error"]}')
            continue
          item = DockerContainer(
              container_id=container['id'],
              description=describe(container, root))
          result.add_evidence(item, evidence.config)
          found.append(container['id'])
          lines.append(describe(container, root))
      status = 'Found {0:d} containers: {1:s}'.format(
          len(found), ' '.join(found))
      for what, problems in (('unreadable', unreadable),
                             ('roots failed', failed_roots)):
        if problems:
          status += '; {0:d} {1:s}: {2:s}'.format(
              len(problems), what, '; '.join(problems))
      success = not failed_roots
    except (TurbiniaException, DockerMountError) as exception:
      status = f'Error enumerating containers with docker-mount: {exception}'
    result.report_data = '\n'.join([status] + lines)
    result.report_priority = Priority.LOW
    result.close(self, success=success, status=status)
    return result
