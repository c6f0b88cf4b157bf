"""inat-detect-eval's flags (DetectEvalConfig) and entry point; the work is
inat_tf/detection/evaluate.py."""

import dataclasses

from inat_tf import errors
from inat_tf import flag_config
from inat_tf import commands
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class DetectEvalConfig:
  """inat-detect-eval's flags."""
  data_dir: str = flag_config.field(help="Data dir written by inat-build.")
  model_dir: str = flag_config.field(help="Model dir written by inat-detect-train.")
  split: str = flag_config.field("val", "val: its single-instance images (the paper); train: all "
                                 "boxed images.", choices=("val", "train"))
  output_dir: str = flag_config.field(None, "Where the report goes (default MODEL_DIR/eval-SPLIT).")
  batch_size: int = flag_config.field(8, "Images per forward pass.")


def run(argv=None):
  """Console entry point `inat-detect-eval`."""
  flag_config.run_command(
      "inat-detect-eval", DetectEvalConfig, "inat_tf.detection.evaluate:main",
      errors=(errors.DetectionDataError, FileNotFoundError, ValueError, RuntimeError), argv=argv,
      check=check)


def check(c, _):
  """What inat-detect-eval refuses before any work."""
  commands.at_least_one(c.batch_size, "batch_size")
  if c.output_dir:
    output_paths.folder(c.output_dir, "output_dir")
  else:
    output_paths.folder(c.model_dir, "model_dir", create=False)


if __name__ == "__main__":
  run()
