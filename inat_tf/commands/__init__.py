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


# --location_floor's default: inat_tf.geo.prior.DEFAULT_FLOOR, repeated here because that module
# imports TensorFlow (tests/test_answers.py checks the two agree).
DEFAULT_LOCATION_FLOOR = 0.02


def taxon_field():
  return flag_config.field("", "Answer only with species under this taxon, any rank (e.g. Aves, "
                           "genus:Corvus, 'Sulidae > Morus'); probabilities renormalised over "
                           "them.")


def checklist_field():
  return flag_config.field("", "Answer only with the species of this file of category ids (one "
                           "a line, '#' comments); with --taxon: the species in both.")


def rollup_rule_field(default):
  return flag_config.field(default, "How an answer rises above the species when the model is "
                           "unsure: argmax (always the top species), inat (iNaturalist's "
                           "published rule), precision (per-rank thresholds calibrated to "
                           "--rollup_precision on held-out images), risk (conditional risk over "
                           "the tree, calibrated the same way).", choices=choices.ROLLUP_RULES)


def rollup_precision_field():
  return flag_config.field(0.95, "Target precision at the returned rank of the calibrated rules "
                           "(precision, risk).")


def location_floor_field():
  return flag_config.field(DEFAULT_LOCATION_FLOOR, "Location prior floor: the image "
                           "probabilities are multiplied by max(prior, floor) (0: the plain "
                           "product; iNaturalist uses 0.005).")


def captive_field():
  return flag_config.field(False, "Captive or cultivated (zoo, garden): do not use the location "
                           "prior for these photos (image-only answers).")


def check_answer_flags(c):
  """UsageError for answer-pipeline flags that cannot work (before TensorFlow)."""
  if not 0 < c.rollup_precision <= 1:
    raise UsageError(f"--rollup_precision={c.rollup_precision}: must be in (0, 1], e.g. 0.95")
  if not 0 <= c.location_floor < 1:
    raise UsageError(f"--location_floor={c.location_floor}: must be in [0, 1) (0: the plain "
                     f"product)")
  if c.checklist and not os.path.isfile(c.checklist) and "://" not in c.checklist:
    raise UsageError(f"--checklist={c.checklist}: no such file (expected category ids, one a "
                     f"line)")
  if (c.location_floor != DEFAULT_LOCATION_FLOOR or c.captive) and not c.geo_dir:
    raise UsageError("--location_floor and --captive change how a location prior is used: give "
                     "--geo_dir (inat-train-geo) too")


def missing_model_message(model_dir, which):
  """What a model dir without its saved model is told (here, before TensorFlow loads, and by
  trained_model.load for remote paths and calls from Python)."""
  other = "final" if which == "best" else "best"
  instead = (f"; it has {other}.keras: --which {other}"
             if "://" not in model_dir and os.path.isfile(os.path.join(model_dir, f"{other}.keras"))
             else "")
  return (f"{os.path.join(model_dir, which + '.keras')} (or train_config.json beside it) not "
          f"found: the model dir (--model_dir) must be a directory written by inat-train, after "
          f"training has saved a model{instead}")


def trained_model_dir(model_dir, which):
  """UsageError for a local --model_dir without `which`.keras and train_config.json (a typo, a
  training that has not saved yet), before TensorFlow loads; remote paths are checked when read."""
  if not model_dir or "://" in model_dir:
    return
  if not (os.path.isfile(os.path.join(model_dir, f"{which}.keras")) and
          os.path.isfile(os.path.join(model_dir, "train_config.json"))):
    raise UsageError(missing_model_message(model_dir, which))


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
