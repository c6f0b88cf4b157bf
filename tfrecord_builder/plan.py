"""Which shard each image goes to: decided from the JSON before any image is read, so the output
depends only on the inputs and --seed, never on archive order, thread timing, how many machines
share the work, or where an interrupted run stopped.
"""

import dataclasses
import math

import numpy as np

from inat_tf import records

SPLIT_SEED_OFFSETS = {"train": 0, "val": 1, "test": 2, "minival": 3}


@dataclasses.dataclass
class SplitPlan:
  split: str
  num_shards: int
  shard_of_row: np.ndarray  # int32 [rows of the split's table]: 4 bytes per image
  shard_sizes: list         # planned examples per shard

  def shard_name(self, shard):
    return records.shard_file(self.split, shard, self.num_shards)

  def owned_shards(self, task_index, num_tasks):
    """Shards this task of a job array builds; tasks own disjoint sets and together all."""
    return [s for s in range(self.num_shards) if s % num_tasks == task_index]


def plan_split(split, image_ids, examples_per_shard, seed):
  """Shuffles a split's image ids with (seed, split) and deals them into balanced shards.

  image_ids: int64 array, one per table row (unique). The shard of each row: the sorted ids are
  permuted by numpy's default_rng([seed, split offset]) and split into ceil(n / per shard)
  near-equal runs (np.array_split), the first runs one longer.
  """
  image_ids = np.asarray(image_ids, np.int64)
  order = np.argsort(image_ids, kind="stable")  # row of each id in sorted order
  rng = np.random.default_rng([seed, SPLIT_SEED_OFFSETS[split]])
  shuffled_rows = order[rng.permutation(len(order))]
  num_shards = max(1, math.ceil(len(shuffled_rows) / examples_per_shard))
  sizes = [len(part) for part in np.array_split(np.arange(len(shuffled_rows)), num_shards)]
  shard_of_row = np.empty(len(image_ids), np.int32)
  shard_of_row[shuffled_rows] = np.repeat(np.arange(num_shards, dtype=np.int32), sizes)
  return SplitPlan(split=split, num_shards=num_shards, shard_of_row=shard_of_row,
                   shard_sizes=sizes)
