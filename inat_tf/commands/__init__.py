"""The console commands' flags and entry points: one module per command, none importing
TensorFlow.

  inat_tf/commands/<command>.py   inat-<command>'s config dataclass (one field per flag:
                                  default and help text, flag_config) and run(), the console
                                  script's entry point (setup.py), e.g. commands/train.py holds
                                  TrainConfig and runs `inat-train`.

run() parses the flags and answers --help, -h and every flag mistake without importing
TensorFlow (a fraction of a second instead of 5-7 s); its check() refuses, still without it,
what cannot succeed (an output folder that cannot be written, a split without labels, --top_k 0);
only then does flag_config.run_command import the command's implementation (`inat_tf.train:main`,
...), whose docstring is the usage text. The implementation modules import their config from
here, so each flag is declared once. The names a flag chooses from come from TensorFlow-free
modules (inat_tf/choices.py, editions, recipes, models), and the exceptions a command answers in
one line from inat_tf/errors.py.

Why a package of small modules rather than the flags beside the code that uses them (as before):
that code imports TensorFlow, so `--help` cost 5-7 s; and one folder answers "what does inat-X
take" for every command. A new flag goes into the command's config here; a new choice list
into choices.py unless its module is already TensorFlow-free.
"""

import os

from inat_tf import choices
from inat_tf import flag_config
from inat_tf.errors import UsageError

UNLABELLED_SPLITS = ("test",)  # the builder refuses a test JSON with annotations


def which_field():
  """The config field (flag) --which best|final, the same for inat-eval, inat-predict,
  inat-export and inat-classify."""
  return flag_config.field("best", "Which saved model of --model_dir: best (best val top-1) or "
                           "final.", choices=choices.SAVED_MODELS)


def at_least_one(value, flag):
  """UsageError unless value >= 1 (--top_k, --batch_size)."""
  if value < 1:
    raise UsageError(f"--{flag}={value}: must be at least 1")


def labelled(split, flag, what, instead=""):
  """UsageError for a split without labels (test), which `what` needs; `instead`: another way."""
  if split in UNLABELLED_SPLITS:
    raise UsageError(f"--{flag}={split}: the {split} split has no labels (the competitions never "
                     f"published them), so there is nothing to {what}: use --{flag}=val, or a "
                     f"minival (made by inat-build --minival_fraction F){instead}")


def checkpoint_advice(folder):
  """The end of a Ctrl-C's line for a trainer whose checkpoints go to `folder`: "rerun the same
  command to resume" when a checkpoint was written, else "" (nothing to resume from)."""
  if "://" in folder:
    return "rerun the same command to resume from the last checkpoint, if one was written"
  if os.path.exists(os.path.join(folder, "checkpoint")):  # tf.train.CheckpointManager's state
    return "rerun the same command to resume from the last checkpoint"
  return ""
