"""A progress line a person can read: images/s, ETA, rejects, repairs; and a closing summary."""

import sys
import threading
import time


def _duration(seconds):
  seconds = int(seconds)
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
  """Counts work from the build loop; a daemon thread prints a line every `interval` seconds.

  The ETA comes from the fraction of compressed input read, which is what the time goes into
  (archive members are in no useful order, so image counts alone would mislead early on).
  """

  def __init__(self, total_images, total_bytes, stream=sys.stderr, interval=5.0):
    self.total_images, self.total_bytes = total_images, total_bytes
    self.images = self.rejects = self.repairs = self.skipped = 0
    self.bytes_read = 0
    self._stream, self._interval = stream, interval
    self._start = time.monotonic()
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._done.set()
    self._thread.join()

  @property
  def elapsed(self):
    return time.monotonic() - self._start

  def line(self):
    elapsed = max(self.elapsed, 1e-6)
    rate = self.images / elapsed
    fraction = (self.bytes_read / self.total_bytes if self.total_bytes
                else self.images / max(1, self.total_images))
    eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
    eta_text = _duration(eta) if eta == eta else "?"
    return (f"{self.images:,}/{self.total_images:,} images, {rate:,.0f} images/s, "
            f"{100 * fraction:.0f}% of input read, ETA {eta_text}, "
            f"{self.rejects} rejected, {self.repairs} repaired")

  def _run(self):
    while not self._done.wait(self._interval):
      print(f"inat-build: {self.line()}", file=self._stream, flush=True)
