"""The data-dir contract: what `inat-build` writes and every reader finds, in one place.

  <split>-NNNNN-of-NNNNN.tfrecord   the shards (TFDS's FILENAME_TEMPLATE, so TFDS reads them too)
  label_map.json                    class index <-> category id <-> name (inat_tf.label_map)
  image_ids.json                    per split, every image id its JSON lists
  manifest.json                     per split and shard: examples, bytes, sha256; problems
  _build/                           the builder's own state (resume guard, per-shard records,
                                    lock-<task> files naming a running build)

The builder names its files with these constants and functions; the readers (input pipeline,
trainers, eval, predict, export, detection, benchmarks) find them the same way.
"""

import json
import math
import os
import re

import tensorflow as tf

from inat_tf import choices
from inat_tf import editions
from inat_tf import schema

SPLITS = editions.SPLITS
# Every split a data dir may hold: the published ones and the held-out one inat-build can carve
# out of train (--minival_fraction / --minival_ids).
READABLE_SPLITS = choices.READABLE_SPLITS
LABEL_MAP = "label_map.json"
IMAGE_IDS = "image_ids.json"
MANIFEST = "manifest.json"
BUILD_DIR = "_build"
LOCK_PREFIX = "lock-"  # _build/lock-task-00000-of-00001: the build holding the data dir
TFDS_METADATA = ("dataset_info.json", "features.json")
# TFDS's name template for the shards (tfds.core.ShardedFileTemplate); shard_file() spells it out.
FILENAME_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"
SHARD_SUFFIX = ".tfrecord"


def shard_file(split, shard, num_shards):
  """Shard file name, e.g. train-00003-of-00567.tfrecord (FILENAME_TEMPLATE)."""
  return f"{split}-{shard:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def shard_pattern(split):
  """Glob of a split's shard files."""
  return f"{split}-?????-of-?????{SHARD_SUFFIX}"


def _check_split(split):
  if split not in READABLE_SPLITS:
    raise ValueError(f"split={split!r}: expected one of {', '.join(READABLE_SPLITS)}")


def has_shards(data_dir, split):
  """Whether data_dir holds any shard of split."""
  _check_split(split)
  return bool(tf.io.gfile.glob(os.path.join(data_dir, shard_pattern(split))))


class MissingSplit(FileNotFoundError):
  """The data dir holds no such split; the message says how inat-build makes it. A
  FileNotFoundError, so that every command answers it in one line."""


def missing_split(data_dir, split):
  """MissingSplit for a split that data_dir was built without (no shards, or none in its
  manifest)."""
  how = (" --minival_fraction 0.05` (a seeded share of each species' train images; or "
         "--minival_ids FILE)" if split == "minival" else f"` (--splits including {split})")
  return MissingSplit(
      f"No {split} shards ({split}-NNNNN-of-NNNNN.tfrecord) in {data_dir}: build them with "
      f"`inat-build --raw_dir RAW --data_dir {data_dir}{how}.")


def shard_files(data_dir, split):
  """Sorted shard paths of a split; FileNotFoundError says how to make them when there are none."""
  _check_split(split)
  files = sorted(tf.io.gfile.glob(os.path.join(data_dir, shard_pattern(split))))
  if not files:
    raise missing_split(data_dir, split)
  return files


def examples(data_dir, split, keys=None):
  """Every example of a split, in shard order, parsed into dense tensors (see inat_tf.schema)."""
  @tf.autograph.experimental.do_not_convert  # graph code as written (BUILD_NOTES, "Start-up")
  def parse(serialized):
    return schema.parse(serialized, keys)
  return tf.data.TFRecordDataset(shard_files(data_dir, split)).map(parse)


def _read_json(data_dir, name):
  path = os.path.join(data_dir, name)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: DATA_DIR must be written by inat-build")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def read_manifest(data_dir):
  """manifest.json as a dict; FileNotFoundError when the build has not finished."""
  return _read_json(data_dir, MANIFEST)


def _manifest_split(data_dir, split):
  splits = read_manifest(data_dir)["splits"]
  if split not in splits:
    raise missing_split(data_dir, split)
  return splits[split]


def shard_examples(data_dir, split):
  """Examples in each shard of a split, in shard order (from the manifest); MissingSplit when
  data_dir has none."""
  return [shard["examples"] for shard in _manifest_split(data_dir, split)["shards"]]


def split_examples(data_dir, split):
  """Examples in a split (from the manifest); MissingSplit when data_dir has none."""
  return _manifest_split(data_dir, split)["examples"]


def steps_per_epoch(data_dir, split, global_batch_size):
  """Training steps in one pass over a split: ceil(examples / global batch), at least 1."""
  return max(1, math.ceil(split_examples(data_dir, split) / global_batch_size))


def image_ids(data_dir):
  """image_ids.json: {split: [every image id the split's JSON lists]}."""
  return _read_json(data_dir, IMAGE_IDS)


class DamagedShard(ValueError):
  """A shard cannot be read; the message names it, the offset, and how to rebuild it."""


def read_guard(data_dir, splits):
  """Context manager: a DataLossError inside becomes DamagedShard (see describe_damage)."""
  return _ReadGuard(data_dir, splits)


class _ReadGuard:
  def __init__(self, data_dir, splits):
    self.data_dir, self.splits = data_dir, splits

  def __enter__(self):
    return self

  def __exit__(self, exc_type, error, unused_traceback):
    if exc_type is not None and issubclass(exc_type, tf.errors.DataLossError):
      raise DamagedShard(describe_damage(self.data_dir, self.splits, error)) from None
    return False


def _read_all(path):
  """Reads every record of one shard (in TensorFlow, checksums checked); raises DataLossError."""
  tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)


def describe_damage(data_dir, splits, error):
  """One line for a DataLossError met while reading `splits` of data_dir: which shard, at which
  byte offset, and how to rebuild it. TensorFlow's message names neither the file nor how to
  repair it, so the shards are read again (only after such a failure) to find the damaged one.
  """
  for split in splits:
    try:
      paths = shard_files(data_dir, split)
    except FileNotFoundError:
      continue
    for path in paths:
      try:
        _read_all(path)
      except tf.errors.DataLossError as e:
        offset = re.search(r"record at (\d+)", e.message or "")
        where = f"at byte offset {offset.group(1)}" if offset else f"({e.message.strip()})"
        return (f"shard {path} is damaged {where}: delete it and rerun inat-build with the "
                f"same flags, which writes the missing shard again")
  first_line = (error.message or str(error)).strip().splitlines()[0]
  return (f"a record of {data_dir} could not be read ({first_line}), although every shard of "
          f"{'/'.join(splits)} reads whole now: if it recurs, check the storage")
