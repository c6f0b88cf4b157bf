"""Input normalisation per family, in TensorFlow ops (usable in tf.data and exported graphs).

Each function maps float RGB images in [0, 255], any leading batch shape, to what the network's
ImageNet weights were trained on; they equal keras.applications' `preprocess_input` of the family.
"""

import tensorflow as tf

# keras.applications' "caffe" mode: ImageNet channel means, in BGR order.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def scale_to_symmetric(images):
  """Inception / MobileNet ("tf" mode): [0, 255] -> [-1, 1]."""
  images = tf.cast(images, tf.float32)
  return images / 127.5 - 1.0


def caffe(images):
  """ResNet ("caffe" mode): RGB -> BGR, then subtract the ImageNet mean per channel; no scaling."""
  images = tf.cast(images, tf.float32)
  return tf.reverse(images, axis=[-1]) - tf.constant(CAFFE_BGR_MEAN, tf.float32)


FUNCTIONS = {"inception": scale_to_symmetric, "caffe": caffe}
