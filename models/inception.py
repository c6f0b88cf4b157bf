"""Inception V3 and Inception-ResNet V2, plain and with Squeeze-and-Excitation (SE) blocks.

The backbones are keras.applications' own graphs; this module only says where SE blocks go and
where the auxiliary head taps in (names of keras.applications layers):

- Inception V3: an SE block on the output of each of the 11 Inception modules `mixed0`..`mixed10`
  (the SE-Inception module of Hu et al.). Aux head on `mixed7` (TF-slim's Mixed_6e, 17x17x768 at
  299 px).
- Inception-ResNet V2: an SE block on the residual branch of each of the 40 Inception-ResNet
  modules (output of `blockNN_i_conv`, before scaling and the identity addition, as SENet does for
  residual networks: the identity path stays untouched, so an ImageNet-initialised network is not
  attenuated 40 times over by the fresh gates), and on the outputs of the three modules without a
  shortcut (`mixed_5b`, `mixed_6a`, `mixed_7a`). Aux head on the last block17 output, as TF-slim's
  PreAuxLogits (17x17x1088 at 299 px).
"""

import re

from models.spec import ModelSpec
from models.spec import keras_application

_V3_MODULE = re.compile(r"mixed\d+")  # mixed0..mixed10; not the inner concats mixed9_0, mixed9_1
_IRV2_RESIDUAL_BRANCH = re.compile(r"(block(?:35|17|8)_\d+)_conv")
_IRV2_PLAIN_MODULES = frozenset({"mixed_5b", "mixed_6a", "mixed_7a"})


def v3_se_block_name(layer_name):
  """SE block name for a keras.applications InceptionV3 layer, or None if it gets none."""
  return f"{layer_name}_se" if _V3_MODULE.fullmatch(layer_name) else None


def resnet_v2_se_block_name(layer_name):
  """SE block name for a keras.applications InceptionResNetV2 layer, or None if it gets none."""
  match = _IRV2_RESIDUAL_BRANCH.fullmatch(layer_name)
  if match:
    return f"{match.group(1)}_se"
  return f"{layer_name}_se" if layer_name in _IRV2_PLAIN_MODULES else None


_V3 = dict(backbone=keras_application("InceptionV3"), backbone_name="InceptionV3",
           min_image_size=75, default_image_size=299, preprocessing="inception", aux_tap="mixed7")
_IRV2 = dict(backbone=keras_application("InceptionResNetV2"), backbone_name="InceptionResNetV2",
             min_image_size=75, default_image_size=299, preprocessing="inception",
             aux_tap="block17_20_ac")

SPECS = (
    ModelSpec(name="inception_v3", **_V3),
    ModelSpec(name="inception_v3_se", se_block_name=v3_se_block_name, **_V3),
    ModelSpec(name="inception_resnet_v2", **_IRV2),
    ModelSpec(name="inception_resnet_v2_se", se_block_name=resnet_v2_se_block_name, **_IRV2),
)
