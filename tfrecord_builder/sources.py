"""Image bytes straight out of the published `.tar.gz` (no extraction, no temporary copy), or out
of a folder already extracted from it.

The archive is read once, front to back: a background thread reads the raw bytes, hashes them
(md5, to compare with the competition page) and inflates them with ISA-L (`isal.isal_zlib`,
1.3-1.5x zlib's speed here; see BUILD_NOTES.md); tar members are parsed in stream mode on the
calling thread. Everything inflated before a failure is delivered before the failure is raised, so
a truncated or damaged archive still yields every member read whole (isal's own threaded reader
drops the last megabyte inflated, which for a small archive is all of it). Members whose names
escape the archive or that are not regular files are reported, never read.
"""

import dataclasses
import hashlib
import io
import os
import posixpath
import queue
import tarfile
import threading
from typing import NamedTuple

import tensorflow as tf
from isal import isal_zlib

_READ_BUFFER = 4 << 20
_FEED = 64 << 10       # compressed bytes per inflate call: the resolution of a reported offset
_MAX_OUT = 4 << 20     # inflated bytes per call, so a highly compressible block cannot balloon


class ArchiveTruncated(Exception):
  """The archive ended early or is corrupt; members before the failure were delivered."""


class _InflateError(Exception):
  """gzip-level failure, with the compressed byte offset where it was found."""

  def __init__(self, message, offset, corrupt):
    super().__init__(message)
    self.offset, self.corrupt = offset, corrupt


class UnsafePath(Exception):
  """A file name that would read outside RAW_DIR; the message names it."""


@dataclasses.dataclass
class ArchiveStats:
  """Filled in while an archive streams; `md5` is set when it was read to the end."""
  path: str
  size: int
  bytes_read: int = 0
  md5: str = ""


class _Inflater(io.RawIOBase):
  """The inflated bytes of a gzip file (one or more members), produced by a background thread.

  The thread reads the raw file, hashes and counts it (stats), and inflates it; the reader gets
  every inflated byte in order, then a failure as _InflateError(message, compressed offset).
  """

  def __init__(self, raw, stats):
    super().__init__()
    self._raw, self._stats = raw, stats
    self._queue = queue.Queue(maxsize=8)
    self._buffer, self._pos = b"", 0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._work, daemon=True)
    self._thread.start()

  def readable(self):
    return True

  def _put(self, item):
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def _work(self):
    md5, offset, inflater = hashlib.md5(), 0, isal_zlib.decompressobj(wbits=31)
    try:
      while not self._stop.is_set():
        block = self._raw.read(_READ_BUFFER)
        if not block:
          break
        md5.update(block)
        self._stats.bytes_read += len(block)
        # The last 8 bytes of each piece go in alone: a gzip checksum failure then raises on
        # them, after every inflated byte before them was delivered.
        pieces = [(start + cut, block[start + cut:start + end])
                  for start in range(0, len(block), _FEED)
                  for cut, end in ((0, min(_FEED, len(block) - start) - 8),
                                   (min(_FEED, len(block) - start) - 8, _FEED))]
        for start, data in pieces:
          while data:
            if inflater.eof:
              if not data.strip(b"\x00"):
                break  # zero padding after the last gzip member, as gzip(1) allows
              inflater = isal_zlib.decompressobj(wbits=31)  # a following gzip member
            try:
              out = inflater.decompress(data, _MAX_OUT)
            except isal_zlib.error as e:
              at = offset + start
              raise _InflateError(f"its compressed data is damaged (inflate: {e}; found in "
                                  f"bytes {at:,}-{at + len(data):,}; bytes before that point "
                                  f"can be wrong without a sign, so every shard built from it "
                                  f"is rebuilt once it is replaced)", at, True) from None
            if out:
              self._put(out)
            data = inflater.unconsumed_tail or (inflater.unused_data if inflater.eof else b"")
        offset += len(block)
      if not self._stop.is_set():
        if not inflater.eof:
          raise _InflateError(f"it ends early: the file stops at byte {offset:,} inside the "
                              f"compressed data", offset, False)
        self._stats.md5 = md5.hexdigest()
        self._put(b"")
    except _InflateError as e:
      self._put(e)
    except OSError as e:
      self._put(_InflateError(f"reading it failed at byte {offset:,}: {e}", offset, False))

  def readinto(self, buffer):
    while not self._buffer:
      item = self._queue.get()
      if isinstance(item, Exception):
        self._queue.put(item)  # raised again on any later read
        raise item
      if not item:
        self._queue.put(item)
        return 0
      self._buffer = item
    n = min(len(buffer), len(self._buffer))
    buffer[:n] = self._buffer[:n]
    self._buffer = self._buffer[n:]
    self._pos += n
    return n

  def tell(self):
    return self._pos

  def close(self):
    self._stop.set()
    self._thread.join()
    super().close()


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
  Raises ArchiveTruncated after the last whole member when the archive ends early or is damaged
  (gzip data, gzip checksum, or tar structure), naming the archive and the offset.
  """
  raw = _open_raw(path)
  last = "before the first member"
  inflated = _Inflater(raw, stats)
  try:
    buffered = io.BufferedReader(inflated, _READ_BUFFER)
    # tarfile's own stream buffer stays at its default: a large one is re-sliced per member.
    with tarfile.open(fileobj=buffered, mode="r|") as tar:
      for member in tar:
        reason = unsafe_reason(member)
        if reason:
          on_unsafe(member.name, reason)
        elif member.isfile():
          name = member.name[2:] if member.name.startswith("./") else member.name
          data = tar.extractfile(member).read()
          if len(data) != member.size:
            raise tarfile.ReadError(f"member {name} is cut short")
          yield name, data
          last = f"after member {name}"
      # tarfile stops quietly at a damaged header; what follows the end of the archive must be
      # its zero padding, and the gzip stream must end (checksum verified) after it.
      end = tar.offset
    for block in iter(lambda: buffered.read(1 << 20), b""):
      if block.strip(b"\x00"):
        raise tarfile.ReadError(f"its tar structure is damaged (no valid member header at "
                                f"inflated byte {end:,})")
  except _InflateError as e:
    raise ArchiveTruncated(
        f"{path}: {e} (the last whole member read: {last}). The members read whole were kept "
        f"and every one was decoded; download the file again, compare its md5 with the "
        f"competition page's, and rerun the same command.") from None
  except (tarfile.TarError, EOFError, OSError, ValueError) as e:
    raise ArchiveTruncated(
        f"{path}: {e} ({last}). The members read whole were kept; download the file again, "
        f"compare its md5 with the competition page's, and rerun the same command.") from None
  finally:
    inflated.close()
    raw.close()


def check_file_name(file_name):
  """Raises UnsafePath unless file_name is a relative path that stays inside RAW_DIR."""
  normalized = posixpath.normpath(file_name)
  if (file_name.startswith(("/", "\\")) or os.path.isabs(file_name) or ":" in file_name.split("/")[0]
      or normalized == ".." or normalized.startswith("../") or "/../" in f"/{file_name}/"):
    raise UnsafePath(f"file_name {file_name!r} points outside RAW_DIR; not read")


class FileRef(NamedTuple):
  """An extracted image not read yet: a worker process reads it (read_file), not the parent."""
  raw_dir: str
  file_name: str


def read_file(raw_dir, file_name):
  """Bytes of an already extracted image; FileNotFoundError names the path; UnsafePath when the
  name or a symlink on its way leads outside raw_dir."""
  check_file_name(file_name)
  path = os.path.join(raw_dir, file_name)
  if "://" not in raw_dir:
    root = os.path.realpath(raw_dir)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
      raise UnsafePath(f"{file_name} is a symlink (or under one) leading outside RAW_DIR to "
                       f"{os.path.realpath(path)}; not read")
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"{path} not found") from None
