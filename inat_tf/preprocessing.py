"""Image preprocessing as small pure functions of (JPEG bytes, seed): one set for training, one for
evaluation. All randomness is stateless and comes from the `seed` argument (a [2] int tensor), so a
pipeline is reproducible however many threads run it, and every function runs the same eagerly and
inside tf.data. Outputs are float32 RGB in [0, 255]; each model family's normalisation is applied
after (models.preprocess_input).

Training follows the paper (random crops with aspect-ratio augmentation) in the Inception style:
sample a window covering 8-100 % of the image with aspect ratio 3/4-4/3, decode only that window
(`decode_and_crop_jpeg`, which skips the IDCT of everything outside it), resize, random flip.
Evaluation decodes only the central square (87.5 % of the short side by default; a model's own
fraction is recorded at training, `--eval_crop_fraction`) and resizes it. The crop ranges, the flip
and RandAugment are set by an `augment.AugmentConfig`.
"""

import tensorflow as tf

from inat_tf import augment as augment_lib

AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)
EVAL_CROP_FRACTION = 0.875


def random_crop_window(image_shape, seed, *, boxes=None, min_object_covered=0.1,
                       area_range=AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE):
  """[offset_y, offset_x, height, width] of an Inception-style random crop inside the image.

  boxes: optional [N, 4] ground-truth boxes (ymin, xmin, ymax, xmax in [0, 1]) used as hints: the
  crop then covers at least `min_object_covered` of one of them. With none, any window qualifies.
  area_range: (min, max) fraction of the image area; aspect_ratio_range: (min, max) width/height.
  """
  if boxes is None:
    boxes = tf.zeros([0, 4], tf.float32)
  # Without boxes the whole image is the "object": asking to cover 10 % of it would forbid the
  # smallest crops, so the constraint only applies when there are real boxes.
  min_object_covered = tf.where(tf.shape(boxes)[0] > 0, min_object_covered, 0.0)
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      image_shape, bounding_boxes=tf.reshape(tf.cast(boxes, tf.float32), [1, -1, 4]), seed=seed,
      min_object_covered=min_object_covered,
      aspect_ratio_range=aspect_ratio_range, area_range=area_range, max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  return tf.stack([begin[0], begin[1], size[0], size[1]])


def _resize(image, image_size):
  return tf.image.resize(image, [image_size, image_size], method="bilinear")


def decode_and_random_crop(image_bytes, image_size, seed, *, boxes=None,
                           area_range=AREA_RANGE, aspect_ratio_range=ASPECT_RATIO_RANGE):
  """Random crop fused with JPEG decoding, resized to image_size x image_size; float32 [0, 255]."""
  window = random_crop_window(tf.image.extract_jpeg_shape(image_bytes), seed, boxes=boxes,
                              area_range=area_range, aspect_ratio_range=aspect_ratio_range)
  image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
  return _resize(tf.cast(image, tf.float32), image_size)


def random_flip(image, seed):
  return tf.image.stateless_random_flip_left_right(image, seed)


def distort_color(image, seed):
  """Inception's colour distortion (brightness, saturation, hue, contrast) on [0, 255] RGB."""
  seeds = tf.random.experimental.stateless_split(seed, 4)
  image = image / 255.0
  image = tf.image.stateless_random_brightness(image, 32 / 255, seeds[0])
  image = tf.image.stateless_random_saturation(image, 0.5, 1.5, seeds[1])
  image = tf.image.stateless_random_hue(image, 0.2, seeds[2])
  image = tf.image.stateless_random_contrast(image, 0.5, 1.5, seeds[3])
  return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def train_image(image_bytes, image_size, seed, *, boxes=None, color_distortion=False,
                augment=None, rand_augment=None):
  """The training view of one JPEG: random crop, resize, flip, optional colour distortion and
  RandAugment; float32 [image_size, image_size, 3] in [0, 255].

  augment: an augment.AugmentConfig (None: the paper's crops and flips). rand_augment: the layer
  of augment.rand_augment_layer(augment), made once per pipeline (None: off).
  """
  augment = augment or augment_lib.AugmentConfig()
  crop_seed, flip_seed, colour_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  rand_seed = tf.random.experimental.stateless_fold_in(seed, 3)  # leaves the other streams as were
  image = decode_and_random_crop(
      image_bytes, image_size, crop_seed, boxes=boxes,
      area_range=(augment.crop_min_area, augment.crop_max_area),
      aspect_ratio_range=(augment.crop_min_aspect_ratio, augment.crop_max_aspect_ratio))
  if augment.horizontal_flip:
    image = random_flip(image, flip_seed)
  if color_distortion:
    image = distort_color(image, colour_seed)
  if rand_augment is not None:
    image = tf.cast(augment_lib.apply(rand_augment, image, rand_seed), tf.float32)
  return image


def _crop_side(height, width, crop_fraction):
  # At least one pixel: a 1 x 1 image (which the builder keeps) has a 1 x 1 central crop, not an
  # empty window that decode_and_crop_jpeg rejects.
  side = tf.cast(crop_fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
  return tf.maximum(side, 1)


def center_crop_window(image_shape, crop_fraction=EVAL_CROP_FRACTION):
  """[offset_y, offset_x, side, side]: the central square, `crop_fraction` of the short side
  (at least 1 pixel)."""
  height, width = image_shape[0], image_shape[1]
  side = _crop_side(height, width, crop_fraction)
  return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def center_crop_and_resize(images, image_size, crop_fraction=EVAL_CROP_FRACTION):
  """The evaluation view of decoded images: the central square (center_crop_window, crop_fraction
  of the short side), resized bilinearly to image_size x image_size.

  images: [height, width, 3] or [batch, height, width, 3], float32 [0, 255]; returns the same
  rank with image_size x image_size pixels. eval_image is this, fused with JPEG decoding; export's
  other formats and image tensors go through this function, so serving matches evaluation.
  """
  window = center_crop_window(tf.shape(images)[-3:-1], crop_fraction)
  cropped = images[..., window[0]:window[0] + window[2], window[1]:window[1] + window[3], :]
  return _resize(cropped, image_size)


# Pixels of context around a cropped decode: libjpeg-turbo's cropped decode upsamples the chroma
# of the window's first and last columns without their neighbours outside it (up to 40 levels
# off on 4:2:0 images, measured), so the window is decoded with this margin and cut out of it.
# 8 covers libjpeg's largest sampling factor (4) with room; the IDCT cost is one iMCU at most.
_CROP_CONTEXT = 8


def decode_window(image_bytes, window, image_shape):
  """The pixels of `window` ([offset_y, offset_x, height, width], int32) of a JPEG whose
  tf.image.extract_jpeg_shape is `image_shape`, uint8 [height, width, 3]: exactly
  tf.io.decode_jpeg(image_bytes)[y:y + h, x:x + w], while skipping the IDCT of most of the image
  outside the window (tf.image.decode_and_crop_jpeg)."""
  y, x, height, width = window[0], window[1], window[2], window[3]
  top, left = tf.minimum(_CROP_CONTEXT, y), tf.minimum(_CROP_CONTEXT, x)
  bottom = tf.minimum(_CROP_CONTEXT, image_shape[0] - y - height)
  right = tf.minimum(_CROP_CONTEXT, image_shape[1] - x - width)
  padded = tf.image.decode_and_crop_jpeg(
      image_bytes, tf.stack([y - top, x - left, height + top + bottom, width + left + right]),
      channels=3)
  return padded[top:top + height, left:left + width]


def eval_image(image_bytes, image_size, crop_fraction=EVAL_CROP_FRACTION):
  """The evaluation view of one JPEG: decode the central crop only, resize; float32 [0, 255].

  Equal, pixel for pixel, to center_crop_and_resize of the fully decoded image (decode_window),
  which export uses for other formats and image tensors.
  """
  shape = tf.image.extract_jpeg_shape(image_bytes)  # parsed once, for the window and its margin
  window = center_crop_window(shape, crop_fraction)
  return _resize(tf.cast(decode_window(image_bytes, window, shape), tf.float32), image_size)


def _corner_windows(image_shape, crop_fraction):
  height, width = image_shape[0], image_shape[1]
  side = _crop_side(height, width, crop_fraction)
  return [(0, 0), (0, width - side), (height - side, 0), (height - side, width - side)], side


def eval_view(image_bytes, image_size, crop_fraction=EVAL_CROP_FRACTION):
  """THE evaluation and serving view of one encoded image (JPEG, PNG, GIF, BMP, WebP): upright by
  its EXIF orientation as the builder stores it, the central square (crop_fraction of the short
  side), resized to image_size x image_size; float32 [0, 255].

  Every consumer of a trained model sees an image through this function (inat-eval, inat-predict,
  inat-adjust through trained_model.TrainedModel.eval_views; inat-export's signatures and
  inat-classify through export.serving_module), so a model is scored, tuned and served on the
  same pixels. JPEGs without a rotation take eval_image's fused decode-and-crop path (the
  records' images always do); other images are decoded whole and go through
  center_crop_and_resize, equal pixel for pixel. Raises tf.errors.InvalidArgumentError for bytes
  that do not decode.
  """
  orientation = exif_orientation(image_bytes)

  def other_formats():
    image = decode_upright(image_bytes, orientation)
    return center_crop_and_resize(tf.cast(image, tf.float32), image_size, crop_fraction)
  return tf.cond(tf.logical_and(tf.io.is_jpeg(image_bytes), tf.equal(orientation, 1)),
                 lambda: eval_image(image_bytes, image_size, crop_fraction), other_formats)


def decode_upright(image_bytes, orientation=None):
  """Any encoded image (JPEG, PNG, GIF's first frame, BMP, WebP), decoded whole and turned
  upright by its EXIF orientation (exif_orientation, unless given): uint8 [height, width, 3] as
  displayed, as the builder stores it. Raises tf.errors.InvalidArgumentError when it does not
  decode."""
  if orientation is None:
    orientation = exif_orientation(image_bytes)
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  return apply_orientation(image, orientation)


def eval_views(image_bytes, image_size, *, flip=False, multi_crop=False,
               crop_fraction=EVAL_CROP_FRACTION):
  """[views, image_size, image_size, 3] float32 [0, 255]: the central crop (eval_view), plus
  optionally its mirror image and the four corner crops (and theirs), for test-time averaging.
  The corner crops need a JPEG (the records' format)."""
  views = [eval_view(image_bytes, image_size, crop_fraction)]
  if multi_crop:
    image = tf.cast(tf.io.decode_jpeg(image_bytes, channels=3), tf.float32)
    corners, side = _corner_windows(tf.shape(image), crop_fraction)
    for y, x in corners:
      views.append(_resize(image[y:y + side, x:x + side], image_size))
  if flip:
    views += [tf.image.flip_left_right(view) for view in views]
  return tf.stack(views)


def exif_orientation(image_bytes):
  """EXIF Orientation (int32 scalar, 1-8; 1 when absent) of JPEG bytes, read in the graph.

  Looks for the APP1 "Exif\\0\\0" TIFF block in the first 64 KiB and the Orientation entry (tag
  0x0112, SHORT) of its IFD0, in either byte order (EXIF 2.32, CIPA DC-008, sec. 4.5.2, 4.6.4).
  The builder applies the same tag with Pillow (tfrecord_builder.image_check), so an image sent to
  an exported model is seen upright, as it was in the records.
  """
  head = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, 65536, unit="BYTE")
                          + tf.constant(b"\0" * 16), tf.uint8)
  head = tf.cast(head, tf.int32)
  n = tf.shape(head)[0] - 16
  pattern = [ord(c) for c in "Exif"] + [0, 0]
  hits = tf.ones([n], tf.bool)
  for k, value in enumerate(pattern):
    hits &= tf.equal(head[k:k + n], value)
  found = tf.where(hits)
  has_exif = tf.logical_and(tf.shape(found)[0] > 0, tf.io.is_jpeg(image_bytes))

  def read():
    tiff = tf.cast(found[0, 0], tf.int32) + 6
    little = tf.equal(head[tiff], ord("I"))

    def u16(at):
      at = tf.clip_by_value(at, 0, n)
      return tf.where(little, head[at] + 256 * head[at + 1], 256 * head[at] + head[at + 1])

    def u32(at):
      return tf.where(little, u16(at) + 65536 * u16(at + 2), 65536 * u16(at) + u16(at + 2))

    ifd = tiff + u32(tiff + 4)
    count = tf.minimum(u16(ifd), 64)
    entries = ifd + 2 + 12 * tf.range(count)
    tags = tf.map_fn(u16, entries)
    kinds = tf.map_fn(lambda at: u16(at + 2), entries)
    values = tf.map_fn(lambda at: u16(at + 8), entries)
    match = tf.where(tf.logical_and(tf.equal(tags, 0x0112), tf.equal(kinds, 3)))
    value = tf.cond(tf.shape(match)[0] > 0, lambda: tf.gather(values, match[0, 0]),
                    lambda: tf.constant(1, tf.int32))
    return tf.where(tf.logical_and(value >= 1, value <= 8), value, 1)

  return tf.cond(has_exif, read, lambda: tf.constant(1, tf.int32))


def apply_orientation(image, orientation):
  """[H, W, C] pixels as stored -> as displayed for EXIF orientation 1-8 (what Pillow's
  ImageOps.exif_transpose does)."""
  branches = [
      lambda: image,                                           # 1
      lambda: tf.image.flip_left_right(image),                 # 2
      lambda: tf.image.rot90(image, 2),                        # 3
      lambda: tf.image.flip_up_down(image),                    # 4
      lambda: tf.transpose(image, [1, 0, 2]),                  # 5 transpose
      lambda: tf.image.rot90(image, 3),                        # 6 90 degrees clockwise
      lambda: tf.image.rot90(tf.transpose(image, [1, 0, 2]), 2),  # 7 transverse
      lambda: tf.image.rot90(image, 1),                        # 8 90 degrees counter-clockwise
  ]
  return tf.switch_case(tf.clip_by_value(orientation, 1, 8) - 1, branches)
