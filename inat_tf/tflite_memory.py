"""Will the TFLite conversions fit in memory? Asked before inat-export writes anything.

TensorFlow's TFLite converter (freeze, save as a SavedModel, import into MLIR, export a
flatbuffer) holds many copies of a model's constants at once: one float conversion peaks at
29-38x the model's float32 bytes above where it started (benchmarks/tflite_memory.py, 2 cores:
MobileNet V1 +463 MB at 13 classes, +1,758 MB at 10,000; Inception V3 at 10,000 classes, 161 MB
of weights, +4,689 MB). An Inception V3 at iNat2021's 10,000 species thus needs ~5.7 GB to export
with TFLite; on a smaller machine the kernel kills the converter after the SavedModel is
written. inat-export refuses instead, before any work, naming what it would need and --notflite.

  problem = tflite_memory.problem(model.count_params(), tflite_memory.available_bytes())
"""

import os

# The converter's peak above its start, per float32 byte of the model: the highest measured
# (MobileNet V1 at 13 classes, 38x); the int8 conversions peaked ~10 % above the float one at
# 5,089 classes, inside that margin for the larger models (29-34x).
CONVERTER_PEAK_PER_MODEL_BYTE = 38


class NotEnoughMemory(ValueError):
  """The TFLite conversions would not fit; the message names the need and --notflite."""


def needed_bytes(parameters):
  """Bytes one TFLite conversion of a model with `parameters` float32 weights peaks at (int)."""
  return CONVERTER_PEAK_PER_MODEL_BYTE * 4 * int(parameters)


def available_bytes(meminfo="/proc/meminfo", cgroup="/sys/fs/cgroup"):
  """Bytes this process may still take (int), or None where that cannot be read (not Linux).

  The smaller of the kernel's MemAvailable and, in a container or cluster job with a cgroup v2
  memory limit, that limit less the cgroup's use without its page cache (MemAvailable there is
  the host's; memory.current counts the files the job wrote, which the kernel reclaims before it
  kills anything, so counting them would refuse exports that fit).
  """
  found = []
  try:
    with open(meminfo, encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          found.append(int(line.split()[1]) * 1024)  # kB
  except OSError:
    pass
  try:
    with open(os.path.join(cgroup, "memory.max"), encoding="ascii") as f:
      limit = f.read().strip()
    with open(os.path.join(cgroup, "memory.current"), encoding="ascii") as f:
      current = int(f.read().strip())
    if limit != "max":
      found.append(max(int(limit) - current + _page_cache(cgroup), 0))
  except (OSError, ValueError):
    pass
  return min(found) if found else None


def _page_cache(cgroup):
  """Bytes of page cache ("file" in memory.stat) charged to the cgroup; 0 if unreadable."""
  try:
    with open(os.path.join(cgroup, "memory.stat"), encoding="ascii") as f:
      for line in f:
        key, _, value = line.partition(" ")
        if key == "file":
          return int(value)
  except (OSError, ValueError):
    pass
  return 0


def problem(parameters, available):
  """None, or one sentence saying why converting a model of `parameters` weights to TFLite would
  not fit in `available` bytes (None: unknown, never refused)."""
  needed = needed_bytes(parameters)
  if available is None or needed <= available:
    return None
  return (f"converting this model ({parameters:,} weights, {4 * parameters / 2**20:,.0f} MB in "
          f"float32) to TFLite needs about {needed / 2**30:.1f} GB of memory (TensorFlow's "
          f"converter holds ~{CONVERTER_PEAK_PER_MODEL_BYTE} copies of the weights at its peak; "
          f"benchmarks/tflite_memory.py) and {available / 2**30:.1f} GB is available: export "
          f"with --notflite (the SavedModel alone), or on a machine with more memory")
