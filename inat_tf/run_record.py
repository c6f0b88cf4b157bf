"""What defines a training run, recorded in its model dir, and the check every rerun passes.

A model dir is guarded like a data dir: `inat-train` into a dir that already holds a run resumes
it only when the rerun asks for the same run. What may change on a resume is listed in
`RESUMABLE` (how long to train, how often to log/checkpoint/validate, where and on what the job
runs); everything else (the network, image size, optimizer and its settings, the recipe) and the
data dir's label map must match. Otherwise the rerun is refused, the differences named, before
any file is touched.
"""

import json
import os

import tensorflow as tf

from inat_tf import label_map as label_map_lib
from inat_tf import trained_model


# Flags a rerun may change and still continue the same run.
RESUMABLE = frozenset({
    "data_dir", "model_dir",          # paths: the label map is compared instead
    "epochs", "train_steps",          # train longer (or stop sooner)
    "checkpoint_steps", "keep_checkpoints", "eval_every_epochs", "log_steps", "steps_per_loop",
    "distribution", "tpu", "num_cpu_devices", "data_service", "cache", "deterministic",
    "weights",                        # only read when starting: a resume loads the checkpoint
    "overwrite",
})
# Written beside the flags in train_config.json, derived from the data dir and the flags.
# The package version is a record, not a setting: an upgrade may resume a run.
DERIVED = frozenset({"num_classes", "steps_per_epoch", "total_steps", "inat_tf_version"})
# Flags added after model dirs were written without them: such a dir ran with this value.
ADDED_LATER = {"head_rank": 0}


class RunMismatch(Exception):
  """A rerun asks for another run than the model dir holds; the message names the differences."""


def _short(value):
  text = json.dumps(value)
  return text if len(text) <= 40 else text[:37] + "..."


def differences(recorded, wanted):
  """['image_size: 64 in the model dir, 56 now', ...] over the run-defining fields."""
  keys = sorted((set(recorded) | set(wanted)) - RESUMABLE - DERIVED)
  recorded = {**ADDED_LATER, **recorded}
  return [f"--{key}: {_short(recorded.get(key))} in the model dir, {_short(wanted.get(key))} now"
          for key in keys if recorded.get(key) != wanted.get(key)]


def check_rerun(model_dir, data_dir, wanted):
  """Raises RunMismatch if model_dir holds another run than `wanted` (a dict of the flags).

  Returns True when model_dir already holds this run (a resume), False when it holds none.
  """
  config_path = os.path.join(model_dir, trained_model.TRAIN_CONFIG)
  if not tf.io.gfile.exists(config_path):
    return False
  with tf.io.gfile.GFile(config_path) as f:
    recorded = json.load(f)
  problems = differences(recorded, wanted)
  try:
    label_map_lib.check_same(data_dir, model_dir)
  except label_map_lib.LabelMapMismatch as e:
    problems.append(str(e))
  if problems:
    raise RunMismatch(
        f"{model_dir} holds another run: {'; '.join(problems)}. To continue that run, rerun "
        f"with its settings; to start over here, add --overwrite (deletes the dir's "
        f"checkpoints, models and logs); or give a new --model_dir.")
  return True


def clear(model_dir):
  """--overwrite: deletes what inat-train wrote in model_dir (the whole dir)."""
  if tf.io.gfile.exists(model_dir):
    tf.io.gfile.rmtree(model_dir)
