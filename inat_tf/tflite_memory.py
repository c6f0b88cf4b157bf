"""Will the TFLite conversions fit in memory? Asked before inat-export writes anything.

TensorFlow's TFLite converter (save the variables as a SavedModel, import and freeze them in
MLIR, quantise, export a flatbuffer) holds several copies of a model's constants at once; the
int8 conversions, which also run the model on the calibration images, peak highest
(benchmarks/tflite_memory.py, 2 cores, 2026-12-07: MobileNet V1 at 10,000 classes, 51 MB of
float32 weights, +434 MB float and +724 MB int8 above where it started; Inception V3 at 10,000
classes, 161 MB, +1,243 MB and +1,816 MB). On a machine without that much the kernel kills the
converter after the SavedModel is written; inat-export refuses instead, before any work, naming
what it would need and --notflite.

  problem = tflite_memory.problem(model.count_params(), tflite_memory.available_bytes())
"""

import os

# The converter's peak above its start: a fixed part (its own code and buffers, ~200 MB for a
# 12 MB model) and a part per float32 byte of the model (~10x in the int8 conversions, between
# MobileNet V1 and Inception V3 at 10,000 classes), with ~15 % to spare over every measured
# conversion (benchmarks/RESULTS.md, "inat-export's peak").
CONVERTER_FIXED_BYTES = 256 * 2**20
CONVERTER_PEAK_PER_MODEL_BYTE = 12


class NotEnoughMemory(ValueError):
  """The TFLite conversions would not fit; the message names the need and --notflite."""


def needed_bytes(parameters):
  """Bytes one TFLite conversion of a model with `parameters` float32 weights peaks at above
  where it starts (int): the highest of inat-export's conversions, int8's."""
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
          f"int8 converter peaks at ~{CONVERTER_PEAK_PER_MODEL_BYTE}x the float32 weights; "
          f"benchmarks/tflite_memory.py) and {available / 2**30:.1f} GB is available: export "
          f"with --notflite (the SavedModel alone), or on a machine with more memory")
