"""Image bytes straight out of the published `.tar.gz` (no extraction, no temporary copy), or out
of a folder already extracted from it.

The archive is read once, front to back: a background thread reads the raw bytes, hashes them
(md5, to compare with the competition page) and inflates them with ISA-L (`isal.isal_zlib`,
1.3-1.5x zlib's speed here; benchmarks/RESULTS.md); tar members are parsed in stream mode on the
calling thread. Everything inflated before a failure is delivered before the failure is raised, so
a truncated or damaged archive still yields every member read whole (isal's own threaded reader
drops the last megabyte inflated, which for a small archive is all of it). Members whose names
escape the archive or that are not regular files are reported, never read.

Where cores are plenty (`parallel_gzip_pays`), rapidgzip inflates on all of them instead. It does
not report a truncated file and loses what it inflated before a failure, so its output is checked
against the gzip trailer at the file's end by us, and on any failure ISA-L reads the file again
from the start, skipping what was delivered: members and errors are exactly the ISA-L reader's.
"""

import dataclasses
import hashlib
import io
import os
import posixpath
import queue
import struct
import tarfile
import threading
from typing import NamedTuple

import tensorflow as tf
from isal import isal_zlib
import rapidgzip

_READ_BUFFER = 4 << 20
_FEED = 64 << 10       # compressed bytes per inflate call: the resolution of a reported offset
_MAX_OUT = 4 << 20     # inflated bytes per call, so a highly compressible block cannot balloon
_PARALLEL_READ = 256 << 10  # rapidgzip bytes per queue item: 8 queued stay small, as with ISA-L

# "auto" | "isal" | "rapidgzip": which reader inflates local archives. Benchmarks and tests set it.
READER = "auto"
_CHUNK = 4 << 20  # rapidgzip's default chunk: the compressed bytes one of its threads inflates
PARALLEL_MIN_CORES = 8


def parallel_gzip_pays(cores, size):
  """Whether auto picks rapidgzip for an archive of `size` bytes with `cores` usable cores.

  BUILD_NOTES.md ("Parallel gzip", issue 19); figures in benchmarks/RESULTS.md, from
  benchmarks/builder.py: on 2 cores the build takes the same time with either reader
  (rapidgzip/ISA-L 0.83-1.18x over 7 runs) and rapidgzip holds ~15 MB more per core; the build waits on the single ISA-L stream
  only once the workers outrun it, at ~28 MB/s of archive per core against the stream's
  150-360 MB/s: from ~8 cores. Below one 4 MiB chunk per core, its threads have nothing to share.
  """
  return cores >= PARALLEL_MIN_CORES and size >= cores * _CHUNK


def _usable_cores():
  # The cores this process may run on (taskset, cpusets), where the OS tells (Linux).
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _use_rapidgzip(path, size):
  if READER != "auto":
    return READER == "rapidgzip"
  # Local files only: rapidgzip reads them itself, in parallel (pread).
  return "://" not in path and parallel_gzip_pays(_usable_cores(), size)


class ArchiveTruncated(Exception):
  """The archive ended early or is corrupt; members before the failure were delivered."""


class _InflateError(Exception):
  """gzip-level failure, with the compressed byte offset where it was found."""

  def __init__(self, message, offset, corrupt):
    super().__init__(message)
    self.offset, self.corrupt = offset, corrupt


def _disagreement(offset):
  return _InflateError(f"its compressed data is damaged or read differently by rapidgzip and "
                       f"ISA-L (found by byte {offset:,}; bytes before that point can be wrong "
                       f"without a sign, so every shard built from it is rebuilt once it is "
                       f"replaced)", offset, True)


class UnsafePath(Exception):
  """A file name that would read outside RAW_DIR; the message names it."""


@dataclasses.dataclass
class ArchiveStats:
  """Filled in while an archive streams; `md5` is set when it was read to the end."""
  path: str
  size: int
  bytes_read: int = 0
  md5: str = ""
  reader: str = ""  # who inflated it: "isal", "rapidgzip", or "rapidgzip (why not), then isal"


class _Inflater(io.RawIOBase):
  """The inflated bytes of a gzip file (one or more members), produced by a background thread.

  The thread reads the raw file, hashes and counts it (stats), and inflates it; the reader gets
  every inflated byte in order, then a failure as _InflateError(message, compressed offset).
  parallel: inflate with rapidgzip (the file must be local), checked and backed by ISA-L.
  """

  def __init__(self, raw, stats, parallel=False):
    super().__init__()
    self._raw, self._stats = raw, stats
    self._queue = queue.Queue(maxsize=8)
    self._buffer, self._pos = b"", 0
    self.error = None  # the _InflateError that ended the stream, once reached
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._work_parallel if parallel else self._work,
                                    daemon=True)
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

  def _work(self, skip=0, skipped_crc=0):
    """ISA-L. skip, skipped_crc: inflated bytes already delivered (by rapidgzip) and their CRC-32;
    they are inflated again, compared and not delivered twice."""
    md5, offset, inflater = hashlib.md5(), 0, isal_zlib.decompressobj(wbits=31)
    check = 0
    self._stats.reader = self._stats.reader or "isal"
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
            if skip and out:
              check = isal_zlib.crc32(out[:skip], check)
              out, skip = out[skip:], max(0, skip - len(out))
              if not skip and check != skipped_crc:
                raise _disagreement(offset + start)
            if out:
              self._put(out)
            data = inflater.unconsumed_tail or (inflater.unused_data if inflater.eof else b"")
        offset += len(block)
      if not self._stop.is_set():
        if not inflater.eof:
          raise _InflateError(f"it ends early: the file stops at byte {offset:,} inside the "
                              f"compressed data", offset, False)
        if skip:
          raise _disagreement(offset)
        self._stats.md5 = md5.hexdigest()
        self._put(b"")
    except _InflateError as e:
      self._put(e)
    except OSError as e:
      self._put(_InflateError(f"reading it failed at byte {offset:,}: {e}", offset, False))

  def _hash(self, result, stop):
    """md5 of the raw file, beside rapidgzip (which reads the file itself); result: [hex]."""
    md5 = hashlib.md5()
    try:
      while not (stop.is_set() or self._stop.is_set()):
        block = self._raw.read(_READ_BUFFER)
        if not block:
          result.append(md5.hexdigest())
          return
        md5.update(block)  # hashlib releases the GIL on large blocks
        self._stats.bytes_read += len(block)
    except OSError:
      pass  # the ISA-L pass that follows reports it

  def _work_parallel(self):
    """rapidgzip on every core, then our own check of the gzip trailer: the last 8 bytes of the
    file must be the CRC-32 and size (mod 2**32) of everything inflated (RFC 1952, 2.3.1), which a
    truncated file fails. It fails too for a multi-member file or zero padding; those, and any
    rapidgzip error, are read again by ISA-L (_work), which reports the exact failure."""
    md5, stop_hash = [], threading.Event()
    hasher = threading.Thread(target=self._hash, args=(md5, stop_hash), daemon=True)
    hasher.start()
    delivered, crc, whole = 0, 0, False
    try:
      with rapidgzip.RapidgzipFile(self._stats.path,
                                   parallelization=_usable_cores()) as f:
        while not self._stop.is_set():
          block = f.read(_PARALLEL_READ)
          if not block:
            break
          crc, delivered = isal_zlib.crc32(block, crc), delivered + len(block)
          self._put(block)
      with open(self._stats.path, "rb") as f:
        f.seek(max(0, self._stats.size - 8))
        whole = f.read(8) == struct.pack("<II", crc, delivered & 0xFFFFFFFF)
    except Exception as e:  # pylint: disable=broad-except
      # rapidgzip's own errors (RuntimeError, ValueError, ...): ISA-L names the problem. Any
      # other failure too (a raise here would leave the reader waiting); the reason is recorded.
      why = f"{type(e).__name__}: {e}"
    else:
      why = "" if whole else "the gzip trailer does not match what it inflated"
    if not whole:
      stop_hash.set()  # the ISA-L pass hashes the file itself
    hasher.join()
    if self._stop.is_set():
      return
    if whole and md5:
      self._stats.md5, self._stats.reader = md5[0], "rapidgzip"
      self._put(b"")
      return
    self._stats.reader = f"rapidgzip ({why or 'md5 not read'}), then isal"
    try:
      self._raw.seek(0)
    except OSError as e:
      self._put(_InflateError(f"reading it failed: {e}", 0, False))
      return
    self._stats.bytes_read = 0
    self._work(skip=delivered, skipped_crc=crc)

  def readinto(self, buffer):
    while not self._buffer:
      item = self._queue.get()
      if isinstance(item, Exception):
        # An end of file, not a raise: a raise would make io.BufferedReader drop the bytes it
        # had gathered for the same read (up to tarfile's 10 KiB), i.e. a whole last member.
        self.error = item
        self._queue.put(item)
        return 0
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
  inflated = _Inflater(raw, stats, _use_rapidgzip(path, stats.size))
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
    if inflated.error:
      raise inflated.error
  except (_InflateError, tarfile.TarError, EOFError, OSError, ValueError) as e:
    if inflated.error:  # the gzip failure comes first; tar saw it as an early end of data
      raise ArchiveTruncated(
          f"{path}: {inflated.error} (the last whole member read: {last}). The members read "
          f"whole were kept and every one was decoded; download the file again, compare its md5 "
          f"with the competition page's, and rerun the same command.") from None
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
