"""Which shard, and which position in it, each image goes to: decided from the JSON before any
image is read, so the output depends only on the inputs and --seed, never on archive order, thread
timing, how many machines share the work, or where an interrupted run stopped.
"""

import dataclasses
import math

import numpy as np

from inat_tf import records

SPLIT_SEED_OFFSETS = {"train": 0, "val": 1, "test": 2, "minival": 3}


@dataclasses.dataclass(frozen=True)
class Slot:
  shard: int
  position: int


@dataclasses.dataclass
class SplitPlan:
  split: str
  num_shards: int
  slots: dict  # image_id -> Slot
  shard_sizes: list  # planned examples per shard

  def shard_name(self, shard):
    return records.shard_file(self.split, shard, self.num_shards)

  def owned_shards(self, task_index, num_tasks):
    """Shards this task of a job array builds; tasks own disjoint sets and together all."""
    return [s for s in range(self.num_shards) if s % num_tasks == task_index]


def plan_split(split, image_ids, examples_per_shard, seed):
  """Shuffles a split's image ids with (seed, split) and deals them into balanced shards."""
  ordered = np.array(sorted(image_ids), dtype=np.int64)
  rng = np.random.default_rng([seed, SPLIT_SEED_OFFSETS[split]])
  shuffled = ordered[rng.permutation(len(ordered))]
  num_shards = max(1, math.ceil(len(shuffled) / examples_per_shard))
  slots, sizes = {}, []
  for shard, members in enumerate(np.array_split(shuffled, num_shards)):
    sizes.append(len(members))
    for position, image_id in enumerate(members.tolist()):
      slots[image_id] = Slot(shard, position)
  return SplitPlan(split=split, num_shards=num_shards, slots=slots, shard_sizes=sizes)
