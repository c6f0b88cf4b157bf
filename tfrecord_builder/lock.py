"""One build per data dir and task: a lock file that names its owner and outlives a kill -9.

DATA_DIR/_build/lock-task-00000-of-00001 holds {"pid", "host", "start", "since"}. A second build
of the same task refuses, naming the first. A lock whose owner is gone (same host, and no process
with that pid and start time) is stale and taken over, so a killed build never blocks its rerun.
On a local disk the lock is created atomically (a hard link of a complete file: it appears whole
or not at all); gfile paths (gs://) have no atomic create, so there two builds started within the
same second could both proceed (documented in BUILD_NOTES.md).
"""

import datetime
import json
import os
import socket

import tensorflow as tf

from inat_tf import records


class Locked(Exception):
  """Another live build holds the lock; the message names it and what to do."""


def _start_ticks(pid):
  """Start time of a process (clock ticks since boot, /proc/PID/stat field 22), or None."""
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      return int(f.read().rsplit(b")", 1)[1].split()[19])
  except (OSError, ValueError, IndexError):
    return None


def _alive(owner):
  pid = owner.get("pid")
  if not isinstance(pid, int):
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # exists, owned by another user
  start = _start_ticks(pid)
  return start is None or owner.get("start") in (None, start)  # else: the pid was reused


class BuildLock:
  """Context manager holding DATA_DIR/_build/lock-<task> for the duration of a build."""

  def __init__(self, data_dir, task_name):
    self.directory = os.path.join(data_dir, records.BUILD_DIR)
    self.path = os.path.join(self.directory, records.LOCK_PREFIX + task_name)
    self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                  "start": _start_ticks(os.getpid()),
                  "since": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds")}

  def _read(self):
    try:
      with tf.io.gfile.GFile(self.path) as f:
        return json.load(f)
    except (tf.errors.NotFoundError, FileNotFoundError):
      return None
    except ValueError:
      return {}  # written by nobody we know of: treated as stale

  def _create(self):
    """True when this process now holds the lock file."""
    text = json.dumps(self.owner)
    if "://" in self.path:
      if tf.io.gfile.exists(self.path):
        return False
      with tf.io.gfile.GFile(self.path, "w") as f:
        f.write(text)
      return True
    temporary = f"{self.path}.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
      f.write(text)
    try:
      os.link(temporary, self.path)  # atomic, and fails if the lock exists
      return True
    except FileExistsError:
      return False
    finally:
      os.remove(temporary)

  def __enter__(self):
    tf.io.gfile.makedirs(self.directory)
    for _ in range(3):
      if self._create():
        return self
      owner = self._read()
      if owner is None:
        continue  # released meanwhile
      same_host = owner.get("host") == self.owner["host"]
      if owner and (not same_host or _alive(owner)):
        where = "this host" if same_host else f"host {owner.get('host')}"
        raise Locked(
            f"{os.path.dirname(self.directory)} is being built by another inat-build (pid "
            f"{owner.get('pid')} on {where}, since {owner.get('since')}). Wait for it to "
            f"finish; if that process no longer runs, delete {self.path} and rerun.")
      # Stale (its owner was killed): move it aside atomically, so one taker wins.
      try:
        tf.io.gfile.rename(self.path, f"{self.path}.stale-{os.getpid()}", overwrite=False)
        tf.io.gfile.remove(f"{self.path}.stale-{os.getpid()}")
      except (tf.errors.NotFoundError, tf.errors.AlreadyExistsError):
        pass
    raise Locked(f"could not take the lock {self.path}; rerun the same command")

  def __exit__(self, *exc):
    owner = self._read()
    if owner and owner.get("pid") == self.owner["pid"] and owner.get(
        "host") == self.owner["host"]:
      tf.io.gfile.remove(self.path)
