"""A trained model as inat-train left it in --model_dir: the Keras model, how to feed it, and the
label map that turns its output indices into category ids and names."""

import dataclasses
import json
import os

import keras
import tensorflow as tf

import models
from inat_tf import label_map as label_map_lib

CHOICES = ("best", "final")


@dataclasses.dataclass
class TrainedModel:
  model: keras.Model          # image batch (normalised) -> logits
  model_name: str             # e.g. "inception_v3": picks the input normalisation
  image_size: int
  label_map: label_map_lib.LabelMap

  @property
  def normalize(self):
    return models.preprocess_input(self.model_name)


def load(model_dir, which="best"):
  """Loads `best.keras` or `final.keras` from a model dir written by inat-train (gfile paths)."""
  if which not in CHOICES:
    raise ValueError(f"which={which!r}: expected one of {', '.join(CHOICES)}")
  path = os.path.join(model_dir, f"{which}.keras")
  config_path = os.path.join(model_dir, "train_config.json")
  if not tf.io.gfile.exists(path) or not tf.io.gfile.exists(config_path):
    raise FileNotFoundError(
        f"{path} (or train_config.json beside it) not found: MODEL_DIR must be a directory "
        f"written by inat-train, after training has saved a model.")
  with tf.io.gfile.GFile(config_path) as f:
    config = json.load(f)
  return TrainedModel(model=keras.models.load_model(path), model_name=config["model"],
                      image_size=config["image_size"],
                      label_map=label_map_lib.LabelMap.load(model_dir))
