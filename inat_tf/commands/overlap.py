"""inat-overlap's flags (OverlapConfig) and entry point; the work is tfrecord_builder/overlap.py."""

import dataclasses

from inat_tf import flag_config


@dataclasses.dataclass(frozen=True)
class OverlapConfig:
  """inat-overlap's flags."""
  data_dir: str = flag_config.field(help="A data dir written by inat-build.")
  other: str = flag_config.field(help="Another data dir written by inat-build.")
  json: bool = flag_config.field(False, "Print the result as JSON.")


def run(argv=None):
  """Console entry point `inat-overlap`."""
  flag_config.run_command("inat-overlap", OverlapConfig, "tfrecord_builder.overlap:main",
                          errors=(FileNotFoundError,), argv=argv)


if __name__ == "__main__":
  run()
