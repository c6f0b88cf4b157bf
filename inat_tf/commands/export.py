"""inat-export's flags (ExportConfig) and entry point; the work is inat_tf/export.py."""

import dataclasses

from inat_tf import commands
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """inat-export's flags."""
  model_dir: str = flag_config.field(help="Model dir written by inat-train.")
  export_dir: str = flag_config.field(help="Where to write (any gfile path).")
  data_dir: str = flag_config.field(
      "", "Data dir: int8 calibration images (train), the int8 models' check against float "
      "(up to 200 val images, else minival; inat_tf/int8_check.py) and the warm-up image.")
  which: str = commands.which_field()
  top_k: int = flag_config.field(5, "Categories returned per image.")
  tflite: bool = flag_config.field(True, "Also write TFLite models.")
  geo_dir: str = flag_config.field("", "A location prior (inat-train-geo): adds the signature "
                                   "serving_with_place and model_with_place.tflite.")
  rollup_rule: str = commands.rollup_rule_field("inat")
  rollup_precision: float = commands.rollup_precision_field()
  location_floor: float = commands.location_floor_field()
  bundle: bool = flag_config.field(
      False, "Also write EXPORT_DIR/bundle/, one folder a phone app ships: the vision TFLite "
      "models, the location model (with --geo_dir), taxonomy, labels, preprocessing facts and a "
      "README for app developers (inat_tf/bundle.py).")


def run(argv=None):
  """Console entry point `inat-export`."""
  # ValueError: a stale long-tail adjustment.
  flag_config.run_command("inat-export", ExportConfig, "inat_tf.export:main", argv=argv,
                          errors=(FileNotFoundError, ValueError, errors.GeoError), check=check)


def check(c, _):
  """What inat-export refuses before any work."""
  commands.trained_model_dir(c.model_dir, c.which)
  commands.at_least_one(c.top_k, "top_k")
  if not 0 < c.rollup_precision <= 1:
    raise errors.UsageError(f"--rollup_precision={c.rollup_precision}: must be in (0, 1]")
  if not 0 <= c.location_floor < 1:
    raise errors.UsageError(f"--location_floor={c.location_floor}: must be in [0, 1)")
  if c.location_floor != commands.DEFAULT_LOCATION_FLOOR and not c.geo_dir:
    raise errors.UsageError("--location_floor sets how the location prior is combined: give "
                            "--geo_dir (inat-train-geo) too")
  if c.bundle and not c.tflite:
    raise errors.UsageError("--bundle ships the TFLite models: drop --notflite")
  output_paths.folder(c.export_dir, "export_dir")  # last: it makes the folder


if __name__ == "__main__":
  run()
