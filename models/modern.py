"""Today's backbones beside the paper's: EfficientNetV2 B0-B3 and S, ConvNeXt Tiny and Small.

keras.applications' graphs, built with include_preprocessing=False so that, as for every network
here, the model takes input already normalised by `models.preprocess_input(name)` (in tf.data, or
in the exported graph). Their own normalisation, as keras.applications' built-in preprocessing
layers do it (Keras 3: efficientnet_v2.py, convnext.py):

- EfficientNetV2 B0-B3: x / 255, then ImageNet mean / std per channel ("torch" mode);
- EfficientNetV2 S: x / 128 - 1 ("rescale_128");
- ConvNeXt: ImageNet mean / std on [0, 255] ("torch" mode).

Those layers hold no weights, so ImageNet weights load by topology exactly as with them
(`weights.py`). Classifier: keras.applications' top (global average pool -> dropout -> dense),
dropout 0.2 for EfficientNetV2 as keras.applications. ConvNeXt's top is global average pool ->
LayerNormalization -> dense (Liu et al. 2022, "A ConvNet for the 2020s", and keras.applications'
`Head`): its backbone is built with pooling="avg", which pools before its final
LayerNormalization (with pooling=None that norm would run per position, before the pool, unlike
the network its ImageNet weights were trained as).
"""

from models.spec import ModelSpec
from models.spec import keras_application

_EFFICIENTNET_V2 = (
    ("efficientnetv2_b0", "EfficientNetV2B0", 224, "torch"),
    ("efficientnetv2_b1", "EfficientNetV2B1", 240, "torch"),
    ("efficientnetv2_b2", "EfficientNetV2B2", 260, "torch"),
    ("efficientnetv2_b3", "EfficientNetV2B3", 300, "torch"),
    ("efficientnetv2_s", "EfficientNetV2S", 384, "rescale_128"),
)
_CONVNEXT = (("convnext_tiny", "ConvNeXtTiny"), ("convnext_small", "ConvNeXtSmall"))

SPECS = tuple(
    ModelSpec(name=name, backbone=keras_application(keras_name, include_preprocessing=False),
              backbone_name=keras_name, min_image_size=32, default_image_size=size,
              preprocessing=preprocessing, default_dropout_rate=0.2)
    for name, keras_name, size, preprocessing in _EFFICIENTNET_V2) + tuple(
    ModelSpec(name=name, backbone=keras_application(keras_name, include_preprocessing=False,
                                                    pooling="avg"),
              backbone_name=keras_name, min_image_size=32, default_image_size=224,
              preprocessing="torch")
    for name, keras_name in _CONVNEXT)
