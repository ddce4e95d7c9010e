"""docker-mount for Turbinia: a container enumeration task, a job, and the
DockerContainer pre/post-processors, replacing docker-explorer's.

Turbinia has no plugin mechanism: `register` adds the job and task to its
registries and points its DockerContainer evidence at docker-mount. Call
`register_when_loaded()` from the Turbinia config file (see README.md); it
registers once Turbinia's jobs are imported, in every Turbinia process.
"""

import importlib.abc
import importlib.util
import logging
import sys

__version__ = '0.1.0'

TASK_NAME = 'DockerMountContainersEnumerationTask'
#: docker-explorer's job, which `register` removes by default.
DOCKER_EXPLORER_JOB = 'DockerContainersEnumerationJob'

#: The Turbinia modules `register` changes.
_NEEDED = ('turbinia.jobs', 'turbinia.evidence', 'turbinia.task_utils')

_registered = False


def register(replace_docker_explorer=True):
  """Registers the job and task and installs the evidence processors.

  Idempotent. Imports Turbinia's job modules: do not call it while the
  Turbinia config is loading (use `register_when_loaded` there).

  Args:
    replace_docker_explorer (bool): also deregister docker-explorer's job,
        so a disk is not enumerated twice.
  """
  global _registered
  if _registered:
    return
  from turbinia import task_utils
  from turbinia.evidence import DockerContainer
  from turbinia.jobs import manager

  from docker_mount_turbinia import evidence
  from docker_mount_turbinia.job import DockerMountContainersEnumerationJob
  from docker_mount_turbinia.task import DockerMountContainersEnumerationTask

  loader = task_utils.TaskLoader
  if TASK_NAME not in loader.TASK_LIST:
    loader.TASK_LIST.append(TASK_NAME)
  builtin_get_task = loader.get_task

  def get_task(self, task_name):
    if task_name.lower() == TASK_NAME.lower():
      return DockerMountContainersEnumerationTask()
    return builtin_get_task(self, task_name)

  loader.get_task = get_task
  DockerContainer._preprocess = evidence.preprocess
  DockerContainer._postprocess = evidence.postprocess
  if DockerMountContainersEnumerationJob.NAME.lower() not in (
      manager.JobsManager.GetJobNames()):
    manager.JobsManager.RegisterJob(DockerMountContainersEnumerationJob)
  if replace_docker_explorer:
    manager.JobsManager.DeregisterJobs(jobs_denylist=[DOCKER_EXPLORER_JOB])
  _registered = True


class _AfterJobsImport(importlib.abc.MetaPathFinder):
  """Runs `register` right after `turbinia.jobs` is imported."""

  def __init__(self, replace_docker_explorer):
    self.replace = replace_docker_explorer

  def find_spec(self, fullname, path, target=None):
    if fullname != 'turbinia.jobs':
      return None
    sys.meta_path.remove(self)
    spec = importlib.util.find_spec(fullname)
    if spec is None or spec.loader is None:
      return spec
    exec_module = spec.loader.exec_module
    replace = self.replace

    def exec_then_register(module):
      exec_module(module)
      register(replace)

    spec.loader.exec_module = exec_then_register
    return spec


def _initializing(name):
  """Whether module `name` is being imported right now."""
  spec = getattr(sys.modules.get(name), '__spec__', None)
  return bool(getattr(spec, '_initializing', False))


def register_when_loaded(replace_docker_explorer=True):
  """Registers now if Turbinia's jobs are imported, else right after they
  are. Safe to call from the Turbinia config file.

  turbiniactl loads the config before it imports the jobs, so the
  registration runs right after they are. A program that imports
  `turbinia.jobs` before loading the config loads it in the middle of that
  import, when nothing can be registered yet: it gets a warning and must
  call `register()` itself once the import is done.
  """
  if 'turbinia.jobs' not in sys.modules:
    if not any(isinstance(f, _AfterJobsImport) for f in sys.meta_path):
      sys.meta_path.insert(0, _AfterJobsImport(replace_docker_explorer))
  elif any(_initializing(m) for m in _NEEDED):
    logging.getLogger(__name__).warning(
        'docker-mount-turbinia: the Turbinia config was loaded while %s '
        'were still being imported; call docker_mount_turbinia.register() '
        'after importing turbinia.jobs', ', '.join(_NEEDED))
  else:
    register(replace_docker_explorer)
