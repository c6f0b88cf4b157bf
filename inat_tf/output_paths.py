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
  _writable(path, flag, path, create)


def file(path, flag):
  """An output file: refuses a path that is a folder, then makes and checks its folder as
  folder() does."""
  if not path:
    return
  if "://" not in path and os.path.isdir(path):
    raise UsageError(f"--{flag}={path} is a folder; give a file name, e.g. "
                     f"{os.path.join(path, 'out' + (os.path.splitext(path)[1] or '.csv'))}")
  _writable(os.path.dirname(path), flag, path, create=True)


def _writable(target, flag, value, create):
  """Checks folder `target` for --flag=value (the folder itself, or an output file's)."""
  where = "there" if target == value else f"in {target or '.'}"
  if "://" in target:
    if create:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top  (remote paths only)
      try:
        tf.io.gfile.makedirs(target)
      except tf.errors.OpError as e:
        raise UsageError(f"--{flag}={value}: cannot write {where} ({e.message})") from None
    return
  target = target or "."
  if not create and not os.path.exists(target):
    return
  try:
    if os.path.exists(target) and not os.path.isdir(target):
      raise NotADirectoryError(20, "a file, not a folder")
    os.makedirs(target, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target, prefix=".inat-tf-write-check-"):
      pass
  except OSError as e:
    raise UsageError(f"--{flag}={value}: cannot write {where} ({e.strerror or e}); give a "
                     f"folder this user can write to") from None
