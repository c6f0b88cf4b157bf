"""inat-classify's flags (ClassifyConfig) and entry point; the work is inat_tf/classify.py."""

import dataclasses

from inat_tf import commands
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class ClassifyConfig:
  """inat-classify's flags (the photos and folders follow them)."""
  model_dir: str = flag_config.field(help="Model dir written by inat-train.")
  which: str = commands.which_field()
  geo_dir: str = flag_config.field("", "A location prior (inat-train-geo).")
  latitude: float = flag_config.field(None, "Where the photos were taken, degrees (needs "
                                      "--geo_dir; otherwise each photo's EXIF GPS is used).")
  longitude: float = flag_config.field(None, "Where the photos were taken, degrees.")
  date: str = flag_config.field("", "When, YYYY-MM-DD (otherwise each photo's EXIF date).")
  top_k: int = flag_config.field(5, "Species per photo.")
  output_csv: str = flag_config.field("", "Also write the table as CSV here.")
  output_json: str = flag_config.field("", "Also write the results as JSON here.")
  taxon: str = commands.taxon_field()
  checklist: str = commands.checklist_field()
  rollup_rule: str = commands.rollup_rule_field("inat")
  rollup_precision: float = commands.rollup_precision_field()
  location_floor: float = commands.location_floor_field()
  captive: bool = commands.captive_field()


def run(argv=None):
  """Console entry point `inat-classify`."""
  flag_config.run_command("inat-classify", ClassifyConfig, "inat_tf.classify:main", argv=argv,
                          positional=True, check=check,
                          # ValueError: an unknown --taxon or checklist id, a missing or stale
                          # roll-up calibration (one line each)
                          errors=(errors.ClassifyError, FileNotFoundError, errors.GeoError,
                                  errors.LongTailError, ValueError))


def place_problem(latitude, longitude, date, geo_dir):
  """The one-line refusal of a --latitude / --longitude / --date that cannot be used, or None
  (TensorFlow-free; the date's own check needs TensorFlow and comes later)."""
  if (latitude is None) != (longitude is None):
    return "Give --latitude and --longitude together"
  if (latitude is not None or date) and not geo_dir:
    return ("--latitude, --longitude and --date are used by a location prior: give --geo_dir "
            "(inat-train-geo) too")
  if latitude is not None and not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
    return (f"--latitude {latitude} --longitude {longitude}: expected degrees in [-90, 90] and "
            f"[-180, 180]")
  return None


def check(c, _, paths):
  """What inat-classify refuses before any work."""
  if not paths:
    raise errors.UsageError("name at least one PHOTO_OR_FOLDER (see --help)")
  problem = place_problem(c.latitude, c.longitude, c.date, c.geo_dir)
  if problem:
    raise errors.UsageError(problem)
  commands.trained_model_dir(c.model_dir, c.which)
  commands.at_least_one(c.top_k, "top_k")
  output_paths.file(c.output_csv, "output_csv")
  output_paths.file(c.output_json, "output_json")
  commands.check_answer_flags(c)


if __name__ == "__main__":
  run()
