"""The hand-written Example encoder against protobuf's own, and the parser."""

import tensorflow as tf

from inat_tf import schema


def _reference(scalars, box_lists):
  """The same Example built through the protobuf API."""
  feature = {}
  for key, (dtype, default) in schema.SCALARS.items():
    value = scalars.get(key, default)
    if dtype == tf.string:
      value = value if isinstance(value, bytes) else str(value).encode()
      feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    elif dtype == tf.int64:
      feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    else:
      feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
  for key, dtype in schema.BOX_LISTS.items():
    values = box_lists.get(key, [])
    feature[key] = (tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                    if dtype == tf.int64 else
                    tf.train.Feature(float_list=tf.train.FloatList(value=values)))
  return tf.train.Example(features=tf.train.Features(feature=feature))


SCALARS = {schema.ENCODED: b"\xff\xd8" + bytes(range(256)) * 700, schema.FORMAT: b"jpeg",
           schema.HEIGHT: 600, schema.WIDTH: 800, schema.IMAGE_ID: 2**40 + 7,
           schema.SOURCE_ID: "1099511627783", schema.FILENAME: "train_val_images/Aves/Pica pica/é.jpg",
           schema.LABEL: 3, schema.CATEGORY_ID: 5088, schema.LATITUDE: -33.25,
           schema.LONGITUDE: 151.5, schema.HAS_COORDINATES: 1}
BOXES = {schema.BBOX_XMIN: [0.0, 0.5], schema.BBOX_XMAX: [0.25, 1.0],
         schema.OBJECT_LABEL: [3, 3], schema.OBJECT_AREA: [100.0, 2.5]}


def test_encoder_matches_protobuf():
  ours = tf.train.Example.FromString(schema.serialize_example(SCALARS, BOXES))
  assert ours == _reference(SCALARS, BOXES)


def test_negative_defaults_and_empty_lists_round_trip():
  parsed = schema.parse(tf.constant(schema.serialize_example(SCALARS)))
  assert parsed[schema.SUPERCATEGORY] == -1 and parsed[schema.USER_ID] == -1
  assert parsed[schema.LOCATION_UNCERTAINTY] == -1.0
  assert parsed[schema.BBOX_XMIN].shape == (0,)
  assert parsed[schema.IMAGE_ID] == 2**40 + 7


def test_equal_examples_give_equal_bytes():
  assert schema.serialize_example(dict(SCALARS), dict(BOXES)) == schema.serialize_example(
      dict(reversed(list(SCALARS.items()))), BOXES)


def test_parse_batch_and_single_agree():
  serialized = tf.constant([schema.serialize_example(SCALARS, BOXES)] * 2)
  batch = schema.parse(serialized, keys=[schema.LABEL, schema.BBOX_XMIN])
  single = schema.parse(serialized[0], keys=[schema.LABEL, schema.BBOX_XMIN])
  assert batch[schema.LABEL].numpy().tolist() == [3, 3]
  assert single[schema.BBOX_XMIN].numpy().tolist() == [0.0, 0.5]


def test_unknown_or_missing_keys_are_errors():
  import pytest
  with pytest.raises(ValueError, match="unknown keys"):
    schema.serialize_example({**SCALARS, "image/class/lable": 1})
  with pytest.raises(ValueError, match="missing keys"):
    schema.serialize_example({schema.ENCODED: b""})
