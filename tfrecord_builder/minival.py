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

SPLIT = "minival"


class MinivalError(Exception):
  """The minival flags or file cannot be applied; the message says why."""


def stratified_ids(labels, fraction, seed):
  """Sorted image ids of the minival split.

  labels: {image id: category id} of the train images; fraction in [0, 1); seed: int.
  Per category, round(fraction * n) ids (capped at n - 1) drawn without replacement by
  numpy's default_rng([seed, category id]) from the category's sorted ids: disjoint from what
  stays in train, stable for a seed, and independent of the order of the JSON.
  """
  by_class = {}
  for image_id, category_id in labels.items():
    by_class.setdefault(category_id, []).append(image_id)
  chosen = []
  for category_id, ids in by_class.items():
    ids = sorted(ids)
    k = min(len(ids) - 1, int(round(fraction * len(ids))))
    if k > 0:
      rng = np.random.default_rng([seed, category_id])
      chosen.extend(ids[i] for i in rng.choice(len(ids), size=k, replace=False))
  return sorted(int(i) for i in chosen)


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
  """Moves the minival images out of their split into catalog.records["minival"].

  Also adds inputs["minival"] (the source split's images) and listed_ids["minival"]; returns the
  manifest's description of the split ({} when no minival is asked for or train is not built).
  """
  if not (config.minival_fraction or config.minival_ids) or "train" not in catalog.records:
    return {}
  if config.minival_ids:
    wanted, digest = read_ids(config.minival_ids)
    sources = ("train", "val")
    how = {"ids_file": config.minival_ids, "ids_md5": digest}
  else:
    labels = {r.image_id: r.category_id for r in catalog.records["train"].values()}
    wanted = stratified_ids(labels, config.minival_fraction, config.seed)
    sources = ("train",)
    how = {"fraction": config.minival_fraction, "seed": config.seed}
  wanted = set(wanted)
  moved, from_split = {}, {}
  for split in sources:
    if split not in catalog.records:
      continue
    for name, record in list(catalog.records[split].items()):
      if record.image_id in wanted:
        moved[name] = dataclasses.replace(record, split=SPLIT)
        from_split[split] = from_split.get(split, 0) + 1
        del catalog.records[split][name]
    # Ids the JSON lists but the builder left out (reported problems) move too.
    listed = set(catalog.listed_ids[split])
    found = wanted & listed
    catalog.listed_ids[split] = sorted(listed - found)
    catalog.listed_ids[SPLIT] = sorted(set(catalog.listed_ids.get(SPLIT, ())) | found)
  unknown = wanted - set(catalog.listed_ids.get(SPLIT, ()))
  if unknown:
    raise MinivalError(f"{len(unknown)} minival image id(s) are in no "
                       f"{' or '.join(s for s in sources if s in catalog.records)} JSON (first: "
                       f"{sorted(unknown)[:5]}); is the list for this edition?")
  sources_used = {inputs[split].archive or inputs[split].folder for split in from_split}
  if len(sources_used) > 1:
    raise MinivalError("the minival ids come from both train and val, whose images are in "
                       "different archives; give ids of one split")
  source = max(from_split, key=from_split.get) if from_split else "train"
  inputs[SPLIT] = dataclasses.replace(inputs[source], split=SPLIT)
  catalog.records[SPLIT] = moved
  description = {**how, "images": len(catalog.listed_ids[SPLIT]), "from": from_split}
  return description
