"""Per-image cost of the builder's JPEG decode check against the alternatives, on one download.

  python benchmarks/decode_check.py --archive /tmp/inat-bench/download-x1/train_val_images.tar.gz

Reads up to --count JPEG members of the archive into memory, then times, over the same bytes (best
of --repeats passes, one core):
  header only         tfrecord_builder.image_check.read_jpeg_facts (the old check)
  strict 1/8          simplejpeg strict mode at 1/8 DCT scale (the builder's check)
  strict full         simplejpeg strict mode, full size
  tf full             tf.io.decode_jpeg, full size (--verify_decode)
  pillow full         PIL decode, full size
Prints ms per image, the ratio to `strict 1/8`, and the peak RSS of the process.
"""

import argparse
import io
import resource
import tarfile
import time

import numpy as np
import simplejpeg
from PIL import Image


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--archive", required=True)
  parser.add_argument("--count", type=int, default=400)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import image_check  # pylint: disable=g-import-not-at-top

  jpegs = []
  with tarfile.open(args.archive, "r:gz") as tar:
    for member in tar:
      if member.isfile() and len(jpegs) < args.count:
        data = tar.extractfile(member).read()
        if data[:3] == b"\xff\xd8\xff":
          jpegs.append(data)
  sizes = np.array([Image.open(io.BytesIO(d)).size for d in jpegs])
  print(f"{len(jpegs)} JPEGs, mean {sizes[:, 0].mean():.0f} x {sizes[:, 1].mean():.0f} px, "
        f"mean {np.mean([len(d) for d in jpegs]) / 1e3:.0f} kB")
  candidates = {
      "header only": image_check.read_jpeg_facts,
      "strict 1/8": lambda d: simplejpeg.decode_jpeg(d, min_height=1, min_width=1, min_factor=8),
      "strict full": simplejpeg.decode_jpeg,
      "tf full": lambda d: tf.io.decode_jpeg(d, channels=3),
      "pillow full": lambda d: Image.open(io.BytesIO(d)).load(),
  }
  best = {}
  for _ in range(args.repeats):
    for name, check in candidates.items():
      start = time.perf_counter()
      for data in jpegs:
        check(data)
      seconds = (time.perf_counter() - start) / len(jpegs)
      best[name] = min(best.get(name, seconds), seconds)
  for name, seconds in best.items():
    print(f"  {name:12s} {seconds * 1e3:7.3f} ms/image  {seconds / best['strict 1/8']:5.2f}x "
          f"strict 1/8")
  print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
  main()
