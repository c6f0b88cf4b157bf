"""A trained prior as inat-train-geo left it in its --geo_dir, and THE combination with an image
classifier, used by inat-eval, inat-predict, inat-export and inat-classify alike.

Combination (Mac Aodha et al. 2019, Sec. 3.1): the image classifier's p(y | image) and the
prior's p(y | place, time) = σ(f_y(place)) are multiplied and renormalised over the species,
  p(y | image, place, time) = p(y | image) · max(σ(f_y), floor) / Σ_c p(c | image) · max(σ(f_c), floor),
computed in log space (log p + max(log σ(f), log floor), then softmax) so that no product
underflows to 0/0. The floor makes the prior a boost rather than a filter: a species photographed
far outside its range (a garden plant, a zoo animal) is demoted by at most 1/floor against the
best-placed species, never erased. iNaturalist's vision service combines with a floor of 0.005
(inaturalist/inatVisionAPI, lib/inat_inferrer.py: InatInferrer.MINIMUM_GEO_SCORE, applied as
`geo_score.clip(MINIMUM_GEO_SCORE)` in add_geo_score_column); DEFAULT_FLOOR is ours, chosen by
benchmarks/geo_prior.py (its table: benchmarks/RESULTS.md, "Location floor"). floor = 0 is the plain product.

A photo without a place (see encoding.has_place), and one whose owner opts out (captive or
cultivated: its place says nothing about where the species lives), keeps p(y | image) exactly,
bit for bit.

The image probabilities come in after any logit adjustment and softmax of the image model: the
prior is one more factor on probabilities, never a change to the image model's logits.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from inat_tf import label_map as label_map_lib
from inat_tf import run_common
from inat_tf.geo import encoding
from inat_tf.errors import GeoError

CONFIG_FILE = "geo_config.json"
CHOICES = ("best", "final")


INAT_FLOOR = 0.005  # inatVisionAPI lib/inat_inferrer.py, InatInferrer.MINIMUM_GEO_SCORE
DEFAULT_FLOOR = 0.02  # chosen by benchmarks/geo_prior.py (RESULTS.md: "Location floor"), two seeds


def _check_floor(floor):
  if not 0 <= floor < 1:
    raise ValueError(f"location floor {floor}: expected 0 <= floor < 1 (0: the plain product; "
                     f"iNaturalist uses {INAT_FLOOR})")


def log_location_factor(prior_logits, floor=DEFAULT_FLOOR):
  """log max(σ(prior_logits), floor): [N, C] float32, the log of each species' location factor."""
  _check_floor(floor)
  prior_logits = tf.cast(prior_logits, tf.float32)
  # log σ(z) = min(z, 0) - log(1 + exp(-|z|)): exact, finite, and TFLite builtins only.
  log_prior = tf.minimum(prior_logits, 0.0) - tf.math.log(1.0 + tf.exp(-tf.abs(prior_logits)))
  return tf.maximum(log_prior, float(np.log(floor))) if floor > 0 else log_prior


def combine(image_probabilities, prior_logits, available, *, floor=DEFAULT_FLOOR, opt_out=None):
  """p(y | image) · max(σ(prior_logits), floor), renormalised, where `available` and not
  `opt_out`; p(y | image) elsewhere.

  image_probabilities: [N, C] float32, rows summing to 1; prior_logits: [N, C] float32 (the
  prior network's output); available: [N] bool; floor: a Python float in [0, 1) (0: the plain
  product of Mac Aodha et al.); opt_out: [N] bool or None (captive / cultivated: the place is not
  evidence). Returns [N, C] float32. Rows not used are the input rows themselves (tf.where selects
  them unchanged). Raises ValueError for a floor outside [0, 1).
  """
  image_probabilities = tf.cast(image_probabilities, tf.float32)
  log_product = tf.math.log(image_probabilities) + log_location_factor(prior_logits, floor)
  combined = tf.nn.softmax(log_product, axis=-1)
  used = used_place(available, opt_out)
  return tf.where(used[:, tf.newaxis], combined, image_probabilities)


def used_place(available, opt_out=None):
  """[N] bool: whether the place is used (available and not opted out)."""
  available = tf.convert_to_tensor(available, tf.bool)
  if opt_out is None:
    return available
  return tf.logical_and(available, tf.logical_not(tf.convert_to_tensor(opt_out, tf.bool)))


@dataclasses.dataclass
class GeoPrior:
  model: keras.Model        # encoded place [N, F] → logits [N, C]
  use_date: bool            # trained with dates: then a place needs a date too
  label_map: label_map_lib.LabelMap

  def logits(self, places):
    """[N, C] float32 prior logits for places [N, 3] (rows without a place give meaningless
    values, which `apply` never uses)."""
    return tf.cast(self.model(encoding.encode(places, self.use_date), training=False), tf.float32)

  def available(self, places):
    return encoding.has_place(places, self.use_date)

  def apply(self, image_probabilities, places, *, floor=DEFAULT_FLOOR, opt_out=None):
    """`combine` for places [N, 3]: [N, C] float32 probabilities."""
    return combine(image_probabilities, self.logits(places), self.available(places),
                   floor=floor, opt_out=opt_out)

  def check_matches(self, label_map, what):
    """GeoError unless the image model's classes are the prior's, in the same order."""
    if tuple(label_map.category_ids) != tuple(self.label_map.category_ids):
      raise GeoError(
          f"{what} has {label_map.num_classes} classes and the location prior "
          f"{self.label_map.num_classes}, or their category ids differ: train the prior "
          f"(inat-train-geo) on the data dir the image model was trained on")


def load(geo_dir, which="best"):
  """Loads best.keras or final.keras from a dir written by inat-train-geo (gfile paths).

  Raises FileNotFoundError naming the missing file when geo_dir is not such a dir.
  """
  if which not in CHOICES:
    raise ValueError(f"which={which!r}: expected one of {', '.join(CHOICES)}")
  path = os.path.join(geo_dir, f"{which}.keras")
  config_path = os.path.join(geo_dir, CONFIG_FILE)
  for needed in (path, config_path):
    if not tf.io.gfile.exists(needed):
      raise FileNotFoundError(
          f"{needed} not found: --geo_dir must be a directory written by inat-train-geo, "
          f"after training has saved a model")
  config = run_common.read_json(config_path)
  return GeoPrior(model=keras.models.load_model(path), use_date=bool(config["use_date"]),
                  label_map=label_map_lib.LabelMap.load(geo_dir))
