"""Image bytes straight out of the published `.tar.gz` (no extraction, no temporary copy), or out
of a folder already extracted from it.

The archive is read once, front to back: the raw bytes are hashed (md5, to compare with the
competition page) and inflated by ISA-L in a background thread (`isal.igzip_threaded`, 1.3-1.5x
zlib's speed here and off the main thread; see BUILD_NOTES.md), and tar members are parsed in
stream mode. Members whose names escape the archive or that are not regular files are reported,
never read.
"""

import dataclasses
import hashlib
import io
import os
import posixpath
import tarfile
import zlib

import tensorflow as tf
from isal import igzip_threaded

_READ_BUFFER = 4 << 20


class ArchiveTruncated(Exception):
  """The archive ended early or is corrupt; members before the failure were delivered."""


@dataclasses.dataclass
class ArchiveStats:
  """Filled in while an archive streams; `md5` is set when it was read to the end."""
  path: str
  size: int
  bytes_read: int = 0
  md5: str = ""


class _HashingReader(io.RawIOBase):
  """Passes reads through, hashing and counting the raw (compressed) bytes."""

  def __init__(self, raw, stats):
    super().__init__()
    self._raw, self._stats, self._md5 = raw, stats, hashlib.md5()

  def readable(self):
    return True

  def readinto(self, buffer):
    data = self._raw.read(len(buffer))
    n = len(data)
    buffer[:n] = data
    self._md5.update(data)
    self._stats.bytes_read += n
    if n == 0:
      self._stats.md5 = self._md5.hexdigest()
    return n


def _open_raw(path):
  # Local files through the OS (fastest); anything with a scheme (gs://, ram://) through gfile.
  if "://" not in path:
    return open(path, "rb", buffering=0)
  return tf.io.gfile.GFile(path, "rb")


def unsafe_reason(member):
  """Why a tar member must not be used ('' when it is a plain file with a relative path)."""
  if not member.isfile():
    return "" if member.isdir() else f"not a regular file (tar type {member.type!r})"
  name = member.name
  normalized = posixpath.normpath(name)
  if name.startswith("/") or normalized == ".." or normalized.startswith("../"):
    return "its path escapes the archive"
  return ""


def iter_archive(path, stats, on_unsafe):
  """Yields (member name, bytes) for each regular file of a .tar.gz, in archive order.

  stats: an ArchiveStats updated as bytes are read (progress and md5).
  on_unsafe(name, reason): called for members that are skipped for safety.
  Raises ArchiveTruncated when the archive ends early or its compressed data is corrupt.
  """
  raw = _open_raw(path)
  last = "the first member"
  try:
    hashed = io.BufferedReader(_HashingReader(raw, stats), _READ_BUFFER)
    with igzip_threaded.open(hashed, "rb", threads=1) as inflated:
      # tarfile's own stream buffer stays at its default: a large one is re-sliced per member.
      with tarfile.open(fileobj=inflated, mode="r|") as tar:
        for member in tar:
          reason = unsafe_reason(member)
          if reason:
            on_unsafe(member.name, reason)
          elif member.isfile():
            name = member.name[2:] if member.name.startswith("./") else member.name
            yield name, tar.extractfile(member).read()
            last = name
  except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as e:
    raise ArchiveTruncated(
        f"{path} ends early or is corrupt after {last} ({type(e).__name__}: {e}). Download it "
        f"again and compare its md5 with the competition page's.") from None
  finally:
    raw.close()


def read_file(raw_dir, file_name):
  """Bytes of an already extracted image; FileNotFoundError names the path."""
  path = os.path.join(raw_dir, file_name)
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"{path} not found") from None
