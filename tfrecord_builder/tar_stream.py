"""The members of an uncompressed tar stream, read header by header (POSIX.1-2001 pax, ustar,
GNU long names, v7), as tarfile's stream mode ("r|") reads them, in a fraction of its time.

Why our own: on small images the tar walk is most of what the build's parent does per image.
tarfile parses every header field of every block in Python (`nti`, `nts`, checksums, then a pax
header and its own header for any name over 100 characters, as iNat2021's are): ~40 % of the
parent's time on iNat2021-sized images (cProfile, benchmarks/builder.py --layout 2021). This reads
the name, size and type of each header and checks its checksum; every other field is ignored.
What it does not know (sparse files, multi-volume archives) is not a regular file to it, so it is
reported like a link or a device, never read as image data.

Same answers as tarfile for what the builder relies on (tests/test_build_gzip.py runs the
damaged-archive corpus through it): a damaged or cut header ends the walk quietly after the first
member (the caller then finds the non-zero bytes where the end of the archive should be); a
damaged first header raises TarStreamError; a member cut short yields fewer bytes than its size.
Format: POSIX.1-2001 (IEEE Std 1003.1, "pax"), header layout as in Python's tarfile and GNU tar's
documentation ("Basic Tar Format").
"""

import dataclasses

BLOCK = 512
REGULAR = (b"0", b"\x00", b"7")  # regular file, old regular file, contiguous file
DIRECTORY = b"5"


class TarStreamError(Exception):
  """The first header is not a tar header (the stream is not a tar archive)."""


@dataclasses.dataclass(frozen=True)
class Member:
  name: str
  type: bytes   # the typeflag byte, e.g. b"0"
  size: int

  def isfile(self):
    return self.type in REGULAR

  def isdir(self):
    return self.type == DIRECTORY


def _number(field):
  """A numeric header field: octal ASCII, or GNU base-256 when its first byte has bit 7 set."""
  if field[0] == 0x80:
    return int.from_bytes(field[1:], "big")
  if field[0] == 0xFF:
    return int.from_bytes(field, "big", signed=True)
  digits = field.strip(b"\x00 ")
  return int(digits, 8) if digits else 0


def _text(field):
  end = field.find(b"\x00")
  return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _checksum_ok(header):
  try:
    stored = _number(header[148:156])
  except ValueError:
    return False
  unsigned = sum(header[:148]) + 256 + sum(header[156:])  # the checksum field read as spaces
  if stored == unsigned:
    return True
  high = sum(1 for b in header[:148] + header[156:] if b > 127)  # some tars sum signed bytes
  return stored == unsigned - 256 * high


def _pax_records(data):
  """{keyword: value} of a pax extended header ('%d %s=%s\\n' records)."""
  records, pos = {}, 0
  while pos < len(data) and data[pos:pos + 1] != b"\x00":
    space = data.index(b" ", pos)
    length = int(data[pos:space])
    keyword, _, value = data[space + 1:pos + length - 1].partition(b"=")
    records[keyword.decode("utf-8", "surrogateescape")] = value.decode("utf-8",
                                                                         "surrogateescape")
    pos += length
  return records


class TarStream:
  """Iterates (Member, bytes or None) over a binary stream: bytes for regular files (possibly
  fewer than member.size when the stream ends inside it), None for anything else (skipped).

  `offset`: the byte of the stream where the walk stopped (the end-of-archive block, or the
  header it could not read), as tarfile's TarFile.offset.
  """

  def __init__(self, stream):
    self._stream = stream
    self.offset = 0

  def _read(self, size):
    data = self._stream.read(size)
    self.offset += len(data)
    return data

  def _skip(self, size):
    while size > 0:
      step = self._read(min(size, 1 << 20))
      if not step:
        return
      size -= len(step)

  def __iter__(self):
    global_pax, pending_pax, long_name = {}, {}, None
    first = True
    while True:
      start = self.offset
      header = self._read(BLOCK)
      if len(header) < BLOCK or not header.strip(b"\x00") or not _checksum_ok(header):
        if first and header.strip(b"\x00"):
          raise TarStreamError("invalid header" if len(header) == BLOCK else "truncated header")
        self.offset = start  # where the walk stopped: the caller checks what follows
        self._unread = header
        return
      first = False
      kind = header[156:157]
      size = _number(header[124:136])
      padded = -size % BLOCK
      if kind in (b"x", b"g", b"L", b"K"):  # extended headers: they describe the next member
        data = self._read(size)
        self._skip(padded)
        if len(data) < size:
          return
        if kind == b"x":
          pending_pax.update(_pax_records(data))
        elif kind == b"g":
          global_pax.update(_pax_records(data))
        elif kind == b"L":
          long_name = _text(data)
        continue
      name = _text(header[0:100])
      if header[257:263] == b"ustar\x00" and header[345:346] != b"\x00":  # POSIX prefix field
        name = _text(header[345:500]) + "/" + name
      if long_name is not None:
        name = long_name
      pax = {**global_pax, **pending_pax}
      name = pax.get("path", name)
      if "size" in pax:
        size = int(pax["size"])
        padded = -size % BLOCK
      pending_pax, long_name = {}, None
      member = Member(name.rstrip("/") if kind == DIRECTORY else name, kind, size)
      if member.isfile():
        data = self._read(size)
        yield member, data
        if len(data) < size:
          return
        self._skip(padded)
      else:
        yield member, None
        self._skip(size + padded)

  def rest(self):
    """What follows where the walk stopped, block by block (the header it stopped at first)."""
    first = getattr(self, "_unread", b"")
    if first:
      yield first
    while True:
      block = self._stream.read(1 << 20)
      if not block:
        return
      yield block
