"""Runs many console commands cheaply: TensorFlow and Keras are imported once, then each command
runs in a forked child, as its installed console-script stub (runpy), with its own argv.

  python -m tests.fork_runner JOBS.json   # [{"argv": [...], "out": path, "err": path, "env": {}}]

Prints one JSON line: the exit status of each job, in order. Each command's stdout and stderr go
to the job's files. Our own packages are not imported before the fork, so every child imports
them as the command would (flags, the stderr filter).
"""

import json
import os
import runpy
import sys

import keras  # pylint: disable=unused-import  (imported once, for every child)
import tensorflow  # pylint: disable=unused-import


def _child(job):
  for fd, path in ((1, job["out"]), (2, job["err"])):
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(target, fd)
    os.close(target)
  os.environ.update(job.get("env", {}))
  sys.argv = list(job["argv"])
  code = 0
  try:
    runpy.run_path(sys.argv[0], run_name="__main__")
  except SystemExit as e:
    if isinstance(e.code, str):
      print(e.code, file=sys.stderr)
      code = 1
    else:
      code = e.code or 0
  except BaseException:  # pylint: disable=broad-except  (a traceback is what the tests look for)
    import traceback  # pylint: disable=g-import-not-at-top
    traceback.print_exc()
    code = 99
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def main():
  with open(sys.argv[1]) as f:
    jobs = json.load(f)
  codes = []
  for job in jobs:
    pid = os.fork()
    if pid == 0:
      _child(job)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
  print(json.dumps(codes))


if __name__ == "__main__":
  main()
