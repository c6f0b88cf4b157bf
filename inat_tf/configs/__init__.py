"""Flagfiles shipped with the package; `path("table3/inception_v3")` gives one's location.

  inat-train --flagfile="$(python -c 'import inat_tf.configs as c; print(c.path("table3/inception_v3"))')" ...
"""

import os

DIRECTORY = os.path.dirname(__file__)


def path(name):
  """Absolute path of a shipped flagfile, e.g. path("table3/inception_v3")."""
  full = os.path.join(DIRECTORY, name + ".flags")
  if not os.path.exists(full):
    raise FileNotFoundError(f"No flagfile {name!r}; available: {', '.join(available())}")
  return full


def available():
  return sorted(os.path.relpath(os.path.join(root, f), DIRECTORY)[:-len(".flags")]
                for root, _, files in os.walk(DIRECTORY) for f in files if f.endswith(".flags"))
