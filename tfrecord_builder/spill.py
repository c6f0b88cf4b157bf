"""Shards assembled on local scratch disk, append by append, so that a build is resumable.

Each pending shard is a real TFRecord file under construction, plus an index file with one line
per record (`image id <TAB> sha256 of the image bytes (32 hex digits) <TAB> repair note`). Examples are appended in archive order as they are
checked; when the archive has been read, a shard is moved into place (a rename when scratch and
output share a file system, else one copy through tf.io.gfile). So the bytes are written once.

After a crash (kill -9 included) a shard holds every record appended before it; `recover()` cuts
off a torn last record and any record without its index line, and a rerun skips the images already
there, appending the rest in the same archive order: the shard ends byte-identical to an
uninterrupted run's.
"""

import collections
import errno
import hashlib
import os
import struct
import time

import google_crc32c
import tensorflow as tf

_MASK_DELTA = 0xA282EAD8
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_MAX_OPEN_SHARDS = 64
_FLUSH_SECONDS = 1.0  # at most this much work is lost in a crash
RECORDS_SUFFIX = ".tfrecord-partial"
INDEX_SUFFIX = ".index"


def masked_crc(data):
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record):
  """One record in TFRecord framing (length, masked CRC-32C of it, data, masked CRC-32C)."""
  length = _LENGTH.pack(len(record))
  return b"".join((length, _CRC.pack(masked_crc(length)), record, _CRC.pack(masked_crc(record))))


def _complete_records(path):
  """Byte offsets where each whole record of a TFRecord file ends (the last one CRC-checked)."""
  ends, offset, size = [], 0, os.path.getsize(path)
  with open(path, "rb") as f:
    while offset + 12 <= size:
      header = f.read(12)
      (length,) = _LENGTH.unpack(header[:8])
      end = offset + 12 + length + 4
      if _CRC.unpack(header[8:])[0] != masked_crc(header[:8]) or end > size:
        break
      if end == size:  # only the last record can be torn by a crash
        data = f.read(length)
        if _CRC.unpack(f.read(4))[0] != masked_crc(data):
          break
      else:
        f.seek(length + 4, os.SEEK_CUR)
      ends.append(end)
      offset = end
  return ends


class _Shard:
  def __init__(self):
    self.entries = []            # [(image_id, sha256, note)] in file order
    self.size = 0


class SpillStore:
  """Shards under construction in one local directory, keyed by shard file name."""

  def __init__(self, directory):
    os.makedirs(directory, exist_ok=True)
    self.directory = directory
    self._shards = collections.defaultdict(_Shard)
    self._files = collections.OrderedDict()  # key -> (records file, index file), LRU order
    self._last_flush = time.monotonic()

  def _paths(self, key):
    base = os.path.join(self.directory, key)
    return base + RECORDS_SUFFIX, base + INDEX_SUFFIX

  def recover(self):
    """Loads what earlier runs appended, dropping torn tails; returns {key: {image ids}}."""
    for name in sorted(os.listdir(self.directory)):
      if name.endswith(RECORDS_SUFFIX):
        self._recover(name[:-len(RECORDS_SUFFIX)])
    return {key: {image_id for image_id, _, _ in shard.entries}
            for key, shard in self._shards.items()}

  def _recover(self, key):
    records_path, index_path = self._paths(key)
    ends = _complete_records(records_path)
    lines = []
    if os.path.exists(index_path):
      with open(index_path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]  # a line without its newline is torn
    entries = []
    for line in lines:  # a line of another format (an older build's) ends what is kept
      fields = line.decode("utf-8", errors="replace").split("\t", 2)
      if len(fields) != 3 or not fields[0].lstrip("-").isdigit():
        break
      entries.append((int(fields[0]), fields[1], fields[2]))
    keep = min(len(ends), len(entries))
    size = ends[keep - 1] if keep else 0
    os.truncate(records_path, size)
    with open(index_path, "wb") as f:
      f.write(b"".join(line + b"\n" for line in lines[:keep]))
    shard = self._shards[key]
    shard.entries.extend(entries[:keep])
    shard.size = size

  def _open(self, key):
    files = self._files.pop(key, None)
    if files is None:
      if len(self._files) >= _MAX_OPEN_SHARDS:
        for f in self._files.popitem(last=False)[1]:
          f.close()
      records_path, index_path = self._paths(key)
      files = (open(records_path, "ab", buffering=1 << 20), open(index_path, "ab"))
    self._files[key] = files
    return files

  def append(self, key, image_id, note, digest, example):
    """Appends one serialized Example; the index line follows its record (recovery relies on it).

    An OSError (a full disk) names the shard's scratch file."""
    try:
      self._append(key, image_id, note, digest, example)
    except OSError as e:
      raise OSError(e.errno, e.strerror, e.filename or self._paths(key)[0]) from None

  def _append(self, key, image_id, note, digest, example):
    framed = frame(example)
    records, index = self._open(key)
    records.write(framed)
    note = " ".join(note.split()) if note else ""
    index.write(f"{image_id}\t{digest}\t{note}\n".encode("utf-8"))
    shard = self._shards[key]
    shard.entries.append((image_id, digest, note))
    shard.size += len(framed)
    if time.monotonic() - self._last_flush > _FLUSH_SECONDS:
      for files in self._files.values():
        for f in files:
          f.flush()
      self._last_flush = time.monotonic()

  def entries(self, key):
    """[(image_id, sha256, repair note)] of a shard, in file order."""
    return list(self._shards[key].entries) if key in self._shards else []

  def close(self, key):
    for f in self._files.pop(key, ()):
      f.close()

  def finish(self, key, destination, before_move):
    """See _finish; an OSError or a gfile error for a full disk names the file."""
    try:
      return self._finish(key, destination, before_move)
    except OSError as e:
      raise OSError(e.errno, e.strerror, e.filename or destination) from None
    except tf.errors.OpError as e:
      if "No space left" in e.message:
        raise OSError(errno.ENOSPC, "No space left on device", destination) from None
      raise

  def _finish(self, key, destination, before_move):
    """Moves a finished shard to `destination` (any gfile path); returns (examples, bytes, sha256).

    before_move(examples, bytes, sha256): called first; a crash during the move leaves the shard
    here, to be moved again by the rerun.
    """
    self.close(key)
    records_path, index_path = self._paths(key)
    if not os.path.exists(records_path):
      open(records_path, "wb").close()  # a shard whose every image was rejected: empty, valid
    shard = self._shards[key]
    # Hashed from disk once complete (page cache, in parallel across shards), not per append on
    # the busy streaming thread; and it is then the checksum of the very bytes being moved.
    sha256 = hashlib.sha256()
    with open(records_path, "rb") as f:
      for block in iter(lambda: f.read(8 << 20), b""):
        sha256.update(block)
    stats = (len(shard.entries), shard.size, sha256.hexdigest())
    before_move(*stats)
    try:
      if "://" in destination:
        raise OSError("remote destination")
      os.replace(records_path, destination)
    except OSError:  # another file system or a remote one: copy, then rename into place
      temporary = destination + ".incomplete"
      tf.io.gfile.copy(records_path, temporary, overwrite=True)
      tf.io.gfile.rename(temporary, destination, overwrite=True)
      os.remove(records_path)
    if os.path.exists(index_path):
      os.remove(index_path)
    del self._shards[key]
    return stats

  def discard(self, key):
    """Deletes a shard under construction (left over from a shard finished after all)."""
    self.close(key)
    for path in self._paths(key):
      if os.path.exists(path):
        os.remove(path)
    self._shards.pop(key, None)
