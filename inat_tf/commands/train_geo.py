"""inat-train-geo's flags (GeoTrainConfig) and entry point; the work is inat_tf/geo/train.py."""

import dataclasses
import os

from inat_tf import errors
from inat_tf import flag_config
from inat_tf import commands
from inat_tf import output_paths

_flag = flag_config.field  # a config field that is also a command-line flag


@dataclasses.dataclass(frozen=True)
class GeoTrainConfig:
  """One field per inat-train-geo flag: its default and help text (flag_config)."""
  data_dir: str = _flag(help="Data dir written by inat-build.")
  geo_dir: str = _flag(help="Where the prior's checkpoints, logs and models go (gs:// works).")
  epochs: float = _flag(30.0, "Epochs over the train places.")
  batch_size: int = _flag(1024, "Places per step.")
  learning_rate: float = _flag(5e-4, "Adam learning rate.")
  lr_decay_rate: float = _flag(0.98, "Learning-rate factor per epoch (the paper's code).")
  width: int = _flag(256, "Units per layer (the paper: 256).")
  num_blocks: int = _flag(4, "Residual blocks (the paper: 4).")
  dropout_rate: float = _flag(0.5, "Dropout inside the blocks.")
  positive_weight: float = _flag(0.0, "λ of the loss; 0 = the number of classes (the paper's "
                                 "choice).")
  use_date: bool = _flag(True, "Condition on the date as well as the position; --nouse_date "
                         "gives a location-only prior, usable on photos without a date.")
  keep_checkpoints: int = _flag(3, "Checkpoints kept.")
  log_steps: int = _flag(100, "Progress line every N steps.")
  seed: int = _flag(0, "Random seed (initialisation, epoch order, background places).")


def run(argv=None):
  """Console entry point `inat-train-geo`."""
  flag_config.run_command("inat-train-geo", GeoTrainConfig, "inat_tf.geo.train:main",
                          errors=(errors.TrainError, FileNotFoundError), argv=argv,
                          check=lambda c, _: output_paths.folder(c.geo_dir, "geo_dir"),
                          resume=lambda c: commands.checkpoint_advice(
                              os.path.join(c.geo_dir, "checkpoints")))


if __name__ == "__main__":
  run()
