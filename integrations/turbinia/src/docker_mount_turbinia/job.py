"""The job creating a DockerMountContainersEnumerationTask per disk
partition (the successor of Turbinia's DockerContainersEnumerationJob)."""

from turbinia.evidence import DiskPartition
from turbinia.evidence import DockerContainer
from turbinia.jobs import interface

from docker_mount_turbinia.task import DockerMountContainersEnumerationTask


class DockerMountContainersEnumerationJob(interface.TurbiniaJob):
  """Enumerates the containers of a partition with docker-mount."""

  evidence_input = [DiskPartition]
  evidence_output = [DockerContainer]

  NAME = 'DockerMountContainersEnumerationJob'

  def create_tasks(self, evidence):
    """One task per evidence item."""
    return [DockerMountContainersEnumerationTask() for _ in evidence]
