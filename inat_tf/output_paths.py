"""Output paths, checked before a command starts its work (issue 25): a result that cannot be
written is refused in one line before any model is loaded or shard read, instead of failing
after a whole pass over the data.

Free of TensorFlow for local paths (the commands call these from inat_tf/commands/ before the
implementation is imported); a remote path (gs://, any tf.io.gfile scheme) is made with
tf.io.gfile and not probed further.
"""

import os
import tempfile

from inat_tf.errors import UsageError


def folder(path, flag, create=True):
  """Makes folder `path` and its parents (create=True, as `mkdir -p`), then checks that a file
  can be created in it. Raises UsageError naming --flag, the path and why; with create=False a
  missing folder passes (the command reports what it lacks itself)."""
  if "://" in path:
    if create:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top  (remote paths only)
      try:
        tf.io.gfile.makedirs(path)
      except tf.errors.OpError as e:
        raise UsageError(f"--{flag}={path}: cannot make that folder ({e.message})") from None
    return
  target = path or "."
  if not create and not os.path.exists(target):
    return
  try:
    os.makedirs(target, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target, prefix=".inat-tf-write-check-"):
      pass
  except OSError as e:
    reason = e.strerror or str(e)
    if e.filename and os.path.abspath(e.filename) != os.path.abspath(target):
      reason += f": {e.filename}"
    raise UsageError(f"--{flag}={path}: cannot write there ({reason}); give a folder this user "
                     f"can write to") from None


def file(path, flag):
  """An output file: refuses a path that is a folder, then makes and checks its folder as
  folder() does."""
  if not path:
    return
  if "://" not in path and os.path.isdir(path):
    raise UsageError(f"--{flag}={path} is a folder; give a file name, e.g. {path.rstrip('/')}/"
                     f"out{os.path.splitext(path)[1] or '.csv'}")
  folder(os.path.dirname(path), flag)
