"""inat-quickstart's flags (QuickstartConfig) and entry point; the work is inat_tf/quickstart.py."""

import dataclasses

from inat_tf import editions
from inat_tf import flag_config
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
  """inat-quickstart's flags."""
  output_dir: str = flag_config.field("runs/quickstart", "Where every stage writes.")
  overwrite: bool = flag_config.field(False, "Delete output_dir first instead of reusing it.")
  num_species: int = flag_config.field(40, "Sample size: species (>= 13).")
  max_train_per_species: int = flag_config.field(80, "Sample size: the commonest species' images.")
  max_side: int = flag_config.field(128, "Sample image size.")
  examples_per_shard: int = flag_config.field(256, "Builder: examples per shard.")
  model: str = flag_config.field("mobilenet_v1", "Network (see models.MODEL_NAMES).")
  image_size: int = flag_config.field(80, "Training image size.")
  batch_size: int = flag_config.field(32, "Global batch size.")
  epochs: float = flag_config.field(10, "Training epochs.")
  learning_rate: float = flag_config.field(0.1, "Learning rate per 32 images.")
  tflite: bool = flag_config.field(True, "Also export TFLite models.")
  edition: str = flag_config.field("2017", "Which competition edition's layout the sample "
                                   "download has (inat_tf.editions).", choices=editions.NAMES)


def run(argv=None):
  """Console entry point `inat-quickstart`."""
  flag_config.run_command("inat-quickstart", QuickstartConfig, "inat_tf.quickstart:main",
                          argv=argv, check=lambda f, _: output_paths.folder(f.output_dir,
                                                                            "output_dir"))


if __name__ == "__main__":
  run()
