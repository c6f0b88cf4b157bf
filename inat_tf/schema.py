"""The TFRecord schema: every feature key and type, defined once for writer, reader and exporter.

Keys follow the TF Object Detection API / Model Garden family, so their decoders read our records.
One `tf.train.Example` per image:

  image/encoded, image/format         RGB JPEG bytes (the original bytes unless repaired), b"jpeg"
  image/height, image/width          pixels
  image/id, image/source_id          the JSON image id (the Kaggle id), as int64 and as text
  image/filename                     the JSON file_name
  image/class/label                  contiguous class index (label_map.json); -1 for test
  image/class/category_id            the JSON category_id; -1 for test
  image/class/text                   species name; b"" for test
  image/class/supercategory          super-category index (label_map.json); -1 for test
  image/class/supercategory_text     super-category name
  image/object/bbox/{xmin,ymin,xmax,ymax}   boxes normalised to [0, 1]
  image/object/class/label           per-box contiguous species index
  image/object/class/supercategory   per-box super-category index
  image/object/area                  COCO area (w * h / 2, pixels), as published
  image/location/{latitude,longitude,uncertainty}, image/location/has_coordinates
  image/location/date, image/location/date_c, image/location/has_date, image/location/user_id
"""

import functools
import struct

import tensorflow as tf

ENCODED = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
IMAGE_ID = "image/id"
SOURCE_ID = "image/source_id"
FILENAME = "image/filename"
LABEL = "image/class/label"
CATEGORY_ID = "image/class/category_id"
CLASS_TEXT = "image/class/text"
SUPERCATEGORY = "image/class/supercategory"
SUPERCATEGORY_TEXT = "image/class/supercategory_text"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
OBJECT_LABEL = "image/object/class/label"
OBJECT_SUPERCATEGORY = "image/object/class/supercategory"
OBJECT_AREA = "image/object/area"
LATITUDE = "image/location/latitude"
LONGITUDE = "image/location/longitude"
LOCATION_UNCERTAINTY = "image/location/uncertainty"
HAS_COORDINATES = "image/location/has_coordinates"
DATE = "image/location/date"
DATE_C = "image/location/date_c"
HAS_DATE = "image/location/has_date"
USER_ID = "image/location/user_id"

# Scalar features: key -> (dtype, value used when absent).
SCALARS = {
    ENCODED: (tf.string, None),
    FORMAT: (tf.string, None),
    HEIGHT: (tf.int64, None),
    WIDTH: (tf.int64, None),
    IMAGE_ID: (tf.int64, None),
    SOURCE_ID: (tf.string, None),
    FILENAME: (tf.string, None),
    LABEL: (tf.int64, -1),
    CATEGORY_ID: (tf.int64, -1),
    CLASS_TEXT: (tf.string, ""),
    SUPERCATEGORY: (tf.int64, -1),
    SUPERCATEGORY_TEXT: (tf.string, ""),
    LATITUDE: (tf.float32, 0.0),
    LONGITUDE: (tf.float32, 0.0),
    LOCATION_UNCERTAINTY: (tf.float32, -1.0),
    HAS_COORDINATES: (tf.int64, 0),
    DATE: (tf.string, ""),
    DATE_C: (tf.float32, -1.0),
    HAS_DATE: (tf.int64, 0),
    USER_ID: (tf.int64, -1),
}
# Variable-length features, one value per box.
BOX_LISTS = {
    BBOX_XMIN: tf.float32,
    BBOX_YMIN: tf.float32,
    BBOX_XMAX: tf.float32,
    BBOX_YMAX: tf.float32,
    OBJECT_LABEL: tf.int64,
    OBJECT_SUPERCATEGORY: tf.int64,
    OBJECT_AREA: tf.float32,
}


def parse_spec(keys=None):
  """Feature spec for tf.io.parse_example; `keys` limits parsing to what a reader needs."""
  spec = {}
  for key, (dtype, default) in SCALARS.items():
    spec[key] = tf.io.FixedLenFeature([], dtype, default_value=default)
  for key, dtype in BOX_LISTS.items():
    spec[key] = tf.io.VarLenFeature(dtype)
  if keys is not None:
    unknown = set(keys) - set(spec)
    if unknown:
      raise ValueError(f"Unknown feature keys {sorted(unknown)}; known: {sorted(spec)}")
    spec = {key: spec[key] for key in keys}
  return spec


def parse(serialized, keys=None):
  """Parses one serialized Example (or a batch) into dense tensors; boxes become dense lists."""
  parse_fn = tf.io.parse_example if serialized.shape.rank == 1 else tf.io.parse_single_example
  features = parse_fn(serialized, parse_spec(keys))
  return {key: tf.sparse.to_dense(value) if isinstance(value, tf.SparseTensor) else value
          for key, value in features.items()}


# Protobuf wire encoding of tf.train.Example, written directly: building the message through the
# protobuf API costs ~250 µs per image (35 Feature objects), a third of the builder's budget per
# image. Fields: Example.features = 1; Features.feature = 1 (map entries with key = 1, value = 2);
# Feature.bytes_list = 1, float_list = 2, int64_list = 3; *List.value = 1 (numbers packed). Keys
# are written sorted, so equal examples give equal bytes.
_KIND = {tf.string: 1, tf.float32: 2, tf.int64: 3}
_ONE_BYTE = [bytes([i]) for i in range(128)]
_TAG = {number: bytes([number << 3 | 2]) for number in (1, 2, 3)}


def _varint(value):
  if 0 <= value < 128:
    return _ONE_BYTE[value]
  value &= 0xFFFFFFFFFFFFFFFF  # negative int64s as two's complement, as protobuf does
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _field(number, payload):
  """A length-delimited field."""
  return _TAG[number] + _varint(len(payload)) + payload


def _entry(key, kind, values):
  """One map entry of Features: key → Feature holding `values` (a tuple)."""
  if kind == 1:
    payload = b"".join(_field(1, v if isinstance(v, bytes) else str(v).encode("utf-8"))
                       for v in values)
  elif kind == 2:
    payload = _field(1, struct.pack(f"<{len(values)}f", *values)) if values else b""
  else:
    payload = _field(1, b"".join(_varint(int(v)) for v in values)) if values else b""
  return _field(1, _field(1, key.encode()) + _field(2, _field(kind, payload)))


# Most entries repeat between examples (defaults, flags, labels, empty box lists).
_cached_entry = functools.lru_cache(maxsize=1 << 14)(_entry)


def serialize_example(scalars, box_lists=None):
  """A serialized tf.train.Example from {key: value} scalars and {key: [values]} box lists.

  Every scalar key of SCALARS without a default must be given; absent ones with a default are
  written with it, so every record carries every key (TFDS's parser requires that). Unknown keys are
  an error, so a typo cannot silently drop a feature.
  """
  box_lists = box_lists or {}
  missing = [k for k, (_, default) in SCALARS.items() if default is None and k not in scalars]
  unknown = set(scalars) - set(SCALARS) | set(box_lists) - set(BOX_LISTS)
  if missing or unknown:
    raise ValueError(f"Example has missing keys {missing} / unknown keys {sorted(unknown)}")
  entries = {}
  for key, (dtype, default) in SCALARS.items():
    value = (scalars.get(key, default),)
    entries[key] = (_entry if key == ENCODED else _cached_entry)(key, _KIND[dtype], value)
  for key, dtype in BOX_LISTS.items():
    entries[key] = _cached_entry(key, _KIND[dtype], tuple(box_lists.get(key, ())))
  return _field(1, b"".join(entries[key] for key in sorted(entries)))


def _flat(nested, prefix=""):
  """{"image": {"encoded": x}} -> {"image/encoded": x}."""
  flat = {}
  for key, value in nested.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}/"))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def tfds_features(class_names, supercategory_names):
  """The same schema as a `tfds.features.FeaturesDict`, for tfds.builder_from_directory.

  Flat, with the records' own "/"-joined keys (image/encoded, image/class/label, ...), not
  nested dicts: TFDS's as_supervised looks features up by top-level key only, so only flat keys
  let it give (image, label). TFDS decodes image/encoded to pixels.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (only the builder needs it)

  f = tfds.features
  scalar = lambda dtype: f.Scalar(dtype=dtype)
  box_list = lambda dtype: f.Tensor(shape=(None,), dtype=dtype)
  return f.FeaturesDict(_flat({
      "image": {
          "encoded": f.Image(shape=(None, None, 3), encoding_format="jpeg"),
          "format": f.Text(),
          "height": scalar(tf.int64),
          "width": scalar(tf.int64),
          "id": scalar(tf.int64),
          "source_id": f.Text(),
          "filename": f.Text(),
          "class": {
              "label": f.ClassLabel(names=class_names),
              "category_id": scalar(tf.int64),
              "text": f.Text(),
              "supercategory": f.ClassLabel(names=supercategory_names),
              "supercategory_text": f.Text(),
          },
          "object": {
              "bbox": {side: box_list(tf.float32) for side in ("xmin", "ymin", "xmax", "ymax")},
              "class": {"label": box_list(tf.int64), "supercategory": box_list(tf.int64)},
              "area": box_list(tf.float32),
          },
          "location": {
              "latitude": scalar(tf.float32),
              "longitude": scalar(tf.float32),
              "uncertainty": scalar(tf.float32),
              "has_coordinates": scalar(tf.int64),
              "date": f.Text(),
              "date_c": scalar(tf.float32),
              "has_date": scalar(tf.int64),
              "user_id": scalar(tf.int64),
          },
      },
  }))
