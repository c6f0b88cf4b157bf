"""`inat-data-service`: a tf.data service dispatcher or worker, for input-bound training.

When one host cannot decode and augment fast enough to feed its accelerators, run workers on CPU
machines and point training at the dispatcher (`inat-train --data_service=host:5050`); the input
pipeline then runs on the workers and only finished batches travel to the trainer. The pipeline
graph is shipped by TensorFlow itself, so workers need this package only to start.

  inat-data-service --role=dispatcher --port=5050
  inat-data-service --role=worker --dispatcher=dispatcher-host:5050 --port=5051
"""

import sys
import time

from inat_tf.commands.data_service import DataServiceConfig  # pylint: disable=unused-import


def main(c, _):
  """inat-data-service's work once its flags are parsed (inat_tf/commands/data_service.py):
  starts one server and serves until killed."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  service = tf.data.experimental.service
  if c.role == "dispatcher":
    server = service.DispatchServer(service.DispatcherConfig(port=c.port))
    address = server.target.split("://")[-1]
  else:
    if not c.dispatcher:
      sys.exit("inat-data-service: --role=worker needs --dispatcher=host:port")
    server = service.WorkerServer(service.WorkerConfig(
        dispatcher_address=c.dispatcher, port=c.port,
        worker_address=f"{c.worker_host}:%port%"))
    address = f"{c.worker_host}:{server._address.split(':')[-1]}"  # pylint: disable=protected-access
  print(f"inat-data-service: {c.role} serving on {address}", flush=True)
  while True:  # not server.join(), which blocks in C++ where a Ctrl-C would wait for it
    time.sleep(3600)

