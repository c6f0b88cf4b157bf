"""Layers this package adds to keras.applications' backbones: SE blocks, classifier, aux head.

Standard Keras layers only, so saved models load without custom objects. Every layer made here is
named by the convention `models.new_layers` relies on: SE blocks `<block>_se_*`, everything else
`head_*`. Logits layers compute in float32, so they stay float32 under a mixed-precision policy.
"""

from keras import layers

SE_REDUCTION_RATIO = 16
AUX_POOL_SIZE = 5      # TF-slim's auxiliary head: 5x5 average pool, stride 3,
AUX_POOL_STRIDE = 3
AUX_BOTTLENECK = 128   # then a 1x1 conv to 128 channels,
AUX_FILTERS = 768      # then a conv to 768 channels covering the remaining spatial extent.
CLASSIFIER_LAYER = "head_logits"      # the C-way classifier, in every network
BOTTLENECK_LAYER = "head_bottleneck"  # the rank-R factor before it (head_rank > 0 only)


def squeeze_excite(x, name):
  """Squeeze-and-Excitation: x * sigmoid(W2 relu(W1 avgpool(x))), W1: C -> C/16, W2: C/16 -> C."""
  channels = x.shape[-1]
  gates = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
  gates = layers.Dense(channels // SE_REDUCTION_RATIO, activation="relu",
                       name=f"{name}_reduce")(gates)
  gates = layers.Dense(channels, activation="sigmoid", name=f"{name}_expand")(gates)
  return layers.Multiply(name=f"{name}_scale")([x, gates])  # (N,1,1,C) broadcasts over H, W


def classifier(features, num_classes, dropout_rate, *, head_rank=0):
  """Global average pool (unless the backbone pooled) -> optional dropout -> [rank-R bottleneck]
  -> float32 logits, as keras.applications' tops.

  The classifier is a Dense layer named `head_logits` in every network, MobileNet V1 included:
  keras.applications' MobileNet top (a 1x1 conv on the pooled 1x1 map, then a reshape) is the same
  linear map with the same (d + 1) C parameters, but TensorFlow's oneDNN kernels (on in every
  inat-* command, inat_tf/__init__.py) run that conv 4.6x slower in inference and 2.4x slower in
  training than the Dense at 10,000 classes on an AVX2 CPU (MobileNet V1 at 32 px, batch 256:
  485 against 2,222 images/s; train batch 64: 133 against 317; 2026-12-07). Models saved with the
  conv top still load (their .keras file holds the layer); the long-tail code reads either kernel.

  head_rank R > 0 factorises the classifier (iNaturalist's own phone models: inaturalist/
  inatVisionTraining nets/nets.py, a linear 1x1 conv `svd_u` to R channels, then the C-way 1x1
  conv; here two Dense layers, the same maps): features [d] -> `head_bottleneck` (linear,
  d x R + R) -> `head_logits` (R x C + C), so the head holds R (d + C + 1) + C parameters
  instead of (d + 1) C: at d = 2048, C = 10,000, R = 256 that is 3.1 M instead of 20.5 M (6.6x
  fewer). No activation between the two: the product is a rank-R linear classifier, so the
  long-tail adjustments still act on a linear map (inat_tf/long_tail.py). Both factors compute
  in float32, like the logits.

  features: [batch, height, width, channels], or [batch, channels] from a backbone that pools
  itself (ConvNeXt: the pool comes before its final LayerNormalization).
  """
  x = features
  if len(features.shape) == 4:
    x = layers.GlobalAveragePooling2D(name="head_avg_pool")(features)
  if dropout_rate:
    x = layers.Dropout(dropout_rate, name="head_dropout")(x)
  if head_rank:
    x = layers.Dense(head_rank, dtype="float32", name=BOTTLENECK_LAYER)(x)
  return layers.Dense(num_classes, dtype="float32", name=CLASSIFIER_LAYER)(x)


def classifier_parameters(feature_dim, num_classes, head_rank=0):
  """Weights of the classifier (kernels and biases): (d + 1) C, or R (d + 1) + (R + 1) C with a
  rank-R bottleneck. Equal to the built layers' count (tested)."""
  if not head_rank:
    return (feature_dim + 1) * num_classes
  return head_rank * (feature_dim + 1) + (head_rank + 1) * num_classes


def _conv_bn_relu(x, filters, kernel_size, name):
  # Same conv (no bias) -> BN (no scale) -> relu unit as keras.applications' Inception conv2d_bn.
  x = layers.Conv2D(filters, kernel_size, padding="valid", use_bias=False, name=name)(x)
  x = layers.BatchNormalization(scale=False, name=f"{name}_bn")(x)
  return layers.Activation("relu", name=f"{name}_relu")(x)


def aux_kernel_sizes(height, width):
  """(pool size, pool stride, final conv kernel) of the aux head for a height x width input map.

  At 299 px the map is 17x17: pool 5x5 stride 3 leaves 5x5, covered by a 5x5 conv (TF-slim). At
  small images the map is smaller (3x3 at 75 px), so the pool shrinks to fit and the conv still
  covers exactly what remains, leaving 1x1.
  """
  pool = (min(AUX_POOL_SIZE, height), min(AUX_POOL_SIZE, width))
  stride = (min(AUX_POOL_STRIDE, pool[0]), min(AUX_POOL_STRIDE, pool[1]))
  remaining = ((height - pool[0]) // stride[0] + 1, (width - pool[1]) // stride[1] + 1)
  return pool, stride, remaining


def aux_logits(features, num_classes):
  """TF-slim's Inception auxiliary classifier on a 4D feature map; returns float32 logits."""
  pool, stride, remaining = aux_kernel_sizes(features.shape[1], features.shape[2])
  x = layers.AveragePooling2D(pool, strides=stride, padding="valid",
                              name="head_aux_avg_pool")(features)
  x = _conv_bn_relu(x, AUX_BOTTLENECK, 1, name="head_aux_conv_1x1")
  x = _conv_bn_relu(x, AUX_FILTERS, remaining, name="head_aux_conv_spatial")
  x = layers.Flatten(name="head_aux_flatten")(x)
  return layers.Dense(num_classes, dtype="float32", name="head_aux_logits")(x)
