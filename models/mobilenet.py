"""MobileNet v1 (width multiplier alpha 1.0), keras.applications' graph.

Its classifier: global pool -> dropout 1e-3 -> Dense, the same map and parameter count as
keras.applications' top (a 1x1 conv on the kept 1x1 map, then a reshape), which oneDNN runs
several times slower at many classes (models/heads.py says by how much).
"""

from models.spec import ModelSpec
from models.spec import keras_application

SPECS = (
    ModelSpec(name="mobilenet_v1", backbone=keras_application("MobileNet"),
              backbone_name="MobileNet", min_image_size=32, default_image_size=224,
              preprocessing="inception",
              default_dropout_rate=1e-3),
)
