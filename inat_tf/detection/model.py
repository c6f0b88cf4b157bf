"""The detector: keras-hub's RetinaNetObjectDetector on a models/ backbone, and its model dir.

A model dir holds detector.json (DetectorConfig + the classes: everything needed to rebuild the
detector) and checkpoints/ (tf.train.Checkpoint of the detector and optimizer). keras-hub 0.32's
`.keras` round trip fails for a RetinaNet on a custom image encoder ("could not be deserialized
properly"), so the model is always rebuilt from detector.json and its checkpoint restored.
"""

import dataclasses
import json
import math
import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf
# Not exported by keras_hub 0.32's public API; the detector's own default encoder is this class.
from keras_hub.src.models.retinanet.retinanet_label_encoder import RetinaNetLabelEncoder

from inat_tf import trained_model
from inat_tf.detection import backbones
from inat_tf.detection import classes as classes_lib
from inat_tf.detection import decoder

CONFIG_FILE = "detector.json"
PRIOR_PROBABILITY = 0.01  # focal loss paper: background-heavy start, stable first steps


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
  backbone: str = "resnet50"
  image_size: int = 512
  num_classes: int = 1
  anchor_size: float = 4.0          # keras-hub's: P3 anchors are anchor_size * 8 pixels
  head_norm: bool = True            # GroupNorm in the heads (stable from random init)
  head_convs: int = 4               # 3x3 convs before each head's output (keras-hub's: 4)
  force_match: bool = True          # every box trains its best anchor, even at IoU < 0.5
  score_threshold: float = 0.05
  iou_threshold: float = 0.5
  max_detections: int = 100


def prior_bias():
  return -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)


def set_prior_bias(detector):
  """Puts the focal-loss prior on the classification head, where it belongs.

  keras-hub 0.32 passes use_prior_probability=True to its *box* head and not to its
  classification head, so every anchor starts at p = 0.5 for every class: the focal loss of
  thousands of background anchors swamps the first steps.
  """
  cls_bias = detector.classification_head.prediction_layer.bias
  cls_bias.assign(np.full(cls_bias.shape, prior_bias(), np.float32))
  box_bias = detector.box_head.prediction_layer.bias
  box_bias.assign(np.zeros(box_bias.shape, np.float32))


def build(config, weights=None):
  """A RetinaNetObjectDetector for `config`; weights (None, "imagenet", file) for the backbone."""
  size = config.image_size
  encoder = backbones.pyramid_encoder(config.backbone, size, weights)
  backbone = keras_hub.models.RetinaNetBackbone(
      image_encoder=encoder, min_level=3, max_level=7, use_p5=False,
      image_shape=(size, size, 3))
  anchors = keras_hub.layers.AnchorGenerator(
      "yxyx", min_level=3, max_level=7, num_scales=3, aspect_ratios=[0.5, 1.0, 2.0],
      anchor_size=config.anchor_size)
  # keras-hub's encoder, with force-matching as an option: boxes of small animals (common in
  # iNat) otherwise overlap no anchor at IoU >= 0.5, are never positives and never learned.
  label_encoder = RetinaNetLabelEncoder(
      anchors, bounding_box_format="yxyx", encoding_format="center_xywh",
      box_matcher_force_match_for_each_col=config.force_match)
  detector = keras_hub.models.RetinaNetObjectDetector(
      backbone=backbone, num_classes=config.num_classes, bounding_box_format="yxyx",
      anchor_generator=anchors, label_encoder=label_encoder, use_prediction_head_norm=config.head_norm, preprocessor=None,
      pre_logits_num_conv_layers=config.head_convs,
      prediction_decoder=decoder.PerClassNMS(
          iou_threshold=config.iou_threshold, confidence_threshold=config.score_threshold,
          max_detections=config.max_detections))
  set_prior_bias(detector)
  return detector


def detect(detector, images):
  """images [B, S, S, 3] in [0, 1] → decoded detections (keras-hub's dict), in graph or eager.

  Not detector.predict(): keras-hub 0.32's predict fails when the batch size changes between
  calls and predict_on_batch fails always ("not enough values to unpack").
  """
  return detector.decode_predictions(detector(images, training=False), images)


def write_config(model_dir, config, classes):
  path = os.path.join(model_dir, CONFIG_FILE)
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    json.dump({"detector": dataclasses.asdict(config),
               "classes": dataclasses.asdict(classes)}, f, indent=1)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def read_config(model_dir):
  """(DetectorConfig, DetectionClasses) from MODEL_DIR/detector.json."""
  path = os.path.join(model_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: MODEL_DIR must be a directory written by "
                            f"inat-detect-train.")
  with tf.io.gfile.GFile(path) as f:
    document = json.load(f)
  classes = {key: tuple(value) if isinstance(value, list) else value
             for key, value in document["classes"].items()}
  return DetectorConfig(**document["detector"]), classes_lib.DetectionClasses(**classes)


def load(model_dir):
  """(detector with the latest checkpoint's weights, DetectorConfig, DetectionClasses)."""
  config, classes = read_config(model_dir)
  checkpoint_dir = os.path.join(model_dir, trained_model.CHECKPOINTS)
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  if latest is None:
    raise FileNotFoundError(f"No checkpoint in {checkpoint_dir}: run inat-detect-train with "
                            f"--model_dir {model_dir} first.")
  detector = build(config)
  restore(detector, latest)
  return detector, config, classes


class WarmupConstant(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `rate` over `warmup_steps`, then constant (RetinaNet's first steps on a
  fresh head are unstable at the full rate)."""

  def __init__(self, rate, warmup_steps):
    self.rate, self.warmup_steps = rate, warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    return self.rate * tf.minimum(1.0, (step + 1.0) / max(self.warmup_steps, 1))

  def get_config(self):
    return {"rate": self.rate, "warmup_steps": self.warmup_steps}


def make_optimizer(learning_rate, warmup_steps, clip_norm):
  """The training optimizer (Adam with warm-up); `restore` builds one too."""
  return keras.optimizers.Adam(WarmupConstant(learning_rate, warmup_steps),
                               global_clipnorm=clip_norm or None)


def restore(detector, checkpoint_path):
  """Restores the detector's weights from a training checkpoint.

  The checkpoint names each trainable variable once, under the path tf.train.Checkpoint finds
  first, which is the optimizer's `_trainable_variables` (Keras 3 optimizers track them), not the
  detector's layers. Restored through the detector alone they silently stay at their initial
  values, so an optimizer is built over the same variables and restored alongside.
  """
  optimizer = make_optimizer(1e-4, 1, 0)
  optimizer.build(detector.trainable_variables)
  before = detector.trainable_variables[0].numpy().copy()
  # Every variable of the detector and the optimizer must come from the checkpoint (a missing
  # head or BatchNorm statistic would otherwise pass silently); other saved values may go unused.
  tf.train.Checkpoint(detector=detector, optimizer=optimizer).restore(
      checkpoint_path).assert_existing_objects_matched().expect_partial()
  if np.array_equal(before, detector.trainable_variables[0].numpy()):
    raise RuntimeError(f"{checkpoint_path}: the detector's weights were not restored")
