"""Where inat-export's memory goes at many classes: the TFLite converter's working set.

  python benchmarks/tflite_memory.py                      # MobileNet V1, 13 to 10,000 classes
  python benchmarks/tflite_memory.py --classes 10000 --model inception_v3

Each class count runs in a fresh process (ru_maxrss is a high-water mark): it builds the network
(random weights, 32 px: the head's size does not depend on the image size), wraps it as
inat-export's TFLite functions are wrapped, and converts it with `inat_tf.export.tflite_bytes`
(freeze, then tf.lite.TFLiteConverter), printing the float model's size and the peak RSS above
the process's RSS before freezing. Issue 26 asks every stage to stay within 1.5 GB above a bare
`import tensorflow` at iNat2021's 10,000 classes; this shows how much of inat-export's peak is the
converter's own, a multiple of the model's bytes, and so not ours to stream away.
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


def child(model_name, classes, image_size):
  """One conversion; prints one tab-separated line: classes, model MB, MB before, peak MB."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import models  # pylint: disable=g-import-not-at-top
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  model = models.build(model_name, classes, image_size)

  @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])
  def probabilities(images):
    return {"probabilities": tf.nn.softmax(model(images, training=False))}
  gc.collect()
  # ru_maxrss cannot be reset: the mark before converting is the higher of building's peak and
  # the RSS now, and the conversion is measured above that (so never overstated).
  before = max(_rss_mb(), _peak_mb())
  content = export.tflite_bytes(probabilities)
  print(f"{classes}\t{len(content) / 2**20:.1f}\t{before:.0f}\t{_peak_mb():.0f}", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="mobilenet_v1")
  parser.add_argument("--classes", default="13,5089,10000")
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args.model, int(args.classes), args.image_size)
    return
  import_tf = subprocess.run(
      [sys.executable, "-c", "import resource, tensorflow; print(resource.getrusage("
       "resource.RUSAGE_SELF).ru_maxrss / 1024)"], capture_output=True, text=True, check=True)
  bare = float(import_tf.stdout.split()[-1])
  print(f"{args.model} at {args.image_size} px, float TFLite conversion (inat_tf.export."
        f"tflite_bytes); a bare `import tensorflow` peaks at {bare:.0f} MB\n")
  print("| classes | float model MB | before MB | peak MB | peak above before MB | "
        "that / model MB | peak above import-tf MB |")
  print("|---:|---:|---:|---:|---:|---:|---:|")
  for classes in args.classes.split(","):
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                             f"--model={args.model}", f"--classes={classes}",
                             f"--image_size={args.image_size}"],
                            capture_output=True, text=True, check=False)
    if result.returncode:
      sys.exit(f"{classes} classes failed:\n{result.stderr[-2000:]}")
    row = result.stdout.strip().splitlines()[-1].split("\t")
    count, model_mb, before, peak = (float(v) for v in row)
    above = peak - before
    print(f"| {int(count):,} | {model_mb:.1f} | {before:.0f} | {peak:.0f} | +{above:.0f} | "
          f"{above / model_mb:.0f}x | +{peak - bare:.0f} |")


if __name__ == "__main__":
  main()
