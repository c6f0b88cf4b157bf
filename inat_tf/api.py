"""The Python entry points for notebooks and scripts, re-exported as `inat_tf.<name>`.

  import inat_tf
  val = inat_tf.read_split("runs/quickstart/data", "val")     # tf.data, one dict per image
  model = inat_tf.load_model("runs/quickstart/model")         # what inat-train saved
  p = inat_tf.probabilities(model, [open("a.jpg", "rb").read()])   # [1, classes] float32
  prior = inat_tf.load_prior("runs/quickstart/geo")           # what inat-train-geo saved
  p = inat_tf.probabilities(model, photos, prior=prior, latitude=37.77, longitude=-122.42,
                            date="2017-06-01")

`probabilities` decodes, orients, crops and combines exactly as inat-classify and the exported
SavedModel do (inat_tf.export.serving_module), so a photo gets the same numbers everywhere.
`import inat_tf` alone does not import TensorFlow; the first use of one of these names does.
Whole splits (scores, submissions) stay with the commands: inat-eval, inat-predict.
"""

import math

import numpy as np
import tensorflow as tf

from inat_tf import export
from inat_tf import records
from inat_tf import schema
from inat_tf import trained_model
from inat_tf.geo import encoding
from inat_tf.geo import prior as prior_lib

_RECORD_KEYS = (schema.ENCODED, schema.LABEL, schema.IMAGE_ID, schema.LATITUDE, schema.LONGITUDE,
                schema.HAS_COORDINATES, schema.DATE)


def read_split(data_dir, split="val"):
  """Every image of a split of a data dir written by inat-build, in shard order, as a
  tf.data.Dataset of dicts (batch it with `.batch(n)`; every value then gains a leading [n]):

    image_bytes  [] tf.string   the stored JPEG (upright, RGB; inat_tf.schema)
    label        [] tf.int64    class index into label_map.json (-1 on the test split)
    image_id     [] tf.int64    the published JSON's image id (the Kaggle id)
    latitude     [] tf.float32  degrees, NaN where the image has no position
    longitude    [] tf.float32  degrees, NaN likewise
    date         [] tf.string   the published date ("YYYY-MM-DD ..."), "" where it has none

  The missing-place rule is the one probabilities() and the prior read, so a batch's latitude,
  longitude and date can be passed to them as they are. Every stored feature, boxes included:
  inat_tf.records.examples, or `tfds.builder_from_directory(data_dir)`.
  Raises ValueError for an unknown split, FileNotFoundError (saying how to build them) when the
  split has no shards.
  """
  def view(example):
    has = tf.cast(example[schema.HAS_COORDINATES], tf.bool)
    nan = tf.constant(math.nan, tf.float32)
    return {"image_bytes": example[schema.ENCODED], "label": example[schema.LABEL],
            "image_id": example[schema.IMAGE_ID],
            "latitude": tf.where(has, example[schema.LATITUDE], nan),
            "longitude": tf.where(has, example[schema.LONGITUDE], nan),
            "date": example[schema.DATE]}
  return records.examples(data_dir, split, list(_RECORD_KEYS)).map(view)


def load_model(model_dir, which="best"):
  """A model dir's `best.keras` (best val top-1) or `final.keras`, as inat-eval loads it.

  Returns a trained_model.TrainedModel: `.model` (keras.Model: normalised [N, size, size, 3]
  float32 -> [N, classes] logits), `.label_map` (class index i -> `.names[i]`,
  `.category_ids[i]`, `.taxon(i, "genus")`), `.image_size`. A long-tail adjustment stored by
  inat-adjust is applied. Raises FileNotFoundError when model_dir holds no saved model,
  ValueError for another `which` or an adjustment made for other weights.
  """
  return trained_model.load(model_dir, which)


def load_prior(geo_dir, which="best"):
  """The location prior inat-train-geo wrote to geo_dir (Mac Aodha et al. 2019), for
  probabilities(prior=...). Raises FileNotFoundError naming the missing file."""
  return prior_lib.load(geo_dir, which)


def probabilities(model, image_bytes, *, prior=None, latitude=None, longitude=None, date=None):
  """Species probabilities for encoded photos: [N, classes] float32 numpy, rows summing to 1,
  column i = model.label_map.names[i].

  model: load_model(...). image_bytes: N >= 1 encoded JPEG, PNG, GIF or BMP files (a list of
  bytes, or a [N] tf.string tensor such as read_split's batched `image_bytes`). Each is decoded,
  turned upright by its EXIF orientation, centre-cropped and resized as inat-classify and the
  SavedModel's serving_default do. The whole batch goes through the network at once: pass a few
  hundred photos per call, not a split.
  prior: load_prior(...) to fold in p(y | place, time) (inat_tf.geo.prior.combine); then
  latitude, longitude (degrees) and date ("YYYY-MM-DD") are one value for every photo or one per
  photo; None, NaN or "" is unknown. A photo without a place (or without a date, for a prior
  trained with dates) gets exactly its image-only probabilities.
  Raises ValueError, naming the items, for images that cannot be decoded, coordinates out of
  range, malformed dates, or a place given without a prior; prior.GeoError when the prior was
  trained on other classes.
  """
  image_bytes = tf.reshape(tf.convert_to_tensor(image_bytes, tf.string), [-1])
  n = int(tf.size(image_bytes))
  if n == 0:
    raise ValueError("image_bytes is empty: give at least one encoded image")
  if prior is None and not (latitude is None and longitude is None and date is None):
    raise ValueError("latitude, longitude and date are used by a location prior: give "
                     "prior=inat_tf.load_prior(GEO_DIR) too")
  places = None
  if prior is not None:
    prior.check_matches(model.label_map, "the model")
    places = _places(n, latitude, longitude, date)
  indices, images = export._decode_valid(  # pylint: disable=protected-access  (serving's decode)
      image_bytes, model.image_size, model.eval_crop_fraction)
  unreadable = sorted(set(range(n)) - set(indices.numpy().tolist()))
  if unreadable:
    raise ValueError(f"image_bytes items {_listed(unreadable)} are not readable JPEG, PNG, GIF or "
                     f"BMP images; nothing was classified")
  result = tf.nn.softmax(tf.cast(model.model(model.normalize(images), training=False),
                                 tf.float32))
  if prior is not None:
    result = prior.apply(result, places)
  return result.numpy()


def _listed(items):
  return str(items[:10])[:-1] + (", ...]" if len(items) > 10 else "]")


def _per_photo(values, n, name, convert):
  """One value per photo from None, a scalar, or a sequence / tensor of 1 or n values."""
  if values is None:
    values = [None]
  if isinstance(values, tf.Tensor):
    values = values.numpy()
  if isinstance(values, (str, bytes)) or np.ndim(values) == 0:
    values = [values]
  values = [convert(v) for v in np.ravel(np.asarray(values, dtype=object))]
  if len(values) not in (1, n):
    raise ValueError(f"{name}: {len(values)} values for {n} photos: give one, or one per photo")
  return values * n if len(values) == 1 else values


def _places(n, latitude, longitude, date):
  """A place [n, 3] (inat_tf.geo.encoding) from per-photo values; ValueError for values that
  would otherwise silently count as unknown."""
  number = lambda v: math.nan if v is None else float(v)
  text = lambda v: "" if v is None else (v.decode("utf-8") if isinstance(v, bytes) else str(v))
  latitudes = np.asarray(_per_photo(latitude, n, "latitude", number), np.float32)
  longitudes = np.asarray(_per_photo(longitude, n, "longitude", number), np.float32)
  dates = _per_photo(date, n, "date", text)
  if not np.array_equal(np.isnan(latitudes), np.isnan(longitudes)):
    raise ValueError("latitude and longitude: give both or neither for each photo")
  outside = np.flatnonzero((np.abs(latitudes) > 90) | (np.abs(longitudes) > 180))
  if outside.size:
    raise ValueError(f"photos {_listed(outside.tolist())}: latitude must be in [-90, 90] and "
                     f"longitude in [-180, 180] degrees (NaN or None = unknown)")
  fractions = encoding.date_fraction(tf.constant(dates, tf.string))
  malformed = [i for i, (d, f) in enumerate(zip(dates, fractions.numpy())) if d and np.isnan(f)]
  if malformed:
    raise ValueError(f"photos {_listed(malformed)}: date must be a real date as YYYY-MM-DD "
                     f"(\"\" or None = unknown)")
  return encoding.place(latitudes, longitudes, fractions)
