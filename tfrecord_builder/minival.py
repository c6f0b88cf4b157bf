"""A held-out `minival` split carved out of train, since the competitions' test labels are private.

Two ways, each applied by image id and recorded in manifest.json ("minival"):

  --minival_fraction F   seeded and class-stratified: from each species, round(F * n) of its n
                         train images (at most n - 1, so no species leaves train), drawn by a
                         generator seeded with (--seed, category id) over the sorted image ids.
                         The same seed and JSON give the same split on any machine.
  --minival_ids FILE     a published list of image ids (one per line, or a JSON list), such as
                         the 9,697-image iNat2017 minival list; each id is taken out of whichever
                         split (train or val) lists it. An id no split lists is an error.
"""

import dataclasses
import hashlib
import json

import numpy as np
import tensorflow as tf

from tfrecord_builder import columns

SPLIT = "minival"


class MinivalError(Exception):
  """The minival flags or file cannot be applied; the message says why."""


def stratified_ids(image_ids, category_ids, fraction, seed):
  """Sorted image ids of the minival split.

  image_ids, category_ids: arrays of the train images; fraction in [0, 1); seed: int.
  Per category, round(fraction * n) ids (capped at n - 1) drawn without replacement by
  numpy's default_rng([seed, category id]) from the category's sorted ids: disjoint from what
  stays in train, stable for a seed, and independent of the order of the JSON.
  """
  image_ids, category_ids = np.asarray(image_ids, np.int64), np.asarray(category_ids, np.int64)
  order = np.lexsort((image_ids, category_ids))  # by category, then id
  categories, starts = np.unique(category_ids[order], return_index=True)
  chosen = []
  for category_id, ids in zip(categories.tolist(), np.split(image_ids[order], starts[1:])):
    k = min(len(ids) - 1, int(round(fraction * len(ids))))
    if k > 0:
      rng = np.random.default_rng([seed, category_id])
      chosen.append(ids[rng.choice(len(ids), size=k, replace=False)])
  return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def read_ids(path):
  """Image ids from a file: one integer per line, or a JSON list of integers."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except tf.errors.NotFoundError:
    raise MinivalError(f"--minival_ids={path}: file not found") from None
  text = data.decode("utf-8-sig", errors="replace").strip()
  if text.startswith("["):
    try:
      ids = json.loads(text)
    except json.JSONDecodeError as e:
      raise MinivalError(f"{path}: malformed JSON list ({e})") from None
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
      raise MinivalError(f"{path}: expected a JSON list of integer image ids")
    return sorted(set(ids)), hashlib.md5(data).hexdigest()
  ids = []
  for number, line in enumerate(text.splitlines(), start=1):
    if line.strip():
      try:
        ids.append(int(line.strip()))
      except ValueError:
        raise MinivalError(f"{path} line {number}: expected one integer image id per line, "
                           f"found {line.strip()[:40]!r}") from None
  return sorted(set(ids)), hashlib.md5(data).hexdigest()


def apply(catalog, inputs, config):
  """Moves the minival images out of their split into catalog.tables["minival"].

  Also adds inputs["minival"] (the source split's images) and listed_ids["minival"]; returns the
  manifest's description of the split ({} when no minival is asked for or train is not built).
  """
  if not (config.minival_fraction or config.minival_ids) or "train" not in catalog.tables:
    return {}
  if config.minival_ids:
    wanted, digest = read_ids(config.minival_ids)
    sources = ("train", "val")
    how = {"ids_file": config.minival_ids, "ids_md5": digest}
  else:
    train = catalog.tables["train"]
    wanted = stratified_ids(train.ids, train.category_ids, config.minival_fraction, config.seed)
    sources = ("train",)
    how = {"fraction": config.minival_fraction, "seed": config.seed}
  wanted = np.unique(np.asarray(wanted, np.int64))
  moved, from_split = [], {}
  listed_minival = np.zeros(0, np.int64)
  for split in sources:
    if split not in catalog.tables:
      continue
    table = catalog.tables[split]
    chosen = np.isin(table.ids, wanted)
    if chosen.any():
      moved.append(table.take(chosen))
      from_split[split] = int(chosen.sum())
      catalog.tables[split] = table.take(~chosen)
    # Ids the JSON lists but the builder left out (reported problems) move too.
    listed = catalog.listed_ids[split]
    found = np.isin(listed, wanted)
    catalog.listed_ids[split] = listed[~found]
    listed_minival = np.union1d(listed_minival, listed[found])
  catalog.listed_ids[SPLIT] = listed_minival
  unknown = np.setdiff1d(wanted, listed_minival)
  if len(unknown):
    raise MinivalError(f"{len(unknown)} minival image id(s) are in no "
                       f"{' or '.join(s for s in sources if s in catalog.tables)} JSON (first: "
                       f"{unknown[:5].tolist()}); is the list for this edition?")
  sources_used = {inputs[split].archive or inputs[split].folder for split in from_split}
  if len(sources_used) > 1:
    raise MinivalError("the minival ids come from both train and val, whose images are in "
                       "different archives; give ids of one split")
  source = max(from_split, key=from_split.get) if from_split else "train"
  inputs[SPLIT] = dataclasses.replace(inputs[source], split=SPLIT)
  catalog.tables[SPLIT] = columns.concat(moved or [catalog.tables[source].take(
      np.zeros(0, np.int64))], SPLIT)
  catalog.locations[SPLIT] = {**catalog.locations[source],
                              "images": len(catalog.tables[SPLIT]),
                              "with_place": int(np.isfinite(catalog.tables[SPLIT].latitudes).sum())}
  catalog.locations[source] = {**catalog.locations[source],
                               "images": len(catalog.tables[source]),
                               "with_place": int(np.isfinite(catalog.tables[source].latitudes).sum())}
  return {**how, "images": len(catalog.listed_ids[SPLIT]), "from": from_split}
