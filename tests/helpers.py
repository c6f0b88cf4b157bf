"""Small helpers shared by tests."""

import os
import sys


def console_script(name):
  """Path of an installed console script of this package, in the running interpreter's venv."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: install the project first (pip install -e .)")
  return path
