"""The bounded passes over the records that fetch the report's thumbnails.

  photos = record_photos.collect(data_dir, "val", image_ids={...}, species={...})

The eval split is read once more, but only each record's image/id is parsed until a wanted id
comes by; only those records' image/encoded is parsed and decoded (photos.thumbnail), and the pass
stops when every wanted id was found. One train photo per wanted species (the species an image
was taken for) is found the same way by image/class/label, reading at most
photos.TRAIN_SCAN_LIMIT train records: train shards are shuffled (tfrecord_builder/plan.py), so a
species with n of the N train images is found within a limit L with probability about
1 - exp(-L * n / N); a species not found is named on the page instead of a photo.
"""

import tensorflow as tf

from inat_tf import records
from inat_tf import schema
from inat_tf.report import blocks
from inat_tf.report import photos as photos_lib


def _int64(serialized, key):
  return tf.io.parse_single_example(serialized, {key: tf.io.FixedLenFeature([], tf.int64, -1)})[key]


def _encoded(serialized):
  return tf.io.parse_single_example(
      serialized, {schema.ENCODED: tf.io.FixedLenFeature([], tf.string)})[schema.ENCODED]


def _wanted(values):
  wanted = tf.constant(sorted(values), tf.int64)
  return lambda value: tf.reduce_any(tf.equal(wanted, value))


def _store(photos, key, encoded, side):
  try:
    photos.images[key] = photos_lib.thumbnail(encoded, side)
  except OSError as e:  # Pillow's error for bytes it cannot decode
    photos.missing[key] = f"the record's image did not decode ({e})"


def _read_split(photos, data_dir, split, image_ids, side):
  """Thumbnails of image_ids of a split: image/id parsed per record, image/encoded only for those."""
  is_wanted = _wanted(image_ids)
  dataset = (tf.data.TFRecordDataset(records.shard_files(data_dir, split),
                                     num_parallel_reads=tf.data.AUTOTUNE)
             .map(lambda s: (_int64(s, schema.IMAGE_ID), s), num_parallel_calls=tf.data.AUTOTUNE)
             .filter(lambda image_id, _: is_wanted(image_id))
             .map(lambda image_id, s: (image_id, _encoded(s))))
  left = set(image_ids)
  for image_id, encoded in dataset:
    image_id = int(image_id)
    if image_id in left:
      left.discard(image_id)
      _store(photos, blocks.photo_key(split, image_id), encoded.numpy(), side)
    if not left:
      break  # every wanted id found: the rest of the split is not read
  for image_id in left:
    photos.missing[blocks.photo_key(split, image_id)] = f"image id {image_id} is not in {split}"


def _read_train(photos, data_dir, species, side, limit):
  """The first train photo of each wanted species among the first `limit` train records."""
  is_wanted = _wanted(species)
  dataset = (tf.data.TFRecordDataset(records.shard_files(data_dir, "train"),
                                     num_parallel_reads=4)  # deterministic interleave of 4 shards
             .take(limit).enumerate()
             .map(lambda n, s: (n, _int64(s, schema.LABEL), s),
                  num_parallel_calls=tf.data.AUTOTUNE)
             .filter(lambda n, label, _: is_wanted(label))
             .map(lambda n, label, s: (n, label, _int64(s, schema.IMAGE_ID), _encoded(s))))
  left = set(species)
  scanned = min(limit, records.split_examples(data_dir, "train"))
  for position, label, image_id, encoded in dataset:
    label, image_id = int(label), int(image_id)
    if label in left:
      left.discard(label)
      photos.train_examples[label] = image_id
      _store(photos, blocks.photo_key("train", image_id), encoded.numpy(), side)
    if not left:
      scanned = int(position) + 1
      break
  photos.train_records_scanned = scanned
  for label in left:
    photos.missing[f"train-species:{label}"] = (
        f"no train photo of this species in the {scanned:,} train records read")


def collect(data_dir, split, *, image_ids=(), species=(), side=photos_lib.THUMBNAIL_SIDE,
            train_limit=photos_lib.TRAIN_SCAN_LIMIT):
  """Photos of `image_ids` of `split` and one train photo of each class index in `species`.

  Never raises for a photo it cannot have: it is listed in Photos.missing with the reason (a data
  dir without train shards, an id not in the split). Raises records.DamagedShard naming a shard
  that cannot be read.
  """
  photos = photos_lib.Photos()
  image_ids = {int(i) for i in image_ids}
  species = {int(s) for s in species}
  splits = [split] + (["train"] if species else [])
  with records.read_guard(data_dir, splits):
    if image_ids:
      _read_split(photos, data_dir, split, image_ids, side)
    if species:
      if records.has_shards(data_dir, "train"):
        _read_train(photos, data_dir, species, side, train_limit)
      else:
        for label in species:
          photos.missing[f"train-species:{label}"] = f"{data_dir} has no train shards"
  return photos
