"""inat-predict's flags (PredictConfig) and entry point; the work is inat_tf/predict.py."""

import dataclasses

from inat_tf import choices
from inat_tf import commands
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class PredictConfig:
  """inat-predict's flags."""
  data_dir: str = flag_config.field(help="Data dir written by inat-build.")
  output: str = flag_config.field(help="CSV path (any gfile path).")
  model_dir: str = flag_config.field("", "Model dir written by inat-train.")
  saved_model: str = flag_config.field("", "Or: a SavedModel written by inat-export.")
  split: str = flag_config.field("test", "Split to predict.", choices=choices.READABLE_SPLITS)
  which: str = commands.which_field()
  flip: bool = flag_config.field(False, "Average with the mirrored view (--model_dir only).")
  batch_size: int = flag_config.field(64, "Images per batch.")
  geo_dir: str = flag_config.field("", "A location prior (inat-train-geo): --output gets the "
                                   "predictions with it, OUTPUT.image_only.csv those without.")
  taxon: str = commands.taxon_field()
  checklist: str = commands.checklist_field()
  rollup_rule: str = commands.rollup_rule_field("argmax")
  rollup_precision: float = commands.rollup_precision_field()
  location_floor: float = commands.location_floor_field()
  captive: bool = commands.captive_field()


def run(argv=None):
  """Console entry point `inat-predict`."""
  # ValueError: long_tail's, the taxonomy's, the restriction's and the roll-up calibration's.
  flag_config.run_command("inat-predict", PredictConfig, "inat_tf.predict:main", argv=argv,
                          errors=(errors.PredictError, FileNotFoundError, ValueError,
                                  errors.GeoError), check=check)


def check(c, _):
  """What inat-predict refuses before any work: an --output it could not write at the end."""
  commands.trained_model_dir(c.model_dir, c.which)
  commands.at_least_one(c.batch_size, "batch_size")
  output_paths.file(c.output, "output")
  commands.check_answer_flags(c)
  if c.saved_model and (c.taxon or c.checklist or c.rollup_rule != "argmax"):
    raise errors.UsageError("--taxon, --checklist and --rollup_rule go with --model_dir: a "
                            "SavedModel's answers are fixed at export (restrict per request "
                            "with its serving_restricted signature)")


if __name__ == "__main__":
  run()
