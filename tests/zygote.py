"""A zygote for the tests' commands: TensorFlow and Keras are imported once, then every command
runs in a child forked from this process, as its installed console-script stub (runpy) or as
`python -c SCRIPT`, with its own argv, environment, working directory and output files.

Why: importing TensorFlow and Keras costs ~3.5 CPU-seconds per process, and the suite starts some
forty commands on two cores (issue 18). A forked child is a real process: its own pid, exit
status, signals (SIGINT, SIGKILL) and file descriptors. What it does not repeat is TensorFlow's
import, so the test of the start-up itself (the stderr filter against TensorFlow's C++ records)
starts a plain subprocess instead. Our own packages are never imported here: each child imports
them as the command would, and a child that loads a SavedModel shows that serving needs none of
them (the tests assert it from sys.modules). TensorFlow's C++ log level is fixed when the zygote
imports it (TF_CPP_MIN_LOG_LEVEL=2; a quiet command sets 3 for itself): a child whose environment
has no TF_CPP_* variable runs the commands' default, quiet path (inat_tf/cli.py: its stderr
filter then drops even the E-level records that level 3 would have hidden at the source), one
given TF_CPP_MIN_LOG_LEVEL (most tests) runs as if the user chose that level; the test of a
user's own level runs a plain subprocess.

Protocol (JSON lines; tests/helpers.py speaks it): a request on stdin
  {"id": N, "argv": [...], "env": {...}, "cwd": DIR, "out": PATH, "err": PATH}
is answered at once with {"id": N, "pid": PID}; when that child ends, {"id": N, "code": C} (C as
subprocess reports it: the exit status, or -SIGNAL). End of stdin: wait for the children, exit.
"""

import atexit
import json
import os
import runpy
import select
import sys
import threading

import keras  # pylint: disable=unused-import  (imported once, for every child)
import tensorflow  # pylint: disable=unused-import


def _reply(message):
  os.write(1, (json.dumps(message) + "\n").encode())  # no Python-level lock to inherit


def _child(job):
  code = 0
  try:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, job["out"]), (2, job["err"])):
      target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
      os.dup2(target, fd)
      os.close(target)
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(job["cwd"])
    argv = list(job["argv"])
    if argv[1:2] == ["-c"]:  # python -c SCRIPT ARGS...
      sys.argv = ["-c"] + argv[3:]
      sys.path[0] = ""
      exec(compile(argv[2], "<string>", "exec"), {"__name__": "__main__"})  # pylint: disable=exec-used
    else:
      sys.argv = argv
      sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))  # as for an installed script
      runpy.run_path(argv[0], run_name="__main__")
  except SystemExit as e:
    if isinstance(e.code, str):
      print(e.code, file=sys.stderr)
      code = 1
    else:
      code = e.code or 0
  except BaseException:  # pylint: disable=broad-except  (as the interpreter itself would report)
    import traceback  # pylint: disable=g-import-not-at-top
    traceback.print_exc()
    code = 1
  try:
    # What the interpreter does at exit: join non-daemon threads, then run the exit handlers
    # (those registered by importing TensorFlow and Keras here too, as in a fresh process).
    threading._shutdown()  # pylint: disable=protected-access
    atexit._run_exitfuncs()  # pylint: disable=protected-access
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access


def main():
  pending, children, stdin_open = b"", {}, True
  while stdin_open or children:
    if stdin_open and select.select([0], [], [], 0.05)[0]:
      data = os.read(0, 1 << 16)
      stdin_open = bool(data)
      pending += data
      while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
          _child(job)
        children[pid] = job["id"]
        _reply({"id": job["id"], "pid": pid})
    elif not stdin_open:
      select.select([], [], [], 0.05)
    while children:
      try:
        pid, status = os.waitpid(-1, os.WNOHANG)
      except ChildProcessError:
        break
      if pid == 0:
        break
      _reply({"id": children.pop(pid), "code": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
  main()
