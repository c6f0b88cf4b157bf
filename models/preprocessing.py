"""Input normalisation per family, in TensorFlow ops (usable in tf.data and exported graphs).

Each function maps float RGB images in [0, 255], any leading batch shape, to what the network's
ImageNet weights were trained on; they equal keras.applications' `preprocess_input` of the family.
"""

import tensorflow as tf

# keras.applications' "caffe" mode: ImageNet channel means, in BGR order.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# keras.applications' "torch" mode (and EfficientNetV2-B / ConvNeXt's built-in layers): RGB.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def scale_to_symmetric(images):
  """Inception / MobileNet ("tf" mode): [0, 255] -> [-1, 1]."""
  images = tf.cast(images, tf.float32)
  return images / 127.5 - 1.0


def caffe(images):
  """ResNet ("caffe" mode): RGB -> BGR, then subtract the ImageNet mean per channel; no scaling."""
  images = tf.cast(images, tf.float32)
  # A gather, not tf.reverse: TFLite's int8 REVERSE_V2 came out wrong (errors of up to 114 pixel
  # levels: ResNet-50's int8 model fell from 89 to 32 % top-1, benchmarks/edge.py); GATHER keeps
  # its input's quantisation exactly. Same values in float.
  return tf.gather(images, [2, 1, 0], axis=-1) - tf.constant(CAFFE_BGR_MEAN, tf.float32)


def torch(images):
  """EfficientNetV2 B0-B3, ConvNeXt ("torch" mode): x / 255, minus the ImageNet mean, over the
  ImageNet standard deviation, per RGB channel."""
  images = tf.cast(images, tf.float32)
  return (images / 255.0 - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def rescale_128(images):
  """EfficientNetV2 S/M/L: x / 128 - 1 (its built-in Rescaling(1 / 128, offset=-1))."""
  images = tf.cast(images, tf.float32)
  return images / 128.0 - 1.0


FUNCTIONS = {"inception": scale_to_symmetric, "caffe": caffe, "torch": torch,
             "rescale_128": rescale_128}
