"""A network of models/ as the feature pyramid keras-hub's RetinaNet builds on.

keras-hub's RetinaNetBackbone takes a `FeaturePyramidBackbone` whose `pyramid_outputs` are
{"P3", "P4", "P5"}: the backbone's last maps at strides 8, 16 and 32 (a plain keras.Model has no
`pyramid_outputs` and is refused). Its FPN adds P4 to P5 upsampled x2 (and P3 to P4 x2), and its
anchor grid at level l has ceil(S / 2^l) cells, so the input size S must be a multiple of 32 and
every map exactly S / 2^l wide. ResNets and MobileNet give that; Inception V3's 'valid'
convolutions give smaller, odd maps (13, 6, 2 at S = 128), which break the FPN's addition
("Inputs have incompatible shapes"); they are zero-padded up to S / 2^l, more before than after,
since 'valid' convolutions shift the map towards the top left of the anchor grid.

The encoder takes images in [0, 1] (keras-hub's convention) and applies the network's own
normalisation (models.preprocess_input, which expects [0, 255]) exactly once, inside the model.
"""

import keras
import keras_hub

import models
from inat_tf import choices

# keras.applications layer names of the last maps at strides 8, 16, 32 (P3, P4, P5).
TAPS = {
    "mobilenet_v1": ("conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu"),
    "resnet50": ("conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
    "resnet101": ("conv3_block4_out", "conv4_block23_out", "conv5_block3_out"),
    "resnet152": ("conv3_block8_out", "conv4_block36_out", "conv5_block3_out"),
    "inception_v3": ("mixed2", "mixed7", "mixed10"),
}
BACKBONES = choices.DETECTION_BACKBONES  # the keys of TAPS
LEVELS = (3, 4, 5)
SIZE_MULTIPLE = 2 ** LEVELS[-1]


def check_image_size(backbone, image_size):
  """ValueError unless image_size suits the feature pyramid and the backbone."""
  if backbone not in TAPS:
    raise ValueError(f"backbone={backbone!r}: expected one of {', '.join(BACKBONES)}")
  smallest = max(SIZE_MULTIPLE * 2, -(-models.min_image_size(backbone) // SIZE_MULTIPLE)
                 * SIZE_MULTIPLE)
  if image_size % SIZE_MULTIPLE or image_size < smallest:
    raise ValueError(
        f"image_size={image_size}: expected a multiple of {SIZE_MULTIPLE} (the stride of P5; "
        f"keras-hub's FPN adds maps upsampled x2), at least {smallest} for {backbone}; "
        f"e.g. --image_size {max(smallest, image_size // SIZE_MULTIPLE * SIZE_MULTIPLE)}")


class ToBackboneInput(keras.layers.Layer):
  """[0, 1] RGB → the normalisation the backbone's weights expect ([-1, 1], or caffe)."""

  def __init__(self, backbone, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone
    self._normalize = models.preprocess_input(backbone)

  def call(self, images):
    return self._normalize(images * 255.0)

  def get_config(self):
    return {**super().get_config(), "backbone": self.backbone}


def pad_to_grid(feature, size, name):
  """Zero-pads a [B, h, w, C] map up to [B, size, size, C] (more before than after)."""
  missing_h, missing_w = size - feature.shape[1], size - feature.shape[2]
  if missing_h < 0 or missing_w < 0:
    raise ValueError(f"{name}: map {tuple(feature.shape[1:3])} is larger than the anchor grid "
                     f"{size} x {size}")
  if not missing_h and not missing_w:
    return feature
  padding = (((missing_h + 1) // 2, missing_h // 2), ((missing_w + 1) // 2, missing_w // 2))
  return keras.layers.ZeroPadding2D(padding, name=f"pad_{name}")(feature)


def pyramid_encoder(backbone, image_size, weights=None):
  """keras_hub FeaturePyramidBackbone: images [B, S, S, 3] in [0, 1] → {"P3", "P4", "P5"}.

  weights: None, "imagenet" or a file, as models.build takes them.
  """
  check_image_size(backbone, image_size)
  # models.build loads the weights into keras.applications' graph; its classifier is not used.
  network = models.build(backbone, num_classes=2, image_size=image_size, weights=weights)
  taps = keras.Model(network.input, [network.get_layer(t).output for t in TAPS[backbone]],
                     name=f"{backbone}_taps")
  image = keras.Input((image_size, image_size, 3), name="image")
  features = taps(ToBackboneInput(backbone, name="to_backbone_input")(image))
  outputs = {f"P{level}": pad_to_grid(feature, image_size // 2 ** level, f"P{level}")
             for level, feature in zip(LEVELS, features)}
  encoder = keras_hub.models.FeaturePyramidBackbone(inputs=image, outputs=outputs,
                                                    name=f"{backbone}_pyramid")
  encoder.pyramid_outputs = outputs
  return encoder
