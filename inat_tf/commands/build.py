"""inat-build's flags (BuildConfig) and entry point; the work is tfrecord_builder/build.py."""

import dataclasses
import os

from inat_tf import choices
from inat_tf import editions
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import output_paths

_flag = flag_config.field  # a config field that is also a command-line flag


@dataclasses.dataclass(frozen=True)
class BuildConfig:
  """One field per inat-build flag: its default and help text (flag_config)."""
  raw_dir: str = _flag(help="Folder with the download under its published names.")
  data_dir: str = _flag(help="Output folder (local, gs://, any tf.io.gfile path).")
  splits: tuple = _flag(editions.SPLITS, "Splits to build.")
  seed: int = _flag(0, "Seed of the shuffle into shards.")
  examples_per_shard: int = _flag(1024, "Examples per shard (the last shards of a split may hold "
                                  "fewer).")
  task_index: int = _flag(0, "This task's index in a job array.")
  num_tasks: int = _flag(1, "Tasks in the job array; each builds a disjoint set of shards.")
  max_rejects: int = _flag(0, "Problems (rejected images, bad records) tolerated before exiting "
                           "1.")
  num_workers: int = _flag(0, "Worker processes that check images and serialize Examples; "
                           "0 = one per CPU core. The output is the same for any number.")
  spill_dir: str = _flag("", "Local scratch for resumable builds (about one shard set's size); "
                         "default: DATA_DIR/_build/spill when local, else the temp folder.")
  verify_decode: bool = _flag(False, "Also decode every image fully with TensorFlow's decoder "
                              "(~1.3-2.8 ms per 800 px image per core; every JPEG is already "
                              "decoded strictly at 1/8 scale).")
  overwrite: bool = _flag(False, "Delete an earlier build in DATA_DIR first.")
  max_image_pixels: int = _flag(choices.MAX_IMAGE_PIXELS, "Images with more pixels "
                                "(width x height, from the header) are rejected before decoding; "
                                "0 = no limit.")
  train_set: str = _flag("", "iNat2021: build from train.json ('train') or train_mini.json "
                         "('train_mini'); needed when RAW_DIR holds both.")
  minival_fraction: float = _flag(0.0, "Hold out this fraction of each species' train images as a "
                                  "'minival' split (seeded by --seed, by image id; recorded in "
                                  "manifest.json).")
  minival_ids: str = _flag("", "Or: a file of image ids (one per line, or a JSON list) forming "
                           "the 'minival' split, e.g. the 9,697-image iNat2017 minival list.")
  holdout_species: str = _flag("", "Hold out whole species for open-set evaluation: a fraction "
                               "in (0, 1) of the species (seeded by --seed) or a file of "
                               "category ids; their train images are left out, their val and "
                               "test images kept (recorded in manifest.json).")

  def validate(self):
    problems = []
    unknown = set(self.splits) - set(editions.SPLITS)
    if unknown or not self.splits:
      problems.append(f"splits={','.join(self.splits)}: choose from {','.join(editions.SPLITS)}")
    if self.examples_per_shard < 1:
      problems.append(f"examples_per_shard={self.examples_per_shard}: must be >= 1")
    if not 0 <= self.task_index < self.num_tasks:
      problems.append(f"task_index={self.task_index} with num_tasks={self.num_tasks}: need "
                      f"0 <= task_index < num_tasks")
    if self.max_rejects < 0 or self.num_workers < 0 or self.max_image_pixels < 0:
      problems.append("max_rejects, num_workers and max_image_pixels must be >= 0")
    if not 0 <= self.minival_fraction < 1:
      problems.append(f"minival_fraction={self.minival_fraction}: must be in [0, 1)")
    if self.minival_fraction and self.minival_ids:
      problems.append("give --minival_fraction or --minival_ids, not both")
    try:
      fraction = float(self.holdout_species) if self.holdout_species else None
    except ValueError:
      fraction = None  # a file of category ids, read by the builder
    if fraction is not None and not 0 < fraction < 1:
      problems.append(f"holdout_species={self.holdout_species}: a fraction must be in (0, 1), "
                      f"or give a file of category ids")
    if problems:
      raise errors.BuildError("Invalid flags: " + "; ".join(problems))

  @property
  def workers(self):
    return self.num_workers or os.cpu_count() or 1

  @property
  def task_name(self):
    return f"task-{self.task_index:05d}-of-{self.num_tasks:05d}"


def run(argv=None):
  """Console entry point `inat-build`."""
  flag_config.run_command("inat-build", BuildConfig, "tfrecord_builder.build:main",
                          errors=(errors.BuildError,), argv=argv, check=check, resume=resume)


def check(config, _):
  """What inat-build refuses before any work."""
  config.validate()
  output_paths.folder(config.data_dir, "data_dir")
  if config.spill_dir:
    output_paths.folder(config.spill_dir, "spill_dir")


def resume(config):
  """A Ctrl-C's advice: finished shards and spilled examples stay (tfrecord_builder/spill.py)."""
  if "://" in config.data_dir or os.path.isdir(os.path.join(config.data_dir, "_build")):
    return ("finished shards and spilled examples are kept: rerun the same command to resume "
            "where it stopped")
  return ""


if __name__ == "__main__":
  run()
