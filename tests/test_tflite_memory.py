"""inat_tf.tflite_memory: what a TFLite conversion needs and what the machine has (real files)."""

import pytest

from inat_tf import tflite_memory


def test_a_model_too_large_for_the_memory_is_refused_in_one_sentence():
  weights = 25_000_000  # 95 MB of float32, about a ResNet-50
  needed = tflite_memory.needed_bytes(weights)
  assert needed == (tflite_memory.CONVERTER_FIXED_BYTES
                    + tflite_memory.CONVERTER_PEAK_PER_MODEL_BYTE * 4 * weights)
  assert tflite_memory.problem(weights, needed) is None
  assert tflite_memory.problem(weights, None) is None  # unknown memory: never refused
  message = tflite_memory.problem(weights, 2**30)
  assert "25,000,000 weights, 95 MB" in message and "1.7 GB" in message
  assert "1.0 GB is available" in message and "--notflite" in message and "\n" not in message


def _meminfo(path, available_kb):
  path.write_text(f"MemTotal:       24000000 kB\nMemFree:          100000 kB\n"
                  f"MemAvailable:   {available_kb} kB\nBuffers:  1000 kB\n")
  return str(path)


def test_available_memory_is_the_smaller_of_the_kernel_and_the_cgroup_limit(tmp_path):
  meminfo = _meminfo(tmp_path / "meminfo", 8_000_000)
  cgroup = tmp_path / "cgroup"
  cgroup.mkdir()
  assert tflite_memory.available_bytes(meminfo, str(cgroup)) == 8_000_000 * 1024  # no limit file
  (cgroup / "memory.max").write_text("max\n")
  (cgroup / "memory.current").write_text("1000\n")
  assert tflite_memory.available_bytes(meminfo, str(cgroup)) == 8_000_000 * 1024  # unlimited
  (cgroup / "memory.max").write_text(f"{4 * 2**30}\n")  # a 4 GB job on a larger host
  (cgroup / "memory.current").write_text(f"{2**30}\n")
  assert tflite_memory.available_bytes(meminfo, str(cgroup)) == 3 * 2**30
  # Of its 3 GB in use, 2 GB are files it wrote (page cache): the kernel reclaims those first.
  (cgroup / "memory.current").write_text(f"{3 * 2**30}\n")
  (cgroup / "memory.stat").write_text(f"anon {2**30}\nfile {2 * 2**30}\nkernel 4096\n")
  assert tflite_memory.available_bytes(meminfo, str(cgroup)) == 3 * 2**30
  assert tflite_memory.available_bytes(str(tmp_path / "none"), str(tmp_path / "none")) is None


def test_this_machine_says_what_it_has():
  available = tflite_memory.available_bytes()
  assert available is None or available > 0
  if available is None:
    pytest.skip("no /proc/meminfo here")
