"""The paper's classification networks, and today's, as Keras 3 functional models, by name.

  import models
  model = models.build("inception_v3_se", num_classes=5089, image_size=299, weights="imagenet")
  images = models.preprocess_input("inception_v3_se")(images_0_255)   # tf ops, tf.data-friendly
  logits = model(images)                                              # float32 logits, no softmax

Names (MODEL_NAMES): inception_v3, inception_v3_se, inception_resnet_v2, inception_resnet_v2_se,
resnet50, resnet101, resnet152, resnet50_drp, resnet101_drp, resnet152_drp, mobilenet_v1; and
the modern backbones (modern.py): efficientnetv2_b0, _b1, _b2, _b3, efficientnetv2_s,
convnext_tiny, convnext_small.

The backbones are keras.applications' own graphs (identical architectures, parameter counts and
layer names); SE blocks are inserted into them and a new classifier put on top.
With aux_logits=True (Inceptions) the model returns {"logits": ..., "aux_logits": ...}.

Naming convention of the layers this package adds (`new_layers(model)` returns them; the trainer
trains only these first): the classifier and auxiliary head are named `head_*` (`head_logits`,
`head_aux_logits`, ...), Squeeze-and-Excitation blocks `<block>_se_*` (`mixed3_se_reduce`,
`block17_4_se_expand`, ...). No keras.applications backbone layer starts with `head_` or contains
`_se_`. The layer holding the classifier weights is `head_logits` in every model.

Backbone layer names are keras.applications' own. Most are explicit (ResNet, MobileNet, Inception
`mixed*` / `block*`), but keras.applications leaves the Inceptions' plain conv / BN layers unnamed,
and Keras numbers such names per session (`conv2d_5`, or `conv2d_99` after other models were
built). Weights therefore load by topology, as Keras's own loaders do, not by those names.

Modules: builder (build, new_layers), registry (names -> specs), inception / resnet / mobilenet /
modern (one spec file per family: backbone, SE points, aux tap), heads (SE block, classifier, aux head), weights
(backbones with ImageNet or file weights), preprocessing (input normalisation).
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # see inat_tf/__init__.py; before TensorFlow

import importlib  # pylint: disable=g-import-not-at-top

from models import registry  # pylint: disable=g-import-not-at-top

MODEL_NAMES = registry.MODEL_NAMES


def __getattr__(name):
  """build, new_layers (and the submodules) on first use: Keras and TensorFlow are imported only
  then, so that the names and sizes above load in milliseconds (a command's --help)."""
  if name in ("build", "new_layers"):
    return getattr(importlib.import_module("models.builder"), name)
  if name in ("builder", "heads", "preprocessing", "weights"):
    return importlib.import_module(f"models.{name}")
  raise AttributeError(f"module 'models' has no attribute {name!r}")


def min_image_size(name):
  """Smallest image_size `build(name, ...)` accepts: 75 for the Inceptions, 32 otherwise."""
  return registry.spec(name).min_image_size


def preprocess_input(name):
  """The function mapping float RGB images in [0, 255] (any batch shape) to `name`'s input.

  TensorFlow ops only. Inceptions and MobileNet: [-1, 1]. ResNets: keras.applications' "caffe"
  mode (RGB -> BGR, ImageNet channel means subtracted), what their ImageNet weights expect.
  EfficientNetV2 B0-B3 and ConvNeXt: ImageNet mean / std ("torch"); EfficientNetV2 S: x/128 - 1.
  """
  from models import preprocessing  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return preprocessing.FUNCTIONS[registry.spec(name).preprocessing]


__all__ = ["MODEL_NAMES", "build", "min_image_size", "new_layers", "preprocess_input"]
