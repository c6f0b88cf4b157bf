"""The report's photo store: thumbnails by record, and the Photo blocks that point into it.

Thumbnails are made by JPEG DCT scaling (Pillow's Image.draft: libjpeg decodes at 1/2, 1/4 or 1/8
of the size, the smallest still at least the thumbnail's size), then a resize to THUMBNAIL_SIDE px
on the longest side, saved as JPEG quality JPEG_QUALITY (a few KB each). The records are read by
inat_tf/report/record_photos.py (TensorFlow); this module is Pillow only.
"""

import dataclasses
import io

from PIL import Image

from inat_tf.report import blocks

THUMBNAIL_SIDE = 160  # px, longest side
JPEG_QUALITY = 80
TRAIN_SCAN_LIMIT = 20_000  # train records read at most to find one photo per wanted species


def thumbnail(encoded, side=THUMBNAIL_SIDE):
  """JPEG bytes of `encoded` (JPEG bytes) at most `side` px on its longest side; raises OSError
  (Pillow's) when the bytes do not decode."""
  with Image.open(io.BytesIO(encoded)) as image:
    image.draft("RGB", (side, side))  # DCT-scaled decode: 1/2..1/8 of the pixels, never below side
    image = image.convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


@dataclasses.dataclass
class Photos:
  """The thumbnails found: images {blocks.photo_key: JPEG bytes}; train_examples {species index:
  train image id}; missing {key: why}; train_records_scanned."""
  images: dict = dataclasses.field(default_factory=dict)
  train_examples: dict = dataclasses.field(default_factory=dict)
  missing: dict = dataclasses.field(default_factory=dict)
  train_records_scanned: int = 0

  def describe(self):
    """Plain data for report.json: which train image shows each species, what could not be had."""
    return {"thumbnail_side": THUMBNAIL_SIDE, "jpeg_quality": JPEG_QUALITY,
            "train_examples": {str(k): v for k, v in sorted(self.train_examples.items())},
            "train_records_scanned": self.train_records_scanned,
            "train_scan_limit": TRAIN_SCAN_LIMIT, "missing": dict(sorted(self.missing.items()))}


def train_photo(photos, species):
  """The blocks.Photo of a species' train example (or one saying why there is none)."""
  image_id = photos.train_examples.get(int(species)) if photos is not None else None
  if image_id is None:
    reason = (photos.missing.get(f"train-species:{int(species)}", "") if photos is not None
              else "") or "no photos were read"
    return blocks.Photo("train", None, missing=reason)
  return blocks.Photo("train", image_id)


def split_photo(photos, split, image_id):
  """The blocks.Photo of an image of the evaluated split (or one saying why there is none)."""
  key = blocks.photo_key(split, image_id)
  if photos is None or key not in photos.images:
    reason = (photos.missing.get(key, "") if photos is not None else "") or "no photos were read"
    return blocks.Photo(split, image_id, missing=reason)
  return blocks.Photo(split, image_id)
