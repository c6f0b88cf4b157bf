"""One progress format for every long command (inat-build, -train, -eval, -predict, -export,
-detect-eval): `N/TOTAL images, R images/s, P% done, ETA 1m23s`, totals from the manifest.

  with progress.Progress("inat-eval", total=records.split_examples(data_dir, "val")) as bar:
    for batch in dataset:
      ...
      bar.images += len(batch)

A daemon thread prints a line every `interval` seconds to stderr (the loop may sit in one long
TensorFlow call), and one closing line when the block ends.
"""

import sys
import threading
import time


def duration(seconds):
  """`1h02m` or `3m07s`."""
  seconds = int(seconds)
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  return f"{seconds // 60}m{seconds % 60:02d}s"


def rate_text(images, total, elapsed, fraction=None):
  """`1,234/96,000 images, 345 images/s, 1% done, ETA 4m35s`; fraction defaults to
  images / total (the builder passes the fraction of input bytes read)."""
  elapsed = max(elapsed, 1e-6)
  if fraction is None:
    fraction = images / total if total else 0.0
  eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
  return (f"{images:,}/{total:,} images, {images / elapsed:,.0f} images/s, "
          f"{100 * fraction:.0f}% done, ETA {duration(eta) if eta is not None else '?'}")


class Progress:
  """Counts images (`progress.images += n`); prints `command: line()` every `interval` s."""

  def __init__(self, command, total, stream=sys.stderr, interval=5.0, closing_line=True):
    self.command, self.total, self.images = command, total, 0
    self._stream, self._interval, self._closing_line = stream, interval, closing_line
    self._start = time.monotonic()
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def __enter__(self):
    self._start = time.monotonic()
    self._thread.start()
    return self

  def __exit__(self, exc_type, *unused):
    self._done.set()
    self._thread.join()
    if self._closing_line and exc_type is None:
      self._print(f"{self.images:,} images in {duration(self.elapsed)} "
                  f"({self.images / max(self.elapsed, 1e-6):,.0f} images/s)")

  @property
  def elapsed(self):
    return time.monotonic() - self._start

  def line(self):
    return rate_text(self.images, self.total, self.elapsed)

  def _print(self, text):
    print(f"{self.command}: {text}", file=self._stream, flush=True)

  def _run(self):
    while not self._done.wait(self._interval):
      self._print(self.line())
