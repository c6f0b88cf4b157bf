"""inat-build's worker processes (issue 19): a worker that dies stops the build with a one-line
message, and the rerun completes. Identical output for any worker count and after kill -9 is
tested in test_builder.py (test_same_output_for_any_worker_count_and_job_array,
test_kill_minus_nine_then_rerun_gives_identical_shards)."""

import multiprocessing
import os
import signal
import threading
import time

import pytest

from tfrecord_builder import build as build_lib


@pytest.mark.slow
def test_a_killed_worker_stops_the_build_with_a_message_and_the_rerun_completes(
    sample_dir, built_dir, tmp_path):
  config = build_lib.BuildConfig(raw_dir=str(sample_dir), data_dir=str(tmp_path / "data"),
                                 examples_per_shard=300, num_workers=2, verify_decode=True)
  killed = []

  def kill_a_worker():  # what the kernel's OOM killer does to one worker
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not killed:
      workers = multiprocessing.active_children()
      if workers:
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)
      time.sleep(0.01)

  killer = threading.Thread(target=kill_a_worker)
  killer.start()
  with pytest.raises(build_lib.BuildError, match="a worker process died .* rerun the same"):
    build_lib.build(config, log=lambda message: None)
  killer.join()
  assert killed
  status, _ = build_lib.build(config, log=lambda message: None)
  assert status == 0
  shards = lambda data_dir: {p.name: p.read_bytes() for p in data_dir.glob("*.tfrecord")}
  assert shards(tmp_path / "data") == shards(built_dir)
