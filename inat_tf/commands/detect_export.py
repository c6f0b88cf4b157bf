"""inat-detect-export's flags (DetectExportConfig) and entry point; the work is
inat_tf/detection/export.py."""

import dataclasses

from inat_tf import flag_config
from inat_tf import output_paths


@dataclasses.dataclass(frozen=True)
class DetectExportConfig:
  """inat-detect-export's flags."""
  model_dir: str = flag_config.field(help="Model dir written by inat-detect-train.")
  export_dir: str = flag_config.field(help="Where to write (any gfile path).")


def run(argv=None):
  """Console entry point `inat-detect-export`."""
  flag_config.run_command("inat-detect-export", DetectExportConfig,
                          "inat_tf.detection.export:main", argv=argv,
                          errors=(FileNotFoundError, ValueError, RuntimeError),
                          check=lambda c, _: output_paths.folder(c.export_dir, "export_dir"))


if __name__ == "__main__":
  run()
