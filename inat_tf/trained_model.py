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
from inat_tf import choices
from inat_tf import commands
from inat_tf import label_map as label_map_lib
from inat_tf import long_tail
from inat_tf import preprocessing
from inat_tf import progress
from inat_tf import records
from inat_tf import run_common
from inat_tf import schema
from inat_tf.geo import encoding as geo_encoding

CHOICES = choices.SAVED_MODELS  # --which
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

  @property
  def head_rank(self):
    """R of a factorised classifier (inat-train --head_rank), 0 for a full one: read from the
    network itself."""
    bottleneck = long_tail.bottleneck_of(self.model)
    return 0 if bottleneck is None else int(bottleneck[1].shape[-1])


def load(model_dir, which="best", adjusted=True):
  """Loads `best.keras` or `final.keras` from a model dir written by inat-train (gfile paths).

  adjusted: apply the long-tail adjustment inat-adjust stored for this model, if any
  (long_tail.apply_stored: the one place it is applied); raises long_tail.LongTailError (a
  ValueError) if it was made for other weights.
  """
  path = os.path.join(model_dir, model_file(which))
  config_path = os.path.join(model_dir, TRAIN_CONFIG)
  if not tf.io.gfile.exists(path) or not tf.io.gfile.exists(config_path):
    raise FileNotFoundError(commands.missing_model_message(model_dir, which))
  config = run_common.read_json(config_path)
  model = keras.models.load_model(path)
  label_map = label_map_lib.LabelMap.load(model_dir)
  adjustment = long_tail.apply_stored(model, model_dir, which, label_map.train_counts) \
      if adjusted else None
  trained = TrainedModel(model=model, model_name=config["model"], image_size=config["image_size"],
                         label_map=label_map, adjustment=adjustment,
                         eval_crop_fraction=config.get("eval_crop_fraction",
                                                       preprocessing.EVAL_CROP_FRACTION))
  if trained.head_rank != config.get("head_rank", 0):  # a model file from another run
    head = f"rank-{trained.head_rank}" if trained.head_rank else "full"
    raise ValueError(f"{path} has a {head} classifier but {config_path} records --head_rank "
                     f"{config.get('head_rank', 0)}: the model dir mixes two runs; retrain it "
                     f"(inat-train --overwrite)")
  return trained


@dataclasses.dataclass
class Predictions:
  """Per image of a split: id, true class index (-1 unlabelled), top-5 indices and scores (-1
  and 0 past the allowed species of a restriction with fewer than 5).

  Every field comes from the answer pipeline (inat_tf.answers.answer): top_* from its
  `top_classes` / `top_scores` (image only; restricted where a restriction was given), geo_top_*
  from the same with the location prior; `answers` holds the pipeline's per-image outputs
  (taxon, rank, score, msp, energy, species, ...; with the prior where one was given) as numpy
  arrays; `probabilities` its [N, C] distribution when asked for (keep_probabilities).
  """
  image_ids: np.ndarray
  labels: np.ndarray
  top_indices: np.ndarray
  top_scores: np.ndarray
  # With a location prior (inat_tf.geo): top-5 of the combination, and which images had a place.
  geo_top_indices: np.ndarray = None
  geo_top_scores: np.ndarray = None
  has_place: np.ndarray = None
  answers: dict = None
  probabilities: np.ndarray = None

  def subset(self, keep):
    """The predictions of the images where `keep` ([N] bool) is true."""
    def part(value):
      if value is None:
        return None
      if isinstance(value, dict):
        return {key: array[keep] for key, array in value.items()}
      return value[keep]
    return Predictions(*(part(getattr(self, f.name)) for f in dataclasses.fields(Predictions)))


# The pipeline outputs kept per image in Predictions.answers (not the [N, C] ones).
ANSWER_KEYS = ("taxon", "rank", "score", "species", "species_score", "vision_rank",
               "vision_score", "used_place", "location_factor", "allowed_mass", "msp", "energy")


def predict(trained, data_dir, split, *, batch_size=64, flip=False, multi_crop=False,
            geo_prior=None, command="inat-eval", answer_config=None, allowed=None,
            captive=False, keep_probabilities=False):
  """The inference loop: `trained` over every example of a split once, in shard order, through
  the answer pipeline (inat_tf.answers.answer: softmax averaged over the views of
  preprocessing.eval_views, location, restriction, roll-up); the top TOP_K classes per image.

  geo_prior: an inat_tf.geo.prior.GeoPrior; then the top TOP_K of the image probabilities
  combined with it are returned too, with which images had a place. answer_config: an
  answers.AnswerConfig (default: ArgmaxRule, the default floor); allowed: [C] bool restriction
  or None; captive: the location prior is not used for any image (opt-out); keep_probabilities:
  also return the final [N, C] probabilities (N x C float32: 4 GB for 100,000 images of 10,000
  species). Prints progress lines (inat_tf/progress.py) to stderr under `command`'s name;
  raises records.DamagedShard naming a shard that cannot be read.
  """
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  from inat_tf import rollup  # pylint: disable=g-import-not-at-top
  from inat_tf import taxonomy as taxonomy_lib  # pylint: disable=g-import-not-at-top
  tree = taxonomy_lib.from_label_map(trained.label_map)
  config = answer_config or answers.AnswerConfig(rule=rollup.ArgmaxRule(), top_k=TOP_K)
  config = dataclasses.replace(config, top_k=TOP_K)
  allowed = None if allowed is None else tf.constant(np.asarray(allowed, bool))
  keys = [schema.ENCODED, schema.LABEL, schema.IMAGE_ID] + list(
      geo_encoding.PLACE_KEYS if geo_prior else [])

  @tf.autograph.experimental.do_not_convert  # graph code as written: see export.serving_module
  def views(example):
    images = trained.eval_views(example[schema.ENCODED], flip=flip, multi_crop=multi_crop)
    places = geo_encoding.places_from_examples(example) if geo_prior else tf.zeros([3])
    return images, example[schema.LABEL], example[schema.IMAGE_ID], places

  dataset = (records.examples(data_dir, split, keys)
             .map(views, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
             .prefetch(tf.data.AUTOTUNE))

  @tf.function(autograph=False)
  def answer(images, places):
    shape = tf.shape(images)  # [batch, views, h, w, 3]
    logits = trained.model(tf.reshape(images, tf.concat([[-1], shape[2:]], 0)), training=False)
    logits = tf.reshape(tf.cast(logits, tf.float32), [shape[0], shape[1], -1])
    image_only = answers.answer(answers.Inputs(logits=logits, allowed=allowed), tree, config)
    if geo_prior is None:
      return image_only, None, None
    available = geo_prior.available(places)
    located = answers.answer(answers.Inputs(
        logits=logits, prior_logits=geo_prior.logits(places), has_place=available,
        opt_out=tf.fill(tf.shape(available), captive), allowed=allowed), tree, config)
    return image_only, located, available

  parts = {name: [] for name in ("ids", "labels", "indices", "scores", "geo_indices",
                                 "geo_scores", "has_place", "probabilities")}
  kept = {key: [] for key in ANSWER_KEYS}
  total = records.split_examples(data_dir, split)
  with records.read_guard(data_dir, [split]), progress.Progress(command, total) as bar:
    for images, batch_labels, batch_ids, places in dataset:
      image_only, located, available = answer(images, places)
      final = image_only if located is None else located
      parts["ids"].append(batch_ids.numpy())
      parts["labels"].append(batch_labels.numpy())
      parts["indices"].append(image_only["top_classes"].numpy())
      parts["scores"].append(image_only["top_scores"].numpy())
      if located is not None:
        parts["geo_indices"].append(located["top_classes"].numpy())
        parts["geo_scores"].append(located["top_scores"].numpy())
        parts["has_place"].append(available.numpy())
      if keep_probabilities:
        parts["probabilities"].append(final["probabilities"].numpy())
      for key in ANSWER_KEYS:
        kept[key].append(final[key].numpy())
      bar.images += len(parts["ids"][-1])
  joined = lambda name: np.concatenate(parts[name]) if parts[name] else None
  return Predictions(joined("ids"), joined("labels"), joined("indices"), joined("scores"),
                     joined("geo_indices"), joined("geo_scores"), joined("has_place"),
                     {key: np.concatenate(values) for key, values in kept.items()},
                     joined("probabilities"))
