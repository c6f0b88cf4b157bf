"""Image checks by content, not by file name, and repair into RGB baseline JPEG.

`check_image` is a pure function of (bytes, expected size, pixel limit), safe to run in worker
threads or processes. For a JPEG it reads the marker segments (EXIF orientation included), then
decodes the entropy-coded data strictly with libjpeg-turbo (`simplejpeg`, strict mode: any libjpeg
warning such as "Corrupt JPEG data" is an error) at 1/8 scale: DCT scaling skips most of the
inverse DCT and colour conversion but still decodes every Huffman code, which is where damage shows
(~0.9 ms per 800 px image against ~1.3 ms for a full decode; benchmarks/RESULTS.md). An 8-bit,
3-component Huffman JPEG that decodes cleanly and needs no rotation is kept byte for byte.
Everything else is decoded with Pillow and re-encoded (grayscale, CMYK/YCCK, 16-bit and other
PNG/GIF/BMP/WebP/TIFF content, EXIF orientation), or rejected with the reason (empty, truncated,
damaged, not an image, too many pixels, undecodable, any exception of an image library). The
training pipeline's fused `decode_and_crop_jpeg` then never meets a surprise.

EXIF rule: the JSON's width and height are the *displayed* size. An image whose EXIF orientation
is not 1 is stored with the orientation applied (upright pixels, no EXIF), the way
`inat_tf.preprocessing.exif_orientation` applies it to image bytes sent to an exported model.
"""

import dataclasses
import io
import re
import struct

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

REENCODE_QUALITY = 95
# Pillow's own global limit would raise DecompressionBombError from Image.open; our per-call
# `max_pixels` (inat-build --max_image_pixels) replaces it, checked from the header before decoding.
Image.MAX_IMAGE_PIXELS = None
DEFAULT_MAX_PIXELS = 100_000_000  # 10,000 x 10,000; iNat images are at most 800 (2017) to 2048 px

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
  width: int          # as stored, before EXIF orientation
  height: int
  components: int     # 1 grayscale, 3 YCbCr/RGB, 4 CMYK/YCCK
  adobe_transform: int  # -1 without an Adobe APP14 segment
  complete: bool      # an end-of-image marker follows the scan data
  orientation: int = 1  # EXIF Orientation (1-8; 1 when absent or unreadable)


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


def exif_orientation(app1):
  """EXIF Orientation (tag 0x0112 of IFD0) from an APP1 segment's payload; 1 when absent.

  Source: EXIF 2.32 (CIPA DC-008), sec. 4.5.2 (TIFF header) and 4.6.4 A (Orientation, SHORT).
  """
  if not app1.startswith(b"Exif\x00\x00") or len(app1) < 14:
    return 1
  tiff = app1[6:]
  order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
  if order is None:
    return 1
  (ifd,) = struct.unpack(order + "I", tiff[4:8])
  if ifd + 2 > len(tiff):
    return 1
  (count,) = struct.unpack(order + "H", tiff[ifd:ifd + 2])
  for i in range(count):
    entry = tiff[ifd + 2 + 12 * i:ifd + 14 + 12 * i]
    if len(entry) < 12:
      break
    tag, kind = struct.unpack(order + "HH", entry[:4])
    if tag == 0x0112 and kind == 3:  # SHORT
      (value,) = struct.unpack(order + "H", entry[8:10])
      return value if 1 <= value <= 8 else 1
  return 1


def read_jpeg_facts(data):
  """Walks the marker segments up to the first scan; raises ImageRejected on a broken header."""
  pos, sof, adobe_transform, orientation = 2, None, -1, 1
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
    elif marker == 0xE1 and orientation == 1:
      orientation = exif_orientation(segment)
    elif marker == 0xDA:  # start of scan: the header is over
      if sof is None:
        raise ImageRejected("corrupt JPEG: scan without a frame header (no SOF marker)")
      scan_start = pos + 2 + length
      # The last end-of-image marker must lie after the scan; an EXIF thumbnail's own EOI sits
      # before it, so this tells a complete file from a truncated one.
      complete = data.rfind(b"\xff\xd9") >= scan_start
      return JpegFacts(*sof, adobe_transform=adobe_transform, complete=complete,
                       orientation=orientation)
    pos += 2 + length


@dataclasses.dataclass(frozen=True)
class CheckedImage:
  """The bytes to store (always RGB JPEG) and what was done to get them ('' if nothing)."""
  jpeg: bytes
  width: int
  height: int
  repair: str


# EXIF orientations 5-8 swap width and height (EXIF 2.32, Orientation tag).
_SWAPS_SIDES = {5, 6, 7, 8}


def _to_8bit_rgb(image):
  """Any Pillow mode as 8-bit RGB, keeping the pixels: 16/32-bit integer grayscale is scaled by
  1/257 (65535 -> 255) instead of Pillow's convert(), which clips it; transparency becomes white."""
  if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
    values = np.asarray(image, dtype=np.float64)
    if values.max(initial=0) > 65535 or values.min(initial=0) < 0:
      raise ImageRejected(f"{image.mode} image with values outside 0-65535; no defined 8-bit scale")
    image = Image.fromarray(np.round(values / 257.0).astype(np.uint8), "L")
  elif image.mode == "F":
    raise ImageRejected("floating-point image: no defined 8-bit scale")
  if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, rgba)  # transparent pixels become white
  return image.convert("RGB")


def _check_pixels(size, max_pixels):
  if max_pixels and size[0] * size[1] > max_pixels:
    raise ImageRejected(f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels exceeds "
                        f"--max_image_pixels={max_pixels:,}")


def _reencode(data, what, max_pixels=DEFAULT_MAX_PIXELS):
  """Decodes with Pillow, applies the EXIF orientation, re-encodes as RGB JPEG."""
  try:
    image = Image.open(io.BytesIO(data))
    _check_pixels(image.size, max_pixels)
    image.load()
    repair = f"{what}; re-encoded as RGB JPEG"
    orientation = image.getexif().get(0x0112, 1)
    if orientation in range(2, 9):
      image = ImageOps.exif_transpose(image)
      repair = f"{what}; EXIF orientation {orientation} applied; re-encoded as RGB JPEG"
    image = _to_8bit_rgb(image)
    out = io.BytesIO()
    # 4:4:4 (no chroma subsampling): palette and drawn content has sharp colour edges that
    # 4:2:0 blurs by several grey levels; repairs are rare, so their size does not matter.
    image.save(out, "JPEG", quality=REENCODE_QUALITY, subsampling=0)
  except ImageRejected:
    raise
  except Exception as e:  # pylint: disable=broad-except  (any library error rejects one image)
    raise ImageRejected(f"{what}, and Pillow cannot decode it either: {type(e).__name__}: "
                        f"{e}") from None
  return CheckedImage(out.getvalue(), image.size[0], image.size[1], repair)


_EXTRANEOUS = re.compile(r"Corrupt JPEG data: (\d+) extraneous bytes before marker 0xd9")


def _strict_decode_problem(data, facts):
  """'' when libjpeg-turbo decodes every scan without a warning, else libjpeg's message."""
  colorspace = {1: "GRAY", 4: "CMYK"}.get(facts.components, "RGB")
  try:
    simplejpeg.decode_jpeg(data, colorspace=colorspace, min_height=1, min_width=1, min_factor=8,
                           strict=True)
  except Exception as e:  # pylint: disable=broad-except  (ValueError, MemoryError, ...)
    return str(e) or type(e).__name__
  return ""


def _clean_jpeg(data, facts):
  """The JPEG bytes if they decode cleanly, or with end padding cut off; else ImageRejected.

  Damage in the entropy-coded data shows only as a libjpeg warning. "N extraneous bytes before
  marker 0xd9" is what junk before the end marker gives, but a flipped byte mid-scan gives the
  very same message (the Huffman decoder loses sync and finishes early; measured), so the pixels
  are known whole only when those bytes are padding (all 0x00 or all 0xFF), which is then cut.
  """
  problem = _strict_decode_problem(data, facts)
  if not problem:
    return data, ""
  match = _EXTRANEOUS.fullmatch(problem)
  end = data.rfind(b"\xff\xd9")
  if match and end > 0:
    count = int(match.group(1))
    padding = data[end - count:end]
    if padding.strip(b"\x00") == b"" or padding.strip(b"\xff") == b"":
      trimmed = data[:end - count] + data[end:end + 2]
      if not _strict_decode_problem(trimmed, facts):
        return trimmed, f"{count} padding bytes before the end marker removed"
  raise ImageRejected(f"damaged JPEG (libjpeg: {problem}); its pixels cannot be shown whole")


def check_image(data, expected_size=None, max_pixels=DEFAULT_MAX_PIXELS):
  """Returns a CheckedImage for `data`, or raises ImageRejected with the reason.

  data: the file's bytes (any format; decided by content, not name).
  expected_size: (width, height) from the JSON, the displayed size (after EXIF orientation), or
    None; a mismatch is a rejection, since the file is then not the image the JSON describes.
  max_pixels: images with more pixels (width x height, read from the header) are rejected before
    decoding; 0 for no limit.
  Never raises anything else: any exception of an image library is a rejection of this image.
  """
  try:
    return _check(data, expected_size, max_pixels)
  except ImageRejected:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ImageRejected(f"cannot be read ({type(e).__name__}: {e})") from None


def _check(data, expected_size, max_pixels):
  if not data:
    raise ImageRejected("empty file (0 bytes)")
  kind = sniff_format(data)
  if kind is None:
    raise ImageRejected(f"not an image: starts with {data[:8]!r}, no known image signature")
  if kind != "JPEG":
    checked = _reencode(data, f"{kind} content", max_pixels)
  else:
    facts = read_jpeg_facts(data)
    _check_pixels((facts.width, facts.height), max_pixels)
    if not facts.complete:
      raise ImageRejected("truncated JPEG: no end-of-image marker after the scan data")
    problem = _jpeg_problem(facts)
    trim_note = ""
    if facts.process in _TF_SAFE_PROCESSES and facts.precision == 8:
      data, trim_note = _clean_jpeg(data, facts)
    if facts.orientation != 1 and not problem:
      problem = f"EXIF orientation {facts.orientation}"
    if problem:
      checked = _reencode(data, "; ".join(filter(None, (trim_note, problem))), max_pixels)
    else:
      checked = CheckedImage(data, facts.width, facts.height, trim_note)
  if expected_size and (checked.width, checked.height) != tuple(expected_size):
    rotated = " (after its EXIF orientation)" if "EXIF orientation" in checked.repair else ""
    raise ImageRejected(f"size mismatch: the JSON says {expected_size[0]}x{expected_size[1]}, "
                        f"the image displays as {checked.width}x{checked.height}{rotated}")
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
