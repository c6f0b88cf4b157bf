"""Small helpers shared by tests, and the tests' way to start commands (`run`, `start`)."""

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tflite_probabilities(model_path, images):
  """[n, classes] outputs of a one-input TFLite model (inat-export's model.tflite, model_int8.tflite)
  for n images of [size, size, 3] in [0, 255], fed one at a time as [1, size, size, 3] float32."""
  # Imported here: most users of helpers only start commands and need neither.
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  interpreter = tf.lite.Interpreter(model_path=str(model_path))
  interpreter.allocate_tensors()
  source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
  outputs = []
  for image in images:
    interpreter.set_tensor(source["index"], np.asarray(image, np.float32)[np.newaxis])
    interpreter.invoke()
    outputs.append(interpreter.get_tensor(target["index"])[0])
  return np.array(outputs)


def float_tflite(trained, path):
  """Writes inat-export's model.tflite of a TrainedModel to `path` and returns it: the float
  conversion alone, for tests about the network, where export_tflite's answer, int8 and
  full-integer conversions (each a full network's) would only add time."""
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  with open(path, "wb") as f:
    f.write(export.tflite_bytes(export.serving_module(trained, top_k=5).probabilities))
  return path


def console_script(name):
  """Path of an installed console script of this package, in the running interpreter's venv."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: install the project first (pip install -e .)")
  return path


# Read once, when Keras or TensorFlow is imported: a command that sets one of them differently
# needs a zygote that imported them with its value.
IMPORT_TIME_VARIABLES = ("KERAS_HOME", "KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")


class _Zygote:
  """A tests/zygote.py process: commands forked from it skip TensorFlow's ~3.5 CPU-second
  import. One per pytest-xdist worker (and one more while a command needs other
  IMPORT_TIME_VARIABLES); it ends with the worker."""

  def __init__(self, import_time_environment):
    self._process = subprocess.Popen(
        [sys.executable, "-m", "tests.zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=_REPOSITORY, env={**{k: v for k, v in os.environ.items()
                                 if k not in IMPORT_TIME_VARIABLES},
                              **import_time_environment, "TF_CPP_MIN_LOG_LEVEL": "2"})
    self._next_id, self._pending, self._replies = 0, b"", []
    atexit.register(self.close)

  def close(self):
    """Ends the zygote once its running children have ended."""
    self._process.stdin.close()

  def submit(self, job):
    job_id, self._next_id = self._next_id, self._next_id + 1
    self._process.stdin.write((json.dumps({"id": job_id, **job}) + "\n").encode())
    self._process.stdin.flush()
    pid = self.reply(job_id, "pid", timeout=60)
    if pid is None:
      raise RuntimeError(f"tests/zygote.py did not start {job['argv']} within 60 s")
    return job_id, pid

  def alive(self):
    return self._process.poll() is None

  def reply(self, job_id, key, timeout):
    """The zygote's `key` reply for job_id (None if none came within timeout seconds)."""
    deadline = time.monotonic() + timeout
    while True:
      for message in self._replies:
        if message["id"] == job_id and key in message:
          self._replies.remove(message)
          return message[key]
      left = deadline - time.monotonic()
      if left <= 0:
        return None
      if select.select([self._process.stdout], [], [], left)[0]:
        data = os.read(self._process.stdout.fileno(), 1 << 16)
        if not data:
          raise RuntimeError(f"tests/zygote.py ended (exit {self._process.wait()})")
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        self._replies.extend(json.loads(line) for line in lines)


_zygotes = {}  # import-time variables (sorted items) -> _Zygote


def _import_time_key(environment):
  return tuple(sorted((k, environment[k]) for k in IMPORT_TIME_VARIABLES if k in environment))


def _zygote_for(environment):
  key = _import_time_key(environment)
  if key not in _zygotes or not _zygotes[key].alive():
    default = _import_time_key(os.environ)
    for other in [k for k in _zygotes if k != default]:  # at most one other: each costs ~0.8 GB
      _zygotes.pop(other).close()
    _zygotes[key] = _Zygote(dict(key))
  return _zygotes[key]


class Command:
  """A command running in a child of the zygote, with Popen's pid, poll, wait and send_signal;
  stdout and stderr (text) are read once it has ended."""

  def __init__(self, argv, env=None, cwd=None):
    environment = dict(os.environ if env is None else env)
    self.args = [str(a) for a in argv]
    self._zygote = _zygote_for(environment)
    self._folder = tempfile.mkdtemp(prefix="command-")
    self._out, self._err = (os.path.join(self._folder, name) for name in ("out", "err"))
    for path in (self._out, self._err):
      open(path, "w").close()  # readable before the child has opened them (first_stdout_line)
    self._id, self.pid = self._zygote.submit({
        "argv": self.args, "env": environment,
        "cwd": str(cwd or os.getcwd()), "out": self._out, "err": self._err})
    self.returncode = self.stdout = self.stderr = None

  def poll(self):
    if self.returncode is None:
      self._finish(self._zygote.reply(self._id, "code", timeout=0))
    return self.returncode

  def wait(self, timeout=900):
    """The exit status; after timeout seconds the command is killed (as subprocess.run does)
    and TimeoutExpired raised."""
    if self.returncode is None:
      code = self._zygote.reply(self._id, "code", timeout=timeout)
      if code is None:
        os.kill(self.pid, signal.SIGKILL)  # still the zygote's unreaped child: no code came
        self._finish(self._zygote.reply(self._id, "code", timeout=60))
        raise subprocess.TimeoutExpired(self.args, timeout)
      self._finish(code)
    return self.returncode

  def first_stdout_line(self, timeout=120):
    """The first line the command writes to stdout, while it runs (e.g. a server's address)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      with open(self._out) as out:
        text = out.read()
      if "\n" in text or self.poll() is not None:
        return text.split("\n", 1)[0]
      time.sleep(0.05)
    raise subprocess.TimeoutExpired(self.args, timeout)

  def output_so_far(self):
    """(stdout, stderr) the running command has written so far."""
    with open(self._out) as out, open(self._err) as err:
      return out.read(), err.read()

  def send_signal(self, signal_number):
    if self.poll() is None:  # not yet reaped by the zygote, so the pid is still this command's
      os.kill(self.pid, signal_number)

  def _finish(self, code):
    if code is not None:
      self.returncode = code
      with open(self._out) as out, open(self._err) as err:
        self.stdout, self.stderr = out.read(), err.read()
      shutil.rmtree(self._folder, ignore_errors=True)


def start(argv, *, env=None, cwd=None):
  """Starts argv (a console script path, or [sys.executable, "-c", SCRIPT, ...]) in a child of
  the zygote; returns the running Command."""
  return Command(argv, env, cwd)


def run(argv, *, env=None, cwd=None, timeout=900):
  """argv run to the end in a child of the zygote, as subprocess.run(..., capture_output=True,
  text=True) would: the ended Command (returncode, stdout, stderr)."""
  command = start(argv, env=env, cwd=cwd)
  command.wait(timeout)
  return command
