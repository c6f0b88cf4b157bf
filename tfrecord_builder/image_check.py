"""Image checks by content, not by file name, and repair into RGB baseline JPEG.

The fast path reads only the JPEG's marker segments (about 20 µs): an 8-bit, 3-component Huffman
JPEG that ends with its end-of-image marker after the scan is kept byte for byte. Everything else
is decoded with Pillow and re-encoded (grayscale, CMYK/YCCK, PNG/GIF/BMP/WebP/TIFF content, EXIF
rotation the JSON already applied), or rejected with the reason (empty, truncated, not an image,
undecodable). The training pipeline's fused `decode_and_crop_jpeg` then never meets a surprise.
"""

import dataclasses
import io
import struct

from PIL import Image, ImageOps, UnidentifiedImageError

REENCODE_QUALITY = 95

_SOF_PROCESS = {
    0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive", 0xC3: "lossless",
    0xC5: "differential sequential", 0xC6: "differential progressive",
    0xC7: "differential lossless", 0xC9: "arithmetic sequential", 0xCA: "arithmetic progressive",
    0xCB: "arithmetic lossless", 0xCD: "differential arithmetic sequential",
    0xCE: "differential arithmetic progressive", 0xCF: "differential arithmetic lossless",
}
# What TensorFlow's decode_and_crop_jpeg (libjpeg-turbo, Huffman) handles.
_TF_SAFE_PROCESSES = {0xC0, 0xC1, 0xC2}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)


class ImageRejected(Exception):
  """The bytes are not a usable image; the message says why."""


@dataclasses.dataclass(frozen=True)
class JpegFacts:
  process: int        # SOF marker, e.g. 0xC0
  precision: int      # bits per sample
  width: int
  height: int
  components: int     # 1 grayscale, 3 YCbCr/RGB, 4 CMYK/YCCK
  adobe_transform: int  # -1 without an Adobe APP14 segment
  complete: bool      # an end-of-image marker follows the scan data


def sniff_format(data):
  """'JPEG', 'PNG', 'GIF', 'BMP', 'TIFF', 'WEBP' or None, from the first bytes."""
  if data[:3] == b"\xff\xd8\xff":
    return "JPEG"
  if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    return "WEBP"
  for magic, name in _MAGIC:
    if data.startswith(magic):
      return name
  return None


def read_jpeg_facts(data):
  """Walks the marker segments up to the first scan; raises ImageRejected on a broken header."""
  pos, sof, adobe_transform = 2, None, -1
  while True:
    if pos + 4 > len(data):
      raise ImageRejected(f"truncated JPEG header (ends at byte {len(data)} before the scan)")
    if data[pos] != 0xFF:
      raise ImageRejected(f"corrupt JPEG header: expected a marker at byte {pos}")
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
      pos += 2
      continue
    (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
    segment = data[pos + 4:pos + 2 + length]
    if length < 2 or len(segment) != length - 2:
      raise ImageRejected(f"truncated JPEG header (segment 0x{marker:02X} at byte {pos})")
    if marker in _SOF_PROCESS and len(segment) >= 6:
      precision, height, width, components = struct.unpack(">BHHB", segment[:6])
      sof = (marker, precision, width, height, components)
    elif marker == 0xEE and segment.startswith(b"Adobe") and len(segment) >= 12:
      adobe_transform = segment[11]
    elif marker == 0xDA:  # start of scan: the header is over
      if sof is None:
        raise ImageRejected("corrupt JPEG: scan without a frame header (no SOF marker)")
      scan_start = pos + 2 + length
      # The last end-of-image marker must lie after the scan; an EXIF thumbnail's own EOI sits
      # before it, so this tells a complete file from a truncated one.
      complete = data.rfind(b"\xff\xd9") >= scan_start
      return JpegFacts(*sof, adobe_transform=adobe_transform, complete=complete)
    pos += 2 + length


@dataclasses.dataclass(frozen=True)
class CheckedImage:
  """The bytes to store (always RGB JPEG) and what was done to get them ('' if nothing)."""
  jpeg: bytes
  width: int
  height: int
  repair: str


def _reencode(data, what, expected_size):
  """Decodes with Pillow, applies EXIF rotation if that makes the JSON's size, re-encodes RGB."""
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise ImageRejected(f"{what}, and Pillow cannot decode it either: {e}") from None
  repair = f"{what}; re-encoded as RGB JPEG"
  if expected_size and image.size != expected_size and image.size[::-1] == expected_size:
    rotated = ImageOps.exif_transpose(image)
    if rotated.size == expected_size:
      image, repair = rotated, f"{what}; EXIF rotation applied; re-encoded as RGB JPEG"
  if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, rgba)  # transparent pixels become white
  out = io.BytesIO()
  image.convert("RGB").save(out, "JPEG", quality=REENCODE_QUALITY)
  return CheckedImage(out.getvalue(), image.size[0], image.size[1], repair)


def check_image(data, expected_size=None):
  """Returns a CheckedImage for `data`, or raises ImageRejected with the reason.

  expected_size: (width, height) from the JSON, or None; a mismatch that EXIF rotation does not
  explain is a rejection, since it means the file is not the image the JSON describes.
  """
  if not data:
    raise ImageRejected("empty file (0 bytes)")
  kind = sniff_format(data)
  if kind is None:
    raise ImageRejected(f"not an image: starts with {data[:8]!r}, no known image signature")
  if kind != "JPEG":
    checked = _reencode(data, f"{kind} content", expected_size)
  else:
    facts = read_jpeg_facts(data)
    if not facts.complete:
      raise ImageRejected("truncated JPEG: no end-of-image marker after the scan data")
    problem = _jpeg_problem(facts)
    if problem:
      checked = _reencode(data, problem, expected_size)
    else:
      checked = CheckedImage(data, facts.width, facts.height, "")
  if expected_size and (checked.width, checked.height) != tuple(expected_size):
    raise ImageRejected(f"size mismatch: the JSON says {expected_size[0]}x{expected_size[1]}, "
                        f"the image is {checked.width}x{checked.height}")
  return checked


def _jpeg_problem(facts):
  """Why this JPEG cannot be stored as is ('' when it can)."""
  if facts.process not in _TF_SAFE_PROCESSES:
    return f"{_SOF_PROCESS[facts.process]} JPEG (not decodable by TensorFlow)"
  if facts.precision != 8:
    return f"{facts.precision}-bit JPEG (TensorFlow decodes 8-bit only)"
  if facts.components == 1:
    return "grayscale JPEG"
  if facts.components == 4:
    return "CMYK JPEG" if facts.adobe_transform != 2 else "YCCK JPEG"
  if facts.components != 3:
    return f"{facts.components}-component JPEG"
  if facts.adobe_transform == 0:
    return "RGB-coded (Adobe transform 0) JPEG"
  return ""
