"""The model-dir contract: what inat-train writes into --model_dir, and how eval, predict and
export choose, load and run a trained model from it.

  checkpoints/          tf.train.Checkpoint (resume)
  logs/<name>/          TensorBoard event files
  best.keras            the model with the best val top-1 (--which best)
  final.keras           the model at the end of training (--which final)
  label_map.json        copied from the data dir: class index <-> category id <-> name
  train_config.json     the run's settings: what a reader needs to feed the model (with its
                        --eval_crop_fraction), the package version
  train.flags           every flag of the run: `inat-train --flagfile=M/train.flags` reruns it
  train_summary.json    steps, speed, best val scores
  long_tail_adjustment-<which>.json, long_tail_classifier-<which>.npz
                        inat-adjust's post-hoc long-tail adjustment of that model (long_tail.py),
                        applied by load() unless adjusted=False
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

import models
from inat_tf import flag_config
from inat_tf import label_map as label_map_lib
from inat_tf import long_tail
from inat_tf import preprocessing
from inat_tf import progress
from inat_tf import records
from inat_tf import run_common
from inat_tf import schema
from inat_tf.geo import encoding as geo_encoding

CHOICES = ("best", "final")  # --which
CHECKPOINTS = "checkpoints"
LOGS = "logs"
TRAIN_CONFIG = "train_config.json"
TRAIN_SUMMARY = "train_summary.json"
TRAIN_FLAGS = "train.flags"
TOP_K = 5


def model_file(which):
  """The file of a saved model: `best.keras` or `final.keras`."""
  if which not in CHOICES:
    raise ValueError(f"which={which!r}: expected one of {', '.join(CHOICES)}")
  return f"{which}.keras"


def start(model_dir, data_dir, config_document):
  """Makes model_dir, copies the data dir's label map into it, writes train_config.json."""
  tf.io.gfile.makedirs(model_dir)
  tf.io.gfile.copy(os.path.join(data_dir, records.LABEL_MAP),
                   os.path.join(model_dir, records.LABEL_MAP), overwrite=True)
  run_common.write_json(os.path.join(model_dir, TRAIN_CONFIG), config_document)


def serving_model(model):
  """The classifier alone: drops the auxiliary head, which only helps training."""
  if isinstance(model.output, dict):
    return keras.Model(model.input, model.output["logits"], name=model.name)
  return model


def save(model, model_dir, which):
  """Saves the serving model as best.keras / final.keras, atomically (temporary name, rename)."""
  path = os.path.join(model_dir, model_file(which))
  serving_model(model).save(path + ".tmp.keras")
  tf.io.gfile.rename(path + ".tmp.keras", path, overwrite=True)


def eval_dir(model_dir, split):
  """Where inat-eval and inat-detect-eval write a split's report by default: MODEL_DIR/eval-SPLIT."""
  return os.path.join(model_dir, f"eval-{split}")


def which_field():
  """The config field (flag) --which best|final, the same for inat-eval, inat-predict and
  inat-export."""
  return flag_config.field("best", "Which saved model of --model_dir: best (best val top-1) or "
                           "final.", choices=CHOICES)


def exists(model_dir, which):
  return tf.io.gfile.exists(os.path.join(model_dir, model_file(which)))


@dataclasses.dataclass
class TrainedModel:
  model: keras.Model          # image batch (normalised) -> logits
  model_name: str             # e.g. "inception_v3": picks the input normalisation
  image_size: int
  label_map: label_map_lib.LabelMap
  adjustment: object = None   # the long_tail.Adjustment applied to the classifier, if any
  # The central crop its validation used (inat-train --eval_crop_fraction); model dirs written
  # before the flag existed used 0.875.
  eval_crop_fraction: float = preprocessing.EVAL_CROP_FRACTION

  @property
  def normalize(self):
    return models.preprocess_input(self.model_name)

  def eval_views(self, image_bytes, *, flip=False, multi_crop=False):
    """The model's input for one encoded image, as every consumer feeds it: [views, size, size,
    3] float32, normalised for the network, views = 1 (+1 with flip, x5 with multi_crop) of
    preprocessing.eval_views at the model's own image_size and eval_crop_fraction."""
    return self.normalize(preprocessing.eval_views(
        image_bytes, self.image_size, flip=flip, multi_crop=multi_crop,
        crop_fraction=self.eval_crop_fraction))


def load(model_dir, which="best", adjusted=True):
  """Loads `best.keras` or `final.keras` from a model dir written by inat-train (gfile paths).

  adjusted: apply the long-tail adjustment inat-adjust stored for this model, if any
  (long_tail.apply_stored: the one place it is applied); raises long_tail.LongTailError (a
  ValueError) if it was made for other weights.
  """
  path = os.path.join(model_dir, model_file(which))
  config_path = os.path.join(model_dir, TRAIN_CONFIG)
  if not tf.io.gfile.exists(path) or not tf.io.gfile.exists(config_path):
    raise FileNotFoundError(
        f"{path} (or {TRAIN_CONFIG} beside it) not found: MODEL_DIR must be a directory "
        f"written by inat-train, after training has saved a model.")
  config = run_common.read_json(config_path)
  model = keras.models.load_model(path)
  label_map = label_map_lib.LabelMap.load(model_dir)
  adjustment = long_tail.apply_stored(model, model_dir, which, label_map.train_counts) \
      if adjusted else None
  return TrainedModel(model=model, model_name=config["model"], image_size=config["image_size"],
                      label_map=label_map, adjustment=adjustment,
                      eval_crop_fraction=config.get("eval_crop_fraction",
                                                    preprocessing.EVAL_CROP_FRACTION))


@dataclasses.dataclass
class Predictions:
  """Per image of a split: id, true class index (-1 unlabelled), top-5 indices and scores."""
  image_ids: np.ndarray
  labels: np.ndarray
  top_indices: np.ndarray
  top_scores: np.ndarray
  # With a location prior (inat_tf.geo): top-5 of the combination, and which images had a place.
  geo_top_indices: np.ndarray = None
  geo_top_scores: np.ndarray = None
  has_place: np.ndarray = None


def predict(trained, data_dir, split, *, batch_size=64, flip=False, multi_crop=False,
            geo_prior=None, command="inat-eval"):
  """The inference loop: `trained` over every example of a split once, in shard order; softmax
  averaged over the views (preprocessing.eval_views); the top TOP_K classes per image.

  geo_prior: an inat_tf.geo.prior.GeoPrior; then the top TOP_K of the image probabilities
  combined with it (inat_tf.geo.prior.combine) are returned too, with which images had a place.
  Prints progress lines (inat_tf/progress.py) to stderr under `command`'s name; raises
  records.DamagedShard naming a shard that cannot be read.
  """
  keys = [schema.ENCODED, schema.LABEL, schema.IMAGE_ID] + list(
      geo_encoding.PLACE_KEYS if geo_prior else [])

  def views(example):
    images = trained.eval_views(example[schema.ENCODED], flip=flip, multi_crop=multi_crop)
    places = geo_encoding.places_from_examples(example) if geo_prior else tf.zeros([3])
    return images, example[schema.LABEL], example[schema.IMAGE_ID], places

  dataset = (records.examples(data_dir, split, keys)
             .map(views, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
             .prefetch(tf.data.AUTOTUNE))

  @tf.function
  def top_k(images, places):
    shape = tf.shape(images)  # [batch, views, h, w, 3]
    logits = trained.model(tf.reshape(images, tf.concat([[-1], shape[2:]], 0)), training=False)
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
    probabilities = tf.reduce_mean(tf.reshape(probabilities, [shape[0], shape[1], -1]), axis=1)
    if geo_prior is None:
      return tf.math.top_k(probabilities, TOP_K), None, None
    return (tf.math.top_k(probabilities, TOP_K),
            tf.math.top_k(geo_prior.apply(probabilities, places), TOP_K),
            geo_prior.available(places))

  ids, labels, indices, scores, geo_indices, geo_scores, has_place = [], [], [], [], [], [], []
  total = records.split_examples(data_dir, split)
  with records.read_guard(data_dir, [split]), progress.Progress(command, total) as bar:
    for images, batch_labels, batch_ids, places in dataset:
      top, geo_top, available = top_k(images, places)
      ids.append(batch_ids.numpy())
      labels.append(batch_labels.numpy())
      indices.append(top.indices.numpy())
      scores.append(top.values.numpy())
      if geo_prior is not None:
        geo_indices.append(geo_top.indices.numpy())
        geo_scores.append(geo_top.values.numpy())
        has_place.append(available.numpy())
      bar.images += len(ids[-1])
  joined = lambda parts: np.concatenate(parts) if parts else None
  return Predictions(np.concatenate(ids), np.concatenate(labels), np.concatenate(indices),
                     np.concatenate(scores), joined(geo_indices), joined(geo_scores),
                     joined(has_place))
