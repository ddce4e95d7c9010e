"""Checks JSONL timelines against Timesketch's import rules, for
tests/tests/timesketch.rs.

  timesketch_check.py FILE.jsonl...

Two checks per line:
* the import client (timesketch-import-client from PyPI) prepares the line
  as `ImportStreamer.add_json` does before uploading (its `_fix_dict`,
  which needs no server): it must not have to invent `message` or
  `timestamp_desc`, must keep every field (it drops `_`-prefixed ones), and
  must parse `datetime`;
* the server's JSONL rules (timesketch/lib/utils.py
  read_and_validate_jsonl, which runs inside the server and is not in the
  client), reproduced: `message`, `datetime`, `timestamp_desc` present,
  `datetime` parsed by dateutil, and our `timestamp` (which the server
  keeps when present) equal to it in microseconds.

Prints a JSON summary; exits 1 listing the first failures.
"""

import datetime
import json
import re
import sys

import dateutil.parser
from timesketch_import_client import importer

REQUIRED = ('message', 'datetime', 'timestamp_desc')
ISO_8601 = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$')
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def micros(instant):
  return (instant - EPOCH) // datetime.timedelta(microseconds=1)


def problems(ours):
  """What is wrong with one decoded JSONL line for Timesketch (empty if
  nothing)."""
  if not isinstance(ours, dict):
    return ['not a JSON object']
  found = []
  for field in REQUIRED:
    if not isinstance(ours.get(field), str) or not ours[field]:
      found.append(f'{field} missing or empty')
  if found:
    return found
  if not ISO_8601.match(ours['datetime']):
    found.append(f'datetime {ours["datetime"]!r} is not ISO 8601')
  # The server's parse, and its timestamp rule.
  try:
    instant = dateutil.parser.parse(ours['datetime'])
  except (ValueError, OverflowError) as exception:
    return found + [f'dateutil cannot parse datetime: {exception}']
  if instant.tzinfo is None:
    found.append('datetime has no time zone')
  elif micros(instant) != ours.get('timestamp'):
    found.append(
        f'timestamp {ours.get("timestamp")} is not datetime '
        f'{ours["datetime"]} in microseconds ({micros(instant)})')
  # The import client's preparation of the line.
  fixed = dict(ours)
  importer.ImportStreamer()._fix_dict(fixed)  # pylint: disable=protected-access
  if not fixed.get('datetime'):
    found.append('the import client could not parse datetime')
  elif dateutil.parser.parse(fixed['datetime']) != instant:
    found.append(f'the import client moved datetime to {fixed["datetime"]}')
  for field in ('message', 'timestamp_desc'):
    if fixed.get(field) != ours[field]:
      found.append(f'the import client replaced {field}')
  dropped = sorted(set(ours) - set(fixed))
  if dropped:
    found.append(f'the import client dropped {dropped}')
  return found


def main():
  lines = 0
  failures = []
  fields = set()
  for path in sys.argv[1:]:
    with open(path, encoding='utf-8') as handle:
      for number, line in enumerate(handle, 1):
        lines += 1
        try:
          ours = json.loads(line)
        except json.JSONDecodeError as exception:
          failures.append(f'{path}:{number}: not JSON: {exception}')
          continue
        if isinstance(ours, dict):
          fields.update(ours)
        for problem in problems(ours):
          failures.append(f'{path}:{number}: {problem}')
  print(json.dumps({
      'lines': lines,
      'failures': len(failures),
      'first_failures': failures[:20],
      'fields': sorted(fields),
  }))
  sys.exit(1 if failures or not lines else 0)


if __name__ == '__main__':
  main()
