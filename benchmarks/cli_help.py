"""`inat-NAME --help` with the flags in inat_tf/commands/ against the flags beside the work (issue
30 item 1), side by side in one run.

  python benchmarks/cli_help.py [--repeats 5] [--commands train,eval,build]

For each command, two ways, each a fresh process:
  commands    the installed console script: inat_tf/commands/NAME.py defines the flags and answers
              --help; TensorFlow is never imported.
  beside      the same, but the implementation module imported first (inat_tf.train, ...), which is
              what answering --help cost when the flags were declared there (it imports
              TensorFlow and Keras).
Prints, per command, the median wall time and CPU time (user + system) of each way, their ratio,
and each way's peak memory (max RSS); the load average before and after, since CPU seconds, not
wall seconds, are what a quiet machine's wall time comes close to.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

# Command -> its implementation module (what the flags used to live beside).
IMPLEMENTATIONS = {
    "make-sample": "inat_tf.sample_download", "build": "tfrecord_builder.build",
    "data-service": "inat_tf.data_service", "train": "inat_tf.train", "eval": "inat_tf.evaluate",
    "predict": "inat_tf.predict", "score": "inat_tf.score", "export": "inat_tf.export",
    "adjust": "inat_tf.adjust", "quickstart": "inat_tf.quickstart", "train-geo": "inat_tf.geo.train",
    "classify": "inat_tf.classify", "overlap": "tfrecord_builder.overlap",
    "detect-train": "inat_tf.detection.train", "detect-eval": "inat_tf.detection.evaluate",
    "detect-export": "inat_tf.detection.export",
}


def _script(name):
  return os.path.join(os.path.dirname(sys.executable), f"inat-{name}")


def _timed(argv, environment):
  """(wall seconds, CPU seconds) of one run of argv to its end."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.monotonic()
  result = subprocess.run(argv, capture_output=True, env=environment)
  wall = time.monotonic() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if result.returncode != 0:
    raise SystemExit(f"{argv}: exit {result.returncode}: {result.stderr.decode()[-500:]}")
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return wall, cpu


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--commands", default=",".join(IMPLEMENTATIONS))
  args = parser.parse_args()
  environment = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
  print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
  print(f"{'command':<14} {'commands wall':>13} {'cpu':>6} {'beside wall':>11} {'cpu':>6} "
        f"{'cpu ratio':>9}   peak MB: commands, beside")
  for name in args.commands.split(","):
    ways = {
        "commands": [_script(name), "--help"],
        # The script's own code, after importing the implementation first.
        "beside": [sys.executable, "-c",
                   f"import sys; sys.argv = [{_script(name)!r}, '--help']; "
                   f"import {IMPLEMENTATIONS[name]}; "
                   f"from inat_tf.commands.{name.replace('-', '_')} import run; run()"],
    }
    measured = {way: [] for way in ways}
    peaks = {}
    for _ in range(args.repeats):
      for way, argv in ways.items():  # interleaved: both see the same load
        wall, cpu = _timed(argv, environment)
        measured[way].append((wall, cpu))
    for way, argv in ways.items():  # peak memory: one more run each, alone in its own process
      peaks[way] = subprocess.run(
          [sys.executable, "-c", "import resource, subprocess, sys; "
           "subprocess.run(sys.argv[1:], capture_output=True); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)"] + argv,
          capture_output=True, text=True, env=environment).stdout.strip()
    row = {way: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
           for way, runs in measured.items()}
    print(f"inat-{name:<9} {row['commands'][0]:>12.2f}s {row['commands'][1]:>5.2f}s "
          f"{row['beside'][0]:>10.2f}s {row['beside'][1]:>5.2f}s "
          f"{row['beside'][1] / row['commands'][1]:>8.1f}x   {peaks['commands']}, "
          f"{peaks['beside']}", flush=True)
  print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
