"""Run plumbing the commands share, as plain functions: atomic JSON files (builder and both
trainers), and for inat-train and inat-detect-train the --weights argument, batch-norm momentum,
and where the training loop stops next."""

import json
import os
import signal
import threading

import tensorflow as tf

from inat_tf import cli


def write_json(path, document):
  """Atomic on any gfile path: a reader sees the old file or the whole new one, never half.

  Writes `path.incomplete-<pid>`, then renames it over `path` (the pid keeps concurrent writers,
  e.g. job-array tasks, from sharing a temporary name).
  """
  write_text(path, json.dumps(document, indent=1, sort_keys=True))


def write_text(path, text):
  """Atomic as write_json, for any text (inat-train's train.flags)."""
  write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data):
  """Atomic as write_json, for bytes (a TFLite model, a PNG). A Ctrl-C removes the temporary
  file (cli.on_interrupt)."""
  temporary = f"{path}.incomplete-{os.getpid()}"
  cli.writing(temporary)
  try:
    with tf.io.gfile.GFile(temporary, "wb") as f:
      f.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)
  finally:
    cli.finished(temporary)


def save_folder(save, path):
  """save(temporary path), then that folder renamed to `path` (which must not exist): a
  SavedModel version dir appears whole or not at all, so TF Serving never loads half of one."""
  temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.incomplete-"
                           f"{os.getpid()}")
  cli.writing(temporary)
  try:
    save(temporary)
    tf.io.gfile.rename(temporary, path)
  finally:
    cli.finished(temporary)


def read_json(path):
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def weights_argument(weights):
  """--weights as models.build takes it: None for '', 'none' or 'random'; else 'imagenet' or a
  file path, unchanged."""
  return None if weights.lower() in ("", "none", "random") else weights


def set_batch_norm_momentum(model, momentum):
  """Sets every BatchNormalization layer's moving-average momentum, nested layers included;
  a negative momentum leaves the network's default (Keras: 0.99)."""
  if momentum < 0:
    return
  import keras  # pylint: disable=g-import-not-at-top  (the builder shares this module, not Keras)
  for layer in model._flatten_layers():  # pylint: disable=protected-access  (nested backbones)
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = momentum


def steps_to_next_stop(step, total_steps, every=(), stops=()):
  """Steps the loop runs before it must stop to log, save, evaluate or change phase: up to
  total_steps, the next multiple of each period in `every`, or the first of `stops` after step."""
  return min([total_steps] + [(step // period + 1) * period for period in every] +
             [stop for stop in stops if stop > step]) - step


class CtrlC:
  """Ctrl-C (SIGINT) as a request to stop at the training loop's next boundary.

  Python's default handler raises KeyboardInterrupt at whatever bytecode runs next; inside
  TensorFlow that can be a __del__ or a callback, where Python prints "Exception ignored" and goes
  on, so a Ctrl-C could be lost and training would keep going. Within `with CtrlC() as ctrl_c:`
  the first Ctrl-C only sets ctrl_c.pressed, which the loop checks at each boundary
  (`ctrl_c.check()` raises KeyboardInterrupt there); a second Ctrl-C raises KeyboardInterrupt at
  once, for a user who will not wait. Outside the main thread (where signal handlers cannot be
  set) it changes nothing.
  """

  def __init__(self):
    self.pressed = False
    self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    if self.pressed:
      raise KeyboardInterrupt
    self.pressed = True

  def check(self):
    if self.pressed:
      raise KeyboardInterrupt

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def __exit__(self, *exc_info):
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)
    return False
