"""inat-detect-train's flags (DetectTrainConfig) and entry point; the work is
inat_tf/detection/train.py."""

import dataclasses
import os

from inat_tf import choices
from inat_tf import errors
from inat_tf import flag_config
from inat_tf.detection import classes
from inat_tf import commands
from inat_tf import output_paths

_flag = flag_config.field  # a config field that is also a command-line flag


@dataclasses.dataclass(frozen=True)
class DetectTrainConfig:
  """One field per inat-detect-train flag: its default and help text (flag_config)."""
  data_dir: str = _flag(help="Data dir written by inat-build (with boxes).")
  model_dir: str = _flag(help="Where checkpoints and logs go (gs:// works).")
  granularity: str = _flag("species", "Detector classes: species (2,854), superclass (9) or "
                           "agnostic (1).", choices=classes.GRANULARITIES)
  backbone: str = _flag("resnet50", "Network of models/.", choices=choices.DETECTION_BACKBONES)
  image_size: int = _flag(512, "Square input side, a multiple of 32; images keep their aspect "
                          "(padded).")
  batch_size: int = _flag(8, "Images per step.")
  epochs: float = _flag(0.0, "Epochs over the boxed train images (or --train_steps).")
  train_steps: int = _flag(0, "Steps to train; overrides --epochs.")
  learning_rate: float = _flag(1e-4, "Adam learning rate after warm-up.")
  warmup_steps: int = _flag(100, "Linear learning-rate warm-up.")
  clip_norm: float = _flag(10.0, "Global gradient-norm clipping; 0 = off.")
  weights: str = _flag("imagenet",
                       "Backbone init: imagenet (Keras's download), none, or a weights file.")
  anchor_size: float = _flag(4.0, "Anchor side in strides (P3 anchors = 8 x this, in pixels); "
                             "keras-hub's 4 suits 512+ px inputs, lower it for small inputs.")
  head_convs: int = _flag(4, "3x3 convolutions in each head.")
  head_norm: bool = _flag(True, "GroupNorm in the heads.")
  bn_momentum: float = _flag(-1.0, "Backbone batch-norm momentum; lower (e.g. 0.5) for short runs "
                             "from scratch. Negative = the network's default.")
  max_boxes: int = _flag(100, "Boxes kept per image (the rest dropped).")
  flip: bool = _flag(True, "Random horizontal flips (with the boxes).")
  checkpoint_steps: int = _flag(500, "Checkpoint every N steps.")
  keep_checkpoints: int = _flag(3, "Checkpoints kept.")
  log_steps: int = _flag(50, "Progress line every N steps.")
  seed: int = _flag(0, "Random seed (initialisation, input order, flips).")


def run(argv=None):
  """Console entry point `inat-detect-train`."""
  flag_config.run_command(
      "inat-detect-train", DetectTrainConfig, "inat_tf.detection.train:main",
      errors=(errors.DetectTrainError, errors.DetectionDataError, FileNotFoundError, ValueError),
      argv=argv, check=lambda c, _: output_paths.folder(c.model_dir, "model_dir"),
      resume=lambda c: commands.checkpoint_advice(os.path.join(c.model_dir, "checkpoints")))


if __name__ == "__main__":
  run()
