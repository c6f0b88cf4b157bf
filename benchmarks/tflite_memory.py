"""Where inat-export's memory goes at many classes: the TFLite converter's working set.

  python benchmarks/tflite_memory.py                      # MobileNet V1, 13 to 10,000 classes
  python benchmarks/tflite_memory.py --classes 10000 --model inception_v3
  python benchmarks/tflite_memory.py --exports MODEL_DIR:DATA_DIR,...   # whole inat-exports

Each class count and conversion (float, and int8 calibrated on 100 random images as inat-export
calibrates on 100 train images) runs in a fresh process (ru_maxrss is a high-water mark): it
builds the network (random weights, 32 px, 75 for Inceptions: the head's size does not depend on
the image size), wraps it as inat-export's TFLite functions are wrapped, and converts it with
`inat_tf.export.tflite_bytes`, printing the float model's size and the peak RSS above the
process's RSS before converting. Issue 26 asks every stage to stay within 1.5 GB above a bare
`import tensorflow` at iNat2021's 10,000 classes; this shows how much of inat-export's peak is the
converter's own. --exports instead runs `inat_tf.export.export` (with TFLite, int8 calibrated
on the data dir) on trained model dirs, each in a fresh process, and prints the RSS at its memory
check and its peak: what inat_tf.tflite_memory's estimate (printed beside) must cover.
"""

import argparse
import gc
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rss_mb():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(model_name, classes, image_size, quantize):
  """One conversion; prints one tab-separated line: classes, model MB, MB before, peak MB,
  weights."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import models  # pylint: disable=g-import-not-at-top
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  model = models.build(model_name, classes, image_size)

  @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])
  def probabilities(images):
    return {"probabilities": tf.nn.softmax(model(images, training=False))}
  images = [np.random.default_rng(i).uniform(0, 255, (1, image_size, image_size, 3))
            .astype(np.float32) for i in range(100)] if quantize else None
  gc.collect()
  # ru_maxrss cannot be reset: the mark before converting is the higher of building's peak and
  # the RSS now, and the conversion is measured above that (so never overstated).
  before = max(_rss_mb(), _peak_mb())
  export.tflite_bytes(probabilities, quantize=quantize or None, images=images)
  print(f"{classes}\t{4 * model.count_params() / 2**20:.1f}\t{before:.0f}\t{_peak_mb():.0f}\t"
        f"{model.count_params()}", flush=True)


def export_child(model_dir, data_dir):
  """One whole inat-export; prints one tab-separated line: weights, MB at the check, peak MB."""
  import tempfile  # pylint: disable=g-import-not-at-top
  from inat_tf import export, tflite_memory  # pylint: disable=g-import-not-at-top
  seen = {}
  problem = tflite_memory.problem

  def at_check(parameters, available):  # export's check, the point the estimate is from
    seen.update(weights=parameters, rss=max(_rss_mb(), _peak_mb()))
    return problem(parameters, available)
  tflite_memory.problem = at_check
  with tempfile.TemporaryDirectory() as export_dir:
    export.export(model_dir, export_dir, data_dir=data_dir)
  print(f"{seen['weights']}\t{seen['rss']:.0f}\t{_peak_mb():.0f}", flush=True)


def exports(pairs):
  """The --exports table: per model dir, the RSS at the check, the peak and the estimate."""
  from inat_tf import tflite_memory  # pylint: disable=g-import-not-at-top
  print("| model dir | weights | float model MB | at the check MB | peak MB | peak above the check "
        "MB | estimate MB |\n|---|---:|---:|---:|---:|---:|---:|")
  for pair in pairs.split(","):
    model_dir, data_dir = pair.split(":")
    result = subprocess.run([sys.executable, os.path.abspath(__file__),
                             f"--export_child={model_dir}:{data_dir}"],
                            capture_output=True, text=True, check=False)
    if result.returncode:
      sys.exit(f"{model_dir} failed:\n{result.stderr[-2000:]}")
    weights, at_check, peak = (float(v) for v in
                               result.stdout.strip().splitlines()[-1].split("\t"))
    print(f"| {model_dir} | {int(weights):,} | {4 * weights / 2**20:.0f} | {at_check:.0f} | "
          f"{peak:.0f} | +{peak - at_check:.0f} | "
          f"{tflite_memory.needed_bytes(int(weights)) / 2**20:.0f} |", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="mobilenet_v1")
  parser.add_argument("--classes", default="13,5089,10000")
  parser.add_argument("--image_size", type=int, default=32,
                      help="at least the network's minimum (Inceptions: 75)")
  parser.add_argument("--conversions", default="float,int8",
                      help="comma-separated, of float, int8, full_integer")
  parser.add_argument("--exports", default="",
                      help="comma-separated MODEL_DIR:DATA_DIR pairs: measure whole inat-exports")
  parser.add_argument("--child", default="", help=argparse.SUPPRESS)
  parser.add_argument("--export_child", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.export_child:
    export_child(*args.export_child.split(":"))
    return
  if args.exports:
    exports(args.exports)
    return
  import models  # pylint: disable=g-import-not-at-top
  from inat_tf import tflite_memory  # pylint: disable=g-import-not-at-top
  size = max(args.image_size, models.min_image_size(args.model))
  if args.child:
    child(args.model, int(args.classes), size, "" if args.child == "float" else args.child)
    return
  import_tf = subprocess.run(
      [sys.executable, "-c", "import resource, tensorflow; print(resource.getrusage("
       "resource.RUSAGE_SELF).ru_maxrss / 1024)"], capture_output=True, text=True, check=True)
  bare = float(import_tf.stdout.split()[-1])
  print(f"{args.model} at {size} px, TFLite conversions (inat_tf.export.tflite_bytes); a bare "
        f"`import tensorflow` peaks at {bare:.0f} MB\n")
  print("| classes | conversion | float model MB | before MB | peak MB | peak above before MB | "
        "that / model MB | peak above import-tf MB | tflite_memory's estimate MB |")
  print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
  for classes in args.classes.split(","):
    for conversion in args.conversions.split(","):
      result = subprocess.run([sys.executable, os.path.abspath(__file__), f"--child={conversion}",
                               f"--model={args.model}", f"--classes={classes}",
                               f"--image_size={size}"],
                              capture_output=True, text=True, check=False)
      if result.returncode:
        sys.exit(f"{classes} classes, {conversion} failed:\n{result.stderr[-2000:]}")
      row = result.stdout.strip().splitlines()[-1].split("\t")
      count, model_mb, before, peak, weights = (float(v) for v in row)
      above = peak - before
      print(f"| {int(count):,} | {conversion} | {model_mb:.1f} | {before:.0f} | {peak:.0f} | "
            f"+{above:.0f} | {above / model_mb:.1f}x | +{peak - bare:.0f} | "
            f"{tflite_memory.needed_bytes(int(weights)) / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
  main()
