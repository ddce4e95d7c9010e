"""Drives the integration through Turbinia's own classes, for
tests/tests/turbinia.rs (which checks the results against the oracles).

  drive_turbinia.py WORK DOCKER_MOUNT enumerate DISK
      Runs the registered task on DISK (a host tree standing in for a
      mounted partition); prints the result and its evidence as JSON.
  drive_turbinia.py WORK DOCKER_MOUNT mount EVIDENCE_JSON
      Decodes one evidence item as a worker would, preprocesses it
      (CONTAINER_MOUNTED), prints the mount path, waits for a line on stdin,
      postprocesses it and prints what is left.

WORK is a scratch directory for the Turbinia config, mounts and output.
DOCKER_MOUNT_MODE in the environment becomes the config knob of that name.
"""

import json
import logging
import os
import sys


def configure(work, docker_mount):
  """Writes a Turbinia config (its template, our knobs, the documented
  registration line) and points Turbinia at it."""
  import importlib.util
  template = os.path.join(
      os.path.dirname(importlib.util.find_spec('turbinia').origin), 'config',
      'turbinia_config_tmpl.py')
  with open(template, encoding='utf-8') as handle:
    text = handle.read()
  for sub in ('mounts', 'tmp', 'output', 'log', 'resources'):
    os.makedirs(os.path.join(work, sub), exist_ok=True)
  text += f"""
MOUNT_DIR_PREFIX = {os.path.join(work, 'mounts')!r}
TMP_DIR = {os.path.join(work, 'tmp')!r}
OUTPUT_DIR = {os.path.join(work, 'output')!r}
LOG_DIR = {os.path.join(work, 'log')!r}
TMP_RESOURCE_DIR = {os.path.join(work, 'resources')!r}
RESOURCE_FILE = TMP_RESOURCE_DIR + '/turbinia-state.json'
RESOURCE_FILE_LOCK = RESOURCE_FILE + '.lock'
LOCK_FILE = {os.path.join(work, 'turbinia.lock')!r}
DOCKER_MOUNT_PATH = {docker_mount!r}
DOCKER_MOUNT_MODE = {os.environ.get('DOCKER_MOUNT_MODE', 'mount')!r}

import docker_mount_turbinia
docker_mount_turbinia.register_when_loaded()
"""
  with open(os.path.join(work, 'turbinia.conf'), 'w', encoding='utf-8') as out:
    out.write(text)
  os.environ['TURBINIA_CONFIG_PATH'] = work


def enumerate_containers(disk):
  from turbinia import config
  config.LoadConfig()
  from turbinia.evidence import Directory
  from turbinia.jobs import manager
  from turbinia.task_utils import TaskLoader
  from turbinia.workers import TurbiniaTaskResult
  import docker_mount_turbinia

  jobs = sorted(manager.JobsManager.GetJobNames())
  task = TaskLoader().get_task(docker_mount_turbinia.TASK_NAME)
  disk_evidence = Directory(source_path=disk, mount_path=disk)
  result = TurbiniaTaskResult(
      input_evidence=disk_evidence, no_output_manager=True,
      no_state_manager=True)
  result.setup(task)
  task.run(disk_evidence, result)
  print(json.dumps({
      'config': config.configSource,
      'jobs': jobs,
      'task': type(task).__name__,
      'successful': result.successful,
      'status': result.status,
      'report': result.report_data,
      'evidence': [e.serialize() for e in result.evidence],
  }, default=str))


def mount_container(evidence_json):
  from turbinia import config
  config.LoadConfig()
  from turbinia.evidence import EvidenceState, evidence_decode
  from turbinia.jobs import manager  # registers, as in a worker
  del manager

  with open(evidence_json, encoding='utf-8') as handle:
    container = evidence_decode(json.load(handle))
  container.preprocess(
      'test-task', required_states=[EvidenceState.CONTAINER_MOUNTED])
  path = container.mount_path
  print(json.dumps({
      'type': container.type,
      'name': container.name,
      'mount_path': path,
      'mounted': container.state[EvidenceState.CONTAINER_MOUNTED],
  }), flush=True)
  sys.stdin.readline()
  container.postprocess('test-task')
  print(json.dumps({
      'mounted': container.state[EvidenceState.CONTAINER_MOUNTED],
      'exists': bool(path) and os.path.lexists(path),
  }), flush=True)


def main():
  logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
  work, docker_mount, command, argument = sys.argv[1:5]
  configure(work, docker_mount)
  if command == 'enumerate':
    enumerate_containers(argument)
  elif command == 'mount':
    mount_container(argument)
  else:
    sys.exit(f'unknown command {command}')


if __name__ == '__main__':
  main()
