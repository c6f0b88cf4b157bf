"""Learning-rate schedules, as functions of the global step.

The paper's: 0.0045 for a batch of 32, scaled linearly with the global batch, decayed by 0.94 every
4 epochs (staircase). Modern alternatives: a linear warm-up, and cosine decay to zero.
"""

import dataclasses
import math

import keras
import tensorflow as tf

BASE_BATCH = 32


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
  learning_rate: float = 0.0045    # for a global batch of 32
  global_batch_size: int = 32
  steps_per_epoch: int = 1
  total_steps: int = 1
  kind: str = "exponential"        # or "cosine"
  decay_rate: float = 0.94         # exponential: factor per decay_epochs
  decay_epochs: float = 4.0
  warmup_epochs: float = 0.0

  @property
  def peak_learning_rate(self):
    return self.learning_rate * self.global_batch_size / BASE_BATCH


@keras.saving.register_keras_serializable(package="inat_tf")
class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """The schedule of a ScheduleConfig; step is the optimizer's iteration count."""

  def __init__(self, config):
    if config.kind not in ("exponential", "cosine"):
      raise ValueError(f"schedule kind={config.kind!r}: expected 'exponential' or 'cosine'")
    self.config = config

  def __call__(self, step):
    c = self.config
    step = tf.cast(step, tf.float32)
    epoch = step / c.steps_per_epoch
    if c.kind == "exponential":
      rate = c.peak_learning_rate * c.decay_rate ** tf.floor(epoch / c.decay_epochs)
    else:
      progress = tf.minimum(1.0, step / max(1, c.total_steps))
      rate = c.peak_learning_rate * 0.5 * (1.0 + tf.cos(math.pi * progress))
    if c.warmup_epochs > 0:
      rate = rate * tf.minimum(1.0, epoch / c.warmup_epochs)
    return rate

  def get_config(self):
    return dataclasses.asdict(self.config)

  @classmethod
  def from_config(cls, config):
    return cls(ScheduleConfig(**config))
