"""Issue 25, the builder's part: items 1 (one file under several ids), 2 (EXIF size in either
frame), 4 (every edition's published locations) and 11 (repair what is whole).

The pure-function tests run in the fast tier; one doctored 2017 download and one doctored 2018
download are built once each (slow tier) for the build-level assertions.
"""

import io
import json
import re
import zlib

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageDraw

from inat_tf import editions
from inat_tf import sample_download
from inat_tf import schema
from tests import download_tools
from tests.test_build_trust import (JSONS, TRAIN_VAL, TEST, _decode, _gradient, _jpeg, _mad,
                                    _with_exif_orientation, examples_by_id, manifest_of,
                                    problems_of, run_build)
from tfrecord_builder import image_check


# -- item 2: a JSON size in either frame of an EXIF-rotated photo (pure functions) ---------------

_INVERSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}


_APPLY = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}


def _phone_photo(upright, orientation, byte_order="II", gray=False):
  """JPEG bytes a phone stores: pixels such that applying `orientation` displays `upright`."""
  stored = np.asarray(Image.fromarray(upright).transpose(_INVERSE[orientation]))
  return _with_exif_orientation(_jpeg(stored[..., 0].copy() if gray else stored), orientation,
                                byte_order)


@pytest.mark.parametrize("orientation,byte_order,gray", [(6, "II", False), (8, "MM", True),
                                                         (5, "II", False), (7, "MM", False)])
def test_json_giving_the_stored_sideways_size_is_kept_upright_and_recorded(
    orientation, byte_order, gray):
  upright = _gradient(30, 48)  # displays 48 wide, 30 high; stored 30 x 48
  phone = _phone_photo(upright, orientation, byte_order, gray)
  expected = np.repeat(upright[..., :1], 3, -1) if gray else upright
  for json_size, frame in (((30, 48), "stored"), ((48, 30), "displayed")):
    checked = image_check.check_image(phone, json_size)
    assert (checked.width, checked.height, checked.json_frame) == (48, 30, frame)
    assert checked.orientation == orientation
    assert _mad(_decode(checked.jpeg), expected) <= 2
    stored_note = "the JSON gives the stored (sideways) size 30x48; stored upright as 48x30"
    assert (stored_note in checked.repair) == (frame == "stored"), checked.repair


def test_size_matching_neither_frame_names_both():
  phone = _phone_photo(_gradient(30, 48), 6)
  with pytest.raises(image_check.ImageRejected,
                     match=r"JSON says 31x48, the image displays as 48x30 \(after its EXIF "
                           r"orientation 6; stored sideways as 30x48\)"):
    image_check.check_image(phone, (31, 48))
  # Orientation 3 keeps the sides: its stored frame is its displayed frame, no second chance.
  flipped = _phone_photo(_gradient(30, 48), 3)
  with pytest.raises(image_check.ImageRejected, match=r"displays as 48x30 \(after its EXIF"):
    image_check.check_image(flipped, (30, 48))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_box_follows_the_pixels(orientation):
  """A box drawn on the stored pixels lands, via orient_box, on the same object upright."""
  stored = Image.new("L", (40, 24), 0)
  ImageDraw.Draw(stored).rectangle([5, 3, 14, 9], fill=255)  # x 5-14, y 3-9 inclusive
  box = (5 / 40, 3 / 24, 15 / 40, 10 / 24)
  # What exif_transpose does to the stored pixels: the inverse of what the phone did.
  displayed = stored.transpose(_APPLY[orientation]) if orientation != 1 else stored
  ys, xs = np.nonzero(np.asarray(displayed))
  width, height = displayed.size
  found = (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
  np.testing.assert_allclose(image_check.orient_box(box, orientation), found, atol=1e-9)


# -- item 11: repair what is whole (pure functions) ----------------------------------------------

def _noisy_photo(height=120, width=160, seed=3):
  """A JPEG whose scan is photo-like (noise): where a flipped byte can desync the decoder."""
  rng = np.random.default_rng(seed)
  pixels = np.clip(_gradient(height, width).astype(np.int16) + rng.normal(0, 18, (height, width, 3)),
                   0, 255).astype(np.uint8)
  return _jpeg(pixels)


_JUNK = {
    "text": b"Edited with SomePhotoApp 3.1 (c) nobody; this is not image data. " * 5,
    "repeated pattern": b"\x12\x34" * 150,
    "one repeated byte": b"\x07" * 300,
}


@pytest.mark.parametrize("junk", sorted(_JUNK))
@pytest.mark.parametrize("progressive", [False, True])
def test_junk_before_the_end_marker_is_cut_and_every_pixel_kept(junk, progressive):
  pixels = _gradient(60, 88)
  good = _jpeg(pixels, progressive=progressive)
  damaged = good[:-2] + _JUNK[junk] + b"\xff\xd9"
  with pytest.raises(ValueError, match="extraneous bytes before marker 0xd9"):
    simplejpeg.decode_jpeg(damaged, strict=True)  # libjpeg's own complaint, as in the issue
  checked = image_check.check_image(damaged, (88, 60))
  removed = int(re.match(r"(\d+) junk bytes before the end marker removed \(not scan data: "
                         r"deflate packs them to \d+%\); the image decodes whole without them$",
                         checked.repair).group(1))
  # libjpeg counts from where its bit buffer stopped reading, a few bytes into the junk at most;
  # those few stay behind the scan, where no decoder reads them.
  assert len(_JUNK[junk]) - 8 <= removed <= len(_JUNK[junk])
  assert checked.jpeg.startswith(good[:-2]) and checked.jpeg.endswith(b"\xff\xd9")
  assert _mad(_decode(checked.jpeg), _decode(good)) == 0


def _flip_leaving_extraneous_bytes(good):
  """A copy of `good` with one scan byte changed such that libjpeg finishes the scan early and
  reports the unread real tail as 'N extraneous bytes before marker 0xd9' (found by search)."""
  scan = good.index(b"\xff\xda")
  for position in range(scan + 20, len(good) - 2, 7):
    for value in (0x00, 0x5A, 0xA5):
      if good[position] in (value, 0xFF) or good[position - 1] == 0xFF:
        continue
      flipped = good[:position] + bytes([value]) + good[position + 1:]
      try:
        simplejpeg.decode_jpeg(flipped, strict=True)
      except ValueError as e:
        if re.fullmatch(r"Corrupt JPEG data: \d+ extraneous bytes before marker 0xd9", str(e)):
          return flipped
  raise AssertionError("no such flip found")


def test_a_byte_damaged_mid_scan_is_still_rejected_though_libjpeg_says_the_same():
  good = _noisy_photo()
  flipped = _flip_leaving_extraneous_bytes(good)
  with pytest.raises(image_check.ImageRejected,
                     match=r"damaged JPEG \(libjpeg: Corrupt JPEG data: \d+ extraneous bytes "
                           r"before marker 0xd9\); the \d+ bytes before the end marker look like "
                           r"scan data .*as a byte damaged mid-scan leaves them"):
    image_check.check_image(flipped, (160, 120))
  # The tail it leaves would decode "cleanly" once cut, with wrong pixels: why it is not cut.
  message = ""
  try:
    simplejpeg.decode_jpeg(flipped, strict=True)
  except ValueError as e:
    message = str(e)
  count = int(re.search(r"(\d+) extraneous", message).group(1))
  end = flipped.rfind(b"\xff\xd9")
  cut = flipped[:end - count] + flipped[end:]
  simplejpeg.decode_jpeg(cut, strict=True)
  assert _mad(_decode(cut), _decode(good)) > 1
  assert len(zlib.compress(flipped[end - count:end], 9)) >= count


def test_random_bytes_before_the_end_marker_cannot_be_told_from_scan_data():
  good = _jpeg(_gradient(40, 56))
  noise = bytes(np.random.default_rng(5).integers(0, 255, 300, dtype=np.uint8))  # no 0xFF
  with pytest.raises(image_check.ImageRejected, match=r"the 29\d bytes before the end marker "
                                                      r"look like scan data"):
    image_check.check_image(good[:-2] + noise + b"\xff\xd9", (56, 40))
