"""Issue 19 item 2: the parallel gzip reader (rapidgzip) keeps the trust rule of the ISA-L one.

rapidgzip alone returns a truncated file's data short without an error, and on a damaged file
loses what it inflated before the damage; `sources` checks its output against the gzip trailer and
reads again with ISA-L on any failure. Every case here is read by both readers, forced through
`sources.READER`, and must give the same members, bytes, md5 and error message.
"""

import gzip
import hashlib
import io
import os
import random
import struct
import tarfile
import zlib

import pytest

from tests.test_build_trust import run_build, shard_digests, manifest_of
from tfrecord_builder import sources

MEMBERS = 48


def _tar():
  """~12 MB of tar: members of random bytes (stored deflate blocks) and of zeros (long matches),
  so that rapidgzip splits the file into several 4 MiB chunks."""
  rng, buffer = random.Random(19), io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w") as tar:
    for i in range(MEMBERS):
      data = rng.randbytes(rng.randrange(150_000, 350_000)) + bytes(rng.randrange(0, 100_000))
      info = tarfile.TarInfo(f"./images/{i:03d}.jpg")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buffer.getvalue()


@pytest.fixture(scope="module")
def tar_bytes():
  return _tar()


@pytest.fixture(scope="module")
def gz(tar_bytes):
  return gzip.compress(tar_bytes, compresslevel=6, mtime=0)


def _read(path, reader):
  """(member names, sha256 of their bytes, md5 set by the reader, error message or None)."""
  saved, sources.READER = sources.READER, reader
  stats = sources.ArchiveStats(str(path), os.path.getsize(path))
  names, digest, error = [], hashlib.sha256(), None
  try:
    for name, data in sources.iter_archive(str(path), stats, lambda *args: None):
      names.append(name)
      digest.update(data)
  except sources.ArchiveTruncated as e:
    error = str(e)
  finally:
    sources.READER = saved
  return names, digest.hexdigest(), stats.md5, error, stats.reader


def _both(tmp_path, name, data, rapidgzip_served=False):
  """What both readers read, which must agree; rapidgzip_served: whether rapidgzip's own output
  must stand (else its checks must have sent the file to ISA-L)."""
  path = tmp_path / f"{name}.tar.gz"
  path.write_bytes(data)
  isal, parallel = _read(path, "isal"), _read(path, "rapidgzip")
  assert parallel[:4] == isal[:4], name
  assert isal[4] == "isal"
  if rapidgzip_served:
    assert parallel[4] == "rapidgzip", parallel[4]
  else:
    assert parallel[4].startswith("rapidgzip (") and parallel[4].endswith("), then isal"), (
        parallel[4])
  return isal[:4]


# -- (i) a whole archive ----------------------------------------------------------------------

def test_whole_archive_reads_the_same_with_both_readers(tmp_path, gz):
  names, _, md5, error = _both(tmp_path, "whole", gz, rapidgzip_served=True)
  assert error is None and len(names) == MEMBERS
  assert md5 == hashlib.md5(gz).hexdigest()


@pytest.mark.slow
def test_build_with_rapidgzip_gives_byte_identical_shards(tiny_built_dir, tmp_path, monkeypatch):
  archives = manifest_of(tiny_built_dir)["tasks"][0]["archives"]
  raw_dir = os.path.dirname(next(iter(archives)))
  # The reference was built by ISA-L: auto never picks rapidgzip for a download this small.
  cores = sources._usable_cores()  # pylint: disable=protected-access
  assert not any(sources.parallel_gzip_pays(cores, os.path.getsize(path)) for path in archives)
  monkeypatch.setattr(sources, "READER", "rapidgzip")
  status, summary = run_build(raw_dir, tmp_path / "data", examples_per_shard=32)
  assert status == 0, summary
  assert shard_digests(tmp_path / "data") == shard_digests(tiny_built_dir)
  assert manifest_of(tmp_path / "data")["tasks"][0]["archives"] == archives


# -- (ii) truncated: "ends early", every member read whole ----------------------------------

@pytest.mark.parametrize("cut", ["30%", "77%", "-9", "-8", "-5", "-1"])
def test_truncated_archive_ends_early_with_the_same_members(tmp_path, gz, cut):
  end = len(gz) * int(cut[:-1]) // 100 if cut.endswith("%") else len(gz) + int(cut)
  names, _, md5, error = _both(tmp_path, "cut", gz[:end])
  assert error and f"it ends early: the file stops at byte {end:,}" in error
  assert md5 == ""
  assert 0 < len(names) <= MEMBERS
  if cut.startswith("-"):
    assert len(names) == MEMBERS  # cut inside the trailer: every member was inflated


def _stored_gzip(data, block=65535):
  """gzip of stored (uncompressed) deflate blocks (RFC 1951 3.2.4, RFC 1952): inflated byte i is
  at compressed byte 10 + 5 * (i // block + 1) + i."""
  out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
  for start in range(0, len(data), block):
    piece = data[start:start + block]
    out += struct.pack("<BHH", start + block >= len(data), len(piece), len(piece) ^ 0xFFFF) + piece
  return bytes(out + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))


def _self_crc(prefix_crc, tail):
  """4 bytes x with crc32(prefix + x + tail) == x: CRC-32 is affine over GF(2), so solve
  (L + I) x = c by elimination (L: x's effect on the CRC, c: the CRC for x = 0)."""
  base = zlib.crc32(bytes(4) + tail, prefix_crc)
  columns = [zlib.crc32((1 << i).to_bytes(4, "little") + tail, prefix_crc) ^ base
             for i in range(32)]
  rows = [[sum((((columns[i] >> bit) & 1) ^ (i == bit)) << i for i in range(32)),
           (base >> bit) & 1] for bit in range(32)]
  for col in range(32):  # Gauss-Jordan; row `col` gets the pivot of column `col`
    pivot = next(k for k in range(col, 32) if rows[k][0] >> col & 1)
    rows[col], rows[pivot] = rows[pivot], rows[col]
    for k in range(32):
      if k != col and rows[k][0] >> col & 1:
        rows[k] = [rows[k][0] ^ rows[col][0], rows[k][1] ^ rows[col][1]]
  return sum(rows[bit][1] << bit for bit in range(32)).to_bytes(4, "little")


def test_truncation_whose_last_bytes_forge_the_crc_is_caught_by_the_size(tmp_path, tar_bytes):
  """A cut inside stored data ends in bytes of the data: here 4 chosen so that the file's last 8
  bytes carry the right CRC-32 of what rapidgzip delivers (silently); only the size is wrong."""
  with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
    cut = tar.getmembers()[MEMBERS // 2].offset_data + 1000
  data = bytearray(tar_bytes)
  data[cut - 8:cut] = _self_crc(zlib.crc32(data[:cut - 8]), b"SIZE") + b"SIZE"
  assert data[cut - 8:cut - 4] == struct.pack("<I", zlib.crc32(data[:cut]))  # the CRC half holds
  end = 10 + 5 * (cut // 65535 + 1) + cut
  names, _, _, error = _both(tmp_path, "forged", _stored_gzip(bytes(data))[:end])
  assert error and f"it ends early: the file stops at byte {end:,}" in error
  assert len(names) == MEMBERS // 2


# -- (iii) damaged: "damaged", the whole members before it kept ------------------------------

@pytest.mark.parametrize("where", ["middle", "crc", "junk after"])
def test_damaged_archive_is_reported_with_the_members_before_it(tmp_path, gz, where):
  data = bytearray(gz)
  if where == "middle":
    data[len(data) // 2] ^= 0x20
  elif where == "crc":
    data[-6] ^= 0x01
  else:
    data += b"junk" * 16  # rapidgzip alone accepts this without a word
  names, _, md5, error = _both(tmp_path, where.replace(" ", "_"), bytes(data))
  assert error and "compressed data is damaged" in error and md5 == ""
  assert len(names) >= MEMBERS // 3


# -- (iv) multi-member gzip and zero padding ------------------------------------------------

@pytest.mark.parametrize("kind", ["two members", "zero padding"])
def test_multi_member_and_padded_archives_read_whole(tmp_path, tar_bytes, gz, kind):
  if kind == "two members":
    half = len(tar_bytes) // 2
    data = gzip.compress(tar_bytes[:half], mtime=0) + gzip.compress(tar_bytes[half:], mtime=0)
  else:
    data = gz + bytes(1000)
  names, digest, md5, error = _both(tmp_path, kind.replace(" ", "_"), data)
  assert error is None and md5 == hashlib.md5(data).hexdigest()
  plain = tmp_path / "plain.tar.gz"
  plain.write_bytes(gz)
  assert (names, digest) == _read(plain, "isal")[:2]


# -- (v) the automatic choice ---------------------------------------------------------------

def test_auto_rule_picks_rapidgzip_only_with_cores_and_size(monkeypatch):
  big = 1 << 30
  assert not sources.parallel_gzip_pays(1, big)
  assert not sources.parallel_gzip_pays(2, big)  # this machine: a tie, for ~15 MB more per core
  assert not sources.parallel_gzip_pays(7, big)
  assert sources.parallel_gzip_pays(8, big)  # the workers outrun one ISA-L stream
  assert sources.parallel_gzip_pays(96, big)
  assert not sources.parallel_gzip_pays(8, (32 << 20) - 1)  # under one 4 MiB chunk per core
  assert sources.parallel_gzip_pays(8, 32 << 20)
  assert not sources.parallel_gzip_pays(64, 255 << 20)
  use_rapidgzip = sources._use_rapidgzip  # pylint: disable=protected-access
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
  assert use_rapidgzip("/data/train_val_images.tar.gz", big)
  assert not use_rapidgzip("gs://bucket/train_val_images.tar.gz", big)  # rapidgzip needs pread
  monkeypatch.setattr(sources, "READER", "isal")
  assert not use_rapidgzip("/data/train_val_images.tar.gz", big)
