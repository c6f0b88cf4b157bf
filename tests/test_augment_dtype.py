"""The augmentation layers under --mixed_precision's global policy (they failed at tracing)."""

import keras
import numpy as np
import tensorflow as tf

from inat_tf import augment


def test_mix_and_rand_augment_work_under_a_mixed_precision_policy():
  config = augment.AugmentConfig(mixup_alpha=0.2, cutmix_factor=1.0, randaugment_ops=2)
  before = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layers = augment.mix_layers(config)
    rand_augment = augment.rand_augment_layer(config)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, [4, 16, 16, 3]), tf.float32)
    one_hot = tf.one_hot([0, 1, 2, 0], 3)
    mixed = tf.function(augment.mix_batch, autograph=False)
    for seed in ([1, 2], [3, 4]):  # both layers, whichever the seed picks
      out_images, out_labels = mixed(layers, images, one_hot, tf.constant(seed))
      assert out_images.dtype == tf.float32 and out_labels.dtype == tf.float32
      np.testing.assert_allclose(tf.reduce_sum(out_labels, axis=1), 1.0, rtol=1e-5)
    augmented = augment.apply(rand_augment, images[0], tf.constant([5, 6]))
    assert augmented.dtype == tf.float32 and augmented.shape == images[0].shape
  finally:
    keras.mixed_precision.set_global_policy(before)
