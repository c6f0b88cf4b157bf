"""The command line itself (issues 30 and 25): --help and -h fast and readable, flags parsed
without TensorFlow, every flag mistake in one line."""

import os
import re
import subprocess
import sys
import time

import pytest

from tests.helpers import console_script

# Every console script of setup.py, by its command name (inat-NAME).
COMMANDS = ("make-sample", "build", "data-service", "train", "eval", "predict", "score", "export",
            "adjust", "quickstart", "train-geo", "classify", "overlap", "detect-train",
            "detect-eval", "detect-export")


def _plain_environment():
  """The user's default: no TensorFlow log variable set (the commands' quiet path)."""
  return {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}


def test_every_console_script_is_listed():
  from importlib.metadata import entry_points  # pylint: disable=g-import-not-at-top
  installed = sorted(e.name for e in entry_points(group="console_scripts")
                     if e.dist and e.dist.name == "inat-tf")
  assert installed == sorted(f"inat-{name}" for name in COMMANDS)


@pytest.mark.slow
def test_command_modules_import_without_tensorflow():
  """The flags of every command parse without TensorFlow, Keras or NumPy (inat_tf/commands)."""
  modules = [f"inat_tf.commands.{name.replace('-', '_')}" for name in COMMANDS]
  script = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "  importlib.import_module(name)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy', 'keras_hub') "
            "if m in sys.modules))\n")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**_plain_environment(), "PYTHONWARNINGS": "ignore"})
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_fast_readable_and_exits_0(name):
  script = console_script(f"inat-{name}")
  start = time.monotonic()
  result = subprocess.run([script, "--help"], capture_output=True, text=True,
                          env=_plain_environment())
  seconds = time.monotonic() - start
  print(f"inat-{name} --help: {seconds:.2f} s")  # the figure; asserted loosely (loaded CI)
  assert result.returncode == 0 and result.stderr == "", result.stderr
  assert seconds < 2
  text = result.stdout
  assert "\nflags:\n  --" in text
  # A usage line continued with a backslash in the docstring read `--epochs 10        --weights`.
  assert not re.search(r"\S {8,}--\w", text), text
  # Every choice of every enum flag is printed whole (absl's `<a|b|c>` list broke mid-word).
  for choices in re.findall(r"One of: ([^.]*)\.", text.replace("\n    ", " ")):
    for choice in choices.split(", "):
      assert re.search(rf"(?<![\w/]){re.escape(choice)}(?![\w/])", text), choice
  short = subprocess.run([script, "-h"], capture_output=True, text=True, env=_plain_environment())
  assert (short.returncode, short.stdout) == (0, text)


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_a_flagfile_that_is_not_there_is_one_line(name, tmp_path):
  result = subprocess.run([console_script(f"inat-{name}"), f"--flagfile={tmp_path}/nope.flags"],
                          capture_output=True, text=True, env=_plain_environment())
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr == (f"inat-{name}: cannot read the --flagfile: [Errno 2] No such file or "
                           f"directory: '{tmp_path}/nope.flags'; see inat-{name} --help\n")
