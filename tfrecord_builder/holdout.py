"""Held-out species (inat-build --holdout_species): whole species the model never trains on, so
inat-eval can measure open-set scores (seen against unseen species) and where the roll-up places
an unseen species (its genus or family).

  --holdout_species F      a fraction in (0, 1): round(F x C) of the C species (at least 1, at
                           most C - 1), drawn by numpy's default_rng([--seed, 4]) from the sorted
                           category ids: the same seed and JSON give the same species anywhere.
  --holdout_species FILE   a file of category ids, one a line ('#' comments).

Their train images are left out of the train records (and of the minival carved from train);
their val and test images are kept, labelled as usual. The label map is unchanged except their
train_count, which is 0 (they keep their class index, so the head has C outputs and nothing
shifts; the network simply never sees them: long-tail losses and adjustments, which divide by
the counts, refuse such a build with their one-line message). manifest.json records
"holdout_species": {"category_ids", "fraction" and "seed" or "ids_file", "train_images_left_out"}.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfrecord_builder import manifest as manifest_lib

SEED_OFFSET = 4  # after plan.SPLIT_SEED_OFFSETS' 0-3


class HoldoutError(Exception):
  """--holdout_species cannot be applied; the message says why."""


def parse(value):
  """(fraction or None, path or None) of the flag's value ("" -> (None, None))."""
  if not value:
    return None, None
  try:
    fraction = float(value)
  except ValueError:
    return None, value
  if not 0 < fraction < 1:
    raise HoldoutError(f"--holdout_species={value}: a fraction must be in (0, 1); or give a "
                       f"file of category ids")
  return fraction, None


def chosen_species(category_ids, fraction, seed):
  """Sorted category ids held out: round(fraction x C), at least 1 and at most C - 1."""
  ids = np.sort(np.asarray(list(category_ids), np.int64))
  k = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
  if k < 1:
    raise HoldoutError("--holdout_species needs at least two species")
  rng = np.random.default_rng([seed, SEED_OFFSET])
  return np.sort(ids[rng.choice(len(ids), size=k, replace=False)])


def read_ids(path, known):
  """Category ids from a file, one a line; HoldoutError names the file and line of a bad one."""
  try:
    with tf.io.gfile.GFile(path) as f:
      lines = f.read().splitlines()
  except tf.errors.NotFoundError:
    raise HoldoutError(f"--holdout_species={path}: no such file (expected a fraction in (0, 1) "
                       f"or a file of category ids)") from None
  ids = []
  for number, line in enumerate(lines, 1):
    text = line.split("#", 1)[0].strip()
    if not text:
      continue
    try:
      ids.append(int(text))
    except ValueError:
      raise HoldoutError(f"{path} line {number}: {text!r} is not a category id (one integer id "
                         f"a line)") from None
    if ids[-1] not in known:
      raise HoldoutError(f"{path} line {number}: category id {ids[-1]} is not a category of "
                         f"the train JSON")
  if not ids:
    raise HoldoutError(f"{path}: lists no category ids")
  if len(set(ids)) >= len(known):
    raise HoldoutError(f"{path}: holds out every species; leave at least one to train on")
  return np.unique(np.asarray(ids, np.int64))


def apply(catalog, config):
  """Takes the held-out species' images out of catalog.tables["train"] (and listed_ids), sets
  their train_count to 0 in catalog.label_map; returns the manifest's record ({} when not asked
  for or train is not built)."""
  fraction, path = parse(config.holdout_species)
  if fraction is None and path is None:
    return {}
  if "train" not in catalog.tables:
    return {}
  known = set(catalog.label_map.category_ids)
  held = (chosen_species(known, fraction, config.seed) if fraction is not None
          else read_ids(path, known))
  train = catalog.tables["train"]
  out = np.isin(train.category_ids, held)
  catalog.tables["train"] = train.take(~out)
  catalog.listed_ids["train"] = np.setdiff1d(catalog.listed_ids["train"], train.ids[out])
  catalog.label_map = _without_train_images(catalog.label_map, held.tolist())
  how = {"fraction": fraction, "seed": config.seed} if fraction is not None else {
      "ids_file": path}
  return {"category_ids": held.tolist(), **how, "train_images_left_out": int(out.sum())}


def from_earlier_build(catalog, data_dir):
  """For a run that builds no train split into a data dir built before: the earlier build's
  held-out species (its _build/state.json), their train_count set to 0 in catalog.label_map, so
  the label_map.json this run rewrites still says what the train shards hold (a later
  `--splits test` would otherwise give them their JSON counts back, and the long-tail refusal
  and the fallback species would no longer know). Returns the record ({} when none)."""
  if "train" in catalog.tables:
    return {}
  record = manifest_lib.previous_state(data_dir).get("holdout_species") or {}
  if record.get("category_ids"):
    catalog.label_map = _without_train_images(catalog.label_map, record["category_ids"])
  return record


def _without_train_images(label_map, held_ids):
  """label_map with train_count 0 for the category ids `held_ids`."""
  held = set(held_ids)
  return dataclasses.replace(label_map, train_counts=tuple(
      0 if c in held else n for c, n in zip(label_map.category_ids, label_map.train_counts)))
