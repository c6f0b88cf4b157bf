"""The builder's progress line: the shared format (inat_tf/progress.py) plus rejects, repairs."""

import sys

from inat_tf import progress


class Progress(progress.Progress):
  """Counts work from the build loop; a daemon thread prints a line every `interval` seconds.

  The ETA comes from the fraction of compressed input read, which is what the time goes into
  (archive members are in no useful order, so image counts alone would mislead early on).
  """

  def __init__(self, total_images, total_bytes, stream=sys.stderr, interval=5.0):
    super().__init__("inat-build", total_images, stream, interval, closing_line=False)
    self.total_images, self.total_bytes = total_images, total_bytes
    self.rejects = self.repairs = self.skipped = 0
    self.bytes_read = 0

  def line(self):
    fraction = (self.bytes_read / self.total_bytes if self.total_bytes
                else self.images / max(1, self.total_images))
    return (f"{progress.rate_text(self.images, self.total_images, self.elapsed, fraction)}, "
            f"{self.rejects} rejected, {self.repairs} repaired")
