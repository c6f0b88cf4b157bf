"""Records → detector inputs: images in [0, 1] and dense targets padded with -1.

keras-hub's RetinaNet wants, per batch: images [B, S, S, 3] float in [0, 1] (its preprocessor
convention; our backbone adapter normalises them once for the network, see backbones.py) and
y = {"boxes": [B, M, 4] yxyx in absolute pixels of the S x S input, "labels": [B, M]}, both padded
with -1 to M boxes. Ragged targets and relative box formats fail inside keras-hub 0.32.

Images are resized keeping their aspect ratio (longer side = S) and padded at the bottom and
right, so the boxes of the resized content map back to the original image by one scale per axis.
Training uses only images that have boxes (train split), with a random horizontal flip; evaluation
uses the val images with exactly one box, as the paper does (the published val boxes exist only
for single-instance images), or every boxed image of another split.
"""

import tensorflow as tf

from inat_tf import editions
from inat_tf import label_map as label_map_lib
from inat_tf import records
from inat_tf import schema
from inat_tf.errors import DetectionDataError

BOX_KEYS = (schema.BBOX_YMIN, schema.BBOX_XMIN, schema.BBOX_YMAX, schema.BBOX_XMAX)
KEYS = (schema.ENCODED, schema.IMAGE_ID, schema.HEIGHT, schema.WIDTH, schema.OBJECT_LABEL,
        schema.OBJECT_AREA) + BOX_KEYS


def decode(image_bytes):
  """Any encoded image (JPEG, PNG, ...) → [h, w, 3] float32 RGB in [0, 1]."""
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  return tf.image.convert_image_dtype(image, tf.float32)


def resize_and_pad(image, size):
  """[h, w, 3] → ([size, size, 3], content [height, width]): longer side = size, aspect kept,
  padded with zeros at the bottom and right."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = size / tf.reduce_max(shape)
  content = tf.clip_by_value(tf.cast(tf.round(shape * scale), tf.int32), 1, size)
  resized = tf.image.resize(image, content)
  return tf.image.pad_to_bounding_box(resized, 0, 0, size, size), content


def boxes_to_original(boxes, original_size, content_size):
  """Boxes [b, n, 4] yxyx in pixels of resize_and_pad's output → pixels of the original images,
  clipped to them; original_size and content_size are [b, 2] (height, width)."""
  original = tf.tile(tf.cast(original_size, tf.float32), [1, 2])[:, tf.newaxis, :]
  content = tf.tile(tf.cast(content_size, tf.float32), [1, 2])[:, tf.newaxis, :]
  return tf.clip_by_value(boxes * (original / content), 0.0, original)


def has_boxes(features, single_instance):
  count = tf.size(features[schema.BBOX_XMIN])
  return tf.equal(count, 1) if single_instance else tf.greater(count, 0)


def _class_of(features, species_to_class):
  """Per-box detector classes; fails naming the image if a box is of no boxed super-category."""
  labels = tf.gather(species_to_class, features[schema.OBJECT_LABEL])
  check = tf.debugging.Assert(tf.reduce_all(labels >= 0), [
      "image/id", features[schema.IMAGE_ID], "has a box whose species (label-map index",
      features[schema.OBJECT_LABEL], ") is in none of the nine boxed super-categories; "
      "boxes must come from the published *_bboxes.json files"])
  with tf.control_dependencies([check]):
    return tf.identity(labels)


def _pad(tensor, length, value):
  tensor = tensor[:length]
  padding = [[0, length - tf.shape(tensor)[0]]] + [[0, 0]] * (len(tensor.shape) - 1)
  return tf.pad(tensor, padding, constant_values=value)


def example_to_inputs(features, species_to_class, image_size, max_boxes, *, flip_seed=None):
  """One parsed example → (image [S, S, 3], {"boxes", "labels"}, meta).

  meta: image_id, height and width of the original image, content [h, w] of the resized image
  inside the S x S input (detections are divided by content / original size to map back).
  """
  image = decode(features[schema.ENCODED])
  original = tf.shape(image)[:2]
  boxes = tf.stack([features[key] for key in BOX_KEYS], axis=-1)  # normalised yxyx
  if flip_seed is not None:
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    boxes = tf.cond(flip, lambda: tf.stack(
        [boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], axis=-1),
                    lambda: boxes)
  image, content = resize_and_pad(image, image_size)
  content_f = tf.cast(content, tf.float32)
  pixels = boxes * tf.concat([content_f, content_f], axis=0)
  labels = _class_of(features, tf.constant(species_to_class, tf.int32))
  targets = {"boxes": tf.ensure_shape(_pad(pixels, max_boxes, -1.0), [max_boxes, 4]),
             "labels": tf.ensure_shape(_pad(labels, max_boxes, -1), [max_boxes])}
  meta = {"image_id": features[schema.IMAGE_ID], "original_size": original,
          "content_size": content}
  return tf.ensure_shape(image, [image_size, image_size, 3]), targets, meta


def boxed_examples(data_dir, split, single_instance=None):
  """Parsed examples of `split` that have boxes (val: exactly one box, unless told otherwise)."""
  single = split == "val" if single_instance is None else single_instance
  return records.examples(data_dir, split, KEYS).filter(lambda f: has_boxes(f, single))


def check_has_boxes(data_dir, split):
  """DetectionDataError unless at least one example of `split` has boxes (reads until one does)."""
  for _ in boxed_examples(data_dir, split).take(1):
    return
  wanted = "exactly one box" if split == "val" else "boxes"
  edition = editions.get(label_map_lib.LabelMap.load(data_dir).edition or "2017")
  boxes = editions.published_file(edition, split, "boxes")
  if boxes:
    how = (f"Detection trains and scores on the boxes of the published {boxes}: put it beside "
           f"the other JSONs in the raw dir and rebuild with `inat-build --raw_dir RAW "
           f"--data_dir {data_dir} --overwrite`.")
  else:
    how = (f"iNat{edition.name} publishes no boxes; detection needs a build of an edition that "
           f"does: {editions.publishers(split, 'boxes')}.")
  raise DetectionDataError(
      f"No {split} example in {data_dir} has {wanted} (features image/object/bbox/*). {how}")


def count_boxed(data_dir, split):
  """Number of examples `boxed_examples` yields (one pass over the split's records)."""
  return int(boxed_examples(data_dir, split).reduce(0, lambda n, _: n + 1).numpy())


def train_dataset(data_dir, species_to_class, image_size, batch_size, max_boxes, *, seed=0,
                  flip=True, shuffle_buffer=1024):
  """Endless batches (images, targets) of boxed train images; flips seeded per element."""
  examples = boxed_examples(data_dir, "train").shuffle(shuffle_buffer, seed=seed).repeat()

  def to_inputs(index, features):
    flip_seed = tf.stack([tf.cast(seed, tf.int64), index]) if flip else None
    image, targets, _ = example_to_inputs(features, species_to_class, image_size, max_boxes,
                                          flip_seed=flip_seed)
    return image, targets

  return (examples.enumerate().map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def eval_dataset(data_dir, split, species_to_class, image_size, batch_size, max_boxes, *,
                 single_instance=None):
  """Batches (images, targets, meta) of the boxed images of `split`, in record order."""
  return (boxed_examples(data_dir, split, single_instance)
          .map(lambda f: example_to_inputs(f, species_to_class, image_size, max_boxes),
               num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE))
