"""`inat-data-service`: a tf.data service dispatcher or worker, for input-bound training.

When one host cannot decode and augment fast enough to feed its accelerators, run workers on CPU
machines and point training at the dispatcher (`inat-train --data_service=host:5050`); the input
pipeline then runs on the workers and only finished batches travel to the trainer. The pipeline
graph is shipped by TensorFlow itself, so workers need this package only to start.

  inat-data-service --role=dispatcher --port=5050
  inat-data-service --role=worker --dispatcher=dispatcher-host:5050 --port=5051
"""

import sys


def run(argv=None):
  """Console entry point: starts one server and serves until killed."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from inat_tf import cli  # pylint: disable=g-import-not-at-top

  flags.DEFINE_enum("role", None, ["dispatcher", "worker"], "Which server to run.",
                    required=True)
  flags.DEFINE_integer("port", 0, "Port to listen on (0: any free port, printed at start).")
  flags.DEFINE_string("dispatcher", "", "Dispatcher host:port (workers only).")
  flags.DEFINE_string("worker_host", "localhost",
                      "Host name the dispatcher gives trainers for this worker (workers only).")

  def main(_):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    f = flags.FLAGS
    service = tf.data.experimental.service
    if f.role == "dispatcher":
      server = service.DispatchServer(service.DispatcherConfig(port=f.port))
      address = server.target.split("://")[-1]
    else:
      if not f.dispatcher:
        sys.exit("inat-data-service: --role=worker needs --dispatcher=host:port")
      server = service.WorkerServer(service.WorkerConfig(
          dispatcher_address=f.dispatcher, port=f.port,
          worker_address=f"{f.worker_host}:%port%"))
      address = f"{f.worker_host}:{server._address.split(':')[-1]}"  # pylint: disable=protected-access
    print(f"inat-data-service: {f.role} serving on {address}", flush=True)
    server.join()

  cli.run(main, argv)


if __name__ == "__main__":
  run()
