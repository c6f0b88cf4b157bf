"""ResNet-50/101/152 (v1, keras.applications' graphs), and their `_drp` variants.

The paper's `_drp` networks add dropout (rate 0.5) before the classifier; it has no weights, so
parameter counts equal the plain networks'. ImageNet weights expect "caffe" preprocessing.
"""

from models.spec import ModelSpec
from models.spec import keras_application

_DROPOUT_RATE = 0.5


def _specs():
  for depth in (50, 101, 152):
    common = dict(backbone=keras_application(f"ResNet{depth}"), backbone_name=f"ResNet{depth}", min_image_size=32,
                  default_image_size=224, preprocessing="caffe")
    yield ModelSpec(name=f"resnet{depth}", **common)
    yield ModelSpec(name=f"resnet{depth}_drp", default_dropout_rate=_DROPOUT_RATE, **common)


SPECS = tuple(_specs())
