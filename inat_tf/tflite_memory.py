"""Will inat-export's TFLite conversions fit in memory? Asked before it writes anything.

From its check (the model loaded) to its peak, inat-export adds the serving functions, the
SavedModel and the TFLite conversions; TensorFlow's converter (save the variables as a
SavedModel, import and freeze them in MLIR, quantise, export a flatbuffer) holds several copies of
a model's constants at once, and the int8 conversions, which also run the model on the
calibration images, peak highest (benchmarks/tflite_memory.py, 2 cores, 2026-12-07: one int8
conversion of MobileNet V1 at 10,000 classes, 51 MB of float32 weights, +720 MB above where it
started, the whole export +831 MB above its check; Inception V3 at 10,000 classes, 161 MB,
+1,798 and +1,958 MB). On a machine without that much the kernel kills the converter after the
SavedModel is written; inat-export refuses instead, before any work, naming what it would need
and --notflite.

  problem = tflite_memory.problem(model.count_params(), tflite_memory.available_bytes())
"""

import os

# The whole export's peak above its check: a fixed part and a part per float32 byte of the
# model, above every measured export by 15-54 % (MobileNet V1 at 13 and 10,000 classes, ResNet-50
# and Inception V3 at 13, Inception V3 at 10,000: benchmarks/RESULTS.md, "inat-export's peak").
# Deep graphs cost more than their bytes say (Inception V3 at 13 classes, 83 MB: +1,387 MB;
# MobileNet V1 at 10,000, 51 MB: +831 MB), hence the large fixed part.
CONVERTER_FIXED_BYTES = 448 * 2**20
CONVERTER_PEAK_PER_MODEL_BYTE = 14


class NotEnoughMemory(ValueError):
  """The TFLite conversions would not fit; the message names the need and --notflite."""


def needed_bytes(parameters):
  """Bytes inat-export with TFLite adds, from its check to its peak, for a model of `parameters`
  float32 weights (int)."""
  return CONVERTER_FIXED_BYTES + CONVERTER_PEAK_PER_MODEL_BYTE * 4 * int(parameters)


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
          f"converter holds several copies of the weights; benchmarks/tflite_memory.py) and "
          f"{available / 2**30:.1f} GB is available: export with --notflite (the SavedModel "
          f"alone), or on a machine with more memory")
