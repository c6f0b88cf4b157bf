"""Training augmentation the user fits to the data: crop ranges, flip, RandAugment, MixUp, CutMix.

`AugmentConfig` holds the knobs (one inat-train flag each). The crop and flip are the pipeline's own
fused decode-and-crop (`preprocessing.train_image`); RandAugment (Cubuk et al. 2020), MixUp (Zhang
et al. 2018) and CutMix (Yun et al. 2019) are Keras 3's own layers (`keras.layers.RandAugment`,
`MixUp`, `CutMix`), which Keras documents as safe inside tf.data with any backend.

Seeding: Keras's augmentation layers draw from a stateful `SeedGenerator` variable, so inside a
parallel tf.data map the draws would depend on thread order. Here every call draws instead from the
seed tensor it is given (`TensorSeeds`: the n-th draw is `stateless_fold_in(seed, n)`), the
stateless, per-example style of the rest of the pipeline: the same seed gives the same augmentation,
eagerly or in tf.data, however many threads run. The layers are Keras's; only where their seeds
come from is changed (`_get_seed_generator`, through which all their random draws go).
"""

import dataclasses
import threading

import keras
import tensorflow as tf

_CALL = threading.local()


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Training-time augmentation; defaults are the paper's (Inception-style crops and flips)."""
  crop_min_area: float = 0.08          # random crop: fraction of the image area, Inception's
  crop_max_area: float = 1.0
  crop_min_aspect_ratio: float = 3 / 4  # width / height of the crop
  crop_max_aspect_ratio: float = 4 / 3
  horizontal_flip: bool = True
  randaugment_ops: int = 0             # RandAugment: ops per image; 0 = off
  randaugment_magnitude: float = 0.5   # Keras's `factor`: strength in [0, 1]
  mixup_alpha: float = 0.0             # MixUp Beta(alpha, alpha); 0 = off
  # CutMix, Keras's `factor`: Beta(a, a) with a drawn uniformly from [0, factor]; 0 = off, <= 1.
  cutmix_factor: float = 0.0

  @property
  def mixes(self):
    """Whether batches are mixed (labels become soft, [batch, classes] float32)."""
    return self.mixup_alpha > 0 or self.cutmix_factor > 0

  def validate(self):
    """Raises ValueError naming every out-of-range setting and what is expected."""
    problems = []
    if not 0 < self.crop_min_area <= self.crop_max_area <= 1:
      problems.append(f"crop area range [{self.crop_min_area}, {self.crop_max_area}]: expected "
                      f"0 < crop_min_area <= crop_max_area <= 1 (fractions of the image area)")
    if not 0 < self.crop_min_aspect_ratio <= self.crop_max_aspect_ratio:
      problems.append(f"crop aspect-ratio range [{self.crop_min_aspect_ratio}, "
                      f"{self.crop_max_aspect_ratio}]: expected 0 < min <= max (width / height)")
    if self.randaugment_ops < 0:
      problems.append(f"randaugment_ops={self.randaugment_ops}: expected >= 0 (0 = off)")
    if not 0 <= self.randaugment_magnitude <= 1:
      problems.append(f"randaugment_magnitude={self.randaugment_magnitude}: expected 0..1")
    if self.mixup_alpha < 0:
      problems.append(f"mixup_alpha={self.mixup_alpha}: expected >= 0 (0 = off)")
    if not 0 <= self.cutmix_factor <= 1:
      problems.append(f"cutmix_factor={self.cutmix_factor}: expected 0..1 (0 = off)")
    if problems:
      raise ValueError("Invalid augmentation: " + "; ".join(problems))


def config_from(values):
  """The AugmentConfig of any object with the same-named attributes (a TrainConfig)."""
  return AugmentConfig(**{f.name: getattr(values, f.name)
                          for f in dataclasses.fields(AugmentConfig)})


class TensorSeeds(keras.random.SeedGenerator):
  """A Keras SeedGenerator without state: the n-th `next()` is stateless_fold_in(seed, n).

  `seed` is a [2] integer tensor. Keras's random ops accept any SeedGenerator and call `next()`;
  this one keeps no variable (its parent's __init__, which makes one, is deliberately not called).
  """

  def __init__(self, seed):  # pylint: disable=super-init-not-called
    self._seed = tf.cast(seed, tf.int64)
    self._draws = 0

  def next(self, ordered=True):
    del ordered
    self._draws += 1
    return tf.random.experimental.stateless_fold_in(self._seed, self._draws)


class _SeededPerCall:
  """Mixin: a Keras augmentation layer's draws come from the seeds of the current `apply`."""

  def _get_seed_generator(self, backend=None):
    del backend
    return _CALL.seeds


class RandAugment(_SeededPerCall, keras.layers.RandAugment):
  pass


class MixUp(_SeededPerCall, keras.layers.MixUp):
  pass


class CutMix(_SeededPerCall, keras.layers.CutMix):
  pass


def apply(layer, data, seed):
  """`layer(data, training=True)` with all its random draws taken from `seed` ([2] int)."""
  _CALL.seeds = TensorSeeds(seed)
  try:
    return layer(data, training=True)
  finally:
    del _CALL.seeds


# The augmentation layers' own dtype: they work on float32 pixels in the input pipeline, before
# the cast to the training dtype. Under --mixed_precision's global policy they would otherwise
# compute in bfloat16 and MixUp failed at tracing (its float32 Beta draw times bfloat16 images).
PIPELINE_DTYPE = "float32"


def rand_augment_layer(config):
  """The RandAugment layer of `config` (images in [0, 255]), or None when it is off."""
  if config.randaugment_ops <= 0:
    return None
  return RandAugment(value_range=(0, 255), num_ops=config.randaugment_ops,
                     factor=config.randaugment_magnitude, dtype=PIPELINE_DTYPE)


def mix_layers(config):
  """[MixUp and/or CutMix] layers of `config` (empty when neither is on)."""
  layers = []
  if config.mixup_alpha > 0:
    layers.append(MixUp(alpha=config.mixup_alpha, dtype=PIPELINE_DTYPE))
  if config.cutmix_factor > 0:
    layers.append(CutMix(factor=config.cutmix_factor, dtype=PIPELINE_DTYPE))
  return layers


def mix_batch(layers, images, one_hot, seed):
  """MixUp or CutMix of a batch: (images, soft labels). With both layers, each batch uses one of
  them, chosen with probability 1/2 (DeiT's and timm's switch between the two).

  images: [batch, h, w, 3] float32 in [0, 255]; one_hot: [batch, classes] float32; seed: [2] int.
  """
  choice_seed, layer_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))

  def run(layer):
    def mixed():
      out = apply(layer, {"images": images, "labels": one_hot}, layer_seed)
      return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)
    return mixed

  if len(layers) == 1:
    return run(layers[0])()
  pick = tf.random.stateless_uniform([], choice_seed) < 0.5
  return tf.cond(pick, run(layers[0]), run(layers[1]))
