"""inat-score's flags (ScoreConfig) and entry point; the work is inat_tf/score.py."""

import dataclasses

from inat_tf import editions
from inat_tf import flag_config


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
  """inat-score's flags."""
  predictions: str = flag_config.field(help="Submission CSV (the edition's Kaggle format).")
  annotations: str = flag_config.field(help="COCO-style JSON with annotations: the "
                                       "download's val JSON (val2017.json, val2018.json, "
                                       "val2019.json or val.json).")
  edition: str = flag_config.field("", "Whose submission format; default: from the "
                                   "annotations' file name.", choices=("",) + editions.NAMES)


def run(argv=None):
  """Console entry point `inat-score`."""
  from inat_tf import score  # pylint: disable=g-import-not-at-top  (ScoreError)
  flag_config.run_command("inat-score", ScoreConfig, "inat_tf.score:main", argv=argv,
                          errors=(score.ScoreError, ValueError, FileNotFoundError,
                                  editions.EditionError))


if __name__ == "__main__":
  run()
