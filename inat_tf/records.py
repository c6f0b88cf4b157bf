"""Reading what `inat-build` wrote: shard files of a split, and their examples as dicts."""

import os

import tensorflow as tf

from inat_tf import schema

SPLITS = ("train", "val", "test")


def shard_files(data_dir, split):
  """Sorted shard paths of a split; FileNotFoundError says how to make them when there are none."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
  files = sorted(tf.io.gfile.glob(os.path.join(data_dir, f"{split}-?????-of-?????.tfrecord")))
  if not files:
    raise FileNotFoundError(
        f"No {split} shards ({split}-NNNNN-of-NNNNN.tfrecord) in {data_dir}: build them with "
        f"`inat-build --raw_dir RAW --data_dir {data_dir}`.")
  return files


def examples(data_dir, split, keys=None):
  """Every example of a split, in shard order, parsed into dense tensors (see inat_tf.schema)."""
  return tf.data.TFRecordDataset(shard_files(data_dir, split)).map(
      lambda serialized: schema.parse(serialized, keys))
