"""inat-data-service's flags (DataServiceConfig) and entry point; the work is
inat_tf/data_service.py."""

import dataclasses

from inat_tf import flag_config


@dataclasses.dataclass(frozen=True)
class DataServiceConfig:
  """inat-data-service's flags."""
  role: str = flag_config.field(help="Which server to run.", choices=("dispatcher", "worker"))
  port: int = flag_config.field(0, "Port to listen on (0: any free port, printed at start).")
  dispatcher: str = flag_config.field("", "Dispatcher host:port (workers only).")
  worker_host: str = flag_config.field(
      "localhost", "Host name the dispatcher gives trainers for this worker (workers only).")


def run(argv=None):
  """Console entry point: starts one server and serves until killed."""
  flag_config.run_command("inat-data-service", DataServiceConfig, "inat_tf.data_service:main",
                          argv=argv)


if __name__ == "__main__":
  run()
