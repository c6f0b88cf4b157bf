"""inat-eval's flags (EvalConfig) and entry point; the work is inat_tf/evaluate.py."""

import dataclasses

from inat_tf import choices
from inat_tf import commands
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """inat-eval's flags."""
  data_dir: str = flag_config.field(help="Data dir written by inat-build.")
  model_dir: str = flag_config.field(help="Model dir written by inat-train.")
  split: str = flag_config.field("val", "Split to score (needs labels).",
                                 choices=choices.READABLE_SPLITS)
  output_dir: str = flag_config.field(
      "", "Where to write the report (default: MODEL_DIR/eval-SPLIT).")
  which: str = commands.which_field()
  flip: bool = flag_config.field(False, "Average with the mirrored view.")
  multi_crop: bool = flag_config.field(False, "Average the central and the four corner crops.")
  batch_size: int = flag_config.field(64, "Images per batch.")
  geo_dir: str = flag_config.field("", "A location prior (inat-train-geo): report the scores "
                                   "with and without it, side by side.")
  taxon: str = commands.taxon_field()
  checklist: str = commands.checklist_field()
  rollup_rule: str = commands.rollup_rule_field("argmax")
  rollup_precision: float = commands.rollup_precision_field()
  location_floor: float = commands.location_floor_field()
  captive: bool = commands.captive_field()


def run(argv=None):
  """Console entry point `inat-eval`."""
  flag_config.run_command("inat-eval", EvalConfig, "inat_tf.evaluate:main", argv=argv,
                          errors=(ValueError, FileNotFoundError, errors.GeoError), check=check)


def check(c, _):
  """What inat-eval refuses before any work: a split without labels, an unwritable report."""
  commands.labelled(c.split, "split", "score", "; a Kaggle submission of the test split is "
                    "inat-predict --split test")
  commands.trained_model_dir(c.model_dir, c.which)
  commands.at_least_one(c.batch_size, "batch_size")
  commands.check_answer_flags(c)
  if c.output_dir:
    output_paths.folder(c.output_dir, "output_dir")
  else:  # MODEL_DIR/eval-SPLIT, made once the model is found there
    output_paths.folder(c.model_dir, "model_dir", create=False)


if __name__ == "__main__":
  run()
