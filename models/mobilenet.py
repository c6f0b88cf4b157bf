"""MobileNet v1 (width multiplier alpha 1.0), keras.applications' graph.

Its classifier is keras.applications': global pool (kept 1x1) -> dropout 1e-3 -> 1x1 conv ->
reshape, so parameter counts equal keras.applications.MobileNet's.
"""

from models.spec import ModelSpec
from models.spec import keras_application

SPECS = (
    ModelSpec(name="mobilenet_v1", backbone=keras_application("MobileNet"),
              backbone_name="MobileNet", min_image_size=32, default_image_size=224,
              preprocessing="inception",
              default_dropout_rate=1e-3, conv_classifier=True),
)
